//! Create: rootfs -> bundle -> policy gate -> compile -> isolated process.
//!
//! Nothing runs yet: the process waits for Start. Any failure undoes what was
//! done (mount, process, cgroup, state) before the error is returned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use containerd_shim::api::{CreateTaskRequest, CreateTaskResponse};
use containerd_shim::protos::events::task::TaskCreate;
use edgeshim_bundle::{Bundle, Workload};
use edgeshim_engine::{Engine, NetworkGrant};
use edgeshim_isolation::{IsolatedContainer, LaunchPayload};
use edgeshim_policy::{Action, DecisionInput, ShimFacts};

use super::TaskService;
use crate::container::ContainerRecord;
use crate::error::{Result, TaskError};
use crate::launch::PayloadDescription;
use crate::{rootfs, stdio};

impl<E: Engine> TaskService<E> {
    pub(super) fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let id = req.id.clone();
        let since = Instant::now();
        let Some(_reservation) = self.creating.reserve(&id, || self.map().contains_key(&id)) else {
            return Err(TaskError::AlreadyExists(id));
        };
        if req.terminal {
            return Err(TaskError::FailedPrecondition {
                id,
                reason: "terminals (tty) are not supported by edgeshim".into(),
            });
        }
        let bundle_dir = PathBuf::from(&req.bundle);
        let mounted =
            rootfs::mount(&bundle_dir, &req.rootfs).map_err(TaskError::io(&id, "rootfs"))?;
        let (process, policy_input, network) = match self.create_process(&id, &bundle_dir, &req) {
            Ok(created) => created,
            Err(e) => {
                if let Some(target) = mounted {
                    rootfs::unmount(&target);
                }
                return Err(e);
            }
        };
        let pid = process.pid().unwrap_or_default();
        let record = Arc::new(
            ContainerRecord::new(
                id.clone(),
                bundle_dir,
                [req.stdin.clone(), req.stdout.clone(), req.stderr.clone()],
                mounted,
                process,
                policy_input,
            )
            .with_network(network),
        );
        // Known to the exit thread and announced to containerd, in that
        // order whatever the process does meanwhile (see ordering.rs).
        super::ordering::publish_created(
            &self.containers,
            &self.unclaimed,
            self.events.as_ref(),
            &record,
            since,
            TaskCreate {
                container_id: id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(containerd_shim::protos::events::task::TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                pid,
                ..Default::default()
            },
        );
        crate::oom::watch(self.oom.as_ref(), &id, pid);
        log::info!("container {id} created, pid {pid}");
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    /// Everything between the mounted rootfs and a waiting process.
    fn create_process(
        &self,
        id: &str,
        bundle_dir: &Path,
        req: &CreateTaskRequest,
    ) -> Result<(IsolatedContainer, DecisionInput, Option<NetworkGrant>)> {
        let bundle_err = |source| TaskError::Bundle {
            id: id.to_string(),
            source,
        };
        let bundle = Bundle::load(bundle_dir).map_err(bundle_err)?;
        bundle.check_namespaces().map_err(bundle_err)?;
        let workload = bundle
            .workload(self.gate.max_module_bytes())
            .map_err(bundle_err)?;
        // A fact only this shim knows: the task whose start spawned it.
        let facts = ShimFacts::for_task(id == self.shim_id, id, &bundle);
        let input = DecisionInput::from_bundle(Action::Create, id, &bundle, &workload, &facts);
        let decision = self.check_policy(&input)?;

        // The shim validates and compiles (or finds in the cache); the
        // launcher then maps the cached code, and gets the module's bytes
        // only the first time it sees it.
        let module = match workload {
            Workload::Native { .. } => None,
            Workload::Wasm { module, view, .. } => {
                let engine = self.engine(id)?;
                let engine_err = |source| TaskError::Engine {
                    id: id.to_string(),
                    source,
                };
                edgeshim_engine::compile_time::reset();
                let prepared = engine
                    .prepare(&module.bytes, &module.sha256)
                    .map_err(engine_err)?;
                self.telemetry.module(edgeshim_engine::compile_time::take());
                engine
                    .check_runnable(&prepared, &view, &decision.network)
                    .map_err(engine_err)?;
                let description = PayloadDescription {
                    sha256: module.sha256.clone(),
                    view,
                    network: decision.network.clone(),
                };
                let description = serde_json::to_value(&description)
                    .map_err(|e| TaskError::io(id, "payload")(e.to_string()))?;
                Some((description, module.bytes))
            }
        };
        let stdio = stdio::open(&req.stdin, &req.stdout, &req.stderr)
            .map_err(TaskError::io(id, "stdio"))?;
        if self.state_root.join(id).exists() {
            // State this shim does not know: left by a shim that died.
            log::warn!("container {id}: removing state left by an earlier shim");
            self.remove_leftover_state(id);
        }
        // Called only for a Wasm payload, whose module is there.
        let make_fd = || module_memfd(module.as_ref().map_or(&[][..], |(_, bytes)| bytes));
        let payload = module.as_ref().map(|(description, _)| LaunchPayload {
            description: description.clone(),
            make_fd: &make_fd,
        });
        let process = IsolatedContainer::create(
            &self.launcher,
            &self.state_root,
            id,
            bundle_dir,
            &bundle.spec,
            stdio,
            payload,
        )
        .map_err(|e| {
            self.remove_leftover_state(id);
            TaskError::from(e)
        })?;
        let network = module.is_some().then_some(decision.network);
        Ok((process, input, network))
    }

    /// Removes libcontainer's state folder and cgroup for `id` (after a
    /// failed create, or left by a dead shim) so that the id can be reused.
    fn remove_leftover_state(&self, id: &str) {
        if let Ok(mut leftover) = IsolatedContainer::load(&self.state_root, id)
            && let Err(cleanup) = leftover.delete()
        {
            log::warn!("{cleanup}");
        }
        let _ = std::fs::remove_dir_all(self.state_root.join(id));
    }

    /// Puts `input` to the gate; a denial becomes the request's error, an
    /// allow is the decision (what it grants: the network).
    pub(super) fn check_policy(&self, input: &DecisionInput) -> Result<edgeshim_policy::Decision> {
        let decision = self.gate.decide(input);
        log::info!(
            "policy {:?} {} for container {}: allow={} reasons={:?} revision={}",
            input.action,
            input.container.entrypoint,
            input.container.id,
            decision.allow,
            decision.reasons,
            decision.revision
        );
        if decision.allow {
            Ok(decision)
        } else {
            Err(TaskError::Denied {
                id: input.container.id.clone(),
                revision: decision.revision,
                reasons: decision.reasons,
            })
        }
    }
}

/// The module's bytes in a sealed memory file, for the launcher.
fn module_memfd(bytes: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    use std::io::{Seek, Write};
    let fd = memfd_create(
        c"edgeshim-module",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.rewind()?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor this function owns.
    if unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::F_ADD_SEALS,
            seals,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file.into())
}
