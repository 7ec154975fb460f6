//! Collects container exits. The shim library reaps every child on SIGCHLD
//! and reports `(pid, status)` here; we match the pid to a container.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use containerd_shim::monitor::monitor_subscribe;
use containerd_shim::monitor::{Subject, Topic};

/// Exits of pids no container claims yet: a process can die between being
/// created and being recorded.
#[derive(Default)]
pub struct UnclaimedExits(Mutex<HashMap<u32, i32>>);

impl UnclaimedExits {
    pub fn take(&self, pid: u32) -> Option<i32> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&pid)
    }

    fn put(&self, pid: u32, status: i32) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the most recent few matter; helper processes (libcontainer's
        // intermediate one) also land here and must not pile up.
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(pid, status);
    }
}

/// Starts the thread that routes exits to `on_exit(pid, status)`; an exit
/// nobody claims (returns `false`) is kept in `unclaimed`.
pub fn watch(
    unclaimed: Arc<UnclaimedExits>,
    on_exit: impl Fn(u32, i32) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let subscription = monitor_subscribe(Topic::Pid)
        .map_err(|e| std::io::Error::other(format!("subscribe to exits: {e}")))?;
    std::thread::Builder::new()
        .name("exits".into())
        .spawn(move || {
            for event in subscription.rx.iter() {
                let Subject::Pid(pid) = event.subject else {
                    continue;
                };
                let Ok(pid) = u32::try_from(pid) else {
                    continue;
                };
                if !on_exit(pid, event.exit_code) {
                    unclaimed.put(pid, event.exit_code);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unclaimed_exit_is_taken_once() {
        let unclaimed = UnclaimedExits::default();
        unclaimed.put(42, 137);
        assert_eq!(unclaimed.take(7), None);
        assert_eq!(unclaimed.take(42), Some(137));
        assert_eq!(unclaimed.take(42), None);
    }

    #[test]
    fn test_unclaimed_exits_do_not_pile_up() {
        let unclaimed = UnclaimedExits::default();
        for pid in 0..5000 {
            unclaimed.put(pid, 0);
        }
        let held = unclaimed.0.lock().map(|m| m.len()).unwrap_or_default();
        assert!(held <= 1025, "{held} exits held");
        assert_eq!(unclaimed.take(4999), Some(0));
    }
}
