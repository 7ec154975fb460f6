//! TaskOOM events: the shim's one OOM watcher (`edgeshim_isolation::oom`,
//! v1 and v2 memory cgroups on one epoll, turned by a task on the shim's
//! runtime) tells which container's
//! cgroup saw an OOM kill; this forwards it to containerd, so kubelet can
//! say OOMKilled, and to the node's metrics exporter.

use std::sync::Arc;

use containerd_shim::protos::events::task::TaskOOM;
use edgeshim_isolation::oom::{CgroupFolder, OomEvents, OomWatcher};
use edgeshim_isolation::proc_cgroup::ControllerType;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::events::{EventSink, TaskEvent};
use crate::metrics::Telemetry;

/// The shim's OOM watcher, turned by a task on the shim's runtime
/// whenever its epoll is readable (no thread of its own), or `None` (no
/// OOM events) when it cannot be made.
pub fn watcher(events: Arc<dyn EventSink>, telemetry: Arc<Telemetry>) -> Option<OomWatcher> {
    let on_oom = Box::new(move |id: &str| {
        log::warn!("container {id}: out of memory");
        telemetry.oom();
        events.send(TaskEvent::of(TaskOOM {
            container_id: id.to_string(),
            ..Default::default()
        }));
    });
    let made = OomWatcher::new(on_oom).and_then(|(watcher, events)| {
        // SAFETY: `as_raw_fd` is the watcher's epoll, which it owns and
        // neither closes nor replaces while it lives (moved into the
        // AsyncFd, which drops it last).
        let events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        tokio::spawn(turn_when_ready(events));
        Ok(watcher)
    });
    made.inspect_err(|e| log::error!("no OOM events for this shim's containers: {e}"))
        .ok()
}

/// Turns the watcher each time its epoll is readable, until nothing is
/// left (the runtime's registration is edge-triggered).
async fn turn_when_ready(mut events: AsyncFd<OomEvents>) {
    loop {
        let mut ready = match events.readable_mut().await {
            Ok(ready) => ready,
            Err(e) => {
                log::error!("OOM events stopped: {e}");
                return;
            }
        };
        match ready.get_inner_mut().turn() {
            None => return,
            Some(0) => ready.clear_ready(),
            Some(_) => {}
        }
    }
}

/// Watches container `id`'s memory cgroup (found from its `pid`) until it
/// is removed. Without a memory cgroup there is nothing to watch.
pub fn watch(watcher: Option<&OomWatcher>, id: &str, pid: u32) {
    let Some(watcher) = watcher else {
        return;
    };
    match CgroupFolder::of_pid(pid, ControllerType::Memory) {
        Some(cgroup) => watcher.watch(id, cgroup),
        None => log::warn!("container {id}: no memory cgroup found for pid {pid}: no OOM events"),
    }
}
