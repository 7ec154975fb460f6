//! Delete: remove a stopped (or never started) container and all it held:
//! process, cgroup, state folder, rootfs mount.

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::events::task::TaskDelete;
use edgeshim_engine::Engine;

use super::{TaskService, send, timestamp};
use crate::container::Status;
use crate::error::{Result, TaskError};
use crate::rootfs;

const SIGKILL: i32 = libc::SIGKILL;

impl<E: Engine> TaskService<E> {
    pub(super) fn do_delete(&self, id: &str) -> Result<DeleteResponse> {
        let record = self.get(id)?;
        {
            let mut inner = record.lock();
            match (inner.status, inner.exit) {
                (Status::Running, None) => {
                    return Err(TaskError::FailedPrecondition {
                        id: id.to_string(),
                        reason: "cannot delete a running container; kill it first".into(),
                    });
                }
                // Created, never started: kill it, then wait below for the
                // exit to be collected so that its status is known. A start
                // that was waiting for this lock is then refused as such.
                (_, None) => {
                    inner.process.kill(SIGKILL, true)?;
                    inner.killed_before_start = true;
                }
                (_, Some(_)) => {}
            }
        }
        let exit = record.wait();
        if let Some(oom) = &self.oom {
            oom.forget(id);
        }
        // Its process's last network refusals, logged under its name.
        if let Some(refusals) = &self.refusals {
            refusals.drain();
            refusals.forget(id);
        }
        record.lock().process.delete()?;
        if let Some(target) = &record.mounted_rootfs {
            rootfs::unmount(target);
        }
        self.map().remove(id);
        send(
            self.events.as_ref(),
            TaskDelete {
                container_id: id.to_string(),
                id: id.to_string(),
                pid: record.pid,
                exit_status: exit.status,
                exited_at: Some(timestamp(exit.at)).into(),
                ..Default::default()
            },
        );
        log::info!("container {id} deleted");
        Ok(DeleteResponse {
            pid: record.pid,
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        })
    }
}
