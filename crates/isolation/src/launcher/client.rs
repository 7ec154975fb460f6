//! The shim's side: spawns the launcher on first use (and again if it died)
//! and sends it one request at a time.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use super::{LAUNCHER_ARG, LAUNCHER_FD, LaunchReply, LaunchRequest, wire};

/// A launcher process and the socket to it.
struct Connection {
    sock: UnixStream,
    pid: u32,
}

/// Sends [`LaunchRequest`]s to the shim's launcher process.
pub struct Launcher {
    program: PathBuf,
    connection: Mutex<Option<Connection>>,
}

impl Default for Launcher {
    fn default() -> Self {
        Self::new(PathBuf::from("/proc/self/exe"))
    }
}

impl Launcher {
    /// A launcher run as `program --edgeshim-launcher` (the shim's own
    /// binary, normally). Nothing is spawned until [`Self::spawn`] or the
    /// first request.
    pub fn new(program: PathBuf) -> Self {
        Self {
            program,
            connection: Mutex::new(None),
        }
    }

    /// Spawns the launcher now, so that the first create does not wait for
    /// it. Errors are kept for the first request to report.
    pub fn spawn(&self) -> std::io::Result<u32> {
        let mut slot = self.lock();
        match slot.as_ref() {
            Some(connection) => Ok(connection.pid),
            None => {
                let connection = self.start()?;
                let pid = connection.pid;
                *slot = Some(connection);
                Ok(pid)
            }
        }
    }

    /// The launcher's pid, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|c| c.pid)
    }

    /// Sends `request` with `fds` (stdio first, then the payload's) and
    /// returns the launcher's reply. A launcher that died or broke the
    /// protocol is killed, and the next request starts a new one.
    pub fn request(&self, request: &LaunchRequest, fds: &[OwnedFd]) -> Result<LaunchReply, String> {
        let body = serde_json::to_vec(request).map_err(|e| format!("launch request: {e}"))?;
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(
                self.start()
                    .map_err(|e| format!("cannot start the launcher: {e}"))?,
            );
        }
        let Some(mut connection) = slot.take() else {
            return Err("no launcher".into());
        };
        // A launcher that died while idle (killed, OOM) fails at the send,
        // before it saw the request: start a new one and send again, once.
        if wire::send(&connection.sock, &body, &raw).is_err() {
            stop(connection);
            connection = self
                .start()
                .map_err(|e| format!("cannot restart the launcher: {e}"))?;
            if let Err(e) = wire::send(&connection.sock, &body, &raw) {
                stop(connection);
                return Err(format!("cannot reach the launcher: {e}"));
            }
        }
        let received = receive(&connection.sock);
        *slot = Some(connection);
        match received {
            Ok(reply) => Ok(reply),
            Err(e) => {
                let pid = slot.as_ref().map(|c| c.pid).unwrap_or_default();
                if let Some(dead) = slot.take() {
                    stop(dead);
                }
                Err(format!("launcher (pid {pid}) failed: {e}"))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self) -> std::io::Result<Connection> {
        let (ours, theirs) = UnixStream::pair()?;
        let their_fd = theirs.as_raw_fd();
        let mut command = Command::new(&self.program);
        command
            .arg(LAUNCHER_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork
        // and exec. dup2 onto the fixed number clears close-on-exec there;
        // when the socket already has that number, clear it by hand.
        unsafe {
            command.pre_exec(move || {
                let result = if their_fd == LAUNCHER_FD {
                    libc::fcntl(LAUNCHER_FD, libc::F_SETFD, 0)
                } else {
                    libc::dup2(their_fd, LAUNCHER_FD)
                };
                if result < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The child is reaped by the shim's reaper (it reaps every child);
        // dropping the handle neither waits nor kills.
        let child = command.spawn()?;
        drop(theirs);
        Ok(Connection {
            sock: ours,
            pid: child.id(),
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(connection) = self.lock().take() {
            stop(connection);
        }
    }
}

/// Closing the socket ends a healthy launcher; a stuck one is killed.
fn stop(connection: Connection) {
    let pid = connection.pid;
    drop(connection.sock);
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn receive(sock: &UnixStream) -> std::io::Result<LaunchReply> {
    let (reply, extra) =
        wire::recv(sock)?.ok_or_else(|| std::io::Error::other("the launcher closed its socket"))?;
    if !extra.is_empty() {
        return Err(std::io::Error::other("the launcher sent descriptors"));
    }
    serde_json::from_slice(&reply).map_err(std::io::Error::other)
}
