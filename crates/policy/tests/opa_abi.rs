//! The OPA Wasm ABI host against hand-written WAT modules that implement
//! OPA's exports (fixtures/opa-abi, see its README): both evaluation paths,
//! data, builtins, every way a module can be wrong, and the budget.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeshim_policy::{LoadedPolicy, PolicyFormat};
use serde_json::json;

const ENTRYPOINT: &str = "edgeshim/decision";
/// Whether this build's OPA Wasm host is WasmEdge's (built with only the
/// `wasmedge` feature), which implements no host builtins.
const ON_WASMEDGE: bool = cfg!(all(feature = "wasmedge", not(feature = "wasmtime")));
const BUDGET: Duration = Duration::from_millis(200);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opa-abi")
        .join(name)
}

/// A policy folder holding the fixture as policy.wasm and `data` as data.json.
fn policy_dir(name: &str, data: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = wat::parse_file(fixture(name)).expect("fixture compiles");
    std::fs::write(dir.path().join("policy.wasm"), wasm).expect("write");
    std::fs::write(dir.path().join("data.json"), data.to_string()).expect("write");
    dir
}

fn load(name: &str, data: serde_json::Value, entrypoint: &str) -> Result<LoadedPolicy, String> {
    let dir = policy_dir(name, data);
    let cache = tempfile::tempdir().expect("cache");
    LoadedPolicy::load(dir.path(), entrypoint, cache.path())
}

fn decide(
    policy: &mut LoadedPolicy,
    input: serde_json::Value,
) -> Result<(bool, Vec<String>), String> {
    policy
        .decide(&input, BUDGET)
        .0
        .map(|answer| (answer.allow, answer.reasons))
}

fn container(kind: &str) -> serde_json::Value {
    json!({"action": "create", "container": {"id": "c1", "kind": kind}})
}

fn assert_decides_like_the_example_policy(name: &str, data_denies: bool) {
    let mut policy = load(name, json!({"deny_all": false}), ENTRYPOINT).expect("loads");
    assert_eq!(policy.format, PolicyFormat::Wasm);
    assert_eq!(decide(&mut policy, container("wasm")), Ok((true, vec![])));
    assert_eq!(
        decide(&mut policy, container("native")),
        Ok((
            false,
            vec!["wasm-only: native containers are not allowed".into()]
        ))
    );
    // Many evaluations on one instance: the heap is reused, not exhausted.
    for _ in 0..200 {
        assert!(decide(&mut policy, container("wasm")).is_ok_and(|(allow, _)| allow));
    }
    if data_denies {
        let mut policy = load(name, json!({"deny_all": true}), ENTRYPOINT).expect("loads");
        assert_eq!(
            decide(&mut policy, container("wasm")),
            Ok((false, vec!["deny_all is set".into()]))
        );
    }
}

#[test]
fn test_abi_1_2_policy_decides_through_the_opa_eval_fast_path() {
    assert_decides_like_the_example_policy("decision-abi-1.2.wat", true);
}

#[test]
fn test_abi_1_1_policy_decides_through_eval_contexts() {
    assert_decides_like_the_example_policy("decision-abi-1.1.wat", true);
}

#[test]
fn test_entrypoints_are_chosen_by_name() {
    assert_decides_like_the_example_policy("two-entrypoints.wat", false);
    let mut other = load("two-entrypoints.wat", json!({}), "edgeshim/other").expect("loads");
    assert_eq!(
        decide(&mut other, container("native")),
        Ok((true, vec!["other entrypoint".into()]))
    );
}

#[test]
fn test_missing_entrypoint_is_refused_listing_the_ones_there() {
    let err = load("decision-abi-1.2.wat", json!({}), "nope/rule").expect_err("refused");
    assert!(err.contains("no entrypoint nope/rule"), "{err}");
    assert!(err.contains("(it has: edgeshim/decision)"), "{err}");
}

#[test]
fn test_unsupported_abi_version_is_refused() {
    let err = load("abi-2.0.wat", json!({}), ENTRYPOINT).expect_err("refused");
    assert!(err.contains("unsupported ABI version 2.0"), "{err}");
}

#[test]
fn test_module_missing_an_abi_export_is_refused_naming_it() {
    let err = load("missing-export.wat", json!({}), ENTRYPOINT).expect_err("refused");
    assert!(err.contains("missing exports opa_json_dump"), "{err}");
}

#[test]
fn test_builtins_the_host_lacks_are_all_named_at_load() {
    let err = load("unknown-builtins.wat", json!({}), ENTRYPOINT).expect_err("refused");
    assert!(
        err.contains(
            "builtins edgeshim does not implement: another.missing, edgeshim.no_such_builtin"
        ),
        "{err}"
    );
}

#[test]
fn test_a_host_builtin_is_called_with_its_arguments() {
    if ON_WASMEDGE {
        let err = load("known-builtin.wat", json!({}), ENTRYPOINT).expect_err("refused");
        assert!(
            err.contains("does not implement: base64url.encode_no_pad"),
            "{err}"
        );
        return;
    }
    let mut policy = load("known-builtin.wat", json!({}), ENTRYPOINT).expect("loads");
    assert_eq!(
        decide(&mut policy, container("wasm")),
        Ok((false, vec!["aGk".into()]))
    );
}

#[test]
fn test_opa_abort_fails_the_evaluation_with_its_message() {
    let mut policy = load("abort.wat", json!({}), ENTRYPOINT).expect("loads");
    let err = decide(&mut policy, container("wasm")).expect_err("aborted");
    assert!(err.contains("edgeshim test abort"), "{err}");
}

#[test]
fn test_malformed_result_is_an_error_not_a_decision() {
    let mut policy = load("malformed-result.wat", json!({}), ENTRYPOINT).expect("loads");
    let err = decide(&mut policy, container("wasm")).expect_err("malformed");
    assert!(err.contains("not an object"), "{err}");
}

#[test]
fn test_a_policy_past_its_budget_is_stopped() {
    let mut policy = load("spin.wat", json!({}), ENTRYPOINT).expect("loads");
    let (outcome, _) = policy.decide(&container("wasm"), Duration::from_millis(20));
    let err = outcome.expect_err("stopped");
    assert!(err.contains("exceeded its budget of 20 ms"), "{err}");
    // The instance cut off mid-way is replaced: the next one is stopped too,
    // rather than resuming a broken state.
    let (outcome, _) = policy.decide(&container("wasm"), Duration::from_millis(20));
    assert!(outcome.is_err_and(|e| e.contains("budget")));
}

/// Wasmtime's compiled policies are cached; WasmEdge interprets them.
#[cfg(feature = "wasmtime")]
#[test]
fn test_compiled_policy_is_cached_and_a_corrupt_entry_is_rebuilt() {
    let dir = policy_dir("decision-abi-1.2.wat", json!({}));
    let cache = tempfile::tempdir().expect("cache");
    LoadedPolicy::load(dir.path(), ENTRYPOINT, cache.path()).expect("first load");
    // One entry: the artifact and its digest.
    let entries: Vec<PathBuf> = walk(cache.path());
    assert_eq!(entries.len(), 2, "{entries:?}");
    let artifact = entries
        .iter()
        .find(|path| path.ends_with("artifact"))
        .expect("artifact");
    let good = std::fs::read(artifact).expect("entry");
    // One byte flipped, header intact: only the digest can tell.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    std::fs::write(artifact, &bad).expect("corrupt");
    let mut policy = LoadedPolicy::load(dir.path(), ENTRYPOINT, cache.path()).expect("reload");
    assert_eq!(decide(&mut policy, container("wasm")), Ok((true, vec![])));
    assert_eq!(std::fs::read(artifact).expect("entry"), good, "rebuilt");
}

#[cfg(feature = "wasmtime")]
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Real `opa build -t wasm -e edgeshim/decision` bundles, when a folder of
/// them is named by `EDGESHIM_OPA_WASM_DIR` (nothing here can build them):
/// each must load and decide the documented example input.
#[test]
#[ignore = "needs EDGESHIM_OPA_WASM_DIR, a folder of `opa build -t wasm` bundles: no opa compiler is reachable here"]
fn test_real_opa_wasm_bundles_load_and_decide() {
    let dir = std::env::var_os("EDGESHIM_OPA_WASM_DIR")
        .expect("set EDGESHIM_OPA_WASM_DIR to a folder of opa-built Wasm bundles");
    let example: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/policy/input.example.json"))
            .expect("example");
    let cache = tempfile::tempdir().expect("cache");
    let mut tried = 0;
    for entry in std::fs::read_dir(&dir)
        .expect("EDGESHIM_OPA_WASM_DIR")
        .flatten()
    {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".tar.gz") {
            continue;
        }
        let mut policy = LoadedPolicy::load(&path, ENTRYPOINT, cache.path())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (outcome, took) = policy.decide(&example, BUDGET);
        let answer = outcome.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (allow, reasons) = (answer.allow, answer.reasons);
        eprintln!(
            "{}: allow={allow} reasons={reasons:?} in {took:?}",
            path.display()
        );
        tried += 1;
    }
    assert!(
        tried > 0,
        "no .tar.gz bundle in {}",
        Path::new(&dir).display()
    );
}
