//! TaskOOM events: the shim's one OOM watcher (`edgeshim_isolation::oom`,
//! v1 and v2 memory cgroups on a single thread) tells which container's
//! cgroup saw an OOM kill; this forwards it to containerd, so kubelet can
//! say OOMKilled, and to the node's metrics exporter.

use std::sync::Arc;

use containerd_shim::protos::events::task::TaskOOM;
use edgeshim_isolation::oom::{CgroupFolder, OomWatcher};
use edgeshim_isolation::proc_cgroup::ControllerType;

use crate::events::EventSink;
use crate::metrics::Telemetry;

/// The shim's OOM watcher, or `None` (no OOM events) when its thread
/// cannot be made.
pub fn watcher(events: Arc<dyn EventSink>, telemetry: Arc<Telemetry>) -> Option<OomWatcher> {
    let on_oom = Box::new(move |id: &str| {
        log::warn!("container {id}: out of memory");
        telemetry.oom();
        events.send(Box::new(TaskOOM {
            container_id: id.to_string(),
            ..Default::default()
        }));
    });
    OomWatcher::spawn(on_oom)
        .inspect_err(|e| log::error!("no OOM events for this shim's containers: {e}"))
        .ok()
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
