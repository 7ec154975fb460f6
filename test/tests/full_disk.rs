//! The shims' module cache on a full filesystem (a small tmpfs mounted
//! over it, then filled): a container of a module no shim has seen still
//! starts (compiled again in memory), the failed write is logged, and no
//! partial entry is left behind.
//!
//! A test binary of its own: it hides the cache every test shares.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use edgeshim_integration::*;

/// Unmounts the tmpfs when dropped, whatever the test did.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn test_a_full_cache_filesystem_costs_a_compile_not_a_start() {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).expect("cache dir");
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "edgeshim-full",
            &cache.to_string_lossy(),
        ])
        .status()
        .expect("mount");
    assert!(status.success(), "mount a tmpfs over {}", cache.display());
    let _mounted = Mounted(&cache);
    // Fill it: the next write anywhere in it fails with ENOSPC.
    let mut filler = std::fs::File::create(cache.join("filler")).expect("filler");
    let block = vec![0u8; 4096];
    let full = loop {
        if let Err(e) = filler.write_all(&block).and_then(|()| filler.sync_all()) {
            break e;
        }
    };
    assert_eq!(
        full.raw_os_error(),
        Some(nix::errno::Errno::ENOSPC as i32),
        "{full}"
    );

    // A module no shim has compiled (its own bytes, so its own hash).
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("fresh.wasm");
    let line = format!(
        "started on a full disk, test process {}\n",
        std::process::id()
    );
    let escaped: String = line.bytes().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = line.len()
    );
    let bytes = wat::parse_str(&wat).expect("wat");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    std::fs::write(&module, bytes).expect("module");
    let out = run_rm_with_spec(
        "full-cache",
        &[(module, "/fresh.wasm")],
        &["/fresh.wasm"],
        |_| {},
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), line);
    assert_no_leftovers("full-cache");
    // The failed write is logged, naming the module (Wasmtime: its cache
    // entry; WasmEdge: the module, then run by its interpreter).
    let logged = containerd_log().lines().any(|l| {
        l.contains(&hash)
            && (l.contains("cannot write module cache") || l.contains("runs in the interpreter"))
    });
    assert!(logged, "no line names {hash}");
    // Nothing half-written is left for a later shim to trip on.
    let left: Vec<String> = walk(&cache)
        .into_iter()
        .filter(|p| !p.ends_with("filler"))
        .collect();
    assert!(
        left.iter().all(|p| !p.contains(".tmp-")),
        "partial entries left: {left:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}
