//! Evaluators: a loaded policy, compiled for its format, that turns an input
//! document into the policy's raw output.

#[cfg(feature = "wasmtime")]
mod builtins;
#[cfg(any(feature = "wasmtime", feature = "wasmedge"))]
mod opa_abi;
#[cfg(feature = "wasmtime")]
mod opa_wasm;
mod rego;
#[cfg(feature = "wasmedge")]
mod wasmedge_opa;

use std::path::Path;
use std::time::{Duration, Instant};

use edgeshim_cache::ModuleCache;

use crate::decision::{PolicyAnswer, read_check_output, read_output};
use crate::source::{PolicyCode, PolicySource};

/// Budget of a load check (once per policy load, so more generous than a
/// decision's).
const CHECK_BUDGET: Duration = Duration::from_secs(1);

/// The cache folder of load checks passed, by policy content and check.
const CHECK_VERDICTS: &str = "policy-check-passed";

/// Runs one evaluation within `budget` (wall clock).
pub(crate) trait Evaluate: Send {
    fn evaluate(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<serde_json::Value, String>;
}

/// Compiles an OPA Wasm module (with its data and entrypoint; compiled code
/// cached under the given folder) into an evaluator.
type CompileWasm = fn(&[u8], &serde_json::Value, &str, &Path) -> Result<Box<dyn Evaluate>, String>;

/// The Wasm engine OPA Wasm policies run on: the shim's own, so that a
/// WasmEdge shim carries no second engine. Chosen by the shim binary; each
/// host exists only in builds with its cargo feature.
#[derive(Clone, Copy)]
pub struct WasmHost {
    pub name: &'static str,
    compile: CompileWasm,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl WasmHost {
    /// Wasmtime, through the `opa-wasm` crate (feature `wasmtime`).
    #[cfg(feature = "wasmtime")]
    pub const WASMTIME: WasmHost = WasmHost {
        name: "wasmtime",
        compile: |wasm, data, entrypoint, cache| {
            opa_wasm::WasmEvaluator::compile(wasm, data, entrypoint, cache)
                .map(|e| Box::new(e) as Box<dyn Evaluate>)
        },
    };

    /// WasmEdge, through edgeshim's own OPA ABI host (feature `wasmedge`).
    #[cfg(feature = "wasmedge")]
    pub const WASMEDGE: WasmHost = WasmHost {
        name: "wasmedge",
        compile: |wasm, data, entrypoint, cache| {
            wasmedge_opa::WasmEdgeEvaluator::compile(wasm, data, entrypoint, cache)
                .map(|e| Box::new(e) as Box<dyn Evaluate>)
        },
    };

    /// No Wasm engine in this build: OPA Wasm policies are refused, Rego
    /// still works.
    pub const NONE: WasmHost = WasmHost {
        name: "none",
        compile: |_, _, _, _| {
            Err("this build has no Wasm engine for OPA Wasm policies; use Rego".into())
        },
    };

    /// Wasmtime where built, else WasmEdge where built, else [`Self::NONE`].
    pub fn for_this_build() -> Self {
        #[cfg(feature = "wasmtime")]
        return Self::WASMTIME;
        #[cfg(all(feature = "wasmedge", not(feature = "wasmtime")))]
        return Self::WASMEDGE;
        #[cfg(not(any(feature = "wasmtime", feature = "wasmedge")))]
        return Self::NONE;
    }
}

/// The policy's format, as reported in logs and by the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    /// Rego on regorus's RVM.
    RegoVm,
    /// Rego on regorus's interpreter (what the RVM could not compile).
    RegoInterpreter,
    /// OPA Wasm.
    Wasm,
}

impl std::fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyFormat::RegoVm => "rego (rvm)",
            PolicyFormat::RegoInterpreter => "rego (interpreter)",
            PolicyFormat::Wasm => "opa wasm",
        })
    }
}

/// A policy ready to decide.
pub struct LoadedPolicy {
    pub revision: String,
    pub content_hash: String,
    pub format: PolicyFormat,
    evaluator: Box<dyn Evaluate>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("revision", &self.revision)
            .field("format", &self.format)
            .finish()
    }
}

impl LoadedPolicy {
    /// Reads and compiles the policy at `path` (compiled forms are cached
    /// under `cache_dir`).
    /// OPA Wasm policies run on [`WasmHost::for_this_build`].
    pub fn load(path: &Path, entrypoint: &str, cache_dir: &Path) -> Result<Self, String> {
        Self::load_with(WasmHost::for_this_build(), path, entrypoint, cache_dir)
    }

    /// As [`Self::load`], with OPA Wasm policies run on `wasm_host`.
    pub fn load_with(
        wasm_host: WasmHost,
        path: &Path,
        entrypoint: &str,
        cache_dir: &Path,
    ) -> Result<Self, String> {
        Self::load_checked(wasm_host, path, entrypoint, None, cache_dir)
    }

    /// As [`Self::load_with`], and when `check` names an entrypoint, it is
    /// evaluated once here, with an empty input: its value is the set of
    /// problems the policy finds in itself (its data, typically), and a
    /// policy with any is refused with them. This is where work that does
    /// not depend on the container belongs: done once per policy, not once
    /// per decision.
    pub fn load_checked(
        wasm_host: WasmHost,
        path: &Path,
        entrypoint: &str,
        check: Option<&str>,
        cache_dir: &Path,
    ) -> Result<Self, String> {
        let source = PolicySource::load(path)?;
        Self::from_source_checked(wasm_host, &source, path, entrypoint, check, cache_dir)
    }

    /// As [`Self::load_checked`], for a policy already read (`path` names
    /// where it came from, in errors).
    pub fn from_source_checked(
        wasm_host: WasmHost,
        source: &PolicySource,
        path: &Path,
        entrypoint: &str,
        check: Option<&str>,
        cache_dir: &Path,
    ) -> Result<Self, String> {
        let in_policy = |e: String| format!("policy {}: {e}", path.display());
        if let Some(check) = check {
            // The check's input is fixed (`{}`), so its verdict on the same
            // content is too: a pass is kept in the cache and not run again
            // by every new shim (it sat on each pod's first start).
            let verdicts = ModuleCache::new(cache_dir, CHECK_VERDICTS);
            let key = edgeshim_cache::content_hash(
                format!("{}\0{check}", source.content_hash).as_bytes(),
            );
            if verdicts.open_verified(&key).is_none() {
                let mut checker =
                    Self::compile(wasm_host, source, check, cache_dir).map_err(in_policy)?;
                let problems = checker
                    .evaluator
                    .evaluate(&serde_json::json!({}), CHECK_BUDGET)
                    .and_then(|value| read_check_output(&value))
                    .map_err(|e| in_policy(format!("check {check}: {e}")))?;
                if !problems.is_empty() {
                    return Err(in_policy(format!(
                        "check {check} refused it: {}",
                        problems.join("; ")
                    )));
                }
                // Best effort: without it the check runs again next time.
                if let Err(e) = verdicts.store(&key, b"passed") {
                    log::debug!("cannot keep the check's verdict: {e}");
                }
            }
        }
        Self::compile(wasm_host, source, entrypoint, cache_dir).map_err(in_policy)
    }

    fn compile(
        wasm_host: WasmHost,
        source: &PolicySource,
        entrypoint: &str,
        cache_dir: &Path,
    ) -> Result<Self, String> {
        let (format, evaluator): (PolicyFormat, Box<dyn Evaluate>) = match &source.code {
            PolicyCode::Rego(modules) => {
                let cache = ModuleCache::new(cache_dir, "rego-rvm-regorus-0.14");
                let evaluator = rego::RegoEvaluator::compile(
                    modules,
                    &source.data,
                    entrypoint,
                    &cache,
                    &source.content_hash,
                )?;
                let format = if evaluator.uses_vm() {
                    PolicyFormat::RegoVm
                } else {
                    PolicyFormat::RegoInterpreter
                };
                (format, Box::new(evaluator))
            }
            PolicyCode::Wasm(wasm) => (
                PolicyFormat::Wasm,
                (wasm_host.compile)(wasm, &source.data, entrypoint, cache_dir)?,
            ),
        };
        Ok(Self {
            revision: source.revision.clone(),
            content_hash: source.content_hash.clone(),
            format,
            evaluator,
        })
    }

    /// Evaluates `input` and reads the decision out of the result; also
    /// returns how long the evaluation took.
    /// Whether this policy's answer to `input` reads as a decision: the
    /// error says what is malformed. An evaluation that fails (out of
    /// `budget`, say) is not held against it here: the fail mode answers
    /// that when it happens.
    pub fn answers_well(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<(), String> {
        match self.evaluator.evaluate(input, budget) {
            Ok(output) => read_output(&output).map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    pub fn decide(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> (Result<PolicyAnswer, String>, Duration) {
        let start = Instant::now();
        let outcome = self
            .evaluator
            .evaluate(input, budget)
            .and_then(|output| read_output(&output));
        (outcome, start.elapsed())
    }
}
