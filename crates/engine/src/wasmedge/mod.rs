//! The WasmEdge engine (libwasmedge 0.14.1 through `wasmedge-sdk` 0.14.0).
//!
//! `prepare` (in the shim) validates the module, checks that it is a WASI
//! command whose imports WASI provides, and, where the library has its
//! LLVM compiler, has it compiled ahead of time into native code cached on
//! disk ([`aot`]); the cached code is what later starts load. A module not
//! yet compiled is compiled at O0 for its first start (a tenth of O2's
//! time, code a little slower), or, when it is large, starts in the
//! interpreter (see [`FirstStart`]), while a helper process compiles it at
//! O2 in the background (`compile_in_background`) for the starts after.
//! Without a compiler every module runs in the interpreter, and the shim
//! says so once.
//!
//! `run` (in the container process) builds a WASI module from the
//! [`WasiView`], instantiates and calls `_start`; see [`run`].

mod aot;
mod compiler_library;
mod run;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmedge_sdk::config::{CommonConfigOptions, ConfigBuilder};
use wasmedge_sdk::wasi::WasiModule;
use wasmedge_sdk::{AsInstance, Module};

use crate::{Engine, EngineConfig, EngineError, NetworkGrant, Result, WasiView};

use self::aot::{AotCache, AotUnavailable, Level};
pub use self::aot::{COMPILE_HELPER_ARG, Compiler, compile_helper_main};

/// What a module missing from the native-code cache gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compile {
    /// Compiled at O2 before `prepare` returns (tools, tests).
    Now,
    /// Compiled at O0 now (a tenth of O2's time), or interpreted when large
    /// ([`FirstStart`]), and at O2 by a helper process in the background
    /// for the starts after (the shim).
    Background,
    /// Never compiled here (the launcher, which must not start threads or
    /// wait on LLVM): O2 code if cached, else O0's, else the interpreter.
    Never,
}

/// How a module with no O2 code in the cache makes its first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstStart {
    /// Compiled at O0 now: LLVM's fixed cost dominates for small modules
    /// (the 28 KB compute module: 0.19 s to compile, 0.10 s to run; 3.2 s
    /// in the interpreter).
    Quick,
    /// In the interpreter, at once: an O0 compile grows with the code (the
    /// 1.1 MB SQLite logger: 4.7 s at O0, 0.33 s for its whole run
    /// interpreted, 1.5 s on Wasmtime's first start), and most of a large
    /// module's code runs rarely.
    Interpreter,
}

impl FirstStart {
    /// Modules with more code than this start in the interpreter: at
    /// WasmEdge 0.14.1's O0 speed here (about 230 KB of module a second on
    /// this machine kind, plus ~0.1 s of fixed cost), 256 KiB would already
    /// wait over a second, twice what Wasmtime takes for the same module.
    const INTERPRET_ABOVE: usize = 256 * 1024;

    /// By the size of the code section alone: data (a model's weights, a
    /// table) costs LLVM nothing, and such a module's compute is what
    /// compiled code is for.
    fn for_module(wasm: &[u8]) -> Self {
        if code_section_len(wasm) > Self::INTERPRET_ABOVE {
            Self::Interpreter
        } else {
            Self::Quick
        }
    }
}

/// The length of a (validated) module's code section; 0 when it has none.
fn code_section_len(wasm: &[u8]) -> usize {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::CodeSectionStart { size, .. }) => {
                return usize::try_from(size).unwrap_or(usize::MAX);
            }
            Ok(_) => {}
            Err(_) => return 0,
        }
    }
    0
}

/// Import module name of WASI preview 1.
const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// A module as this engine holds it: loaded where it runs (the launcher,
/// tools), and where it is only checked (the shim) just what the checks
/// read, the loaded module dropped (see [`EngineConfig::checks_only`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `None` where modules are only checked.
    module: Option<Module>,
    /// The names the module exports.
    exports: std::sync::Arc<HashSet<String>>,
    /// Whether it imports any of WASI's socket functions.
    imports_sockets: bool,
}

impl Prepared {
    fn new(module: Module, checks_only: bool) -> Self {
        let exports = module
            .exports()
            .iter()
            .map(|export| export.name().into_owned())
            .collect();
        let imports_sockets = module.imports().iter().any(|import| {
            import.module_name() == WASI_MODULE && import.name().starts_with("sock_")
        });
        Self {
            module: (!checks_only).then_some(module),
            exports: std::sync::Arc::new(exports),
            imports_sockets,
        }
    }
}

/// WasmEdge behind the [`Engine`] trait.
pub struct WasmEdgeEngine {
    /// Native-code cache; `None` when the cache is disabled (then modules
    /// are interpreted).
    aot: Option<AotCache>,
    /// What a module missing from the cache gets.
    compile: Compile,
    /// Modules prepared for the interpreter or at O0 while their O2 code is
    /// not in the cache (yet): [`Engine::refresh`] looks for it.
    provisional: Mutex<HashSet<String>>,
    /// Set once the library turned out to have no compiler.
    interpret_only: AtomicBool,
    /// Function names WASI provides, to refuse a module with other imports
    /// at create time (WasmEdge itself would only notice at instantiation,
    /// in the container process).
    wasi_functions: HashSet<String>,
    /// Modules are checked here and run elsewhere (the shim).
    checks_only: bool,
    /// Modules this process already prepared, by content hash.
    prepared: Mutex<HashMap<String, Prepared>>,
}

impl Engine for WasmEdgeEngine {
    type Prepared = Prepared;
    const NAME: &'static str = "wasmedge";

    /// Compiles ahead of time in a helper process: this executable, which
    /// must call [`compile_helper_main`] first thing in `main`.
    fn new(config: EngineConfig) -> Result<Self> {
        let helper = std::env::current_exe()
            .map_err(|e| EngineError::Setup(format!("cannot find this executable: {e}")))?;
        Self::with_compiler(config, Compiler::Helper(helper))
    }

    fn prepare(&self, module: &[u8], sha256: &str) -> Result<Prepared> {
        let known = self.lock_prepared().get(sha256).cloned();
        if let Some(prepared) = known {
            return Ok(self.refresh(&prepared, sha256).unwrap_or(prepared));
        }
        if crate::is_component(module) {
            return Err(EngineError::InvalidModule(
                "a WebAssembly component (WASI 0.2): WasmEdge 0.14 runs core modules only; \
                 run it on the Wasmtime shim (runtimeClassName: wasmtime)"
                    .into(),
            ));
        }
        let config = base_config(None)?;
        // Validate the Wasm itself first: a bad module is named as such,
        // never handed to the compiler.
        let validated = Module::from_bytes(Some(&config), module)
            .map_err(|e| EngineError::InvalidModule(e.to_string()))?;
        self.check_command(&validated)?;
        let loaded = match &self.aot {
            Some(aot) if !self.interpret_only.load(Ordering::Relaxed) => match self.compile {
                Compile::Now => match aot.load_or_compile(sha256, module, &config) {
                    Ok(native) => native,
                    Err(AotUnavailable::NoCompiler(reason)) => {
                        log::warn!("{reason}; modules run in WasmEdge's interpreter");
                        self.interpret_only.store(true, Ordering::Relaxed);
                        validated
                    }
                    Err(AotUnavailable::Failed(e)) => {
                        log::warn!("module {sha256} runs in the interpreter: {e}");
                        validated
                    }
                },
                // The shim only checks: the O2 code's digest verified is all
                // it needs of the entry (the launcher loads it).
                Compile::Background if self.checks_only && aot.has(sha256, Level::Full) => {
                    validated
                }
                Compile::Background => match aot.cached(sha256, Level::Full, &config) {
                    Some(native) => native,
                    None => {
                        self.lock_provisional().insert(sha256.to_string());
                        if FirstStart::for_module(module) == FirstStart::Interpreter {
                            match aot.compile_in_background(sha256, module) {
                                Ok(()) => log::info!(
                                    "module {sha256} ({} KiB of code) starts in the interpreter \
                                     (an O0 compile of that much takes seconds) while it is \
                                     compiled at O2 in the background",
                                    code_section_len(module) / 1024
                                ),
                                Err(e) => {
                                    log::warn!("module {sha256} runs in the interpreter here: {e}")
                                }
                            }
                            return self.keep(sha256, validated);
                        }
                        let quick = match aot.quick(sha256, module, &config) {
                            Ok(native) => native,
                            Err(AotUnavailable::NoCompiler(reason)) => {
                                log::warn!("{reason}; modules run in WasmEdge's interpreter");
                                self.interpret_only.store(true, Ordering::Relaxed);
                                return self.keep(sha256, validated);
                            }
                            Err(AotUnavailable::Failed(e)) => {
                                log::warn!(
                                    "module {sha256}: no quick compile ({e}); it starts in the interpreter"
                                );
                                validated
                            }
                        };
                        match aot.compile_in_background(sha256, module) {
                            Ok(()) => log::info!(
                                "module {sha256} starts on quickly compiled code (O0) while it \
                                 is compiled at O2 in the background"
                            ),
                            Err(e) => log::warn!("module {sha256} stays at O0 here: {e}"),
                        }
                        quick
                    }
                },
                Compile::Never => match aot.cached(sha256, Level::Full, &config) {
                    Some(native) => native,
                    None => {
                        self.lock_provisional().insert(sha256.to_string());
                        aot.cached(sha256, Level::Quick, &config)
                            .unwrap_or(validated)
                    }
                },
            },
            _ => validated,
        };
        self.keep(sha256, loaded)
    }

    fn check_runnable(
        &self,
        prepared: &Prepared,
        view: &WasiView,
        _network: &NetworkGrant,
    ) -> Result<()> {
        let name = view.entry_export.as_deref().unwrap_or("_start");
        if !prepared.exports.contains(name) {
            return Err(EngineError::NotACommand(format!("no `{name}` export")));
        }
        Ok(())
    }

    /// WasmEdge 0.14.1's built-in WASI sockets call the kernel directly:
    /// a module that imports any of them is guarded unless everything is
    /// allowed. One that imports none cannot open a socket.
    fn needs_guard(&self, prepared: &Prepared, network: &NetworkGrant) -> bool {
        *network != NetworkGrant::All && prepared.imports_sockets
    }

    /// The module's O2 code, once the background compile put it in the
    /// cache, for a module prepared interpreted or at O0; never where
    /// modules are only checked (nothing runs there).
    fn refresh(&self, _prepared: &Prepared, sha256: &str) -> Option<Prepared> {
        if self.checks_only || !self.lock_provisional().contains(sha256) {
            return None;
        }
        let config = base_config(None).ok()?;
        let native = self.aot.as_ref()?.cached(sha256, Level::Full, &config)?;
        self.lock_provisional().remove(sha256);
        let native = Prepared::new(native, false);
        self.lock_prepared()
            .insert(sha256.to_string(), native.clone());
        Some(native)
    }

    fn run(
        &self,
        prepared: &Prepared,
        view: &WasiView,
        _network: &NetworkGrant,
        _report: Option<crate::ReportRefusal>,
    ) -> Result<i32> {
        let module = prepared.module.as_ref().ok_or_else(|| {
            EngineError::Setup("the module was only checked here, not loaded to run".into())
        })?;
        run::run_command(module, view)
    }
}

impl WasmEdgeEngine {
    /// As [`Engine::new`], compiling where `compiler` says.
    pub fn with_compiler(config: EngineConfig, compiler: Compiler) -> Result<Self> {
        // WasmEdge logs to stdout, which in a container is the module's own
        // output: off (the level is process-wide and containers inherit
        // it). Its errors reach the shim as results, which say the same.
        wasmedge_sdk::LogManager::log_off();
        let wasi = WasiModule::create(None, None, None)
            .map_err(|e| EngineError::Setup(format!("WasmEdge WASI module: {e}")))?;
        let wasi_functions = wasi
            .as_ref()
            .func_names()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let aot = config.cache_dir.map(|dir| AotCache::new(&dir, compiler));
        let compile = if config.single_threaded {
            Compile::Never
        } else if config.compile_in_background {
            Compile::Background
        } else {
            Compile::Now
        };
        Ok(Self {
            aot,
            compile,
            provisional: Mutex::new(HashSet::new()),
            interpret_only: AtomicBool::new(false),
            checks_only: config.checks_only,
            wasi_functions,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        // A poisoned map only means another create panicked mid-insert; the
        // entries themselves are immutable, so keep using it.
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers `module` for `sha256` (all of it, or what the checks
    /// read) and hands it back.
    fn keep(&self, sha256: &str, module: Module) -> Result<Prepared> {
        let prepared = Prepared::new(module, self.checks_only);
        self.lock_prepared()
            .insert(sha256.to_string(), prepared.clone());
        Ok(prepared)
    }

    fn lock_provisional(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.provisional
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A WASI command: exports `_start`, imports only functions WASI has.
    fn check_command(&self, module: &Module) -> Result<()> {
        let unknown: Vec<String> = module
            .imports()
            .iter()
            .filter(|import| {
                import.module_name() != WASI_MODULE
                    || !self.wasi_functions.contains(import.name().as_ref())
            })
            .map(|import| format!("{}::{}", import.module_name(), import.name()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(EngineError::NotACommand(format!(
                "imports that WASI does not provide: {}",
                unknown.join(", ")
            )))
        }
    }
}

/// The configuration every load, compile and run shares: WasmEdge's
/// defaults (the proposals 0.14.1 enables by default), plus a page limit on
/// linear memory when the container has a memory limit.
fn base_config(max_memory_pages: Option<u32>) -> Result<wasmedge_sdk::config::Config> {
    let mut builder = ConfigBuilder::new(CommonConfigOptions::default());
    if let Some(pages) = max_memory_pages {
        builder = builder.with_runtime_config(
            wasmedge_sdk::config::RuntimeConfigOptions::new().max_memory_pages(pages),
        );
    }
    builder
        .build()
        .map_err(|e| EngineError::Setup(format!("WasmEdge config: {e}")))
}

/// Names the cache folder after the library version: native code from one
/// WasmEdge release is not loaded by another.
pub fn engine_tag() -> String {
    format!(
        "wasmedge-{}-{}",
        wasmedge_sdk::utils::CoreVersion::version_string(),
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests;
