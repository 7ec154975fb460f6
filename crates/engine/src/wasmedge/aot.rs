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

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmedge_sdk::config::{CommonConfigOptions, CompilerConfigOptions, Config, ConfigBuilder};
use wasmedge_sdk::{Compiler, CompilerOptimizationLevel, CompilerOutputFormat, Module};

use crate::cache::{ModuleCache, content_hash};
use crate::{EngineError, Result};

/// WasmEdge's LLVM compiler crashes when two compilations run at once in
/// one process (seen with 0.14.1), and a shim prepares containers on several
/// threads: compilations take turns.
static COMPILING: Mutex<()> = Mutex::new(());

pub struct AotCache {
    compiler: Compiler,
    cache: ModuleCache,
}

impl AotCache {
    /// A cache under `root`, or `None` (with a log line) when this
    /// libwasmedge was built without its LLVM compiler.
    pub fn new(root: &Path) -> Option<Self> {
        let compiler = ConfigBuilder::new(CommonConfigOptions::default())
            .with_compiler_config(
                CompilerConfigOptions::new()
                    .out_format(CompilerOutputFormat::Native)
                    .optimization_level(CompilerOptimizationLevel::O2),
            )
            .build()
            .and_then(|config| Compiler::new(Some(&config)));
        match compiler {
            Ok(compiler) => Some(Self {
                compiler,
                cache: ModuleCache::new(root, &super::engine_tag()),
            }),
            Err(e) => {
                log::warn!(
                    "WasmEdge has no ahead-of-time compiler here ({e}); \
                     modules run in its interpreter"
                );
                None
            }
        }
    }

    /// The module's native code from the cache, compiled first if needed.
    pub fn load_or_compile(&self, hash: &str, wasm: &[u8], config: &Config) -> Result<Module> {
        let library = self.library_path(hash);
        if library.exists() {
            match self.load_verified(&library, config) {
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
        self.load_verified(&library, config)
            .map_err(|reason| EngineError::Setup(format!("freshly compiled module: {reason}")))
    }

    pub(super) fn library_path(&self, hash: &str) -> PathBuf {
        self.cache.dir().join(format!("{hash}.so"))
    }

    pub(super) fn digest_path(&self, hash: &str) -> PathBuf {
        self.cache.dir().join(format!("{hash}.so.sha256"))
    }

    fn load_verified(&self, library: &Path, config: &Config) -> std::result::Result<Module, String> {
        let bytes = std::fs::read(library).map_err(|e| format!("cannot read: {e}"))?;
        let digest_file = library.with_extension("so.sha256");
        let recorded = std::fs::read_to_string(&digest_file)
            .map_err(|e| format!("no digest {}: {e}", digest_file.display()))?;
        if recorded.trim() != content_hash(&bytes) {
            return Err("digest does not match the library".into());
        }
        Module::from_file(Some(config), library).map_err(|e| format!("WasmEdge refused it: {e}"))
    }

    /// Compiles into a temp name in the cache folder, then renames the
    /// library and writes its digest, so readers see whole files only.
    fn compile(&self, hash: &str, wasm: &[u8]) -> Result<()> {
        let folder = self.cache.dir();
        std::fs::create_dir_all(folder).map_err(|e| cache_error(folder, &e))?;
        let temp_name = format!(".tmp-{}-{hash}", std::process::id());
        let turn = COMPILING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let compiled = self.compiler.compile_from_bytes(wasm, &temp_name, folder);
        drop(turn);
        let temp = compiled
            .map_err(|e| EngineError::InvalidModule(format!("AOT compilation failed: {e}")))?;
        let library = self.library_path(hash);
        let outcome = std::fs::read(&temp).and_then(|bytes| {
            std::fs::rename(&temp, &library)?;
            self.cache
                .store_file(&format!("{hash}.so.sha256"), content_hash(&bytes).as_bytes())
        });
        if let Err(e) = outcome {
            let _ = std::fs::remove_file(&temp);
            return Err(cache_error(&library, &e));
        }
        Ok(())
    }

    fn evict(&self, hash: &str) {
        let _ = std::fs::remove_file(self.digest_path(hash));
        let _ = std::fs::remove_file(self.library_path(hash));
    }
}

fn cache_error(path: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Setup(format!("AOT cache {}: {e}", path.display()))
}
