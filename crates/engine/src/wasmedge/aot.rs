//! Ahead-of-time compiled modules, cached on local disk.
//!
//! Each module is compiled once by WasmEdge's LLVM compiler into a native
//! shared library, kept in the module cache ([`crate::cache`]) as the entry
//! `<cache>/<engine tag>/<module sha256>.d/`, holding `module.so` and
//! `sha256`, the library's own digest. The entry is written into a temp
//! directory and renamed into place whole, so no reader ever sees a library
//! without its digest; a shim that loses the race to another shim's rename
//! loads the winner's entry instead of its own.
//!
//! Loading a shared library runs its code, so a library is loaded only
//! through the open file whose bytes were just hashed and matched the
//! digest: WasmEdge is handed `/proc/self/fd/<n>` of that file, not the
//! cache path. Anything else (a corrupt, half-written or foreign entry) is
//! evicted and rebuilt. Those files stay open for the life of the process:
//! the dynamic loader knows a loaded library by the path it was given, so a
//! later library must never be loaded under a reused `/proc/self/fd/<n>`.
//!
//! The compiler runs in a child process ([`Compiler::Helper`]: the shim
//! binary itself, with [`COMPILE_HELPER_ARG`]), never in the shim: LLVM
//! leaves a thread pool whose exit handler joins its threads, and every
//! process the shim forks (each container's) would hang in that handler on
//! exit; the child also keeps LLVM's heap out of the long-lived shim and a
//! compiler crash away from its other containers. The helper's result is
//! read from its output, not its exit status, which containerd-shim's
//! reaper may have collected first ([`crate::helper`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use wasmedge_sdk::config::{CommonConfigOptions, CompilerConfigOptions, Config, ConfigBuilder};
use wasmedge_sdk::{CompilerOptimizationLevel, CompilerOutputFormat, Module};

use crate::EngineError;
use crate::cache::ModuleCache;
use crate::helper::{self, Outcome};

/// WasmEdge 0.14.1's LLVM compiler crashes when two compilations run at
/// once in one process: in-process compilations take turns.
static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// First argument that makes the shim binary a compile helper:
/// `<shim> --edgeshim-aot-compile <module.wasm> <out.so> O0|O2`.
pub const COMPILE_HELPER_ARG: &str = "--edgeshim-aot-compile";

/// First argument that makes the shim binary a background compile:
/// `<shim> --edgeshim-aot-compile-into-cache <cache root> <sha256>
/// <module.wasm>`: it compiles the module into the cache entry itself and
/// removes `<module.wasm>`, so the compile outlives a shim that exits
/// first (a short-lived pod's).
pub const BACKGROUND_COMPILE_ARG: &str = "--edgeshim-aot-compile-into-cache";

/// How hard LLVM optimizes. On this machine kind the compute module
/// compiled in 1.77 s at O2 and 0.19 s at O0, and ran in 0.08 s and
/// 0.10 s: O0 gets a first start going, O2 is what the starts after run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// For a first start: quick to compile, a little slower to run; kept
    /// under the entry `<sha256>-o0`.
    Quick,
    /// O2, the entry `<sha256>`: what every start runs once it is there.
    Full,
}

impl Level {
    fn key(self, hash: &str) -> String {
        match self {
            Self::Quick => format!("{hash}-o0"),
            Self::Full => hash.to_string(),
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Self::Quick => "O0",
            Self::Full => "O2",
        }
    }

    fn from_arg(arg: &str) -> Option<Self> {
        match arg {
            "O0" => Some(Self::Quick),
            "O2" => Some(Self::Full),
            _ => None,
        }
    }

    fn llvm(self) -> CompilerOptimizationLevel {
        match self {
            Self::Quick => CompilerOptimizationLevel::O0,
            Self::Full => CompilerOptimizationLevel::O2,
        }
    }
}

/// The library's name in a cache entry (the compiler adds `.so` to the
/// stem it is given).
const LIBRARY_FILE: &str = "module.so";

/// Where compilation happens.
#[derive(Debug, Clone)]
pub enum Compiler {
    /// In a child process running this executable (the shim) with
    /// [`COMPILE_HELPER_ARG`].
    Helper(PathBuf),
    /// In this process: for tools and tests that never fork.
    InProcess,
}

pub struct AotCache {
    compiler: Compiler,
    cache: ModuleCache,
    /// Every library this process handed to WasmEdge, kept open (see the
    /// module docs).
    loaded: std::sync::Mutex<Vec<File>>,
    /// Modules this process started a background compile of: once each.
    background: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Why a module has no native code.
pub enum AotUnavailable {
    /// The library was built without LLVM: interpret from now on.
    NoCompiler(String),
    /// This module could not be compiled or cached.
    Failed(EngineError),
}

impl From<std::io::Error> for AotUnavailable {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(EngineError::Setup(format!("AOT cache: {e}")))
    }
}

impl AotCache {
    pub fn new(root: &Path, compiler: Compiler) -> Self {
        Self {
            compiler,
            cache: ModuleCache::new(root, &super::engine_tag()).with_artifact_name(LIBRARY_FILE),
            loaded: std::sync::Mutex::new(Vec::new()),
            background: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The module's native code at `level`, if the cache has it now;
    /// never compiles.
    pub fn cached(&self, hash: &str, level: Level, config: &Config) -> Option<Module> {
        self.load_cached(&level.key(hash), config)
    }

    /// Whether the cache holds native code at `level` whose digest checks
    /// out; nothing is loaded.
    pub fn has(&self, hash: &str, level: Level) -> bool {
        self.cache.open_verified(&level.key(hash)).is_some()
    }

    /// Native code for a first start: O2's if cached, else O0's, compiled
    /// now if need be (a fraction of O2's time).
    pub fn quick(
        &self,
        hash: &str,
        wasm: &[u8],
        config: &Config,
    ) -> std::result::Result<Module, AotUnavailable> {
        if let Some(module) = self.cached(hash, Level::Full, config) {
            return Ok(module);
        }
        self.load_or_compile_at(&Level::Quick.key(hash), Level::Quick, wasm, config)
    }

    /// Starts a compile of `wasm` into the cache in a helper process of its
    /// own and returns at once; at most once per module in this process,
    /// and not at all when the entry is there. The helper is not waited
    /// for: containerd-shim's reaper collects it, and the next prepare
    /// finds its entry. `Err` says why it could not start (the module then
    /// only runs interpreted here).
    pub fn compile_in_background(&self, hash: &str, wasm: &[u8]) -> Result<(), String> {
        let Compiler::Helper(helper) = &self.compiler else {
            return Err("no helper process to compile in".into());
        };
        let first = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hash.to_string());
        if !first {
            return Ok(());
        }
        // A bounded queue: each waiting helper is a process, and a pod
        // starting many new modules at once must not start as many. Every
        // pod has a shim of its own: when another shim's helper already
        // waits with this module, that one compile serves them all.
        let (waiting, this_module) = self.waiting_compiles(hash);
        if this_module {
            return Ok(());
        }
        if waiting >= MAX_WAITING_COMPILES {
            return Err(format!(
                "{waiting} background compiles already wait on this node; it is compiled at O2 \
                 when a later start finds the queue shorter"
            ));
        }
        // The module's bytes for the helper, in the cache's own folder
        // (root's alone); the helper removes them.
        let input = self
            .cache
            .dir()
            .join(format!(".pending-{hash}-{}.wasm", std::process::id()));
        std::fs::create_dir_all(self.cache.dir())
            .and_then(|()| std::fs::write(&input, wasm))
            .map_err(|e| {
                let _ = std::fs::remove_file(&input);
                format!("cannot write module cache {}: {e}", input.display())
            })?;
        let root = self.cache.dir().parent().unwrap_or(self.cache.dir());
        super::compiler_library::helper_command(helper)
            .arg(BACKGROUND_COMPILE_ARG)
            .arg(root)
            .arg(hash)
            .arg(&input)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| {
                let _ = std::fs::remove_file(&input);
                format!(
                    "cannot start the background compile {}: {e}",
                    helper.display()
                )
            })
    }

    /// The background compiles waiting on the node (their inputs), and
    /// whether one of them is `hash`'s; an input older than an hour is a
    /// helper that died (killed, the node rebooted): it is removed, and no
    /// longer holds a place.
    fn waiting_compiles(&self, hash: &str) -> (usize, bool) {
        let stale = std::time::Duration::from_secs(3600);
        let Ok(dir) = std::fs::read_dir(self.cache.dir()) else {
            return (0, false);
        };
        let this_module = format!(".pending-{hash}-");
        let waiting: Vec<String> = dir
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".pending-"))
            .filter(|e| {
                let age = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|age| age > stale) {
                    let _ = std::fs::remove_file(e.path());
                    return false;
                }
                true
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let this_module = waiting.iter().any(|name| name.starts_with(&this_module));
        (waiting.len(), this_module)
    }

    /// The background compile's own work (in the helper): compiles the
    /// module at `input` into the cache entry for `hash`, unless another
    /// compile got there first, then removes `input`.
    fn compile_into_cache(
        &self,
        hash: &str,
        input: &Path,
    ) -> std::result::Result<(), AotUnavailable> {
        let done = (|| {
            let _node_turn = node_compile_turn(self.cache.dir())?;
            let _turn = self.cache.compile_turn(hash);
            if self.cache.open_verified(hash).is_some() {
                return Ok(());
            }
            let wasm = std::fs::read(input)?;
            self.cache
                .store_with(hash, |out: &Path| {
                    self.compile_into(&wasm, out, Level::Full)
                })
                .map(drop)
        })();
        let _ = std::fs::remove_file(input);
        done
    }

    /// The module's native code from the cache, compiled first if needed
    /// (O2): at most once per process (compiles of one module take turns,
    /// and a lost race loads the winner's entry).
    pub fn load_or_compile(
        &self,
        hash: &str,
        wasm: &[u8],
        config: &Config,
    ) -> std::result::Result<Module, AotUnavailable> {
        self.load_or_compile_at(hash, Level::Full, wasm, config)
    }

    fn load_or_compile_at(
        &self,
        key: &str,
        level: Level,
        wasm: &[u8],
        config: &Config,
    ) -> std::result::Result<Module, AotUnavailable> {
        if let Some(module) = self.load_cached(key, config) {
            return Ok(module);
        }
        let _turn = self.cache.compile_turn(key);
        if let Some(module) = self.load_cached(key, config) {
            return Ok(module);
        }
        let library = crate::compile_time::timed(|| {
            self.cache
                .store_with(key, |out: &Path| self.compile_into(wasm, out, level))
        })?;
        self.load(library, config).map_err(|reason| {
            AotUnavailable::Failed(EngineError::Setup(format!(
                "freshly compiled module: {reason}"
            )))
        })
    }

    #[cfg(test)]
    pub(super) fn cache(&self) -> &ModuleCache {
        &self.cache
    }

    /// The cached library for `hash`, if its entry verifies and WasmEdge
    /// loads it; an entry WasmEdge refuses is evicted.
    fn load_cached(&self, hash: &str, config: &Config) -> Option<Module> {
        let library = self.cache.open_verified(hash)?;
        match self.load(library, config) {
            Ok(module) => Some(module),
            Err(reason) => {
                log::warn!(
                    "AOT cache entry {} unusable, rebuilding: {reason}",
                    self.cache.entry_dir(hash).display()
                );
                self.cache.evict(hash);
                None
            }
        }
    }

    /// Loads `library`, a file [`ModuleCache`] opened and verified, through
    /// that same open file.
    fn load(&self, library: File, config: &Config) -> std::result::Result<Module, String> {
        let path = PathBuf::from(format!("/proc/self/fd/{}", library.as_raw_fd()));
        let loaded =
            Module::from_file(Some(config), &path).map_err(|e| format!("WasmEdge refused it: {e}"));
        // Kept open even when refused: the loader may hold the library
        // under this path all the same.
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(library);
        loaded
    }

    /// Compiles `wasm` into `out`, in a cache writer's temp directory; the
    /// module file written next to it for the compiler is removed again.
    fn compile_into(
        &self,
        wasm: &[u8],
        out: &Path,
        level: Level,
    ) -> std::result::Result<(), AotUnavailable> {
        let input = out.with_file_name("module.wasm");
        std::fs::write(&input, wasm)?;
        let compiled = self.run_compiler(&input, out, level);
        let _ = std::fs::remove_file(&input);
        compiled
    }

    fn run_compiler(
        &self,
        wasm: &Path,
        out: &Path,
        level: Level,
    ) -> std::result::Result<(), AotUnavailable> {
        let helper = match &self.compiler {
            Compiler::InProcess => return compile_file(wasm, out, level),
            Compiler::Helper(helper) => helper,
        };
        let mut command = super::compiler_library::helper_command(helper);
        command
            .arg(COMPILE_HELPER_ARG)
            .arg(wasm)
            .arg(out)
            .arg(level.arg());
        let running = helper::spawn(command).map_err(|e| {
            AotUnavailable::Failed(EngineError::Setup(format!(
                "cannot run the AOT compile helper {}: {e}",
                helper.display()
            )))
        })?;
        match running.finish(out) {
            Outcome::Ok => Ok(()),
            Outcome::NoCompiler(reason) => Err(AotUnavailable::NoCompiler(reason)),
            Outcome::Failed(reason) => Err(AotUnavailable::Failed(EngineError::InvalidModule(
                format!("AOT compilation failed: {reason}"),
            ))),
        }
    }
}

/// Compiles the module at `wasm` into a native library at `out`, in this
/// process.
pub fn compile_file(
    wasm: &Path,
    out: &Path,
    level: Level,
) -> std::result::Result<(), AotUnavailable> {
    let compiler = ConfigBuilder::new(CommonConfigOptions::default())
        .with_compiler_config(
            CompilerConfigOptions::new()
                .out_format(CompilerOutputFormat::Native)
                .optimization_level(level.llvm()),
        )
        .build()
        .and_then(|config| wasmedge_sdk::Compiler::new(Some(&config)))
        .map_err(|e| {
            AotUnavailable::NoCompiler(format!("this libwasmedge has no compiler: {e}"))
        })?;
    let (Some(folder), Some(stem)) = (out.parent(), out.file_stem()) else {
        return Err(AotUnavailable::Failed(EngineError::Setup(format!(
            "bad output path {}",
            out.display()
        ))));
    };
    let _turn = COMPILING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    compiler
        .compile_from_file(wasm, stem.to_string_lossy(), folder)
        .map(|_| ())
        .map_err(|e| {
            AotUnavailable::Failed(EngineError::InvalidModule(format!(
                "AOT compilation failed: {e}"
            )))
        })
}

/// The helper's `main`: when this process was started as a compile helper
/// (`<exe> --edgeshim-aot-compile IN OUT`), compiles, reports the outcome
/// on stdout (what the shim reads, see [`crate::helper`]) and returns the
/// exit status; otherwise `None`.
pub fn compile_helper_main() -> Option<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) == Some(BACKGROUND_COMPILE_ARG) {
        return Some(background_compile_main(&args[2..]));
    }
    if args.get(1).and_then(|a| a.to_str()) != Some(COMPILE_HELPER_ARG) {
        return None;
    }
    let [_, _, wasm, out, level] = args.as_slice() else {
        eprintln!("usage: {COMPILE_HELPER_ARG} MODULE.wasm OUT.so O0|O2");
        return Some(2);
    };
    let Some(level) = level.to_str().and_then(Level::from_arg) else {
        eprintln!("{COMPILE_HELPER_ARG}: the level is O0 or O2");
        return Some(2);
    };
    wasmedge_sdk::LogManager::log_error_info();
    let (outcome, status) = match compile_file(Path::new(wasm), Path::new(out), level) {
        Ok(()) => (Outcome::Ok, 0),
        Err(AotUnavailable::NoCompiler(reason)) => (Outcome::NoCompiler(reason), 3),
        Err(AotUnavailable::Failed(e)) => (Outcome::Failed(e.to_string()), 1),
    };
    helper::report(&outcome);
    Some(status)
}

/// How many background compiles may wait on a node at once (their module
/// files, `.pending-*`, in the cache folder); past that, a module stays at
/// O0 until a later start finds the queue shorter.
const MAX_WAITING_COMPILES: usize = 4;

/// The node's one background O2 compile at a time (an exclusive `flock` on
/// a file in the cache folder, released when the helper exits): LLVM at O2
/// takes both cores and hundreds of MB, and a burst of new modules must
/// not run that many at once next to the node's containers. Written with
/// libc: one call, which no crate here wraps more simply.
fn node_compile_turn(cache_dir: &Path) -> std::io::Result<File> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache_dir.join(".background-compile.lock"))?;
    // SAFETY: flock on a descriptor this function owns; it blocks until the
    // lock is ours, and the kernel releases it when the file is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lock)
}

/// The background compile's `main` (see [`BACKGROUND_COMPILE_ARG`]): its
/// outcome goes to stderr (the shim's, which containerd logs).
fn background_compile_main(args: &[std::ffi::OsString]) -> i32 {
    let [root, hash, input] = args else {
        eprintln!("usage: {BACKGROUND_COMPILE_ARG} CACHE_ROOT SHA256 MODULE.wasm");
        return 2;
    };
    let hash = hash.to_string_lossy();
    lowest_priority();
    let cache = AotCache::new(Path::new(root), Compiler::InProcess);
    match cache.compile_into_cache(&hash, Path::new(input)) {
        Ok(()) => 0,
        Err(AotUnavailable::NoCompiler(reason)) => {
            eprintln!("edgeshim: module {hash}: {reason}; it runs in WasmEdge's interpreter");
            3
        }
        Err(AotUnavailable::Failed(e)) => {
            eprintln!("edgeshim: module {hash} runs in the interpreter: {e}");
            1
        }
    }
}

/// The background compile yields the CPU to everything else (nice 19, what
/// `nice -n 19` gives a batch job): on a 2-core node an O2 compile at the
/// shim's priority took both cores from the very first start it was queued
/// behind, and that start's module ran at O0 beside it. Set before LLVM
/// starts its threads, which inherit it. Written with libc: nix 0.29 has
/// no `setpriority`.
fn lowest_priority() {
    // SAFETY: setpriority on this thread (who 0), no pointers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
        eprintln!(
            "edgeshim: background compile: cannot lower its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}
