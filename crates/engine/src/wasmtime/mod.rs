//! The Wasmtime engine: Cranelift compilation, modules cached on disk as
//! Wasmtime's own serialized artifacts (memory-mapped on load, so every
//! container of a module shares its code pages), WASI preview 1 from
//! `wasmtime-wasi`.

mod limits;
mod run;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use wasmtime::{InstancePre, Linker, Module};

use crate::cache::ModuleCache;
use crate::{Engine, EngineConfig, EngineError, Result, WasiView};

use self::run::ContainerState;

/// Wasmtime behind the [`Engine`] trait.
pub struct WasmtimeEngine {
    engine: wasmtime::Engine,
    linker: Linker<ContainerState>,
    cache: Option<ModuleCache>,
    /// Modules this shim already prepared, by content hash.
    prepared: Mutex<HashMap<String, InstancePre<ContainerState>>>,
}

impl Engine for WasmtimeEngine {
    type Prepared = InstancePre<ContainerState>;
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
            cache,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    fn prepare(&self, module: &[u8], sha256: &str) -> Result<Self::Prepared> {
        if let Some(pre) = self.lock_prepared().get(sha256) {
            return Ok(pre.clone());
        }
        let compiled = self.load_or_compile(sha256, module)?;
        if compiled.get_export("_start").is_none() {
            return Err(EngineError::NotACommand("no `_start` export".into()));
        }
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| EngineError::NotACommand(format!("{e:#}")))?;
        self.lock_prepared().insert(sha256.to_string(), pre.clone());
        Ok(pre)
    }

    fn run(&self, prepared: &Self::Prepared, view: &WasiView) -> Result<i32> {
        run::run_command(&self.engine, prepared, view)
    }
}

impl WasmtimeEngine {
    fn lock_prepared(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, InstancePre<ContainerState>>> {
        // A poisoned map only means another create panicked mid-insert; the
        // entries themselves are immutable, so keep using it.
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn load_or_compile(&self, hash: &str, module: &[u8]) -> Result<Module> {
        load_or_compile(&self.engine, self.cache.as_ref(), hash, module)
            .map_err(EngineError::InvalidModule)
    }
}

/// `module` compiled for `engine`: read from `cache` when an entry for
/// `hash` is there and usable, else compiled and stored. A bad entry is
/// evicted and rebuilt, never run. Shared with the policy gate, whose OPA
/// Wasm policies use the same cache layout.
pub fn load_or_compile(
    engine: &wasmtime::Engine,
    cache: Option<&ModuleCache>,
    hash: &str,
    module: &[u8],
) -> std::result::Result<Module, String> {
    let Some(cache) = cache else {
        return Module::new(engine, module).map_err(|e| format!("{e:#}"));
    };
    let entry = cache.entry(hash);
    if entry.exists() {
        // SAFETY: the cache folder is written only by edgeshim, with
        // Wasmtime's own `precompile_module` output, atomically; Wasmtime
        // checks the header (version, settings) and refuses foreign files.
        match unsafe { Module::deserialize_file(engine, &entry) } {
            Ok(module) => return Ok(module),
            Err(e) => {
                log::warn!(
                    "cache entry {} unusable, rebuilding: {e:#}",
                    entry.display()
                );
                cache.evict(hash);
            }
        }
    }
    let artifact = engine
        .precompile_module(module)
        .map_err(|e| format!("{e:#}"))?;
    match cache.store(hash, &artifact) {
        // SAFETY: as above; the file was written from `artifact` just now.
        Ok(path) => unsafe { Module::deserialize_file(engine, path) },
        Err(e) => {
            log::warn!("cannot write module cache {}: {e}", entry.display());
            // SAFETY: `artifact` is this engine's own precompile output.
            unsafe { Module::deserialize(engine, &artifact) }
        }
    }
    .map_err(|e| format!("{e:#}"))
}

/// Names the cache folder after everything that makes artifacts compatible.
pub fn engine_tag(engine: &wasmtime::Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
