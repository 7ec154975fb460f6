//! The input document a policy sees, built from an OCI bundle and from what
//! the shim itself knows about the task ([`ShimFacts`]).
//!
//! Its JSON form is the contract with policy authors:
//! `docs/policy/input.schema.json` describes it field by field and
//! `docs/policy/input.example.json` shows one. Maps are `BTreeMap`s so that
//! the same bundle always gives the same bytes.
//!
//! Facts and claims: `kind` is established by the shim (the file's content,
//! and [`ShimFacts`] for the pod sandbox), `module` is what the shim read,
//! `resources`, `mounts`, `namespaces` and `host_network` are what the spec
//! will make; annotations (and what is read from them: names, image, pod)
//! are what the request says, and a policy must treat them as claims.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use edgeshim_bundle::{Bundle, SANDBOX_ID_ANNOTATION, Workload};
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};
use serde::{Deserialize, Serialize};

/// Which request is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Start,
    /// New resources for a created or running container (CRI's
    /// UpdateContainerResources); the input carries them in
    /// `container.resources`.
    Update,
}

/// What kind of container the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    Wasm,
    Native,
    /// A pod's sandbox (pause) container: only when the shim established
    /// it ([`ShimFacts::own_sandbox`]), never from an annotation.
    Sandbox,
}

/// What the shim itself establishes about a task, as opposed to what the
/// request claims in its spec (annotations). Passed by the task service to
/// [`DecisionInput::from_bundle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShimFacts {
    /// This task is the one that started its own shim (containerd's first
    /// task of the shim process, whose id the shim was started for) and its
    /// id equals its `io.kubernetes.cri.sandbox-id` annotation: the pod's
    /// sandbox. Only then is the kind `sandbox`; the
    /// `io.kubernetes.cri.container-type` annotation alone never makes it
    /// one.
    pub own_sandbox: bool,
}

impl ShimFacts {
    /// The facts for task `id` of `bundle`, given whether this task started
    /// the shim process (which only the shim knows): it is the pod's sandbox
    /// when it did and its id is the sandbox id its spec names.
    pub fn for_task(started_shim: bool, id: &str, bundle: &Bundle) -> Self {
        Self {
            own_sandbox: started_shim && bundle.annotation(SANDBOX_ID_ANNOTATION) == Some(id),
        }
    }
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
    /// The input for `action` on container `id`, from its loaded bundle, its
    /// resolved workload and what the shim established about the task.
    /// `kind` is `sandbox` exactly when `facts.own_sandbox`; otherwise the
    /// entrypoint's content decides (`wasm` or `native`).
    pub fn from_bundle(
        action: Action,
        id: &str,
        bundle: &Bundle,
        workload: &Workload,
        facts: &ShimFacts,
    ) -> Self {
        let annotations: BTreeMap<String, String> = bundle
            .spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let text = |key: &str| annotations.get(key).cloned().unwrap_or_default();
        let sandbox = facts.own_sandbox;
        let (content_kind, entrypoint, module) = match workload {
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
                ContainerKind::Native,
                entrypoint.container_path.clone(),
                None,
            ),
        };
        let kind = if sandbox {
            ContainerKind::Sandbox
        } else {
            content_kind
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
            resources: bundle
                .resources()
                .map(ResourcesInput::from_spec)
                .unwrap_or_default(),
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

impl ResourcesInput {
    /// The fields of a spec's `linux.resources` the input carries.
    pub fn from_spec(r: &LinuxResources) -> Self {
        let cpu = r.cpu().as_ref();
        ResourcesInput {
            memory_limit: r.memory().as_ref().and_then(|m| m.limit()),
            cpu_quota: cpu.and_then(|c| c.quota()),
            cpu_period: cpu.and_then(|c| c.period()),
            cpu_shares: cpu.and_then(|c| c.shares()),
            pids_limit: r.pids().as_ref().map(|p| p.limit()),
        }
    }

    /// These values where set, `base`'s elsewhere: what a container has
    /// after an update that sets only some fields (the cgroup keeps what
    /// the update leaves out).
    pub fn over(&self, base: &ResourcesInput) -> ResourcesInput {
        ResourcesInput {
            memory_limit: self.memory_limit.or(base.memory_limit),
            cpu_quota: self.cpu_quota.or(base.cpu_quota),
            cpu_period: self.cpu_period.or(base.cpu_period),
            cpu_shares: self.cpu_shares.or(base.cpu_shares),
            pids_limit: self.pids_limit.or(base.pids_limit),
        }
    }
}

impl DecisionInput {
    /// The input deciding an update of this (create-time) input's container
    /// to `resources_json`, runtime-spec `LinuxResources` as JSON (what
    /// containerd sends in UpdateTaskRequest): action `update`, and as
    /// `container.resources` the new values over the create-time ones.
    pub fn for_update(&self, resources_json: &[u8]) -> Result<DecisionInput, String> {
        let requested: LinuxResources = serde_json::from_slice(resources_json)
            .map_err(|e| format!("resources are not runtime-spec LinuxResources: {e}"))?;
        let mut input = self.clone();
        input.action = Action::Update;
        input.container.resources =
            ResourcesInput::from_spec(&requested).over(&self.container.resources);
        Ok(input)
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

    /// A bundle running `entry` (a file with `bytes`) whose spec carries
    /// `annotations`.
    fn bundle(
        entry: &str,
        bytes: &[u8],
        annotations: serde_json::Value,
    ) -> (tempfile::TempDir, Bundle) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        std::fs::write(dir.path().join("rootfs").join(entry), bytes).expect("entry");
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": [format!("/{entry}")], "user": {"uid": 0, "gid": 0}},
            "annotations": annotations,
            "linux": {"resources": {"memory": {"limit": 1000}, "cpu": {"quota": 5, "period": 10}}},
        });
        std::fs::write(dir.path().join("config.json"), spec.to_string()).expect("spec");
        let bundle = Bundle::load(dir.path()).expect("bundle");
        (dir, bundle)
    }

    fn kind_of(bundle: &Bundle, id: &str, facts: ShimFacts) -> ContainerKind {
        let workload = bundle.workload(1 << 20).expect("workload");
        DecisionInput::from_bundle(Action::Create, id, bundle, &workload, &facts)
            .container
            .kind
    }

    #[test]
    fn test_a_sandbox_annotation_alone_does_not_make_a_sandbox() {
        let claims = serde_json::json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": "pod1",
        });
        let (_native_dir, native) = bundle("pause", b"\x7fELF....", claims.clone());
        let (_wasm_dir, wasm) = bundle("m.wasm", b"\0asm\x01\0\0\0", claims);
        // What the request says, without the shim's fact: its content decides.
        assert_eq!(
            kind_of(&native, "pod1", ShimFacts::default()),
            ContainerKind::Native
        );
        assert_eq!(
            kind_of(&wasm, "pod1", ShimFacts::default()),
            ContainerKind::Wasm
        );
        // A task that did not start its shim, or whose id is not the pod's.
        assert_eq!(
            ShimFacts::for_task(false, "pod1", &native),
            ShimFacts::default()
        );
        assert_eq!(
            ShimFacts::for_task(true, "other", &native),
            ShimFacts::default()
        );
        // The task that started its own shim and is the pod's sandbox.
        let facts = ShimFacts::for_task(true, "pod1", &native);
        assert!(facts.own_sandbox);
        assert_eq!(kind_of(&native, "pod1", facts), ContainerKind::Sandbox);
    }

    #[test]
    fn test_the_fact_makes_a_sandbox_without_any_annotation_saying_so() {
        let (_dir, native) = bundle("pause", b"\x7fELF....", serde_json::json!({}));
        let facts = ShimFacts { own_sandbox: true };
        assert_eq!(kind_of(&native, "p", facts), ContainerKind::Sandbox);
        assert_eq!(
            ShimFacts::for_task(true, "p", &native),
            ShimFacts::default()
        );
    }

    #[test]
    fn test_update_input_carries_the_new_resources_over_the_create_time_ones() {
        let (_dir, wasm) = bundle("m.wasm", b"\0asm\x01\0\0\0", serde_json::json!({}));
        let workload = wasm.workload(1 << 20).expect("workload");
        let created = DecisionInput::from_bundle(
            Action::Create,
            "c",
            &wasm,
            &workload,
            &ShimFacts::default(),
        );
        assert_eq!(created.container.resources.memory_limit, Some(1000));
        let update = created
            .for_update(br#"{"memory": {"limit": 2000}, "pids": {"limit": 7}}"#)
            .expect("resources");
        assert_eq!(update.action, Action::Update);
        assert_eq!(
            update.container.resources,
            ResourcesInput {
                memory_limit: Some(2000),
                cpu_quota: Some(5),
                cpu_period: Some(10),
                cpu_shares: None,
                pids_limit: Some(7),
            }
        );
        assert_eq!(update.container.id, "c");
        assert_eq!(
            serde_json::to_value(&update).expect("json")["action"],
            "update"
        );
        let err = created.for_update(b"{ nope").expect_err("not JSON");
        assert!(err.contains("LinuxResources"), "{err}");
    }

    #[test]
    fn test_env_map_splits_at_the_first_equals_and_later_entries_win() {
        let env = env_map(&["A=1".into(), "B=x=y".into(), "A=2".into(), "C".into()]);
        assert_eq!(env["A"], "2");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env["C"], "");
    }
}
