//! Engine tests on WAT modules; `run` is exercised by the integration suite,
//! which runs it in a container process as the shim does.

use super::*;
use crate::cache::content_hash;
use crate::test_modules::COMMAND;

fn prepare(engine: &WasmtimeEngine, bytes: &[u8]) -> Result<InstancePre<ContainerState>> {
    engine.prepare(bytes, &content_hash(bytes))
}

fn engine(cache: Option<&std::path::Path>) -> WasmtimeEngine {
    WasmtimeEngine::new(EngineConfig {
        cache_dir: cache.map(std::path::Path::to_path_buf),
        single_threaded: false,
    })
    .expect("engine")
}

#[test]
fn test_invalid_module_is_refused_with_reason() {
    let err = prepare(&engine(None), b"\0asm\x01\0\0\0\x01\xff")
        .err()
        .expect("invalid");
    assert!(matches!(err, EngineError::InvalidModule(_)), "{err}");
}

#[test]
fn test_module_without_start_is_not_a_command() {
    let bytes = wat::parse_str("(module (func (export \"main\")))").expect("wat");
    let err = prepare(&engine(None), &bytes).err().expect("no _start");
    assert!(matches!(err, EngineError::NotACommand(_)), "{err}");
}

#[test]
fn test_unknown_import_is_refused_at_prepare() {
    let bytes = wat::parse_str(r#"(module (import "env" "nope" (func)) (func (export "_start")))"#)
        .expect("wat");
    let err = prepare(&engine(None), &bytes).err().expect("bad import");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn test_compiled_module_is_cached_and_reused_across_engines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    prepare(&engine(Some(dir.path())), &bytes).expect("first");
    let hash = content_hash(&bytes);
    let entries: Vec<_> = walk(dir.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(format!("{hash}.bin")));
    let modified = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    prepare(&engine(Some(dir.path())), &bytes).expect("second");
    let again = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(modified, again, "a cached module must not be rewritten");
}

#[test]
fn test_corrupt_cache_entry_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_str(COMMAND).expect("wat");
    prepare(&engine(Some(dir.path())), &bytes).expect("first");
    let entry = walk(dir.path()).remove(0);
    std::fs::write(&entry, b"garbage").expect("corrupt");
    prepare(&engine(Some(dir.path())), &bytes).expect("rebuilt");
    assert_ne!(std::fs::read(&entry).expect("read"), b"garbage");
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
