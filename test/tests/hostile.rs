//! Hostile modules against the real containerd: every route out of a bind
//! mount an attacker with write access to the volume could plant (links
//! into /proc and to the host's files, `..` from each mount and from
//! /dev/shm, hard links, a FIFO named like a file), a FIFO planted as the
//! entrypoint itself, and modules that spin in host calls or flood their
//! output: each refused or stopped, the shim serving on, nothing left.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use edgeshim_integration::pods::*;
use edgeshim_integration::*;

/// A host folder the container must never reach, with one secret file.
fn host_secret() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "host only\n").expect("write secret");
    (dir, secret)
}

/// `..` enough times to climb from any folder of the container to its `/`.
const UP: &str = "../../../../../../../../..";

#[test]
fn test_a_module_finds_no_route_out_of_a_bind_mount_or_dev_shm() {
    let (_outside, secret) = host_secret();
    let secret_dir = secret.parent().expect("folder").display().to_string();
    let volume = tempfile::tempdir().expect("volume");
    let plant = |name: &str, target: &str| {
        std::os::unix::fs::symlink(target, volume.path().join(name)).expect("plant link");
    };
    plant("proc", "/proc");
    plant("environ", "/proc/self/environ");
    plant("root", "/");
    plant("abs-secret", &secret.display().to_string());
    plant("up-secret", &format!("{UP}{secret_dir}/secret"));
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        volume.path().display()
    );
    let routes = [
        "/data/proc/self/environ".to_string(),
        "/data/proc/1/root/etc/shadow".into(),
        "/data/environ".into(),
        "/data/root/etc/shadow".into(),
        "/data/abs-secret".into(),
        "/data/up-secret".into(),
        format!("/data/{UP}{secret_dir}/secret"),
        format!("/dev/shm/{UP}{secret_dir}/secret"),
        format!("/dev/shm/{UP}proc/self/environ"),
        format!("/dev/{UP}{secret_dir}/secret"),
        "/proc/self/environ".into(),
        format!("{secret_dir}/secret"),
    ];
    let mut args = vec!["/probe.wasm", "escape"];
    args.extend(routes.iter().map(String::as_str));
    let out = run_rm("hostile-routes", PROBE_IMAGE, &["--mount", &mount], &args);
    let printed = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "opened: {printed}");
    for route in &routes {
        assert!(
            printed.contains(&format!("refused {route}: ")),
            "{route} not refused: {printed}"
        );
    }

    // Hard links: from the mount to the host's file (through `..` or a
    // planted link), and from it to outside the mount. Whatever the engine
    // answers, the host's file must gain no name.
    for (index, (from, to)) in [
        (
            format!("/data/{UP}{secret_dir}/secret"),
            "/data/stolen".to_string(),
        ),
        (
            "/data/abs-secret".into(),
            "/data/stolen-through-link".into(),
        ),
        ("/data/root/etc/passwd".into(), "/data/passwd".into()),
        (
            "/data/environ".into(),
            format!("/data/{UP}{secret_dir}/planted"),
        ),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("hostile-link-{index}");
        let out = run_rm(
            &id,
            PROBE_IMAGE,
            &["--mount", &mount],
            &["/probe.wasm", "link", from, to],
        );
        let read = run_rm(
            &format!("{id}-read"),
            PROBE_IMAGE,
            &["--mount", &mount],
            &["/probe.wasm", "escape", to],
        );
        assert_eq!(
            read.status.code(),
            Some(0),
            "{from} -> {to}: {}; then {}",
            stdout(&out),
            stdout(&read)
        );
        assert_no_leftovers(&id);
        assert_no_leftovers(&format!("{id}-read"));
    }
    assert_eq!(
        std::fs::metadata(&secret).expect("secret").nlink(),
        1,
        "the host's file gained a name"
    );
    assert!(!Path::new(&format!("{secret_dir}/planted")).exists());
    assert_no_leftovers("hostile-routes");
}

#[test]
fn test_a_fifo_named_like_a_file_blocks_only_its_reader_which_is_stopped_by_sigterm() {
    let volume = tempfile::tempdir().expect("volume");
    nix::unistd::mkfifo(
        &volume.path().join("config.json"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .expect("mkfifo");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        volume.path().display()
    );
    let out = run_detached(
        "hostile-fifo",
        PROBE_IMAGE,
        &["--mount", &mount],
        &["/probe.wasm", "read", "/data/config.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("the reader to run", LIMIT, || {
        task_status("hostile-fifo").as_deref() == Some("RUNNING")
    });
    // The shim serves another container meanwhile.
    let hello = run_rm(
        "hostile-fifo-hello",
        PROBE_IMAGE,
        &[],
        &["/probe.wasm", "hello"],
    );
    assert_eq!(stdout(&hello), "hello from wasm\n", "{}", stderr(&hello));
    let kill = ctr(&["task", "kill", "-s", "SIGTERM", "hostile-fifo"]);
    assert!(kill.status.success(), "{}", stderr(&kill));
    await_condition("the blocked reader to stop on SIGTERM", LIMIT, || {
        task_status("hostile-fifo").as_deref() == Some("STOPPED")
    });
    remove("hostile-fifo");
    assert_no_leftovers("hostile-fifo");
    assert_no_leftovers("hostile-fifo-hello");
}

#[test]
fn test_a_fifo_planted_as_the_entrypoint_is_refused_by_kind_not_waited_on() {
    // A rootfs of the node's own (`ctr run --rootfs`), its module a FIFO.
    let rootfs = tempfile::tempdir().expect("rootfs");
    nix::unistd::mkfifo(
        &rootfs.path().join("probe.wasm"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .expect("mkfifo");
    let root = rootfs.path().display().to_string();
    images();
    let out = ctr(&[
        "run",
        "--rm",
        "--runtime",
        engine().runtime,
        "--rootfs",
        &root,
        "hostile-fifo-entrypoint",
        "/probe.wasm",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("entrypoint \"/probe.wasm\" is a FIFO, not a regular file"),
        "{}",
        stderr(&out)
    );
    remove("hostile-fifo-entrypoint");
    assert_no_leftovers("hostile-fifo-entrypoint");
}

/// Bytes in a CRI log file.
fn log_bytes(logs: &Path, name: &str) -> u64 {
    std::fs::metadata(logs.join(format!("{name}.log"))).map_or(0, |m| m.len())
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What each flood writes before the pod's shim is measured.
const FLOODED: u64 = 32 << 20;

#[test]
fn test_modules_spinning_in_host_calls_or_flooding_output_are_stopped_and_the_pod_serves_on() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod("hostile-spin", "uid-hostile-spin", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let shim = shim_pid_for(&pod_id).expect("the pod's shim");
    let hostile = [
        ("clock", vec!["hostcalls", "clock"], "calling clock"),
        ("random", vec!["hostcalls", "random"], "calling random"),
        ("badfd", vec!["hostcalls", "badfd"], "calling badfd"),
        ("flood-out", vec!["flood", "out"], "flooding"),
        ("flood-err", vec!["flood", "err"], "flooding"),
    ];
    let mut ids = Vec::new();
    for (name, args, _) in &hostile {
        let id = cri
            .create_container(&pod_id, &container(name, args).to_cri(), &pod)
            .expect("CreateContainer");
        cri.start_container(&id).expect("StartContainer");
        ids.push(id);
    }
    for (name, _, line) in &hostile {
        await_condition(&format!("{name} to say {line:?}"), LIMIT, || {
            std::fs::read(logs.path().join(format!("{name}.log"))).is_ok_and(|text| {
                String::from_utf8_lossy(&text[..text.len().min(4096)]).contains(line)
            })
        });
    }
    // Measured once every module runs: the engine and the prepared
    // modules are in the shim by then, and only the floods go on.
    let before = rss_kb(shim);
    await_condition("both floods to write 32 MiB", LIMIT, || {
        log_bytes(logs.path(), "flood-out") > FLOODED
            && log_bytes(logs.path(), "flood-err") > FLOODED
    });
    // The output goes from the module to containerd, not through the shim.
    let during = rss_kb(shim);
    assert!(
        during < before + 16 * 1024,
        "the shim grew from {before} KB to {during} KB while 64 MiB went by"
    );
    // The pod's shim serves its next container, and answers for the others.
    let (hello, _) = run_hello(&mut cri, &pod_id, &pod, logs.path());
    for id in &ids {
        let status = cri.container_status(id).expect("status");
        assert_eq!(edgeshim_cri::state_name(status.state), "Running", "{id}");
        cri.container_stats(id)
            .expect("stats of a spinning container");
    }
    // Each stops on StopContainer within its grace (SIGTERM, then SIGKILL).
    for ((name, _, _), id) in hostile.iter().zip(&ids) {
        cri.stop_container(id, 2).expect("StopContainer");
        let status = wait_exited(&mut cri, id);
        assert!(
            [137, 143].contains(&status.exit_code),
            "{name}: exit {} ({})",
            status.exit_code,
            status.reason
        );
    }
    let all: Vec<&String> = ids.iter().chain([&hello]).collect();
    remove_pod(&mut cri, &pod_id, &all);
    // The floods' logs are large: gone with the folder.
    drop(logs);
}

/// CPU time process `pid` has had, in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

#[test]
fn test_a_module_flooding_stdout_that_nobody_reads_costs_its_shim_nothing_and_stops_on_sigterm() {
    // `ctr run -d` leaves at once: nobody reads the container's stdout FIFO.
    let id = "hostile-unread";
    let out = run_detached(id, PROBE_IMAGE, &[], &["/probe.wasm", "flood", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    await_condition("the flood to run", LIMIT, || {
        task_status(id).as_deref() == Some("RUNNING")
    });
    let pid = task_pid(id);
    let shim = shim_pid_for(id).expect("its shim");
    let before = rss_kb(shim);
    // A second of CPU spent writing into a FIFO nobody reads.
    await_condition("the module to spend a second writing", LIMIT, || {
        cpu_ticks(pid) > 100
    });
    let during = rss_kb(shim);
    assert!(
        during < before + 16 * 1024,
        "the shim grew from {before} KB to {during} KB"
    );
    let kill = ctr(&["task", "kill", "-s", "SIGTERM", id]);
    assert!(kill.status.success(), "{}", stderr(&kill));
    await_condition("the flood to stop on SIGTERM", LIMIT, || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    remove(id);
    assert_no_leftovers(id);
}

/// Plants `link` -> `target` in the spec's rootfs folder and binds `volume`
/// (holding a file `token`) on `/<link>/mnt`.
fn plant_and_bind(spec: &mut serde_json::Value, link: &str, target: &str, volume: &Path) {
    let rootfs = PathBuf::from(spec["root"]["path"].as_str().expect("rootfs"));
    std::os::unix::fs::symlink(target, rootfs.join(link)).expect("plant link");
    spec["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(serde_json::json!({
            "destination": format!("/{link}/mnt"),
            "type": "bind",
            "source": volume,
            "options": ["rbind", "rw"],
        }));
}

#[test]
fn test_a_link_planted_as_a_mount_point_cannot_take_the_mount_out_of_the_rootfs() {
    let (outside, _secret) = host_secret();
    let volume = tempfile::tempdir().expect("volume");
    std::fs::write(volume.path().join("token"), "from the volume\n").expect("token");
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let host_dir = outside.path().display().to_string();
    let host_has_only_its_secret = || {
        let names: Vec<_> = std::fs::read_dir(outside.path())
            .expect("host folder")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, ["secret"], "the host folder was written to");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounts.contains(&host_dir), "a mount landed on the host");
    };

    // An absolute link names a host folder; inside the rootfs it names
    // nothing, and the mount point is refused by name.
    let out = run_rm_with_spec("link-abs", &files, &["/probe.wasm", "hello"], |spec| {
        plant_and_bind(spec, "data", &host_dir, volume.path())
    });
    let err = stderr(&out);
    assert!(!out.status.success(), "ran with a mount on a planted link");
    assert!(err.contains("container link-abs"), "{err}");
    assert!(
        err.contains("data is a link to something missing in the rootfs"),
        "{err}"
    );
    host_has_only_its_secret();
    assert_no_leftovers("link-abs");

    // A climbing link ends at the rootfs's own root: the volume is mounted
    // at /mnt inside it, and the module reads it there.
    let up = format!("{UP}{host_dir}");
    let out = run_rm_with_spec(
        "link-up",
        &files,
        &["/probe.wasm", "read", "/mnt/token"],
        |spec| {
            let rootfs = PathBuf::from(spec["root"]["path"].as_str().expect("rootfs"));
            std::fs::create_dir_all(rootfs.join(host_dir.trim_start_matches('/')))
                .expect("the link's target inside the rootfs");
            plant_and_bind(spec, "up", &up, volume.path());
            spec["process"]["args"] =
                serde_json::json!(["/probe.wasm", "read", format!("{host_dir}/mnt/token")]);
        },
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the volume\n");
    host_has_only_its_secret();
    assert_no_leftovers("link-up");
}

#[test]
fn test_a_spec_beyond_the_direct_launch_path_runs_through_libcontainer_with_the_same_sandbox() {
    // A shared rootfs propagation is one thing only libcontainer makes.
    let files = [(built("probe.wasm"), "/probe.wasm")];
    let shared = |spec: &mut serde_json::Value| {
        spec["linux"]["rootfsPropagation"] = serde_json::json!("shared");
    };
    let out = run_rm_with_spec(
        "libcontainer-made",
        &files,
        &["/probe.wasm", "list", "/proc"],
        shared,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0 entries\n", "/proc is masked on both paths");
    assert!(
        containerd_log().contains(
            "container libcontainer-made: made through libcontainer (rootfs propagation \"shared\")"
        ),
        "the shim did not say which path made it"
    );
    assert_no_leftovers("libcontainer-made");
}
