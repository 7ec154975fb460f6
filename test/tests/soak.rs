//! A short soak through CRI under the example library (its own test binary:
//! it points the shared gate at the library for its run, so no other test
//! may run beside it). The full-size run is `hack/bench.sh soak`
//! (RELIABILITY.md); here every count must already be exactly flat once
//! warm, every cycle's exit code right, the library's refusals due, the
//! decision log rotating within its cap, and nothing left at the end.

use std::process::Command;

use edgeshim_integration::*;

#[test]
fn test_a_short_soak_under_the_example_library_leaks_nothing() {
    let out = tempfile::tempdir().expect("tempdir");
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/library");
    let output = Command::new(workspace_binary("edgeshim-bench"))
        .args(["soak", "-n", "120", "--handler", engine().name])
        .args(["--pods", "2", "--pod-every", "30", "--deny-every", "10"])
        .args(["--sample-every", "20", "--steady-from", "40"])
        .args(["--log-max-bytes", "8192", "--rss-not-judged"])
        .arg("--library")
        .arg(&library)
        .arg("--out")
        .arg(out.path())
        .env("EDGESHIM_CONTAINERD_ADDRESS", address())
        .output()
        .expect("run edgeshim-bench (cargo build --workspace first)");
    let text = std::fs::read_to_string(out.path().join("soak.json")).unwrap_or_default();
    assert!(output.status.success(), "soak: {}\n{text}", stderr(&output));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("soak.json");
    let r = &doc["results"][0];
    assert_eq!(r["pass"], true, "{r}");
    assert_eq!(
        (r["completed"].as_u64(), r["failures"].as_u64()),
        (Some(120), Some(0))
    );
    assert_eq!(r["refused_as_due"], 12, "every 10th cycle's refusal");
    assert_eq!(r["pods_along_the_way"], 4);
    assert_eq!(r["leftovers"].as_array().map(Vec::len), Some(0), "{r}");
    let flat = r["flat"].as_array().expect("flat");
    // The node's 4 counts, and descriptors and threads of containerd and of
    // 3 pods' shims and launchers (2 owned, 1 unowned).
    assert_eq!(flat.len(), 4 + 2 * 7, "{flat:?}");
    assert!(flat.iter().all(|f| f["flat"] == true), "{flat:?}");
    // RSS fitted for every process sampled: all but the unowned pod's
    // launcher, which is never running.
    assert_eq!(r["rss"].as_array().map(Vec::len), Some(6));
    let samples = r["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 6);
    // The unowned pod's launcher stopped (nothing to launch) and stayed so.
    for s in samples {
        let launcher = s["processes"]
            .as_array()
            .and_then(|p| {
                p.iter().find(|p| {
                    p["role"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("launcher soak-unowned"))
                })
            })
            .expect("unowned launcher role");
        assert!(launcher["sample"].is_null(), "{launcher}");
    }
    // The log rotated at its small cap, keeping two old files.
    let last = samples.last().expect("a sample");
    assert_eq!(last["decision_log_files"], 3, "{last}");
    assert!(
        last["decision_log_bytes"].as_u64() <= r["decision_log_cap"].as_u64(),
        "{last}"
    );
}
