//! The policy gate: every Create and Start the shim receives is put to a
//! [`Gate`] before anything happens for it.
//!
//! Owns: the decision contract ([`DecisionInput`] in, built from the bundle
//! crate's view; [`Decision`] out), reading policies in OPA's formats (Rego
//! source on `regorus`, OPA-compiled Wasm on `opa-wasm`), a policy's load
//! check (its data-only work, done once per load), the gate's config, hot
//! reload, fail modes, and the decision log.
//!
//! Leaves out: any effect on containers (a gate only answers; the task
//! service refuses the request), and the network: nothing here ever needs
//! it.

pub mod config;
mod decision;
pub mod decision_log;
mod eval;
mod gate;
mod input;
mod source;

pub use decision::{Decision, read_output};
pub use eval::{LoadedPolicy, PolicyFormat, WasmHost};
pub use gate::{PolicyGate, RECHECK_EVERY};
pub use input::{
    Action, ContainerInput, ContainerKind, DecisionInput, ModuleInput, MountInput, NamespaceInput,
    NodeInput, PodInput, ResourcesInput,
};
pub use source::{PolicyCode, PolicySource};

/// Decides requests. Implementations must be cheap: they sit on every start.
pub trait Gate: Send + Sync + 'static {
    fn decide(&self, input: &DecisionInput) -> Decision;
}

/// Mode `off`: every request is allowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Gate for AllowAll {
    fn decide(&self, _input: &DecisionInput) -> Decision {
        Decision {
            allow: true,
            reasons: Vec::new(),
            revision: "off".into(),
        }
    }
}
