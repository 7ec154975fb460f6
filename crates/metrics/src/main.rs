//! `edgeshim-metrics`: follows the node's decision log, takes the shims'
//! events, counts the running containers, and serves it all on a
//! node-local address in Prometheus's text format. See the crate docs
//! (`edgeshim_metrics`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use edgeshim_metrics::decisions::DecisionMetrics;
use edgeshim_metrics::events::{self, EventMetrics};
use edgeshim_metrics::follow::Follower;
use edgeshim_metrics::running::{RunningContainers, STATE_ROOT};
use prometheus_client::registry::Registry;

#[derive(Parser)]
#[command(version, about = "Serve the node's edgeshim metrics for Prometheus")]
struct Cli {
    /// The decision log every shim of the node appends to (policy.toml's
    /// [decision_log] path)
    #[arg(long, default_value = "/var/log/edgeshim/decisions.log")]
    decision_log: PathBuf,
    /// Where Prometheus scrapes /metrics (keep it node-local)
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// How often the log is read
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Count what the log already holds, not only what comes after start
    #[arg(long)]
    from_start: bool,
    /// The socket the shims send their events to (containerd's
    /// EDGESHIM_METRICS_SOCKET, which its shims inherit, when not the default)
    #[arg(long, default_value = edgeshim_telemetry::DEFAULT_SOCKET)]
    events_socket: PathBuf,
    /// The shims' state root, where running containers are counted
    #[arg(long, default_value = STATE_ROOT)]
    state_root: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut registry = Registry::default();
    let metrics = DecisionMetrics::new(&mut registry);
    let event_metrics = EventMetrics::new(&mut registry);
    registry.register_collector(Box::new(RunningContainers::new(&cli.state_root)));
    let registry = Arc::new(Mutex::new(registry));
    let socket = events::bind(&cli.events_socket)?;
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || events::receive(&socket, &event_metrics))
        .context("the events receiver")?;
    let mut follower = Follower::new(&cli.decision_log, cli.from_start);
    let poll = Duration::from_millis(cli.poll_ms.max(10));
    std::thread::Builder::new()
        .name("follow".into())
        .spawn(move || {
            loop {
                for line in follower.new_lines() {
                    metrics.observe(&line);
                }
                std::thread::sleep(poll);
            }
        })
        .context("the log follower")?;
    let server = tiny_http::Server::http(cli.listen)
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", cli.listen))?;
    eprintln!(
        "edgeshim-metrics: serving http://{}/metrics from {}, events on {}",
        cli.listen,
        cli.decision_log.display(),
        cli.events_socket.display()
    );
    for request in server.incoming_requests() {
        let response = if request.url() == "/metrics" {
            let mut text = String::new();
            let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
            match prometheus_client::encoding::text::encode(&mut text, &registry) {
                Ok(()) => tiny_http::Response::from_string(text).with_header(
                    tiny_http::Header::from_bytes(
                        "Content-Type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .map_err(|()| anyhow::anyhow!("content type"))?,
                ),
                Err(e) => tiny_http::Response::from_string(format!("{e}")).with_status_code(500),
            }
        } else {
            tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
        };
        // A scraper that went away is its own problem.
        let _ = request.respond(response);
    }
    Ok(())
}
