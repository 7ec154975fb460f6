//! Scenario 3: long-running (sleeping) containers started one after another
//! up to a target count, memory read at every step; at the end every
//! container must still be running.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use edgeshim_cri::Cri;
use serde::Serialize;

use crate::breakdown::{self, RoleMemory};
use crate::images::{Program, workload};
use crate::memory;
use crate::pod_run;
use crate::variant::Variant;

#[derive(Debug, Clone, Serialize)]
pub struct DensityPoint {
    pub containers: usize,
    /// Mean time to start one pod during the last step.
    pub ms_per_container: f64,
    pub pss_kb: u64,
    pub pss_kb_per_container: f64,
    pub node_used_kb_per_container: f64,
    pub cgroup_kb_per_container: f64,
    /// containerd's descriptors above its count before the run, per
    /// container, by kind (socket, pipe, fifo, file, ...): what containerd
    /// holds for each, which its open-file limit divides.
    pub containerd_fds_per_container: BTreeMap<String, f64>,
    /// The node memory per container by where it went: the shims' and
    /// their processes' PSS, containerd's own PSS growth, each kernel part
    /// of [`memory::node_parts_kb`], and the rest (what none of them
    /// names; negative when the parts overlap or the node gave memory back).
    pub node_kb_per_container_by_part: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
pub struct DensityResult {
    pub variant: String,
    /// Containers per pod (kubelet's usual is 1; each pod is one shim).
    pub per_pod: usize,
    pub target: usize,
    pub reached: usize,
    pub running_at_end: usize,
    pub points: Vec<DensityPoint>,
    /// Every process under the shims by role at the last point, once the
    /// idle launchers have stopped: where the memory goes.
    pub breakdown: Vec<RoleMemory>,
    pub error: Option<String>,
}

/// How a density run is made.
pub struct Shape {
    /// Containers to reach.
    pub target: usize,
    /// Containers between two memory readings.
    pub step: usize,
    pub per_pod: usize,
    /// Drop the kernel's clean caches before each node-memory reading.
    pub drop_caches: bool,
    /// containerd's pid, for its descriptor counts.
    pub containerd: Option<u32>,
}

pub fn run(
    cri: &mut Cri,
    variant: &Variant,
    shape: &Shape,
    log_root: &Path,
) -> Result<DensityResult> {
    let Shape {
        target,
        step,
        per_pod,
        drop_caches,
        containerd,
    } = *shape;
    variant.apply()?;
    let sleeper = workload(&variant.handler, Program::Sleep);
    if drop_caches {
        memory::drop_caches();
    }
    let baseline = memory::sample();
    let baseline_pss = baseline.pss_kb;
    let baseline_cgroup = memory::cri_cgroup_bytes();
    let baseline_fds = containerd.map(descriptor_kinds).unwrap_or_default();
    let baseline_parts = memory::node_parts_kb();
    let baseline_containerd = containerd.and_then(memory::process_pss_kb);
    let progress = crate::progress(target, "density ramp");
    let mut pods: Vec<pod_run::RunningPod> = Vec::new();
    let mut containers = Vec::new();
    let mut points = Vec::new();
    let mut error = None;
    let mut roles = Vec::new();
    let mut step_start = Instant::now();
    while containers.len() < target {
        let index = containers.len();
        let started = match pods.last() {
            Some(pod) if index % per_pod != 0 => {
                let name = format!("sleeper-{index}");
                pod_run::add(cri, pod, &sleeper, &name).map(|id| (None, id))
            }
            _ => {
                let name = format!("density-{}-{}", variant.slug(), index);
                pod_run::start(cri, &variant.handler, &sleeper, &name, log_root).map(|(pod, _)| {
                    let id = pod.container_id.clone();
                    (Some(pod), id)
                })
            }
        };
        match started {
            Ok((pod, id)) => {
                pods.extend(pod);
                containers.push(id);
            }
            Err(e) => {
                error = Some(format!("after {index} containers: {e:#}"));
                break;
            }
        }
        progress.inc(1);
        if containers.len() % step == 0 || containers.len() == target {
            let count = containers.len();
            let in_step = (count - 1) % step + 1;
            let ms_per_container = step_start.elapsed().as_secs_f64() * 1e3 / in_step as f64;
            // The last point is the steady state: the shims have stopped
            // their idle launchers (within seconds of the last create).
            if count == target {
                let left = memory::await_idle_launchers(std::time::Duration::from_secs(30));
                if left > 0 {
                    eprintln!("density: {left} launchers still running at the last sample");
                }
                roles = breakdown::by_role();
            }
            if drop_caches {
                memory::drop_caches();
            }
            let now = memory::sample();
            let pss = now.pss_kb.saturating_sub(baseline_pss);
            let cgroup = memory::cri_cgroup_bytes().saturating_sub(baseline_cgroup) / 1024;
            let node_used_kb = baseline
                .node_available_kb
                .saturating_sub(now.node_available_kb) as f64;
            let by_part = node_parts(
                count,
                node_used_kb,
                pss,
                containerd
                    .and_then(memory::process_pss_kb)
                    .zip(baseline_containerd),
                &baseline_parts,
                &memory::node_parts_kb(),
            );
            points.push(DensityPoint {
                containers: count,
                ms_per_container,
                pss_kb: pss,
                pss_kb_per_container: pss as f64 / count as f64,
                node_used_kb_per_container: node_used_kb / count as f64,
                cgroup_kb_per_container: cgroup as f64 / count as f64,
                containerd_fds_per_container: containerd
                    .map(descriptor_kinds)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(kind, n)| {
                        let before = baseline_fds.get(&kind).copied().unwrap_or(0);
                        (kind, (n as f64 - before as f64) / count as f64)
                    })
                    .filter(|(_, per)| *per != 0.0)
                    .collect(),
                node_kb_per_container_by_part: by_part,
            });
            step_start = Instant::now();
        }
    }
    progress.finish_and_clear();
    let running_at_end = containers
        .iter()
        .filter(|id| {
            cri.container_status(id)
                .is_ok_and(|s| edgeshim_cri::state_name(s.state) == "Running")
        })
        .count();
    let reached = containers.len();
    let cleanup = crate::progress(pods.len(), "removing pods");
    for pod in &pods {
        pod_run::remove(cri, pod)?;
        cleanup.inc(1);
    }
    cleanup.finish_and_clear();
    Ok(DensityResult {
        variant: variant.label(),
        per_pod,
        target,
        reached,
        running_at_end,
        points,
        breakdown: roles,
        error,
    })
}

/// Node memory used (`node_used_kb`, from MemAvailable) split by part,
/// each per container: the processes' PSS (`pss_kb`), containerd's PSS
/// growth (`(now, before)`), each kernel part's growth, and the rest.
fn node_parts(
    count: usize,
    node_used_kb: f64,
    pss_kb: u64,
    containerd: Option<(u64, u64)>,
    before: &[(&'static str, u64)],
    now: &[(&'static str, u64)],
) -> BTreeMap<String, f64> {
    let mut parts = BTreeMap::new();
    parts.insert("shims and their processes (PSS)".to_string(), pss_kb as f64);
    if let Some((now, before)) = containerd {
        parts.insert("containerd (PSS)".to_string(), now as f64 - before as f64);
    }
    for (name, kb) in now {
        if let Some((_, was)) = before.iter().find(|(n, _)| n == name) {
            parts.insert(name.to_string(), *kb as f64 - *was as f64);
        }
    }
    let named: f64 = parts.values().sum();
    parts.insert("rest".to_string(), node_used_kb - named);
    parts
        .into_iter()
        .map(|(name, kb)| (name, kb / count as f64))
        .collect()
}

/// `pid`'s descriptors counted by kind: `socket`, `pipe`, `anon_inode:[x]`,
/// and for paths `fifo`, `file`, `dir` or `other` (by the file's type).
fn descriptor_kinds(pid: u32) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let text = target.display().to_string();
        let kind = if text.starts_with("socket:") {
            "socket".to_string()
        } else if text.starts_with("pipe:") {
            "pipe".to_string()
        } else if text.starts_with("anon_inode:") {
            text
        } else {
            match std::fs::metadata(fd.path()).map(|m| m.file_type()) {
                Ok(t) if t.is_fifo() => "fifo".into(),
                Ok(t) if t.is_file() => "file".into(),
                Ok(t) if t.is_dir() => "dir".into(),
                _ => "other".into(),
            }
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_node_memory_parts_add_up_to_what_the_node_lost() {
        let parts = node_parts(
            2,
            1000.0,
            400,
            Some((300, 100)),
            &[("slab unreclaimable", 100), ("page tables", 50)],
            &[("slab unreclaimable", 300), ("page tables", 40)],
        );
        assert_eq!(parts["shims and their processes (PSS)"], 200.0);
        assert_eq!(parts["containerd (PSS)"], 100.0);
        assert_eq!(parts["slab unreclaimable"], 100.0);
        // A part that shrank counts as given back.
        assert_eq!(parts["page tables"], -5.0);
        assert_eq!(parts["rest"], 105.0);
        assert_eq!(parts.values().sum::<f64>(), 500.0);
    }

    #[test]
    fn test_without_containerd_its_part_is_left_out_not_zero() {
        let parts = node_parts(1, 10.0, 4, None, &[], &[]);
        assert!(!parts.contains_key("containerd (PSS)"));
        assert_eq!(parts["rest"], 6.0);
    }
}
