//! The policy gate: every Create and Start the shim receives is put to a
//! [`Gate`] before anything happens for it.
//!
//! Owns: the decision contract ([`DecisionInput`] in, built from the bundle
//! crate's view; [`Decision`] out), reading policies in OPA's formats (Rego
//! source on `regorus`, OPA-compiled Wasm on `opa-wasm`), a policy's load
//! check (its data-only work, done once per load), the gate's config, hot
//! reload, fail modes, the network a decision grants (its `network`
//! section, or the config's `network_default`), the node's last good config (so that losing the
//! config file never turns the gate off), and the decision log.
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
mod last_good;
pub mod rollout;
mod source;

pub use decision::{Decision, PolicyAnswer, read_output};
pub use edgeshim_network::{NetworkDefault, NetworkGrant, NetworkRules, Refusal};
pub use eval::{LoadedPolicy, PolicyFormat, WasmHost};
pub use gate::{PolicyGate, RECHECK_EVERY};
pub use input::{
    Action, ContainerInput, ContainerKind, DecisionInput, ModuleInput, MountInput, NamespaceInput,
    NodeInput, PodInput, ResourcesInput, ShimFacts,
};
pub use source::{PolicyCode, PolicySource};

/// Decides requests. Implementations must be cheap: they sit on every start.
pub trait Gate: Send + Sync + 'static {
    fn decide(&self, input: &DecisionInput) -> Decision;

    /// The cap on a Wasm entrypoint's size (policy.toml `max_module_bytes`,
    /// [`config::DEFAULT_MAX_MODULE_BYTES`] without a config): the task
    /// service refuses a bigger module by its size, before reading it.
    fn max_module_bytes(&self) -> u64 {
        config::DEFAULT_MAX_MODULE_BYTES
    }

    /// Logs that container `container` was refused an address (its engine
    /// checked it against the decision's grant); `held_back` refusals of
    /// it went unlogged before this one (rate limit).
    fn network_refused(&self, _container: &str, _refusal: &Refusal, _held_back: u64) {}
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
            network: NetworkGrant::All,
        }
    }
}
