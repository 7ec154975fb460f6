//! The input document a policy sees, built from an OCI bundle.
//!
//! Its JSON form is the contract with policy authors:
//! `docs/policy/input.schema.json` describes it field by field and
//! `docs/policy/input.example.json` shows one. Maps are `BTreeMap`s so that
//! the same bundle always gives the same bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use edgeshim_bundle::{Bundle, CONTAINER_TYPE_ANNOTATION, SANDBOX_ID_ANNOTATION, Workload};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

/// Which request is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Start,
}

/// What kind of container the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    Wasm,
    Native,
    /// A pod's sandbox (pause) container.
    Sandbox,
}

/// The whole input document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub action: Action,
    pub container: ContainerInput,
    pub pod: Option<PodInput>,
    pub node: NodeInput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerInput {
    pub id: String,
    pub name: String,
    pub kind: ContainerKind,
    pub image: String,
    pub entrypoint: String,
    pub module: Option<ModuleInput>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<MountInput>,
    pub resources: ResourcesInput,
    pub namespaces: Vec<NamespaceInput>,
    pub host_network: bool,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleInput {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountInput {
    pub destination: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Vec<String>,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesInput {
    pub memory_limit: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodInput {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInput {
    pub name: String,
}

/// CRI's annotations read here (containerd 1.6 and later).
const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
const SANDBOX_IMAGE_NAME: &str = "io.kubernetes.cri.sandbox-image-name";
const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

impl DecisionInput {
    /// The input for `action` on container `id`, from its loaded bundle and
    /// resolved workload.
    pub fn from_bundle(action: Action, id: &str, bundle: &Bundle, workload: &Workload) -> Self {
        let annotations: BTreeMap<String, String> = bundle
            .spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let text = |key: &str| annotations.get(key).cloned().unwrap_or_default();
        let sandbox = bundle.annotation(CONTAINER_TYPE_ANNOTATION) == Some("sandbox");
        let (kind, entrypoint, module) = match workload {
            Workload::Wasm {
                entrypoint, module, ..
            } => (
                ContainerKind::Wasm,
                entrypoint.container_path.clone(),
                Some(ModuleInput {
                    sha256: module.sha256.clone(),
                    size: module.bytes.len() as u64,
                }),
            ),
            Workload::Native { entrypoint } => (
                if sandbox {
                    ContainerKind::Sandbox
                } else {
                    ContainerKind::Native
                },
                entrypoint.container_path.clone(),
                None,
            ),
        };
        let image = if sandbox {
            text(SANDBOX_IMAGE_NAME)
        } else {
            text(IMAGE_NAME)
        };
        let pod = bundle
            .annotation(SANDBOX_ID_ANNOTATION)
            .map(|pod_id| PodInput {
                id: pod_id.to_string(),
                name: text(SANDBOX_NAME),
                namespace: text(SANDBOX_NAMESPACE),
                uid: text(SANDBOX_UID),
            });
        let container = ContainerInput {
            id: id.to_string(),
            name: text(CONTAINER_NAME),
            kind,
            image,
            entrypoint,
            module,
            args: bundle.args().map(<[String]>::to_vec).unwrap_or_default(),
            env: env_map(bundle.env()),
            mounts: mounts(&bundle.spec),
            resources: resources(bundle),
            namespaces: namespaces(&bundle.spec),
            host_network: !has_network_namespace(&bundle.spec),
            annotations,
        };
        DecisionInput {
            action,
            container,
            pod,
            node: NodeInput {
                name: node_name().to_string(),
            },
        }
    }
}

fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (entry.clone(), String::new()),
        })
        .collect()
}

fn mounts(spec: &Spec) -> Vec<MountInput> {
    let Some(mounts) = spec.mounts() else {
        return Vec::new();
    };
    mounts
        .iter()
        .map(|m| {
            let options = m.options().clone().unwrap_or_default();
            let is_bind = options.iter().any(|o| o == "bind" || o == "rbind");
            let kind = match m.typ() {
                Some(t) if t != "none" => t.clone(),
                _ if is_bind => "bind".to_string(),
                Some(t) => t.clone(),
                None => String::new(),
            };
            MountInput {
                destination: m.destination().display().to_string(),
                source: m
                    .source()
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_default(),
                kind,
                readonly: options.iter().any(|o| o == "ro"),
                options,
            }
        })
        .collect()
}

fn resources(bundle: &Bundle) -> ResourcesInput {
    let Some(r) = bundle.resources() else {
        return ResourcesInput::default();
    };
    let cpu = r.cpu().as_ref();
    ResourcesInput {
        memory_limit: r.memory().as_ref().and_then(|m| m.limit()),
        cpu_quota: cpu.and_then(|c| c.quota()),
        cpu_period: cpu.and_then(|c| c.period()),
        cpu_shares: cpu.and_then(|c| c.shares()),
        pids_limit: r.pids().as_ref().map(|p| p.limit()),
    }
}

fn namespace_list(spec: &Spec) -> &[oci_spec::runtime::LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
}

fn namespaces(spec: &Spec) -> Vec<NamespaceInput> {
    namespace_list(spec)
        .iter()
        .map(|ns| NamespaceInput {
            kind: namespace_kind(ns.typ()).to_string(),
            path: ns.path().as_ref().map(|p| p.display().to_string()),
        })
        .collect()
}

fn has_network_namespace(spec: &Spec) -> bool {
    namespace_list(spec)
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Network)
}

/// The spec's own names for namespace types (as in config.json).
fn namespace_kind(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// The node's hostname, read once per process.
fn node_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_documented_example_round_trips_through_the_types() {
        let text = include_str!("../../../docs/policy/input.example.json");
        let input: DecisionInput = serde_json::from_str(text).expect("example parses");
        let back = serde_json::to_value(&input).expect("serialises");
        let original: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(back, original);
    }

    #[test]
    fn test_env_map_splits_at_the_first_equals_and_later_entries_win() {
        let env = env_map(&["A=1".into(), "B=x=y".into(), "A=2".into(), "C".into()]);
        assert_eq!(env["A"], "2");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env["C"], "");
    }
}
