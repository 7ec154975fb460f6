//! `edgeshim-install`: puts edgeshim's shims on the node whose `/` is
//! mounted at `--root`, registers the runtime handlers in containerd's
//! config where the node is not K3s, and takes it all back with
//! `--uninstall`. See the crate docs (`edgeshim_installer`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use edgeshim_installer::node::{self, Layout, Options, Report};

#[derive(Parser)]
#[command(
    version,
    about = "Install edgeshim's shims on a node (K3s or containerd), or take them back"
)]
struct Cli {
    /// The node's `/` (the host's root mounted into the installer's container)
    #[arg(long, default_value = "/host")]
    root: PathBuf,
    /// The folder holding containerd-shim-*-v1 (and lib/libwasmedge.so*)
    #[arg(long, default_value = "/edgeshim/bin")]
    from: PathBuf,
    /// Also install the example policy library, deciding in audit mode
    #[arg(long, value_enum)]
    policy: Option<PolicyChoice>,
    /// Take back everything an earlier install put on the node
    #[arg(long, conflicts_with = "policy")]
    uninstall: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyChoice {
    Audit,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("edgeshim-install: {e:#}");
        std::process::exit(1);
    }
}

fn print(report: &Report) {
    for path in &report.written {
        println!("wrote /{}", path.display());
    }
    for path in &report.unchanged {
        println!("unchanged /{}", path.display());
    }
    for path in &report.removed {
        println!("removed /{}", path.display());
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.uninstall {
        let report = node::uninstall(&cli.root)?;
        print(&report);
        if report.config_changed {
            println!("containerd's config was put back: restart containerd to drop the handlers");
        }
        return Ok(());
    }
    let layout = node::detect(&cli.root);
    let report = node::install(
        &cli.root,
        &Options {
            from: cli.from,
            policy_audit: matches!(cli.policy, Some(PolicyChoice::Audit)),
        },
    )?;
    print(&report);
    match layout {
        Layout::K3s => println!(
            "K3s node: the shims are in /opt/kwasm/bin, where K3s finds them; \
             restart k3s (or k3s-agent) once to register the wasmtime and wasmedge runtimes"
        ),
        Layout::Containerd if report.config_changed => println!(
            "containerd's config now has the wasmtime and wasmedge runtimes (backup: \
             /etc/containerd/config.toml.edgeshim-backup); containerd reads its config only at \
             start: restart containerd (systemctl restart containerd) to use them"
        ),
        Layout::Containerd => println!("containerd's config already had the runtimes"),
    }
    Ok(())
}
