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
        let mut pids = edgeshim_isolation::proc_cgroup::procs(record.pid);
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
        // The shim library reads only cgroup2's `cpu.stat`: on v1 and hybrid
        // hosts its usage would stay 0.
        if let Some((total, user, kernel)) =
            edgeshim_isolation::proc_cgroup::cpuacct_usage(record.pid)
        {
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
