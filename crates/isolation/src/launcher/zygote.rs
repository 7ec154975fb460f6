//! The zygote: a copy of the shim made at its start, while it is still
//! single-threaded, that makes launchers by forking itself.
//!
//! Why: a launcher exec'd from the shim's binary loads and relocates every
//! shared library again, and the containers cloned from it keep those
//! relocated pages after it is stopped when idle. For the WasmEdge shim that
//! is libLLVM's 8.3 MB of `.data.rel.ro`: once in the shim and once more in
//! every container (measured at 100 pods, docs/design.md "Where a pod's
//! memory goes"). A launcher forked from the zygote shares the pages the
//! shim relocated at its own start, and so does every container cloned from
//! that launcher, for as long as they live. It also skips the exec, the
//! dynamic linking and the relocation on every launcher start.
//!
//! The zygote never starts a thread and does nothing but wait for a request
//! on its socket: the launchers it forks are single-threaded too, so the
//! launcher's guarantee (no lock held at any clone) is unchanged. It forks
//! with `CLONE_PARENT`, so a launcher is the shim's child exactly as an
//! exec'd one was: reaped by the shim, found by tools as the shim's child
//! with `--edgeshim-launcher` in its command line. Should the zygote be
//! gone, the shim execs launchers as before ([`super::Launcher`]).
//!
//! This follows the zygote of Android and of runwasi's shim (a process kept
//! to clone workloads from); the code is our own.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::{LAUNCHER_FD, PAYLOAD_FD, wire};

/// The zygote's command line, as `ps` and the tools see it.
pub const ZYGOTE_ARG: &str = "--edgeshim-zygote";

/// How long the shim waits for the zygote's answer before it execs the
/// launcher instead (the zygote answers in a fork's time).
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// The shim's handle on its zygote.
pub struct Zygote {
    sock: Mutex<Option<UnixStream>>,
    pid: u32,
}

static ZYGOTE: OnceLock<Zygote> = OnceLock::new();

/// Forks the zygote, which serves launcher forks running `launcher_main`
/// (the launcher's loop; its result is the launcher's exit status).
///
/// # Safety
/// The calling process must have exactly one thread: the zygote is its
/// `fork` and runs Rust code, which a fork of a multi-threaded process must
/// not (a lock held by another thread would never be released).
pub unsafe fn start(launcher_main: fn() -> i32) -> std::io::Result<u32> {
    let (ours, theirs) = UnixStream::pair()?;
    // SAFETY: the caller guarantees a single thread; the child only runs
    // `serve`, which never returns.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(ours);
            serve(theirs, launcher_main)
        }
        pid => {
            drop(theirs);
            ours.set_read_timeout(Some(ANSWER_LIMIT))?;
            let pid = u32::try_from(pid).map_err(std::io::Error::other)?;
            let zygote = Zygote {
                sock: Mutex::new(Some(ours)),
                pid,
            };
            ZYGOTE
                .set(zygote)
                .map_err(|_| std::io::Error::other("a zygote is already running"))?;
            Ok(pid)
        }
    }
}

/// The process's zygote, once [`start`] made one.
pub(crate) fn get() -> Option<&'static Zygote> {
    ZYGOTE.get()
}

impl Zygote {
    /// The zygote's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks for a launcher serving `socket`, given `payload` at
    /// [`PAYLOAD_FD`]; returns its pid. On any failure the zygote is given
    /// up for good (the caller execs launchers from then on).
    pub(crate) fn fork_launcher(
        &self,
        socket: &UnixStream,
        payload: Option<RawFd>,
    ) -> std::io::Result<u32> {
        let mut slot = self.sock.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sock) = slot.as_ref() else {
            return Err(std::io::Error::other("the zygote was given up"));
        };
        let mut fds = vec![socket.as_raw_fd()];
        fds.extend(payload);
        let answer = wire::send(sock, b"", &fds).and_then(|()| {
            let (body, _) =
                wire::recv(sock)?.ok_or_else(|| std::io::Error::other("the zygote is gone"))?;
            serde_json::from_slice::<Result<u32, String>>(&body)
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)
        });
        if answer.is_err() {
            *slot = None;
        }
        answer
    }
}

/// The zygote's loop: one launcher per request, until the shim's end of
/// the socket closes. Never returns.
fn serve(sock: UnixStream, launcher_main: fn() -> i32) -> ! {
    let sock = match settle(sock) {
        Ok(sock) => sock,
        Err(_) => exit(1),
    };
    set_command_line(&["/proc/self/exe", ZYGOTE_ARG]);
    loop {
        let answer = match wire::recv(&sock) {
            Ok(Some((_, fds))) => fork_launcher(fds, launcher_main),
            // The shim is gone, or sent what no shim sends.
            Ok(None) | Err(_) => exit(0),
        };
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        if wire::send(&sock, &body, &[]).is_err() {
            exit(0);
        }
    }
}

/// The zygote's descriptors: /dev/null on stdio (the shim's stdio may be a
/// pipe containerd waits to see closed), its socket at [`LAUNCHER_FD`],
/// nothing else.
fn settle(sock: UnixStream) -> std::io::Result<UnixStream> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        dup2(null.as_raw_fd(), fd)?;
    }
    drop(null);
    let fd = sock.into_raw_fd();
    if fd != LAUNCHER_FD {
        dup2(fd, LAUNCHER_FD)?;
    }
    close_from(LAUNCHER_FD + 1);
    // SAFETY: LAUNCHER_FD now holds the socket, owned by nothing else.
    Ok(unsafe { UnixStream::from_raw_fd(LAUNCHER_FD) })
}

/// Clones a launcher (`CLONE_PARENT`: the shim's child) with the request's
/// socket at [`LAUNCHER_FD`] and its payload descriptor at [`PAYLOAD_FD`].
fn fork_launcher(fds: Vec<OwnedFd>, launcher_main: fn() -> i32) -> Result<u32, String> {
    if fds.is_empty() || fds.len() > 2 {
        return Err(format!("{} descriptors, not 1 or 2", fds.len()));
    }
    // By hand: neither nix nor std forks with CLONE_PARENT. Raw clone(2)
    // with a null stack is fork(2) sharing nothing; the child's exit signal
    // is the zygote's own (SIGCHLD, to the shim). glibc's cached thread id
    // is the zygote's in the child, as in libcontainer's raw clones; the
    // launcher forks through glibc, which sets it right in its children.
    // SAFETY: the zygote is single-threaded; the child runs only `launch`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    match pid {
        -1 => Err(format!("clone: {}", std::io::Error::last_os_error())),
        0 => launch(fds, launcher_main),
        pid => u32::try_from(pid).map_err(|e| e.to_string()),
    }
}

/// In the new launcher: its descriptors placed as an exec'd launcher gets
/// them, its command line a launcher's, then the launcher's loop.
fn launch(fds: Vec<OwnedFd>, launcher_main: fn() -> i32) -> ! {
    // Out of the way first: a received descriptor may sit on 3 or 4.
    let high: Vec<RawFd> = fds
        .iter()
        .map(|fd| {
            // SAFETY: F_DUPFD on a descriptor we own.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, 10) }
        })
        .collect();
    if high.iter().any(|fd| *fd < 0) {
        exit(1);
    }
    let placed = dup2(high[0], LAUNCHER_FD)
        .and_then(|()| match high.get(1) {
            Some(payload) => dup2(*payload, PAYLOAD_FD),
            None => Ok(()),
        })
        .is_ok();
    if !placed {
        exit(1);
    }
    std::mem::forget(fds);
    close_from(
        if high.len() > 1 {
            PAYLOAD_FD
        } else {
            LAUNCHER_FD
        } + 1,
    );
    set_command_line(&["/proc/self/exe", super::LAUNCHER_ARG]);
    exit(launcher_main())
}

fn dup2(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 on descriptor numbers; the result has close-on-exec
    // cleared, as an exec'd launcher's descriptors have.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn close_from(first: RawFd) {
    // SAFETY: closes descriptors from `first` up; none is owned by Rust
    // code that will use it again in this process.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
    }
}

fn exit(status: i32) -> ! {
    // _exit: the shim's atexit handlers and buffers are not this process's
    // to run or flush.
    // SAFETY: ends the process.
    unsafe { libc::_exit(status) }
}

/// Rewrites this process's command line in place (as setproctitle does),
/// so that `ps` and the tools tell a zygote and a launcher from the shim
/// they were forked from. The words must fit in the shim's own command
/// line (they do: containerd passes a namespace, an id and an address);
/// the rest is cleared to NULs. By hand: no library does this, and
/// PR_SET_MM_ARG_START needs CAP_SYS_RESOURCE.
pub(crate) fn set_command_line(words: &[&str]) {
    let name = words
        .last()
        .map(|w| w.trim_start_matches('-'))
        .unwrap_or("exe");
    let comm =
        std::ffi::CString::new(name.chars().take(15).collect::<String>()).unwrap_or_default();
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
    let Some((start, end)) = argument_area() else {
        return;
    };
    let wanted: Vec<u8> = words
        .iter()
        .flat_map(|w| w.bytes().chain(std::iter::once(0)))
        .collect();
    let Some(len) = end.checked_sub(start) else {
        return;
    };
    if wanted.len() > len {
        return;
    }
    // SAFETY: [start, end) is this process's argument area on its initial
    // stack (the kernel's arg_start and arg_end), writable, and only read
    // by the kernel for /proc/PID/cmdline: std copied the arguments at
    // start-up.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, len);
        area.fill(0);
        area[..wanted.len()].copy_from_slice(&wanted);
    }
}

/// `arg_start` and `arg_end` from /proc/self/stat (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's closing parenthesis start at field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    Some((start, end))
}
