//! What the shim keeps of a container made on the direct path: its pid, the
//! pid's start time (so a reused pid is never signalled) and its cgroup, in
//! `<state root>/<id>/process.json`, for signals and for delete, by this
//! shim process or a later one cleaning up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The record's file name in the container's state folder.
const RECORD: &str = "process.json";
/// Present once the container's cgroup is its own.
const CGROUP_MADE: &str = "cgroup-made";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat when the record was made.
    pub start_time: u64,
    pub cgroups_path: PathBuf,
}

/// Makes the container's state folder; refuses an id that has one.
pub(crate) fn make_dir(state_root: &Path, id: &str) -> Result<PathBuf, String> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(format!("invalid container id {id:?}"));
    }
    std::fs::create_dir_all(state_root)
        .map_err(|e| format!("cannot make {}: {e}", state_root.display()))?;
    let dir = state_root.join(id);
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("a container {id} exists already"),
        _ => format!("cannot make {}: {e}", dir.display()),
    })?;
    Ok(dir)
}

/// Writes the record of `pid` (staged, then renamed into place).
pub(crate) fn write(dir: &Path, pid: u32, cgroups_path: &Path) -> Result<(), String> {
    let start_time =
        start_time(pid).ok_or_else(|| format!("the container's process {pid} is gone"))?;
    let record = Record {
        pid,
        start_time,
        cgroups_path: cgroups_path.to_path_buf(),
    };
    let body = serde_json::to_vec(&record).map_err(|e| format!("record: {e}"))?;
    let staged = dir.join(".process.json");
    std::fs::write(&staged, body)
        .and_then(|()| std::fs::rename(&staged, dir.join(RECORD)))
        .map_err(|e| format!("cannot write {}: {e}", dir.join(RECORD).display()))
}

/// Marks in `dir` that the set-up process made (or took, empty) the
/// container's cgroup.
pub(crate) fn mark_cgroup_made(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join(CGROUP_MADE), b"")
        .map_err(|e| format!("cannot write {}: {e}", dir.join(CGROUP_MADE).display()))
}

/// Whether [`mark_cgroup_made`] marked `dir`.
pub(crate) fn cgroup_made(dir: &Path) -> bool {
    dir.join(CGROUP_MADE).exists()
}

/// The record in `dir`, if the container was made on the direct path.
pub(crate) fn read(dir: &Path) -> Option<std::io::Result<Record>> {
    let body = match std::fs::read(dir.join(RECORD)) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(e)),
    };
    Some(serde_json::from_slice(&body).map_err(std::io::Error::other))
}

/// Start time (field 22 of /proc/<pid>/stat) of a process that has not
/// exited; `None` for no process or a zombie.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    let mut fields = after_name.split(' ');
    // Fields after the name start at 3 (state); starttime is 22.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(22 - 4)?.parse().ok()
}

impl Record {
    /// Whether the recorded process still runs (not exited, pid not reused).
    pub(crate) fn is_running(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_record_reads_back_and_knows_its_process_runs() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = make_dir(root.path(), "c1").expect("dir");
        write(&dir, std::process::id(), Path::new("/pod/c1")).expect("record");
        let record = read(&dir).expect("present").expect("readable");
        assert_eq!(record.pid, std::process::id());
        assert_eq!(record.cgroups_path, Path::new("/pod/c1"));
        assert!(record.is_running());
        let reused = Record {
            start_time: record.start_time + 1,
            ..record
        };
        assert!(
            !reused.is_running(),
            "another start time is another process"
        );
    }

    #[test]
    fn test_a_second_container_of_one_id_and_bad_ids_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        make_dir(root.path(), "c1").expect("first");
        let err = make_dir(root.path(), "c1").expect_err("second");
        assert!(err.contains("exists already"), "{err}");
        for id in ["", "..", "a/b"] {
            assert!(make_dir(root.path(), id).is_err(), "{id:?}");
        }
        assert!(read(&root.path().join("c1")).is_none(), "no record yet");
    }

    #[test]
    fn test_a_zombie_has_no_start_time() {
        let child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        // Exited but not reaped: wait until /proc shows it a zombie.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
        {
            std::thread::yield_now();
        }
        assert_eq!(start_time(pid), None);
        let mut child = child;
        let _ = child.wait();
    }
}
