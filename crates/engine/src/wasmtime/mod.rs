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

/// `module` compiled for `engine`: loaded from `cache` when an entry for
/// `hash` is there and verifies against its digest, else compiled and
/// stored. An entry that does not verify is evicted and rebuilt, never
/// deserialized. Shared with the policy gate, whose OPA Wasm policies use
/// the same cache.
///
/// Compiles of one module in this process take turns, and a shim that
/// loses the race to store its artifact loads the winner's: each process
/// compiles a module at most once.
pub fn load_or_compile(
    engine: &wasmtime::Engine,
    cache: Option<&ModuleCache>,
    hash: &str,
    module: &[u8],
) -> std::result::Result<Module, String> {
    let Some(cache) = cache else {
        return Module::new(engine, module).map_err(|e| format!("{e:#}"));
    };
    if let Some(module) = load_cached(engine, cache, hash) {
        return Ok(module);
    }
    let _turn = cache.compile_turn(hash);
    // Another thread of this process may have compiled it meanwhile.
    if let Some(module) = load_cached(engine, cache, hash) {
        return Ok(module);
    }
    let artifact = engine
        .precompile_module(module)
        .map_err(|e| format!("{e:#}"))?;
    match cache.store(hash, &artifact) {
        // SAFETY: as in `deserialize_verified`; the entry is ours, written
        // from `artifact` just now, or a concurrent writer's, verified.
        Ok(file) => unsafe { deserialize_verified(engine, file) },
        Err(e) => {
            log::warn!(
                "cannot write module cache {}: {e}",
                cache.entry_dir(hash).display()
            );
            // SAFETY: `artifact` is this engine's own precompile output,
            // in memory.
            unsafe { Module::deserialize(engine, &artifact) }
        }
    }
    .map_err(|e| format!("{e:#}"))
}

/// The cached module for `hash`, if its entry verifies and this engine
/// accepts it; an entry Wasmtime refuses is evicted.
fn load_cached(engine: &wasmtime::Engine, cache: &ModuleCache, hash: &str) -> Option<Module> {
    let file = cache.open_verified(hash)?;
    // SAFETY: see `deserialize_verified`; `file` was just verified.
    match unsafe { deserialize_verified(engine, file) } {
        Ok(module) => Some(module),
        Err(e) => {
            log::warn!(
                "cache entry {} refused by Wasmtime, rebuilding: {e:#}",
                cache.entry_dir(hash).display()
            );
            cache.evict(hash);
            None
        }
    }
}

/// Maps the artifact in `file`, the open file that
/// [`ModuleCache::open_verified`] hashed.
///
/// # Safety
///
/// `file` must come from [`ModuleCache::open_verified`] or
/// [`ModuleCache::store`]: its bytes matched the digest written with them,
/// through this same open file, so what is mapped is what the writer
/// wrote; writers are edgeshim only, with Wasmtime's own
/// `precompile_module` output for an engine with the same compatibility
/// hash (the cache folder's tag), and Wasmtime checks the header again.
/// Entries are never modified in place (replaced by rename, evicted by
/// rename then unlink), so the mapping stays what was hashed for the
/// module's life. Root rewriting files in the root-owned cache folder is
/// outside the threat model (docs/design.md, "Module cache").
unsafe fn deserialize_verified(
    engine: &wasmtime::Engine,
    file: std::fs::File,
) -> wasmtime::Result<Module> {
    // SAFETY: the caller's contract, above.
    unsafe { Module::deserialize_open_file(engine, file) }
}

/// Names the cache folder after everything that makes artifacts compatible.
pub fn engine_tag(engine: &wasmtime::Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
