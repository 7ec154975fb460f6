//! The example policy library decided by edgeshim (regorus) and by real OPA
//! (v1.20.2, through test/oracle/opa_eval.py) must agree on every one of
//! 10,000 generated inputs. The oracle is installed by
//! `hack/install-oracle.sh` (the README's set-up command runs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use edgeshim_policy::{LoadedPolicy, PolicyFormat};

const INPUTS: usize = 10_000;
const SEED: &str = "20261122";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn oracle_python() -> PathBuf {
    let venv = std::env::var_os("EDGESHIM_ORACLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/edgeshim/oracle-venv".into());
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no OPA oracle at {}: run hack/install-oracle.sh",
        venv.display()
    );
    python
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn test_example_library_agrees_with_real_opa_on_generated_inputs() {
    let python = oracle_python();
    let work = tempfile::tempdir().expect("tempdir");
    let library = repo().join("policies/library");
    let inputs = run(Command::new(&python)
        .arg(repo().join("test/oracle/gen_inputs.py"))
        .args(["--count", &INPUTS.to_string(), "--seed", SEED]));
    let inputs_file = work.path().join("inputs.jsonl");
    std::fs::write(&inputs_file, &inputs).expect("write inputs");
    let opa = run(Command::new(&python)
        .arg(repo().join("test/oracle/opa_eval.py"))
        .arg("--policy-dir")
        .arg(&library)
        .arg("--data")
        .arg(library.join("data.json"))
        .arg("--inputs")
        .arg(&inputs_file));

    let mut policy = LoadedPolicy::load(&library, "edgeshim/decision", &work.path().join("cache"))
        .expect("library loads");
    assert_eq!(
        policy.format,
        PolicyFormat::RegoVm,
        "the library runs on the RVM"
    );
    let mut disagreements = Vec::new();
    let mut allowed = 0;
    let mut rule_hits = std::collections::BTreeMap::<String, usize>::new();
    let lines: Vec<(&str, &str)> = inputs.lines().zip(opa.lines()).collect();
    assert_eq!(lines.len(), INPUTS, "one OPA decision per input");
    for (number, (input, expected)) in lines.into_iter().enumerate() {
        let input: serde_json::Value = serde_json::from_str(input).expect("input json");
        let expected: serde_json::Value = serde_json::from_str(expected).expect("opa json");
        let (outcome, _) = policy.decide(&input, Duration::from_secs(5));
        let answer = outcome.expect("edgeshim decides");
        let (allow, mut reasons) = (answer.allow, answer.reasons);
        reasons.sort();
        let mut ours = serde_json::json!({"allow": allow, "reasons": reasons});
        if let Some(network) = &answer.network {
            ours["network"] = serde_json::json!(network);
        }
        if ours != expected {
            disagreements.push(format!("input {number}: opa {expected} edgeshim {ours}"));
        }
        allowed += usize::from(allow);
        for reason in &reasons {
            let tag = reason.split(':').next().unwrap_or_default().to_string();
            *rule_hits.entry(tag).or_default() += 1;
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {INPUTS} disagree, first: {:#?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(5)]
    );
    // The comparison means something only if every rule both fired and not.
    eprintln!("allowed {allowed} of {INPUTS}; reasons by rule: {rule_hits:?}");
    assert!(allowed > 100, "too few allowed inputs: {allowed}");
    for rule in [
        "registry",
        "labels",
        "memory",
        "host-network",
        "wasm-only",
        "module-size",
        "mounts",
        "data-local",
    ] {
        let hits = rule_hits.get(rule).copied().unwrap_or_default();
        assert!(
            hits > 100 && hits < INPUTS,
            "rule {rule} fired {hits} times"
        );
    }
}
