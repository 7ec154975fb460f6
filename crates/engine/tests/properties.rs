//! Property tests on generated modules (wasm-smith under proptest; no
//! nightly fuzzer exists here): whatever module a container brings, the
//! shim's side of each engine (validate, compile, check it can start)
//! gives a prepared module or an error that names the cause; never a
//! panic, which in a shim would take down every container of its pod.
//! Valid modules of every shape (and bytes cut short or flipped) are tried.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default, what the
//! suite runs; RELIABILITY.md gives a long run's counts).

use arbitrary::Unstructured;
use edgeshim_engine::cache::content_hash;
use edgeshim_engine::{Engine, EngineConfig, NetworkGrant, WasiView};
use proptest::prelude::*;

/// A module wasm-smith makes from `seed`; WASI commands now and then (the
/// `_start` export and WASI's imports are what the shim checks for).
fn module(seed: &[u8], command: bool) -> Option<Vec<u8>> {
    let mut config = wasm_smith::Config::default();
    if command {
        // Imports from WASI only, and exactly a command's exports.
        config.available_imports = Some(
            wat::parse_str(
                r#"(module
                    (import "wasi_snapshot_preview1" "fd_write"
                      (func (param i32 i32 i32 i32) (result i32)))
                    (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#,
            )
            .expect("imports"),
        );
        config.exports = Some(
            wat::parse_str(r#"(module (func (export "_start")) (memory (export "memory") 1))"#)
                .expect("exports"),
        );
    }
    let mut input = Unstructured::new(seed);
    wasm_smith::Module::new(config, &mut input)
        .ok()
        .map(|m| m.to_bytes())
}

/// `bytes` damaged as a truncated download or a flipped bit would be.
fn damaged(mut bytes: Vec<u8>, cut: usize, flip: usize) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let at = flip % bytes.len();
    bytes[at] ^= 0x5a;
    bytes.truncate(bytes.len() - cut % bytes.len());
    bytes
}

/// One generated case: a seed for wasm-smith, whether to make a WASI
/// command, and how (if at all) to damage the bytes.
#[derive(Debug, Clone)]
struct Case {
    seed: Vec<u8>,
    command: bool,
    damage: Option<(usize, usize)>,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(any::<u8>(), 64..2048),
        any::<bool>(),
        proptest::option::of((any::<usize>(), any::<usize>())),
    )
        .prop_map(|(seed, command, damage)| Case {
            seed,
            command,
            damage,
        })
}

/// `engine` prepares the case's module, then checks it can start under
/// every kind of grant, or names why not.
fn check_case<E: Engine>(engine: &E, case: &Case) -> Result<(), TestCaseError> {
    let Some(bytes) = module(&case.seed, case.command) else {
        return Ok(());
    };
    let bytes = match case.damage {
        Some((cut, flip)) => damaged(bytes, cut, flip),
        None => bytes,
    };
    check(engine, &bytes)
}

fn check<E: Engine>(engine: &E, bytes: &[u8]) -> Result<(), TestCaseError> {
    match engine.prepare(bytes, &content_hash(bytes)) {
        Ok(prepared) => {
            for network in [NetworkGrant::All, NetworkGrant::Rules(Default::default())] {
                if let Err(e) = engine.check_runnable(&prepared, &WasiView::default(), &network) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

#[cfg(feature = "wasmtime")]
fn wasmtime() -> &'static edgeshim_engine::WasmtimeEngine {
    static ENGINE: std::sync::OnceLock<edgeshim_engine::WasmtimeEngine> =
        std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        edgeshim_engine::WasmtimeEngine::new(EngineConfig {
            cache_dir: None,
            single_threaded: false,
            compile_in_background: false,
            checks_only: false,
        })
        .expect("engine")
    })
}

proptest! {
    #[cfg(feature = "wasmtime")]
    #[test]
    fn wasmtime_prepares_or_names_why_for_any_module(case in cases()) {
        check_case(wasmtime(), &case)?;
    }
}

#[cfg(feature = "wasmedge")]
fn wasmedge() -> &'static edgeshim_engine::WasmEdgeEngine {
    static ENGINE: std::sync::OnceLock<edgeshim_engine::WasmEdgeEngine> =
        std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        // The interpreter only: compiling each case ahead of time would
        // measure LLVM, not the shim's checks.
        edgeshim_engine::WasmEdgeEngine::new(EngineConfig {
            cache_dir: None,
            single_threaded: false,
            compile_in_background: false,
            checks_only: false,
        })
        .expect("engine")
    })
}

proptest! {
    #[cfg(feature = "wasmedge")]
    #[test]
    fn wasmedge_prepares_or_names_why_for_any_module(case in cases()) {
        check_case(wasmedge(), &case)?;
    }
}
