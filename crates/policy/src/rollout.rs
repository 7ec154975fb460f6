//! Offline-safe policy roll-out, for `edgeshim-policy verify` and `diff`:
//! a policy bundle is checked before it ships (its config parses, its
//! policy loads and passes its own load check, and it decides a file of
//! cases as expected), and a recorded decision log is decided again with
//! a new policy to show which decisions would change.
//!
//! Everything here reads files and evaluates; it never touches the node's
//! gate, its last good copy or its log.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::eval::{LoadedPolicy, WasmHost};

/// One case of a verify file (a JSON line): an input and what the policy
/// must decide for it; `reasons`, when given, must match exactly (as a set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub input: serde_json::Value,
    pub allow: bool,
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
}

/// A case the policy decided otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// 1-based line of the cases file.
    pub line: usize,
    pub expected_allow: bool,
    pub expected_reasons: Option<Vec<String>>,
    pub allow: Option<bool>,
    pub reasons: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub revision: String,
    pub cases: usize,
    pub mismatches: Vec<Mismatch>,
}

/// The config at `config_path` and the policy it names, loaded as a shim
/// would load them (its check included), compiled into a private cache.
fn load(config_path: &Path) -> Result<(PolicyConfig, LoadedPolicy), String> {
    let config = PolicyConfig::load(config_path)?;
    let policy = config
        .policy
        .clone()
        .ok_or_else(|| format!("policy config {}: no policy", config_path.display()))?;
    let cache = tempfile::tempdir().map_err(|e| format!("a cache folder: {e}"))?;
    let loaded = LoadedPolicy::load_checked(
        WasmHost::for_this_build(),
        &policy,
        &config.entrypoint,
        config.check.as_deref(),
        cache.path(),
    )?;
    Ok((config, loaded))
}

fn sorted(mut reasons: Vec<String>) -> Vec<String> {
    reasons.sort();
    reasons
}

/// Loads the config and its policy, then decides every case of `cases`
/// (JSON lines; blank lines skipped).
pub fn verify(config_path: &Path, cases: Option<&Path>) -> Result<VerifyReport, String> {
    let (config, mut policy) = load(config_path)?;
    let budget = Duration::from_millis(config.budget_ms);
    let mut report = VerifyReport {
        revision: policy.revision.clone(),
        cases: 0,
        mismatches: Vec::new(),
    };
    let Some(cases) = cases else {
        return Ok(report);
    };
    let file = std::fs::File::open(cases).map_err(|e| format!("{}: {e}", cases.display()))?;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", cases.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: {e}", cases.display(), index + 1))?;
        report.cases += 1;
        let expected_reasons = case.reasons.clone().map(sorted);
        let (allow, reasons, error) = match policy.decide(&case.input, budget).0 {
            Ok(answer) => (Some(answer.allow), sorted(answer.reasons), None),
            Err(e) => (None, Vec::new(), Some(e)),
        };
        let as_expected =
            allow == Some(case.allow) && expected_reasons.as_ref().is_none_or(|r| *r == reasons);
        if !as_expected {
            report.mismatches.push(Mismatch {
                line: index + 1,
                expected_allow: case.allow,
                expected_reasons,
                allow,
                reasons,
                error,
            });
        }
    }
    Ok(report)
}

/// A recorded decision that the new policy decides otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub log: PathBuf,
    pub line: usize,
    pub time: String,
    pub action: String,
    pub container: String,
    pub pod: Option<String>,
    /// What the recorded policy decided (in audit mode, what it would have).
    pub was_allow: bool,
    pub was_reasons: Vec<String>,
    pub was_revision: String,
    pub now_allow: Option<bool>,
    pub now_reasons: Vec<String>,
    pub now_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub revision: String,
    /// Decision lines read.
    pub decisions: usize,
    /// Of those, lines that carried their input (decided again).
    pub with_input: usize,
    pub changes: Vec<Change>,
}

/// A line of the decision log, as far as `diff` reads it.
#[derive(Debug, Deserialize)]
struct Recorded {
    #[serde(default)]
    time: String,
    action: String,
    container: String,
    #[serde(default)]
    pod: Option<String>,
    decision: String,
    #[serde(default)]
    would_deny: Option<bool>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// Decides every recorded decision of `logs` that carries its input again
/// with the policy of `config_path`; network refusals and other lines are
/// skipped.
pub fn diff(config_path: &Path, logs: &[PathBuf]) -> Result<DiffReport, String> {
    let (config, mut policy) = load(config_path)?;
    let budget = Duration::from_millis(config.budget_ms);
    let mut report = DiffReport {
        revision: policy.revision.clone(),
        decisions: 0,
        with_input: 0,
        changes: Vec::new(),
    };
    for log in logs {
        let file = std::fs::File::open(log).map_err(|e| format!("{}: {e}", log.display()))?;
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", log.display()))?;
            // Network refusal lines and torn lines are not decisions.
            let Ok(recorded) = serde_json::from_str::<Recorded>(&line) else {
                continue;
            };
            report.decisions += 1;
            let Some(input) = &recorded.input else {
                continue;
            };
            report.with_input += 1;
            let was_allow = match recorded.would_deny {
                Some(would_deny) => !would_deny,
                None => recorded.decision == "allow",
            };
            let was_reasons = sorted(recorded.reasons.clone());
            let (now_allow, now_reasons, now_error) = match policy.decide(input, budget).0 {
                Ok(answer) => (Some(answer.allow), sorted(answer.reasons), None),
                Err(e) => (None, Vec::new(), Some(e)),
            };
            if now_allow != Some(was_allow) || now_reasons != was_reasons {
                report.changes.push(Change {
                    log: log.clone(),
                    line: index + 1,
                    time: recorded.time,
                    action: recorded.action,
                    container: recorded.container,
                    pod: recorded.pod,
                    was_allow,
                    was_reasons,
                    was_revision: recorded.revision,
                    now_allow,
                    now_reasons,
                    now_error,
                });
            }
        }
    }
    Ok(report)
}
