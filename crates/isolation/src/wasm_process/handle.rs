//! The shim's handle on a container made on the direct path: start, signals
//! and delete, from its [`Record`] and the start pipe's write end.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::record::Record;
use crate::{IsolationError, Result};

pub(crate) struct DirectProcess {
    pub id: String,
    /// The container's state folder (holds the record).
    pub root: PathBuf,
    pub record: Record,
    /// Write end of the start pipe; `None` once started, or when loaded by a
    /// shim process that did not make it.
    pub start: Option<OwnedFd>,
}

impl DirectProcess {
    /// Writes the start byte: the container runs its payload.
    pub(crate) fn start(&mut self) -> Result<()> {
        let failed = |reason: String| IsolationError::Start {
            id: self.id.clone(),
            reason,
        };
        let start = self.start.take().ok_or_else(|| {
            failed("started already, or made by another shim process".to_string())
        })?;
        // EPIPE: the process ended before its start (the shim ignores
        // SIGPIPE, as Rust programs do).
        std::fs::File::from(start)
            .write_all(&[1])
            .map_err(|e| failed(format!("the container's process is gone: {e}")))
    }

    /// Sends `signal` to the process, or to every process of its cgroup.
    pub(crate) fn kill(&mut self, signal: i32, all: bool) -> Result<()> {
        let err = |reason: String| IsolationError::Kill {
            id: self.id.clone(),
            reason,
        };
        let signal = Signal::try_from(signal).map_err(|e| err(format!("signal {signal}: {e}")))?;
        if !self.record.is_running() {
            return Err(IsolationError::Finished {
                id: self.id.clone(),
            });
        }
        let init = i32::try_from(self.record.pid)
            .map_err(|_| err(format!("pid {} out of range", self.record.pid)))?;
        let mut pids = vec![init];
        if all {
            let in_cgroup =
                super::cgroup_v1::procs(&super::controller_mounts(), &self.record.cgroups_path)
                    .map_err(err)?;
            pids.extend(in_cgroup);
            pids.sort_unstable();
            pids.dedup();
        }
        for pid in pids {
            match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(err(format!("pid {pid}: {e}"))),
            }
        }
        Ok(())
    }

    /// Kills what is left, removes the cgroup and the state folder.
    pub(crate) fn delete(&mut self) -> Result<()> {
        self.start = None;
        if self.record.is_running()
            && let Ok(raw) = i32::try_from(self.record.pid)
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
        remove_remains(&self.root, &self.record.cgroups_path).map_err(|reason| {
            IsolationError::Delete {
                id: self.id.clone(),
                reason,
            }
        })
    }
}

/// Removes a container's cgroup (killing what is left in it) and its state
/// folder `root`.
fn remove_remains(root: &Path, cgroups_path: &Path) -> std::result::Result<(), String> {
    let cgroup = super::cgroup_v1::remove(&super::controller_mounts(), cgroups_path);
    let folder = match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", root.display())),
    };
    cgroup.and(folder)
}

/// After a direct create failed (its set-up process may have been killed
/// half-way): the cgroup goes only if the set-up process marked it as the
/// container's own (never a cgroup it refused, nor one it never reached);
/// the state folder goes in any case.
pub(crate) fn remove_failed_create(
    root: &Path,
    cgroups_path: &Path,
) -> std::result::Result<(), String> {
    if super::record::cgroup_made(root) {
        return remove_remains(root, cgroups_path);
    }
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", root.display())),
    }
}
