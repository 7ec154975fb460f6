//! The Wasmtime engine: Cranelift compilation, modules and components
//! cached on disk as Wasmtime's own serialized artifacts (memory-mapped on
//! load, so every container of a module shares its code pages), WASI
//! preview 1 modules (no sockets: wasmtime-wasi's preview 1 cannot create
//! one) and WASI 0.2 `wasi:cli/command` components (`wasi:sockets`, each
//! address checked against the container's [`NetworkGrant`]) from
//! `wasmtime-wasi`, told apart by the binary's header.

mod compile;
mod http;
mod limits;
mod network;
mod run;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre as ComponentPre};
use wasmtime::{InstancePre, Linker, Module};
use wasmtime_wasi::p2::bindings::sync::CommandPre;

use crate::cache::ModuleCache;
use crate::{Engine, EngineConfig, EngineError, NetworkGrant, Result, WasiView, is_component};

pub use self::compile::load_or_compile;
use self::run::{ComponentState, ContainerState};

/// A module or a component, compiled and linked.
#[derive(Clone)]
pub enum Prepared {
    /// A WASI preview 1 module.
    Module(InstancePre<ContainerState>),
    /// A WASI 0.2 component: run at `wasi:cli/run` when it is a
    /// `wasi:cli/command`, or at the export its entrypoint names
    /// (`app.wasm#thunk`, runwasi's convention).
    Component {
        pre: ComponentPre<ComponentState>,
        command: Option<CommandPre<ComponentState>>,
    },
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Module(_) => "Prepared::Module",
            Self::Component { .. } => "Prepared::Component",
        })
    }
}

/// Wasmtime behind the [`Engine`] trait.
pub struct WasmtimeEngine {
    engine: wasmtime::Engine,
    linker: Linker<ContainerState>,
    /// Made on the first component: a shim that only runs modules does not
    /// hold WASI 0.2's host functions.
    component_linker: std::sync::OnceLock<wasmtime::component::Linker<ComponentState>>,
    cache: Option<ModuleCache>,
    /// Modules this shim already prepared, by content hash.
    prepared: Mutex<HashMap<String, Prepared>>,
    compile_threads: compile::Threads,
}

impl Engine for WasmtimeEngine {
    type Prepared = Prepared;
    const NAME: &'static str = "wasmtime";

    fn new(config: EngineConfig) -> Result<Self> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // Not part of the artifacts' compatibility hash: both share a cache.
        wasm_config.parallel_compilation(!config.single_threaded);
        let engine =
            wasmtime::Engine::new(&wasm_config).map_err(|e| EngineError::Setup(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut ContainerState| {
            &mut state.wasi
        })
        .map_err(|e| EngineError::Setup(format!("WASI linker: {e}")))?;
        let cache = config
            .cache_dir
            .map(|dir| ModuleCache::new(&dir, &engine_tag(&engine)));
        Ok(Self {
            engine,
            linker,
            component_linker: std::sync::OnceLock::new(),
            cache,
            prepared: Mutex::new(HashMap::new()),
            compile_threads: if config.single_threaded {
                compile::Threads::Caller
            } else {
                compile::Threads::OwnPool
            },
        })
    }

    fn prepare(&self, bytes: &[u8], sha256: &str) -> Result<Self::Prepared> {
        if let Some(prepared) = self.lock_prepared().get(sha256) {
            return Ok(prepared.clone());
        }
        let prepared = if is_component(bytes) {
            let component: Component = self.load_or_compile(bytes, sha256)?;
            let pre = self
                .component_linker()?
                .instantiate_pre(&component)
                .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?;
            // Not a command is not yet an error: the entrypoint may name
            // an export (checked in `check_runnable`).
            let command = CommandPre::new(pre.clone()).ok();
            Prepared::Component { pre, command }
        } else {
            let module: Module = self.load_or_compile(bytes, sha256)?;
            Prepared::Module(
                self.linker
                    .instantiate_pre(&module)
                    .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?,
            )
        };
        self.lock_prepared()
            .insert(sha256.to_string(), prepared.clone());
        Ok(prepared)
    }

    fn check_runnable(
        &self,
        prepared: &Self::Prepared,
        view: &WasiView,
        _network: &NetworkGrant,
    ) -> Result<()> {
        match (prepared, view.entry_export.as_deref()) {
            (Prepared::Module(pre), export) => {
                let name = export.unwrap_or("_start");
                match pre.module().get_export(name) {
                    Some(wasmtime::ExternType::Func(func))
                        if func.params().len() == 0 && func.results().len() == 0 =>
                    {
                        Ok(())
                    }
                    Some(_) => Err(EngineError::NotACommand(format!(
                        "export `{name}` is not a function without parameters and results"
                    ))),
                    None => Err(EngineError::NotACommand(format!("no `{name}` export"))),
                }
            }
            (Prepared::Component { command, .. }, None) => match command {
                Some(_) => Ok(()),
                None => Err(EngineError::NotACommand(
                    "the component is not a wasi:cli/command (it exports no wasi:cli/run); \
                     name the export to run with `module.wasm#export`"
                        .into(),
                )),
            },
            (Prepared::Component { pre, .. }, Some(name)) => {
                match pre.component().get_export(None, name) {
                    Some((ComponentItem::ComponentFunc(func), _))
                        if func.params().len() == 0 && func.results().len() == 0 =>
                    {
                        Ok(())
                    }
                    Some(_) => Err(EngineError::NotACommand(format!(
                        "component export `{name}` is not a function without parameters and results"
                    ))),
                    None => Err(EngineError::NotACommand(format!(
                        "no `{name}` export in the component"
                    ))),
                }
            }
        }
    }

    /// Never: `socket_addr_check` sees every address (see network.rs).
    fn needs_guard(&self, _prepared: &Prepared, _network: &NetworkGrant) -> bool {
        false
    }

    fn run(
        &self,
        prepared: &Self::Prepared,
        view: &WasiView,
        network: &NetworkGrant,
        report: Option<crate::ReportRefusal>,
    ) -> Result<i32> {
        let egress = std::sync::Arc::new(network::Egress::new(network::Checked {
            grant: network.clone(),
            report,
        }));
        match prepared {
            Prepared::Module(pre) => run::run_module(&self.engine, pre, view, egress),
            Prepared::Component { pre, command } => {
                run::run_component(&self.engine, pre, command.as_ref(), view, egress)
            }
        }
    }
}

impl WasmtimeEngine {
    /// A module or component, from the cache or compiled into it.
    fn load_or_compile<T: compile::Compiled>(&self, bytes: &[u8], sha256: &str) -> Result<T> {
        compile::load_or_compile_as(
            &self.engine,
            self.cache.as_ref(),
            sha256,
            bytes,
            self.compile_threads,
        )
        .map_err(EngineError::InvalidModule)
    }

    /// WASI 0.2's linker, made on first use.
    fn component_linker(&self) -> Result<&wasmtime::component::Linker<ComponentState>> {
        if let Some(linker) = self.component_linker.get() {
            return Ok(linker);
        }
        let mut linker = wasmtime::component::Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| EngineError::Setup(format!("WASI 0.2 linker: {e}")))?;
        // wasi:http's outgoing handler and types (http.rs sends requests).
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .map_err(|e| EngineError::Setup(format!("wasi:http linker: {e}")))?;
        Ok(self.component_linker.get_or_init(|| linker))
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        // A poisoned map only means another create panicked mid-insert; the
        // entries themselves are immutable, so keep using it.
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Names the cache folder after everything that makes artifacts compatible.
pub fn engine_tag(engine: &wasmtime::Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
