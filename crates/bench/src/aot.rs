//! Scenario 6: what the compiled-module cache buys. For each handler, a pod
//! runs the compute-heavy module with the shim's module cache emptied (the
//! first start compiles), then again (the second start loads the cached
//! native code); repeated, handlers interleaved. The time that counts is
//! the container's: CreateContainer to its one line of output, which the
//! module prints when its work is done; and StartContainer alone, the
//! start proper (the module's own run comes after it).

use std::path::Path;

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

pub fn run(
    cri: &mut Cri,
    handlers: &[String],
    n: usize,
    cache_dir: &Path,
    log_root: &Path,
) -> Result<Vec<AotResult>> {
    let program = Program::Compute;
    let progress = crate::progress(n * handlers.len() * 2, "first and second starts");
    let mut runs: Vec<(Vec<PodTiming>, Vec<PodTiming>)> = vec![Default::default(); handlers.len()];
    for round in 0..n {
        for (index, handler) in handlers.iter().enumerate() {
            empty_module_cache(cache_dir)?;
            let (first, second) = &mut runs[index];
            for (attempt, timings) in [first, second].into_iter().enumerate() {
                let name = format!("aot-{handler}-{round}-{attempt}");
                let (pod, timing) =
                    pod_run::start(cri, handler, &workload(handler, program), &name, log_root)?;
                pod_run::remove(cri, &pod)?;
                timings.push(timing);
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    Ok(handlers
        .iter()
        .zip(runs)
        .map(|(handler, (first, second))| {
            let first_container = summarize(&first.iter().map(container_ms).collect::<Vec<_>>());
            let second_container = summarize(&second.iter().map(container_ms).collect::<Vec<_>>());
            let first_start = summarize(&first.iter().map(|t| t.start_ms).collect::<Vec<_>>());
            let second_start = summarize(&second.iter().map(|t| t.start_ms).collect::<Vec<_>>());
            AotResult {
                handler: handler.clone(),
                program,
                speedup_p50: first_container.p50 / second_container.p50,
                start_speedup_p50: first_start.p50 / second_start.p50,
                first_start,
                second_start,
                first,
                second,
                first_container,
                second_container,
            }
        })
        .collect())
}
