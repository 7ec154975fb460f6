//! The shim's side: one thread that answers the guarded calls of every
//! Wasm container of this shim, each under the grant its decision gave.
//! It starts with the first guarded container: a shim whose containers
//! need no guard (every Wasmtime container, and a WasmEdge one that
//! imports no sockets or may use them all) holds no thread for it.
//!
//! A call is answered in microseconds (read a few bytes of the caller's
//! memory, match them against the rules), so one thread serves all
//! containers; it never waits on the network, since an allowed call goes
//! on in the kernel as the caller made it.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use libseccomp::{ScmpArch, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, notify_id_valid};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

use super::answer::{Answer, Target, answer};
use crate::{NetworkGrant, Refusal};

/// Where refusals go: the container's name and what was refused.
pub type RefusalSink = Box<dyn Fn(&str, &Refusal) + Send + Sync>;

/// The guarded containers, and the thread that answers them.
pub struct Supervisor {
    watched: Mutex<Vec<Arc<Watched>>>,
    /// Written to when `watched` changes, so the thread polls anew.
    wake: UnixDatagram,
    woken: UnixDatagram,
    report: RefusalSink,
    /// Whether the thread runs (started by the first `watch`).
    serving: Mutex<bool>,
}

struct Watched {
    container: String,
    grant: NetworkGrant,
    listener: OwnedFd,
    /// Receives that failed in a row (the caller went away first).
    failures: AtomicU32,
}

/// Receives failing in a row after which a listener is dropped: each
/// failure is a notification whose caller was gone before it was read,
/// which a live container does not produce in such a run.
const MAX_FAILURES: u32 = 64;

impl Supervisor {
    /// A supervisor whose refusals go to `report`; its thread starts with
    /// the first container it watches.
    pub fn start(report: RefusalSink) -> io::Result<Arc<Self>> {
        let (wake, woken) = UnixDatagram::pair()?;
        woken.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        Ok(Arc::new(Self {
            watched: Mutex::new(Vec::new()),
            wake,
            woken,
            report,
            serving: Mutex::new(false),
        }))
    }

    /// Starts the answering thread unless it runs; whether it runs.
    fn serve_in_background(self: &Arc<Self>) -> bool {
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        if !*serving {
            let supervisor = self.clone();
            match std::thread::Builder::new()
                .name("net-guard".into())
                .spawn(move || supervisor.serve())
            {
                Ok(_) => *serving = true,
                Err(e) => log::error!("cannot start the network guard's thread: {e}"),
            }
        }
        *serving
    }

    /// Answers the calls `listener` traps, as `container`'s, under `grant`.
    /// A container has one guard: a second listener is refused (and
    /// closed), as is anything that is not a seccomp listener (a pipe
    /// always readable would keep this thread spinning).
    /// Refused too when the thread cannot be started: the container's
    /// guarded calls then fail (ENOSYS), never pass unanswered.
    pub fn watch(
        self: &Arc<Self>,
        container: &str,
        grant: NetworkGrant,
        listener: OwnedFd,
    ) -> bool {
        if !is_listener(&listener) || !self.serve_in_background() {
            return false;
        }
        wake_synchronously(&listener);
        let mut watched = self.lock();
        if watched.iter().any(|w| w.container == container) {
            return false;
        }
        watched.push(Arc::new(Watched {
            container: container.to_string(),
            grant,
            listener,
            failures: AtomicU32::new(0),
        }));
        drop(watched);
        let _ = self.wake.send(&[1]);
        true
    }

    /// Stops answering for `container` (its calls, if any process of it is
    /// left, then fail with ENOSYS).
    pub fn forget(&self, container: &str) {
        self.lock().retain(|w| w.container != container);
        let _ = self.wake.send(&[1]);
    }

    /// Whether `container` is guarded now.
    pub fn is_watching(&self, container: &str) -> bool {
        self.lock().iter().any(|w| w.container == container)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Watched>>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self) {
        loop {
            let snapshot = self.lock().clone();
            let mut fds = vec![PollFd::new(self.woken.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                snapshot
                    .iter()
                    .map(|w| PollFd::new(w.listener.as_fd(), PollFlags::POLLIN)),
            );
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let events: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            if events[0].contains(PollFlags::POLLIN) {
                let mut buf = [0u8; 64];
                while self.woken.recv(&mut buf).is_ok() {}
            }
            for (watched, events) in snapshot.iter().zip(&events[1..]) {
                if events.contains(PollFlags::POLLIN) {
                    self.answer_one(watched);
                } else if events
                    .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                {
                    // No process of the container is left.
                    self.lock().retain(|w| !Arc::ptr_eq(w, watched));
                }
            }
        }
    }

    fn answer_one(&self, watched: &Watched) {
        let listener = watched.listener.as_raw_fd();
        // Fails when the caller went away meanwhile (a signal, a kill).
        let Ok(request) = ScmpNotifReq::receive(listener) else {
            if watched.failures.fetch_add(1, Ordering::Relaxed) >= MAX_FAILURES {
                self.lock()
                    .retain(|w| !std::ptr::eq(Arc::as_ptr(w), watched));
            }
            return;
        };
        watched.failures.store(0, Ordering::Relaxed);
        let answer = if request.data.arch == ScmpArch::native() {
            let caller = Caller {
                pid: request.pid,
                listener,
                id: request.id,
            };
            let nr = i64::from(request.data.syscall.as_raw_syscall());
            answer(nr, &request.data.args, &watched.grant, &caller)
        } else {
            Answer::Refuse {
                errno: libc::EACCES,
                refusal: None,
            }
        };
        // What was read counts only if it was the caller's: the call is
        // still waiting, so the pid was not reused meanwhile.
        if notify_id_valid(listener, request.id).is_err() {
            return;
        }
        let response = match &answer {
            Answer::Continue => {
                ScmpNotifResp::new_continue(request.id, ScmpNotifRespFlags::empty())
            }
            Answer::Refuse { errno, .. } => {
                ScmpNotifResp::new_error(request.id, -errno, ScmpNotifRespFlags::empty())
            }
        };
        let _ = response.respond(listener);
        if let Answer::Refuse {
            refusal: Some(refusal),
            ..
        } = &answer
        {
            (self.report)(&watched.container, refusal);
        }
    }
}

/// The process whose call is being answered, waiting in it.
struct Caller {
    pid: u32,
    listener: RawFd,
    id: u64,
}

impl Target for Caller {
    fn read(&self, address: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        let base =
            usize::try_from(address).map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))?;
        let pid = Pid::from_raw(
            i32::try_from(self.pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?,
        );
        let read = process_vm_readv(
            pid,
            &mut [IoSliceMut::new(&mut bytes)],
            &[RemoteIoVec { base, len }],
        )?;
        if read != len {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        Ok(bytes)
    }

    fn local_address(&self, fd: i32) -> io::Result<Vec<u8>> {
        let pidfd = pidfd_open(self.pid)?;
        // The pidfd is the caller's only if the call still waits.
        notify_id_valid(self.listener, self.id)
            .map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        let socket = pidfd_getfd(&pidfd, fd)?;
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>())
            .unwrap_or(libc::socklen_t::MAX);
        // SAFETY: `storage` is a writable sockaddr_storage of `len` bytes.
        let status = unsafe {
            libc::getsockname(
                socket.as_raw_fd(),
                (&raw mut storage).cast::<libc::sockaddr>(),
                &raw mut len,
            )
        };
        if status != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote `len` bytes (at most the storage's size).
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&raw const storage).cast::<u8>(),
                usize::try_from(len)
                    .unwrap_or(0)
                    .min(std::mem::size_of::<libc::sockaddr_storage>()),
            )
        };
        Ok(bytes.to_vec())
    }
}

/// Whether `fd` is a seccomp user-notification listener (the kernel names
/// its anonymous inode so).
fn is_listener(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:seccomp notify")
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (`_IOW('!', 4, __u64)`) and its one
/// flag, `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the waiting
/// caller and this thread hand the CPU to each other directly, as a
/// round trip wants, instead of through the scheduler's queues. By hand:
/// neither libc nor libseccomp 0.4 names them.
const NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;
const SYNC_WAKE_UP: u64 = 1;

/// Asks for synchronous wake-ups on `listener`; an older kernel refuses,
/// and the answers are only slower.
fn wake_synchronously(listener: &OwnedFd) {
    // SAFETY: the ioctl reads one u64 flag word, passed by value here as
    // the kernel takes it (the argument is the flags themselves).
    let _ = unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_SET_FLAGS, SYNC_WAKE_UP) };
}

// pidfd_open(2) and pidfd_getfd(2) by hand: nix 0.29 wraps neither.

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; a new descriptor on success.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::c_long::from(pid), 0) };
    owned(fd)
}

fn pidfd_getfd(pidfd: &OwnedFd, target_fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; a new descriptor on success.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            libc::c_long::from(pidfd.as_raw_fd()),
            libc::c_long::from(target_fd),
            0,
        )
    };
    owned(fd)
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
