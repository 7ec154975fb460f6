//! Kill: a signal to the container's process, or to all of its cgroup.

use edgeshim_engine::Engine;

use super::TaskService;
use crate::error::{Result, TaskError};

impl<E: Engine> TaskService<E> {
    pub(super) fn do_kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let record = self.get(id)?;
        let mut inner = record.lock();
        if inner.exit.is_some() {
            // As runc's shim: containerd treats NotFound here as done.
            return Err(TaskError::AlreadyFinished { id: id.to_string() });
        }
        let signal = i32::try_from(signal).map_err(|_| TaskError::FailedPrecondition {
            id: id.to_string(),
            reason: format!("invalid signal {signal}"),
        })?;
        match inner.process.kill(signal, all) {
            Err(edgeshim_isolation::IsolationError::Finished { id }) => {
                return Err(TaskError::AlreadyFinished { id });
            }
            other => other?,
        }
        if inner.status == crate::container::Status::Created && signal == libc::SIGKILL {
            inner.killed_before_start = true;
        }
        log::info!("container {id}: sent signal {signal} (all={all})");
        Ok(())
    }
}
