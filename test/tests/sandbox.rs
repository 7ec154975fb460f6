//! A pod's sandbox (the pause container) on the direct launch path: the
//! shim makes it with one clone and `exec`s the pause program, where it
//! went through libcontainer before (whose cgroup join waits for an RCU
//! grace period on a quiet node). The pause it makes must be the one runc
//! makes for the same pod: same program, privileges and mounts, and no
//! signal blocked or ignored.

use std::collections::BTreeMap;
use std::path::Path;

use edgeshim_integration::pods::*;
use edgeshim_integration::*;

#[test]
fn test_a_pods_pause_made_directly_matches_runcs() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let ours = pod("pause-direct", "uid-pause-direct", false, logs.path());
    let theirs = pod("pause-runc", "uid-pause-runc", false, logs.path());
    let our_pod = cri.run_pod(&ours, handler()).expect("RunPodSandbox");
    let their_pod = cri.run_pod(&theirs, "runc").expect("RunPodSandbox (runc)");

    // The direct path's record, not libcontainer's state.
    let state = Path::new("/run/edgeshim")
        .join(CRI_NAMESPACE)
        .join(&our_pod);
    assert!(
        state.join("process.json").is_file() && !state.join("state.json").exists(),
        "the pause was not made on the direct path: {:?}",
        std::fs::read_dir(&state).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let our_pid = task_pid_in(CRI_NAMESPACE, &our_pod);
    let their_pid = task_pid_in(CRI_NAMESPACE, &their_pod);

    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert_eq!(exe(our_pid), exe(their_pid), "the program");
    assert_eq!(
        process_status(our_pid),
        process_status(their_pid),
        "privileges"
    );
    // No signal blocked or ignored: the pause program sets its own
    // handlers. (runc's pause sometimes inherits signal 32 ignored from
    // runc's Go init, so it is not the reference here.)
    for field in ["SigBlk", "SigIgn"] {
        assert_eq!(status_field(our_pid, field), "0000000000000000", "{field}");
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{our_pid}/cmdline")).expect("cmdline"),
        "/pause\0"
    );
    // The pause is the first process of its own pid namespace.
    let nspid = status_field(our_pid, "NSpid");
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");
    for ns in ["pid", "ipc", "uts", "mnt", "net"] {
        let link = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("ns");
        assert_ne!(link(&our_pid.to_string()), link("self"), "{ns} namespace");
    }
    assert_eq!(mounts(our_pid), mounts(their_pid), "the mounts");
    // Its cgroup is the pod's, limits included.
    let shares = |pod: &str| {
        std::fs::read_to_string(
            Path::new("/sys/fs/cgroup/cpu")
                .join(CRI_NAMESPACE)
                .join(pod)
                .join("cpu.shares"),
        )
        .expect("cpu.shares")
    };
    assert_eq!(shares(&our_pod), shares(&their_pod));
    let cgroup = std::fs::read_to_string(format!("/proc/{our_pid}/cgroup")).expect("cgroup");
    assert!(
        cgroup
            .lines()
            .filter(|l| !l.starts_with("0::") && !l.contains("name="))
            .all(|l| l.ends_with(&format!("/{CRI_NAMESPACE}/{our_pod}"))),
        "{cgroup}"
    );

    // The pod runs Wasm as before, and leaves nothing behind.
    let (hello, log) = run_hello(&mut cri, &our_pod, &ours, logs.path());
    assert!(log.contains("hello from wasm"), "{log}");
    remove_pod(&mut cri, &our_pod, &[&hello]);
    remove_pod(&mut cri, &their_pod, &[]);
}

/// The fields of /proc/<pid>/status that say what the program may do.
fn process_status(pid: u32) -> BTreeMap<&'static str, String> {
    [
        "Uid",
        "Gid",
        "Groups",
        "NoNewPrivs",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "Seccomp",
    ]
    .into_iter()
    .map(|field| (field, status_field(pid, field)))
    .collect()
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

/// Each mount point with its file system type and per-mount options (the
/// source and super-block options name the pod's own folders and sizes).
fn mounts(pid: u32) -> Vec<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    info.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let separator = fields.iter().position(|f| *f == "-").expect("separator");
            let (point, options, kind) = (fields[4], fields[5], fields[separator + 1]);
            format!("{point} {kind} {options}")
        })
        .collect()
}

/// `ctr oci spec` less its cgroup mount: a native spec the direct path
/// makes (containerd's own specs keep that mount and go to libcontainer).
fn direct_native(spec: &mut serde_json::Value) {
    spec["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["type"] != "cgroup");
}

/// Whether the shim said it made container `id` through libcontainer.
fn made_through_libcontainer(id: &str) -> bool {
    let said = format!("container {id}: made through libcontainer");
    containerd_log().contains(&said)
}

/// Runs `/hog <mode>` as container `id` on the direct path (`edit` adds to
/// the spec); returns what it printed, once nothing of it is left.
fn hog_made_directly(id: &str, mode: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let files = [(edgeshim_workloads::built("hog"), "/hog")];
    let out = run_rm_with_spec(id, &files, &["/hog", mode], |spec| {
        direct_native(spec);
        edit(spec);
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!made_through_libcontainer(id));
    assert_no_leftovers(id);
    stdout(&out)
}

#[test]
fn test_a_native_program_made_directly_keeps_no_launcher_descriptor() {
    let printed = hog_made_directly("direct-fds", "fds", |_| {});
    assert_eq!(printed, "fd 0\nfd 1\nfd 2\n");
}

#[test]
fn test_a_fifo_at_the_images_passwd_does_not_hold_a_native_create() {
    let printed = hog_made_directly("direct-home", "home", |spec| {
        let rootfs = Path::new(spec["root"]["path"].as_str().expect("rootfs")).to_path_buf();
        std::fs::create_dir_all(rootfs.join("etc")).expect("etc");
        nix::unistd::mkfifo(
            &rootfs.join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
    });
    assert_eq!(printed, "HOME=/\n");
}

#[test]
fn test_a_native_program_missing_from_the_image_fails_the_create_by_name() {
    let out = run_rm_with_spec("direct-missing", &[], &["/missing"], |spec| {
        direct_native(spec);
        let rootfs = spec["root"]["path"].as_str().expect("rootfs");
        std::fs::create_dir_all(rootfs).expect("an empty rootfs");
    });
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("direct-missing") && said.contains("/missing"),
        "{said}"
    );
    assert!(!made_through_libcontainer("direct-missing"));
    // ctr removes what it made; the shim must leave nothing either.
    ctr(&["container", "rm", "direct-missing"]);
    assert_no_leftovers("direct-missing");
}
