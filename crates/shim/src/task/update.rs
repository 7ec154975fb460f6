//! Update: new resources for a running container's cgroup (what CRI's
//! UpdateContainerResources sends), decided by the policy gate first
//! (action `update`, the container's create-time input with the new
//! resources), so that a limit the policy capped at create cannot be raised
//! past the cap afterwards. The Wasm engine's linear-memory cap was fixed at
//! start and is not changed: the cgroup limit still applies.

use containerd_shim::api::UpdateTaskRequest;
use edgeshim_engine::Engine;
use oci_spec_shim::runtime::LinuxResources;

use super::TaskService;
use crate::error::{Result, TaskError};

impl<E: Engine> TaskService<E> {
    pub(super) fn do_update(&self, req: &UpdateTaskRequest) -> Result<()> {
        let id = req.id.as_str();
        let record = self.get(id)?;
        if record.lock().exit.is_some() {
            return Err(TaskError::AlreadyFinished { id: id.to_string() });
        }
        let invalid = |reason: String| TaskError::FailedPrecondition {
            id: id.to_string(),
            reason,
        };
        let any = req
            .resources
            .as_ref()
            .ok_or_else(|| invalid("update carries no resources".into()))?;
        // containerd sends runtime-spec LinuxResources as JSON in the Any.
        let resources: LinuxResources = serde_json::from_slice(&any.value).map_err(|e| {
            invalid(format!(
                "resources are not runtime-spec LinuxResources: {e}"
            ))
        })?;
        let input = record
            .policy_input
            .for_update(&any.value)
            .map_err(invalid)?;
        self.check_policy(&input)?;
        let io_err = TaskError::io(id, "update");
        let cgroup =
            containerd_shim::cgroup::get_cgroup(record.pid).map_err(|e| io_err(e.to_string()))?;
        containerd_shim::cgroup::update_resources(&cgroup, &resources)
            .map_err(|e| io_err(e.to_string()))?;
        log::info!("container {id}: resources updated");
        Ok(())
    }
}
