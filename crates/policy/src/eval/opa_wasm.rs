//! OPA-compiled Wasm policies (`opa build -t wasm`), run through OPA's Wasm
//! ABI by the `opa-wasm` crate on Wasmtime, the shim's own engine.
//!
//! Before `opa-wasm` sees a module, it is checked here so that a bad one is
//! refused with every problem named: the ABI exports it lacks, and the
//! builtins it needs that the host does not implement (`opa-wasm` alone
//! stops at the first unknown builtin, without its name). The compiled
//! module is cached on disk like container modules are.
//!
//! Wasmtime runs the policy as a future that yields every
//! [`FUEL_PER_YIELD`] units of fuel; the evaluation is polled here until it
//! finishes or its wall-clock budget is spent, when it is dropped (and the
//! instance rebuilt, since it was cut off mid-way).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use edgeshim_cache::ModuleCache;
use opa_wasm::wasmtime::{self, Engine, Linker, Module, Store};
use opa_wasm::{DefaultContext, Policy, Runtime};

use super::builtins::HOST_BUILTINS;
use super::{Evaluate, opa_abi};

/// Fuel between two chances to check the clock (roughly as many Wasm
/// instructions: tens of microseconds).
const FUEL_PER_YIELD: u64 = 20_000;

pub(crate) struct WasmEvaluator {
    engine: Engine,
    module: Module,
    data: serde_json::Value,
    entrypoint: String,
    instance: Option<(Store<()>, Policy<DefaultContext>)>,
}

/// The engine every OPA Wasm policy of this process runs on.
fn policy_engine() -> Result<Engine, String> {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    Engine::new(&config).map_err(|e| format!("policy engine: {e:#}"))
}

impl WasmEvaluator {
    pub(crate) fn compile(
        wasm: &[u8],
        data: &serde_json::Value,
        entrypoint: &str,
        cache_root: &std::path::Path,
    ) -> Result<Self, String> {
        let engine = policy_engine()?;
        let cache = ModuleCache::new(cache_root, &edgeshim_engine::wasmtime_engine_tag(&engine));
        let hash = edgeshim_cache::content_hash(wasm);
        let module = edgeshim_engine::wasmtime_load_or_compile(&engine, Some(&cache), &hash, wasm)
            .map_err(|e| format!("not a valid Wasm module: {e}"))?;
        check_exports(&module)?;
        check_builtins(&engine, &module)?;
        let mut evaluator = Self {
            engine,
            module,
            data: data.clone(),
            entrypoint: entrypoint.to_string(),
            instance: None,
        };
        let (_, policy) = evaluator.instance()?;
        if !policy.entrypoints().contains(entrypoint) {
            let mut known: Vec<&str> = policy.entrypoints().into_iter().collect();
            known.sort_unstable();
            return Err(format!(
                "the policy has no entrypoint {entrypoint} (it has: {})",
                known.join(", ")
            ));
        }
        Ok(evaluator)
    }

    /// The live instance, made (with the data loaded) if there is none.
    fn instance(&mut self) -> Result<&mut (Store<()>, Policy<DefaultContext>), String> {
        if self.instance.is_none() {
            let mut store = Store::new(&self.engine, ());
            refuel(&mut store)?;
            let made = run_until(Instant::now() + Duration::from_secs(5), async {
                let runtime = Runtime::new(&mut store, &self.module).await?;
                runtime.with_data(&mut store, &self.data).await
            })
            .map_err(|_| "loading the policy took over 5 s".to_string())?
            .map_err(|e| format!("{e:#}"))?;
            self.instance = Some((store, made));
        }
        self.instance
            .as_mut()
            .ok_or_else(|| "no policy instance".to_string())
    }
}

fn refuel(store: &mut Store<()>) -> Result<(), String> {
    store.set_fuel(u64::MAX).map_err(|e| e.to_string())?;
    store
        .fuel_async_yield_interval(Some(FUEL_PER_YIELD))
        .map_err(|e| e.to_string())
}

impl Evaluate for WasmEvaluator {
    fn evaluate(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + budget;
        let entrypoint = self.entrypoint.clone();
        let (store, policy) = self.instance()?;
        refuel(store)?;
        let outcome = run_until(
            deadline,
            policy.evaluate::<_, serde_json::Value, _>(&mut *store, &entrypoint, input),
        );
        match outcome {
            // A module that failed (a trap, a result that is no JSON) may
            // have left its heap inconsistent: the next decision gets a
            // fresh instance.
            Ok(result) => result.map_err(|e| {
                self.instance = None;
                format!("evaluating {entrypoint}: {e:#}")
            }),
            Err(TimedOut) => {
                self.instance = None;
                Err(format!(
                    "evaluation exceeded its budget of {} ms",
                    budget.as_millis()
                ))
            }
        }
    }
}

struct TimedOut;

/// Polls `future` on this thread until it is ready or `deadline` passes.
/// Written by hand: an executor is not needed, since Wasmtime's futures are
/// only ever pending at fuel yields, which are ready to poll again at once.
fn run_until<F: Future>(deadline: Instant, future: F) -> Result<F::Output, TimedOut> {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut);
        }
    }
}

fn check_exports(module: &Module) -> Result<(), String> {
    opa_abi::check_exports(|name| module.get_export(name).is_some())
}

/// Instantiates the module with inert imports to read its `builtins`
/// export, and refuses it if it names builtins the host lacks.
fn check_builtins(engine: &Engine, module: &Module) -> Result<(), String> {
    let err = |e: wasmtime::Error| format!("reading the policy's builtins: {e:#}");
    let mut store = Store::new(engine, ());
    refuel(&mut store)?;
    let mut linker: Linker<()> = Linker::new(engine);
    let mut imported_memory = None;
    for import in module.imports() {
        if import.module() != "env" {
            continue;
        }
        if let Some(memory) = import.ty().memory() {
            let memory = wasmtime::Memory::new(&mut store, memory.clone()).map_err(err)?;
            linker
                .define(&store, "env", import.name(), memory)
                .map_err(err)?;
            imported_memory = Some(memory);
        } else if let Some(func) = import.ty().func() {
            let name = import.name().to_string();
            linker
                .func_new("env", import.name(), func.clone(), move |_, _, _| {
                    Err(wasmtime::Error::msg(format!("{name} called while loading")))
                })
                .map_err(err)?;
        }
    }
    let names: serde_json::Value = run_until(Instant::now() + Duration::from_secs(5), async {
        let instance = linker.instantiate_async(&mut store, module).await?;
        let builtins = instance.get_typed_func::<(), i32>(&mut store, "builtins")?;
        let dump = instance.get_typed_func::<i32, i32>(&mut store, "opa_json_dump")?;
        let value = builtins.call_async(&mut store, ()).await?;
        let text = dump.call_async(&mut store, value).await?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .or(imported_memory)
            .ok_or_else(|| wasmtime::Error::msg("no memory"))?;
        let bytes =
            opa_abi::read_c_string(memory.data(&store), text).map_err(wasmtime::Error::msg)?;
        Ok::<_, wasmtime::Error>(serde_json::from_slice(&bytes)?)
    })
    .map_err(|_| "reading the policy's builtins took over 5 s".to_string())?
    .map_err(err)?;
    opa_abi::check_builtins(&names, HOST_BUILTINS)
}
