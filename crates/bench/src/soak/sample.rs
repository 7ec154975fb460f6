//! What a soak sample reads from the machine: the long-lived pods' shims and
//! launchers and containerd (descriptors, threads, RSS), and the node-wide
//! counts a leak would show in (cgroup folders, mounts, shim sockets, state
//! folders, the decision log's files).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cycles::{self, ProcSample};

/// containerd's shim sockets (containerd 1.6 keeps them here whatever its
/// state folder).
const SHIM_SOCKETS: &str = "/run/containerd/s";
/// The cgroup hierarchies of a hybrid host (v1 controllers and the unified
/// tree), or of a pure cgroup2 host.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One process in a sample, by its role (its pid may change).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    /// `containerd`, `shim <pod>`, `launcher <pod>`
    pub role: String,
    pub sample: Option<ProcSample>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub cycle: usize,
    pub processes: Vec<Process>,
    /// Folders in every cgroup hierarchy, summed.
    pub cgroups: u64,
    /// Lines of this process's mountinfo (the host's mount namespace).
    pub mounts: u64,
    /// Entries of `/run/containerd/s`.
    pub sockets: u64,
    /// containerd's task, CRI container and sandbox folders and the shims'
    /// state folders, summed.
    pub state_dirs: u64,
    /// The decision log and its rotated files, bytes and files.
    pub decision_log_bytes: u64,
    pub decision_log_files: u64,
    /// What containerd's descriptors point at (`socket:[inode]`, paths).
    #[serde(default)]
    pub containerd_descriptors: Vec<String>,
    /// containerd's descriptors new since the sample before, each with
    /// what `ss` says of a socket (its state, its peer and who holds that):
    /// what a moved count is made of.
    #[serde(default)]
    pub containerd_new_descriptors: Vec<String>,
}

/// Where the machine-wide things live.
pub struct Places {
    pub containerd_state: PathBuf,
    pub containerd_pid: Option<u32>,
    pub decision_log: Option<PathBuf>,
    /// Rotated files the log keeps (`<log>.1` to `<log>.<keep>`).
    pub decision_log_keep: u32,
    /// Whether the shims have launchers (edgeshim's do; runc's shim not).
    pub launchers: bool,
}

impl Sample {
    /// The node's counts: what a removed pod must not leave.
    pub fn node_counts(&self) -> Vec<(String, u64)> {
        vec![
            ("cgroup folders".to_string(), self.cgroups),
            ("mounts".to_string(), self.mounts),
            ("shim sockets".to_string(), self.sockets),
            ("state folders".to_string(), self.state_dirs),
        ]
    }

    /// The counts that must not move once the run is warm: the node's, and
    /// each process's descriptors and threads.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let mut counts = self.node_counts();
        for p in &self.processes {
            let s = p.sample.as_ref();
            counts.push((
                format!("{} descriptors", p.role),
                s.map_or(0, |s| s.fds as u64),
            ));
            counts.push((
                format!("{} threads", p.role),
                s.map_or(0, |s| s.threads as u64),
            ));
        }
        counts
    }
}

/// Reads a settled sample: the last container's teardown (its exit and OOM
/// threads, containerd's side of it) ends a moment after RemoveContainer
/// returns, so the counts are read until two reads 100 ms apart agree (at
/// most 20 reads). A leak never settles back; a teardown in flight does.
pub fn take(cycle: usize, pods: &[(String, String)], places: &Places) -> Sample {
    let mut last = read(cycle, pods, places);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = read(cycle, pods, places);
        if now.counts() == last.counts() {
            return now;
        }
        last = now;
    }
    last
}

/// Reads one sample; `pods` are the long-lived pods as (name, id).
fn read(cycle: usize, pods: &[(String, String)], places: &Places) -> Sample {
    let mut processes = vec![Process {
        role: "containerd".into(),
        sample: places.containerd_pid.and_then(cycles::proc_sample),
    }];
    for (name, id) in pods {
        let shim = cycles::shim_pid(id);
        processes.push(Process {
            role: format!("shim {name}"),
            sample: shim.and_then(cycles::proc_sample),
        });
        if places.launchers {
            processes.push(Process {
                role: format!("launcher {name}"),
                sample: shim
                    .and_then(cycles::launcher_pid)
                    .and_then(cycles::proc_sample),
            });
        }
    }
    let dirs = cycles::state_dirs(&places.containerd_state);
    let everything = std::collections::HashSet::new();
    let state_dirs = [&dirs.task, &dirs.cri, &dirs.shim]
        .into_iter()
        .map(|d| cycles::count(d, &everything).total as u64)
        .sum();
    let (decision_log_bytes, decision_log_files) = places
        .decision_log
        .as_deref()
        .map(|log| log_files(log, places.decision_log_keep))
        .unwrap_or_default();
    Sample {
        cycle,
        processes,
        cgroups: folders_under(Path::new(CGROUP_ROOT), 0)
            - namespace_parents(Path::new(CGROUP_ROOT), CRI_NAMESPACE),
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| t.lines().count() as u64)
            .unwrap_or_default(),
        sockets: std::fs::read_dir(SHIM_SOCKETS).map_or(0, |d| d.count() as u64),
        state_dirs,
        decision_log_bytes,
        decision_log_files,
        containerd_descriptors: places
            .containerd_pid
            .map(descriptor_targets)
            .unwrap_or_default(),
        containerd_new_descriptors: Vec::new(),
    }
}

/// Where each of `pid`'s descriptors points, sorted.
fn descriptor_targets(pid: u32) -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    targets.sort();
    targets
}

/// containerd's descriptors in `now` and not in `before` (as many times as
/// they are new), each socket with the `ss -xpn` lines of it and of its
/// peer.
pub fn new_descriptors(before: &Sample, now: &Sample) -> Vec<String> {
    let mut old = before.containerd_descriptors.clone();
    let mut new = Vec::new();
    for target in &now.containerd_descriptors {
        match old.iter().position(|t| t == target) {
            Some(at) => {
                old.swap_remove(at);
            }
            None => new.push(target.clone()),
        }
    }
    if new.iter().any(|t| t.starts_with("socket:[")) {
        let ss = std::process::Command::new("ss")
            .args(["-xpn"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for target in &mut new {
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                let said = socket_lines(&ss, inode);
                if !said.is_empty() {
                    *target = format!("{target} ({said})");
                }
            }
        }
    }
    new
}

/// The `ss -xpn` line of socket `inode` and, when it has a live peer, the
/// peer's line, squeezed onto one line each.
fn socket_lines(ss: &str, inode: &str) -> String {
    let squeeze = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    // Columns: Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port [Process].
    let of = |inode: &str| {
        ss.lines()
            .find(|l| l.split_whitespace().nth(5) == Some(inode))
            .map(|l| (squeeze(l), l.split_whitespace().nth(7).map(str::to_string)))
    };
    match of(inode) {
        Some((line, Some(peer))) if peer != "0" && peer != "*" => match of(&peer) {
            Some((peer_line, _)) => format!("{line}; peer: {peer_line}"),
            None => format!("{line}; peer {peer} not found"),
        },
        Some((line, _)) => line,
        None => String::new(),
    }
}

/// containerd's CRI namespace, whose name is the pods' parent cgroup.
const CRI_NAMESPACE: &str = "k8s.io";

/// The namespace's parent folders (one per hierarchy): made by the node's
/// first pod, whatever its runtime, and kept after its last pod, as runc
/// keeps them, so not a pod's leftover. Their children are counted.
fn namespace_parents(root: &Path, namespace: &str) -> u64 {
    let Ok(hierarchies) = std::fs::read_dir(root) else {
        return 0;
    };
    hierarchies
        .flatten()
        .filter(|h| h.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|h| h.path().join(namespace).is_dir())
        .count() as u64
}

/// Folders below `dir`, not following links (a cgroup tree has none, but
/// `/sys/fs/cgroup` holds links like `cpu -> cpu,cpuacct`).
fn folders_under(dir: &Path, depth: usize) -> u64 {
    if depth > 32 {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| 1 + folders_under(&e.path(), depth + 1))
        .sum()
}

/// Bytes and files of `log` and the rotated copies it keeps (`<log>.1` to
/// `<log>.<keep>`; older ones from a larger `keep` are not the log's now).
fn log_files(log: &Path, keep: u32) -> (u64, u64) {
    let mut total = (0, 0);
    for index in 0..=keep {
        let path = match index {
            0 => log.to_path_buf(),
            i => PathBuf::from(format!("{}.{i}", log.display())),
        };
        if let Ok(meta) = std::fs::metadata(&path) {
            total.0 += meta.len();
            total.1 += 1;
        }
    }
    total
}

/// containerd's pid: the pid file `hack/containerd.sh` keeps beside the
/// socket, else the one process named `containerd`.
pub fn containerd_pid(address: &Path) -> Option<u32> {
    let from_file = address
        .parent()
        .and_then(|dir| std::fs::read_to_string(dir.join("containerd.pid")).ok())
        .and_then(|t| t.trim().parse().ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
    from_file.or_else(|| {
        let named: Vec<u32> = cycles::pids()
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "containerd")
            })
            .collect();
        (named.len() == 1).then(|| named[0])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_namespace_parent_is_not_counted_but_what_is_below_it_is() {
        let root = tempfile::tempdir().expect("root");
        for dir in ["memory/k8s.io/pod-a", "cpu/k8s.io", "pids/other", "devices"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("dir");
        }
        assert_eq!(folders_under(root.path(), 0), 8);
        assert_eq!(namespace_parents(root.path(), CRI_NAMESPACE), 2);
    }

    #[test]
    fn test_a_socket_is_told_with_its_peer_and_a_closed_peer_as_such() {
        let ss = "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n\
                  u_str ESTAB 0 0 /run/c.sock.ttrpc 100 * 200 users:((\"containerd\",pid=9,fd=30))\n\
                  u_str ESTAB 0 0 * 200 * 100 users:((\"containerd-shim\",pid=42,fd=3))\n\
                  u_str ESTAB 0 0 /run/c.sock.ttrpc 300 * 0 users:((\"containerd\",pid=9,fd=31))\n";
        let told = socket_lines(ss, "100");
        assert!(told.contains("fd=30") && told.contains("peer:"), "{told}");
        assert!(told.contains("pid=42"), "{told}");
        let closed = socket_lines(ss, "300");
        assert!(
            closed.contains("fd=31") && !closed.contains("peer:"),
            "{closed}"
        );
        assert_eq!(socket_lines(ss, "999"), "");
    }

    #[test]
    fn test_new_descriptors_are_those_not_there_before_counted_with_repeats() {
        let sample = |fds: &[&str]| Sample {
            cycle: 0,
            processes: Vec::new(),
            cgroups: 0,
            mounts: 0,
            sockets: 0,
            state_dirs: 0,
            decision_log_bytes: 0,
            decision_log_files: 0,
            containerd_descriptors: fds.iter().map(|s| s.to_string()).collect(),
            containerd_new_descriptors: Vec::new(),
        };
        let before = sample(&["/dev/null", "pipe:[1]"]);
        let now = sample(&["/dev/null", "/dev/null", "pipe:[1]", "pipe:[2]"]);
        assert_eq!(
            new_descriptors(&before, &now),
            vec!["/dev/null", "pipe:[2]"]
        );
        assert!(new_descriptors(&now, &before).is_empty());
    }

    #[test]
    fn test_folders_are_counted_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b/c")).expect("mkdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).expect("link");
        assert_eq!(folders_under(dir.path(), 0), 4);
    }

    #[test]
    fn test_the_log_and_its_rotated_files_are_summed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("decisions.log");
        std::fs::write(&log, "abc").expect("write");
        std::fs::write(dir.path().join("decisions.log.1"), "de").expect("write");
        std::fs::write(dir.path().join("decisions.log.3"), "old").expect("write");
        std::fs::write(dir.path().join("other"), "xyz").expect("write");
        assert_eq!(log_files(&log, 2), (5, 2));
    }
}
