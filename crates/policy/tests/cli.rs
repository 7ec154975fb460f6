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

/// A policy bundle as an operator ships it: the example library with its
/// data (`data` replaces data.json when given) and a policy.toml with the
/// library's load check, logging to `decisions.log` (inputs too) beside it.
fn library_bundle(data: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).expect("mkdir");
    for entry in std::fs::read_dir(repo("policies/library")).expect("library") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rego" | "json")
        ) {
            std::fs::copy(&path, policy.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    if let Some(data) = data {
        std::fs::write(policy.join("data.json"), data).expect("data.json");
    }
    std::fs::write(
        dir.path().join("policy.toml"),
        "policy = \"policy\"\ncheck = \"edgeshim/config_errors\"\ncache_dir = \"cache\"\n\
         budget_ms = 2000\n[decision_log]\npath = \"decisions.log\"\nlog_inputs = true\n\
         keep_env = [\"SITE\"]\n",
    )
    .expect("policy.toml");
    dir
}

/// The example input with `change` applied.
fn example(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let text = std::fs::read_to_string(repo("docs/policy/input.example.json")).expect("example");
    let mut input: serde_json::Value = serde_json::from_str(&text).expect("json");
    change(&mut input);
    input
}

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeshim-policy"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn test_verify_passes_a_good_bundle_and_fails_a_wrong_expectation_or_bad_settings() {
    let bundle = library_bundle(None);
    let config = bundle.path().join("policy.toml").display().to_string();
    let cases = bundle.path().join("cases.jsonl");
    let lines = [
        serde_json::json!({"input": example(|_| {}), "allow": true}),
        serde_json::json!({
            "input": example(|i| i["container"]["kind"] = "native".into()),
            "allow": false,
            "reasons": ["wasm-only: native containers are not allowed (entrypoint \"/app/sensor-agg.wasm\")"],
        }),
        serde_json::json!({
            "input": example(|i| i["container"]["resources"]["memory_limit"] = serde_json::Value::Null),
            "allow": false,
        }),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&cases, &text).expect("cases");
    let out = run_cli(&[
        "verify",
        "--config",
        &config,
        "--cases",
        &cases.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 3 cases as expected"));

    // A wrong expectation: exit 1, the case named by its line.
    let wrong = format!(
        "{text}{}\n",
        serde_json::json!({"input": example(|_| {}), "allow": false})
    );
    std::fs::write(&cases, wrong).expect("cases");
    let out = run_cli(&[
        "verify",
        "--config",
        &config,
        "--cases",
        &cases.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let mismatch: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one mismatch line");
    assert_eq!(
        (mismatch["line"].as_u64(), mismatch["allow"].as_bool()),
        (Some(4), Some(true))
    );

    // Settings the load check refuses: an error naming the problem, exit 2.
    let bad = library_bundle(Some(
        r#"{"edgeshim_config": {"allowed_registries": ["no-slash"]}}"#,
    ));
    let config = bad.path().join("policy.toml").display().to_string();
    let out = run_cli(&["verify", "--config", &config]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("check edgeshim/config_errors refused it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `diff --exit-code` of `log` under `config`, which must exit `code`.
fn diff_exit_code(config: &Path, log: &Path, code: i32) -> std::process::Output {
    let out = run_cli(&[
        "diff",
        "--config",
        &config.display().to_string(),
        "--log",
        &log.display().to_string(),
        "--exit-code",
    ]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn test_diff_decides_recorded_inputs_again_and_prints_what_would_change() {
    // Decisions recorded by the gate with the shipped library, inputs on.
    let old = library_bundle(None);
    let gate = edgeshim_policy::PolicyGate::new(&old.path().join("policy.toml"))
        .keeping_last_good_in(&old.path().join("node"));
    let small = example(|i| i["container"]["resources"]["memory_limit"] = (64 << 20).into());
    let large = example(|i| i["container"]["resources"]["memory_limit"] = (200 << 20).into());
    for input in [&small, &large] {
        let input: edgeshim_policy::DecisionInput =
            serde_json::from_value(input.clone()).expect("an input");
        assert!(edgeshim_policy::Gate::decide(&gate, &input).allow);
    }
    let log = old.path().join("decisions.log");
    let recorded = std::fs::read_to_string(&log).expect("the log");
    assert!(
        recorded.contains("\"SITE\":\"line-3\"") && recorded.contains("\"PATH\":\"<redacted>\"")
    );

    // The new library caps memory at 128 MiB: the large container changes.
    let text = std::fs::read_to_string(repo("policies/library/data.json")).expect("data");
    let lower = text.replace("268435456", "134217728");
    assert_ne!(lower, text);
    let new = library_bundle(Some(&lower));
    let out = diff_exit_code(&new.path().join("policy.toml"), &log, 1);
    let changes: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a change line"))
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0]["was_allow"].as_bool(),
            changes[0]["now_allow"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        changes[0]["now_reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("memory:"))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 decisions read, 2 with their input"));

    // The same library again: nothing changes, exit 0.
    let out = diff_exit_code(&old.path().join("policy.toml"), &log, 0);
    assert!(out.stdout.is_empty());
}
