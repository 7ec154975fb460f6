//! [`PolicyGate`]: the configured gate, with hot reload, fail modes, audit
//! mode, the decision log, and the node's last good config.
//!
//! Reload needs no thread: at most every [`RECHECK_EVERY`], a decision first
//! compares the config file and the policy files (path, size, mtime, inode)
//! with what was loaded. On a change the new config and policy are loaded
//! and compiled completely before they replace the old ones, under the
//! gate's lock, so no request sees a half-loaded policy. A config or policy
//! that fails to load leaves the last good one serving, and the failure is
//! logged once per change.
//!
//! Losing the config never turns the gate off: every good load is also saved
//! on the node ([`crate::last_good`], in the cache folder), and a gate whose
//! config file is missing, unreadable or unparsable serves the node's copy
//! (or, when there is none, what it holds itself), in running shims and in
//! shims started later. Only an explicit `mode = "off"` turns the gate off,
//! and a node that never had a config stays off.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{DEFAULT_MAX_MODULE_BYTES, FailMode, Mode, PolicyConfig};
use crate::decision_log::{DecisionLog, LogLine};
use crate::eval::{LoadedPolicy, WasmHost};
use crate::last_good::{LastGood, LastGoodCopy};
use crate::{Decision, DecisionInput, Gate, NetworkDefault, NetworkGrant, PolicySource};

/// The least time a new policy gets for each recent input at load (a
/// reload is rare; a slow answer there is not a malformed one).
const REPLAY_BUDGET: Duration = Duration::from_millis(500);

/// How stale the view of the policy files may get.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

pub struct PolicyGate {
    config_path: PathBuf,
    wasm_host: WasmHost,
    last_good: LastGood,
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
    /// No config file, and none ever loaded on this node: the gate is off.
    never_configured: bool,
    /// The inputs of the latest decisions ([`RECENT_INPUTS`]), which a new
    /// policy must answer well before it replaces this one.
    recent: std::collections::VecDeque<serde_json::Value>,
}

/// How many recent inputs a new policy is tried on at load.
const RECENT_INPUTS: usize = 8;

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64)>,
}

/// The gate's surroundings a reload needs.
struct Sources<'a> {
    config_path: &'a Path,
    wasm_host: WasmHost,
    last_good: &'a LastGood,
}

impl PolicyGate {
    /// A gate reading its config at `config_path` (see [`crate::config`]).
    /// OPA Wasm policies run on this build's default host
    /// ([`WasmHost::for_this_build`]).
    pub fn new(config_path: &Path) -> Self {
        Self::with_wasm_host(config_path, WasmHost::for_this_build())
    }

    /// A gate whose OPA Wasm policies run on `wasm_host` (the shim's own
    /// engine). The node's last good config is kept in
    /// [`crate::config::last_good_dir`].
    pub fn with_wasm_host(config_path: &Path, wasm_host: WasmHost) -> Self {
        Self {
            config_path: config_path.to_path_buf(),
            wasm_host,
            last_good: LastGood::new(&crate::config::last_good_dir(), config_path),
            state: Mutex::new(GateState::default()),
        }
    }

    /// The same gate, keeping the node's last good config in `dir` instead
    /// (tests, benchmarks: anything that must not touch the node's copy).
    pub fn keeping_last_good_in(mut self, dir: &Path) -> Self {
        self.last_good = LastGood::new(dir, &self.config_path);
        self
    }

    /// Loads the config and the policy now, as the first decision would,
    /// and runs the policy once on a sample input (answer discarded, not
    /// logged, not kept among the recent inputs). A new shim calls it at
    /// start-up on a thread of its own, so that the load (reading and
    /// checking the cached program, the load check's cached verdict) and the
    /// first evaluation's one-time costs (the evaluator's code paged in) are
    /// spent before its first request rather than on it. A request that
    /// arrives meanwhile waits on the gate's lock for that load, exactly as
    /// it would have loaded the policy itself.
    pub fn warm_up(&self) {
        self.lock().warm_up();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while deciding leaves the state as consistent as before
        // it (replacement is a single assignment), so keep using it.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sources = Sources {
            config_path: &self.config_path,
            wasm_host: self.wasm_host,
            last_good: &self.last_good,
        };
        state.refresh(&sources, Instant::now());
        state
    }
}

impl Gate for PolicyGate {
    fn decide(&self, input: &DecisionInput) -> Decision {
        let asked = Instant::now();
        self.lock().decide(input, asked)
    }

    fn network_refused(&self, container: &str, refusal: &crate::Refusal, held_back: u64) {
        let mut state = self.lock();
        if let Some(log) = state.log.as_mut() {
            log.record_network(crate::decision_log::NetworkLine {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                action: match refusal.usage {
                    edgeshim_network::Use::Connect => "connect",
                    edgeshim_network::Use::Listen => "listen",
                },
                container,
                address: refusal.address.to_string(),
                rule: &refusal.decided_by,
                decision: "deny",
                held_back: (held_back > 0).then_some(held_back),
                lost: None,
            });
        }
    }

    /// The config's `max_module_bytes` (the last good config's, when the
    /// file is gone), else the default.
    fn max_module_bytes(&self) -> u64 {
        self.lock()
            .config
            .as_ref()
            .map_or(DEFAULT_MAX_MODULE_BYTES, |c| c.max_module_bytes)
    }
}

impl GateState {
    fn refresh(&mut self, sources: &Sources, now: Instant) {
        if self.next_check.is_some_and(|next| now < next) {
            return;
        }
        self.next_check = Some(now + RECHECK_EVERY);
        let fingerprint = fingerprint(sources.config_path, self.config.as_ref());
        if fingerprint == self.fingerprint && !self.fingerprint.is_empty() {
            return;
        }
        self.fingerprint = fingerprint;
        self.reload(sources);
        // The policy path may have changed with the config.
        self.fingerprint = self::fingerprint(sources.config_path, self.config.as_ref());
    }

    fn reload(&mut self, sources: &Sources) {
        let config_path = sources.config_path;
        let text = match std::fs::read_to_string(config_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.config_missing(sources);
            }
            Err(e) => {
                return self.config_unusable(
                    format!("policy config {}: {e}", config_path.display()),
                    sources,
                );
            }
        };
        let base = config_path.parent().unwrap_or(Path::new("/"));
        let config = match PolicyConfig::parse(&text, base) {
            Ok(config) => config,
            Err(e) => {
                return self.config_unusable(
                    format!("policy config {}: {e}", config_path.display()),
                    sources,
                );
            }
        };
        if config.mode == Mode::Off {
            log::info!("policy mode is off ({})", config_path.display());
            save_last_good(sources, &config, None);
            self.install(config, None);
            return;
        }
        let loaded = match config.policy.clone() {
            None => Err(format!(
                "policy config {}: no policy path is set",
                config_path.display()
            )),
            Some(path) => PolicySource::load(&path).and_then(|source| {
                let policy = LoadedPolicy::from_source_checked(
                    sources.wasm_host,
                    &source,
                    &path,
                    &config.entrypoint,
                    config.check.as_deref(),
                    &config.cache_dir(),
                )?;
                Ok((source, policy))
            }),
        };
        // A policy whose answer to an input this gate decided lately does
        // not read as a decision (a network section that does not parse,
        // say) fails its load like a syntax error: the last good serves on.
        let loaded = loaded.and_then(|(source, mut policy)| {
            let budget = Duration::from_millis(config.budget_ms).max(REPLAY_BUDGET);
            for input in &self.recent {
                policy.answers_well(input, budget).map_err(|e| {
                    format!(
                        "policy {}: its decision for container {} is malformed: {e}",
                        config.policy.as_deref().unwrap_or(Path::new("")).display(),
                        input["container"]["id"].as_str().unwrap_or("?"),
                    )
                })?;
            }
            Ok((source, policy))
        });
        match loaded {
            Ok((source, policy)) => {
                log::info!(
                    "policy {} loaded: revision {}, {}, mode {:?}",
                    config.policy.as_deref().unwrap_or(Path::new("")).display(),
                    policy.revision,
                    policy.format,
                    config.mode
                );
                save_last_good(sources, &config, Some(&source));
                self.install(config, Some(policy));
            }
            Err(e) => {
                if self.policy.is_none() {
                    // Nothing of its own to keep: a shim started now serves
                    // the node's last good policy, else the new config's
                    // fail mode and log apply.
                    if self.config.is_none()
                        && self.serve_last_good(sources, &e, |copy| copy.source.is_some())
                    {
                        return;
                    }
                    self.install_config(config);
                }
                self.keep_last_good(e)
            }
        }
    }

    /// No config file: the node's last good copy serves, else what this
    /// gate holds; with neither, the node never had a config: off.
    fn config_missing(&mut self, sources: &Sources) {
        let problem = format!("no policy config at {}", sources.config_path.display());
        match sources.last_good.load() {
            Ok(Some(_)) if self.serve_last_good(sources, &problem, |_| true) => {}
            Ok(None) if self.config.is_none() => {
                if !self.never_configured {
                    log::info!("{problem}: the policy gate is off");
                }
                self.config = None;
                self.policy = None;
                self.problem = None;
                self.never_configured = true;
            }
            Ok(_) => self.keep_last_good(problem),
            Err(e) => self.keep_last_good(format!("{problem}, and {e}")),
        }
    }

    /// A config file that cannot be read or does not parse: what this gate
    /// holds keeps serving; a gate holding nothing serves the node's last
    /// good copy, else denies every request with the cause.
    fn config_unusable(&mut self, problem: String, sources: &Sources) {
        if self.config.is_none() && self.serve_last_good(sources, &problem, |_| true) {
            return;
        }
        self.keep_last_good(problem)
    }

    /// Serves the node's last good copy, if there is one that `wanted`
    /// accepts and that loads. `problem` says why (logged).
    fn serve_last_good(
        &mut self,
        sources: &Sources,
        problem: &str,
        wanted: impl Fn(&LastGoodCopy) -> bool,
    ) -> bool {
        let copy = match sources.last_good.load() {
            Ok(Some(copy)) if wanted(&copy) => copy,
            Ok(_) => return false,
            Err(e) => {
                log::error!("{e}");
                return false;
            }
        };
        let LastGoodCopy { config, source } = copy;
        let same = self.config.as_ref() == Some(&config)
            && match (&source, &self.policy) {
                (None, None) => true,
                (Some(source), Some(policy)) => source.content_hash == policy.content_hash,
                _ => false,
            };
        if same {
            log::warn!("{problem}; the node's last good config is the one serving");
            self.problem = None;
            return true;
        }
        let policy = match (&source, config.mode) {
            (_, Mode::Off) | (None, _) => None,
            (Some(source), _) => {
                let path = config.policy.clone().unwrap_or_default();
                match LoadedPolicy::from_source_checked(
                    sources.wasm_host,
                    source,
                    &path,
                    &config.entrypoint,
                    config.check.as_deref(),
                    &config.cache_dir(),
                ) {
                    Ok(policy) => Some(policy),
                    Err(e) => {
                        log::error!("the node's last good policy does not load: {e}");
                        return false;
                    }
                }
            }
        };
        if config.mode != Mode::Off && policy.is_none() {
            return false;
        }
        log::warn!(
            "{problem}; serving the node's last good config ({}): {}",
            sources.last_good.path().display(),
            policy.as_ref().map_or_else(
                || "mode off".to_string(),
                |p| format!("revision {}, mode {:?}", p.revision, config.mode)
            )
        );
        self.install(config, policy);
        true
    }

    /// Puts a good config and its policy (none for mode off) in force.
    fn install(&mut self, config: PolicyConfig, policy: Option<LoadedPolicy>) {
        self.policy = policy;
        self.problem = None;
        self.never_configured = false;
        self.install_config(config);
    }

    fn install_config(&mut self, config: PolicyConfig) {
        self.never_configured = false;
        let settings = &config.decision_log;
        // A reloaded config may change the cap or the files kept, not only
        // the path: each takes effect from the next line.
        let same_log = self.log.as_ref().is_some_and(|log| {
            log.is_configured_as(&settings.path, settings.max_bytes, settings.keep)
        });
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
        match (&self.policy, &self.config) {
            (Some(policy), _) => {
                log::error!("{problem}; revision {} keeps serving", policy.revision)
            }
            (None, Some(config)) if config.mode == Mode::Off => {
                log::error!("{problem}; the last good config (mode off) keeps serving")
            }
            (None, _) => {
                log::error!("{problem}; no policy is loaded, so every request gets the fail mode")
            }
        }
        if self.policy.is_none() {
            self.problem = Some(problem);
        }
    }

    /// See [`PolicyGate::warm_up`].
    fn warm_up(&mut self) {
        let (Some(config), Some(policy)) = (&self.config, self.policy.as_mut()) else {
            return;
        };
        if config.mode == Mode::Off {
            return;
        }
        let sample = serde_json::json!({
            "action": "create",
            "container": {
                "id": "edgeshim-warm-up", "name": "warm-up", "kind": "sandbox",
                "image": "", "entrypoint": "", "module": null, "args": [],
                "env": {}, "mounts": [], "resources": {}, "namespaces": [],
                "host_network": false, "annotations": {}
            },
            "pod": null,
            "node": {}
        });
        let (outcome, took) = policy.decide(&sample, Duration::from_millis(config.budget_ms));
        log::debug!(
            "policy warmed up in {} us ({})",
            took.as_micros(),
            if outcome.is_ok() {
                "answered"
            } else {
                "no answer"
            }
        );
    }

    fn decide(&mut self, input: &DecisionInput, asked: Instant) -> Decision {
        let config = match &self.config {
            _ if self.never_configured => return allow_off(),
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
                    network: NetworkGrant::from_decision(None, NetworkDefault::Deny),
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
                Ok(value) => {
                    let decided = policy.decide(&value, budget);
                    if self.recent.len() == RECENT_INPUTS {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(value);
                    decided
                }
                Err(e) => (Err(e), Duration::ZERO),
            },
        };
        let revision = self
            .policy
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.revision.clone());
        let (policy_allows, reasons, section, error) = match outcome {
            Ok(answer) => (answer.allow, answer.reasons, answer.network, None),
            Err(e) => {
                let allow = fail == FailMode::Open;
                let reason = format!("policy error (fail {}): {e}", fail_name(fail));
                (allow, vec![reason], None, Some(e))
            }
        };
        // Audit mode never restricts, the network included.
        let network = match mode {
            Mode::Audit => NetworkGrant::All,
            _ => NetworkGrant::from_decision(section, config.network_default),
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
                gate_us: u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX),
                error: error.as_deref(),
                lost: None,
                input: config
                    .decision_log
                    .log_inputs
                    .then(|| redacted(input, &config.decision_log.keep_env)),
            });
        }
        Decision {
            allow,
            reasons,
            revision,
            network,
        }
    }
}

/// `input` as the decision log keeps it: every environment value but those
/// of `keep_env` replaced by `<redacted>` (secrets are often passed there).
fn redacted(input: &DecisionInput, keep_env: &[String]) -> serde_json::Value {
    let mut input = input.clone();
    for (key, value) in input.container.env.iter_mut() {
        if !keep_env.contains(key) {
            *value = "<redacted>".into();
        }
    }
    serde_json::to_value(&input).unwrap_or(serde_json::Value::Null)
}

/// Saves a good config on the node; a failure only costs the copy (logged).
fn save_last_good(sources: &Sources, config: &PolicyConfig, source: Option<&PolicySource>) {
    match sources.last_good.save(sources.config_path, config, source) {
        Ok(true) => log::info!(
            "policy config {} saved as the node's last good ({})",
            sources.config_path.display(),
            sources.last_good.path().display()
        ),
        Ok(false) => {}
        Err(e) => log::error!("{e}; a lost config file would leave this shim's copy only"),
    }
}

fn allow_off() -> Decision {
    Decision {
        allow: true,
        reasons: Vec::new(),
        revision: "off".into(),
        network: NetworkGrant::All,
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
        crate::Action::Update => "update",
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
