//! containerd stopped and started again while Wasm containers run (an edge
//! node's containerd upgraded or crashed): the containers keep running, the
//! restarted containerd finds them through their shims, exits that
//! happened while it was down are reported, and stop and remove work.
//!
//! A test binary of its own: it restarts the containerd every test shares.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgeshim_cri::Cri;
use edgeshim_integration::pods::*;
use edgeshim_integration::*;

const PODS: usize = 5;
const PER_POD: usize = 4;

/// The private containerd's folder (where hack/containerd.sh keeps its
/// socket and pid file).
fn containerd_home() -> PathBuf {
    Path::new(&address())
        .parent()
        .expect("the socket's folder")
        .to_path_buf()
}

fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        signal,
    )
    .expect("kill");
}

#[test]
fn test_containers_outlive_a_containerd_restart_and_exits_meanwhile_are_reported() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let mut pods = Vec::new();
    let mut running = Vec::new();
    for p in 0..PODS {
        let config = pod(
            &format!("restart-{p}"),
            &format!("uid-restart-{p}"),
            true,
            logs.path(),
        );
        let pod_id = cri.run_pod(&config, handler()).expect("RunPodSandbox");
        for c in 0..PER_POD {
            let spec = container(&format!("r{p}-{c}"), &["sleep", "1000000"]);
            let id = cri
                .create_container(&pod_id, &spec.to_cri(), &config)
                .expect("CreateContainer");
            cri.start_container(&id).expect("StartContainer");
            running.push(id);
        }
        pods.push(pod_id);
    }
    for id in &running {
        await_condition("the containers to run", LIMIT, || {
            cri.container_status(id)
                .is_ok_and(|s| edgeshim_cri::state_name(s.state) == "Running")
        });
    }
    let pids: Vec<u32> = running
        .iter()
        .map(|id| task_pid_in(CRI_NAMESPACE, id))
        .collect();
    drop(cri);

    // containerd goes; its shims and their containers stay.
    let home = containerd_home();
    let pid: u32 = std::fs::read_to_string(home.join("containerd.pid"))
        .expect("containerd's pid file")
        .trim()
        .parse()
        .expect("a pid");
    kill(pid, nix::sys::signal::Signal::SIGTERM);
    await_condition("containerd to stop", LIMIT, || !process_alive(pid));
    for pid in &pids {
        assert!(process_alive(*pid), "a container died with containerd");
    }
    // Two containers end while containerd is away.
    let ended = [0, PER_POD + 1];
    for index in ended {
        kill(pids[index], nix::sys::signal::Signal::SIGKILL);
    }
    for index in ended {
        await_condition("the killed containers to go", LIMIT, || {
            !process_alive(pids[index])
        });
    }

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(repo.join("hack/containerd.sh"))
        .arg("start")
        .env("EDGESHIM_HOME", &home)
        .status()
        .expect("hack/containerd.sh start");
    assert!(status.success(), "containerd did not start again");
    // The CRI plugin serves a moment after containerd's own API.
    let mut connected = None;
    await_condition("CRI after the restart", LIMIT, || {
        connected = Cri::connect(Path::new(&address()))
            .ok()
            .and_then(|mut cri| cri.list_containers().is_ok().then_some(cri));
        connected.is_some()
    });
    let mut cri = connected.expect("CRI after the restart");

    for (index, id) in running.iter().enumerate() {
        if ended.contains(&index) {
            // The exit the shim kept for containerd reached it.
            let status = wait_exited(&mut cri, id);
            assert_eq!(status.exit_code, 137, "{id}");
        } else {
            let status = cri.container_status(id).expect("status after the restart");
            assert_eq!(edgeshim_cri::state_name(status.state), "Running", "{id}");
            cri.container_stats(id).expect("stats after the restart");
            // Exec is refused by the shim, as before the restart.
            let exec = cri.exec_sync(id, &["/probe.wasm", "hello"]);
            let said = format!("{:#}", exec.expect_err("exec into a Wasm container"));
            assert!(said.contains("exec"), "{said}");
            assert!(process_alive(pids[index]));
        }
    }
    for id in &running {
        cri.stop_container(id, 5)
            .expect("StopContainer after the restart");
        cri.remove_container(id)
            .expect("RemoveContainer after the restart");
    }
    for pod_id in &pods {
        remove_pod(&mut cri, pod_id, &[]);
    }
    for id in &running {
        assert_no_leftovers_in(CRI_NAMESPACE, id);
    }
}
