//! Compiling modules and components, through the disk cache: an entry is
//! loaded only when it verifies against its digest, else compiled again.

use std::fs::File;

use wasmtime::Module;
use wasmtime::component::Component;

use crate::cache::ModuleCache;

/// What Wasmtime compiles and maps from the cache: a core module or a
/// component, each with its own precompile and deserialize.
pub(super) trait Compiled: Sized + Send {
    fn compile_in_memory(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    fn precompile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// As [`deserialize_verified`].
    unsafe fn map_file(engine: &wasmtime::Engine, file: File) -> wasmtime::Result<Self>;
    /// # Safety
    /// `artifact` is this engine's own precompile output.
    unsafe fn from_artifact(engine: &wasmtime::Engine, artifact: &[u8]) -> wasmtime::Result<Self>;
}

impl Compiled for Module {
    fn compile_in_memory(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }
    fn precompile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_module(bytes)
    }
    unsafe fn map_file(engine: &wasmtime::Engine, file: File) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Module::deserialize_open_file(engine, file) }
    }
    unsafe fn from_artifact(engine: &wasmtime::Engine, artifact: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Module::deserialize(engine, artifact) }
    }
}

impl Compiled for Component {
    fn compile_in_memory(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }
    fn precompile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_component(bytes)
    }
    unsafe fn map_file(engine: &wasmtime::Engine, file: File) -> wasmtime::Result<Self> {
        // Wasmtime 48 maps a component only by path: the open file's own
        // /proc link names the inode that was verified (entries are never
        // changed in place), not a path that could be swapped meanwhile.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        // SAFETY: the caller's contract; `file` stays open until mapped.
        let component = unsafe { Component::deserialize_file(engine, &path) };
        drop(file);
        component
    }
    unsafe fn from_artifact(engine: &wasmtime::Engine, artifact: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Component::deserialize(engine, artifact) }
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
    load_or_compile_as(engine, cache, hash, module, Threads::OwnPool)
}

/// Where a compile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Threads {
    /// On the calling thread only (the launcher never starts a thread).
    Caller,
    /// On a pool of its own, one thread per core, ended with the compile.
    OwnPool,
}

impl Threads {
    /// Runs `compile` where `self` says. Wasmtime's parallel compilation
    /// would otherwise start rayon's global pool, whose threads then live
    /// as long as the shim although a shim compiles a module only the
    /// first time the node sees it (then it maps the cached code).
    fn run<R: Send>(self, compile: impl FnOnce() -> R + Send) -> R {
        if self == Threads::Caller {
            return compile();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("compile-{i}"))
            .build();
        match pool {
            Ok(pool) => pool.install(compile),
            Err(e) => {
                log::warn!("no compile threads ({e}); compiling on this one");
                compile()
            }
        }
    }
}

/// As [`load_or_compile`], for a module or a component.
pub(super) fn load_or_compile_as<T: Compiled>(
    engine: &wasmtime::Engine,
    cache: Option<&ModuleCache>,
    hash: &str,
    bytes: &[u8],
    threads: Threads,
) -> std::result::Result<T, String> {
    let Some(cache) = cache else {
        return crate::compile_time::timed(|| {
            threads.run(|| T::compile_in_memory(engine, bytes).map_err(|e| format!("{e:#}")))
        });
    };
    if let Some(compiled) = load_cached(engine, cache, hash) {
        return Ok(compiled);
    }
    let _turn = cache.compile_turn(hash);
    // Another thread of this process may have compiled it meanwhile.
    if let Some(compiled) = load_cached(engine, cache, hash) {
        return Ok(compiled);
    }
    let artifact = crate::compile_time::timed(|| {
        threads.run(|| T::precompile(engine, bytes).map_err(|e| format!("{e:#}")))
    })?;
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
            unsafe { T::from_artifact(engine, &artifact) }
        }
    }
    .map_err(|e| format!("{e:#}"))
}

/// The cached module for `hash`, if its entry verifies and this engine
/// accepts it; an entry Wasmtime refuses is evicted.
fn load_cached<T: Compiled>(
    engine: &wasmtime::Engine,
    cache: &ModuleCache,
    hash: &str,
) -> Option<T> {
    let file = cache.open_verified(hash)?;
    // SAFETY: see `deserialize_verified`; `file` was just verified.
    match unsafe { deserialize_verified(engine, file) } {
        Ok(compiled) => Some(compiled),
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
/// wrote; writers are edgeshim only, with Wasmtime's own precompile output
/// for an engine with the same compatibility hash (the cache folder's
/// tag), and Wasmtime checks the header again (a module's artifact is not
/// taken for a component's, nor the reverse). Entries are never modified
/// in place (replaced by rename, evicted by rename then unlink), so the
/// mapping stays what was hashed for the module's life. Root rewriting
/// files in the root-owned cache folder is outside the threat model
/// (docs/design.md, "Module cache").
unsafe fn deserialize_verified<T: Compiled>(
    engine: &wasmtime::Engine,
    file: File,
) -> wasmtime::Result<T> {
    // SAFETY: the caller's contract, above.
    unsafe { T::map_file(engine, file) }
}

#[cfg(test)]
mod tests {
    use super::Threads;

    /// Names of this process's threads that start with `prefix`.
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|comm| comm.starts_with(prefix))
            .count()
    }

    #[test]
    fn test_a_compile_runs_on_a_pool_of_its_own_that_ends_with_it() {
        let ran_on = Threads::OwnPool.run(|| std::thread::current().name().map(str::to_string));
        assert!(
            ran_on.as_deref().is_some_and(|n| n.starts_with("compile-")),
            "{ran_on:?}"
        );
        // rayon ends a dropped pool's threads as they finish: awaited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while threads_named("compile-") > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "compile threads outlived their compile"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn test_a_launcher_compile_stays_on_the_calling_thread() {
        let caller = std::thread::current().id();
        assert_eq!(Threads::Caller.run(|| std::thread::current().id()), caller);
    }
}
