//! The shim binary's three modes, as containerd drives them: `start` (spawn
//! or reuse the shim for this container's pod, print its socket address),
//! `delete` (clean up after a shim that died) and serving the Task API.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_str_to_file;
use containerd_shim::{Config, ExitSignal, Flags, Shim, StartOpts};
use edgeshim_bundle::{Bundle, SANDBOX_ID_ANNOTATION};
use edgeshim_engine::Engine;
use edgeshim_isolation::IsolatedContainer;

use crate::events::ContainerdEvents;
use crate::rootfs;
use crate::task::{TaskApi, TaskService};

/// Where container state (libcontainer's) lives: `<root>/<namespace>/<id>`.
pub const STATE_ROOT: &str = "/run/edgeshim";

/// The OPA Wasm host the binary chose. A process-wide setting because
/// containerd-shim builds the [`Shim`] through `Shim::new`, whose
/// arguments are fixed; set once in [`crate::run`] before serving.
static POLICY_WASM_HOST: OnceLock<edgeshim_policy::WasmHost> = OnceLock::new();

pub(crate) fn set_policy_wasm_host(host: edgeshim_policy::WasmHost) {
    let _ = POLICY_WASM_HOST.set(host);
}

/// How long an exiting shim waits for its queued events to reach containerd.
const EVENTS_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Exit status reported for a container whose shim died (it was SIGKILLed).
const KILLED_STATUS: u32 = 128 + libc::SIGKILL as u32;

/// The shim, generic over its Wasm engine.
pub struct EdgeShim<E> {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    /// `unix://` address this shim serves on (empty for start/delete).
    socket: String,
    /// containerd's own socket, which shim socket names derive from.
    containerd_address: String,
    /// The event queue, once the task service is made: flushed at exit.
    events: OnceLock<Arc<ContainerdEvents>>,
    engine: PhantomData<fn() -> E>,
}

pub fn state_root(namespace: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(namespace)
}

/// The shim a container belongs to: its pod's (CRI sandbox id annotation in
/// the bundle, which is the current folder in start and delete), else its own.
fn grouping(id: &str) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|dir| Bundle::load(&dir).ok())
        .and_then(|b| b.annotation(SANDBOX_ID_ANNOTATION).map(str::to_string))
        .unwrap_or_else(|| id.to_string())
}

#[async_trait]
impl<E: Engine> Shim for EdgeShim<E> {
    type T = TaskApi<E>;

    async fn new(_runtime_id: &str, args: &Flags, config: &mut Config) -> Self {
        // The server (no action) logs through edgeshim's own logger:
        // one write a line, other crates at warn (see logging.rs).
        if args.action.is_empty() {
            config.no_setup_logger = true;
            crate::logging::init(args.debug, &config.default_log_level);
        }
        Self {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            socket: args.socket.clone(),
            containerd_address: args.address.clone(),
            events: OnceLock::new(),
            engine: PhantomData,
        }
    }

    /// One shim per pod: containers of a pod carry the sandbox id annotation
    /// and share its socket; any other container gets a shim of its own.
    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = grouping(&opts.id);
        // A pod's shim already serving: reuse it without spawning a second
        // one that would find the socket taken.
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &grouping);
        let path = address.trim_start_matches("unix://");
        if std::os::unix::net::UnixStream::connect(path).is_err() {
            // Returns once the new shim serves (it closes its stdout then).
            containerd_shim::spawn(opts, &grouping, Vec::new()).await?;
        }
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    /// Called after a shim died: kill and remove what it left (process,
    /// cgroup, state, rootfs mount).
    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let root = state_root(&self.namespace);
        match IsolatedContainer::load(&root, &self.id) {
            Ok(mut container) => {
                if let Err(e) = container.delete() {
                    log::warn!("{e}");
                }
            }
            Err(e) => log::info!("nothing to clean up: {e}"),
        }
        if let Ok(bundle) = std::env::current_dir() {
            rootfs::unmount(&bundle.join("rootfs"));
        }
        // The dead shim's socket, unless a live shim (of the pod) still serves it.
        let address = containerd_shim::socket_address(
            &self.containerd_address,
            &self.namespace,
            &grouping(&self.id),
        );
        let path = address.trim_start_matches("unix://");
        if std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
        Ok(DeleteResponse {
            exit_status: KILLED_STATUS,
            exited_at: Some(crate::task::timestamp(std::time::SystemTime::now())).into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
        // containerd asks a shim to shut down right after the Delete whose
        // TaskDelete is still queued: send what is queued before exiting.
        // On the blocking pool: the event thread's sends need this runtime
        // thread free to drive their socket.
        if let Some(events) = self.events.get().cloned() {
            let flushed = tokio::task::spawn_blocking(move || events.flush(EVENTS_FLUSH_LIMIT));
            if !flushed.await.unwrap_or(false) {
                log::warn!("exiting with events containerd did not take");
            }
        }
        // The library removes the socket named in `<cwd>/address`, but a pod
        // shim's cwd is its first container's bundle, which containerd may
        // have deleted already: remove the socket we serve on ourselves.
        let path = self.socket.trim_start_matches("unix://");
        if !path.is_empty()
            && let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove socket {path}: {e}");
        }
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        // The library's publisher queues an event and answers before it is
        // sent, and retries out of order: the shim sends its own, in order
        // (events.rs). Dropping it ends its queue task.
        let library_connection = publisher.address.clone();
        drop(publisher);
        crate::events::shut_down_connections_to(&library_connection);
        let events = Arc::new(ContainerdEvents::new(self.namespace.clone()));
        let _ = self.events.set(events.clone());
        let exits = match crate::exits::subscribe().await {
            Ok(exits) => exits,
            Err(e) => {
                // Nothing could be reported as exited: better no shim.
                log::error!("{e}");
                std::process::exit(1);
            }
        };
        let gate = Arc::new(edgeshim_policy::PolicyGate::with_wasm_host(
            &edgeshim_policy::config::config_path(),
            POLICY_WASM_HOST
                .get()
                .copied()
                .unwrap_or(edgeshim_policy::WasmHost::NONE),
        ));
        warm_up_in_background(&gate);
        TaskApi::new(TaskService::new(
            self.id.clone(),
            state_root(&self.namespace),
            events,
            gate,
            self.exit.clone(),
            exits,
        ))
    }
}

/// Loads the policy and runs it once while containerd is still connecting
/// and preparing the first request (a thread that ends when done): the
/// load is then off the first create's path (`PolicyGate::warm_up`). A
/// shim that cannot start the thread loads on its first decision instead.
fn warm_up_in_background(gate: &Arc<edgeshim_policy::PolicyGate>) {
    let gate = gate.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("policy-warm-up".into())
        .spawn(move || gate.warm_up())
    {
        log::warn!("policy warm-up thread: {e}; the first decision loads the policy");
    }
}
