//! Pods through containerd's CRI API with runtimeClassName `wasmtime` (or
//! `wasmedge`, see `EDGESHIM_TEST_ENGINE`), as
//! kubelet drives them: the pause container runs natively under the shim, the
//! Wasm containers in the same shim; logs in the CRI format, exit reasons,
//! stats, and nothing left after the pod is removed.

use std::path::Path;

use edgeshim_cri::ContainerSpec;
use edgeshim_integration::pods::*;
use edgeshim_integration::*;

#[test]
fn test_host_network_pod_runs_wasm_with_logs_reasons_and_stats() {
    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("wasm-pod", "uid-host-1", true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");

    let (hello, log) = run_hello(&mut cri, &pod_id, &pod, logs.path());
    let line = log.lines().next().expect("a log line");
    // CRI log format: <RFC3339Nano time> <stream> <P|F> <text>
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(fields[1..], ["stdout", "F", "hello from wasm"], "{log}");

    let failing_spec = container("failing", &["exit", "42"]);
    let (failing, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &failing_spec, logs.path());
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (42, "Error"),
        "{log}"
    );

    let mut sleeper_spec = container("sleeper", &["sleep", "3600"]);
    sleeper_spec.memory_limit_bytes = 64 << 20;
    let sleeper = cri
        .create_container(&pod_id, &sleeper_spec.to_cri(), &pod)
        .expect("CreateContainer");
    cri.start_container(&sleeper).expect("StartContainer");
    await_condition("sleeper to print", LIMIT, || {
        std::fs::read_to_string(logs.path().join("sleeper.log"))
            .is_ok_and(|l| l.contains("sleeping"))
    });
    let stats = cri.container_stats(&sleeper).expect("ContainerStats");
    let memory = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or_default();
    assert!(memory > 0, "working set {memory}");
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or_default();
    assert!(cpu > 0, "cpu {cpu}");

    // UpdateContainerResources reaches the running container's cgroup.
    let limit_file = Path::new("/sys/fs/cgroup/memory")
        .join(CRI_NAMESPACE)
        .join(&sleeper)
        .join("memory.limit_in_bytes");
    let limit = || std::fs::read_to_string(&limit_file).expect("memory.limit_in_bytes");
    assert_eq!(limit().trim(), (64u64 << 20).to_string());
    cri.update_memory_limit(&sleeper, 128 << 20)
        .expect("UpdateContainerResources");
    assert_eq!(limit().trim(), (128u64 << 20).to_string());

    // One shim for the pod: the sandbox's.
    assert!(shim_running_for(&pod_id));
    for id in [&hello, &failing, &sleeper] {
        assert!(!shim_running_for(id), "container {id} got its own shim");
    }

    cri.stop_container(&sleeper, 10).expect("StopContainer");
    let status = wait_exited(&mut cri, &sleeper);
    assert_eq!(status.exit_code, 143, "{status:?}");
    remove_pod(&mut cri, &pod_id, &[&hello, &failing, &sleeper]);
}

#[test]
fn test_bridge_network_pod_gets_an_ip_and_runs_wasm() {
    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("wasm-bridge-pod", "uid-bridge-1", false, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let ip = pod_ip(&mut cri, &pod_id);
    assert!(ip.starts_with("10.88.77."), "pod ip {ip:?}");

    let (id, log) = run_hello(&mut cri, &pod_id, &pod, logs.path());
    assert!(log.ends_with(" stdout F hello from wasm\n"), "{log}");

    remove_pod(&mut cri, &pod_id, &[&id]);
}

/// kubelet's systemd cgroup driver gives pods a slice, which containerd
/// turns into `slice:cri-containerd:<id>` cgroup paths.
/// How long the WasmEdge shim's background O2 compile may take to appear.
const COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

const SYSTEMD_POD_SLICE: &str = "edgeshim-besteffort-podoom.slice";

#[test]
fn test_oom_killed_container_in_a_systemd_slice_is_reported_as_oomkilled() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut config = pod_config("oom-pod", "uid-oom-1", true, logs.path());
    config.cgroup_parent = SYSTEMD_POD_SLICE.into();
    let pod = config.to_cri();
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let hog = hog(200);
    let (id, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &hog, logs.path());
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled"),
        "{log}"
    );
    let slice = Path::new("/sys/fs/cgroup/memory/edgeshim.slice/edgeshim-besteffort.slice")
        .join(SYSTEMD_POD_SLICE);
    // The hog's own scope went with its task (CRI deletes a task once it
    // exits); the pause container's is there while the pod lives.
    let scope = slice.join(format!("cri-containerd-{pod_id}.scope"));
    assert!(scope.is_dir(), "no cgroup at {}", scope.display());
    remove_pod(&mut cri, &pod_id, &[&id]);
    assert!(!scope.exists(), "cgroup left at {}", scope.display());
    // The pod's slice is kubelet's to remove; here the test stands in.
    for root in cgroup_roots() {
        for dir in [
            "edgeshim.slice/edgeshim-besteffort.slice/edgeshim-besteffort-podoom.slice",
            "edgeshim.slice/edgeshim-besteffort.slice",
            "edgeshim.slice",
        ] {
            let _ = std::fs::remove_dir(root.join(dir));
        }
    }
}

/// `edgeshim-crictl`, built beside this test binary by `cargo build --workspace`.
fn crictl(args: &[&str]) -> std::process::Output {
    let bin = workspace_binary("edgeshim-crictl");
    let output = std::process::Command::new(&bin)
        .args(["--runtime-endpoint", &address()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {} (cargo build --workspace first): {e}", bin.display()));
    eprintln!(
        "edgeshim-crictl {}: {}\n{}{}",
        args.join(" "),
        output.status,
        stdout(&output),
        stderr(&output)
    );
    output
}

#[test]
fn test_crictl_runs_a_wasm_pod_and_shows_its_logs() {
    let mut cri = cri();
    let logs = tempfile::tempdir().expect("log dir");
    let log_dir = logs.path().display().to_string();
    let out = crictl(&[
        "run",
        "--runtime",
        handler(),
        "--host-network",
        "--pod-name",
        "cli-pod",
        "--pod-uid",
        "uid-cli-1",
        "--log-dir",
        &log_dir,
        "--name",
        "cli",
        "--image",
        PROBE_IMAGE,
        "--command",
        "/probe.wasm",
        "--",
        "args",
        "from",
        "crictl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let status = wait_exited(&mut cri, &id);
    assert_eq!(status.reason, "Completed");

    let out = crictl(&["logs", &id]);
    assert_eq!(
        stdout(&out),
        "arg[0]=/probe.wasm\narg[1]=args\narg[2]=from\narg[3]=crictl\n"
    );
    let out = crictl(&["ps", "-a"]);
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with(&id[..13]))
        .map(str::to_string)
        .expect("container listed");
    assert!(row.contains("Exited") && row.contains("cli"), "{row}");
    let inspect: serde_json::Value =
        serde_json::from_slice(&crictl(&["inspect", &id]).stdout).expect("inspect json");
    assert_eq!(inspect["exit_code"], 0);

    let pods = stdout(&crictl(&["pods"]));
    let pod_row = pods
        .lines()
        .find(|l| l.contains("cli-pod"))
        .expect("pod listed");
    assert!(pod_row.contains(handler()), "{pod_row}");
    let pod_id = cri
        .list_pods()
        .expect("pods")
        .into_iter()
        .find(|p| p.metadata.as_ref().is_some_and(|m| m.name == "cli-pod"))
        .expect("pod")
        .id;
    assert!(crictl(&["stopp", &pod_id]).status.success());
    assert!(crictl(&["rmp", &pod_id]).status.success());
    assert!(!stdout(&crictl(&["pods"])).contains("cli-pod"));
    assert_no_leftovers_in(CRI_NAMESPACE, &pod_id);
    assert_no_leftovers_in(CRI_NAMESPACE, &id);
}

#[test]
fn test_wasm_containers_start_every_time_in_a_shared_pid_namespace() {
    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("shared-pid-pod", "uid-shared-pid-1", true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    // libcontainer's cgroup v1 mount failed in a shared pid namespace, most
    // of the time; a few rounds show it no longer happens to Wasm.
    let mut ids = Vec::new();
    for round in 0..5 {
        let mut spec = container(&format!("shared-{round}"), &["hello"]);
        spec.share_pid_namespace = true;
        let (id, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &spec, logs.path());
        assert_eq!(status.exit_code, 0, "{log}");
        ids.push(id);
    }
    let ids: Vec<&String> = ids.iter().collect();
    remove_pod(&mut cri, &pod_id, &ids);
}

/// A module no shim has seen, started by 20 pods at once: every pod runs
/// it, it is compiled into one cache entry per level, and no shim falls back to
/// WasmEdge's interpreter (on the WasmEdge shim: every start runs native
/// code from its ahead-of-time compile).
#[test]
fn test_a_burst_of_pods_starting_a_new_module_compiles_it_once_and_never_interprets() {
    const PODS: usize = 20;
    let (module, image, nonce) = fresh_module_image("fresh");
    let marker = containerd_log().len();

    let logs = tempfile::tempdir().expect("log dir");
    let outputs: Vec<(i32, String)> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..PODS)
            .map(|n| {
                let (image, logs) = (&image, logs.path());
                scope.spawn(move || {
                    let mut cri = cri();
                    let name = format!("burst-{n}");
                    let pod = pod(&name, &format!("uid-{name}-{nonce}"), true, logs);
                    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
                    let spec = ContainerSpec {
                        name: format!("fresh-{n}"),
                        image: image.clone(),
                        command: vec!["/fresh.wasm".into()],
                        log_path: format!("fresh-{n}.log"),
                        ..Default::default()
                    };
                    let (id, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &spec, logs);
                    remove_pod(&mut cri, &pod_id, &[&id]);
                    (status.exit_code, log)
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a pod's run"))
            .collect()
    });
    for (status, log) in &outputs {
        assert_eq!(*status, 0, "{log}");
        assert!(log.contains(&format!("fresh {nonce}")), "{log}");
    }
    let shims_said = &containerd_log()[marker..];
    assert!(
        !shims_said.contains("interpreter"),
        "a shim ran the module in the interpreter: {shims_said}"
    );
    let digest = edgeshim_engine_digest(&module);
    // One entry per level: on WasmEdge the first start's O0 code, and the
    // O2 code the background helper adds for the starts after.
    let mut expected = vec![format!("{digest}.d")];
    if engine() == WASMEDGE {
        expected.insert(0, format!("{digest}-o0.d"));
    }
    let cache = cache_root();
    let entries = || {
        let mut names: Vec<_> = walk_names(&cache)
            .into_iter()
            .filter(|name| name.starts_with(&digest))
            .collect();
        names.sort();
        names
    };
    await_condition("one compiled entry per level", COMPILE_LIMIT, || {
        entries() == expected
    });
}

/// A module's first start does not share the CPU evenly with its own O2
/// compile: on the WasmEdge shim the background helper runs at nice 19,
/// every thread of it, and still puts the O2 code in the cache; on the
/// Wasmtime shim no helper runs (its one compile is the shim's own, done
/// before the first start returns).
#[test]
fn test_the_background_compile_yields_the_cpu_and_still_fills_the_cache() {
    let (module, image, nonce) = fresh_module_image("niced");
    let digest = edgeshim_engine_digest(&module);
    // The node's turn for background compiles, held here so the helper
    // waits where it can be looked at (released on every path by drop).
    let turn = (engine() == WASMEDGE).then(|| {
        let folder = cache_root().join("wasmedge-0.14.1-x86_64");
        std::fs::create_dir_all(&folder).expect("the WasmEdge cache folder");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(folder.join(".background-compile.lock"))
            .expect("the node's compile lock");
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock")
    });

    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("niced", &format!("uid-niced-{nonce}"), true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let spec = ContainerSpec {
        name: "niced".into(),
        image,
        command: vec!["/fresh.wasm".into()],
        log_path: "niced.log".into(),
        ..Default::default()
    };
    let (id, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &spec, logs.path());
    assert_eq!(status.exit_code, 0, "{log}");
    assert!(log.contains(&format!("niced {nonce}")), "{log}");

    let has_o2 = || walk_names(&cache_root()).contains(&format!("{digest}.d"));
    if engine() == WASMEDGE {
        let helpers = background_compiles_of(&digest);
        assert_eq!(helpers.len(), 1, "one background compile: {helpers:?}");
        let nice = nice_of_threads(helpers[0]);
        assert!(
            !nice.is_empty() && nice.iter().all(|n| *n == 19),
            "the helper's threads' nice values: {nice:?}"
        );
        assert!(!has_o2(), "compiled while the node's turn was held");
        drop(turn);
        await_condition("the O2 code in the cache", COMPILE_LIMIT, has_o2);
        await_condition("the helper to exit", COMPILE_LIMIT, || {
            background_compiles_of(&digest).is_empty()
        });
    } else {
        assert!(has_o2(), "Wasmtime's compile precedes the first start");
        assert!(background_compiles_of(&digest).is_empty());
    }
    remove_pod(&mut cri, &pod_id, &[&id]);
}

/// A hello module no shim has seen (its line carries a nonce), imported
/// as an image: its bytes, the image's name and the nonce.
fn fresh_module_image(label: &str) -> (Vec<u8>, String, u128) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    let module = module_printing(&format!("{label} {nonce}\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fresh.wasm");
    std::fs::write(&path, &module).expect("module");
    let image = format!("edgeshim.test/{label}-{nonce}:1");
    import_module_image(&image, &path);
    (module, image, nonce)
}

/// The shims' module cache root, as the suite's containerd gives it them.
fn cache_root() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("EDGESHIM_CACHE_DIR").expect("EDGESHIM_CACHE_DIR"))
}

/// The pids of running background compiles of the module `digest`
/// (the WasmEdge shim's `--edgeshim-aot-compile-into-cache` helpers).
fn background_compiles_of(digest: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&b"--edgeshim-aot-compile-into-cache".as_slice())
            && args.contains(&digest.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// The nice value of every thread of `pid` (field 19 of each thread's
/// `stat`, counted after the command's closing parenthesis).
fn nice_of_threads(pid: u32) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the helper's threads");
    tasks
        .flatten()
        .map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).expect("stat");
            let after_comm = &stat[stat.rfind(')').expect("stat's comm") + 2..];
            // After the comm, field 3 (state) is the first: nice is field 19.
            after_comm
                .split(' ')
                .nth(19 - 3)
                .and_then(|n| n.parse().ok())
                .expect("nice field")
        })
        .collect()
}

/// The module's hex sha256, as the shims key their cache.
fn edgeshim_engine_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The names of every file and folder below `dir`.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.path().is_dir() {
            names.extend(walk_names(&entry.path()));
        }
    }
    names
}

/// A pod's shim holds the same threads whatever number of containers its
/// pod runs. containerd 1.6 opens a ttrpc connection per task, and each
/// running task has a Wait outstanding for its life: the shim serves them
/// as tasks on one runtime thread (ttrpc's sync server held six to eight
/// threads per connection, a thread per Wait among them), and the threads
/// that run requests end once idle.
#[test]
fn test_a_pod_shim_holds_no_thread_per_container() {
    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("threads-pod", "uid-threads-1", true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let shim = shim_pid_for(&pod_id).expect("the pod's shim");
    let mut sleepers = Vec::new();
    let mut threads_by_containers = Vec::new();
    for n in 1..=4 {
        let name = format!("sleeper-{n}");
        let spec = container(&name, &["sleep", "3600"]);
        let id = cri
            .create_container(&pod_id, &spec.to_cri(), &pod)
            .expect("CreateContainer");
        cri.start_container(&id).expect("StartContainer");
        await_condition("the sleeper to print", LIMIT, || {
            std::fs::read_to_string(logs.path().join(format!("{name}.log")))
                .is_ok_and(|l| l.contains("sleeping"))
        });
        sleepers.push(id);
        // Idle: no request in flight.
        await_condition("the shim's request threads to end", LIMIT, || {
            !thread_names(shim).iter().any(|t| t == "shim-request")
        });
        threads_by_containers.push(thread_names(shim));
    }
    let one = &threads_by_containers[0];
    let four = &threads_by_containers[3];
    assert_eq!(one, four, "threads with 1 and with 4 containers");
    assert!(
        !four.iter().any(|t| t == "client_handler"),
        "ttrpc's sync server threads: {four:?}"
    );
    for id in &sleepers {
        cri.stop_container(id, 10).expect("StopContainer");
    }
    let ids: Vec<&String> = sleepers.iter().collect();
    remove_pod(&mut cri, &pod_id, &ids);
}

/// The names of process `pid`'s threads, sorted.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|comm| comm.trim().to_string())
        .collect();
    names.sort();
    names
}

/// A quiet pod shim lets go of its event connection into containerd (one
/// descriptor there per pod, and containerd's open-file limit caps a
/// node's pods), and makes a new one when it has something to say: the
/// container's exit, after the connection was let go of, still reaches
/// CRI (which learns of exits from TaskExit events only).
#[test]
fn test_a_quiet_pod_shim_holds_no_event_connection_and_its_exits_still_arrive() {
    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("quiet-pod", "uid-quiet-1", true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let sleeper = cri
        .create_container(
            &pod_id,
            &container("sleeper", &["sleep", "3600"]).to_cri(),
            &pod,
        )
        .expect("CreateContainer");
    cri.start_container(&sleeper).expect("StartContainer");
    let shim = shim_pid_for(&pod_id).expect("the pod's shim");
    await_condition(
        "the quiet shim to let go of its event connection",
        LIMIT,
        || connections_to_containerd_events(shim) == 0,
    );
    let status = cri.container_status(&sleeper).expect("status");
    assert_eq!(edgeshim_cri::state_name(status.state), "Running");

    cri.stop_container(&sleeper, 10).expect("StopContainer");
    let status = wait_exited(&mut cri, &sleeper);
    assert_eq!(status.exit_code, 143, "{status:?}");
    remove_pod(&mut cri, &pod_id, &[&sleeper]);
}
