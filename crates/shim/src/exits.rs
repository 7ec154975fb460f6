//! Collects container exits. The shim library reaps every child on SIGCHLD
//! and reports `(pid, status)` here; we match the pid to a container.
//!
//! With the launcher (edgeshim-isolation), the shim's own children are its
//! launcher, reparented container processes and WasmEdge's compile helper;
//! libcontainer's intermediate processes are the launcher's.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

// The async monitor: the library's SIGCHLD handler reports to it (the
// top-level `monitor` module is the sync library's, which nothing feeds).
use containerd_shim::asynchronous::monitor::{Subscription, monitor_subscribe};
use containerd_shim::monitor::{Subject, Topic};

/// How long an exit no container claims is kept: a container's process can
/// die between being made and being recorded, which takes milliseconds.
pub const KEEP_UNCLAIMED_FOR: Duration = Duration::from_secs(30);
/// At most this many are kept, however fast they come.
const MAX_UNCLAIMED: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Unclaimed {
    pid: u32,
    status: i32,
    at: Instant,
}

/// Exits of pids no container claims yet, each with when it was seen.
#[derive(Default)]
pub struct UnclaimedExits(Mutex<Vec<Unclaimed>>);

impl UnclaimedExits {
    /// The exit of `pid` seen at or after `since` (when the create that made
    /// the process began): an exit of the same pid seen earlier was another
    /// process's, whose pid the kernel has since reused.
    pub fn take(&self, pid: u32, since: Instant) -> Option<i32> {
        let mut held = self.lock();
        let index = held.iter().position(|e| e.pid == pid && e.at >= since)?;
        Some(held.swap_remove(index).status)
    }

    /// Keeps the exit of `pid`, dropping what is older than
    /// [`KEEP_UNCLAIMED_FOR`] (or the oldest, past [`MAX_UNCLAIMED`]).
    pub fn put(&self, pid: u32, status: i32, at: Instant) {
        let mut held = self.lock();
        held.retain(|e| at.saturating_duration_since(e.at) < KEEP_UNCLAIMED_FOR);
        if held.len() >= MAX_UNCLAIMED {
            held.remove(0);
        }
        held.push(Unclaimed { pid, status, at });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Unclaimed>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Subscribes to the exits the shim library reaps. Made before the task
/// service serves anything, so that no exit goes unseen.
pub async fn subscribe() -> std::io::Result<Subscription> {
    monitor_subscribe(Topic::Pid)
        .await
        .map_err(|e| std::io::Error::other(format!("subscribe to exits: {e}")))
}

/// Hands every exit of `subscription` to `on_exit(pid, status)`, as a task
/// on the shim's runtime (no thread of its own): `on_exit` only records
/// the exit and queues its event.
pub fn watch(mut subscription: Subscription, on_exit: impl Fn(u32, i32) + Send + 'static) {
    tokio::spawn(async move {
        while let Some(event) = subscription.rx.recv().await {
            let Subject::Pid(pid) = event.subject else {
                continue;
            };
            let Ok(pid) = u32::try_from(pid) else {
                continue;
            };
            on_exit(pid, event.exit_code);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unclaimed_exit_is_taken_once() {
        let unclaimed = UnclaimedExits::default();
        let since = Instant::now();
        unclaimed.put(42, 137, Instant::now());
        assert_eq!(unclaimed.take(7, since), None);
        assert_eq!(unclaimed.take(42, since), Some(137));
        assert_eq!(unclaimed.take(42, since), None);
    }

    #[test]
    fn test_an_earlier_process_with_the_same_pid_is_not_taken() {
        let unclaimed = UnclaimedExits::default();
        let earlier = Instant::now();
        unclaimed.put(42, 1, earlier);
        // A create that began after that exit: the pid was reused.
        let since = earlier + Duration::from_millis(1);
        assert_eq!(unclaimed.take(42, since), None);
        unclaimed.put(42, 0, since + Duration::from_millis(1));
        assert_eq!(unclaimed.take(42, since), Some(0));
    }

    #[test]
    fn test_unclaimed_exits_are_bounded_in_time_and_number() {
        let unclaimed = UnclaimedExits::default();
        let start = Instant::now();
        for pid in 0..5000 {
            unclaimed.put(pid, 0, start);
        }
        assert!(unclaimed.lock().len() <= MAX_UNCLAIMED);
        assert_eq!(unclaimed.take(4999, start), Some(0));
        // One more exit, after the time limit: everything older goes.
        unclaimed.put(1, 0, start + KEEP_UNCLAIMED_FOR);
        assert_eq!(unclaimed.lock().len(), 1);
    }
}
