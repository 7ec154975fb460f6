//! The Task API: one file per operation, all on [`TaskService`].

mod api;
mod create;
mod delete;
mod info;
mod kill;
mod ordering;
mod start;
mod update;
mod wait;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use containerd_shim::ExitSignal;
use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use edgeshim_engine::{Engine, EngineConfig};
use edgeshim_isolation::launcher::Launcher;
use edgeshim_policy::Gate;

use crate::container::ContainerRecord;
use crate::error::{Result, TaskError};
use crate::events::{EventSink, TaskEvent};
use crate::exits::{self, UnclaimedExits};

pub use api::TaskApi;

/// How long a launcher with no request lives on: a pod's containers are
/// created within moments of each other; a later create pays a new
/// launcher's start (a few milliseconds).
const LAUNCHER_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

type Containers = Arc<Mutex<HashMap<String, Arc<ContainerRecord>>>>;

/// The shim's task service: every container this shim runs.
pub struct TaskService<E: Engine> {
    containers: Containers,
    engine: Mutex<Option<Arc<E>>>,
    gate: Arc<dyn Gate>,
    events: Arc<dyn EventSink>,
    state_root: PathBuf,
    unclaimed: Arc<UnclaimedExits>,
    exit: Arc<ExitSignal>,
    /// The single-threaded process every container is cloned from.
    launcher: Arc<Launcher>,
    /// The id of the task whose start spawned this shim (containerd's `-id`).
    shim_id: String,
    creating: crate::reservations::Creating,
    /// Network refusals its Wasm containers report, into the decision log.
    refusals: Option<Arc<crate::refusals::RefusalLog>>,
    /// Creates, starts, module lookups and OOM kills, to the node's exporter.
    telemetry: Arc<crate::metrics::Telemetry>,
    /// Every container's memory cgroup, on one thread.
    oom: Option<edgeshim_isolation::oom::OomWatcher>,
}

impl<E: Engine> TaskService<E> {
    pub fn new(
        shim_id: String,
        state_root: PathBuf,
        events: Arc<dyn EventSink>,
        gate: Arc<dyn Gate>,
        exit: Arc<ExitSignal>,
        exits: containerd_shim::asynchronous::monitor::Subscription,
    ) -> Self {
        let containers: Containers = Arc::default();
        let unclaimed = Arc::new(UnclaimedExits::default());
        let watched = containers.clone();
        let exit_events = events.clone();
        let unclaimed_exits = unclaimed.clone();
        exits::watch(exits, move |pid, status| {
            ordering::record_exit(
                &watched,
                exit_events.as_ref(),
                &unclaimed_exits,
                pid,
                status,
            )
        });
        let telemetry = Arc::new(crate::metrics::Telemetry::from_env(E::NAME));
        let oom = crate::oom::watcher(events.clone(), telemetry.clone());
        let (launcher, refusals) = report_network_refusals(&containers, &gate);
        let launcher = Arc::new(launcher);
        // Started now, off the first create's path; a failure is reported
        // by the first create, which tries again. Stopped when idle, so a
        // pod whose containers run holds no launcher (its memory).
        if let Err(e) = launcher.spawn() {
            log::error!("cannot start the launcher: {e}");
        }
        stop_launcher_when_idle(&launcher);
        Self {
            containers,
            engine: Mutex::new(None),
            gate,
            events,
            state_root,
            unclaimed,
            exit,
            launcher,
            shim_id,
            creating: Default::default(),
            refusals,
            telemetry,
            oom,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<ContainerRecord>>> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Result<Arc<ContainerRecord>> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| TaskError::NotFound(id.to_string()))
    }

    /// The engine, made on first use: a shim that only runs native
    /// containers (a pod's pause) never pays for it.
    fn engine(&self, id: &str) -> Result<Arc<E>> {
        let mut slot = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let engine = Arc::new(
            E::new(EngineConfig {
                // Containers run in the launcher's processes, which
                // prepare the module themselves.
                checks_only: true,
                ..EngineConfig::from_env()
            })
            .map_err(|source| TaskError::Engine {
                id: id.to_string(),
                source,
            })?,
        );
        *slot = Some(engine.clone());
        Ok(engine)
    }
}

/// Checks every [`LAUNCHER_IDLE`], as a task on the shim's runtime (no
/// thread of its own), whether the launcher has been idle that long, and
/// stops it if so; the pod has settled then, and what its creates left
/// free in the shim's heap goes back to the kernel (once per settling,
/// never per request: a trim makes the next allocations fault their pages
/// in again, which doubled the shim-only start when it ran after each
/// start). Ends with the task service.
fn stop_launcher_when_idle(launcher: &Arc<Launcher>) {
    let launcher = Arc::downgrade(launcher);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(LAUNCHER_IDLE);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once.
        every.tick().await;
        loop {
            every.tick().await;
            let Some(launcher) = launcher.upgrade() else {
                return;
            };
            if launcher.stop_if_idle(LAUNCHER_IDLE) {
                tokio::task::spawn_blocking(edgeshim_isolation::release_free_heap);
            }
        }
    });
}

/// The launcher, its Wasm payloads handed the report channel whose
/// refusals the shim logs through `gate` (a launcher without it, and so no
/// refusal in the decision log, if the channel cannot be made).
fn report_network_refusals(
    containers: &Containers,
    gate: &Arc<dyn Gate>,
) -> (Launcher, Option<Arc<crate::refusals::RefusalLog>>) {
    let watched = containers.clone();
    let container_of = Box::new(move |pid: u32| {
        let map = watched.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .find(|r| r.pid == pid)
            .map(|r| (r.id.clone(), r.network.clone()))
    });
    let made = crate::refusals::channel().and_then(|(shim_end, payload_end)| {
        let log = crate::refusals::RefusalLog::watch(shim_end, gate.clone(), container_of)?;
        Ok((Launcher::default().with_payload_fd(payload_end)?, Some(log)))
    });
    made.unwrap_or_else(|e| {
        log::error!("network refusals will not reach the decision log: {e}");
        (Launcher::default(), None)
    })
}

/// A protobuf timestamp for `at`.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or_default(),
        ..Default::default()
    }
}

fn send<M: Event + Message>(events: &dyn EventSink, event: M) {
    events.send(TaskEvent::of(event));
}

pub(crate) fn reject_exec(exec_id: &str, what: &'static str) -> Result<()> {
    if exec_id.is_empty() {
        Ok(())
    } else {
        Err(TaskError::Unsupported(what))
    }
}
