//! A CRI client, for the suite, the bench and operators (no crictl can be
//! installed on these nodes): pods and containers through containerd's CRI
//! v1 API, the calls kubelet makes, in the order it makes them.
//!
//! Owns: the gRPC connection over containerd's unix socket (tonic, from the
//! `k8s-cri` protos) behind a blocking [`Cri`] handle, and builders for the
//! pod and container configs kubelet would send ([`PodConfig`],
//! [`ContainerSpec`]).
//!
//! Leaves out: anything of the shim: it only talks to containerd.

mod config;

use std::path::Path;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use config::{ContainerSpec, PodConfig};
pub use k8s_cri::v1 as api;

/// A blocking CRI client (one current-thread Tokio runtime inside).
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    tokio: tokio::runtime::Runtime,
}

impl Cri {
    /// Connects to containerd's socket, e.g. `/run/containerd/containerd.sock`.
    pub fn connect(socket: &Path) -> Result<Self> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let path = socket.to_path_buf();
        let channel = tokio
            .block_on(
                // The URI is a placeholder: the connector below ignores it.
                Endpoint::try_from("http://[::]:0")?.connect_with_connector(tower::service_fn(
                    move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                        }
                    },
                )),
            )
            .with_context(|| format!("connect to CRI at {}", socket.display()))?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            tokio,
        })
    }

    /// RunPodSandbox with `runtime_handler` (the runtimeClassName's handler).
    pub fn run_pod(&mut self, pod: &PodSandboxConfig, runtime_handler: &str) -> Result<String> {
        let request = RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: runtime_handler.to_string(),
        };
        let response = self.tokio.block_on(self.runtime.run_pod_sandbox(request))?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    pub fn create_container(
        &mut self,
        pod_id: &str,
        container: &ContainerConfig,
        pod: &PodSandboxConfig,
    ) -> Result<String> {
        let request = CreateContainerRequest {
            pod_sandbox_id: pod_id.to_string(),
            config: Some(container.clone()),
            sandbox_config: Some(pod.clone()),
        };
        let response = self
            .tokio
            .block_on(self.runtime.create_container(request))?;
        Ok(response.into_inner().container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<()> {
        let request = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.tokio.block_on(self.runtime.start_container(request))?;
        Ok(())
    }

    pub fn stop_container(&mut self, id: &str, timeout_seconds: i64) -> Result<()> {
        let request = StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout_seconds,
        };
        self.tokio.block_on(self.runtime.stop_container(request))?;
        Ok(())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<()> {
        let request = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.tokio
            .block_on(self.runtime.remove_container(request))?;
        Ok(())
    }

    pub fn stop_pod(&mut self, id: &str) -> Result<()> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.tokio
            .block_on(self.runtime.stop_pod_sandbox(request))?;
        Ok(())
    }

    pub fn remove_pod(&mut self, id: &str) -> Result<()> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.tokio
            .block_on(self.runtime.remove_pod_sandbox(request))?;
        Ok(())
    }

    /// UpdateContainerResources with a new memory limit (bytes).
    pub fn update_memory_limit(&mut self, id: &str, bytes: i64) -> Result<()> {
        let request = UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: bytes,
                ..Default::default()
            }),
            ..Default::default()
        };
        self.tokio
            .block_on(self.runtime.update_container_resources(request))?;
        Ok(())
    }

    pub fn container_status(&mut self, id: &str) -> Result<ContainerStatus> {
        let request = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        let response = self
            .tokio
            .block_on(self.runtime.container_status(request))?;
        response
            .into_inner()
            .status
            .with_context(|| format!("container {id}: no status"))
    }

    pub fn pod_status(&mut self, id: &str) -> Result<PodSandboxStatus> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        let response = self
            .tokio
            .block_on(self.runtime.pod_sandbox_status(request))?;
        response
            .into_inner()
            .status
            .with_context(|| format!("pod {id}: no status"))
    }

    /// ExecSync of `command` in container `id`: its exit code and output.
    pub fn exec_sync(&mut self, id: &str, command: &[&str]) -> Result<ExecSyncResponse> {
        let request = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: command.iter().map(|c| c.to_string()).collect(),
            timeout: 10,
        };
        let response = self.tokio.block_on(self.runtime.exec_sync(request))?;
        Ok(response.into_inner())
    }

    pub fn container_stats(&mut self, id: &str) -> Result<ContainerStats> {
        let request = ContainerStatsRequest {
            container_id: id.to_string(),
        };
        let response = self.tokio.block_on(self.runtime.container_stats(request))?;
        response
            .into_inner()
            .stats
            .with_context(|| format!("container {id}: no stats"))
    }

    pub fn list_containers(&mut self) -> Result<Vec<Container>> {
        let request = ListContainersRequest { filter: None };
        let response = self.tokio.block_on(self.runtime.list_containers(request))?;
        Ok(response.into_inner().containers)
    }

    pub fn list_pods(&mut self) -> Result<Vec<PodSandbox>> {
        let request = ListPodSandboxRequest { filter: None };
        let response = self
            .tokio
            .block_on(self.runtime.list_pod_sandbox(request))?;
        Ok(response.into_inner().items)
    }

    /// The image's id if containerd's CRI namespace (`k8s.io`) has it.
    pub fn image_status(&mut self, image: &str) -> Result<Option<String>> {
        let request = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            verbose: false,
        };
        let response = self.tokio.block_on(self.images.image_status(request))?;
        Ok(response.into_inner().image.map(|i| i.id))
    }
}

/// A container's state as crictl prints it.
pub fn state_name(state: i32) -> &'static str {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerCreated) => "Created",
        Ok(ContainerState::ContainerRunning) => "Running",
        Ok(ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}
