//! `edgeshim_running_containers{runtime}`: the Wasm containers of the
//! node's live shims, read at each scrape from what the node has (no shim
//! reports it, so a SIGKILLed shim cannot leave a count behind).
//!
//! A container counts when, under the shims' state root
//! (`/run/edgeshim/<namespace>/<id>/state.json`, or `process.json` for a
//! container made on the direct launch path):
//! - its process is alive and its executable is a shim binary
//!   (`containerd-shim-<runtime>-v1`): a Wasm container is a clone of its
//!   shim's launcher, where a native one (a pod's pause) executed its own;
//! - and its shim is alive: walking up its parents reaches a shim process
//!   that is not a launcher (`--edgeshim-launcher`). A shim that was killed
//!   leaves its containers orphaned until containerd cleans up; they are
//!   not the node's running workload any more.

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Deserialize;

use crate::events::RuntimeLabels;

/// The shims' state root (edgeshim-shim's `STATE_ROOT`).
pub const STATE_ROOT: &str = "/run/edgeshim";
/// A container's state file: libcontainer's, or the direct launch path's
/// record (edgeshim-isolation's `wasm_process::record`); both hold `pid`.
const STATE_FILES: &[&str] = &["state.json", "process.json"];
/// Parents walked before giving up (a container is a child or grandchild
/// of its shim).
const MAX_ANCESTORS: usize = 8;
/// State folders read per scrape, at most: a bound on the work a scrape
/// can be made to do.
const MAX_CONTAINERS: usize = 100_000;

#[derive(Debug)]
pub struct RunningContainers {
    state_root: PathBuf,
    proc_root: PathBuf,
}

#[derive(Deserialize)]
struct State {
    pid: Option<u32>,
}

impl RunningContainers {
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self::with_proc(state_root, "/proc")
    }

    /// As [`Self::new`], reading processes from `proc_root` (tests).
    pub fn with_proc(state_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
            proc_root: proc_root.into(),
        }
    }

    /// Running Wasm containers by runtime, sorted.
    pub fn count(&self) -> Vec<(String, i64)> {
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for runtime in self.pids().filter_map(|pid| self.runtime_of_live(pid)) {
            *counts.entry(runtime).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// The container pids the state folders name.
    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        let namespaces = std::fs::read_dir(&self.state_root).into_iter().flatten();
        namespaces
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten())
            .flatten()
            .take(MAX_CONTAINERS)
            .filter_map(|c| {
                let text = STATE_FILES
                    .iter()
                    .find_map(|name| std::fs::read(c.path().join(name)).ok())?;
                serde_json::from_slice::<State>(&text).ok()?.pid
            })
            .filter(|pid| *pid > 1)
    }

    /// The runtime of container process `pid`, when it is a live Wasm
    /// container whose shim is alive.
    fn runtime_of_live(&self, pid: u32) -> Option<String> {
        let runtime = shim_runtime(&self.exe(pid)?)?;
        let mut current = pid;
        for _ in 0..MAX_ANCESTORS {
            current = self.parent(current)?;
            if current <= 1 {
                return None;
            }
            let exe = self.exe(current)?;
            if shim_runtime(&exe).is_some() && !self.is_launcher(current) {
                return Some(runtime);
            }
        }
        None
    }

    fn exe(&self, pid: u32) -> Option<PathBuf> {
        std::fs::read_link(self.proc_root.join(pid.to_string()).join("exe")).ok()
    }

    fn parent(&self, pid: u32) -> Option<u32> {
        let stat =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")).ok()?;
        // After the command's closing parenthesis: state, then ppid.
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    fn is_launcher(&self, pid: u32) -> bool {
        std::fs::read(self.proc_root.join(pid.to_string()).join("cmdline"))
            .map(|cmdline| {
                cmdline
                    .split(|b| *b == 0)
                    .any(|word| word == b"--edgeshim-launcher")
            })
            .unwrap_or(false)
    }
}

/// `wasmtime` for `/usr/local/bin/containerd-shim-wasmtime-v1`; `None` for
/// any executable that is not a shim's.
fn shim_runtime(exe: &Path) -> Option<String> {
    let name = exe.file_name()?.to_str()?;
    let runtime = name.strip_prefix("containerd-shim-")?.strip_suffix("-v1")?;
    (!runtime.is_empty()).then(|| runtime.to_string())
}

impl Collector for RunningContainers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "edgeshim_running_containers",
            "Running Wasm containers of the node's live shims, by runtime",
            None,
            MetricType::Gauge,
        )?;
        for (runtime, count) in self.count() {
            let labels = RuntimeLabels { runtime };
            ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
