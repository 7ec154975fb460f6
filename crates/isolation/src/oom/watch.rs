//! The watcher: one epoll over the wake eventfd, one inotify descriptor
//! for every v2 cgroup, and one eventfd per v1 cgroup; run on a thread of
//! its own or turned by whoever polls its epoll descriptor.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::{CgroupFolder, Request, Shared};

const WAKE: u64 = 0;
const INOTIFY: u64 = 1;
/// Tokens of v1 eventfds start here.
const FIRST_V1: u64 = 2;

struct V1Watch {
    id: String,
    dir: PathBuf,
    notified: EventFd,
    /// Held open while registered, as the kernel's v1 notifier expects.
    _oom_control: File,
}

struct V2Watch {
    id: String,
    events: PathBuf,
    oom_kills: u64,
}

pub(super) struct Watching {
    shared: Arc<Shared>,
    on_oom: Box<dyn Fn(&str) + Send>,
    epoll: Epoll,
    /// Made with the first v2 watch: a user may hold only
    /// `fs.inotify.max_user_instances` (128 by default) inotify instances,
    /// and every pod's shim has a watcher, so on a v1 host, which never
    /// needs one, none is made (a density run past 128 pods found shims
    /// with no OOM events: `inotify_init` failed with EMFILE).
    inotify: Option<Inotify>,
    v1: HashMap<u64, V1Watch>,
    v2: HashMap<WatchDescriptor, V2Watch>,
    next_token: u64,
}

impl Watching {
    pub(super) fn new(
        shared: Arc<Shared>,
        on_oom: Box<dyn Fn(&str) + Send>,
    ) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&shared.wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        Ok(Self {
            shared,
            on_oom,
            epoll,
            inotify: None,
            v1: HashMap::new(),
            v2: HashMap::new(),
            next_token: FIRST_V1,
        })
    }

    /// Runs for the life of the shim process, on a thread of its own.
    pub(super) fn run(&mut self) {
        while self.turn(EpollTimeout::NONE).is_some() {}
    }

    /// The epoll descriptor, readable when [`Self::turn`] has work.
    pub(super) fn epoll_fd(&self) -> std::os::fd::RawFd {
        self.epoll.0.as_raw_fd()
    }

    /// Handles what is ready, waiting at most `timeout` for something to
    /// be: how many events it handled, or `None` once the watcher cannot go
    /// on.
    pub(super) fn turn(&mut self, timeout: EpollTimeout) -> Option<usize> {
        let mut events = [EpollEvent::empty(); 32];
        {
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => return Some(0),
                Err(e) => {
                    log::error!("OOM watcher stopped: epoll: {e}");
                    return None;
                }
            };
            // Notifications first, requests last: an OOM already signalled
            // is told even when its container's `forget` came in the same
            // wake-up (a container OOM-killed and deleted at once).
            let mut wake = false;
            for event in &events[..ready] {
                match event.data() {
                    WAKE => wake = true,
                    INOTIFY => self.read_v2(),
                    token => self.read_v1(token),
                }
            }
            if wake {
                self.take_requests();
            }
            self.shared
                .watched
                .store(self.v1.len() + self.v2.len(), Ordering::Release);
            Some(ready)
        }
    }

    fn take_requests(&mut self) {
        // Non-blocking: a wake already drained reads EAGAIN.
        let _ = self.shared.wake.read();
        let requests = std::mem::take(
            &mut *self
                .shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for request in requests {
            match request {
                Request::Watch { id, cgroup } => {
                    let path = cgroup.path().to_path_buf();
                    if let Err(e) = self.add(&id, cgroup) {
                        log::warn!("container {id}: no OOM events ({}: {e})", path.display());
                    }
                }
                Request::Forget { id } => self.forget(&id),
            }
        }
    }

    fn add(&mut self, id: &str, cgroup: CgroupFolder) -> std::io::Result<()> {
        match cgroup {
            CgroupFolder::V1(dir) => {
                let oom_control = File::open(dir.join("memory.oom_control"))?;
                let notified = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
                let mut control = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.event_control"))?;
                // One write: the kernel parses each write on its own.
                let registration = format!("{} {}", notified.as_raw_fd(), oom_control.as_raw_fd());
                control.write_all(registration.as_bytes())?;
                let token = self.next_token;
                self.next_token += 1;
                self.epoll
                    .add(&notified, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
                self.v1.insert(
                    token,
                    V1Watch {
                        id: id.to_string(),
                        dir,
                        notified,
                        _oom_control: oom_control,
                    },
                );
            }
            CgroupFolder::V2(dir) => {
                let events = dir.join("memory.events");
                let oom_kills = oom_kills(&events)?;
                let wd = self
                    .inotify()?
                    .add_watch(&events, AddWatchFlags::IN_MODIFY)?;
                self.v2.insert(
                    wd,
                    V2Watch {
                        id: id.to_string(),
                        events,
                        oom_kills,
                    },
                );
            }
        }
        Ok(())
    }

    fn forget(&mut self, id: &str) {
        let v1: Vec<u64> = self
            .v1
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(t, _)| *t)
            .collect();
        for token in v1 {
            self.drop_v1(token);
        }
        let v2: Vec<WatchDescriptor> = self
            .v2
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in v2 {
            self.v2.remove(&wd);
            // Gone already when the cgroup went first.
            if let Some(inotify) = &self.inotify {
                let _ = inotify.rm_watch(wd);
            }
        }
    }

    /// The inotify instance, made and added to the epoll on first use.
    fn inotify(&mut self) -> std::io::Result<&Inotify> {
        if self.inotify.is_none() {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
            self.epoll
                .add(&inotify, EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY))?;
            self.inotify = Some(inotify);
        }
        self.inotify
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no inotify instance"))
    }

    /// Whether an inotify instance was made (one is, for v2 cgroups only).
    #[cfg(test)]
    pub(super) fn has_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    fn drop_v1(&mut self, token: u64) {
        if let Some(watch) = self.v1.remove(&token) {
            let _ = self.epoll.delete(&watch.notified);
        }
    }

    fn read_v1(&mut self, token: u64) {
        let Some(watch) = self.v1.get(&token) else {
            return;
        };
        let _ = watch.notified.read();
        // The kernel also signals a v1 OOM eventfd when its cgroup is
        // removed: then there is nothing more to watch.
        if !watch.dir.exists() {
            self.drop_v1(token);
            return;
        }
        (self.on_oom)(&watch.id);
    }

    fn read_v2(&mut self) {
        let Some(Ok(events)) = self.inotify.as_ref().map(Inotify::read_events) else {
            return;
        };
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                // The file (its cgroup) is gone.
                self.v2.remove(&event.wd);
                continue;
            }
            let Some(watch) = self.v2.get_mut(&event.wd) else {
                continue;
            };
            match oom_kills(&watch.events) {
                Ok(now) if now > watch.oom_kills => {
                    watch.oom_kills = now;
                    (self.on_oom)(&watch.id);
                }
                Ok(_) => {}
                Err(_) => {
                    self.v2.remove(&event.wd);
                    if let Some(inotify) = &self.inotify {
                        let _ = inotify.rm_watch(event.wd);
                    }
                }
            }
        }
    }
}

/// The `oom_kill` count of a cgroup2 `memory.events` file (0 when the
/// kernel does not report it).
fn oom_kills(events: &Path) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(events)?;
    Ok(text
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}
