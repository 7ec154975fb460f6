//! Wait: answered once the container's process has exited. Awaited on the
//! shim's runtime thread: a Wait lasts as long as its container, so it must
//! not hold a thread.

use containerd_shim::api::WaitResponse;
use edgeshim_engine::Engine;

use super::{TaskService, timestamp};
use crate::error::Result;

impl<E: Engine> TaskService<E> {
    pub(super) async fn do_wait(&self, id: &str) -> Result<WaitResponse> {
        let exit = self.get(id)?.exited().await;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        })
    }
}
