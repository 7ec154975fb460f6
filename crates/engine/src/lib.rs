//! Wasm engines behind one [`Engine`] trait.
//!
//! Owns: validating and compiling a module (once per module, cached on local
//! disk by content hash and engine version, see [`cache`]), and running a
//! prepared module as a WASI preview 1 command (or, on Wasmtime, a WASI 0.2
//! `wasi:cli/command` component) against a [`WasiView`], its sockets held
//! to the container's [`NetworkGrant`].
//!
//! Leaves out: namespaces, cgroups, stdio plumbing and signals (the isolation
//! crate sets the process up before [`Engine::run`] is called, and fds 0-2
//! are already the container's), and anything about the OCI spec (engines get
//! only the [`WasiView`]).
//!
//! [`Engine::prepare`] runs in the shim (validate, compile, cache) and again
//! in its single-threaded launcher (a cache hit: the compiled code is mapped
//! from the cache file); [`Engine::run`] runs in the container's own
//! process, a copy of the launcher made after `prepare`, so the compiled
//! code is shared, not rebuilt.
//!
//! Cargo features:
//! - `wasmtime` (default): [`WasmtimeEngine`].
//! - `wasmedge`: [`WasmEdgeEngine`], on libwasmedge 0.14.1 (a system
//!   library, found at build time through `WASMEDGE_DIR`).

/// The on-disk cache of compiled modules (its own crate, `edgeshim-cache`,
/// shared with the policy gate's compiled policies).
pub use edgeshim_cache as cache;
pub mod compile_time;
mod error;
// Used by the WasmEdge engine; tested in every build.
#[cfg(any(feature = "wasmedge", test))]
#[cfg_attr(
    not(feature = "wasmedge"),
    allow(dead_code, reason = "the helper side runs in the WasmEdge shim only")
)]
mod helper;
#[cfg(test)]
mod test_modules;
#[cfg(feature = "wasmedge")]
mod wasmedge;
#[cfg(feature = "wasmtime")]
mod wasmtime;

use std::path::PathBuf;

pub use edgeshim_bundle::WasiView;
pub use edgeshim_network::{NetworkGrant, ReportRefusal};
pub use error::{EngineError, Result};
#[cfg(feature = "wasmedge")]
pub use wasmedge::{
    COMPILE_HELPER_ARG, Compiler as WasmEdgeCompiler, WasmEdgeEngine, compile_helper_main,
    engine_tag as wasmedge_engine_tag,
};
#[cfg(feature = "wasmtime")]
pub use wasmtime::{
    WasmtimeEngine, engine_tag as wasmtime_engine_tag, load_or_compile as wasmtime_load_or_compile,
};

/// Exit status of a module that trapped: like a native program that aborted
/// (128 + SIGABRT), so `unreachable` and `abort()` look the same to users.
pub const TRAP_EXIT_CODE: i32 = 134;

/// Settings shared by all engines.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled modules are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Never start a thread (the launcher, which clones containers, must
    /// stay single-threaded): a compile, if one is needed, runs on the
    /// caller's thread, or (WasmEdge) does not run: the module is
    /// interpreted until the shim's compile is in the cache.
    pub single_threaded: bool,
    /// Where an engine has an interpreter (WasmEdge): a module not yet
    /// compiled starts at once in it, while a helper process compiles it
    /// ahead of time for the starts that follow, instead of its first start
    /// waiting for the compile.
    pub compile_in_background: bool,
    /// The modules this process prepares are checked here and run
    /// elsewhere (the shim: containers run in processes of its launcher,
    /// which prepares its own). An engine may then keep only what its
    /// checks need: WasmEdge's loaded module is about sixteen times the
    /// module's size (17.9 MB of heap for the 1.08 MB SQLite logger), held
    /// by every pod's shim for its life otherwise.
    pub checks_only: bool,
}

impl EngineConfig {
    /// Environment variable that overrides [`DEFAULT_CACHE_DIR`].
    pub const CACHE_DIR_ENV: &'static str = "EDGESHIM_CACHE_DIR";

    /// The cache directory from the environment, or the default.
    pub fn from_env() -> Self {
        let dir = std::env::var_os(Self::CACHE_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
        Self {
            cache_dir: Some(dir),
            single_threaded: false,
            compile_in_background: true,
            checks_only: false,
        }
    }
}

/// Default on-disk cache of compiled modules.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/edgeshim/cache";

/// A Wasm engine. One value per shim process, shared by all its containers.
pub trait Engine: Send + Sync + Sized + 'static {
    /// A module compiled and linked, ready to instantiate.
    type Prepared: Send + Sync + 'static;

    /// Short name for logs and the cache folder, e.g. `wasmtime`.
    const NAME: &'static str;

    fn new(config: EngineConfig) -> Result<Self>;

    /// Validates and compiles `module`, whose hex sha256 is `sha256` (or
    /// loads it from the cache). Runs in the shim, so a bad module is refused
    /// at create time.
    fn prepare(&self, module: &[u8], sha256: &str) -> Result<Self::Prepared>;

    /// Checks, at create, that `prepared` can be started as `view` asks
    /// (at `_start`, or at `view.entry_export`) and that this engine can
    /// hold it to `network`; a refusal names what is wrong.
    fn check_runnable(
        &self,
        prepared: &Self::Prepared,
        view: &WasiView,
        network: &NetworkGrant,
    ) -> Result<()>;

    /// Whether `prepared`'s sockets must be held to `network` from below,
    /// by the shim (edgeshim-network's seccomp guard, set in the container
    /// process before [`Engine::run`]): where the module can use sockets,
    /// its grant is not everything, and the engine has no hook of its own
    /// where an address is used.
    fn needs_guard(&self, prepared: &Self::Prepared, network: &NetworkGrant) -> bool;

    /// A better preparation of the module `prepared` was made from, when
    /// one is ready now (WasmEdge: its native code, compiled in the
    /// background since `prepared` was interpreted); `None` otherwise.
    fn refresh(&self, _prepared: &Self::Prepared, _sha256: &str) -> Option<Self::Prepared> {
        None
    }

    /// Instantiates and runs the module (`_start`, or `view.entry_export`)
    /// or the component (`wasi:cli/run`), with sockets as `network` allows,
    /// each refusal said on stderr and handed to `report` (rate-limited);
    /// returns the exit status. Runs in the container process. A trap is
    /// reported on stderr and gives [`TRAP_EXIT_CODE`].
    fn run(
        &self,
        prepared: &Self::Prepared,
        view: &WasiView,
        network: &NetworkGrant,
        report: Option<ReportRefusal>,
    ) -> Result<i32>;
}

/// Whether `bytes` is a component: its header's version field says layer 1
/// (`0d 00 01 00`), where a core module says version 1 (`01 00 00 00`).
/// Read by hand: four bytes, and wasmparser is not a direct dependency.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00][..])
}
