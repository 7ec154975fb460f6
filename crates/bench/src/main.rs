//! `edgeshim-bench`: measures what edge users choose a Wasm runtime by,
//! through containerd's CRI API exactly as crictl and kubelet drive it, for
//! any runtime handlers configured in containerd, side by side.
//!
//! Scenarios: `cold` (sequential pods, each step timed), `burst` (pods at
//! once), `density` (sleeping containers up to a target, memory per step),
//! `policy` (decision latency in-process, gate cost, a new process's first
//! decision), `aot` (first start, which compiles, against the second,
//! which loads the cached native code), `shim` (the shim alone over its
//! ttrpc Task API, no containerd); `cold --gate enforce,off` is the policy
//! overhead on a start; `cycles` (one pod, thousands of containers created,
//! run to exit and removed one after another, a watchdog on every cycle,
//! the pod shim's descriptors, threads and memory sampled); `network` (an
//! echo server in a pod, a client at the pod's IP: connections per second
//! and round trips, Wasm against native; and the egress check's own cost);
//! `ctr` (`ctr run --rm` of a hello program, the CLI's whole run timed, as
//! a new user first tries a runtime);
//! `soak` (thousands of cycles over a few long-lived pods and pods made
//! along the way, every leak a count would show judged, RELIABILITY.md).
//! Each writes a JSON file; `report` turns the files into BENCHMARKS.md's
//! tables and SVG charts.

mod aot;
mod breakdown;
mod burst;
mod charts;
mod cold;
mod ctr_run;
mod cycles;
mod density;
mod egress;
mod exporter;
mod images;
mod memory;
mod network;
mod pod_run;
mod policy;
mod report;
mod shim_only;
mod soak;
mod stats;
mod variant;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use edgeshim_cri::Cri;
use indicatif::{ProgressBar, ProgressStyle};

use crate::images::Program;
use crate::variant::Variant;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmarks through CRI: cold start, burst, density, policy, cycles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Target {
    /// containerd's socket (as for crictl)
    #[arg(
        long,
        env = "EDGESHIM_CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    address: PathBuf,
    /// Runtime handlers to compare (repeat or comma-separate); `runc` runs busybox
    #[arg(
        long = "handler",
        value_delimiter = ',',
        default_value = "wasmtime,runc"
    )]
    handlers: Vec<String>,
    /// Where result JSON files go
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Sequential cold starts, handlers interleaved
    Cold {
        #[command(flatten)]
        target: Target,
        #[arg(short, default_value_t = 30)]
        n: usize,
        #[arg(long, value_enum, default_value_t = Program::Hello)]
        program: Program,
        /// Gate modes to compare for the non-runc handlers (e.g. enforce,off);
        /// needs --policy-config
        #[arg(long, value_delimiter = ',')]
        gate: Vec<String>,
        /// The shims' policy config (hack/containerd.sh env prints it)
        #[arg(long, env = "EDGESHIM_POLICY_CONFIG")]
        policy_config: Option<PathBuf>,
        /// Compare starts with the node's metrics exporter running and not
        /// (`on,off`) for the non-runc handlers
        #[arg(long, value_delimiter = ',')]
        exporter: Vec<String>,
        /// Result file name (default: cold, cold-gate with --gate,
        /// cold-exporter with --exporter)
        #[arg(long)]
        name: Option<String>,
        /// The shims' decision log: after a plain run (no --gate, no
        /// --exporter), each Wasm pod shim's first decision is read from it
        /// (policy-in-situ)
        #[arg(long, env = "EDGESHIM_DECISION_LOG")]
        decision_log: Option<PathBuf>,
    },
    /// `ctr run --rm` of a hello program, the whole command timed, handlers
    /// interleaved (a handler h is the runtime io.containerd.h.v1; runc is
    /// io.containerd.runc.v2 with busybox)
    Ctr {
        #[command(flatten)]
        target: Target,
        #[arg(short, default_value_t = 20)]
        n: usize,
    },
    /// N pods at once
    Burst {
        #[command(flatten)]
        target: Target,
        #[arg(short, default_value_t = 20)]
        n: usize,
        #[arg(long, value_enum, default_value_t = Program::Hello)]
        program: Program,
    },
    /// Sleeping containers up to a target count
    Density {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Containers between two memory readings
        #[arg(long, default_value_t = 25)]
        step: usize,
        /// Containers per pod (1: one pod, so one shim, each, as kubelet
        /// usually runs them)
        #[arg(long, default_value_t = 1)]
        per_pod: usize,
        /// Drop the kernel's clean caches (`sync`, `drop_caches`) before
        /// each node-memory reading: steadier readings, at the cost of the
        /// whole node's page cache (hack/bench.sh passes it; the suite's
        /// small run does not, so that it leaves the node's caches alone)
        #[arg(long)]
        drop_caches: bool,
    },
    /// First start (empty module cache) against second start (cached), compute module
    Aot {
        #[command(flatten)]
        target: Target,
        #[arg(short, default_value_t = 5)]
        n: usize,
        /// The shims' module cache (hack/containerd.sh env prints it)
        #[arg(long, env = "EDGESHIM_CACHE_DIR")]
        cache_dir: PathBuf,
    },
    /// One pod, then N create/start/exit/remove cycles in it, each under a
    /// deadline (a hang stops the run and says where)
    Cycles {
        /// containerd's socket (as for crictl)
        #[arg(
            long,
            env = "EDGESHIM_CONTAINERD_ADDRESS",
            default_value = "/run/containerd/containerd.sock"
        )]
        address: PathBuf,
        /// The pod's runtime handler
        #[arg(long, default_value = "wasmtime")]
        handler: String,
        #[arg(short, default_value_t = 10_000)]
        n: usize,
        /// Cycles between two samples of the shim and the state folders
        #[arg(long, default_value_t = 500)]
        sample_every: usize,
        /// Seconds one cycle may take before the run is called hung
        #[arg(long, default_value_t = 60.0)]
        deadline: f64,
        /// containerd's state folder (default: `state` beside the socket if
        /// there is one, as hack/containerd.sh keeps it, else /run/containerd)
        #[arg(long)]
        containerd_state: Option<PathBuf>,
        #[arg(long, default_value = "benches/results")]
        out: PathBuf,
    },
    /// Thousands of create/start/exit/remove cycles over a few long-lived
    /// pods, pods made and removed along the way; judges every count and
    /// each process's RSS for growth (RELIABILITY.md)
    Soak {
        /// containerd's socket (as for crictl)
        #[arg(
            long,
            env = "EDGESHIM_CONTAINERD_ADDRESS",
            default_value = "/run/containerd/containerd.sock"
        )]
        address: PathBuf,
        /// Runtime handlers, one run each (repeat or comma-separate)
        #[arg(long = "handler", value_delimiter = ',', default_value = "wasmtime")]
        handlers: Vec<String>,
        #[arg(short, default_value_t = 10_000)]
        n: usize,
        /// Long-lived pods the cycles go round
        #[arg(long, default_value_t = 3)]
        pods: usize,
        /// Cycles between two pods created, run and removed along the way
        #[arg(long, default_value_t = 100)]
        pod_every: usize,
        /// Cycles between two creates the library must refuse (with --library)
        #[arg(long, default_value_t = 50)]
        deny_every: usize,
        #[arg(long, default_value_t = 500)]
        sample_every: usize,
        /// The first cycle whose sample counts for the verdict
        #[arg(long, default_value_t = 1000)]
        steady_from: usize,
        /// RSS growth allowed per 1,000 cycles (KB, 95% bound)
        #[arg(long, default_value_t = 64.0)]
        rss_limit_kb: f64,
        /// Report RSS growth without judging it (runs too short for a fit)
        #[arg(long)]
        rss_not_judged: bool,
        /// Seconds one cycle may take before the run is called hung
        #[arg(long, default_value_t = 60.0)]
        deadline: f64,
        /// Serve this policy library (the example's folder) through the
        /// gate for the run, its decision log rotating at --log-max-bytes
        #[arg(long)]
        library: Option<PathBuf>,
        #[arg(long, env = "EDGESHIM_POLICY_CONFIG")]
        policy_config: Option<PathBuf>,
        #[arg(long, default_value_t = 65_536)]
        log_max_bytes: u64,
        /// containerd's state folder (default: as for cycles)
        #[arg(long)]
        containerd_state: Option<PathBuf>,
        #[arg(long, default_value = "benches/results")]
        out: PathBuf,
    },
    /// The shim alone over its ttrpc Task API, as containerd drives it, without containerd
    Shim {
        /// Shim binaries to measure (repeat or comma-separate)
        #[arg(
            long = "shim",
            value_delimiter = ',',
            default_value = "target/release/containerd-shim-wasmtime-v1"
        )]
        shims: Vec<PathBuf>,
        #[arg(short, default_value_t = 200)]
        n: usize,
        #[arg(long, default_value = "benches/results")]
        out: PathBuf,
    },
    /// A TCP echo server in a pod (bridge network), a client at its IP;
    /// then the egress check's own cost
    Network {
        #[command(flatten)]
        target: Target,
        /// Connections (and 4x as many round trips on one connection)
        #[arg(short, default_value_t = 500)]
        n: usize,
    },
    /// (internal) The guarded side of the egress check's cost
    #[command(hide = true)]
    EgressChild {
        channel: i32,
        tcp_port: u16,
        udp_port: u16,
        n: usize,
    },
    /// Policy decision latency, gate cost and first decision of a new process
    Policy {
        #[arg(short, default_value_t = 10_000)]
        n: usize,
        #[arg(long, default_value = "benches/results")]
        out: PathBuf,
    },
    /// (internal) One timed first decision in this process
    #[command(hide = true)]
    PolicyFirst {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        cache: PathBuf,
    },
    /// Rebuild BENCHMARKS.md's generated part and the charts from result files
    Report {
        #[arg(long, default_value = "benches/results")]
        results: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
        #[arg(long, default_value = "benches/charts")]
        charts: PathBuf,
        /// Where the soak's section goes (when soak.json is among the results)
        #[arg(long, default_value = "RELIABILITY.md")]
        reliability: PathBuf,
    },
}

/// The example library served for a soak run (`containerd_state`'s sibling
/// `root` is containerd's root, as hack/containerd.sh lays them out).
fn soak_gate(
    library: &Path,
    policy_config: Option<&Path>,
    containerd_state: &Path,
    log_max_bytes: u64,
) -> Result<soak::gate::LibraryGate> {
    let Some(config) = policy_config else {
        bail!("--library needs --policy-config (or EDGESHIM_POLICY_CONFIG)");
    };
    let root = containerd_state
        .parent()
        .map(|dir| dir.join("root"))
        .filter(|root| root.is_dir())
        .unwrap_or_else(|| PathBuf::from("/var/lib/containerd"));
    soak::gate::LibraryGate::serve(config, library, &root, containerd_state, log_max_bytes, 2)
}

/// Replaces the part of `file` between the markers `<!-- BEGIN what -->`
/// and `<!-- END what -->` with `generated` (appends both when absent).
fn replace_generated(file: &Path, what: &str, generated: &str) -> Result<()> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let begin = format!("<!-- BEGIN {what} -->");
    let end = format!("<!-- END {what} -->");
    let updated = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{begin}\n{generated}{}", &text[..b], &text[e..])
        }
        _ => format!("{text}\n{begin}\n{generated}{end}\n"),
    };
    std::fs::write(file, updated)?;
    eprintln!("wrote {}", file.display());
    Ok(())
}

/// A progress bar on stderr for long runs.
pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

fn connect(address: &Path) -> Result<(Cri, tempfile::TempDir)> {
    let mut cri = Cri::connect(address).with_context(|| format!("CRI at {}", address.display()))?;
    images::prepare(address, &mut cri)?;
    let logs = tempfile::tempdir()?;
    Ok((cri, logs))
}

fn variants(target: &Target, gate: &[String], config: Option<&PathBuf>) -> Result<Vec<Variant>> {
    let mut variants = Vec::new();
    for handler in &target.handlers {
        if gate.is_empty() || handler == "runc" {
            variants.push(Variant {
                handler: handler.clone(),
                gate: None,
                exporter: None,
            });
            continue;
        }
        let Some(config) = config else {
            bail!("--gate needs --policy-config (or EDGESHIM_POLICY_CONFIG)");
        };
        for mode in gate {
            variants.push(Variant {
                handler: handler.clone(),
                gate: Some((mode.clone(), config.clone())),
                exporter: None,
            });
        }
    }
    Ok(variants)
}

/// Each Wasm handler's variant twice or more: with the exporter in each
/// of `states` (`on`, `off`).
fn with_exporter(variants: Vec<Variant>, states: &[String]) -> Result<Vec<Variant>> {
    let switch = std::sync::Arc::new(exporter::Switch::from_env()?);
    let mut out = Vec::new();
    for variant in variants {
        if variant.handler == "runc" {
            out.push(variant);
            continue;
        }
        for state in states {
            let on = match state.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("--exporter takes on and off, not {other}"),
            };
            out.push(Variant {
                exporter: Some((on, switch.clone())),
                ..variant.clone()
            });
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Cold {
            target,
            n,
            program,
            gate,
            policy_config,
            exporter,
            name,
            decision_log,
        } => {
            let mut variants = variants(&target, &gate, policy_config.as_ref())?;
            if !exporter.is_empty() {
                variants = with_exporter(variants, &exporter)?;
            }
            let (mut cri, logs) = connect(&target.address)?;
            let results = cold::run(&mut cri, &variants, program, n, logs.path())?;
            // Leave the gate as it was found: enforcing.
            if let Some(variant) = variants.iter().find(|v| v.gate.is_some()) {
                let mut restore = variant.clone();
                if let Some((mode, _)) = &mut restore.gate {
                    *mode = "enforce".into();
                }
                restore.apply()?;
            }
            let default_name = match (gate.is_empty(), exporter.is_empty()) {
                (false, _) => "cold-gate",
                (true, false) => "cold-exporter",
                (true, true) => "cold",
            };
            report::save(
                &target.out,
                name.as_deref().unwrap_or(default_name),
                &results,
            )?;
            match decision_log {
                Some(log) if default_name == "cold" && program == Program::Hello => {
                    let in_situ = variants
                        .iter()
                        .filter(|v| v.handler != "runc")
                        .map(|v| {
                            let pods: Vec<String> = (0..n)
                                .map(|round| {
                                    let name = format!("cold-{}-{round}", v.slug());
                                    format!("bench/{}", pod_run::unique_name(&name))
                                })
                                .collect();
                            policy::first_decisions_in_situ(&log, &v.handler, &pods)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    report::save(&target.out, "policy-in-situ", &in_situ)
                }
                _ => Ok(()),
            }
        }
        Command::Ctr { target, n } => {
            // The images are the CRI scenarios'.
            connect(&target.address)?;
            let results = ctr_run::run(&target.address, &target.handlers, n)?;
            report::save(&target.out, "ctr-run", &results)
        }
        Command::Burst { target, n, program } => {
            let variants = variants(&target, &[], None)?;
            let (_, logs) = connect(&target.address)?;
            let results = burst::run(&target.address, &variants, program, n, logs.path())?;
            report::save(&target.out, "burst", &results)
        }
        Command::Density {
            target,
            count,
            step,
            per_pod,
            drop_caches,
        } => {
            let (mut cri, logs) = connect(&target.address)?;
            let shape = density::Shape {
                target: count,
                step: step.max(1),
                per_pod: per_pod.max(1),
                drop_caches,
                containerd: soak::sample::containerd_pid(&target.address),
            };
            let per_pod = shape.per_pod;
            for variant in variants(&target, &[], None)? {
                let result = density::run(&mut cri, &variant, &shape, logs.path())?;
                let name = match per_pod {
                    1 => format!("density-{}-{count}", variant.slug()),
                    k => format!("density-{}-{count}-x{k}", variant.slug()),
                };
                report::save(&target.out, &name, &result)?;
            }
            Ok(())
        }
        Command::Aot {
            target,
            n,
            cache_dir,
        } => {
            let (mut cri, logs) = connect(&target.address)?;
            let results = aot::run(&mut cri, &target.handlers, n, &cache_dir, logs.path())?;
            report::save(&target.out, "aot", &results)
        }
        Command::Cycles {
            address,
            handler,
            n,
            sample_every,
            deadline,
            containerd_state,
            out,
        } => {
            let (cri, logs) = connect(&address)?;
            let options = cycles::Options {
                handler,
                n,
                sample_every: sample_every.max(1),
                deadline: std::time::Duration::from_secs_f64(deadline),
                containerd_state: containerd_state
                    .unwrap_or_else(|| cycles::default_state(&address)),
            };
            let (result, outcome) = cycles::run(cri, options, logs.path());
            report::save(&out, "cycles", &[result])?;
            outcome
        }
        Command::Soak {
            address,
            handlers,
            n,
            pods,
            pod_every,
            deny_every,
            sample_every,
            steady_from,
            rss_limit_kb,
            rss_not_judged,
            deadline,
            library,
            policy_config,
            log_max_bytes,
            containerd_state,
            out,
        } => {
            let containerd_state =
                containerd_state.unwrap_or_else(|| cycles::default_state(&address));
            let (mut results, mut outcome) = (Vec::new(), Ok(()));
            for handler in handlers {
                let (cri, logs) = connect(&address)?;
                // runc's containers never meet edgeshim's gate.
                let ours = handler != "runc";
                let gate = match library.as_ref().filter(|_| ours) {
                    Some(library) => Some(soak_gate(
                        library,
                        policy_config.as_deref(),
                        &containerd_state,
                        log_max_bytes,
                    )?),
                    None => None,
                };
                // The gate's log, or the one hack/containerd.sh configures.
                let decision_log = gate
                    .as_ref()
                    .and_then(|g| g.decision_log.clone())
                    .or_else(|| address.parent().map(|dir| dir.join("decisions.log")));
                let options = soak::Options {
                    handler,
                    n,
                    pods,
                    pod_every,
                    deny_every,
                    sample_every: sample_every.max(1),
                    steady_from,
                    rss_limit_kb_per_1000: rss_limit_kb,
                    judge_rss: !rss_not_judged,
                    deadline: std::time::Duration::from_secs_f64(deadline),
                    places: soak::sample::Places {
                        containerd_pid: soak::sample::containerd_pid(&address),
                        containerd_state: containerd_state.clone(),
                        decision_log,
                        // The configured default (crates/policy) when not the gate's.
                        decision_log_keep: gate.as_ref().map_or(3, |g| g.keep),
                        launchers: ours,
                    },
                    gate,
                };
                let (result, run) = soak::run(cri, options, logs.path());
                results.push(result);
                // runc alone is the control run, kept beside edgeshim's.
                let name = if results.iter().all(|r| r.handler == "runc") {
                    "soak-control"
                } else {
                    "soak"
                };
                report::save(&out, name, &results)?;
                if outcome.is_ok() {
                    outcome = run;
                }
            }
            outcome
        }
        Command::Shim { shims, n, out } => {
            let results = shims
                .iter()
                .map(|shim| shim_only::run(shim, n))
                .collect::<Result<Vec<_>>>()?;
            report::save(&out, "shim-only", &results)
        }
        Command::Network { target, n } => {
            let (mut cri, logs) = connect(&target.address)?;
            let echo = network::run(&mut cri, &target.handlers, n, logs.path())?;
            report::save(&target.out, "network", &echo)?;
            report::save(&target.out, "egress", &egress::run(n)?)
        }
        Command::EgressChild {
            channel,
            tcp_port,
            udp_port,
            n,
        } => egress::child_main(channel, tcp_port, udp_port, n),
        Command::Policy { n, out } => report::save(&out, "policy", &policy::run(n)?),
        Command::PolicyFirst { policy, cache } => policy::first_in_this_process(&policy, &cache),
        Command::Report {
            results,
            markdown,
            charts,
            reliability,
        } => {
            let link = charts.display().to_string();
            let generated = report::markdown(&results, &charts, &link)?;
            replace_generated(&markdown, "edgeshim-bench report", &generated)?;
            if let Some(doc) = report::load(&results, "soak") {
                let mut section = soak::report::section(&doc, &charts, &link)?;
                if let Some(control) = report::load(&results, "soak-control") {
                    section.push_str(
                        "#### Control: the same cycles under runc's shim\n\n\
                         What containerd itself does over these cycles when the shim is \
                         not ours (busybox echoing and exiting with the same codes; no \
                         gate, no launcher).\n\n",
                    );
                    section.push_str(&soak::report::section(&control, &charts, &link)?);
                }
                replace_generated(&reliability, "edgeshim-bench soak", &section)?;
            }
            Ok(())
        }
    }
}
