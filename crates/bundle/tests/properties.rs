//! Property tests on generated input (proptest; no nightly fuzzer exists
//! here): any config.json the shim may be handed, well-formed or not,
//! becomes a bundle and a workload or an error that names the cause;
//! never a panic.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default, what the
//! suite runs; RELIABILITY.md gives a long run's counts).

use edgeshim_bundle::{Bundle, WasiView, Workload};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A string as a hostile request might put it anywhere: empty, with NULs,
/// `..`, very long, or ordinary.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("..".to_string()),
        Just("/../../etc/passwd".to_string()),
        Just("a\0b".to_string()),
        Just("/app.wasm".to_string()),
        Just("/app.wasm#main".to_string()),
        Just("#".to_string()),
        Just("KEY=value".to_string()),
        Just("=".to_string()),
        "\\PC{0,16}",
        "[a-z/]{200,300}",
    ]
}

/// A spec: a well-formed base whose process, mounts, root and resources
/// are replaced by generated values, or dropped.
fn spec() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::collection::vec(field(), 0..4)),
        proptest::option::of(proptest::collection::vec(field(), 0..4)),
        proptest::option::of(field()),
        proptest::collection::vec((field(), field(), any::<bool>()), 0..3),
        proptest::option::of(prop_oneof![
            any::<i64>().prop_map(Value::from),
            Just(Value::String("1G".into())),
            Just(Value::Null),
        ]),
        proptest::option::of(field()),
    )
        .prop_map(|(args, env, cwd, mounts, memory, root)| {
            let mut spec = json!({
                "ociVersion": "1.0.2",
                "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"},
                "root": {"path": "rootfs"},
                "linux": {"namespaces": [{"type": "mount"}]},
            });
            if let Some(args) = args {
                spec["process"]["args"] = json!(args);
            }
            if let Some(env) = env {
                spec["process"]["env"] = json!(env);
            }
            if let Some(cwd) = cwd {
                spec["process"]["cwd"] = json!(cwd);
            }
            spec["mounts"] = mounts
                .into_iter()
                .map(|(destination, source, ro)| {
                    json!({
                        "destination": destination,
                        "source": source,
                        "type": "bind",
                        "options": if ro { vec!["rbind", "ro"] } else { vec!["rbind"] },
                    })
                })
                .collect();
            if let Some(memory) = memory {
                spec["linux"]["resources"] = json!({"memory": {"limit": memory}});
            }
            match root {
                Some(path) if path.is_empty() => {
                    if let Some(spec) = spec.as_object_mut() {
                        spec.remove("root");
                    }
                }
                Some(path) => spec["root"]["path"] = json!(path),
                None => {}
            }
            spec
        })
}

/// A Wasm module with no imports and an empty `_start`.
const MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02,
    0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x00, 0x0a, 0x04,
    0x01, 0x02, 0x00, 0x0b,
];

proptest! {
    #[test]
    fn any_spec_becomes_a_workload_or_a_named_error(spec in spec(), cut_short in any::<bool>()) {
        let dir = tempfile::tempdir().expect("bundle dir");
        std::fs::create_dir_all(dir.path().join("rootfs")).expect("rootfs");
        std::fs::write(dir.path().join("rootfs/app.wasm"), MODULE).expect("module");
        // Half the cases as JSON, half as that JSON cut short.
        let mut config = serde_json::to_vec(&spec).expect("json");
        if cut_short {
            config.truncate(config.len() / 2);
        }
        std::fs::write(dir.path().join("config.json"), &config).expect("config");
        let bundle = match Bundle::load(dir.path()) {
            Ok(bundle) => bundle,
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        let _ = bundle.check_namespaces();
        match bundle.workload(1 << 20) {
            Ok(Workload::Wasm { view, .. }) => {
                // What the engine gets is what the spec says.
                let again = WasiView::from_spec(&bundle.spec).expect("the same spec");
                prop_assert_eq!(view, again);
            }
            Ok(Workload::Native { .. }) => prop_assert!(false, "the only file is a module"),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
