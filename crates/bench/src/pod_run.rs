//! One pod as kubelet runs it: RunPodSandbox, CreateContainer,
//! StartContainer, the container's first output in its CRI log, then
//! StopPodSandbox and RemovePodSandbox; each step timed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeshim_cri::api::PodSandboxConfig;
use edgeshim_cri::{ContainerSpec, Cri, PodConfig};
use serde::Serialize;

use crate::images::Workload;

/// Milliseconds per step of one pod start.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PodTiming {
    pub sandbox_ms: f64,
    pub create_ms: f64,
    pub start_ms: f64,
    /// From StartContainer's return to the first line in the log.
    pub first_output_ms: f64,
    /// From RunPodSandbox's call to the first line in the log.
    pub total_ms: f64,
}

/// A started pod: what is needed to add containers to it and remove it.
pub struct RunningPod {
    pub pod_id: String,
    pub container_id: String,
    pub log_dir: PathBuf,
    pub config: PodSandboxConfig,
}

/// How long to wait for a container's first output before calling the run
/// failed (a guard, not a measurement).
const OUTPUT_LIMIT: Duration = Duration::from_secs(60);

fn millis(from: Instant, to: Instant) -> f64 {
    to.duration_since(from).as_secs_f64() * 1e3
}

/// The pod name [`start`] gives pod `name`: unique per bench process, as a
/// failed earlier run may leave its pods.
pub fn unique_name(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Pod `name` in the bench's namespace, logging to `log_dir`, on the
/// node's network or (`host_network` false) one of its own.
pub fn pod_config(name: &str, log_dir: &Path, host_network: bool) -> PodSandboxConfig {
    PodConfig {
        name: name.into(),
        namespace: "bench".into(),
        uid: format!("uid-{name}"),
        host_network,
        log_directory: log_dir.display().to_string(),
        cgroup_parent: String::new(),
        annotations: Vec::new(),
    }
    .to_cri()
}

/// Starts pod `name` with one container running `workload` under
/// `handler`, and waits for its first output.
pub fn start(
    cri: &mut Cri,
    handler: &str,
    workload: &Workload,
    name: &str,
    log_root: &Path,
) -> Result<(RunningPod, PodTiming)> {
    let name = &unique_name(name);
    let log_dir = log_root.join(name);
    std::fs::create_dir_all(&log_dir)?;
    let pod = pod_config(name, &log_dir, true);
    let t0 = Instant::now();
    let pod_id = cri.run_pod(&pod, handler).context("RunPodSandbox")?;
    let t1 = Instant::now();
    let container_id = cri
        .create_container(&pod_id, &spec(workload, "main").to_cri(), &pod)
        .context("CreateContainer")?;
    let t2 = Instant::now();
    cri.start_container(&container_id)
        .context("StartContainer")?;
    let t3 = Instant::now();
    let log = log_dir.join("main.log");
    let t4 = loop {
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            break Instant::now();
        }
        if t3.elapsed() > OUTPUT_LIMIT {
            bail!("pod {name}: no output in {}", log.display());
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let timing = PodTiming {
        sandbox_ms: millis(t0, t1),
        create_ms: millis(t1, t2),
        start_ms: millis(t2, t3),
        first_output_ms: millis(t3, t4),
        total_ms: millis(t0, t4),
    };
    Ok((
        RunningPod {
            pod_id,
            container_id,
            log_dir,
            config: pod,
        },
        timing,
    ))
}

/// Creates and starts container `name` in the pod and waits for its first
/// output; returns its id and when it was created, started and spoke.
fn container(
    cri: &mut Cri,
    pod_id: &str,
    pod: &PodSandboxConfig,
    workload: &Workload,
    name: &str,
    log_dir: &Path,
) -> Result<(String, [Instant; 3])> {
    let id = cri
        .create_container(pod_id, &spec(workload, name).to_cri(), pod)
        .context("CreateContainer")?;
    let created = Instant::now();
    cri.start_container(&id).context("StartContainer")?;
    let started = Instant::now();
    let log = log_dir.join(format!("{name}.log"));
    loop {
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            return Ok((id, [created, started, Instant::now()]));
        }
        if started.elapsed() > OUTPUT_LIMIT {
            bail!("container {name}: no output in {}", log.display());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Container `name` running `workload`, logging to `<name>.log` in its
/// pod's log folder.
pub fn spec(workload: &Workload, name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: workload.image.into(),
        command: workload.command.clone(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// One more container in a running pod (density with several per pod).
pub fn add(cri: &mut Cri, pod: &RunningPod, workload: &Workload, name: &str) -> Result<String> {
    container(cri, &pod.pod_id, &pod.config, workload, name, &pod.log_dir).map(|(id, _)| id)
}

/// StopPodSandbox + RemovePodSandbox, and the pod's log folder.
pub fn remove(cri: &mut Cri, pod: &RunningPod) -> Result<()> {
    cri.stop_pod(&pod.pod_id).context("StopPodSandbox")?;
    cri.remove_pod(&pod.pod_id).context("RemovePodSandbox")?;
    let _ = std::fs::remove_dir_all(&pod.log_dir);
    Ok(())
}
