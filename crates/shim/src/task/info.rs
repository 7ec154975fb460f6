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
        let io_err = TaskError::io(id, "stats");
        let cgroup =
            containerd_shim::cgroup::get_cgroup(record.pid).map_err(|e| io_err(e.to_string()))?;
        let mut metrics =
            containerd_shim::cgroup::collect_metrics(&cgroup).map_err(|e| io_err(e.to_string()))?;
        if let Some((total, user, kernel)) = cpuacct_usage(record.pid) {
            let usage = metrics.mut_cpu().mut_usage();
            usage.total = total;
            usage.user = user;
            usage.kernel = kernel;
        }
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

/// The folder of `pid`'s cgroup in `controller`'s v1 hierarchy, or in the
/// unified one when the host has no such v1 controller. Read by hand from
/// /proc because cgroups-rs unions all controllers (`procs()`), and one the
/// container does not use (name=systemd on hybrid hosts) is the root cgroup.
fn cgroup_dir(pid: u32, controller: &str) -> Option<std::path::PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut unified = None;
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next()?, fields.next()?);
        if controllers.split(',').any(|c| c == controller) {
            return Some(format!("/sys/fs/cgroup/{controller}{path}").into());
        }
        if controllers.is_empty() {
            unified = Some(format!("/sys/fs/cgroup{path}"));
        }
    }
    unified.map(Into::into)
}

/// The pids in `pid`'s own cgroup.
fn cgroup_procs(pid: u32) -> Vec<u32> {
    cgroup_dir(pid, "pids")
        .and_then(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// CPU usage from cgroup v1's cpuacct controller, in nanoseconds. The shim
/// library reads only v2's `cpu.stat` fields, so on v1 and hybrid hosts its
/// usage stays 0.
fn cpuacct_usage(pid: u32) -> Option<(u64, u64, u64)> {
    let dir = cgroup_dir(pid, "cpuacct").filter(|d| d.join("cpuacct.usage").exists())?;
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((
        read("cpuacct.usage")?,
        read("cpuacct.usage_user")?,
        read("cpuacct.usage_sys")?,
    ))
}
