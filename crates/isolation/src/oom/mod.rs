//! OOM notifications for every container of a shim, on one epoll.
//!
//! Owns: watching a container's memory cgroup (found with
//! [`CgroupFolder::of_pid`]) for OOM kills, v1 and v2 alike, for as many containers
//! as the shim runs, on one epoll ([`OomWatcher`]): turned on a thread of
//! its own ([`OomWatcher::spawn`]) or by the caller's event loop
//! ([`OomWatcher::new`], [`OomEvents`]; the shim's async runtime). Must not
//! touch: what an OOM means to containerd (the shim sends the TaskOOM
//! event from the callback).
//!
//! - cgroup v1: an eventfd registered on the cgroup's `memory.oom_control`
//!   through `cgroup.event_control` (the kernel's v1 OOM notifier); the
//!   kernel also signals it when the cgroup is removed, which the watcher
//!   tells apart by the cgroup's folder being gone.
//! - cgroup v2: `memory.events`, watched with inotify (the kernel notifies
//!   a modification of it), whose `oom_kill` count going up is an OOM kill.
//!   cgroups-rs 0.5 registers v2 on `memory.oom_control`, a v1 file, so a
//!   pure cgroup2 host never saw an OOM event; this is why the shim no
//!   longer uses it.
//!
//! Written by hand rather than with cgroups-rs's `register_oom_event`: that
//! spawns a thread per registration (and the shim a second one per
//! container to forward it), two threads for each container the shim runs;
//! here it is one thread for all of them.

mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::eventfd::{EfdFlags, EventFd};

pub use crate::proc_cgroup::CgroupFolder;

/// What the watcher thread is asked to do.
enum Request {
    Watch { id: String, cgroup: CgroupFolder },
    Forget { id: String },
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    /// Wakes the thread to read `requests`.
    wake: EventFd,
    /// Cgroups watched now, as the thread last counted them.
    watched: AtomicUsize,
}

/// One thread watching every container's memory cgroup; `on_oom` is called
/// there with the container's id at each OOM kill.
pub struct OomWatcher {
    shared: Arc<Shared>,
}

impl OomWatcher {
    /// A watcher on a thread of its own.
    pub fn spawn(on_oom: Box<dyn Fn(&str) + Send>) -> std::io::Result<Self> {
        let (watcher, mut events) = Self::new(on_oom)?;
        std::thread::Builder::new()
            .name("oom".into())
            .spawn(move || events.0.run())?;
        Ok(watcher)
    }

    /// A watcher whose [`OomEvents`] the caller turns whenever its
    /// descriptor is readable (the shim: from its async runtime, so that
    /// watching takes no thread).
    pub fn new(on_oom: Box<dyn Fn(&str) + Send>) -> std::io::Result<(Self, OomEvents)> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            watched: AtomicUsize::new(0),
        });
        let watching = watch::Watching::new(shared.clone(), on_oom)?;
        Ok((Self { shared }, OomEvents(watching)))
    }

    /// Watches container `id`'s memory cgroup until the cgroup is removed
    /// or [`Self::forget`] is called.
    pub fn watch(&self, id: &str, cgroup: CgroupFolder) {
        self.ask(Request::Watch {
            id: id.to_string(),
            cgroup,
        });
    }

    /// Stops watching container `id` (it is deleted).
    pub fn forget(&self, id: &str) {
        self.ask(Request::Forget { id: id.to_string() });
    }

    /// How many cgroups the thread watches (after the requests it has
    /// taken and the removals it has seen).
    pub fn watched(&self) -> usize {
        self.shared.watched.load(Ordering::Acquire)
    }

    fn ask(&self, request: Request) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        if let Err(e) = self.shared.wake.write(1) {
            log::warn!("cannot wake the OOM watcher: {e}");
        }
    }
}

/// The watcher's side that sees OOM kills and requests: readable (its
/// [`AsRawFd`](std::os::fd::AsRawFd)) when [`Self::turn`] has work.
pub struct OomEvents(watch::Watching);

impl OomEvents {
    /// Handles what is ready now, without waiting: calls `on_oom` for each
    /// OOM kill seen and takes the watch and forget requests. Returns how
    /// many events it handled (a caller turns again until none is left),
    /// or `None` once the watcher cannot go on (its epoll failed).
    pub fn turn(&mut self) -> Option<usize> {
        self.0.turn(nix::sys::epoll::EpollTimeout::ZERO)
    }
}

impl std::os::fd::AsRawFd for OomEvents {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.epoll_fd()
    }
}

#[cfg(test)]
mod tests;
