//! Pods through CRI, as kubelet drives them: the steps the CRI tests share.

use std::path::Path;
use std::time::Duration;

use edgeshim_cri::api::PodSandboxConfig;
use edgeshim_cri::{ContainerSpec, Cri, PodConfig};

use crate::*;

/// The CRI runtime handler of the engine under test.
pub fn handler() -> &'static str {
    engine().name
}
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn cri() -> Cri {
    images();
    let mut cri = Cri::connect(Path::new(&address())).expect("CRI connection");
    // The CRI plugin learns of imported images from containerd's events.
    await_condition("CRI to see the images", LIMIT, || {
        [SANDBOX_IMAGE, PROBE_IMAGE, PAUSE_IMAGE]
            .iter()
            .all(|image| cri.image_status(image).is_ok_and(|id| id.is_some()))
    });
    cri
}

pub fn pod(name: &str, uid: &str, host_network: bool, logs: &Path) -> PodSandboxConfig {
    pod_config(name, uid, host_network, logs).to_cri()
}

pub fn pod_config(name: &str, uid: &str, host_network: bool, logs: &Path) -> PodConfig {
    PodConfig {
        name: name.into(),
        namespace: "default".into(),
        uid: uid.into(),
        host_network,
        log_directory: logs.display().to_string(),
        cgroup_parent: String::new(),
        annotations: Vec::new(),
    }
}

/// StopPodSandbox + RemovePodSandbox, then nothing of the pod may be left.
pub fn remove_pod(cri: &mut Cri, pod_id: &str, containers: &[&String]) {
    cri.stop_pod(pod_id).expect("StopPodSandbox");
    cri.remove_pod(pod_id).expect("RemovePodSandbox");
    assert_no_leftovers_in(CRI_NAMESPACE, pod_id);
    for id in containers {
        assert_no_leftovers_in(CRI_NAMESPACE, id);
    }
}

/// The probe module as a container named `name`, logging to `<name>.log`.
pub fn container(name: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: PROBE_IMAGE.into(),
        command: vec!["/probe.wasm".into()],
        args: args.iter().map(|a| a.to_string()).collect(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// The native memory hog touching `mib` MiB under a 32 MiB limit: the
/// kernel's OOM killer ends it (137, OOMKilled).
pub fn hog(mib: u32) -> ContainerSpec {
    ContainerSpec {
        name: "hog".into(),
        image: PAUSE_IMAGE.into(),
        command: vec!["/hog".into()],
        args: vec![mib.to_string()],
        log_path: "hog.log".into(),
        memory_limit_bytes: 32 << 20,
        ..Default::default()
    }
}

/// Creates and starts `spec` in the pod, waits for it to exit; returns its
/// id, final status and CRI log.
pub fn run_to_exit(
    cri: &mut Cri,
    pod_id: &str,
    pod: &PodSandboxConfig,
    spec: &ContainerSpec,
    logs: &Path,
) -> (String, edgeshim_cri::api::ContainerStatus, String) {
    let id = cri
        .create_container(pod_id, &spec.to_cri(), pod)
        .expect("CreateContainer");
    cri.start_container(&id).expect("StartContainer");
    let status = wait_exited(cri, &id);
    let log = std::fs::read_to_string(logs.join(&spec.log_path)).expect("log file");
    (id, status, log)
}

pub fn wait_exited(cri: &mut Cri, id: &str) -> edgeshim_cri::api::ContainerStatus {
    let mut last = None;
    await_condition("container to exit", LIMIT, || {
        let status = cri.container_status(id).expect("status");
        let exited = edgeshim_cri::state_name(status.state) == "Exited";
        last = Some(status);
        exited
    });
    last.expect("status")
}

/// Runs the hello module in the pod and asserts it completed; returns its
/// id and CRI log.
pub fn run_hello(
    cri: &mut Cri,
    pod_id: &str,
    pod: &PodSandboxConfig,
    logs: &Path,
) -> (String, String) {
    let (id, status, log) = run_to_exit(cri, pod_id, pod, &container("hello", &["hello"]), logs);
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (0, "Completed"),
        "{log}"
    );
    (id, log)
}

/// The pod's IP as CRI reports it (empty for none).
pub fn pod_ip(cri: &mut Cri, pod_id: &str) -> String {
    cri.pod_status(pod_id)
        .expect("PodSandboxStatus")
        .network
        .map(|n| n.ip)
        .unwrap_or_default()
}
