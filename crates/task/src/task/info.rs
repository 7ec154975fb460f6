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

    pub(super) fn do_pids(&self, id: &str) -> Result<PidsResponse> {
        let record = self.get(id)?;
        Ok(PidsResponse {
            processes: vec![ProcessInfo {
                pid: record.pid,
                ..Default::default()
            }],
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
