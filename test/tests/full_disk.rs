//! The shims' module cache and the decision log on a full filesystem (a
//! small tmpfs, then filled): a container of a module no shim has seen
//! still starts (compiled again in memory), the failed write is logged, and
//! no partial entry is left behind; decisions go on with the log full, the
//! loss is logged and counted in the next line written.
//!
//! A test binary of its own: it hides the cache every test shares and
//! points the gate's log elsewhere.

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

/// Mounts a tmpfs of `size` over `dir` and fills it: the next write
/// anywhere in it fails with ENOSPC. Returns the guard and the filler file.
fn full_tmpfs<'a>(dir: &'a Path, size: &str) -> (Mounted<'a>, std::path::PathBuf) {
    std::fs::create_dir_all(dir).expect("dir");
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "edgeshim-full",
        ])
        .arg(dir)
        .status()
        .expect("mount");
    assert!(status.success(), "mount a tmpfs over {}", dir.display());
    let mounted = Mounted(dir);
    let path = dir.join("filler");
    let mut filler = std::fs::File::create(&path).expect("filler");
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
    (mounted, path)
}

#[test]
fn test_a_full_cache_filesystem_costs_a_compile_not_a_start() {
    let cache = cache_dir();
    let (_mounted, _) = full_tmpfs(&cache, "256k");

    // A module no shim has compiled (its own bytes, so its own hash).
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("fresh.wasm");
    let line = format!(
        "started on a full disk, test process {}\n",
        std::process::id()
    );
    let bytes = module_printing(&line);
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

/// Puts the gate's config back when dropped.
struct RestoreConfig(std::path::PathBuf, Vec<u8>);

impl Drop for RestoreConfig {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

#[test]
fn test_a_full_decision_log_filesystem_loses_lines_not_decisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_mounted, filler) = full_tmpfs(dir.path(), "64k");
    let log = dir.path().join("decisions.log");
    let config = std::path::PathBuf::from(
        std::env::var_os("EDGESHIM_POLICY_CONFIG").expect("EDGESHIM_POLICY_CONFIG"),
    );
    let text = std::fs::read(&config).expect("policy.toml");
    let _restore = RestoreConfig(config.clone(), text.clone());
    let moved: String = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| {
            if l.starts_with("path =") {
                format!("path = {:?}\n", log.display().to_string())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&config, moved).expect("point the log at the full disk");

    // One pod's shim serves every container below: a pause, then Wasm
    // containers joining it (the lost count is the shim's).
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=full-log-pod";
    let out = run_detached("full-log-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_rm("full-log-1", PROBE_IMAGE, &[pod], &["/probe.wasm", "hello"]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    assert_no_leftovers("full-log-1");
    // The loss is in the shim's log, naming the file.
    let warning = format!("decision log {}: ", log.display());
    assert!(
        containerd_log()
            .lines()
            .any(|l| l.contains(&warning) && l.contains("line(s) lost")),
        "no warning names {}",
        log.display()
    );
    // Room again: the next line carries the count of those lost.
    std::fs::remove_file(&filler).expect("free the disk");
    let out = run_rm("full-log-2", PROBE_IMAGE, &[pod], &["/probe.wasm", "hello"]);
    assert_eq!(stdout(&out), "hello from wasm\n", "{}", stderr(&out));
    assert_no_leftovers("full-log-2");
    kill_and_remove("full-log-pod");
    assert_no_leftovers("full-log-pod");
    let written = std::fs::read_to_string(&log).expect("the log, written again");
    let first: serde_json::Value =
        serde_json::from_str(written.lines().next().expect("a line")).expect("json");
    assert!(first["lost"].as_u64().is_some_and(|n| n >= 4), "{written}");
}
