//! [`PolicyGate`]: the configured gate, with hot reload, fail modes, audit
//! mode and the decision log.
//!
//! Reload needs no thread: at most every [`RECHECK_EVERY`], a decision first
//! compares the config file and the policy files (path, size, mtime, inode)
//! with what was loaded. On a change the new config and policy are loaded
//! and compiled completely before they replace the old ones, under the
//! gate's lock, so no request sees a half-loaded policy. A config or policy
//! that fails to load leaves the last good one serving, and the failure is
//! logged once per change.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{FailMode, Mode, PolicyConfig};
use crate::decision_log::{DecisionLog, LogLine};
use crate::eval::{LoadedPolicy, WasmHost};
use crate::{Decision, DecisionInput, Gate};

/// How stale the view of the policy files may get.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

pub struct PolicyGate {
    config_path: PathBuf,
    wasm_host: WasmHost,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// The config in force (the last good one).
    config: Option<PolicyConfig>,
    policy: Option<LoadedPolicy>,
    /// Why there is no policy (or why the newest one was not taken).
    problem: Option<String>,
    log: Option<DecisionLog>,
    fingerprint: Vec<FileStamp>,
    next_check: Option<Instant>,
    /// No config file: the gate is off.
    config_missing: bool,
}

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64)>,
}

impl PolicyGate {
    /// A gate reading its config at `config_path` (see [`crate::config`]).
    /// OPA Wasm policies run on this build's default host
    /// ([`WasmHost::for_this_build`]).
    pub fn new(config_path: &Path) -> Self {
        Self::with_wasm_host(config_path, WasmHost::for_this_build())
    }

    /// A gate whose OPA Wasm policies run on `wasm_host` (the shim's own
    /// engine).
    pub fn with_wasm_host(config_path: &Path, wasm_host: WasmHost) -> Self {
        Self {
            config_path: config_path.to_path_buf(),
            wasm_host,
            state: Mutex::new(GateState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while deciding leaves the state as consistent as before
        // it (replacement is a single assignment), so keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Gate for PolicyGate {
    fn decide(&self, input: &DecisionInput) -> Decision {
        let mut state = self.lock();
        state.refresh(&self.config_path, self.wasm_host, Instant::now());
        state.decide(input)
    }
}

impl GateState {
    fn refresh(&mut self, config_path: &Path, wasm_host: WasmHost, now: Instant) {
        if self.next_check.is_some_and(|next| now < next) {
            return;
        }
        self.next_check = Some(now + RECHECK_EVERY);
        let fingerprint = fingerprint(config_path, self.config.as_ref());
        if fingerprint == self.fingerprint && !self.fingerprint.is_empty() {
            return;
        }
        self.fingerprint = fingerprint;
        self.reload(config_path, wasm_host);
        // The policy path may have changed with the config.
        self.fingerprint = self::fingerprint(config_path, self.config.as_ref());
    }

    fn reload(&mut self, config_path: &Path, wasm_host: WasmHost) {
        if !config_path.exists() {
            if self.config.is_some() || self.problem.is_none() {
                log::info!(
                    "no policy config at {}: the policy gate is off",
                    config_path.display()
                );
            }
            *self = GateState {
                config_missing: true,
                ..GateState::default()
            };
            return;
        }
        self.config_missing = false;
        let config = match PolicyConfig::load(config_path) {
            Ok(config) => config,
            Err(e) => return self.keep_last_good(e),
        };
        if config.mode == Mode::Off {
            log::info!("policy mode is off ({})", config_path.display());
            self.policy = None;
            self.install_config(config);
            return;
        }
        let Some(policy_path) = config.policy.clone() else {
            return self.keep_last_good(format!(
                "policy config {}: no policy path is set",
                config_path.display()
            ));
        };
        match LoadedPolicy::load_checked(
            wasm_host,
            &policy_path,
            &config.entrypoint,
            config.check.as_deref(),
            &config.cache_dir(),
        ) {
            Ok(policy) => {
                log::info!(
                    "policy {} loaded: revision {}, {}, mode {:?}",
                    policy_path.display(),
                    policy.revision,
                    policy.format,
                    config.mode
                );
                self.policy = Some(policy);
                self.problem = None;
                self.install_config(config);
            }
            Err(e) => {
                if self.policy.is_none() {
                    // Nothing to keep: the new config's fail mode and log apply.
                    self.install_config(config);
                }
                self.keep_last_good(e)
            }
        }
    }

    fn install_config(&mut self, config: PolicyConfig) {
        let settings = &config.decision_log;
        let same_log = self
            .log
            .as_ref()
            .is_some_and(|log| log.path() == settings.path);
        if !same_log {
            self.log = Some(DecisionLog::new(
                &settings.path,
                settings.max_bytes,
                settings.keep,
            ));
        }
        self.config = Some(config);
    }

    fn keep_last_good(&mut self, problem: String) {
        match &self.policy {
            Some(policy) => log::error!("{problem}; revision {} keeps serving", policy.revision),
            None => {
                log::error!("{problem}; no policy is loaded, so every request gets the fail mode")
            }
        }
        if self.policy.is_none() {
            self.problem = Some(problem);
        }
    }

    fn decide(&mut self, input: &DecisionInput) -> Decision {
        let config = match &self.config {
            _ if self.config_missing => return allow_off(),
            Some(config) if config.mode == Mode::Off => return allow_off(),
            Some(config) => config,
            // A config file that never loaded: fail closed, whatever it says.
            None => {
                return Decision {
                    allow: false,
                    reasons: vec![format!(
                        "no policy loaded: {}",
                        self.problem.as_deref().unwrap_or("unknown")
                    )],
                    revision: "none".into(),
                };
            }
        };
        let (mode, fail) = (config.mode, config.fail);
        let budget = Duration::from_millis(config.budget_ms);
        let (outcome, took) = match self.policy.as_mut() {
            None => (
                Err(format!(
                    "no policy loaded: {}",
                    self.problem.as_deref().unwrap_or("unknown")
                )),
                Duration::ZERO,
            ),
            Some(policy) => match input_value(input, config.max_input_bytes) {
                Ok(value) => policy.decide(&value, budget),
                Err(e) => (Err(e), Duration::ZERO),
            },
        };
        let revision = self
            .policy
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.revision.clone());
        let (policy_allows, reasons, error) = match outcome {
            Ok((allow, reasons)) => (allow, reasons, None),
            Err(e) => {
                let allow = fail == FailMode::Open;
                let reason = format!("policy error (fail {}): {e}", fail_name(fail));
                (allow, vec![reason], Some(e))
            }
        };
        let allow = policy_allows || mode == Mode::Audit;
        if let Some(log) = self.log.as_mut() {
            log.record(LogLine {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                action: action_name(input),
                container: &input.container.id,
                kind: kind_name(input),
                pod: input
                    .pod
                    .as_ref()
                    .map(|p| format!("{}/{}", p.namespace, p.name)),
                image: &input.container.image,
                module_sha256: input.container.module.as_ref().map(|m| m.sha256.as_str()),
                decision: if allow { "allow" } else { "deny" },
                mode: if mode == Mode::Audit {
                    "audit"
                } else {
                    "enforce"
                },
                would_deny: (mode == Mode::Audit).then_some(!policy_allows),
                reasons: &reasons,
                revision: &revision,
                eval_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                error: error.as_deref(),
                lost: None,
            });
        }
        Decision {
            allow,
            reasons,
            revision,
        }
    }
}

fn allow_off() -> Decision {
    Decision {
        allow: true,
        reasons: Vec::new(),
        revision: "off".into(),
    }
}

/// `input` as JSON, refused when larger than `max_bytes`.
fn input_value(input: &DecisionInput, max_bytes: usize) -> Result<serde_json::Value, String> {
    let text = serde_json::to_string(input).map_err(|e| e.to_string())?;
    if text.len() > max_bytes {
        return Err(format!(
            "the input document is {} bytes, over max_input_bytes ({max_bytes})",
            text.len()
        ));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn fail_name(fail: FailMode) -> &'static str {
    match fail {
        FailMode::Closed => "closed",
        FailMode::Open => "open",
    }
}

fn action_name(input: &DecisionInput) -> &'static str {
    match input.action {
        crate::Action::Create => "create",
        crate::Action::Start => "start",
    }
}

fn kind_name(input: &DecisionInput) -> &'static str {
    match input.container.kind {
        crate::ContainerKind::Wasm => "wasm",
        crate::ContainerKind::Native => "native",
        crate::ContainerKind::Sandbox => "sandbox",
    }
}

/// The config file, then every file of the policy (a folder is walked).
fn fingerprint(config_path: &Path, config: Option<&PolicyConfig>) -> Vec<FileStamp> {
    let mut stamps = vec![stamp(config_path)];
    if let Some(policy) = config.and_then(|c| c.policy.as_ref()) {
        let mut files = Vec::new();
        collect_files(policy, &mut files);
        files.sort();
        stamps.extend(files.iter().map(|f| stamp(f)));
        if files.is_empty() {
            stamps.push(stamp(policy));
        }
    }
    stamps
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                collect_files(&entry.path(), files);
            }
        }
        Err(_) => files.push(path.to_path_buf()),
    }
}

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    FileStamp {
        path: path.to_path_buf(),
        stamp: std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino())),
    }
}
