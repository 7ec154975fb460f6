//! Runs a prepared module (a WASI preview 1 command) or component (a WASI
//! 0.2 `wasi:cli/command`) in the current process (the container's
//! process: fds 0-2 and `/` are already the container's).

use wasmtime::component::{InstancePre as ComponentPre, ResourceTable};
use wasmtime::{InstancePre, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView};

use super::limits::MemoryCap;
use std::sync::Arc;

use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http::EgressHooks;
use super::network::Egress;
use crate::{EngineError, Result, TRAP_EXIT_CODE, WasiView};

/// What a store holds for one container running a module.
pub struct ContainerState {
    pub wasi: WasiP1Ctx,
    limits: MemoryCap,
}

/// What a store holds for one container running a component.
pub struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: MemoryCap,
    http: WasiHttpCtx,
    http_hooks: EgressHooks,
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl wasmtime_wasi::WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// wasmtime-wasi drives WASI I/O and timers on a Tokio runtime; without one
/// entered it builds a global one with a worker per core. One worker is
/// enough for one module: fewer threads per container (memory, and the
/// container's pids limit counts threads).
fn io_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| {
            EngineError::Setup(format!(
                "cannot start the WASI I/O thread (is the container's pids limit below 2?): {e}"
            ))
        })
}

pub fn run_module(
    engine: &wasmtime::Engine,
    prepared: &InstancePre<ContainerState>,
    view: &WasiView,
    egress: Arc<Egress>,
) -> Result<i32> {
    let io_runtime = io_runtime()?;
    let _entered = io_runtime.enter();
    let state = ContainerState {
        wasi: wasi_builder(view, egress)?.build_p1(),
        limits: MemoryCap::new(view.memory_limit),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    let instance = prepared
        .instantiate(&mut store)
        .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, view.entry_export.as_deref().unwrap_or("_start"))
        .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?;
    exit_status(start.call(&mut store, ()).map(|()| 0))
}

/// Runs a component at `wasi:cli/run`, or at the export `view` names
/// (checked by `check_runnable` to be a function without parameters and
/// results).
pub fn run_component(
    engine: &wasmtime::Engine,
    prepared: &ComponentPre<ComponentState>,
    command: Option<&CommandPre<ComponentState>>,
    view: &WasiView,
    egress: Arc<Egress>,
) -> Result<i32> {
    let io_runtime = io_runtime()?;
    let _entered = io_runtime.enter();
    let state = ComponentState {
        ctx: wasi_builder(view, egress.clone())?.build(),
        table: ResourceTable::new(),
        limits: MemoryCap::new(view.memory_limit),
        http: WasiHttpCtx::new(),
        http_hooks: EgressHooks { egress },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    let instantiate = |e: wasmtime::Error| EngineError::Instantiate(format!("{e:#}"));
    match (view.entry_export.as_deref(), command) {
        (None, Some(command)) => {
            let command = command.instantiate(&mut store).map_err(instantiate)?;
            // `wasi:cli/run` returns `result`: an error is exit status 1,
            // as wasmtime's own CLI reports it.
            let ran = command.wasi_cli_run().call_run(&mut store);
            exit_status(ran.map(|result| if result.is_ok() { 0 } else { 1 }))
        }
        (export, _) => {
            let name = export.unwrap_or("_start");
            let instance = prepared.instantiate(&mut store).map_err(instantiate)?;
            let func = instance
                .get_typed_func::<(), ()>(&mut store, name)
                .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?;
            exit_status(func.call(&mut store, ()).map(|()| 0))
        }
    }
}

/// The exit status of a run: its own, `proc_exit`'s / `wasi:cli/exit`'s, or
/// [`TRAP_EXIT_CODE`] after a trap (said on stderr).
fn exit_status(ran: wasmtime::Result<i32>) -> Result<i32> {
    match ran {
        Ok(status) => Ok(status),
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => {
                eprintln!("edgeshim: wasm trap: {err:#}");
                Ok(TRAP_EXIT_CODE)
            }
        },
    }
}

fn wasi_builder(view: &WasiView, egress: Arc<Egress>) -> Result<WasiCtxBuilder> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&view.args)
        .envs(&view.env)
        .inherit_stdio()
        .allow_blocking_current_thread(true);
    for preopen in &view.preopens {
        let perms = if preopen.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&preopen.path, &preopen.path, perms)
            .map_err(|e| EngineError::Preopen {
                path: preopen.path.clone(),
                reason: format!("{e:#}"),
            })?;
    }
    super::network::apply(&mut builder, egress);
    Ok(builder)
}
