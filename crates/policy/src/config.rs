//! The gate's settings: one TOML file.
//!
//! Found at `$EDGESHIM_POLICY_CONFIG`, else [`DEFAULT_CONFIG_PATH`]. With no
//! file there the gate is off (and says so in the shim log); a file that
//! cannot be read or parsed fails closed. A relative `policy` path is taken
//! from the config file's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/edgeshim/policy.toml";
pub const CONFIG_ENV: &str = "EDGESHIM_POLICY_CONFIG";
pub const DEFAULT_ENTRYPOINT: &str = "edgeshim/decision";
pub const DEFAULT_DECISION_LOG: &str = "/var/log/edgeshim/decisions.log";
/// The cap on a Wasm entrypoint's size when no config says otherwise.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 << 20;
pub const CACHE_DIR_ENV: &str = "EDGESHIM_CACHE_DIR";
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/edgeshim/cache";

/// `enforce`: denials fail the request; `audit`: decide and log, never
/// deny; `off`: no policy is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Audit,
    Off,
}

/// What an evaluation error (no policy, broken policy, budget exceeded,
/// malformed result) means: `closed` denies, `open` allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default)]
    pub fail: FailMode,
    /// A `.rego` file, a folder (`.rego` files and `data.json`, or
    /// `policy.wasm` and `data.json`), a `policy.wasm`, or an OPA bundle
    /// (`.tar.gz`).
    pub policy: Option<PathBuf>,
    /// The OPA entrypoint (`package/rule`) whose value is the decision.
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    /// An entrypoint evaluated once whenever the policy is loaded, with an
    /// empty input; its value is a set of problems (the example library's
    /// `edgeshim/config_errors` checks its settings). A policy with any is
    /// refused like one that does not compile. None: no check.
    pub check: Option<String>,
    /// Wall-clock budget of one evaluation, in milliseconds.
    #[serde(default = "default_budget_ms")]
    pub budget_ms: u64,
    /// Largest input document evaluated (a bigger one is an evaluation
    /// error, so the fail mode applies).
    #[serde(default = "default_max_input_bytes")]
    pub max_input_bytes: usize,
    /// Largest Wasm entrypoint the shim reads: a bigger file is refused at
    /// create by its size (`fstat`), before it is read, whatever the mode.
    #[serde(default = "default_max_module_bytes")]
    pub max_module_bytes: u64,
    /// Where compiled policies are cached (default: `$EDGESHIM_CACHE_DIR`
    /// or /var/lib/edgeshim/cache, then `policy/`).
    pub cache_dir: Option<PathBuf>,
    /// What a Wasm container may reach when its decision has no `network`
    /// section: `deny` (no socket use) or `allow` (everything).
    #[serde(default)]
    pub network_default: edgeshim_network::NetworkDefault,
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    #[serde(default = "default_log_path")]
    pub path: PathBuf,
    /// The log is rotated (`.1`, `.2`, ...) when it reaches this size.
    #[serde(default = "default_log_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_log_keep")]
    pub keep: u32,
    /// Each line also carries the decision's input document (what
    /// `edgeshim-policy diff` decides again with a new policy). Off by
    /// default: a line grows from about 400 bytes to 2-4 KB.
    #[serde(default)]
    pub log_inputs: bool,
    /// With `log_inputs`, the environment variables whose values are
    /// logged as they are; every other value is logged as `<redacted>`.
    #[serde(default)]
    pub keep_env: Vec<String>,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            path: default_log_path(),
            max_bytes: default_log_max_bytes(),
            keep: default_log_keep(),
            log_inputs: false,
            keep_env: Vec::new(),
        }
    }
}

fn default_mode() -> Mode {
    Mode::Enforce
}
fn default_entrypoint() -> String {
    DEFAULT_ENTRYPOINT.into()
}
fn default_budget_ms() -> u64 {
    50
}
fn default_max_input_bytes() -> usize {
    256 << 10
}
fn default_max_module_bytes() -> u64 {
    DEFAULT_MAX_MODULE_BYTES
}
fn default_log_path() -> PathBuf {
    DEFAULT_DECISION_LOG.into()
}
fn default_log_max_bytes() -> u64 {
    10 << 20
}
fn default_log_keep() -> u32 {
    3
}

/// The node's cache folder: `$EDGESHIM_CACHE_DIR`, else
/// [`DEFAULT_CACHE_DIR`].
pub fn cache_root() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_CACHE_DIR.into())
}

/// Where the node keeps the last good config and policy (see
/// [`crate::PolicyGate`]): `policy-last-good/` in the node's cache folder.
pub fn last_good_dir() -> PathBuf {
    cache_root().join("policy-last-good")
}

/// Where the config is looked for.
pub fn config_path() -> PathBuf {
    std::env::var_os(CONFIG_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_CONFIG_PATH.into())
}

impl PolicyConfig {
    /// Parses `text`; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let mut config: PolicyConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(policy) = &config.policy
            && policy.is_relative()
        {
            config.policy = Some(base.join(policy));
        }
        if let Some(cache) = &config.cache_dir
            && cache.is_relative()
        {
            config.cache_dir = Some(base.join(cache));
        }
        if config.decision_log.path.is_relative() {
            config.decision_log.path = base.join(&config.decision_log.path);
        }
        if config.budget_ms == 0 {
            return Err("budget_ms must be at least 1".into());
        }
        if config.max_module_bytes == 0 {
            return Err("max_module_bytes must be at least 1".into());
        }
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("policy config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        Self::parse(&text, base).map_err(|e| format!("policy config {}: {e}", path.display()))
    }

    /// The compiled-policy cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| cache_root().join("policy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_are_enforce_fail_closed_with_a_budget() {
        let config = PolicyConfig::parse("policy = \"p.rego\"", Path::new("/etc/x")).expect("ok");
        assert_eq!(config.mode, Mode::Enforce);
        assert_eq!(config.fail, FailMode::Closed);
        assert_eq!(config.policy, Some(PathBuf::from("/etc/x/p.rego")));
        let relative = PolicyConfig::parse("cache_dir = \"c\"", Path::new("/etc/x")).expect("ok");
        assert_eq!(relative.cache_dir(), PathBuf::from("/etc/x/c"));
        assert_eq!(config.entrypoint, "edgeshim/decision");
        assert_eq!(config.max_module_bytes, 64 << 20);
        assert_eq!(
            config.decision_log.path,
            PathBuf::from(DEFAULT_DECISION_LOG)
        );
    }

    #[test]
    fn test_every_setting_is_read() {
        let text = r#"
            mode = "audit"
            fail = "open"
            policy = "/p"
            entrypoint = "a/b"
            check = "a/c"
            budget_ms = 7
            max_input_bytes = 1000
            max_module_bytes = 4096
            cache_dir = "/c"
            [decision_log]
            path = "/l"
            max_bytes = 99
            keep = 1
        "#;
        let config = PolicyConfig::parse(text, Path::new("/")).expect("ok");
        assert_eq!(config.mode, Mode::Audit);
        assert_eq!(config.fail, FailMode::Open);
        assert_eq!(config.check.as_deref(), Some("a/c"));
        assert_eq!(config.budget_ms, 7);
        assert_eq!(config.max_input_bytes, 1000);
        assert_eq!(config.max_module_bytes, 4096);
        assert_eq!(config.cache_dir(), PathBuf::from("/c"));
        assert_eq!(config.decision_log.max_bytes, 99);
        assert_eq!(config.decision_log.keep, 1);
    }

    #[test]
    fn test_unknown_keys_and_bad_values_are_refused_with_the_cause() {
        let err = PolicyConfig::parse("mood = \"enforce\"", Path::new("/")).expect_err("bad");
        assert!(err.contains("mood"), "{err}");
        let err = PolicyConfig::parse("mode = \"strict\"", Path::new("/")).expect_err("bad");
        assert!(err.contains("strict"), "{err}");
        let err = PolicyConfig::parse("budget_ms = 0", Path::new("/")).expect_err("bad");
        assert!(err.contains("budget_ms"), "{err}");
        let err = PolicyConfig::parse("max_module_bytes = 0", Path::new("/")).expect_err("bad");
        assert!(err.contains("max_module_bytes"), "{err}");
        let err = PolicyConfig::parse("max_module_bytes = -1", Path::new("/")).expect_err("bad");
        assert!(err.contains("max_module_bytes"), "{err}");
    }
}
