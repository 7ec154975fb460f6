//! Scenario 6: what the compiled-module cache buys. For each program (the
//! compute-heavy module, and the SQLite logger, a module the size of a real
//! application) and each handler, a pod runs the module with the shim's
//! module cache emptied (the first start compiles, or, on WasmEdge, starts
//! on quick code or in the interpreter while a helper compiles at O2 in the
//! background), then, once no background compile waits any more, again
//! (the second start loads the cached native code); repeated, handlers
//! interleaved. The time that counts is the container's: CreateContainer
//! to its first line of output, which the module prints when its work is
//! done; and StartContainer alone, the start proper (the module's own run
//! comes after it).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgeshim_cri::Cri;
use serde::Serialize;

use crate::images::{Program, workload};
use crate::pod_run::{self, PodTiming};
use crate::stats::{Summary, summarize};

#[derive(Debug, Serialize)]
pub struct AotResult {
    pub handler: String,
    pub program: Program,
    pub first: Vec<PodTiming>,
    pub second: Vec<PodTiming>,
    /// CreateContainer to first output, first start (empty cache).
    pub first_container: Summary,
    /// The same, second start (cached).
    pub second_container: Summary,
    /// first_container.p50 / second_container.p50.
    pub speedup_p50: f64,
    /// StartContainer alone (containerd creates and starts the task: the
    /// shim loads or compiles the module), first start.
    pub first_start: Summary,
    /// The same, second start.
    pub second_start: Summary,
    /// first_start.p50 / second_start.p50.
    pub start_speedup_p50: f64,
    /// From the first start's output until no background compile waited
    /// in the cache (WasmEdge's O2 compile; about 0 where there is none).
    pub background_compile_ms: Summary,
}

fn container_ms(t: &PodTiming) -> f64 {
    t.create_ms + t.start_ms + t.first_output_ms
}

/// Removes the engines' compiled modules (`wasmtime-*`, `wasmedge-*`
/// folders) from the shims' cache, leaving the policy's.
fn empty_module_cache(cache_dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("wasmtime-") || name.starts_with("wasmedge-") {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("emptying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The background compiles (WasmEdge's `.pending-*` inputs) waiting in
/// the engines' cache folders.
fn background_compiles_waiting(cache_dir: &Path) -> usize {
    let Ok(engines) = std::fs::read_dir(cache_dir) else {
        return 0;
    };
    engines
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wasmedge-"))
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pending-"))
        .count()
}

/// Waits until no background compile waits in the cache, and says how
/// long that took.
fn wait_for_background_compiles(cache_dir: &Path) -> Result<f64> {
    let t0 = Instant::now();
    // O2 of a 1 MB module takes about a minute on two cores; ten is a
    // helper that hangs.
    let deadline = t0 + Duration::from_secs(600);
    while background_compiles_waiting(cache_dir) > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "background compiles still wait in {} after 10 minutes",
            cache_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(t0.elapsed().as_secs_f64() * 1000.0)
}

/// The runs of one handler and program.
#[derive(Default, Clone)]
struct Runs {
    first: Vec<PodTiming>,
    second: Vec<PodTiming>,
    background_compile_ms: Vec<f64>,
}

pub fn run(
    cri: &mut Cri,
    handlers: &[String],
    n: usize,
    cache_dir: &Path,
    log_root: &Path,
) -> Result<Vec<AotResult>> {
    let programs = [Program::Compute, Program::Sqlite];
    let progress = crate::progress(
        n * handlers.len() * programs.len() * 2,
        "first and second starts",
    );
    let mut results = Vec::new();
    for program in programs {
        let mut runs: Vec<Runs> = vec![Runs::default(); handlers.len()];
        for round in 0..n {
            for (index, handler) in handlers.iter().enumerate() {
                empty_module_cache(cache_dir)?;
                let runs = &mut runs[index];
                for attempt in 0..2 {
                    let name =
                        format!("aot-{program:?}-{handler}-{round}-{attempt}").to_lowercase();
                    let (pod, timing) =
                        pod_run::start(cri, handler, &workload(handler, program), &name, log_root)?;
                    pod_run::remove(cri, &pod)?;
                    if attempt == 0 {
                        runs.first.push(timing);
                        runs.background_compile_ms
                            .push(wait_for_background_compiles(cache_dir)?);
                    } else {
                        runs.second.push(timing);
                    }
                    progress.inc(1);
                }
            }
        }
        results.extend(
            handlers
                .iter()
                .zip(runs)
                .map(|(handler, runs)| summarize_runs(handler, program, runs)),
        );
    }
    progress.finish_and_clear();
    Ok(results)
}

fn summarize_runs(handler: &str, program: Program, runs: Runs) -> AotResult {
    let Runs {
        first,
        second,
        background_compile_ms,
    } = runs;
    let first_container = summarize(&first.iter().map(container_ms).collect::<Vec<_>>());
    let second_container = summarize(&second.iter().map(container_ms).collect::<Vec<_>>());
    let first_start = summarize(&first.iter().map(|t| t.start_ms).collect::<Vec<_>>());
    let second_start = summarize(&second.iter().map(|t| t.start_ms).collect::<Vec<_>>());
    AotResult {
        handler: handler.to_string(),
        program,
        speedup_p50: first_container.p50 / second_container.p50,
        start_speedup_p50: first_start.p50 / second_start.p50,
        background_compile_ms: summarize(&background_compile_ms),
        first_start,
        second_start,
        first,
        second,
        first_container,
        second_container,
    }
}
