//! Faults around running containers, through CRI against the real
//! containerd: a container's process killed from outside, and many creates
//! and starts at once in one pod's shim. Each ends with nothing left.

use std::sync::{Arc, Barrier};

use edgeshim_cri::Cri;
use edgeshim_integration::pods::*;
use edgeshim_integration::*;

#[test]
fn test_a_container_killed_from_outside_reports_137_and_its_pod_serves_on() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod("fault-sigkill", "uid-fault-sigkill", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let id = cri
        .create_container(
            &pod_id,
            &container("sleeper", &["sleep", "1000000"]).to_cri(),
            &pod,
        )
        .expect("CreateContainer");
    cri.start_container(&id).expect("StartContainer");
    await_condition("the container to run", LIMIT, || {
        cri.container_status(&id)
            .is_ok_and(|s| edgeshim_cri::state_name(s.state) == "Running")
    });
    // Not through containerd or the shim: the node's own kill.
    let pid = task_pid_in(CRI_NAMESPACE, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let status = wait_exited(&mut cri, &id);
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "Error"));
    // The pod's shim serves its next container.
    let (hello, _) = run_hello(&mut cri, &pod_id, &pod, logs.path());
    remove_pod(&mut cri, &pod_id, &[&id, &hello]);
}

/// Containers created and started at once in one pod.
const AT_ONCE: usize = 100;

#[test]
fn test_a_hundred_creates_and_starts_at_once_in_one_pod_all_run_and_leave_nothing() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod("fault-at-once", "uid-fault-at-once", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let barrier = Arc::new(Barrier::new(AT_ONCE));
    let workers: Vec<_> = (0..AT_ONCE)
        .map(|index| {
            let barrier = barrier.clone();
            let (pod_id, pod) = (pod_id.clone(), pod.clone());
            std::thread::spawn(move || {
                // A connection each, as kubelet's workers would have.
                let mut cri = Cri::connect(std::path::Path::new(&address())).expect("CRI");
                let spec = container(&format!("c{index}"), &["args", &index.to_string()]);
                barrier.wait();
                let id = cri
                    .create_container(&pod_id, &spec.to_cri(), &pod)
                    .expect("CreateContainer");
                cri.start_container(&id).expect("StartContainer");
                (index, id)
            })
        })
        .collect();
    let started: Vec<(usize, String)> = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .collect();
    for (index, id) in &started {
        let status = wait_exited(&mut cri, id);
        let log =
            std::fs::read_to_string(logs.path().join(format!("c{index}.log"))).expect("its log");
        assert_eq!(
            (status.exit_code, status.reason.as_str()),
            (0, "Completed"),
            "{log}"
        );
        // Each got its own arguments: nothing crossed between containers.
        assert!(log.contains(&format!("arg[2]={index}\n")), "{log}");
    }
    for (_, id) in &started {
        cri.remove_container(id).expect("RemoveContainer");
    }
    let ids: Vec<&String> = started.iter().map(|(_, id)| id).collect();
    remove_pod(&mut cri, &pod_id, &ids);
}

/// Rounds of the kill-during-create race.
const RACES: usize = 10;

#[test]
fn test_a_kill_racing_a_create_gets_a_clear_answer_and_leaves_nothing() {
    images();
    for round in 0..RACES {
        let id = format!("race-kill-{round}");
        let runner = {
            let id = id.clone();
            std::thread::spawn(move || {
                run_detached(&id, PROBE_IMAGE, &[], &["/probe.wasm", "sleep", "1000000"])
            })
        };
        // SIGKILL as early as containerd knows the task: while the shim is
        // still creating it, or just after.
        let mut answers = Vec::new();
        while !runner.is_finished() {
            let out = ctr(&["task", "kill", "-s", "SIGKILL", &id]);
            let said = stderr(&out);
            if out.status.success() {
                answers.push("killed".to_string());
                break;
            }
            // Before the task exists, or while it is being made: an answer
            // that says so, never a hang or a crash.
            assert!(
                said.contains("not found")
                    || said.contains("no such")
                    || said.contains("created")
                    || said.contains("state"),
                "kill during create: {said}"
            );
            answers.push(said);
        }
        let run = runner.join().expect("the run");
        if !run.status.success() {
            // The kill came between create and start: the start is refused
            // as such, naming the container.
            let said = stderr(&run);
            assert!(
                said.contains(&format!("container {id}"))
                    && said.contains("killed (SIGKILL) before it was started"),
                "{said}"
            );
        }
        remove(&id);
        assert_no_leftovers(&id);
    }
    // The shims of the races are gone, and the runtime still runs modules.
    let out = run_rm("race-after", PROBE_IMAGE, &[], &["/probe.wasm", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
}

#[test]
fn test_a_second_start_and_a_remove_racing_a_start_get_clear_answers_and_leave_nothing() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod(
        "fault-start-race",
        "uid-fault-start-race",
        true,
        logs.path(),
    );
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");

    // A second StartContainer of a running container: refused, naming its
    // state; the container runs on.
    let sleeper = cri
        .create_container(
            &pod_id,
            &container("sleeper", &["sleep", "1000000"]).to_cri(),
            &pod,
        )
        .expect("CreateContainer");
    cri.start_container(&sleeper).expect("StartContainer");
    let again = cri.start_container(&sleeper).expect_err("a second start");
    assert!(format!("{again:#}").contains("RUNNING"), "{again:#}");
    let status = cri.container_status(&sleeper).expect("status");
    assert_eq!(edgeshim_cri::state_name(status.state), "Running");

    // RemoveContainer racing StartContainer, each on its own connection.
    for round in 0..RACES {
        let spec = container(&format!("raced-{round}"), &["sleep", "1000000"]);
        let id = cri
            .create_container(&pod_id, &spec.to_cri(), &pod)
            .expect("CreateContainer");
        let starter = {
            let id = id.clone();
            std::thread::spawn(move || {
                let mut cri = Cri::connect(std::path::Path::new(&address())).expect("CRI");
                cri.start_container(&id)
            })
        };
        let removed = cri.remove_container(&id);
        let started = starter.join().expect("the start");
        if let Err(e) = &started {
            // Refused because the container went: said so, by its id.
            let said = format!("{e:#}");
            assert!(
                said.contains(&id) || said.contains("not found"),
                "start: {said}"
            );
        }
        if removed.is_err() {
            // The start won: the container runs, and a second remove takes it.
            cri.remove_container(&id)
                .expect("RemoveContainer after the start");
        }
        assert!(
            cri.list_containers()
                .expect("ListContainers")
                .iter()
                .all(|c| c.id != id),
            "{id} still listed"
        );
        assert_no_leftovers_in(CRI_NAMESPACE, &id);
    }
    // The pod's shim serves its next container.
    let (hello, _) = run_hello(&mut cri, &pod_id, &pod, logs.path());
    remove_pod(&mut cri, &pod_id, &[&sleeper, &hello]);
}

#[test]
fn test_a_pod_shim_killed_leaves_its_containers_exited_and_nothing_behind() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod("fault-shim-kill", "uid-fault-shim-kill", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let id = cri
            .create_container(
                &pod_id,
                &container(name, &["sleep", "1000000"]).to_cri(),
                &pod,
            )
            .expect("CreateContainer");
        cri.start_container(&id).expect("StartContainer");
        ids.push(id);
    }
    for id in &ids {
        await_condition("the containers to run", LIMIT, || {
            cri.container_status(id)
                .is_ok_and(|s| edgeshim_cri::state_name(s.state) == "Running")
        });
    }
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| task_pid_in(CRI_NAMESPACE, id))
        .collect();
    let shim = shim_pid_for(&pod_id).expect("the pod's shim");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(shim).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the shim");
    // containerd sees the shim go, runs its `delete`, and reports each
    // container exited; their processes are gone.
    for id in &ids {
        let status = wait_exited(&mut cri, id);
        assert_ne!(status.exit_code, 0, "{id}: {}", status.reason);
    }
    for pid in pids {
        await_condition("the containers' processes to go", LIMIT, || {
            !process_alive(pid)
        });
    }
    let refs: Vec<&String> = ids.iter().collect();
    for id in &ids {
        cri.remove_container(id).expect("RemoveContainer");
    }
    remove_pod(&mut cri, &pod_id, &refs);
}
