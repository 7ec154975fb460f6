//! Read-only operations: state, pids, stats, connect.

use containerd_shim::api::{
    ConnectResponse, PidsResponse, StateResponse, StatsResponse, Status as ApiStatus,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::task::ProcessInfo;
use edgeshim_engine::Engine;

use super::{TaskService, timestamp};
use crate::container::Status;
use crate::error::{Result, TaskError};

impl<E: Engine> TaskService<E> {
    pub(super) fn do_state(&self, id: &str) -> Result<StateResponse> {
        let record = self.get(id)?;
        let inner = record.lock();
        let status = match inner.status {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Stopped => ApiStatus::STOPPED,
        };
        let [stdin, stdout, stderr] = record.stdio.clone();
        Ok(StateResponse {
            id: id.to_string(),
            bundle: record.bundle.display().to_string(),
            pid: record.pid,
            status: status.into(),
            stdin,
            stdout,
            stderr,
            exit_status: inner.exit.map(|e| e.status).unwrap_or_default(),
            exited_at: inner
                .exit
                .map(|e| timestamp(e.at))
                .map(MessageField::some)
                .unwrap_or_default(),
            ..Default::default()
        })
    }

    /// Every process of the container's cgroup (a native container may fork);
    /// the init pid alone once the cgroup cannot be read.
    pub(super) fn do_pids(&self, id: &str) -> Result<PidsResponse> {
        let record = self.get(id)?;
        let mut pids = cgroup_procs(record.pid);
        if pids.is_empty() {
            pids.push(record.pid);
        }
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub(super) fn do_stats(&self, id: &str) -> Result<StatsResponse> {
        let record = self.get(id)?;
        let io_err = |reason: String| TaskError::Io {
            id: id.to_string(),
            what: "stats",
            reason,
        };
        let cgroup =
            containerd_shim::cgroup::get_cgroup(record.pid).map_err(|e| io_err(e.to_string()))?;
        let metrics =
            containerd_shim::cgroup::collect_metrics(&cgroup).map_err(|e| io_err(e.to_string()))?;
        let any = containerd_shim::util::convert_to_any(Box::new(metrics))
            .map_err(|e| io_err(e.to_string()))?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    pub(super) fn do_connect(&self, id: &str) -> Result<ConnectResponse> {
        let record = self.get(id)?;
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: record.pid,
            ..Default::default()
        })
    }
}

/// The pids in `pid`'s own cgroup, read from its pids controller (v1) or the
/// unified hierarchy (v2). By hand because cgroups-rs's `procs()` unions all
/// controllers, and a controller the container does not use (name=systemd on
/// hybrid hosts) resolves to the root cgroup: every process of the host.
fn cgroup_procs(pid: u32) -> Vec<u32> {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let mut v1 = None;
    let mut v2 = None;
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        match (controllers, path) {
            (Some(c), Some(p)) if c.split(',').any(|c| c == "pids") => v1 = Some(p.to_string()),
            (Some(""), Some(p)) => v2 = Some(p.to_string()),
            _ => {}
        }
    }
    let file = match (v1, v2) {
        (Some(path), _) => format!("/sys/fs/cgroup/pids{path}/cgroup.procs"),
        (None, Some(path)) => format!("/sys/fs/cgroup{path}/cgroup.procs"),
        (None, None) => return Vec::new(),
    };
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
