//! Scenario 4, in-process half: decision latency of the example library
//! (Rego on the RVM), of an OPA Wasm policy, the whole gate's cost per
//! decision (config check, input, evaluation, decision log), and a new
//! process's first decision with the compiled policy cached.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeshim_policy::{DecisionInput, Gate, LoadedPolicy, PolicyGate, WasmHost};
use serde::Serialize;

use crate::stats::{Summary, summarize};

const ENTRYPOINT: &str = "edgeshim/decision";
/// The library's load check (its settings), run once per load as the shim
/// does with `check = "edgeshim/config_errors"`.
const CHECK: &str = "edgeshim/config_errors";
const BUDGET: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize)]
pub struct PolicyResult {
    pub what: String,
    pub format: String,
    pub decisions: usize,
    /// Microseconds.
    pub latency_us: Summary,
}

/// The documented example input.
fn example() -> Result<DecisionInput> {
    let path = repo().join("docs/policy/input.example.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Inputs for the run: the example, varied so that rules fire and not.
fn inputs(n: usize) -> Result<Vec<serde_json::Value>> {
    let base = example()?;
    let kinds = [
        edgeshim_policy::ContainerKind::Wasm,
        edgeshim_policy::ContainerKind::Native,
        edgeshim_policy::ContainerKind::Sandbox,
    ];
    (0..n)
        .map(|i| {
            let mut input = base.clone();
            input.container.kind = kinds[i % kinds.len()];
            input.container.id = format!("c{i}");
            if i % 5 == 0 {
                input.container.image = format!("docker.io/other/app:{i}");
            }
            Ok(serde_json::to_value(&input)?)
        })
        .collect()
}

fn time_decisions(policy: &mut LoadedPolicy, inputs: &[serde_json::Value]) -> Result<Vec<f64>> {
    // Warm-up: first evaluations fill caches and grow the heap.
    for input in inputs.iter().take(100) {
        policy.decide(input, BUDGET).0.map_err(anyhow::Error::msg)?;
    }
    let mut samples = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (outcome, took) = policy.decide(input, BUDGET);
        outcome.map_err(anyhow::Error::msg)?;
        samples.push(took.as_secs_f64() * 1e6);
    }
    Ok(samples)
}

pub fn run(n: usize) -> Result<Vec<PolicyResult>> {
    let work = tempfile::tempdir()?;
    let cache = work.path().join("cache");
    let inputs = inputs(n)?;
    let mut results = Vec::new();

    let library = repo().join("policies/library");
    let mut rego = load_library(&library, &cache)?;
    results.push(PolicyResult {
        what: "example library, in-process decision".into(),
        format: rego.format.to_string(),
        decisions: n,
        latency_us: summarize(&time_decisions(&mut rego, &inputs)?),
    });

    let wasm_dir = work.path().join("wasm");
    std::fs::create_dir_all(&wasm_dir)?;
    let fixture = repo().join("crates/policy/tests/fixtures/opa-abi/decision-abi-1.2.wat");
    std::fs::write(wasm_dir.join("policy.wasm"), wat::parse_file(&fixture)?)?;
    std::fs::write(wasm_dir.join("data.json"), "{}")?;
    let mut wasm = LoadedPolicy::load(&wasm_dir, ENTRYPOINT, &cache).map_err(anyhow::Error::msg)?;
    results.push(PolicyResult {
        what: "OPA Wasm ABI 1.2 module (hand-written WAT stand-in), in-process decision".into(),
        format: wasm.format.to_string(),
        decisions: n,
        latency_us: summarize(&time_decisions(&mut wasm, &inputs)?),
    });

    results.push(gate_overhead(work.path(), &library, n)?);
    results.push(first_decision(&library, &cache, 30)?);
    Ok(results)
}

/// The gate as the shim calls it, decision log included.
fn gate_overhead(work: &Path, library: &Path, n: usize) -> Result<PolicyResult> {
    let config = work.join("policy.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"{}\"\ncheck = \"{CHECK}\"\ncache_dir = \"{}\"\n[decision_log]\npath = \"{}\"\n",
            library.display(),
            work.join("cache").display(),
            work.join("decisions.log").display()
        ),
    )?;
    // The node's last good copy goes to the work folder, not the node's
    // cache: a benchmark's config must never become the node's.
    let gate = PolicyGate::new(&config).keeping_last_good_in(&work.join("last-good"));
    let input = example()?;
    for _ in 0..100 {
        gate.decide(&input);
    }
    let samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            gate.decide(&input);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    Ok(PolicyResult {
        what: "whole gate per decision (reload check, input, evaluation, decision log)".into(),
        format: "rego (rvm)".into(),
        decisions: n,
        latency_us: summarize(&samples),
    })
}

/// The example library as the shim loads it: compiled (or read from the
/// cache) and its settings checked.
fn load_library(library: &Path, cache: &Path) -> Result<LoadedPolicy> {
    LoadedPolicy::load_checked(
        WasmHost::for_this_build(),
        library,
        ENTRYPOINT,
        Some(CHECK),
        cache,
    )
    .map_err(anyhow::Error::msg)
}

/// A new process (as a new shim is): load the cached compiled policy, run
/// its load check and make one decision; timed inside that process.
fn first_decision(library: &Path, cache: &Path, runs: usize) -> Result<PolicyResult> {
    let me = std::env::current_exe()?;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let output = Command::new(&me)
            .arg("policy-first")
            .arg("--policy")
            .arg(library)
            .arg("--cache")
            .arg(cache)
            .output()?;
        if !output.status.success() {
            bail!("policy-first: {}", String::from_utf8_lossy(&output.stderr));
        }
        let micros: f64 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
        samples.push(micros);
    }
    Ok(PolicyResult {
        what: "new process: load cached compiled policy + load check + first decision".into(),
        format: "rego (rvm)".into(),
        decisions: runs,
        latency_us: summarize(&samples),
    })
}

/// The child side of [`first_decision`]: prints microseconds.
pub fn first_in_this_process(policy: &Path, cache: &Path) -> Result<()> {
    let input = serde_json::to_value(example()?)?;
    let start = Instant::now();
    let mut loaded = load_library(policy, cache)?;
    loaded
        .decide(&input, BUDGET)
        .0
        .map_err(anyhow::Error::msg)?;
    println!("{}", start.elapsed().as_secs_f64() * 1e6);
    Ok(())
}

/// Each new pod shim's first decision as the gate itself timed it, read
/// from the decision log (and its first rotated file) after a run of the
/// `cold` scenario: `gate_us` spans the request asking the gate to the
/// decision, so any wait for the policy load a shim began at start-up
/// counts. `pods` are `namespace/name`, one shim each.
pub fn first_decisions_in_situ(log: &Path, handler: &str, pods: &[String]) -> Result<PolicyResult> {
    let mut first: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    for file in [rotated.as_path(), log] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(pod), Some(us)) = (entry["pod"].as_str(), entry["gate_us"].as_f64()) else {
                continue;
            };
            if let Some(name) = pods.iter().find(|p| p.as_str() == pod) {
                first.entry(name.as_str()).or_insert(us);
            }
        }
    }
    if first.len() != pods.len() {
        bail!(
            "decision log {}: a first decision (with gate_us) for {} of {} {handler} pods",
            log.display(),
            first.len(),
            pods.len()
        );
    }
    let samples: Vec<f64> = first.into_values().collect();
    Ok(PolicyResult {
        what: format!("{handler}: a new pod shim's first decision, in situ (cold scenario)"),
        format: "as configured".into(),
        decisions: samples.len(),
        latency_us: summarize(&samples),
    })
}
