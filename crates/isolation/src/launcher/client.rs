//! The shim's side: spawns the launcher on first use (and again if it died)
//! and sends it one request at a time.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{LAUNCHER_ARG, LAUNCHER_FD, LaunchReply, LaunchRequest, PAYLOAD_FD, wire};

/// A launcher process and the socket to it.
struct Connection {
    sock: UnixStream,
    pid: u32,
    /// Readable once the launcher has exited: a reply that will never come
    /// is noticed even while a container cloned from it (waiting for its
    /// start) still holds a copy of the launcher's end of the socket.
    exited: OwnedFd,
}

/// Sends [`LaunchRequest`]s to the shim's launcher process.
pub struct Launcher {
    program: PathBuf,
    /// Given to each launcher at [`PAYLOAD_FD`].
    payload_fd: Option<OwnedFd>,
    connection: Mutex<Option<Connection>>,
    last_request: Mutex<Instant>,
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
            payload_fd: None,
            connection: Mutex::new(None),
            last_request: Mutex::new(Instant::now()),
        }
    }

    /// Hands `fd` to every launcher at [`PAYLOAD_FD`], and through it to
    /// every Wasm payload (the shim's end of a report channel, say).
    pub fn with_payload_fd(mut self, fd: OwnedFd) -> std::io::Result<Self> {
        // Numbered above the fixed ones, so that placing the launcher's
        // socket at LAUNCHER_FD cannot overwrite it before it is placed.
        let high = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .map_err(std::io::Error::from)?;
        // SAFETY: `high` was just made by F_DUPFD and is owned by no one else.
        self.payload_fd = Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(high) });
        Ok(self)
    }

    /// Stops the launcher if no request came for `idle`; returns whether it
    /// did. Never waits: a request in progress holds the connection's lock,
    /// so it is neither cut off nor waited for (the shim calls this from
    /// its runtime thread, every `idle`, so that a pod whose containers run
    /// holds no launcher; the next create starts one again).
    pub fn stop_if_idle(&self, idle: Duration) -> bool {
        let mut slot = match self.connection.try_lock() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let last = *self
            .last_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() || last.elapsed() < idle {
            return false;
        }
        if let Some(connection) = slot.take() {
            stop(connection);
        }
        true
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
    /// Sends `request` with `fds`; returns the reply and the descriptors it
    /// carried (a direct-path container's start pipe).
    pub fn request(
        &self,
        request: &LaunchRequest,
        fds: &[OwnedFd],
    ) -> Result<(LaunchReply, Vec<OwnedFd>), String> {
        let body = serde_json::to_vec(request).map_err(|e| format!("launch request: {e}"))?;
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut slot = self.lock();
        // In use: not idle (the idle stop also needs the connection's lock,
        // held until this request is answered).
        *self
            .last_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
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
        let received = receive(&connection);
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
        let payload_fd = self.payload_fd.as_ref().map(AsRawFd::as_raw_fd);
        // Forked from the zygote where there is one (it shares the pages the
        // shim relocated at its start); exec'd otherwise.
        if let Some(zygote) = super::zygote::get() {
            let (ours, theirs) = UnixStream::pair()?;
            match zygote.fork_launcher(&theirs, payload_fd) {
                Ok(pid) => return connection(ours, pid),
                // A fresh socket for the exec'd one: a zygote that answers
                // late may still fork a launcher on this one, which then
                // finds the shim's end closed and exits.
                Err(e) => {
                    log::warn!("the zygote cannot make a launcher ({e}); starting one by exec")
                }
            }
        }
        let (ours, theirs) = UnixStream::pair()?;
        let pid = self.exec(&theirs, payload_fd)?;
        drop(theirs);
        connection(ours, pid)
    }

    /// Runs `program --edgeshim-launcher` with `theirs` at LAUNCHER_FD.
    fn exec(&self, theirs: &UnixStream, payload_fd: Option<RawFd>) -> std::io::Result<u32> {
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
                // Above 9 (see `with_payload_fd`), so never LAUNCHER_FD's.
                if let Some(fd) = payload_fd
                    && libc::dup2(fd, PAYLOAD_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The child is reaped by the shim's reaper (it reaps every child);
        // dropping the handle neither waits nor kills.
        Ok(command.spawn()?.id())
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(connection) = self.lock().take() {
            stop(connection);
        }
    }
}

fn connection(sock: UnixStream, pid: u32) -> std::io::Result<Connection> {
    Ok(Connection {
        sock,
        pid,
        exited: pidfd_open(pid)?,
    })
}

/// A descriptor that becomes readable when process `pid` exits (valid
/// even after the shim's reaper has reaped it). By hand: nix 0.29 has no
/// pidfd_open.
fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: the syscall takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Ends the launcher: SIGKILL through its pidfd (which cannot hit a reused
/// pid), then its socket is closed. It holds no state worth a clean exit,
/// and it is never stopped mid-request (the caller holds the lock).
fn stop(connection: Connection) {
    // SAFETY: pidfd_send_signal with a descriptor we own and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&connection.exited),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
    drop(connection.sock);
}

/// Waits for the reply, or for the launcher to end without one.
fn receive(connection: &Connection) -> std::io::Result<(LaunchReply, Vec<OwnedFd>)> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let sock = &connection.sock;
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(connection.exited.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[0]) {
            break;
        }
        if ready(&fds[1]) {
            return Err(std::io::Error::other("the launcher exited without a reply"));
        }
    }
    let (reply, fds) =
        wire::recv(sock)?.ok_or_else(|| std::io::Error::other("the launcher closed its socket"))?;
    let reply = serde_json::from_slice(&reply).map_err(std::io::Error::other)?;
    Ok((reply, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spawns a launcher whose program is a script this test just wrote.
    /// Another test thread forking meanwhile may hold the script's write
    /// descriptor for a moment (between its fork and exec): the exec is
    /// refused with ETXTBSY until it lets go (seen in CI), so that is
    /// retried.
    fn spawn_script(launcher: &Launcher) -> u32 {
        let mut tries = 0;
        loop {
            match launcher.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return other.expect("spawn"),
            }
        }
    }

    #[test]
    fn test_an_idle_launcher_is_stopped_and_a_recent_one_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // Stands in for the launcher: waits, whatever its arguments.
        let program = dir.path().join("launcher");
        std::fs::write(&program, "#!/bin/sh\nexec sleep 600\n").expect("script");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let launcher = Launcher::new(program);
        let pid = spawn_script(&launcher);
        assert!(!launcher.stop_if_idle(Duration::from_secs(3600)));
        assert_eq!(launcher.pid(), Some(pid));
        {
            // A request in flight holds the connection: the idle stop
            // (on the shim's runtime thread) neither cuts it off nor waits.
            let _in_flight = launcher.lock();
            assert!(!launcher.stop_if_idle(Duration::ZERO));
        }
        assert!(launcher.stop_if_idle(Duration::ZERO));
        assert_eq!(launcher.pid(), None);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
        let status = nix::sys::wait::waitpid(pid, None).expect("wait");
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGKILL, false)
        );
    }

    #[test]
    fn test_a_launcher_in_use_is_not_idle() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // Stands in for the launcher: answers one request (a 4-byte length,
        // then the JSON), then waits.
        let reply = br#"{"Failed":{"reason":"fake"}}"#;
        let length: String = (reply.len() as u32)
            .to_le_bytes()
            .iter()
            .map(|b| format!("\\{b:03o}"))
            .collect();
        let program = dir.path().join("launcher");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nprintf '{length}' >&3\nprintf '%s' '{}' >&3\nexec sleep 600\n",
                String::from_utf8_lossy(reply)
            ),
        )
        .expect("script");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let launcher = Launcher::new(program);
        let pid = spawn_script(&launcher);
        // Spawned long ago, as far as the idle stop can tell...
        *launcher.last_request.lock().expect("last request") =
            Instant::now() - Duration::from_secs(7200);
        // ... then used just now.
        let request = LaunchRequest {
            id: "c1".into(),
            state_root: dir.path().into(),
            bundle: dir.path().into(),
            systemd: false,
            stdio: [false; 3],
            payload: None,
            payload_fd: false,
            supplementary_gids: Vec::new(),
            direct: false,
            cgroup_mounts: Vec::new(),
        };
        let (reply, _) = launcher.request(&request, &[]).expect("a reply");
        assert_eq!(
            reply,
            LaunchReply::Failed {
                reason: "fake".into()
            }
        );
        assert!(
            !launcher.stop_if_idle(Duration::from_secs(3600)),
            "it was just used"
        );
        assert_eq!(launcher.pid(), Some(pid));
        assert!(launcher.stop_if_idle(Duration::ZERO));
    }
}
