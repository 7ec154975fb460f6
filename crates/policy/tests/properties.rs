//! Property tests on generated input (proptest; no nightly fuzzer exists
//! here): reading a policy's decision out of any JSON value, and parsing
//! any policy.toml, never panic, and every error names what was wrong.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default, what the
//! suite runs; RELIABILITY.md gives a long run's counts).

use std::path::Path;

use edgeshim_policy::config::PolicyConfig;
use edgeshim_policy::read_output;
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested a few levels, biased toward the decision's own
/// keys so that deep paths are reached.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("10.0.0.0/8:1883".into())),
        Just(Value::String("*:*".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("allow".to_string()),
            Just("reasons".to_string()),
            Just("network".to_string()),
            Just("connect".to_string()),
            Just("listen".to_string()),
            Just("result".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_is_a_decision_or_a_named_error(value in json()) {
        match read_output(&value) {
            Ok(answer) => {
                let decision = match &value {
                    Value::Array(results) => &results[0]["result"],
                    other => other,
                };
                prop_assert_eq!(Some(answer.allow), decision["allow"].as_bool());
            }
            Err(e) => prop_assert!(
                ["decision", "result"].iter().any(|w| e.contains(w)),
                "an error that names nothing: {}", e
            ),
        }
    }
}

/// A policy.toml line: a known key (or an unknown one) with a value of a
/// fitting or unfitting type.
fn config_line() -> impl Strategy<Value = (String, String)> {
    let key = prop_oneof![
        Just("mode"),
        Just("fail"),
        Just("policy"),
        Just("entrypoint"),
        Just("check"),
        Just("budget_ms"),
        Just("max_input_bytes"),
        Just("max_module_bytes"),
        Just("cache_dir"),
        Just("network_default"),
        Just("unknown_key"),
    ];
    let value = prop_oneof![
        Just("\"enforce\"".to_string()),
        Just("\"audit\"".to_string()),
        Just("\"closed\"".to_string()),
        Just("\"deny\"".to_string()),
        Just("\"allow\"".to_string()),
        Just("\"p.rego\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[a-z]{0,8}\"",
        Just("[1, 2]".to_string()),
    ];
    (key.prop_map(str::to_string), value)
}

proptest! {
    #[test]
    fn any_config_parses_or_its_error_names_the_key(
        lines in proptest::collection::vec(config_line(), 0..6)
    ) {
        let mut seen = std::collections::HashSet::new();
        let text: String = lines
            .iter()
            .filter(|(key, _)| seen.insert(key.clone()))
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect();
        if let Err(e) = PolicyConfig::parse(&text, Path::new("/etc/edgeshim")) {
            let named = seen.iter().any(|key| e.contains(key.as_str()));
            prop_assert!(named, "{} names no key of:\n{}", e, text);
        }
    }

    #[test]
    fn any_text_as_a_config_never_panics(text in "\\PC{0,80}") {
        let _ = PolicyConfig::parse(&text, Path::new("/etc/edgeshim"));
    }
}
