//! A policy's answer, and how it is read out of what the policy returned.

use edgeshim_network::{NetworkGrant, NetworkRules};
use serde::Serialize;

/// The gate's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allow: bool,
    pub reasons: Vec<String>,
    /// Which policy decided: its bundle revision or content hash, or `off`.
    pub revision: String,
    /// What the container may connect to and listen on: the decision's
    /// network section, else policy.toml's `network_default`; everything
    /// with the gate off or in audit mode.
    pub network: NetworkGrant,
}

/// What a policy's value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAnswer {
    pub allow: bool,
    pub reasons: Vec<String>,
    /// The `network` section, if the decision has one.
    pub network: Option<NetworkRules>,
}

/// Reads `{"allow": bool, "reasons": [string], "network": {...}}` (network
/// optional, see edgeshim-network) from a policy's value. OPA Wasm result
/// sets (`[{"result": value}]`) are unwrapped first. Anything else, a
/// network section that does not parse included, is an error naming what
/// was wrong, so that the fail mode applies.
pub fn read_output(value: &serde_json::Value) -> Result<PolicyAnswer, String> {
    let value = match value {
        serde_json::Value::Array(results) => match results.as_slice() {
            [] => return Err("the policy's decision is undefined".into()),
            [first, ..] => first
                .get("result")
                .ok_or_else(|| format!("result set without a result: {}", clip(first)))?,
        },
        other => other,
    };
    let object = value
        .as_object()
        .ok_or_else(|| format!("the decision is not an object: {}", clip(value)))?;
    let allow = object
        .get("allow")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| format!("the decision has no boolean allow: {}", clip(value)))?;
    let reasons = match object.get("reasons") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(other) => {
            return Err(format!(
                "the decision's reasons are not a list: {}",
                clip(other)
            ));
        }
    };
    let network = match object.get("network") {
        None | Some(serde_json::Value::Null) => None,
        Some(section) => Some(
            serde_json::from_value(section.clone())
                .map_err(|e| format!("the decision's network section: {e}"))?,
        ),
    };
    Ok(PolicyAnswer {
        allow,
        reasons,
        network,
    })
}

/// Reads a load check's value: a set (or list) of problems, each a string;
/// empty when the policy is fit to serve. Result sets are unwrapped as in
/// [`read_output`].
pub fn read_check_output(value: &serde_json::Value) -> Result<Vec<String>, String> {
    let value = match value {
        serde_json::Value::Array(results)
            if results.len() == 1 && results[0].get("result").is_some() =>
        {
            &results[0]["result"]
        }
        other => other,
    };
    let items = value
        .as_array()
        .ok_or_else(|| format!("the check is not a set of problems: {}", clip(value)))?;
    Ok(items
        .iter()
        .map(|item| match item {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect())
}

/// A value's JSON, cut short for an error message.
fn clip(value: &serde_json::Value) -> String {
    let mut text = value.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_check_outputs_are_read_as_problem_lists() {
        assert_eq!(read_check_output(&json!([])), Ok(vec![]));
        assert_eq!(
            read_check_output(&json!([{"result": ["config: x"]}])),
            Ok(vec!["config: x".to_string()])
        );
        assert_eq!(
            read_check_output(&json!(["a", 1])),
            Ok(vec!["a".to_string(), "1".to_string()])
        );
        let err = read_check_output(&json!({"allow": true})).expect_err("not a set");
        assert!(err.contains("not a set of problems"), "{err}");
    }

    #[test]
    fn test_plain_and_result_set_outputs_are_read() {
        let plain = json!({"allow": false, "reasons": ["a", "b"]});
        let read = |v: &serde_json::Value| read_output(v).map(|a| (a.allow, a.reasons));
        assert_eq!(read(&plain), Ok((false, vec!["a".into(), "b".into()])));
        let set = json!([{"result": {"allow": true, "reasons": []}}]);
        assert_eq!(read(&set), Ok((true, vec![])));
        assert_eq!(read(&json!({"allow": true})), Ok((true, vec![])));
        assert_eq!(
            read_output(&json!({"allow": true})).map(|a| a.network),
            Ok(None)
        );
    }

    #[test]
    fn test_a_network_section_is_read() {
        let answer = read_output(&json!({
            "allow": true,
            "network": {"connect": ["10.20.0.0/16:1883"], "listen": ["*:1883"]}
        }))
        .expect("an answer");
        let network = answer.network.expect("a section");
        assert_eq!(network.connect.len(), 1);
        assert_eq!(network.listen[0].to_string(), "*:1883");
    }

    #[test]
    fn test_malformed_outputs_are_errors_that_say_what_is_wrong() {
        let cases = [
            (json!([]), "undefined"),
            (json!([{"x": 1}]), "without a result"),
            (json!("yes"), "not an object"),
            (json!({"allow": "yes"}), "no boolean allow"),
            (json!({"allow": true, "reasons": "x"}), "not a list"),
            (
                json!({"allow": true, "network": {"connect": ["10.0.0.0/33:1883"]}}),
                "network section: network rule \"10.0.0.0/33:1883\": 10.0.0.0/33 is not a CIDR network",
            ),
            (
                json!({"allow": true, "network": {"connect": ["*:70000"]}}),
                "port 70000 is not in 1-65535",
            ),
            (
                json!({"allow": true, "network": ["*:1883"]}),
                "network section",
            ),
        ];
        for (value, expected) in cases {
            let err = read_output(&value).expect_err("malformed");
            assert!(err.contains(expected), "{value}: {err}");
        }
    }
}
