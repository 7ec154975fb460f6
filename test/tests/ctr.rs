//! The Wasmtime shim under a real containerd, through `ctr`: output, args,
//! env, mounts, exit codes, kill, bad input, and a native container beside a
//! Wasm one in one shim. Each test checks that nothing is left behind.

use std::path::Path;
use std::time::{Duration, Instant};

use edgeshim_integration::*;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn test_hello_reaches_stdout() {
    let out = run_rm("hello", PROBE_IMAGE, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    assert_no_leftovers("hello");
}

#[test]
fn test_stderr_is_separate_from_stdout() {
    let out = run_rm(
        "stderr",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "stderr", "oops"],
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("to stderr: oops"), "{}", stderr(&out));
    assert_no_leftovers("stderr");
}

#[test]
fn test_args_reach_the_module() {
    let out = run_rm(
        "args",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "args", "one", "two words"],
    );
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "arg[0]=/probe.wasm\narg[1]=args\narg[2]=one\narg[3]=two words\n"
    );
    assert_no_leftovers("args");
}

#[test]
fn test_env_reaches_the_module() {
    let out = run_rm(
        "env",
        PROBE_IMAGE,
        &["--env", "GREETING=grüezi"],
        &["/probe.wasm", "env", "GREETING"],
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), "GREETING=grüezi\n");
    assert_no_leftovers("env");
}

#[test]
fn test_bind_mount_is_read_and_written() {
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("in.txt"), "from the host\n").expect("write");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        host.path().display()
    );
    let out = run_rm(
        "mount-read",
        PROBE_IMAGE,
        &["--mount", &mount],
        &["/probe.wasm", "read", "/data/in.txt"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the host\n");

    let out = run_rm(
        "mount-write",
        PROBE_IMAGE,
        &["--mount", &mount],
        &["/probe.wasm", "write", "/data/out.txt", "from the module"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(host.path().join("out.txt")).expect("out.txt");
    assert_eq!(written, "from the module");
    assert_no_leftovers("mount-read");
    assert_no_leftovers("mount-write");
}

#[test]
fn test_exit_codes_are_the_modules() {
    let out = run_rm("exit0", PROBE_IMAGE, &[], &["/probe.wasm", "exit", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_rm("exit42", PROBE_IMAGE, &[], &["/probe.wasm", "exit", "42"]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert_eq!(stdout(&out), "exiting 42\n");
    assert_no_leftovers("exit0");
    assert_no_leftovers("exit42");
}

#[test]
fn test_trap_is_reported_with_abort_status() {
    let out = run_rm("trap", PROBE_IMAGE, &[], &["/probe.wasm", "trap"]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(stderr(&out).contains("wasm trap"), "{}", stderr(&out));
    assert!(stdout(&out).contains("about to trap"));
    assert_no_leftovers("trap");
}

/// Kills a module spinning in a tight loop (no host calls at all) and
/// reports how long the stop took; the figure goes to the log, speed is the
/// benchmark's business.
fn kill_spinning(id: &str, signal: &str, expected_status: &str) {
    kill_spinning_with(id, &["-s", signal], expected_status);
}

fn kill_spinning_with(id: &str, kill_flags: &[&str], expected_status: &str) {
    let signal = kill_flags.join(" ");
    let out = run_detached(id, SPIN_IMAGE, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("spin to run", LIMIT, || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let started = Instant::now();
    let mut kill = vec!["task", "kill"];
    kill.extend_from_slice(kill_flags);
    kill.push(id);
    let out = ctr(&kill);
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("spin to stop", LIMIT, || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    eprintln!(
        "{signal} stopped the spinning module in {:?}",
        started.elapsed()
    );
    let out = ctr(&["task", "rm", id]);
    let expected = format!("non-zero exit code {expected_status}");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    ctr(&["container", "rm", id]);
    assert_no_leftovers(id);
}

#[test]
fn test_sigkill_stops_a_tight_loop() {
    kill_spinning("spin-kill", "SIGKILL", "137");
}

#[test]
fn test_sigterm_stops_a_tight_loop() {
    kill_spinning("spin-term", "SIGTERM", "143");
}

/// `kill --all` signals every process of the container's cgroup (the
/// direct launch path reads them from its pids controller).
#[test]
fn test_sigterm_to_all_of_a_containers_processes_stops_it() {
    kill_spinning_with("spin-term-all", &["--all", "-s", "SIGTERM"], "143");
}

/// A failed create: a clear message naming the container and the cause, and
/// nothing left behind.
fn assert_create_fails(id: &str, image: &str, args: &[&str], cause: &str) {
    assert_create_fails_with(id, image, &[], args, cause);
}

fn assert_create_fails_with(id: &str, image: &str, flags: &[&str], args: &[&str], cause: &str) {
    let out = run_rm(id, image, flags, args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("container {id}")), "{err}");
    assert!(err.contains(cause), "expected {cause:?} in {err}");
    ctr(&["container", "rm", id]);
    assert_no_leftovers(id);
}

#[test]
fn test_missing_entrypoint_is_refused() {
    assert_create_fails(
        "no-entry",
        PROBE_IMAGE,
        &["/nope.wasm"],
        "\"/nope.wasm\" not found",
    );
}

#[test]
fn test_text_file_entrypoint_is_refused() {
    assert_create_fails(
        "text-entry",
        BAD_IMAGE,
        &["/notes.txt"],
        "neither a Wasm module nor an ELF binary",
    );
}

#[test]
fn test_truncated_module_is_refused() {
    assert_create_fails("truncated", BAD_IMAGE, &[], "invalid Wasm module");
}

#[test]
fn test_garbage_module_is_refused() {
    assert_create_fails(
        "garbage",
        BAD_IMAGE,
        &["/garbage.wasm"],
        "invalid Wasm module",
    );
}

#[test]
fn test_native_and_wasm_share_one_shim_and_survive_a_bad_neighbour() {
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=pod-a";
    let out = run_detached("pod-a", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_detached(
        "pod-a-wasm",
        PROBE_IMAGE,
        &[pod],
        &["/probe.wasm", "sleep", "3600"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("both to run", LIMIT, || {
        task_status("pod-a").as_deref() == Some("RUNNING")
            && task_status("pod-a-wasm").as_deref() == Some("RUNNING")
    });
    assert!(shim_running_for("pod-a"));
    assert!(
        !shim_running_for("pod-a-wasm"),
        "the Wasm container got a shim of its own"
    );

    // A bad container in the same shim fails alone.
    let out = run_rm("pod-a-bad", BAD_IMAGE, &[pod], &[]);
    assert!(
        stderr(&out).contains("invalid Wasm module"),
        "{}",
        stderr(&out)
    );
    ctr(&["container", "rm", "pod-a-bad"]);
    assert_eq!(task_status("pod-a").as_deref(), Some("RUNNING"));
    assert_eq!(task_status("pod-a-wasm").as_deref(), Some("RUNNING"));
    let out = run_rm("pod-a-hello", PROBE_IMAGE, &[pod], &[]);
    assert_eq!(stdout(&out), "hello from wasm\n");

    // The native pause container handles SIGTERM itself and exits 0.
    ctr(&["task", "kill", "-s", "SIGTERM", "pod-a"]);
    await_condition("pause to stop", LIMIT, || {
        task_status("pod-a").as_deref() == Some("STOPPED")
    });
    let out = ctr(&["task", "rm", "pod-a"]);
    assert!(out.status.success());
    assert!(
        !stderr(&out).contains("non-zero exit code"),
        "{}",
        stderr(&out)
    );
    ctr(&["container", "rm", "pod-a"]);
    remove("pod-a-wasm");
    for id in ["pod-a", "pod-a-wasm", "pod-a-bad", "pod-a-hello"] {
        assert_no_leftovers(id);
    }
}

#[test]
fn test_a_dead_shims_container_is_cleaned_up() {
    let id = "orphaned";
    let out = run_detached(id, PROBE_IMAGE, &[], &["/probe.wasm", "sleep", "3600"]);
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("sleeper to run", LIMIT, || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let pid = task_pid(id);
    let status = std::process::Command::new("pkill")
        .args(["-9", "-f", &format!("{} .*-id {id} ", engine().shim_binary)])
        .status()
        .expect("pkill");
    assert!(status.success(), "no shim found for {id}");
    // containerd notices, runs `shim delete`, which kills what the shim left.
    await_condition("container process to go", LIMIT, || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    ctr(&["task", "rm", "-f", id]);
    ctr(&["container", "rm", id]);
    assert_no_leftovers(id);
}

#[test]
fn test_lifecycle_events_reach_containerd() {
    let id = "events";
    let events = EventWatcher::start();
    let out = run_rm(id, PROBE_IMAGE, &[], &["/probe.wasm", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3));
    let seen = events.until(|l| l.contains("/tasks/delete") && l.contains(id));
    let ours: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains(&format!("\"container_id\":\"{id}\"")))
        .collect();
    let topics: Vec<&str> = ours
        .iter()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{ours:?}"
    );
    let exit = ours
        .iter()
        .find(|l| l.contains("/tasks/exit"))
        .expect("exit");
    assert!(exit.contains("\"exit_status\":3"), "{exit}");
    assert_no_leftovers(id);
}

#[test]
fn test_memory_limit_caps_linear_memory_with_a_clear_message() {
    let id = "grow";
    let limit = (64u64 << 20).to_string();
    let out = run_rm(
        id,
        PROBE_IMAGE,
        &["--memory-limit", &limit],
        &["/probe.wasm", "grow", "200"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let refusal = engine().memory_refusal(64 << 20);
    assert!(err.contains(&refusal), "expected {refusal:?} in: {err}");
    assert!(err.contains("allocation failed after"), "{err}");
    assert_no_leftovers(id);
}

#[test]
#[ignore = "flaky: in 2 of about 6 CI runs `ctr events` never showed the oom container's \
            /tasks/delete though `ctr run` returned 137. Likely cause, fixed since: the shim \
            exited on containerd's Shutdown with that TaskDelete still queued (it now flushes \
            its events first); to be re-enabled once CI runs show it steady. TaskOOM itself is \
            covered through CRI (cri.rs: reason OOMKilled; metrics.rs: the OOM count)"]
fn test_cgroup_oom_kill_gives_137_and_a_task_oom_event() {
    let id = "oom";
    let events = EventWatcher::start();
    let limit = (32u64 << 20).to_string();
    let out = run_rm(
        id,
        PAUSE_IMAGE,
        &["--memory-limit", &limit],
        &["/hog", "200"],
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let seen = events.until(|l| l.contains("/tasks/delete") && l.contains(id));
    let oom = seen.iter().find(|l| l.contains("/tasks/oom"));
    assert!(
        oom.is_some_and(|l| l.contains(id)),
        "no /tasks/oom for {id} in {seen:?}"
    );
    assert_no_leftovers(id);
}

#[test]
fn test_cpu_quota_holds_a_busy_loop_to_its_share() {
    let id = "cpu-quota";
    let out = run_detached(id, SPIN_IMAGE, &["--cpus", "0.1"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("spin to run", LIMIT, || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let usage_file = Path::new("/sys/fs/cgroup/cpuacct")
        .join(NAMESPACE)
        .join(id)
        .join("cpuacct.usage");
    let read_usage = || -> f64 {
        std::fs::read_to_string(&usage_file)
            .expect("cpuacct.usage")
            .trim()
            .parse::<f64>()
            .expect("number")
            / 1e9
    };
    // A measuring window, not a wait for a condition: the share is a rate.
    let (start, used_before) = (Instant::now(), read_usage());
    std::thread::sleep(Duration::from_secs(2));
    let share = (read_usage() - used_before) / start.elapsed().as_secs_f64();
    eprintln!("busy loop under a 0.1 cpu quota used {share:.3} cpu");
    assert!(
        (0.05..0.2).contains(&share),
        "cpu share {share:.3}, quota 0.1"
    );
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn test_module_cannot_walk_out_of_its_preopens() {
    let read =
        |id: &str, path: &str| run_rm(id, TRAVERSAL_IMAGE, &[], &["/probe.wasm", "read", path]);
    // A relative link that stays inside works.
    let out = read("trav-ok", "/inside/secret");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in the rootfs\n");
    // `..` past `/`, a link climbing out, an absolute link: all refused.
    for (id, path) in [
        ("trav-dotdot", "/../../../etc/secret"),
        ("trav-up", "/up/secret"),
        ("trav-abs", "/absolute/secret"),
    ] {
        let out = read(id, path);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", stdout(&out));
        let refused = format!("probe: cannot open {path}: Operation not permitted");
        assert!(stderr(&out).contains(&refused), "{}", stderr(&out));
        assert_eq!(stdout(&out), "", "{path} was read");
    }
    for id in ["trav-ok", "trav-dotdot", "trav-up", "trav-abs"] {
        assert_no_leftovers(id);
    }
}

#[test]
fn test_a_killed_launcher_is_replaced_and_an_idle_one_is_stopped() {
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=launcher-pod";
    let out = run_detached("launcher-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = launcher_pid_for("launcher-pod").expect("the pod shim's launcher");
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    await_condition("the killed launcher to be reaped", LIMIT, || {
        !Path::new(&format!("/proc/{first}")).exists()
    });
    // The next create starts a new launcher; the running pause is untouched.
    let out = run_rm("launcher-pod-hello", PROBE_IMAGE, &[pod], &[]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    assert_eq!(task_status("launcher-pod").as_deref(), Some("RUNNING"));
    // With no create for a while, the pod holds no launcher; the next
    // create starts one again.
    await_condition("the idle launcher to be stopped", LIMIT, || {
        launcher_pid_for("launcher-pod").is_none()
    });
    let out = run_rm("launcher-pod-again", PROBE_IMAGE, &[pod], &[]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    let last = launcher_pid_for("launcher-pod");
    kill_and_remove("launcher-pod");
    for id in ["launcher-pod", "launcher-pod-hello", "launcher-pod-again"] {
        assert_no_leftovers(id);
    }
    if let Some(last) = last {
        await_condition("the launcher to end with its shim", LIMIT, || {
            !process_alive(last)
        });
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn test_a_shims_zygote_holds_only_its_socket_forks_its_launchers_and_ends_with_it() {
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=zygote-pod";
    let out = run_detached("zygote-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let zygote = zygote_pid_for("zygote-pod").expect("the pod shim's zygote");
    // Nothing of the shim's: /dev/null for stdio, its socket, no more.
    let fds = descriptors(zygote);
    assert_eq!(
        fds.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{fds:?}"
    );
    assert!(fds.range(0..3).all(|(_, t)| t == "/dev/null"), "{fds:?}");
    assert!(fds[&3].starts_with("socket:"), "{fds:?}");
    // The launcher is the shim's child (found as such), forked from the
    // zygote: an exec'd one would be named after the executable.
    let launcher = launcher_pid_for("zygote-pod").expect("the pod shim's launcher");
    assert_eq!(comm(launcher), "edgeshim-launch");
    let out = run_rm("zygote-pod-hello", PROBE_IMAGE, &[pod], &[]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    kill_and_remove("zygote-pod");
    for id in ["zygote-pod", "zygote-pod-hello"] {
        assert_no_leftovers(id);
    }
    await_condition("the zygote to end with its shim", LIMIT, || {
        !process_alive(zygote)
    });
    await_condition("the launcher to end with its shim", LIMIT, || {
        !process_alive(launcher)
    });
}

#[test]
fn test_with_its_zygote_killed_a_shim_execs_its_launchers_and_containers_still_start() {
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=no-zygote-pod";
    let out = run_detached("no-zygote-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let zygote = zygote_pid_for("no-zygote-pod").expect("the pod shim's zygote");
    let first = launcher_pid_for("no-zygote-pod").expect("the pod shim's launcher");
    for pid in [zygote, first] {
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        await_condition("the killed process to be reaped", LIMIT, || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
    }
    let out = run_rm("no-zygote-pod-hello", PROBE_IMAGE, &[pod], &[]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    let launcher = launcher_pid_for("no-zygote-pod").expect("a new launcher");
    assert_eq!(comm(launcher), "exe", "an exec'd launcher");
    assert_eq!(task_status("no-zygote-pod").as_deref(), Some("RUNNING"));
    kill_and_remove("no-zygote-pod");
    for id in ["no-zygote-pod", "no-zygote-pod-hello"] {
        assert_no_leftovers(id);
    }
}

/// The shim's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn test_a_3gb_module_is_refused_by_size_before_it_is_read() {
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=big-pod";
    let out = run_detached("big-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shim = shim_pid_for("big-pod").expect("the pod's shim");
    let peak_before = peak_rss_kib(shim);
    let out = run_rm_with_spec("big-module", &[], &["/big.wasm"], |spec| {
        let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(&root).expect("rootfs");
        let mut file = std::fs::File::create(root.join("big.wasm")).expect("create");
        std::io::Write::write_all(&mut file, b"\0asm\x01\0\0\0").expect("magic");
        // Sparse: 3 GiB long, a few bytes on disk.
        file.set_len(3 << 30).expect("set_len");
        spec["annotations"] = serde_json::json!({"io.kubernetes.cri.sandbox-id": "big-pod"});
    });
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("big.wasm"), "{err}");
    assert!(err.contains("3221225472"), "the size is named: {err}");
    assert!(err.contains("67108864"), "the cap is named: {err}");
    // The module never reached the shim's heap.
    let grown_kib = peak_rss_kib(shim).saturating_sub(peak_before);
    assert!(
        grown_kib < 16 << 10,
        "the shim's peak grew by {grown_kib} KiB"
    );
    kill_and_remove("big-pod");
    for id in ["big-pod", "big-module"] {
        assert_no_leftovers(id);
    }
}

/// What a hostile module reaches for to leave the sandbox (rewrite its
/// runtime through /proc/self/mem, read the runtime's environment, the
/// host's kernel and cgroup interfaces, the kernel log), directly and
/// through `..`.
const KERNEL_PATHS: &[&str] = &[
    "/proc/self/mem",
    "/proc/self/maps",
    "/proc/self/environ",
    "/proc/1/cmdline",
    "/sys/kernel",
    "/sys/fs/cgroup",
    "/dev/kmsg",
    "/dev/../proc/self/mem",
    "/proc/./1/../self/environ",
];

#[test]
fn test_module_reaches_no_kernel_interface_and_default_devices_work() {
    let mut args = vec!["/probe.wasm", "escape"];
    args.extend(KERNEL_PATHS);
    let out = run_rm("escape", PROBE_IMAGE, &[], &args);
    let seen = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "the module opened some: {seen}");
    for path in KERNEL_PATHS {
        assert!(
            seen.contains(&format!("refused {path}: ")),
            "{path}: {seen}"
        );
    }
    // /proc is masked (on the libcontainer path after the set-up used it;
    // on the direct path never mounted): the module finds it empty.
    let out = run_rm(
        "escape-list",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "list", "/proc"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0 entries\n", "/proc is not empty");
    let out = run_rm(
        "escape-devices",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "devices"],
    );
    assert_eq!(
        stdout(&out),
        "null ok\nzero ok\nfull ok\nrandom ok\nurandom ok\ntty ok\n",
        "{}",
        stderr(&out)
    );
    assert!(out.status.success());
    for id in ["escape", "escape-list", "escape-devices"] {
        assert_no_leftovers(id);
    }
}

#[test]
fn test_native_program_runs_from_a_spec_without_env_and_keeps_proc() {
    // `ctr oci spec` style: no env at all, so no PATH; runc runs an
    // absolute path anyway. Native containers keep runc's /proc.
    let files = [(built("hog"), "/hog")];
    let out = run_rm_with_spec("noenv", &files, &["/hog", "cmdline"], |spec| {
        spec["process"]
            .as_object_mut()
            .expect("process")
            .remove("env");
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "cmdline: /hog cmdline \n");
    assert_no_leftovers("noenv");
}

fn pids_limit(limit: i64) -> impl FnOnce(&mut serde_json::Value) {
    move |spec| spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": limit })
}

#[test]
fn test_pids_limit_below_two_is_refused_with_the_reason() {
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let out = run_rm_with_spec("pids-1", &files, &["/probe.wasm"], pids_limit(1));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("container pids-1: pids limit 1 is too low"),
        "{err}"
    );
    assert_no_leftovers("pids-1");
    // Two is enough for a Wasm container (main thread + one WASI I/O thread).
    let out = run_rm_with_spec("pids-2", &files, &["/probe.wasm"], pids_limit(2));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    assert_no_leftovers("pids-2");
}

#[test]
fn test_pids_limit_holds_a_forking_native_container() {
    let files = [(built("hog"), "/hog")];
    let out = run_rm_with_spec("pids-fork", &files, &["/hog", "fork"], pids_limit(5));
    assert!(out.status.success(), "{}", stderr(&out));
    // The limit counts the forking process itself.
    assert_eq!(stdout(&out), "forked 4\n");
    assert_no_leftovers("pids-fork");
}

#[test]
fn test_memory_limit_too_low_for_set_up_is_named() {
    assert_create_fails_with(
        "tiny-memory",
        PROBE_IMAGE,
        &["--memory-limit", "131072"],
        &[],
        "memory limit of 131072 bytes is likely too low",
    );
}

#[test]
fn test_bad_isolation_requests_are_named_and_leave_nothing() {
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let missing_netns = |spec: &mut serde_json::Value| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(serde_json::json!({ "type": "network", "path": "/run/netns/edgeshim-none" }));
    };
    let out = run_rm_with_spec("bad-netns", &files, &["/probe.wasm"], missing_netns);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("container bad-netns"), "{err}");
    assert!(
        err.contains("net namespace to join at /run/netns/edgeshim-none does not exist"),
        "{err}"
    );
    assert_no_leftovers("bad-netns");

    let unwritable_cgroup = |spec: &mut serde_json::Value| {
        spec["linux"]["cgroupsPath"] = serde_json::json!("/edgeshim-test/cgroup.procs/bad-cgroup");
    };
    let out = run_rm_with_spec("bad-cgroup", &files, &["/probe.wasm"], unwritable_cgroup);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("container bad-cgroup"), "{err}");
    assert!(err.contains("cgroup"), "{err}");
    assert_no_leftovers("bad-cgroup");
}

/// A v1 cgroup `/edgeshim-test/<name>` made by hand under every mounted
/// controller, with a sleeping process in its pids controller.
struct OccupiedCgroup {
    dirs: Vec<std::path::PathBuf>,
    member: std::process::Child,
}

impl OccupiedCgroup {
    fn new(name: &str) -> Self {
        let mut dirs = Vec::new();
        for root in cgroup_roots() {
            let controller = root.file_name().map(|n| n.to_string_lossy().into_owned());
            if !matches!(
                controller.as_deref(),
                Some(
                    "blkio"
                        | "cpu"
                        | "cpuacct"
                        | "cpuset"
                        | "devices"
                        | "freezer"
                        | "memory"
                        | "pids"
                )
            ) {
                continue;
            }
            let dir = root.join("edgeshim-test").join(name);
            std::fs::create_dir_all(&dir).expect("cgroup");
            dirs.push(dir);
        }
        let member = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep");
        let pids = dirs
            .iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
            .expect("a pids controller");
        std::fs::write(pids.join("cgroup.procs"), member.id().to_string()).expect("join");
        Self { dirs, member }
    }

    fn member_alive(&mut self) -> bool {
        self.member.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for OccupiedCgroup {
    fn drop(&mut self) {
        let _ = self.member.kill();
        let _ = self.member.wait();
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The cgroup a spec names is the container's own: one that exists with
/// processes in it (another container's, the host's) is refused by name,
/// gets none of the spec's limits, and its processes are not killed by the
/// failed create's clean-up; nor by a path that climbs out of it.
#[test]
fn test_a_cgroup_path_naming_an_occupied_cgroup_is_refused_and_its_processes_live() {
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let mut occupied = OccupiedCgroup::new("occupied");
    let cases = [
        (
            "cg-occupied",
            "/edgeshim-test/occupied",
            "exists and has processes in it",
        ),
        (
            "cg-climb",
            "/edgeshim-test/occupied/x/..",
            "leaves the cgroup hierarchy",
        ),
    ];
    for (id, path, reason) in cases {
        let out = run_rm_with_spec(id, &files, &["/probe.wasm"], |spec| {
            spec["linux"]["cgroupsPath"] = serde_json::json!(path);
        });
        let err = stderr(&out);
        assert!(!out.status.success(), "{id}: ran in {path}");
        assert!(err.contains(&format!("container {id}")), "{err}");
        assert!(err.contains(reason), "{id}: {err}");
        assert!(
            occupied.member_alive(),
            "{id}: the cgroup's process was killed"
        );
        assert!(
            occupied.dirs.iter().all(|d| d.exists()),
            "{id}: the cgroup was removed"
        );
        assert_no_leftovers(id);
    }
}

#[test]
fn test_systemd_style_cgroups_path_is_laid_out_as_systemd_would() {
    let id = "systemd-path";
    let limit = (64u64 << 20).to_string();
    let cgroup = format!("edgeshim-test.slice:edgeshim:{id}");
    let flags = [
        "--cgroup",
        cgroup.as_str(),
        "--memory-limit",
        limit.as_str(),
    ];
    let out = run_detached(id, SPIN_IMAGE, &flags, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let slice = Path::new("/sys/fs/cgroup/memory/edgeshim.slice");
    let scope = slice.join("edgeshim-test.slice/edgeshim-systemd-path.scope");
    let table = std::fs::read_to_string(format!("/proc/{}/cgroup", task_pid(id))).expect("cgroup");
    assert!(
        table.lines().any(|l| l
            .ends_with(":memory:/edgeshim.slice/edgeshim-test.slice/edgeshim-systemd-path.scope")),
        "{table}"
    );
    let applied = std::fs::read_to_string(scope.join("memory.limit_in_bytes")).expect("limit");
    assert_eq!(applied.trim(), limit);
    remove(id);
    assert!(!scope.exists(), "scope left at {}", scope.display());
    assert_no_leftovers(id);
    // Slices outlive their scopes (under systemd too); this test made them.
    for root in cgroup_roots() {
        let _ = std::fs::remove_dir(root.join("edgeshim.slice/edgeshim-test.slice"));
        let _ = std::fs::remove_dir(root.join("edgeshim.slice"));
    }
}

/// A v1 controller the kernel has but this host has not mounted, with the
/// resources entry that needs it.
fn unmounted_controller() -> Option<(&'static str, serde_json::Value)> {
    let table = std::fs::read_to_string("/proc/cgroups").expect("/proc/cgroups");
    let unmounted = |name: &str| {
        table.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&name) && cols.get(1) == Some(&"0")
        })
    };
    let candidates = [
        (
            "hugetlb",
            serde_json::json!({ "hugepageLimits": [ { "pageSize": "2MB", "limit": 2097152 } ] }),
        ),
        (
            "net_cls",
            serde_json::json!({ "network": { "classID": 1048577 } }),
        ),
    ];
    candidates.into_iter().find(|(name, _)| unmounted(name))
}

#[test]
fn test_resource_for_a_missing_cgroup_controller_is_refused_by_name() {
    // This machine kind (cgroup v1 hybrid) mounts neither hugetlb nor
    // net_cls; a host that mounts both cannot run this test, and says so.
    let (controller, resources) = unmounted_controller()
        .expect("a host without the hugetlb or net_cls cgroup controller mounted");
    let id = "missing-controller";
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let out = run_rm_with_spec(id, &files, &["/probe.wasm"], |spec| {
        spec["linux"]["resources"] = resources;
    });
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("container {id}")), "{err}");
    assert!(
        err.contains(&format!("this host has no {controller} cgroup controller")),
        "{err}"
    );
    assert_no_leftovers(id);
}

/// A non-root module reads what its supplementary group may read, and
/// nothing the shim's groups or any other group could: its groups are
/// exactly its spec's `additionalGids`, as under runc. Its spec names no
/// capabilities, which means none (as runc takes it), not all of root's.
#[test]
fn test_a_non_root_module_has_exactly_its_supplementary_groups() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let run = |id: &str, path: &str| {
        run_rm_with_spec(id, &files, &["/probe.wasm", "read", path], |spec| {
            let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
            for (name, gid) in [("g3000", 3000), ("g4000", 4000)] {
                let file = root.join(name);
                std::fs::write(&file, format!("read by group {gid}\n")).expect("write");
                chown(&file, Some(0), Some(gid)).expect("chown");
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640))
                    .expect("chmod");
            }
            spec["process"]["user"] =
                serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [3000]});
            // No CAP_DAC_OVERRIDE: file modes decide, as for a plain user.
            spec["process"]["capabilities"] = serde_json::json!({});
        })
    };
    let out = run("groups-mine", "/g3000");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "read by group 3000\n");
    let out = run("groups-other", "/g4000");
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot open /g4000"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    for id in ["groups-mine", "groups-other"] {
        assert_no_leftovers(id);
    }
}

/// runwasi's `module.wasm#export` entrypoint: the module is started at
/// that export instead of `_start`; an export that is not there is refused
/// at create, by name.
#[test]
fn test_a_module_is_started_at_the_export_its_entrypoint_names() {
    let module = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "hello from greet\n")
          (func (export "_start") (call $exit (i32.const 3)))
          (func (export "greet")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 17))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .expect("wat");
    let run = |id: &str, arg0: &str| {
        run_rm_with_spec(id, &[], &[arg0], |spec| {
            let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
            std::fs::create_dir_all(&root).expect("rootfs");
            std::fs::write(root.join("greet.wasm"), &module).expect("module");
        })
    };
    let out = run("export-greet", "/greet.wasm#greet");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from greet\n");
    let out = run("export-start", "/greet.wasm");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run("export-missing", "/greet.wasm#nope");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("container export-missing"), "{err}");
    assert!(err.contains("no `nope` export"), "{err}");
    for id in ["export-greet", "export-start", "export-missing"] {
        assert_no_leftovers(id);
    }
}

/// A native program gets exactly its stdio: neither the launcher's socket
/// nor the network-refusal socket every Wasm payload inherits.
#[test]
fn test_a_native_program_inherits_no_descriptor_of_the_shim() {
    let out = run_rm("native-fds", PAUSE_IMAGE, &[], &["/hog", "fds"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut fds: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    fds.sort();
    assert_eq!(fds, ["fd 0", "fd 1", "fd 2"], "{}", stdout(&out));
    assert_no_leftovers("native-fds");
}

/// A Wasm container keeps the descriptors its payload needs (stdio, its
/// compiled module, its preopens), none onto a procfs: a handle on the
/// host's /proc reaches every process's root. Once seen: libcgroups's
/// lookup in the launcher left pathrs's cached procfs handle to every
/// container cloned from it.
#[test]
fn test_a_wasm_container_holds_no_descriptor_onto_a_procfs_and_names_itself() {
    let out = run_detached(
        "proc-fds",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "sleep", "60"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = task_pid("proc-fds");
    // Told from its launcher by its command line (and `comm`, its id).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<_> = cmdline
        .split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let is_launcher = launcher_pids().iter().any(|(p, _)| *p == pid);
    let fds = descriptors(pid);
    let onto_proc: Vec<String> = fds
        .iter()
        .filter(|(fd, _)| {
            // A pipe or a socket has no statfs here; neither is a procfs.
            nix::sys::statfs::statfs(format!("/proc/{pid}/fd/{fd}").as_str())
                .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        })
        .map(|(fd, target)| format!("fd {fd} ({target})"))
        .collect();
    kill_and_remove("proc-fds");
    assert_eq!(
        words.get(1..3),
        Some(
            &[
                "--edgeshim-wasm-container".to_string(),
                "proc-fds".to_string()
            ][..]
        ),
        "{words:?}"
    );
    assert!(!is_launcher, "the container passes for a launcher");
    assert!(fds.contains_key(&1), "the container's stdout: {fds:?}");
    assert!(onto_proc.is_empty(), "onto a procfs: {onto_proc:?}");
    assert_no_leftovers("proc-fds");
}

/// A module the size of a real application (SQLite, about 1 MB of Wasm),
/// never seen before, logs into a database on a volume; a second container
/// adds to it. On WasmEdge the first start runs in the interpreter while
/// O2 compiles in the background, on Wasmtime it compiles first: the same
/// rows either way, and the file is SQLite's own format on the host.
#[test]
fn test_a_1mb_sqlite_module_logs_into_a_database_on_a_volume() {
    const IMAGE: &str = "edgeshim.test/sqlite-logger:1";
    import_module_image_in(
        NAMESPACE,
        IMAGE,
        &edgeshim_workloads::built("sqlite_logger.wasm"),
    );
    let host = tempfile::tempdir().expect("tempdir");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        host.path().display()
    );
    for (run, count) in [("sqlite-first", 250), ("sqlite-second", 500)] {
        let out = run_rm(
            run,
            IMAGE,
            &["--mount", &mount],
            &["/sqlite_logger.wasm", "/data/readings.db", "500"],
        );
        assert!(out.status.success(), "{run}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!("humidity count={count} mean=12.25\ntemperature count={count} mean=12.50\n"),
            "{run}"
        );
        assert_no_leftovers(run);
    }
    let database = std::fs::read(host.path().join("readings.db")).expect("readings.db");
    assert!(database.starts_with(b"SQLite format 3\0"), "not a database");
}

#[test]
fn test_the_sensor_module_aggregates_its_readings_into_windows() {
    let out = run_sensor("sensor-windows", 10);
    assert!(out.status.success(), "{}", stderr(&out));
    let windows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON window"))
        .collect();
    // 10 s at 10 Hz: two 5-second windows of 50 readings.
    assert_eq!(windows.len(), 2, "{}", stdout(&out));
    for (index, window) in windows.iter().enumerate() {
        assert_eq!(window["window_start_ms"], 5000 * index);
        assert_eq!(window["count"], 50);
        let field = |name: &str| window[name].as_f64().expect(name);
        // A 60 degree signal, drifting by at most 5, with noise under 1.
        assert!((54.0..66.0).contains(&field("mean")), "{window}");
        assert!(field("min") <= field("mean") && field("mean") <= field("max"));
        assert!(field("max") - field("min") < 31.0, "{window}");
    }
    assert_no_leftovers("sensor-windows");
}

#[test]
fn test_a_spec_just_under_each_limit_runs_and_just_over_is_refused_by_name() {
    use edgeshim_bundle::limits::{MAX_ARGS_ENV_BYTES, MAX_CONFIG_BYTES, MAX_ENV, MAX_MOUNTS};
    let probe = edgeshim_workloads::built("probe.wasm");
    let env = |n: usize| -> Vec<String> { (0..n).map(|i| format!("K{i}=v")).collect() };
    let mounts = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| serde_json::json!({"destination": format!("/m{i}"), "type": "tmpfs", "source": "tmpfs"}))
            .collect()
    };
    // Just under: the module runs, and sees the last variable.
    let out = run_rm_with_spec(
        "limits-under",
        &[(probe.clone(), "/probe.wasm")],
        &["/probe.wasm", "env", &format!("K{}", MAX_ENV - 1)],
        |spec| {
            spec["process"]["env"] = serde_json::json!(env(MAX_ENV));
            let mut all = spec["mounts"].as_array().cloned().unwrap_or_default();
            let room = MAX_MOUNTS.saturating_sub(all.len());
            all.extend(mounts(room));
            spec["mounts"] = serde_json::json!(all);
        },
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("K{}=v", MAX_ENV - 1)));
    assert_no_leftovers("limits-under");

    // Just over each: refused at create, naming the container and the cause.
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "limits-env",
            Box::new(move |spec| spec["process"]["env"] = serde_json::json!(env(MAX_ENV + 1))),
            format!("process.env has {} entries", MAX_ENV + 1),
        ),
        (
            "limits-bytes",
            Box::new(|spec| {
                let long = "a".repeat(MAX_ARGS_ENV_BYTES);
                spec["process"]["args"] = serde_json::json!(["/probe.wasm", long]);
            }),
            "process.args and process.env has".to_string(),
        ),
        (
            "limits-config",
            Box::new(|spec| {
                let big = "a".repeat(usize::try_from(MAX_CONFIG_BYTES).expect("size"));
                spec["annotations"] = serde_json::json!({ "example.com/big": big });
            }),
            "config.json has".to_string(),
        ),
        (
            "limits-mounts",
            Box::new(move |spec| spec["mounts"] = serde_json::json!(mounts(MAX_MOUNTS + 1))),
            format!("mounts has {} entries", MAX_MOUNTS + 1),
        ),
    ];
    for (id, edit, cause) in cases {
        let out = run_rm_with_spec(
            id,
            &[(probe.clone(), "/probe.wasm")],
            &["/probe.wasm"],
            edit,
        );
        assert!(!out.status.success(), "{id} ran");
        let said = stderr(&out);
        assert!(said.contains(&format!("container {id}")), "{said}");
        assert!(said.contains(&cause), "{cause} not in: {said}");
        assert_no_leftovers(id);
    }
}

/// Whether the node's cache holds a compiled entry for the module whose
/// sha256 is `hash` (in any engine's folder).
fn compiled_in_cache(hash: &str) -> bool {
    std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
        .any(|engine| {
            engine
                .path()
                .join(format!("{hash}.d"))
                .join("sha256")
                .exists()
        })
}

/// A module's first start never waits for an O2 compile on the WasmEdge
/// shim: it runs on O0 code while a helper compiles it at O2, and the
/// cache holds the O2 code for the starts after (Wasmtime's Cranelift
/// compiles before the first start, in milliseconds).
#[test]
fn test_a_new_module_starts_before_its_native_code_and_is_cached_for_later_starts() {
    let line = format!("fresh module of test process {}\n", std::process::id());
    let bytes = module_printing(&line);
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let run = |id: &str| {
        run_rm_with_spec(id, &[], &["/fresh.wasm"], |spec| {
            let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
            std::fs::create_dir_all(&root).expect("rootfs");
            std::fs::write(root.join("fresh.wasm"), &bytes).expect("module");
        })
    };
    let out = run("fresh-first");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), line);
    if engine() == WASMEDGE {
        let said = containerd_log().lines().any(|l| {
            l.contains(&hash) && l.contains("while it is compiled at O2 in the background")
        });
        assert!(said, "no line says {hash} started interpreted");
        await_condition("the background compile's cache entry", LIMIT, || {
            compiled_in_cache(&hash)
        });
    } else {
        assert!(compiled_in_cache(&hash), "compiled before the first start");
    }
    let out = run("fresh-second");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), line);
    for id in ["fresh-first", "fresh-second"] {
        assert_no_leftovers(id);
    }
    // The helper's input is gone once it is done.
    let pending = std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|engine| {
            std::fs::read_dir(engine.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(&format!(".pending-{hash}"))
        });
    assert!(!pending, "the background compile's input was left behind");
}

/// The state letter and current system call of `pid` (`/proc/PID/stat`'s
/// third field, `/proc/PID/syscall`'s first); `None` once it is gone.
fn state_and_syscall(pid: u32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    Some((state, syscall.split_whitespace().next()?.to_string()))
}

/// A sleeping module stopped and continued (`kill -STOP`/`-CONT`, a
/// debugger attaching) sleeps on, as a native process does: Wasmtime's
/// event loop retries the interrupted wait. WasmEdge 0.14.1 does not: its
/// `poll_oneoff` (lib/host/wasi/inode-linux.cpp, `Poller::wait`) hands
/// `epoll_wait`'s EINTR, which Linux returns after a stop even without a
/// signal handler, to the module, whose sleep then ends early. The test
/// holds each engine to what it does, so that an engine upgrade that
/// changes it is noticed.
#[test]
fn test_a_sleeping_module_stopped_and_continued_sleeps_on() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let id = "stop-cont";
    let out = run_detached(id, PROBE_IMAGE, &[], &["/probe.wasm", "sleep", "100000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = task_pid(id);
    let mut asleep = None;
    await_condition("the module asleep", LIMIT, || {
        asleep = state_and_syscall(pid).filter(|(state, _)| *state == 'S');
        asleep.is_some()
    });
    let Some((_, sleeping_in)) = asleep else {
        unreachable!("awaited")
    };
    let target = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    kill(target, Signal::SIGSTOP).expect("SIGSTOP");
    // A SIGCONT sent while the stop is still pending would discard it.
    await_condition("the module stopped", LIMIT, || {
        state_and_syscall(pid).is_some_and(|(state, _)| state == 'T')
    });
    kill(target, Signal::SIGCONT).expect("SIGCONT");
    if engine() == WASMEDGE {
        await_condition("the sleep cut short", LIMIT, || {
            task_status(id).as_deref() == Some("STOPPED")
        });
    } else {
        // The kernel resumes an interrupted sleep through restart_syscall.
        let restarted = nix::libc::SYS_restart_syscall.to_string();
        await_condition("the module back in its sleep", LIMIT, || {
            !process_alive(pid)
                || state_and_syscall(pid).is_some_and(|(state, call)| {
                    state == 'S' && (call == sleeping_in || call == restarted)
                })
        });
        assert!(process_alive(pid), "the module ended after SIGCONT");
        assert_eq!(task_status(id).as_deref(), Some("RUNNING"));
    }
    remove(id);
    assert_no_leftovers(id);
}
