//! The policy gate: every Create and Start the shim receives is put to a
//! [`Gate`] before anything happens for it.
//!
//! Owns: the decision contract ([`DecisionInput`] in, [`Decision`] out) and the
//! gates. Today only [`AllowAll`] (mode `off`) exists; the OPA-Wasm and Rego
//! backends of the policy issue plug in behind the same trait.
//!
//! Leaves out: reading bundles (the task service fills the input from the
//! bundle crate's view), and any effect on containers: a gate only answers.

use serde::Serialize;

/// Which request is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Start,
}

/// What kind of container the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    Wasm,
    Native,
    /// A pod's sandbox (pause) container.
    Sandbox,
}

/// The input document a policy sees.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionInput {
    pub action: Action,
    pub container_id: String,
    pub kind: ContainerKind,
    /// `process.args[0]` as the container sees it.
    pub entrypoint: String,
    /// Hex sha256 of the module, for Wasm containers.
    pub module_sha256: Option<String>,
    pub args: Vec<String>,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allow: bool,
    pub reasons: Vec<String>,
    /// Which policy decided (content hash or `off`).
    pub revision: String,
}

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
