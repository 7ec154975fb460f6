//! Evaluators: a loaded policy, compiled for its format, that turns an input
//! document into the policy's raw output.

mod builtins;
mod opa_wasm;
mod rego;

use std::path::Path;
use std::time::{Duration, Instant};

use edgeshim_engine::cache::ModuleCache;

use crate::decision::read_output;
use crate::source::{PolicyCode, PolicySource};

/// Runs one evaluation within `budget` (wall clock).
pub(crate) trait Evaluate: Send {
    fn evaluate(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<serde_json::Value, String>;
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
    pub fn load(path: &Path, entrypoint: &str, cache_dir: &Path) -> Result<Self, String> {
        let source = PolicySource::load(path)?;
        Self::compile(&source, entrypoint, cache_dir)
            .map_err(|e| format!("policy {}: {e}", path.display()))
    }

    fn compile(source: &PolicySource, entrypoint: &str, cache_dir: &Path) -> Result<Self, String> {
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
                Box::new(opa_wasm::WasmEvaluator::compile(
                    wasm,
                    &source.data,
                    entrypoint,
                    cache_dir,
                )?),
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
    pub fn decide(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> (Result<(bool, Vec<String>), String>, Duration) {
        let start = Instant::now();
        let outcome = self
            .evaluator
            .evaluate(input, budget)
            .and_then(|output| read_output(&output));
        (outcome, start.elapsed())
    }
}
