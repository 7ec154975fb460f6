//! `edgeshim-policy`, as an operator runs it before deploying a policy.

use std::path::Path;
use std::process::Command;

fn cli(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_edgeshim-policy"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn test_input_prints_the_document_the_shim_builds_from_a_bundle() {
    let bundle = tempfile::tempdir().expect("tempdir");
    let rootfs = bundle.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("mkdir");
    let module = wat::parse_str(r#"(module (func (export "_start")))"#).expect("wat");
    std::fs::write(rootfs.join("m.wasm"), &module).expect("module");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/m.wasm", "--window", "5s"], "env": ["A=1"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/data", "source": "/srv/data", "type": "bind", "options": ["rbind", "ro"]}],
        "annotations": {"io.kubernetes.cri.sandbox-id": "pod1", "io.kubernetes.cri.sandbox-namespace": "line-3"},
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "resources": {"memory": {"limit": 67108864}}
        }
    });
    std::fs::write(bundle.path().join("config.json"), spec.to_string()).expect("spec");
    let dir = bundle.path().display().to_string();
    let input = cli(&["input", &dir, "--id", "c9", "--action", "start"]);
    assert_eq!(input["action"], "start");
    assert_eq!(input["container"]["id"], "c9");
    assert_eq!(input["container"]["kind"], "wasm");
    assert_eq!(input["container"]["module"]["size"], module.len());
    assert_eq!(input["container"]["env"]["A"], "1");
    assert_eq!(input["container"]["mounts"][0]["readonly"], true);
    assert_eq!(input["container"]["resources"]["memory_limit"], 67108864);
    assert_eq!(
        input["container"]["host_network"], true,
        "no network namespace"
    );
    assert_eq!(input["pod"]["namespace"], "line-3");
}

#[test]
fn test_eval_decides_like_the_shim_and_reports_time_and_revision() {
    let cache = tempfile::tempdir().expect("cache");
    let decision = cli(&[
        "eval",
        "--policy",
        &repo("policies/library"),
        "--input",
        &repo("docs/policy/input.example.json"),
        "--cache-dir",
        &cache.path().display().to_string(),
    ]);
    assert!(decision["allow"].is_boolean(), "{decision}");
    assert!(decision["reasons"].is_array(), "{decision}");
    assert_eq!(decision["format"], "rego (rvm)");
    assert!(decision["eval_us"].as_f64().is_some_and(|us| us > 0.0));
    assert_eq!(decision["revision"].as_str().map(str::len), Some(12));
}
