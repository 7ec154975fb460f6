//! Opens the stdio FIFOs containerd created for a container.
//!
//! containerd opens its ends first, so non-blocking opens succeed; the
//! descriptors are then made blocking, as a program expects its stdio to be.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use edgeshim_isolation::Stdio;

pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<Stdio, String> {
    Ok(Stdio {
        stdin: open_one(stdin, false)?,
        stdout: open_one(stdout, true)?,
        stderr: open_one(stderr, true)?,
    })
}

fn open_one(path: &str, write: bool) -> Result<Option<OwnedFd>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    let file = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let fd = OwnedFd::from(file);
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(blocking))
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    Ok(Some(fd))
}
