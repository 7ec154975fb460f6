//! `edgeshim-crictl`: a crictl-style CLI over containerd's CRI API, for
//! nodes where crictl cannot be installed.
//!
//! ```text
//! edgeshim-crictl run --runtime wasmtime --image docker.io/edgeshim/demo:latest --name hello
//! edgeshim-crictl ps -a
//! edgeshim-crictl logs CONTAINER_ID
//! edgeshim-crictl stopp POD_ID && edgeshim-crictl rmp POD_ID
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use edgeshim_cri::{ContainerSpec, Cri, PodConfig, state_name};

#[derive(Parser)]
#[command(about = "A crictl-style CRI client for containerd")]
struct Cli {
    /// CRI socket (crictl's --runtime-endpoint; `unix://` prefix optional)
    #[arg(
        short = 'r',
        long,
        env = "CONTAINER_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    runtime_endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct PodArgs {
    /// Pod name
    #[arg(long, default_value = "edgeshim-pod")]
    pod_name: String,
    /// Pod namespace
    #[arg(long, default_value = "default")]
    pod_namespace: String,
    /// Pod uid
    #[arg(long, default_value = "edgeshim-pod-uid")]
    pod_uid: String,
    /// Share the node's network namespace
    #[arg(long)]
    host_network: bool,
    /// Folder for the containers' CRI logs
    #[arg(long, default_value = "/var/log/pods/edgeshim")]
    log_dir: String,
    /// The pod's cgroup parent (a name ending in .slice gives systemd-style
    /// cgroup paths, as kubelet's systemd driver does)
    #[arg(long, default_value = "")]
    cgroup_parent: String,
}

#[derive(Args)]
struct ContainerArgs {
    /// Container name
    #[arg(long)]
    name: String,
    /// Image reference (must be present in containerd's k8s.io namespace)
    #[arg(long)]
    image: String,
    /// Replaces the image's entrypoint
    #[arg(long)]
    command: Vec<String>,
    /// KEY=VALUE; repeat for more
    #[arg(long)]
    env: Vec<String>,
    /// Memory limit in bytes
    #[arg(long, default_value_t = 0)]
    memory_limit: i64,
    /// Join the pod's pid namespace (shareProcessNamespace)
    #[arg(long)]
    share_pid: bool,
    /// Arguments
    args: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pod sandbox; prints its id
    Runp {
        #[command(flatten)]
        pod: PodArgs,
        /// Runtime handler (the RuntimeClass's handler)
        #[arg(long, default_value = "wasmtime")]
        runtime: String,
    },
    /// Create a container in a pod (pass the pod's flags as for runp)
    Create {
        pod_id: String,
        #[command(flatten)]
        pod: PodArgs,
        #[command(flatten)]
        container: ContainerArgs,
    },
    /// Run a pod with one container and start it: runp + create + start
    Run {
        #[command(flatten)]
        pod: PodArgs,
        #[command(flatten)]
        container: ContainerArgs,
        #[arg(long, default_value = "wasmtime")]
        runtime: String,
    },
    /// Start a created container
    Start { id: String },
    /// Stop a container
    Stop {
        id: String,
        #[arg(long, default_value_t = 10)]
        timeout: i64,
    },
    /// Remove a container
    Rm { id: String },
    /// Stop a pod
    Stopp { id: String },
    /// Remove a pod
    Rmp { id: String },
    /// List containers (-a: exited ones too)
    Ps {
        #[arg(short, long)]
        all: bool,
    },
    /// List pods
    Pods,
    /// A container's status as JSON
    Inspect { id: String },
    /// A pod's status as JSON
    Inspectp { id: String },
    /// A container's stats as JSON
    Stats { id: String },
    /// A container's log, without the CRI prefixes
    Logs { id: String },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let socket = PathBuf::from(cli.runtime_endpoint.trim_start_matches("unix://"));
    let mut cri = Cri::connect(&socket)?;
    match cli.command {
        Command::Runp { pod, runtime } => {
            println!("{}", cri.run_pod(&pod_config(&pod).to_cri(), &runtime)?)
        }
        Command::Create {
            pod_id,
            pod,
            container,
        } => {
            let pod = pod_config(&pod).to_cri();
            println!(
                "{}",
                cri.create_container(&pod_id, &container_spec(&container)?.to_cri(), &pod)?
            );
        }
        Command::Run {
            pod,
            container,
            runtime,
        } => {
            let pod = pod_config(&pod).to_cri();
            let pod_id = cri.run_pod(&pod, &runtime)?;
            let id = cri.create_container(&pod_id, &container_spec(&container)?.to_cri(), &pod)?;
            cri.start_container(&id)?;
            println!("{id}");
        }
        Command::Start { id } => cri.start_container(&id)?,
        Command::Stop { id, timeout } => cri.stop_container(&id, timeout)?,
        Command::Rm { id } => cri.remove_container(&id)?,
        Command::Stopp { id } => cri.stop_pod(&id)?,
        Command::Rmp { id } => cri.remove_pod(&id)?,
        Command::Ps { all } => {
            println!(
                "{:<15} {:<30} {:<10} {:<15} POD ID",
                "CONTAINER", "IMAGE", "STATE", "NAME"
            );
            for c in cri.list_containers()? {
                let state = state_name(c.state);
                if !all && state != "Running" {
                    continue;
                }
                let image = c.image.map(|i| i.image).unwrap_or_default();
                let name = c.metadata.map(|m| m.name).unwrap_or_default();
                println!(
                    "{:<15} {:<30} {:<10} {:<15} {}",
                    short(&c.id),
                    image,
                    state,
                    name,
                    short(&c.pod_sandbox_id)
                );
            }
        }
        Command::Pods => {
            println!(
                "{:<15} {:<10} {:<25} {:<15} RUNTIME",
                "POD ID", "STATE", "NAME", "NAMESPACE"
            );
            for p in cri.list_pods()? {
                let (name, namespace) = p
                    .metadata
                    .map(|m| (m.name, m.namespace))
                    .unwrap_or_default();
                let state = if p.state == 0 { "Ready" } else { "NotReady" };
                println!(
                    "{:<15} {:<10} {:<25} {:<15} {}",
                    short(&p.id),
                    state,
                    name,
                    namespace,
                    p.runtime_handler
                );
            }
        }
        Command::Inspect { id } => println!(
            "{}",
            serde_json::to_string_pretty(&cri.container_status(&id)?)?
        ),
        Command::Inspectp { id } => {
            println!("{}", serde_json::to_string_pretty(&cri.pod_status(&id)?)?)
        }
        Command::Stats { id } => println!(
            "{}",
            serde_json::to_string_pretty(&cri.container_stats(&id)?)?
        ),
        Command::Logs { id } => {
            let path = cri.container_status(&id)?.log_path;
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
            for line in text.lines() {
                // <time> <stream> <P|F> <text>: print the text, joining partial lines.
                let mut fields = line.splitn(4, ' ');
                let (_, _, tag, body) =
                    (fields.next(), fields.next(), fields.next(), fields.next());
                match tag {
                    Some("P") => print!("{}", body.unwrap_or_default()),
                    _ => println!("{}", body.unwrap_or_default()),
                }
            }
        }
    }
    Ok(())
}

fn pod_config(args: &PodArgs) -> PodConfig {
    PodConfig {
        name: args.pod_name.clone(),
        namespace: args.pod_namespace.clone(),
        uid: args.pod_uid.clone(),
        host_network: args.host_network,
        log_directory: args.log_dir.clone(),
        cgroup_parent: args.cgroup_parent.clone(),
        annotations: Vec::new(),
    }
}

fn container_spec(args: &ContainerArgs) -> Result<ContainerSpec> {
    let env = args
        .env
        .iter()
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {e:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    Ok(ContainerSpec {
        name: args.name.clone(),
        image: args.image.clone(),
        command: args.command.clone(),
        args: args.args.clone(),
        env,
        log_path: format!("{}.log", args.name),
        memory_limit_bytes: args.memory_limit,
        share_pid_namespace: args.share_pid,
    })
}

/// Ids as crictl shows them: the first 13 characters.
fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}
