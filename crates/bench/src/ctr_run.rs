//! Scenario `ctr`: `ctr run --rm` of a hello program, as a new user tries a
//! runtime first, timed from the command's start to its exit (the CLI's
//! own start, the container's create, start, output, exit and removal),
//! handlers interleaved A B A B.
//!
//! A handler `h` is the runtime `io.containerd.h.v1` (the shim binary
//! `containerd-shim-h-v1`; `hack/containerd.sh` links peer shims under
//! such names), except `runc`, which is `io.containerd.runc.v2` running
//! busybox. The images are the CRI scenarios' (namespace `k8s.io`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::images::{Program, workload};
use crate::stats::{Summary, summarize};

#[derive(Debug, Serialize)]
pub struct CtrRunResult {
    pub handler: String,
    pub runtime: String,
    pub runs_ms: Vec<f64>,
    pub total: Summary,
}

/// The containerd runtime name a handler stands for.
pub fn runtime_of(handler: &str) -> String {
    match handler {
        "runc" => "io.containerd.runc.v2".into(),
        other => format!("io.containerd.{other}.v1"),
    }
}

/// What the hello program prints under `handler` (checked on every run, so
/// a run that failed quietly is not timed as a success).
fn expected_output(handler: &str) -> &'static str {
    if handler == "runc" {
        "hello from busybox"
    } else {
        "hello"
    }
}

pub fn run(address: &Path, handlers: &[String], n: usize) -> Result<Vec<CtrRunResult>> {
    let progress = crate::progress(n * handlers.len(), "ctr run --rm");
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); handlers.len()];
    for round in 0..n {
        for (index, handler) in handlers.iter().enumerate() {
            let id = format!("ctr-run-{handler}-{}-{round}", std::process::id());
            runs[index].push(one_run(address, handler, &id)?);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    Ok(handlers
        .iter()
        .zip(runs)
        .map(|(handler, runs_ms)| CtrRunResult {
            handler: handler.clone(),
            runtime: runtime_of(handler),
            total: summarize(&runs_ms),
            runs_ms,
        })
        .collect())
}

/// One `ctr run --rm`, in ms; an error names the handler and what ctr said.
fn one_run(address: &Path, handler: &str, id: &str) -> Result<f64> {
    let work = workload(handler, Program::Hello);
    let start = Instant::now();
    let output = Command::new("ctr")
        .arg("--address")
        .arg(address)
        .args(["--namespace", "k8s.io", "run", "--rm", "--runtime"])
        .arg(runtime_of(handler))
        .arg(work.image)
        .arg(id)
        .args(&work.command)
        .output()
        .context("running ctr")?;
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains(expected_output(handler)) {
        bail!(
            "ctr run --rm ({handler}, {id}): {}; stdout {stdout:?}; stderr {:?}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}
