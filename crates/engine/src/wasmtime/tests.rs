//! Engine tests on WAT modules; `run` is exercised by the integration suite,
//! which runs it in a container process as the shim does.

use super::*;
use crate::cache::content_hash;
use crate::test_modules::COMMAND;

fn prepare(engine: &WasmtimeEngine, bytes: &[u8]) -> Result<Prepared> {
    engine.prepare(bytes, &content_hash(bytes))
}

/// `bytes` prepared and checked as a container starting at `export`.
fn runnable(bytes: &[u8], export: Option<&str>) -> Result<()> {
    let engine = engine(None);
    let prepared = prepare(&engine, bytes)?;
    let view = WasiView {
        entry_export: export.map(str::to_string),
        ..WasiView::default()
    };
    engine.check_runnable(&prepared, &view, &NetworkGrant::All)
}

fn engine(cache: Option<&std::path::Path>) -> WasmtimeEngine {
    WasmtimeEngine::new(EngineConfig {
        cache_dir: cache.map(std::path::Path::to_path_buf),
        single_threaded: false,
        compile_in_background: false,
        checks_only: false,
    })
    .expect("engine")
}

#[test]
fn test_invalid_module_is_refused_with_reason() {
    let err = prepare(&engine(None), b"\0asm\x01\0\0\0\x01\xff").expect_err("invalid");
    assert!(matches!(err, EngineError::InvalidModule(_)), "{err}");
}

#[test]
fn test_module_without_start_is_not_a_command() {
    let bytes = wat::parse_str("(module (func (export \"main\")))").expect("wat");
    let err = runnable(&bytes, None).expect_err("no _start");
    assert!(matches!(err, EngineError::NotACommand(_)), "{err}");
    assert!(err.to_string().contains("no `_start` export"), "{err}");
}

#[test]
fn test_a_module_starts_at_the_export_its_entrypoint_names() {
    let bytes = wat::parse_str(
        "(module (func (export \"main\")) (func (export \"add\") (param i32) (result i32) local.get 0))",
    )
    .expect("wat");
    runnable(&bytes, Some("main")).expect("`main` is a start function");
    let err = runnable(&bytes, Some("missing")).expect_err("no such export");
    assert!(err.to_string().contains("no `missing` export"), "{err}");
    let err = runnable(&bytes, Some("add")).expect_err("not a start function");
    assert!(
        err.to_string()
            .contains("not a function without parameters"),
        "{err}"
    );
}

/// A component that exports `wasi:cli/run` and imports nothing: what a
/// `wasi:cli/command` world reduces to.
const RUN_COMPONENT: &str = r#"(component
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $api (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $api)))"#;

#[test]
fn test_a_component_is_told_by_its_header_and_needs_wasi_cli_run() {
    let bytes = wat::parse_str(RUN_COMPONENT).expect("wat");
    assert!(is_component(&bytes));
    assert!(!is_component(&wat::parse_str(COMMAND).expect("wat")));
    runnable(&bytes, None).expect("a command component");
    let plain = wat::parse_str("(component)").expect("wat");
    let err = runnable(&plain, None).expect_err("not a command");
    assert!(err.to_string().contains("not a wasi:cli/command"), "{err}");
}

/// runwasi's convention: `component.wasm#thunk` runs the component's
/// export `thunk`, which must take and give nothing.
#[test]
fn test_a_component_starts_at_the_export_its_entrypoint_names() {
    let bytes = wat::parse_str(
        r#"(component
          (core module $m
            (func (export "thunk"))
            (func (export "add") (param i32) (result i32) local.get 0))
          (core instance $i (instantiate $m))
          (func (export "thunk") (canon lift (core func $i "thunk")))
          (func (export "add") (param "x" u32) (result u32)
            (canon lift (core func $i "add"))))"#,
    )
    .expect("wat");
    runnable(&bytes, Some("thunk")).expect("`thunk` is a start function");
    let err = runnable(&bytes, None).expect_err("not a command");
    assert!(err.to_string().contains("module.wasm#export"), "{err}");
    let err = runnable(&bytes, Some("missing")).expect_err("no such export");
    assert!(err.to_string().contains("no `missing` export"), "{err}");
    let err = runnable(&bytes, Some("add")).expect_err("not a start function");
    assert!(
        err.to_string()
            .contains("not a function without parameters"),
        "{err}"
    );
    // `wasi:cli/run` is an instance, not a function: naming it is refused.
    let err = runnable(
        &wat::parse_str(RUN_COMPONENT).expect("wat"),
        Some("wasi:cli/run@0.2.0"),
    )
    .expect_err("an instance, not a function");
    assert!(err.to_string().contains("not a function"), "{err}");
}

#[test]
fn test_a_compiled_component_is_cached_and_loaded_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(RUN_COMPONENT).expect("wat");
    prepare(&engine(Some(dir.path())), &bytes).expect("first");
    let entry = artifact(dir.path(), &content_hash(&bytes));
    let written = std::fs::read(&entry).expect("artifact");
    let prepared = prepare(&engine(Some(dir.path())), &bytes).expect("from the cache");
    assert!(matches!(
        prepared,
        Prepared::Component {
            command: Some(_),
            ..
        }
    ));
    assert_eq!(
        std::fs::read(&entry).expect("artifact"),
        written,
        "not rewritten"
    );
}

#[test]
fn test_unknown_import_is_refused_at_prepare() {
    let bytes = wat::parse_str(r#"(module (import "env" "nope" (func)) (func (export "_start")))"#)
        .expect("wat");
    let err = prepare(&engine(None), &bytes).expect_err("bad import");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn test_compiled_module_is_cached_and_reused_across_engines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    // Cold cache: compiled and stored as one entry with its digest.
    prepare(&engine(Some(dir.path())), &bytes).expect("first");
    let hash = content_hash(&bytes);
    let entries: Vec<_> = walk(dir.path());
    assert_eq!(entries.len(), 2, "{entries:?}");
    let artifact = artifact(dir.path(), &hash);
    assert!(entries.contains(&artifact), "{entries:?}");
    let digest = artifact.with_file_name("sha256");
    assert_eq!(
        std::fs::read_to_string(&digest).expect("digest"),
        content_hash(&std::fs::read(&artifact).expect("artifact"))
    );
    let modified = std::fs::metadata(&artifact)
        .and_then(|m| m.modified())
        .expect("mtime");
    // Warm cache: loaded, not rewritten.
    prepare(&engine(Some(dir.path())), &bytes).expect("second");
    let again = std::fs::metadata(&artifact)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(modified, again, "a cached module must not be rewritten");
    assert_eq!(walk(dir.path()).len(), 2);
}

#[test]
fn test_corrupt_cache_entry_is_rebuilt() {
    let (dir, bytes, entry) = cached_once();
    std::fs::write(&entry, b"garbage").expect("corrupt");
    prepare(&engine(Some(dir.path())), &bytes).expect("rebuilt");
    assert_ne!(std::fs::read(&entry).expect("read"), b"garbage");
}

#[test]
fn test_flipped_byte_in_cached_code_is_rebuilt_not_loaded() {
    let (dir, bytes, entry) = cached_once();
    let good = std::fs::read(&entry).expect("read");
    // Same size, valid header: past Wasmtime's own checks, not the digest.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    std::fs::write(&entry, &bad).expect("corrupt");
    prepare(&engine(Some(dir.path())), &bytes).expect("rebuilt");
    assert_eq!(std::fs::read(&entry).expect("read"), good);
}

#[test]
fn test_entry_without_digest_is_rebuilt() {
    let (dir, bytes, entry) = cached_once();
    let digest = entry.with_file_name("sha256");
    std::fs::remove_file(&digest).expect("remove digest");
    prepare(&engine(Some(dir.path())), &bytes).expect("rebuilt");
    assert!(digest.exists());
}

#[test]
fn test_concurrent_first_starts_in_many_shims_all_load_one_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    // One engine per thread, as one per shim process.
    let engines: Vec<_> = (0..4).map(|_| engine(Some(dir.path()))).collect();
    let start = std::sync::Barrier::new(engines.len());
    std::thread::scope(|scope| {
        for engine in &engines {
            let (bytes, start) = (&bytes, &start);
            scope.spawn(move || {
                start.wait();
                prepare(engine, bytes).expect("prepare");
            });
        }
    });
    let entries = walk(dir.path());
    assert_eq!(entries.len(), 2, "one entry, no temp dirs: {entries:?}");
}

/// A cache folder after one prepare of [`COMMAND`]: the folder, the module
/// and its cached artifact.
fn cached_once() -> (tempfile::TempDir, Vec<u8>, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    prepare(&engine(Some(dir.path())), &bytes).expect("first");
    let entry = artifact(dir.path(), &content_hash(&bytes));
    (dir, bytes, entry)
}

/// Where the cache keeps the compiled module for `hash` under `root`.
fn artifact(root: &std::path::Path, hash: &str) -> std::path::PathBuf {
    let tag = std::fs::read_dir(root)
        .expect("root")
        .flatten()
        .next()
        .expect("tag folder")
        .path();
    tag.join(format!("{hash}.d")).join("artifact")
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
