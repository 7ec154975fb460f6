//! Engine tests on WAT modules; `run` is exercised by the integration suite,
//! which runs it in a container process as the shim does.

use super::*;
use crate::cache::content_hash;
use crate::test_modules::COMMAND;

fn engine(cache: Option<&std::path::Path>) -> WasmEdgeEngine {
    // In process: a test binary cannot serve as the compile helper.
    WasmEdgeEngine::with_compiler(
        EngineConfig {
            cache_dir: cache.map(std::path::Path::to_path_buf),
            single_threaded: false,
            compile_in_background: false,
            checks_only: false,
        },
        Compiler::InProcess,
    )
    .expect("engine")
}

/// An engine as the shim has it (compiles in the background), in process.
fn shim_like_engine(cache: &std::path::Path, checks_only: bool) -> WasmEdgeEngine {
    WasmEdgeEngine::with_compiler(
        EngineConfig {
            cache_dir: Some(cache.to_path_buf()),
            single_threaded: false,
            compile_in_background: true,
            checks_only,
        },
        Compiler::InProcess,
    )
    .expect("engine")
}

fn prepare(engine: &WasmEdgeEngine, bytes: &[u8]) -> Result<Prepared> {
    engine.prepare(bytes, &content_hash(bytes))
}

#[test]
fn test_invalid_module_is_refused_with_reason() {
    let err = prepare(&engine(None), b"\0asm\x01\0\0\0\x01\xff").expect_err("invalid");
    assert!(matches!(err, EngineError::InvalidModule(_)), "{err}");
}

#[test]
fn test_a_component_is_refused_by_name() {
    let bytes = wat::parse_str("(component)").expect("wat");
    let err = prepare(&engine(None), &bytes).expect_err("a component");
    assert!(err.to_string().contains("WebAssembly component"), "{err}");
    assert!(err.to_string().contains("Wasmtime shim"), "{err}");
}

#[test]
fn test_module_without_start_is_not_a_command() {
    let bytes = wat::parse_str("(module (func (export \"main\")))").expect("wat");
    let engine = engine(None);
    let module = prepare(&engine, &bytes).expect("valid");
    let err = engine
        .check_runnable(&module, &WasiView::default(), &NetworkGrant::All)
        .expect_err("no _start");
    assert!(matches!(err, EngineError::NotACommand(_)), "{err}");
    let view = WasiView {
        entry_export: Some("main".into()),
        ..WasiView::default()
    };
    engine
        .check_runnable(&module, &view, &NetworkGrant::All)
        .expect("started at `main`");
}

#[test]
fn test_a_socket_module_is_guarded_unless_everything_is_allowed() {
    let sockets = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))
                   (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .expect("wat");
    let plain = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .expect("wat");
    let engine = engine(None);
    let sockets = prepare(&engine, &sockets).expect("WASI's socket extension");
    let plain = prepare(&engine, &plain).expect("no sockets");
    let rules = NetworkGrant::Rules(edgeshim_network::NetworkRules::default());
    engine
        .check_runnable(&sockets, &WasiView::default(), &rules)
        .expect("runs, guarded");
    assert!(engine.needs_guard(&sockets, &rules));
    assert!(!engine.needs_guard(&sockets, &NetworkGrant::All));
    // A module without sockets cannot open one: no guard to pay for.
    assert!(!engine.needs_guard(&plain, &rules));
}

#[test]
fn test_unknown_import_is_refused_at_prepare_by_name() {
    let bytes = wat::parse_str(r#"(module (import "env" "nope" (func)) (func (export "_start")))"#)
        .expect("wat");
    let err = prepare(&engine(None), &bytes).expect_err("unknown import");
    assert!(err.to_string().contains("env::nope"), "{err}");
}

#[test]
fn test_command_is_prepared_and_cached_as_native_code() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let hash = content_hash(&bytes);
    let engine = engine(Some(root.path()));
    prepare(&engine, &bytes).expect("prepare");
    let Some(aot) = engine
        .aot
        .as_ref()
        .filter(|_| !engine.interpret_only.load(Ordering::Relaxed))
    else {
        panic!("this libwasmedge has no AOT compiler: the AOT tests need one built with LLVM");
    };
    let library = aot.cache().artifact_path(&hash);
    let digest = std::fs::read_to_string(aot.cache().digest_path(&hash)).expect("digest");
    assert_eq!(
        digest,
        content_hash(&std::fs::read(&library).expect("library"))
    );
}

#[test]
fn test_corrupt_or_foreign_cache_entry_is_rebuilt_not_loaded() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let hash = content_hash(&bytes);
    let first = engine(Some(root.path()));
    prepare(&first, &bytes).expect("prepare");
    let Some(aot) = first
        .aot
        .as_ref()
        .filter(|_| !first.interpret_only.load(Ordering::Relaxed))
    else {
        panic!("this libwasmedge has no AOT compiler: the AOT tests need one built with LLVM");
    };
    let library = aot.cache().artifact_path(&hash);
    let good = std::fs::read(&library).expect("library");
    // A foreign library put in place of the entry, digest left as it was.
    // (A new file, as any writer's rename makes: this process still has the
    // first one mapped.)
    std::fs::remove_file(&library).expect("remove");
    std::fs::write(&library, b"\x7fELF not really a library").expect("corrupt");
    prepare(&engine(Some(root.path())), &bytes).expect("rebuilt");
    assert_eq!(std::fs::read(&library).expect("library").len(), good.len());
    // A library without its digest file.
    std::fs::remove_file(aot.cache().digest_path(&hash)).expect("digest");
    prepare(&engine(Some(root.path())), &bytes).expect("rebuilt again");
    assert!(aot.cache().digest_path(&hash).exists());
}

/// The launcher never compiles: a module missing from the cache is
/// interpreted there, and taken up as O2 code once the shim's compile put
/// it in the cache.
#[test]
fn test_an_interpreted_module_is_refreshed_once_its_native_code_is_cached() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let hash = content_hash(&bytes);
    let launcher = WasmEdgeEngine::with_compiler(
        EngineConfig {
            cache_dir: Some(root.path().to_path_buf()),
            single_threaded: true,
            compile_in_background: true,
            checks_only: false,
        },
        Compiler::InProcess,
    )
    .expect("engine");
    let interpreted = prepare(&launcher, &bytes).expect("interpreted");
    let aot = launcher.aot.as_ref().expect("a cache");
    assert!(
        !aot.cache().artifact_path(&hash).exists(),
        "the launcher compiled"
    );
    assert!(
        launcher.refresh(&interpreted, &hash).is_none(),
        "nothing cached yet"
    );

    let shim = engine(Some(root.path()));
    prepare(&shim, &bytes).expect("compiled");
    if shim.interpret_only.load(Ordering::Relaxed) {
        panic!("this libwasmedge has no AOT compiler: the AOT tests need one built with LLVM");
    }
    assert!(
        launcher.refresh(&interpreted, &hash).is_some(),
        "native now"
    );
    assert!(
        launcher.refresh(&interpreted, &hash).is_none(),
        "taken up once"
    );
}

/// A first start gets O0 code at once; the O2 compile needs a helper
/// process (tests and tools have none: it says so, and the module stays at
/// O0 there).
#[test]
fn test_a_first_start_gets_quick_code_and_the_o2_compile_needs_a_helper() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let engine = shim_like_engine(root.path(), false);
    let aot = engine.aot.as_ref().expect("a cache");
    let err = aot
        .compile_in_background(&content_hash(&bytes), &bytes)
        .expect_err("no helper");
    assert!(err.contains("no helper"), "{err}");
    let hash = content_hash(&bytes);
    prepare(&engine, &bytes).expect("quick code");
    if engine.interpret_only.load(Ordering::Relaxed) {
        panic!("this libwasmedge has no AOT compiler: the AOT tests need one built with LLVM");
    }
    assert!(engine.lock_provisional().contains(&hash));
    assert!(
        aot.cache().artifact_path(&format!("{hash}-o0")).exists(),
        "O0 entry"
    );
    assert!(
        !aot.cache().artifact_path(&hash).exists(),
        "no O2 entry here"
    );
}

/// Background compiles wait in a bounded queue on the node: past four
/// waiting, a module stays at O0 and no helper is started for it.
#[test]
fn test_background_compiles_wait_in_a_bounded_queue() {
    let root = tempfile::tempdir().expect("tempdir");
    // A helper that must never run here.
    let aot = AotCache::new(root.path(), Compiler::Helper("/nonexistent/helper".into()));
    std::fs::create_dir_all(aot.cache().dir()).expect("cache folder");
    for i in 0..4 {
        std::fs::write(
            aot.cache().dir().join(format!(".pending-other-{i}.wasm")),
            b"",
        )
        .expect("a waiting compile");
    }
    // A helper that died long ago left its input: removed, it holds no place.
    let stale = aot.cache().dir().join(".pending-dead-1.wasm");
    std::fs::write(&stale, b"").expect("a dead helper's input");
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| {
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        })
        .expect("age it");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let err = aot
        .compile_in_background(&content_hash(&bytes), &bytes)
        .expect_err("the queue is full");
    assert!(!stale.exists(), "a dead helper's input is removed");
    assert!(err.contains("4 background compiles already wait"), "{err}");
    let pending = std::fs::read_dir(aot.cache().dir())
        .expect("cache folder")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pending-"))
        .count();
    assert_eq!(
        pending, 4,
        "no input written for a compile that does not start"
    );
}

/// A WASI command whose `_start` holds `instructions` constant drops:
/// about three bytes of code each.
fn command_with_code(instructions: usize) -> Vec<u8> {
    let body = "(drop (i32.const 7))\n".repeat(instructions);
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) (func (export "_start") {body}))"#
    ))
    .expect("wat")
}

#[test]
fn test_first_start_is_chosen_by_the_code_section_alone() {
    let small = command_with_code(1_000);
    assert_eq!(FirstStart::for_module(&small), FirstStart::Quick);
    let large = command_with_code(100_000);
    assert!(code_section_len(&large) > FirstStart::INTERPRET_ABOVE);
    assert_eq!(FirstStart::for_module(&large), FirstStart::Interpreter);
    // Data (a model's weights) is no code: compiled code is what it needs.
    let data = wat::parse_str(format!(
        r#"(module (memory (export "memory") 8) (data (i32.const 0) "{}")
                   (func (export "_start")))"#,
        "\\00".repeat(400 * 1024)
    ))
    .expect("wat");
    assert!(data.len() > FirstStart::INTERPRET_ABOVE);
    assert_eq!(FirstStart::for_module(&data), FirstStart::Quick);
    assert_eq!(code_section_len(b"\0asm\x01\0\0\0"), 0, "no code section");
}

/// A large module's first start is interpreted: no O0 compile is made for
/// it (the O2 one needs a helper, which tests have none of), and it stays
/// provisional, to be taken up as O2 code once that is cached.
#[test]
fn test_a_large_module_starts_in_the_interpreter_without_an_o0_compile() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = command_with_code(100_000);
    let hash = content_hash(&bytes);
    let engine = shim_like_engine(root.path(), false);
    let module = prepare(&engine, &bytes).expect("interpreted");
    engine
        .check_runnable(&module, &WasiView::default(), &NetworkGrant::All)
        .expect("a command");
    let aot = engine.aot.as_ref().expect("a cache");
    assert!(
        !aot.cache().artifact_path(&format!("{hash}-o0")).exists(),
        "no O0 compile for a large module"
    );
    assert!(engine.lock_provisional().contains(&hash));
}

/// Every pod has a shim of its own: the second shim to start a new module
/// finds the first one's background compile waiting and starts none.
#[test]
fn test_a_module_already_waiting_for_its_compile_gets_no_second_helper() {
    let root = tempfile::tempdir().expect("tempdir");
    // A helper that must never run here: starting it would fail.
    let aot = AotCache::new(root.path(), Compiler::Helper("/nonexistent/helper".into()));
    std::fs::create_dir_all(aot.cache().dir()).expect("cache folder");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let hash = content_hash(&bytes);
    std::fs::write(
        aot.cache().dir().join(format!(".pending-{hash}-4242.wasm")),
        &bytes,
    )
    .expect("another shim's waiting compile");
    aot.compile_in_background(&hash, &bytes)
        .expect("served by the waiting compile");
    let other = wat::parse_str(r#"(module (func (export "_start")))"#).expect("wat");
    let err = aot
        .compile_in_background(&content_hash(&other), &other)
        .expect_err("another module needs its own helper");
    assert!(err.contains("/nonexistent/helper"), "{err}");
}

/// The shim only checks modules: it keeps what the checks read, never the
/// loaded module (about sixteen times the module's size in WasmEdge's
/// heap), and finds O2 code in the cache without loading it.
#[test]
fn test_a_shim_that_only_checks_keeps_no_loaded_module() {
    let root = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    let hash = content_hash(&bytes);
    let tools = engine(Some(root.path()));
    prepare(&tools, &bytes).expect("compiled at O2");
    if tools.interpret_only.load(Ordering::Relaxed) {
        panic!("this libwasmedge has no AOT compiler: the AOT tests need one built with LLVM");
    }
    let shim = shim_like_engine(root.path(), true);
    let checked = prepare(&shim, &bytes).expect("checked");
    assert!(checked.module.is_none(), "the shim kept the loaded module");
    assert!(!shim.lock_provisional().contains(&hash), "O2 code is there");
    shim.check_runnable(&checked, &WasiView::default(), &NetworkGrant::All)
        .expect("exports _start");
    let view = WasiView {
        entry_export: Some("main".into()),
        ..WasiView::default()
    };
    let err = shim
        .check_runnable(&checked, &view, &NetworkGrant::All)
        .expect_err("no `main`");
    assert!(matches!(err, EngineError::NotACommand(_)), "{err}");
    assert!(
        shim.refresh(&checked, &hash).is_none(),
        "nothing to refresh"
    );
    let err = shim
        .run(&checked, &WasiView::default(), &NetworkGrant::All, None)
        .expect_err("nothing loaded to run");
    assert!(err.to_string().contains("only checked"), "{err}");
    // Its second create of the module is answered from what it kept.
    let again = prepare(&shim, &bytes).expect("kept");
    assert!(std::sync::Arc::ptr_eq(&checked.exports, &again.exports));
}
