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
