//! One container's process, driven through libcontainer: made in the
//! launcher ([`build_process`]), then loaded from its state in the shim for
//! start, signals and delete ([`IsolatedContainer`]).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use oci_spec::runtime::Spec;

use crate::bundle_config::{self, SpecEdits};
use crate::cgroups::{self, CgroupDriver};
use crate::error::chain;
use crate::executor::{ContainerExecutor, Payload};
use crate::launcher::{LaunchReply, LaunchRequest, Launcher};
use crate::wasm_process::{self, DirectProcess, Program, record};
use crate::{IsolationError, Result};

/// The container's fds 0-2 (`None`: `/dev/null`).
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// A Wasm payload as the shim describes it to the launcher.
pub struct LaunchPayload<'a> {
    /// What the launcher's payload factory reads (module digest, WASI view).
    pub description: serde_json::Value,
    /// Makes the descriptor the factory asks for when it lacks something
    /// (the module's bytes, the first time the launcher sees it).
    pub make_fd: &'a dyn Fn() -> std::io::Result<OwnedFd>,
}

/// A container process that exists (created, running or exited) until
/// [`IsolatedContainer::delete`].
pub struct IsolatedContainer {
    made_by: MadeBy,
}

/// Which launch path made the process, and what it keeps of it.
enum MadeBy {
    Libcontainer(Container),
    Direct(DirectProcess),
}

impl IsolatedContainer {
    /// Makes the process through `launcher`: namespaces, cgroup, mounts,
    /// pivot into the rootfs; it then waits for [`start`](Self::start).
    /// `payload` `None` means the spec's `process.args` is `exec`ed natively;
    /// a Wasm payload's spec is first made a sandbox's (no proc, sys, cgroup,
    /// mqueue or devpts mounts, default devices only).
    ///
    /// The bundle's rootfs must already be mounted; `spec` is its
    /// config.json as loaded. State lives under `state_root/<id>`.
    pub fn create(
        launcher: &Launcher,
        state_root: &Path,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        payload: Option<LaunchPayload<'_>>,
    ) -> Result<Self> {
        let (driver, cgroups_path) = cgroups::prepare(id, spec)?;
        let program = Program::of(&payload);
        let direct = direct_path(id, spec, driver == CgroupDriver::Systemd, program);
        // libcontainer sets a native program's groups itself.
        let supplementary_gids = if payload.is_some() || direct {
            supplementary_gids(id, spec)?
        } else {
            Vec::new()
        };
        // A failed direct create removes what its id names: never another's.
        if direct && state_root.join(id).exists() {
            return Err(IsolationError::Create {
                id: id.to_string(),
                reason: format!("{} exists already", state_root.join(id).display()),
            });
        }
        let edits = SpecEdits {
            cgroups_path: cgroups_path.as_ref().map(|p| p.display().to_string()),
            wasm_sandbox: payload.is_some(),
        };
        bundle_config::apply(bundle, &edits).map_err(|e| IsolationError::Create {
            id: id.to_string(),
            reason: format!("cannot adapt {}/config.json: {e}", bundle.display()),
        })?;
        let failed = |reason: String| {
            if direct {
                remove_direct_remains(state_root, id, spec, cgroups_path.as_deref());
            }
            IsolationError::Create {
                id: id.to_string(),
                reason: with_memory_hint(reason, spec),
            }
        };
        let mut request = LaunchRequest {
            id: id.to_string(),
            state_root: state_root.to_path_buf(),
            bundle: bundle.to_path_buf(),
            systemd: driver == CgroupDriver::Systemd,
            stdio: [
                stdio.stdin.is_some(),
                stdio.stdout.is_some(),
                stdio.stderr.is_some(),
            ],
            payload: payload.as_ref().map(|p| p.description.clone()),
            payload_fd: false,
            supplementary_gids,
            direct,
            cgroup_mounts: if direct {
                wasm_process::controller_mounts()
            } else {
                Vec::new()
            },
        };
        let mut fds: Vec<OwnedFd> = [stdio.stdin, stdio.stdout, stdio.stderr]
            .into_iter()
            .flatten()
            .collect();
        let (mut reply, mut answer_fds) = launcher.request(&request, &fds).map_err(failed)?;
        if reply == LaunchReply::NeedPayloadFd
            && let Some(payload) = &payload
        {
            let fd = (payload.make_fd)()
                .map_err(|e| failed(format!("cannot hand the module to the launcher: {e}")))?;
            fds.push(fd);
            request.payload_fd = true;
            (reply, answer_fds) = launcher.request(&request, &fds).map_err(failed)?;
        }
        match reply {
            LaunchReply::Created { .. } if direct => {
                let start = answer_fds.pop().ok_or_else(|| {
                    failed("the launcher sent no start pipe with the container".into())
                })?;
                let mut made = Self::load(state_root, id).map_err(|e| failed(e.to_string()))?;
                match &mut made.made_by {
                    MadeBy::Direct(process) => process.start = Some(start),
                    MadeBy::Libcontainer(_) => {
                        return Err(failed("the launcher made it through libcontainer".into()));
                    }
                }
                Ok(made)
            }
            LaunchReply::Created { .. } => Self::load(state_root, id),
            LaunchReply::Failed { reason } => Err(failed(reason)),
            LaunchReply::NeedPayloadFd => Err(failed(
                "the launcher asked for the module twice".to_string(),
            )),
        }
    }

    /// Loads a container from its state (made by the launcher, or left by
    /// an earlier shim process, for clean-up).
    pub fn load(state_root: &Path, id: &str) -> Result<Self> {
        let root: PathBuf = state_root.join(id);
        if let Some(record) = record::read(&root) {
            let record = record.map_err(|e| IsolationError::Load {
                id: id.to_string(),
                root: root.display().to_string(),
                reason: e.to_string(),
            })?;
            return Ok(Self {
                made_by: MadeBy::Direct(DirectProcess {
                    id: id.to_string(),
                    root,
                    record,
                    start: None,
                }),
            });
        }
        let container = Container::load(root.clone()).map_err(|e| IsolationError::Load {
            id: id.to_string(),
            root: root.display().to_string(),
            reason: chain(&e),
        })?;
        Ok(Self {
            made_by: MadeBy::Libcontainer(container),
        })
    }

    /// A record of process `pid` that no launcher made, kept in `dir` (no
    /// state is written there): for unit tests of what the shim does
    /// around a container, never for running one.
    #[cfg(feature = "testing")]
    pub fn for_tests(id: &str, pid: i32, dir: &Path) -> Result<Self> {
        use libcontainer::container::ContainerStatus;
        let container =
            Container::new(id, ContainerStatus::Created, Some(pid), dir, dir).map_err(|e| {
                IsolationError::Load {
                    id: id.to_string(),
                    root: dir.display().to_string(),
                    reason: chain(&e),
                }
            })?;
        Ok(Self {
            made_by: MadeBy::Libcontainer(container),
        })
    }

    /// The container process's pid as the host sees it.
    pub fn pid(&self) -> Option<u32> {
        match &self.made_by {
            MadeBy::Libcontainer(container) => container
                .pid()
                .and_then(|pid| u32::try_from(pid.as_raw()).ok()),
            MadeBy::Direct(process) => Some(process.record.pid),
        }
    }

    /// Lets the process run its payload.
    ///
    /// One start at a time in this process: libcontainer 0.7 tells the
    /// container to start by changing the process's working directory to
    /// the container's state folder and connecting to `notify.sock` there
    /// by its relative name (to stay under the 108-byte limit of a socket
    /// path), then changing back. The working directory is the whole
    /// process's, so two starts on two of the shim's threads could each
    /// connect to the other's socket: one container started twice over,
    /// the other never (a start that "succeeds" and a process that waits
    /// for ever), and a thread changing back into a folder already deleted.
    /// Found by 100 starts at once in one pod (test/tests/faults.rs).
    pub fn start(&mut self) -> Result<()> {
        let container = match &mut self.made_by {
            MadeBy::Direct(process) => return process.start(),
            MadeBy::Libcontainer(container) => container,
        };
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _cwd_is_ours = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        container.start().map_err(|e| IsolationError::Start {
            id: container.id().to_string(),
            reason: chain(&e),
        })
    }

    /// Sends `signal` to the process, or to every process of its cgroup.
    pub fn kill(&mut self, signal: i32, all: bool) -> Result<()> {
        let container = match &mut self.made_by {
            MadeBy::Direct(process) => return process.kill(signal, all),
            MadeBy::Libcontainer(container) => container,
        };
        let id = container.id().to_string();
        let err = |reason: String| IsolationError::Kill {
            id: id.clone(),
            reason,
        };
        let signal = nix::sys::signal::Signal::try_from(signal)
            .map_err(|e| err(format!("signal {signal}: {e}")))?;
        let pid = container.pid();
        match container.kill(signal, all) {
            // The process died before the shim reaped it: nothing to signal.
            Err(libcontainer::error::LibcontainerError::IncorrectStatus(
                libcontainer::container::ContainerStatus::Stopped,
            )) => Err(IsolationError::Finished { id }),
            // The same race one step later: libcontainer saw it running,
            // then found its /proc entry gone (the shim reaped it between).
            Err(_) if !process_exists(pid) => Err(IsolationError::Finished { id }),
            other => other.map_err(|e| err(chain(&e))),
        }
    }

    /// Kills whatever is left, removes the cgroup and the state folder.
    pub fn delete(&mut self) -> Result<()> {
        match &mut self.made_by {
            MadeBy::Direct(process) => process.delete(),
            MadeBy::Libcontainer(container) => {
                container.delete(true).map_err(|e| IsolationError::Delete {
                    id: container.id().to_string(),
                    reason: chain(&e),
                })
            }
        }
    }
}

/// Whether the container's init process is still there (running or a
/// zombie not yet reaped).
fn process_exists(pid: Option<nix::unistd::Pid>) -> bool {
    pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// After a direct launch failed (its set-up process may have died before
/// it could undo anything): the cgroup and the state folder go.
fn remove_direct_remains(state_root: &Path, id: &str, spec: &Spec, laid_out: Option<&Path>) {
    let spec_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let Some(cgroups_path) = laid_out.map(Path::to_path_buf).or(spec_path) else {
        return;
    };
    if let Err(e) = wasm_process::remove_failed_create(&state_root.join(id), &cgroups_path) {
        log::warn!("container {id}: after a failed create: {e}");
    }
}

/// Whether the direct path makes this container (else libcontainer, and
/// the reason is logged).
fn direct_path(id: &str, spec: &Spec, systemd: bool, program: Program) -> bool {
    let why_not = match cgroups::host_setup() {
        Ok(setup) => wasm_process::unsupported(spec, setup, systemd, program),
        Err(e) => Some(e),
    };
    match why_not {
        None => true,
        Some(why) => {
            log::info!("container {id}: made through libcontainer ({why})");
            false
        }
    }
}

/// In the launcher: libcontainer makes the process (its intermediate and
/// init are cloned from the launcher) and writes its state; returns its pid,
/// or why not (the shim names the container around it).
pub(crate) fn build_process(
    request: &LaunchRequest,
    stdio: Stdio,
    payload: Option<Arc<dyn Payload>>,
) -> std::result::Result<u32, String> {
    let id = &request.id;
    let err = |e: &dyn std::error::Error| chain(e);
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(ContainerExecutor { payload })
        .with_root_path(&request.state_root)
        .map_err(|e| err(&e))?;
    if let Some(fd) = stdio.stdin {
        builder = builder.with_stdin(fd);
    }
    if let Some(fd) = stdio.stdout {
        builder = builder.with_stdout(fd);
    }
    if let Some(fd) = stdio.stderr {
        builder = builder.with_stderr(fd);
    }
    // Not `as_sibling`: a sibling is cloned without an exit signal, so its
    // exit would raise no SIGCHLD. The init process is instead reparented
    // to the shim (the nearest subreaper) when libcontainer's intermediate
    // exits.
    let container = builder
        .validate_id()
        .map_err(|e| err(&e))?
        .as_init(&request.bundle)
        .with_systemd(request.systemd)
        .with_detach(true)
        .build()
        .map_err(|e| err(&e))?;
    container
        .pid()
        .and_then(|pid| u32::try_from(pid.as_raw()).ok())
        .ok_or_else(|| "libcontainer reported no pid".to_string())
}

/// The groups a Wasm container's (or a direct-path native program's) set-up
/// process takes for it: its spec's `process.user.additionalGids`. Host
/// gids: with a user namespace they would need the spec's mapping, which
/// libcontainer applies; refused.
fn supplementary_gids(id: &str, spec: &Spec) -> Result<Vec<u32>> {
    let gids = spec
        .process()
        .as_ref()
        .and_then(|p| p.user().additional_gids().clone())
        .unwrap_or_default();
    let user_namespace = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    if user_namespace && !gids.is_empty() {
        return Err(IsolationError::Create {
            id: id.to_string(),
            reason: format!(
                "supplementary groups {gids:?} in a user namespace are not supported \
                 for Wasm containers"
            ),
        });
    }
    Ok(gids)
}

/// Below this memory limit, libcontainer's set-up processes (copies of the
/// launcher) may not fit in the container's memory cgroup.
const SETUP_MEMORY_HINT_BELOW: i64 = 2 << 20;

/// libcontainer reports a set-up process that died only as a broken
/// channel; with a tiny memory limit, that is the likely cause, so say so.
fn with_memory_hint(reason: String, spec: &Spec) -> String {
    let limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit());
    match limit {
        Some(limit) if limit > 0 && limit < SETUP_MEMORY_HINT_BELOW => format!(
            "{reason} (the memory limit of {limit} bytes is likely too low for the \
             container's set-up, which needs about 1 MiB)"
        ),
        _ => reason,
    }
}
