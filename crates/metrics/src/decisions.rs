//! What the decision log's lines count for, in Prometheus's naming
//! conventions (as Gatekeeper's `gatekeeper_validation_request_duration_seconds`):
//!
//! - `edgeshim_policy_decisions_total{action, decision, mode, kind}`
//! - `edgeshim_policy_evaluation_duration_seconds{action}` (histogram)
//! - `edgeshim_policy_denials_total{family}`: each reason of a decision the
//!   policy denied (in audit mode, would have), by its rule family (the tag
//!   before `: `, as `memory` in `memory: memory limit required`); an
//!   evaluation error counts as family `policy-error`
//! - `edgeshim_network_refusals_total{action, by}`: refused addresses,
//!   those the rate limit held back included; `by` is `default` (no rule
//!   matched) or `rule`. On the Wasmtime shim a refusal line's address and
//!   rule are what the container's engine reported, so neither becomes a
//!   label: a hostile module must not be able to make series without end
//!   (an action other than `connect` or `listen` counts as `other`)
//! - `edgeshim_decision_log_lost_lines_total`: lines a shim could not write
//! - `edgeshim_decision_log_unreadable_lines_total`: lines that are not a
//!   decision or a refusal (torn by a crash, or of a newer format)

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    action: String,
    decision: String,
    mode: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    action: String,
    by: String,
}

/// A line of the log, as far as it counts here.
#[derive(Deserialize)]
struct Line {
    action: String,
    decision: String,
    // A decision's fields.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    would_deny: Option<bool>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    eval_us: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    lost: Option<u64>,
    // A refused address's fields.
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    held_back: Option<u64>,
}

fn evaluation_histogram() -> Histogram {
    // 10 µs to about 0.33 s: the example library decides in tens of µs.
    Histogram::new(exponential_buckets(0.00001, 2.0, 16))
}

pub struct DecisionMetrics {
    decisions: Family<DecisionLabels, Counter>,
    evaluation: Family<ActionLabels, Histogram, fn() -> Histogram>,
    denials: Family<FamilyLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    lost: Counter,
    unreadable: Counter,
}

impl DecisionMetrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            decisions: Family::default(),
            evaluation: Family::new_with_constructor(evaluation_histogram),
            denials: Family::default(),
            refusals: Family::default(),
            lost: Counter::default(),
            unreadable: Counter::default(),
        };
        registry.register(
            "edgeshim_policy_decisions",
            "Policy decisions by action, decision, mode and container kind",
            metrics.decisions.clone(),
        );
        registry.register(
            "edgeshim_policy_evaluation_duration_seconds",
            "Time the policy took to decide, by action",
            metrics.evaluation.clone(),
        );
        registry.register(
            "edgeshim_policy_denials",
            "Reasons of denials (or, in audit mode, would-be denials) by rule family",
            metrics.denials.clone(),
        );
        registry.register(
            "edgeshim_network_refusals",
            "Addresses refused to Wasm containers, by action and deciding rule",
            metrics.refusals.clone(),
        );
        registry.register(
            "edgeshim_decision_log_lost_lines",
            "Decision log lines a shim could not write (full disk, read-only mount)",
            metrics.lost.clone(),
        );
        registry.register(
            "edgeshim_decision_log_unreadable_lines",
            "Decision log lines that are neither a decision nor a refusal",
            metrics.unreadable.clone(),
        );
        metrics
    }

    /// Counts one line of the decision log.
    pub fn observe(&self, text: &str) {
        let Ok(line) = serde_json::from_str::<Line>(text) else {
            self.unreadable.inc();
            return;
        };
        if let Some(lost) = line.lost {
            self.lost.inc_by(lost);
        }
        if let Some(rule) = line.rule {
            let action = match line.action.as_str() {
                "connect" | "listen" => line.action,
                _ => "other".into(),
            };
            let by = if rule == "default" { "default" } else { "rule" };
            self.refusals
                .get_or_create(&RefusalLabels {
                    action,
                    by: by.into(),
                })
                .inc_by(1 + line.held_back.unwrap_or(0));
            return;
        }
        let mode = line.mode.unwrap_or_else(|| "enforce".into());
        let denied = line.would_deny.unwrap_or(line.decision == "deny");
        if let Some(us) = line.eval_us {
            self.evaluation
                .get_or_create(&ActionLabels {
                    action: line.action.clone(),
                })
                .observe(us as f64 / 1e6);
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                action: line.action,
                decision: line.decision,
                mode,
                kind: line.kind.unwrap_or_default(),
            })
            .inc();
        if !denied {
            return;
        }
        if line.error.is_some() {
            self.denials
                .get_or_create(&FamilyLabels {
                    family: "policy-error".into(),
                })
                .inc();
            return;
        }
        for reason in &line.reasons {
            let family = reason.split_once(": ").map_or("other", |(tag, _)| tag);
            self.denials
                .get_or_create(&FamilyLabels {
                    family: family.to_string(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(lines: &[&str]) -> String {
        let mut registry = Registry::default();
        let metrics = DecisionMetrics::new(&mut registry);
        for line in lines {
            metrics.observe(line);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn test_decisions_denials_refusals_and_losses_are_counted_by_their_labels() {
        let text = exposition(&[
            r#"{"action":"create","kind":"wasm","decision":"allow","mode":"enforce","reasons":[],"eval_us":30}"#,
            r#"{"action":"create","kind":"wasm","decision":"allow","mode":"enforce","reasons":[],"eval_us":40,"lost":3}"#,
            r#"{"action":"start","kind":"wasm","decision":"deny","mode":"enforce","reasons":["memory: memory limit required","labels: owner missing"],"eval_us":25}"#,
            r#"{"action":"create","kind":"native","decision":"allow","mode":"audit","would_deny":true,"reasons":["wasm-only: native containers are not allowed"],"eval_us":20}"#,
            r#"{"action":"create","kind":"wasm","decision":"deny","mode":"enforce","reasons":["policy error (fail closed): x"],"error":"x","eval_us":9}"#,
            r#"{"action":"connect","container":"c","address":"1.2.3.4:80","rule":"default","decision":"deny","held_back":4}"#,
            r#"{"action":"connect","container":"c","address":"1.2.3.4:81","rule":"10.0.0.0/8:*","decision":"deny"}"#,
            r#"{"action":"made-up-by-a-module","container":"c","address":"x","rule":"anything at all","decision":"deny"}"#,
            "{\"torn",
        ]);
        for expected in [
            r#"edgeshim_policy_decisions_total{action="create",decision="allow",mode="enforce",kind="wasm"} 2"#,
            r#"edgeshim_policy_decisions_total{action="start",decision="deny",mode="enforce",kind="wasm"} 1"#,
            r#"edgeshim_policy_decisions_total{action="create",decision="allow",mode="audit",kind="native"} 1"#,
            r#"edgeshim_policy_denials_total{family="memory"} 1"#,
            r#"edgeshim_policy_denials_total{family="labels"} 1"#,
            r#"edgeshim_policy_denials_total{family="wasm-only"} 1"#,
            r#"edgeshim_policy_denials_total{family="policy-error"} 1"#,
            r#"edgeshim_network_refusals_total{action="connect",by="default"} 5"#,
            r#"edgeshim_network_refusals_total{action="connect",by="rule"} 1"#,
            r#"edgeshim_network_refusals_total{action="other",by="rule"} 1"#,
            "edgeshim_decision_log_lost_lines_total 3",
            "edgeshim_decision_log_unreadable_lines_total 1",
            r#"edgeshim_policy_evaluation_duration_seconds_count{action="create"} 4"#,
            r#"edgeshim_policy_evaluation_duration_seconds_bucket{le="0.00002",action="create"} 2"#,
            r#"edgeshim_policy_evaluation_duration_seconds_bucket{le="0.00004",action="create"} 4"#,
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
    }
}
