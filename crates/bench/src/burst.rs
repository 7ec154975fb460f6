//! Scenario 2: N pods started at once, each from its own CRI connection (as
//! many kubelet workers would); the time until every pod has produced
//! output, and each pod's own start latency.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::{Context, Result};
use edgeshim_cri::Cri;
use serde::Serialize;

use crate::images::{Program, workload};
use crate::pod_run::{self, PodTiming};
use crate::stats::{Summary, summarize};
use crate::variant::Variant;

#[derive(Debug, Serialize)]
pub struct BurstResult {
    pub variant: String,
    pub pods: usize,
    /// From the common start to the last pod's first output.
    pub all_done_ms: f64,
    pub per_pod: Summary,
    pub failures: usize,
}

pub fn run(
    address: &Path,
    variants: &[Variant],
    program: Program,
    n: usize,
    log_root: &Path,
) -> Result<Vec<BurstResult>> {
    let mut results = Vec::new();
    for variant in variants {
        variant.apply()?;
        let barrier = Arc::new(Barrier::new(n + 1));
        let mut workers = Vec::new();
        for index in 0..n {
            let barrier = barrier.clone();
            let address = address.to_path_buf();
            let log_root = log_root.to_path_buf();
            let handler = variant.handler.clone();
            let name = format!("burst-{}-{index}", variant.slug());
            workers.push(std::thread::spawn(
                move || -> Result<(PodTiming, Instant, Cri, pod_run::RunningPod)> {
                    let mut cri = Cri::connect(&address).context("CRI connection")?;
                    barrier.wait();
                    let (pod, timing) = pod_run::start(
                        &mut cri,
                        &handler,
                        &workload(&handler, program),
                        &name,
                        &log_root,
                    )?;
                    Ok((timing, Instant::now(), cri, pod))
                },
            ));
        }
        barrier.wait();
        let start = Instant::now();
        let mut timings = Vec::new();
        let mut last = start;
        let mut failures = 0;
        let mut started = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(Ok((timing, done, cri, pod))) => {
                    last = last.max(done);
                    timings.push(timing.total_ms);
                    started.push((cri, pod));
                }
                Ok(Err(e)) => {
                    eprintln!("burst: {e:#}");
                    failures += 1;
                }
                Err(_) => failures += 1,
            }
        }
        for (mut cri, pod) in started {
            pod_run::remove(&mut cri, &pod)?;
        }
        results.push(BurstResult {
            variant: variant.label(),
            pods: n,
            all_done_ms: last.duration_since(start).as_secs_f64() * 1e3,
            per_pod: summarize(&timings),
            failures,
        });
    }
    Ok(results)
}
