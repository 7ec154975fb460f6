//! Start: the policy gate again, then the waiting process runs its payload.

use containerd_shim::api::StartResponse;
use containerd_shim::protos::events::task::TaskStart;
use edgeshim_engine::Engine;
use edgeshim_policy::Action;

use super::{TaskService, send};
use crate::container::Status;
use crate::error::{Result, TaskError};

impl<E: Engine> TaskService<E> {
    pub(super) fn do_start(&self, id: &str) -> Result<StartResponse> {
        let record = self.get(id)?;
        let mut input = record.policy_input.clone();
        input.action = Action::Start;
        self.check_policy(&input)?;

        let mut inner = record.lock();
        if inner.killed_before_start {
            return Err(TaskError::FailedPrecondition {
                id: id.to_string(),
                reason: "cannot start a container killed (SIGKILL) before it was started".into(),
            });
        }
        if inner.status != Status::Created {
            return Err(TaskError::FailedPrecondition {
                id: id.to_string(),
                reason: format!("cannot start a container that is {:?}", inner.status),
            });
        }
        inner.process.start()?;
        inner.status = Status::Running;
        send(
            self.events.as_ref(),
            TaskStart {
                container_id: id.to_string(),
                pid: record.pid,
                ..Default::default()
            },
        );
        log::info!("container {id} started");
        Ok(StartResponse {
            pid: record.pid,
            ..Default::default()
        })
    }
}
