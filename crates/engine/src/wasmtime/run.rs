//! Runs a prepared module as a WASI preview 1 command in the current process
//! (the container's process: fds 0-2 and `/` are already the container's).

use wasmtime::{InstancePre, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::limits::MemoryCap;
use crate::{EngineError, Result, TRAP_EXIT_CODE, WasiView};

/// What a store holds for one container.
pub struct ContainerState {
    pub wasi: WasiP1Ctx,
    limits: MemoryCap,
}

pub fn run_command(
    engine: &wasmtime::Engine,
    prepared: &InstancePre<ContainerState>,
    view: &WasiView,
) -> Result<i32> {
    // wasmtime-wasi drives WASI I/O and timers on a Tokio runtime; without
    // one entered it builds a global one with a worker per core. One worker
    // is enough for one module: fewer threads per container (memory, and
    // the container's pids limit counts threads).
    let io_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| {
            EngineError::Setup(format!(
                "cannot start the WASI I/O thread (is the container's pids limit below 2?): {e}"
            ))
        })?;
    let _entered = io_runtime.enter();
    let wasi = wasi_context(view)?;
    let state = ContainerState {
        wasi,
        limits: MemoryCap::new(view.memory_limit),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    let instance = prepared
        .instantiate(&mut store)
        .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?;
    match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => {
                eprintln!("edgeshim: wasm trap: {err:#}");
                Ok(TRAP_EXIT_CODE)
            }
        },
    }
}

fn wasi_context(view: &WasiView) -> Result<WasiP1Ctx> {
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
    Ok(builder.build_p1())
}
