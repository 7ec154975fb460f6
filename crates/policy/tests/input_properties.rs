//! Property tests for the policy input builder: any spec the shim accepts
//! (generated annotations, including the CRI ones a request may claim,
//! resources and namespaces) becomes an input document whose facts are
//! the shim's (the kind is `sandbox` only when the shim says so, never
//! because an annotation claims it), whose claims are copied as they were,
//! and which survives JSON both ways; any bytes as an update's resources
//! become an update input or an error naming the resources.
//!
//! `PROPTEST_CASES` sets the cases (256 by default).

use std::collections::BTreeMap;

use edgeshim_bundle::Bundle;
use edgeshim_policy::{Action, ContainerKind, DecisionInput, ShimFacts};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Annotation keys: the CRI ones a request may set to claim anything, and
/// others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("io.kubernetes.cri.container-type".to_string()),
        Just("io.kubernetes.cri.sandbox-id".to_string()),
        Just("io.kubernetes.cri.sandbox-name".to_string()),
        Just("io.kubernetes.cri.sandbox-namespace".to_string()),
        Just("io.kubernetes.cri.image-name".to_string()),
        Just("edgeshim.io/host-network".to_string()),
        "[a-z./-]{1,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sandbox".to_string()),
        Just("container".to_string()),
        Just("c1".to_string()),
        "\\PC{0,12}",
    ]
}

#[derive(Debug, Clone)]
struct Case {
    annotations: BTreeMap<String, String>,
    memory: Option<i64>,
    cpu: Option<(i64, u64)>,
    wasm: bool,
    own_sandbox: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::btree_map(key(), value(), 0..6),
        proptest::option::of(any::<i64>()),
        proptest::option::of((any::<i64>(), any::<u64>())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(annotations, memory, cpu, wasm, own_sandbox)| Case {
            annotations,
            memory,
            cpu,
            wasm,
            own_sandbox,
        })
}

/// The bundle folder for `case`: its spec and an entrypoint of its kind.
fn bundle(case: &Case) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
    let entry: &[u8] = if case.wasm {
        b"\0asm\x01\0\0\0"
    } else {
        b"\x7fELF...."
    };
    std::fs::write(dir.path().join("rootfs/entry"), entry).expect("entry");
    let mut resources = json!({});
    if let Some(limit) = case.memory {
        resources["memory"] = json!({ "limit": limit });
    }
    if let Some((quota, period)) = case.cpu {
        resources["cpu"] = json!({ "quota": quota, "period": period });
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["/entry"], "user": {"uid": 0, "gid": 0}},
        "annotations": case.annotations,
        "linux": {
            "resources": resources,
            "namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}]
        },
    });
    std::fs::write(dir.path().join("config.json"), spec.to_string()).expect("spec");
    let bundle = Bundle::load(dir.path()).expect("a valid spec");
    (dir, bundle)
}

proptest! {
    #[test]
    fn any_spec_becomes_an_input_of_the_shims_facts_and_the_requests_claims(case in case()) {
        let (_dir, bundle) = bundle(&case);
        let workload = bundle.workload(1 << 20).expect("workload");
        let facts = ShimFacts { own_sandbox: case.own_sandbox };
        let input = DecisionInput::from_bundle(Action::Create, "c1", &bundle, &workload, &facts);
        let kind = match (case.own_sandbox, case.wasm) {
            (true, _) => ContainerKind::Sandbox,
            (false, true) => ContainerKind::Wasm,
            (false, false) => ContainerKind::Native,
        };
        prop_assert_eq!(input.container.kind, kind);
        prop_assert_eq!(&input.container.annotations, &case.annotations);
        prop_assert_eq!(input.container.resources.memory_limit, case.memory);
        prop_assert_eq!(input.container.resources.cpu_quota, case.cpu.map(|c| c.0));
        prop_assert_eq!(input.container.module.is_some(), case.wasm);
        let text = serde_json::to_string(&input).expect("serializes");
        let back: DecisionInput = serde_json::from_str(&text).expect("parses back");
        prop_assert_eq!(serde_json::to_value(&back).ok(), serde_json::to_value(&input).ok());
    }

    #[test]
    fn any_update_resources_become_an_update_input_or_a_named_error(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<Option<i64>>().prop_map(|m| json!({"memory": {"limit": m}}).to_string().into_bytes()),
        ]
    ) {
        let case = Case { annotations: BTreeMap::new(), memory: Some(1 << 20), cpu: None, wasm: true, own_sandbox: false };
        let (_dir, bundle) = bundle(&case);
        let workload = bundle.workload(1 << 20).expect("workload");
        let created = DecisionInput::from_bundle(Action::Create, "c1", &bundle, &workload, &ShimFacts::default());
        match created.for_update(&bytes) {
            Ok(update) => {
                prop_assert_eq!(update.action, Action::Update);
                let requested: Value = serde_json::from_slice(&bytes).expect("it parsed");
                let limit = requested["memory"]["limit"].as_i64().or(Some(1 << 20));
                prop_assert_eq!(update.container.resources.memory_limit, limit);
            }
            Err(e) => prop_assert!(e.contains("resources"), "{}", e),
        }
    }
}
