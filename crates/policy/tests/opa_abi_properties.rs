//! Fuzzing the OPA Wasm ABI host on the stable toolchain: wasm-smith makes
//! modules with exactly the imports and exports an OPA-built policy has
//! (taken from a fixture), their bodies, globals and data random: version
//! globals with any value, `entrypoints` and `builtins` returning any
//! address, `opa_malloc` and `opa_json_dump` lying, loops that never end,
//! traps. Loading such a module and deciding with it must end in a decision
//! or an error naming the policy, never a panic or a hang: the gate sits
//! on every start.
//!
//! `PROPTEST_CASES` sets the cases (64 by default); RELIABILITY.md gives
//! a long run's counts.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use arbitrary::Unstructured;
use edgeshim_policy::LoadedPolicy;
use proptest::prelude::*;

const ENTRYPOINT: &str = "edgeshim/decision";
const BUDGET: Duration = Duration::from_millis(50);
/// A guard against a hang (a failure), not a speed limit.
const HANG: Duration = Duration::from_secs(60);

/// The imports and exports of an OPA-built module (ABI 1.2).
fn opa_shape() -> Vec<u8> {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opa-abi/decision-abi-1.2.wat");
    wat::parse_file(fixture).expect("fixture compiles")
}

/// A module of OPA's shape from `seed`, or none when the seed runs short.
fn module(shape: &[u8], seed: &[u8]) -> Option<Vec<u8>> {
    // The features OPA's compiler emits (the MVP, bulk memory, sign
    // extension, saturating conversions, multi-value): a module using
    // others is refused at parse, which would leave the host untested.
    let config = wasm_smith::Config {
        module_shape: Some(shape.to_vec()),
        max_memories: 1,
        // Small bodies: each case is compiled; the host is what is tested.
        max_instructions: 200,
        max_funcs: 40,
        exceptions_enabled: false,
        gc_enabled: false,
        custom_descriptors_enabled: false,
        custom_page_sizes_enabled: false,
        reference_types_enabled: false,
        relaxed_simd_enabled: false,
        shared_everything_threads_enabled: false,
        simd_enabled: false,
        tail_call_enabled: false,
        threads_enabled: false,
        wide_arithmetic_enabled: false,
        acquire_release_atomics_enabled: false,
        multibyte_array_access_enabled: false,
        extended_const_enabled: false,
        ..Default::default()
    };
    let mut module = wasm_smith::Module::new(config, &mut Unstructured::new(seed)).ok()?;
    // Loops trap after a while instead of running into the host's budget
    // (5 s at load): the budget has its own fixture (opa_abi.rs), and 10,000
    // cases must fit in a run.
    module.ensure_termination(1_000).ok()?;
    Some(module.to_bytes())
}

/// `wasm` with bytes replaced at `edits` (position, new byte): the real
/// module with an immediate, an offset or an opcode changed, so that the
/// host meets a module that works up to some point and then lies.
fn mutated(mut wasm: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    let len = wasm.len();
    for (at, byte) in edits {
        wasm[at % len] = *byte;
    }
    wasm
}

/// Runs load and decide on a thread, so that a hang fails the case.
fn outcome(wasm: Vec<u8>) -> Result<Result<bool, String>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_and_decide(wasm));
    });
    rx.recv_timeout(HANG).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => format!("load or decide hung for {HANG:?}"),
        mpsc::RecvTimeoutError::Disconnected => "the host panicked".to_string(),
    })
}

/// Loads `wasm` as a policy and decides one input with it.
fn load_and_decide(wasm: Vec<u8>) -> Result<bool, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("policy.wasm"), wasm).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("data.json"), "{}").map_err(|e| e.to_string())?;
    let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut policy = LoadedPolicy::load(dir.path(), ENTRYPOINT, cache.path())?;
    let input = serde_json::json!({"action": "create", "container": {"id": "c1", "kind": "wasm"}});
    policy.decide(&input, BUDGET).0.map(|answer| answer.allow)
}

/// A load error names the policy; a decision's names the evaluation (its
/// entrypoint, or its budget) or the part of the decision at fault.
fn names_what_failed(e: &str) -> bool {
    e.starts_with("policy ")
        || ["evaluat", "decision", "result"]
            .iter()
            .any(|w| e.contains(w))
}

/// 64 cases in the suite (each compiles a module: about 0.2 s in a debug
/// build); `PROPTEST_CASES` for long runs (hack/fuzz.sh).
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn any_module_of_opa_shape_decides_or_is_refused_by_name(
        seed in proptest::collection::vec(any::<u8>(), 64..4096)
    ) {
        let Some(wasm) = module(&opa_shape(), &seed) else {
            return Ok(());
        };
        match outcome(wasm) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => prop_assert!(names_what_failed(&e), "an error naming nothing: {}", e),
            Err(failure) => prop_assert!(false, "{}", failure),
        }
    }

    #[test]
    fn any_byte_mutation_of_an_opa_module_decides_or_is_refused_by_name(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
    ) {
        match outcome(mutated(opa_shape(), &edits)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => prop_assert!(names_what_failed(&e), "an error naming nothing: {}", e),
            Err(failure) => prop_assert!(false, "{}", failure),
        }
    }
}
