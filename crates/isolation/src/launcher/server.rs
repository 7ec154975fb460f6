//! The launcher's side: one request at a time, from a process that has
//! exactly one thread at every clone.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::{LAUNCHER_FD, LaunchReply, LaunchRequest, wire};
use crate::Payload;
use crate::container::{Stdio, build_process};

/// Turns a request's payload description into what the container process
/// runs. Called in the launcher, before the clone; it must not start
/// threads (the launcher checks, and refuses to clone if it did).
pub trait PayloadFactory {
    /// `fd` is the request's payload descriptor, when it carried one.
    /// `Ok(None)`: the factory needs the descriptor it was not sent.
    fn payload(
        &mut self,
        description: &serde_json::Value,
        fd: Option<OwnedFd>,
    ) -> Result<Option<Arc<dyn Payload>>, String>;
}

/// The launcher's main loop: serves requests on its socket (fd 3) until the
/// shim closes it; returns the process's exit status.
pub fn serve(factory: &mut dyn PayloadFactory) -> i32 {
    // No PR_SET_PDEATHSIG: it fires when the spawning *thread* ends (a
    // ttrpc worker), not the shim. Only the shim holds the other end of
    // the socket, so the shim's end, however it ends, is an end of stream
    // here.
    // SAFETY: the shim passes the socket as fd 3 and nothing else uses it.
    let sock = unsafe { UnixStream::from_raw_fd(LAUNCHER_FD) };
    // Container processes are cloned from here: they must not inherit it.
    if let Err(e) = nix::fcntl::fcntl(
        LAUNCHER_FD,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    ) {
        eprintln!("edgeshim launcher: fd {LAUNCHER_FD}: {e}");
        return 1;
    }
    loop {
        let (body, fds) = match wire::recv(&sock) {
            Ok(Some(message)) => message,
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("edgeshim launcher: {e}");
                return 1;
            }
        };
        match handle(&sock, &body, fds, factory) {
            Handled::Replied => {}
            Handled::Reply(reply) => {
                if send_reply(&sock, &reply).is_err() {
                    return 1;
                }
            }
            Handled::ReplyAndEnd(reply) => {
                let _ = send_reply(&sock, &reply);
                return 1;
            }
        }
    }
}

fn send_reply(sock: &UnixStream, reply: &LaunchReply) -> std::io::Result<()> {
    send_reply_with(sock, reply, &[])
}

fn send_reply_with(
    sock: &UnixStream,
    reply: &LaunchReply,
    fds: &[std::os::fd::RawFd],
) -> std::io::Result<()> {
    let reply = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    wire::send(sock, &reply, fds)
}

/// How a request was answered.
enum Handled {
    /// The set-up process sent the reply itself.
    Replied,
    Reply(LaunchReply),
    /// Reply, then end the launcher (it is no longer single-threaded).
    ReplyAndEnd(LaunchReply),
}

/// One request.
fn handle(
    sock: &UnixStream,
    body: &[u8],
    fds: Vec<OwnedFd>,
    factory: &mut dyn PayloadFactory,
) -> Handled {
    let failed = |reason: String| Handled::Reply(LaunchReply::Failed { reason });
    let request: LaunchRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return failed(format!("bad launch request: {e}")),
    };
    let wanted = request.stdio.iter().filter(|s| **s).count() + usize::from(request.payload_fd);
    if fds.len() != wanted {
        return failed(format!(
            "launch request carries {} descriptors, expected {wanted}",
            fds.len()
        ));
    }
    let mut fds = fds.into_iter();
    let mut next = |wanted: bool| if wanted { fds.next() } else { None };
    let stdio = Stdio {
        stdin: next(request.stdio[0]),
        stdout: next(request.stdio[1]),
        stderr: next(request.stdio[2]),
    };
    let payload_fd = next(request.payload_fd);
    let payload = match &request.payload {
        None => None,
        Some(description) => match factory.payload(description, payload_fd) {
            Ok(Some(payload)) => Some(payload),
            Ok(None) => return Handled::Reply(LaunchReply::NeedPayloadFd),
            Err(reason) => return failed(reason),
        },
    };
    if let Err(reason) = single_threaded() {
        return Handled::ReplyAndEnd(LaunchReply::Failed {
            reason: format!("not cloned: {reason}"),
        });
    }
    set_up(sock, &request, stdio, payload)
}

/// libcontainer makes the container from a fork of the launcher, which
/// replies and exits: the container's process, cloned as that fork's child,
/// is then reparented to the shim (the nearest subreaper, which reaps it
/// and reports its exit); had the launcher cloned it itself, the launcher
/// would be its parent for life. The fork waits for libcontainer's
/// intermediate process itself, so no other reaper can take that exit.
fn set_up(
    sock: &UnixStream,
    request: &LaunchRequest,
    stdio: Stdio,
    payload: Option<Arc<dyn Payload>>,
) -> Handled {
    // SAFETY: the launcher has one thread (checked just before), so the
    // child inherits no lock another thread holds.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let gids: Vec<_> = request
                .supplementary_gids
                .iter()
                .map(|gid| nix::unistd::Gid::from_raw(*gid))
                .collect();
            let grouped = nix::unistd::setgroups(&gids)
                .map_err(|e| format!("cannot set supplementary groups {gids:?}: {e}"));
            let sent = match (grouped, payload) {
                (Err(reason), _) => send_reply(sock, &LaunchReply::Failed { reason }),
                (Ok(()), payload) if request.direct => {
                    match crate::wasm_process::make(request, stdio, payload) {
                        Ok(made) => send_reply_with(
                            sock,
                            &LaunchReply::Created { pid: made.pid },
                            &[made.start.as_raw_fd()],
                        ),
                        Err(reason) => send_reply(sock, &LaunchReply::Failed { reason }),
                    }
                }
                (Ok(()), payload) => {
                    let reply = match build_process(request, stdio, payload) {
                        Ok(pid) => LaunchReply::Created { pid },
                        Err(reason) => LaunchReply::Failed { reason },
                    };
                    send_reply(sock, &reply)
                }
            };
            let status = if sent.is_ok() { 0 } else { 1 };
            // SAFETY: `_exit` ends this single-threaded fork without running
            // the launcher's exit handlers a second time.
            unsafe { libc::_exit(status) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(stdio);
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Handled::Replied,
                // It died before its reply was sent (a send that failed
                // means the socket is gone, and so is the shim).
                Ok(status) => Handled::Reply(LaunchReply::Failed {
                    reason: format!("the set-up process ended without a reply: {status:?}"),
                }),
                Err(e) => Handled::ReplyAndEnd(LaunchReply::Failed {
                    reason: format!("cannot wait for its set-up: {e}"),
                }),
            }
        }
        Err(e) => Handled::Reply(LaunchReply::Failed {
            reason: format!("cannot fork for its set-up: {e}"),
        }),
    }
}

/// Ok when this process has exactly one thread (from /proc/self/stat's
/// `num_threads`, the 20th field, counted after the command name).
pub(crate) fn single_threaded() -> Result<(), String> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
    let after_name = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .ok_or("unreadable /proc/self/stat")?;
    // Fields after the name start at field 3 (state); num_threads is 20.
    let threads: u32 = after_name
        .split(' ')
        .nth(20 - 3)
        .and_then(|n| n.parse().ok())
        .ok_or("unreadable thread count in /proc/self/stat")?;
    if threads == 1 {
        Ok(())
    } else {
        Err(format!(
            "the launcher has {threads} threads, and clones only from one"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_second_thread_is_seen() {
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || parked.recv());
        let err = single_threaded().expect_err("this process has two threads");
        assert!(err.contains("threads, and clones only from one"), "{err}");
        drop(stop);
        let _ = thread.join();
    }
}
