//! The container's side: a seccomp filter that hands each of the process's
//! socket address calls to the shim, which answers it (user notification,
//! `SECCOMP_RET_USER_NOTIF`), through libseccomp.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

/// What the datagram that carries the listener says: the shim takes a
/// descriptor only from a datagram that says this.
pub const HAND_OVER: &[u8] = b"edgeshim-network-guard";

/// Why the guard could not be set.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "another thread or process shares this process's memory ({0}); the guard needs it alone"
    )]
    NotAlone(nix::Error),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("cannot hand the guard to the shim: {0}")]
    HandOver(std::io::Error),
}

/// Calls whose address the shim judges.
const JUDGED: [&str; 6] = ["connect", "bind", "listen", "sendto", "sendmsg", "sendmmsg"];

/// Calls refused outright while guarded: every way to a second thread or
/// process, or to io_uring, whose calls seccomp never sees. With one thread, blocked in the call the shim is
/// judging, nothing can change the address between the shim's read and
/// the kernel's (the notification time-of-check race).
const REFUSED: [(&str, i32); 5] = [
    ("clone", libc::EPERM),
    ("clone3", libc::EPERM),
    ("fork", libc::EPERM),
    ("vfork", libc::EPERM),
    ("io_uring_setup", libc::EPERM),
];

/// Sets the guard on this process (which must be alone in its memory:
/// one thread, no process sharing it) and hands
/// its listener to the shim over `channel`, a socket the shim reads;
/// `channel` itself stays unguarded, so that the hand-over cannot wait on
/// its own answer. This process keeps no copy of the listener: it could
/// otherwise answer its own calls.
pub fn guard_this_process(channel: RawFd) -> Result<(), GuardError> {
    // The kernel's own test (no /proc in a Wasm container's root): unshare
    // of CLONE_VM fails unless no other thread or process shares this
    // memory, and changes nothing then.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_VM).map_err(GuardError::NotAlone)?;
    let listener = install(channel).map_err(|e| GuardError::Seccomp(e.to_string()))?;
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        channel,
        &[IoSlice::new(HAND_OVER)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| GuardError::HandOver(e.into()))?;
    drop(listener);
    Ok(())
}

fn install(channel: RawFd) -> Result<OwnedFd, libseccomp::error::SeccompError> {
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow)?;
    let channel = u64::try_from(channel).unwrap_or(0);
    for name in JUDGED {
        let call = ScmpSyscall::from_name(name)?;
        match name {
            // Not the hand-over to the shim, which must not wait on itself.
            "sendmsg" => filter.add_rule_conditional(
                ScmpAction::Notify,
                call,
                &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, channel)],
            )?,
            // Only with an address (a `send` on a connected socket is a
            // `sendto` without one): the kernel's own argument, no read.
            "sendto" => filter.add_rule_conditional(
                ScmpAction::Notify,
                call,
                &[ScmpArgCompare::new(4, ScmpCompareOp::NotEqual, 0)],
            )?,
            _ => filter.add_rule(ScmpAction::Notify, call)?,
        };
    }
    for (name, errno) in REFUSED {
        filter.add_rule(ScmpAction::Errno(errno), ScmpSyscall::from_name(name)?)?;
    }
    filter.load()?;
    let listener = filter.get_notify_fd()?;
    // SAFETY: the listener is a new descriptor that libseccomp hands its
    // caller and never closes itself (only seccomp_reset would); owning it
    // here closes it once it is handed over.
    Ok(unsafe { OwnedFd::from_raw_fd(listener) })
}
