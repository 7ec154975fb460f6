//! Rego source evaluated by `regorus`: compiled to its RVM bytecode (a few
//! microseconds a decision), with its tree-walking interpreter as the
//! fallback for what the RVM compiler rejects.
//!
//! The RVM program is cached on disk by the policy's content hash and the
//! entrypoint, so a new shim process loads bytecode instead of compiling;
//! like every cached artifact it is verified against its digest before it
//! is deserialized (see `edgeshim_cache`).

use std::io::Read;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use edgeshim_cache::ModuleCache;
use regorus::Value;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::{DeserializationResult, Program};
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;

use super::Evaluate;

/// Work units between two reads of the clock while evaluating.
const TIMER_CHECK_INTERVAL: u32 = 64;

/// Instructions the RVM may run in one evaluation (its default, 25,000, is
/// too tight for a real admission library; the wall-clock budget is the
/// real limit).
const MAX_INSTRUCTIONS: usize = 10_000_000;

pub(crate) struct RegoEvaluator {
    rule: String,
    backend: Backend,
}

enum Backend {
    Vm(Box<RegoVM>),
    Interpreter(Box<regorus::Engine>),
}

/// `package/rule` (OPA's entrypoint form) as a rule path `data.package.rule`.
pub(crate) fn rule_path(entrypoint: &str) -> String {
    format!("data.{}", entrypoint.trim_matches('/').replace('/', "."))
}

impl RegoEvaluator {
    pub(crate) fn compile(
        modules: &[(String, String)],
        data: &serde_json::Value,
        entrypoint: &str,
        cache: &ModuleCache,
        content_hash: &str,
    ) -> Result<Self, String> {
        let rule = rule_path(entrypoint);
        let key = edgeshim_cache::content_hash(format!("{content_hash}:{rule}").as_bytes());
        let data = Value::from(data.clone());
        if let Some(program) = cached_program(cache, &key) {
            let vm = vm_for(program, data.clone())?;
            return Ok(Self {
                rule,
                backend: Backend::Vm(Box::new(vm)),
            });
        }
        let mut engine = regorus::Engine::new();
        for (path, text) in modules {
            engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| e.to_string())?;
        }
        engine.add_data(data.clone()).map_err(|e| e.to_string())?;
        let compiled = engine
            .compile_with_entrypoint(&rule.as_str().into())
            .map_err(|e| format!("entrypoint {entrypoint} ({rule}): {e}"))?;
        let backend = match Compiler::compile_from_policy(&compiled, &[rule.as_str()]) {
            Ok(program) => {
                if let Ok(bytes) = program.serialize_binary()
                    && let Err(e) = cache.store(&key, &bytes)
                {
                    log::warn!("cannot cache the compiled policy: {e}");
                }
                Backend::Vm(Box::new(vm_for(program, data)?))
            }
            Err(e) => {
                log::warn!("policy {rule}: RVM cannot compile it ({e}); using the interpreter");
                Backend::Interpreter(Box::new(engine))
            }
        };
        Ok(Self { rule, backend })
    }

    /// Whether decisions run on the RVM (else the interpreter).
    pub(crate) fn uses_vm(&self) -> bool {
        matches!(self.backend, Backend::Vm(_))
    }
}

/// The cached RVM program for `key`, read through the one open file that
/// was verified against its digest (a damaged entry is evicted by the
/// cache, and never deserialized).
fn cached_program(cache: &ModuleCache, key: &str) -> Option<Arc<Program>> {
    let mut bytes = Vec::new();
    cache.open_verified(key)?.read_to_end(&mut bytes).ok()?;
    match Program::deserialize_binary(&bytes) {
        Ok(DeserializationResult::Complete(program)) => Some(Arc::new(program)),
        _ => {
            // A stale format: rebuild it.
            cache.evict(key);
            None
        }
    }
}

fn vm_for(program: Arc<Program>, data: Value) -> Result<RegoVM, String> {
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(MAX_INSTRUCTIONS);
    vm.set_data(data).map_err(|e| e.to_string())?;
    Ok(vm)
}

/// The input document as a regorus value, built straight from the tree.
/// Written by hand because regorus offers only serde (`Value::from` takes an
/// owned copy and goes through its deserializer, with an allocator-limit
/// check per entry): this is about a third faster, and runs on every
/// decision.
fn to_rego_value(value: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            (None, None) => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(to_rego_value).collect::<Vec<_>>()),
        Json::Object(entries) => Value::from(
            entries
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_rego_value(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}

fn timer(budget: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: budget,
        check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    }
}

impl Evaluate for RegoEvaluator {
    fn evaluate(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<serde_json::Value, String> {
        let input = to_rego_value(input);
        let value = match &mut self.backend {
            Backend::Vm(vm) => {
                vm.set_execution_timer_config(Some(timer(budget)));
                vm.set_input(input);
                vm.execute_entry_point_by_name(&self.rule)
                    .map_err(|e| e.to_string())
            }
            Backend::Interpreter(engine) => {
                engine.set_execution_timer_config(timer(budget));
                engine.set_input(input);
                engine
                    .eval_rule(self.rule.clone())
                    .map_err(|e| e.to_string())
            }
        }?;
        if value == Value::Undefined {
            return Err(format!("{} is undefined for this input", self.rule));
        }
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_input_conversion_matches_regorus_own() {
        let document = serde_json::json!({
            "big": u64::MAX, "negative": -42, "float": 1.5, "zero": 0,
            "text": "combining-é \u{10fffd}", "none": null, "yes": true,
            "list": [1, "two", [3], {"four": 4}], "empty": {}, "nothing": [],
            "nested": {"b": {"c": [null, false]}, "a": ""},
        });
        assert_eq!(to_rego_value(&document), Value::from(document.clone()));
    }

    #[test]
    fn test_cached_program_is_digest_checked_and_a_damaged_one_rebuilt() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = ModuleCache::new(root.path(), "rego-test");
        let modules = [(
            "policy.rego".to_string(),
            "package edgeshim\ndecision := {\"allow\": true}\n".to_string(),
        )];
        let data = serde_json::json!({});
        let compile = || {
            RegoEvaluator::compile(&modules, &data, "edgeshim/decision", &cache, "abc")
                .expect("compile")
        };
        assert!(compile().uses_vm());
        let key = edgeshim_cache::content_hash(b"abc:data.edgeshim.decision");
        let artifact = cache.artifact_path(&key);
        let mut bytes = std::fs::read(&artifact).expect("cached program");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&artifact, &bytes).expect("damage");
        assert!(cached_program(&cache, &key).is_none(), "never deserialized");
        assert!(!cache.entry_dir(&key).exists(), "evicted");
        assert!(compile().uses_vm());
        assert!(cached_program(&cache, &key).is_some(), "rebuilt");
    }
}
