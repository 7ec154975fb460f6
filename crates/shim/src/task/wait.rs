//! Wait: block until the container's process has exited.

use containerd_shim::api::WaitResponse;
use edgeshim_engine::Engine;

use super::{TaskService, timestamp};
use crate::error::Result;

impl<E: Engine> TaskService<E> {
    pub(super) fn do_wait(&self, id: &str) -> Result<WaitResponse> {
        let exit = self.get(id)?.wait();
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        })
    }
}
