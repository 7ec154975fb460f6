//! TaskOOM events: the kernel's OOM notifications for a container's memory
//! cgroup (v1 `memory.oom_control` eventfd, v2 `memory.events`, both through
//! cgroups-rs), forwarded to containerd, so kubelet can say OOMKilled, and
//! counted by the node's metrics exporter.

use std::sync::Arc;

use cgroups_rs::fs::memory::MemController;
use containerd_shim::protos::events::task::TaskOOM;

use crate::events::EventSink;
use crate::metrics::Telemetry;

/// Watches container `id`'s memory cgroup (found from its `pid`) until the
/// cgroup is removed. Without a memory cgroup there is nothing to watch.
pub fn watch(id: &str, pid: u32, events: Arc<dyn EventSink>, telemetry: Arc<Telemetry>) {
    let cgroup = match containerd_shim::cgroup::get_cgroup(pid) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            log::warn!("container {id}: no OOM events: {e}");
            return;
        }
    };
    let Some(memory) = cgroup.controller_of::<MemController>() else {
        return;
    };
    let notifications = match memory.register_oom_event(id) {
        Ok(rx) => rx,
        Err(e) => {
            log::warn!("container {id}: no OOM events: {e}");
            return;
        }
    };
    let id = id.to_string();
    let spawned = std::thread::Builder::new()
        .name(format!("oom-{id}"))
        .spawn(move || {
            for _ in notifications {
                log::warn!("container {id}: out of memory");
                telemetry.oom();
                events.send(Box::new(TaskOOM {
                    container_id: id.clone(),
                    ..Default::default()
                }));
            }
        });
    if let Err(e) = spawned {
        log::warn!("no OOM watcher thread: {e}");
    }
}
