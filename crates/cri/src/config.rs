//! Pod and container configs as kubelet sends them, built from a few fields.

use std::collections::HashMap;

use k8s_cri::v1::*;

/// A pod: name, namespace, uid, network mode, log folder, cgroup parent
/// (empty: containerd's default), annotations (what the pod's author
/// wrote; containerd passes those its runtime handler lists to the shim).
#[derive(Debug, Clone, Default)]
pub struct PodConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub host_network: bool,
    pub log_directory: String,
    pub cgroup_parent: String,
    pub annotations: Vec<(String, String)>,
}

impl PodConfig {
    pub fn to_cri(&self) -> PodSandboxConfig {
        let network = if self.host_network {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        };
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            // containerd refuses a hostname for a host-network sandbox.
            hostname: if self.host_network {
                String::new()
            } else {
                self.name.clone()
            },
            log_directory: self.log_directory.clone(),
            annotations: self.annotations.iter().cloned().collect(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".into(), self.name.clone()),
                ("io.kubernetes.pod.namespace".into(), self.namespace.clone()),
                ("io.kubernetes.pod.uid".into(), self.uid.clone()),
            ]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: network as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A container of a pod.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when non-empty.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Relative to the pod's log directory.
    pub log_path: String,
    pub memory_limit_bytes: i64,
    /// Join the pod's pid namespace (a pod with `shareProcessNamespace`);
    /// otherwise the container gets its own, as kubelet does by default.
    pub share_pid_namespace: bool,
}

impl ContainerSpec {
    pub fn to_cri(&self) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: self.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: self.command.clone(),
            args: self.args.clone(),
            envs: self
                .env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            log_path: self.log_path.clone(),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: self.memory_limit_bytes,
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: if self.share_pid_namespace {
                            NamespaceMode::Pod
                        } else {
                            NamespaceMode::Container
                        } as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }
}
