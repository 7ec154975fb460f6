//! Ahead-of-time compiled modules, cached on local disk.
//!
//! Each module is compiled once by WasmEdge's LLVM compiler into a native
//! shared library, `<cache>/<engine tag>/<module sha256>.so`, next to a
//! digest file `<module sha256>.so.sha256` holding the library's own sha256.
//! Both are written atomically (temp file + rename), the library first.
//!
//! Loading a shared library runs its code, so an entry is loaded only when
//! its digest file exists and matches the library byte for byte; anything
//! else (a half-written, corrupt or foreign file) is removed and rebuilt.
//! The digest is checked once per shim process and module.
//!
//! The compiler runs in a child process ([`Compiler::Helper`]: the shim
//! binary itself, with [`COMPILE_HELPER_ARG`]), never in the shim: LLVM
//! leaves a thread pool whose exit handler joins its threads, and every
//! process the shim forks (each container's) would hang in that handler on
//! exit; the child also keeps LLVM's heap out of the long-lived shim and a
//! compiler crash away from its other containers.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmedge_sdk::config::{CommonConfigOptions, CompilerConfigOptions, Config, ConfigBuilder};
use wasmedge_sdk::{CompilerOptimizationLevel, CompilerOutputFormat, Module};

use crate::EngineError;
use crate::cache::{ModuleCache, content_hash};

/// WasmEdge 0.14.1's LLVM compiler crashes when two compilations run at
/// once in one process: in-process compilations take turns.
static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// First argument that makes the shim binary a compile helper:
/// `<shim> --edgeshim-aot-compile <module.wasm> <out.so>`.
pub const COMPILE_HELPER_ARG: &str = "--edgeshim-aot-compile";

/// Exit status of a helper whose libwasmedge has no compiler.
const NO_COMPILER_STATUS: i32 = 3;

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
}

/// Why a module has no native code.
pub enum AotUnavailable {
    /// The library was built without LLVM: interpret from now on.
    NoCompiler(String),
    /// This module could not be compiled or cached.
    Failed(EngineError),
}

impl AotCache {
    pub fn new(root: &Path, compiler: Compiler) -> Self {
        Self {
            compiler,
            cache: ModuleCache::new(root, &super::engine_tag()),
        }
    }

    /// The module's native code from the cache, compiled first if needed.
    pub fn load_or_compile(
        &self,
        hash: &str,
        wasm: &[u8],
        config: &Config,
    ) -> std::result::Result<Module, AotUnavailable> {
        let library = self.library_path(hash);
        if library.exists() {
            match self.load_verified(hash, config) {
                Ok(module) => return Ok(module),
                Err(reason) => {
                    log::warn!(
                        "AOT cache entry {} unusable, rebuilding: {reason}",
                        library.display()
                    );
                    self.evict(hash);
                }
            }
        }
        self.compile(hash, wasm)?;
        self.load_verified(hash, config).map_err(|reason| {
            AotUnavailable::Failed(EngineError::Setup(format!(
                "freshly compiled module: {reason}"
            )))
        })
    }

    pub(super) fn library_path(&self, hash: &str) -> PathBuf {
        self.cache.dir().join(format!("{hash}.so"))
    }

    pub(super) fn digest_path(&self, hash: &str) -> PathBuf {
        self.cache.dir().join(format!("{hash}.so.sha256"))
    }

    fn load_verified(&self, hash: &str, config: &Config) -> std::result::Result<Module, String> {
        let library = self.library_path(hash);
        let bytes = std::fs::read(&library).map_err(|e| format!("cannot read: {e}"))?;
        let digest_file = self.digest_path(hash);
        let recorded = std::fs::read_to_string(&digest_file)
            .map_err(|e| format!("no digest {}: {e}", digest_file.display()))?;
        if recorded.trim() != content_hash(&bytes) {
            return Err("digest does not match the library".into());
        }
        Module::from_file(Some(config), &library).map_err(|e| format!("WasmEdge refused it: {e}"))
    }

    /// Compiles into temp names in the cache folder, then renames the
    /// library and writes its digest, so readers see whole files only.
    fn compile(&self, hash: &str, wasm: &[u8]) -> std::result::Result<(), AotUnavailable> {
        let folder = self.cache.dir();
        let failed = |e: std::io::Error| AotUnavailable::Failed(cache_error(folder, &e));
        std::fs::create_dir_all(folder).map_err(failed)?;
        // Unique per call: two containers of one new module in one shim
        // may compile it at once, and must not share temp files.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = folder.join(format!(".tmp-{}-{call}-{hash}", std::process::id()));
        let temp_wasm = temp.with_extension("wasm");
        let temp_library = temp.with_extension("so");
        let outcome = std::fs::write(&temp_wasm, wasm)
            .map_err(failed)
            .and_then(|()| self.run_compiler(&temp_wasm, &temp_library))
            .and_then(|()| {
                let bytes = std::fs::read(&temp_library).map_err(failed)?;
                std::fs::rename(&temp_library, self.library_path(hash)).map_err(failed)?;
                self.cache
                    .store_file(
                        &format!("{hash}.so.sha256"),
                        content_hash(&bytes).as_bytes(),
                    )
                    .map_err(failed)
            });
        let _ = std::fs::remove_file(&temp_wasm);
        let _ = std::fs::remove_file(&temp_library);
        outcome.map(|_| ())
    }

    fn run_compiler(&self, wasm: &Path, out: &Path) -> std::result::Result<(), AotUnavailable> {
        let helper = match &self.compiler {
            Compiler::InProcess => return compile_file(wasm, out),
            Compiler::Helper(helper) => helper,
        };
        let output = Command::new(helper)
            .arg(COMPILE_HELPER_ARG)
            .arg(wasm)
            .arg(out)
            .output()
            .map_err(|e| {
                AotUnavailable::Failed(EngineError::Setup(format!(
                    "cannot run the AOT compile helper {}: {e}",
                    helper.display()
                )))
            })?;
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        match output.status.code() {
            Some(0) => Ok(()),
            Some(NO_COMPILER_STATUS) => Err(AotUnavailable::NoCompiler(said)),
            _ => Err(AotUnavailable::Failed(EngineError::InvalidModule(format!(
                "AOT compilation failed ({}): {said}",
                output.status
            )))),
        }
    }

    fn evict(&self, hash: &str) {
        let _ = std::fs::remove_file(self.digest_path(hash));
        let _ = std::fs::remove_file(self.library_path(hash));
    }
}

/// Compiles the module at `wasm` into a native library at `out`, in this
/// process.
pub fn compile_file(wasm: &Path, out: &Path) -> std::result::Result<(), AotUnavailable> {
    let compiler = ConfigBuilder::new(CommonConfigOptions::default())
        .with_compiler_config(
            CompilerConfigOptions::new()
                .out_format(CompilerOutputFormat::Native)
                .optimization_level(CompilerOptimizationLevel::O2),
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
/// (`<exe> --edgeshim-aot-compile IN OUT`), compiles and returns the exit
/// status; otherwise `None`.
pub fn compile_helper_main() -> Option<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) != Some(COMPILE_HELPER_ARG) {
        return None;
    }
    let [_, _, wasm, out] = args.as_slice() else {
        eprintln!("usage: {COMPILE_HELPER_ARG} MODULE.wasm OUT.so");
        return Some(2);
    };
    wasmedge_sdk::LogManager::log_error_info();
    Some(match compile_file(Path::new(wasm), Path::new(out)) {
        Ok(()) => 0,
        Err(AotUnavailable::NoCompiler(reason)) => {
            eprintln!("{reason}");
            NO_COMPILER_STATUS
        }
        Err(AotUnavailable::Failed(e)) => {
            eprintln!("{e}");
            1
        }
    })
}

fn cache_error(path: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Setup(format!("AOT cache {}: {e}", path.display()))
}
