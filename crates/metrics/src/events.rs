//! What the shims report one datagram at a time (`edgeshim-telemetry`),
//! counted:
//!
//! - `edgeshim_container_creates_total{runtime, outcome}` and
//!   `edgeshim_container_starts_total{runtime, outcome}`: create and start
//!   requests answered, `outcome` one of `ok`, `denied` (by the policy
//!   gate), `failed`
//! - `edgeshim_container_create_duration_seconds{runtime}` and
//!   `edgeshim_container_start_duration_seconds{runtime}`: how long the
//!   shim took to answer (histograms)
//! - `edgeshim_module_cache_lookups_total{runtime, result}`: `hit` (the
//!   shim had the module prepared, or the disk cache held its compiled
//!   code) or `miss`
//! - `edgeshim_module_compile_duration_seconds{runtime}`: each compile
//!   (its `_count` is the number of compiles)
//! - `edgeshim_oom_kills_total{runtime}`
//! - `edgeshim_metrics_events_unreadable_total`: datagrams that are not an
//!   event, or carry a value no shim sends
//!
//! `runtime` is `wasmtime`, `wasmedge` or `other`: only root can write to
//! the socket, but a label set must stay bounded whatever arrives.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use anyhow::{Context, Result};
use edgeshim_telemetry::{CacheLookup, Event, MAX_DATAGRAM, Outcome, Step};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The engines edgeshim ships; any other name counts as `other`.
const RUNTIMES: [&str; 2] = ["wasmtime", "wasmedge"];
/// No shim takes a day over one request or one compile.
const MAX_SECONDS: f64 = 86_400.0;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    runtime: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RuntimeLabels {
    pub(crate) runtime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    runtime: String,
    result: String,
}

type Histograms = Family<RuntimeLabels, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 250 µs to about 8 s: a create with the module prepared takes a few
    // ms, a first WasmEdge create (its compile) seconds.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

fn compile_histogram() -> Histogram {
    // 10 ms to about 5 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

pub struct EventMetrics {
    creates: Family<OutcomeLabels, Counter>,
    starts: Family<OutcomeLabels, Counter>,
    create_seconds: Histograms,
    start_seconds: Histograms,
    lookups: Family<LookupLabels, Counter>,
    compile_seconds: Histograms,
    ooms: Family<RuntimeLabels, Counter>,
    unreadable: Counter,
}

fn runtime_label(runtime: &str) -> RuntimeLabels {
    let runtime = if RUNTIMES.contains(&runtime) {
        runtime
    } else {
        "other"
    };
    RuntimeLabels {
        runtime: runtime.into(),
    }
}

fn plausible(seconds: f64) -> bool {
    seconds.is_finite() && (0.0..=MAX_SECONDS).contains(&seconds)
}

impl EventMetrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            creates: Family::default(),
            starts: Family::default(),
            create_seconds: Family::new_with_constructor(request_histogram),
            start_seconds: Family::new_with_constructor(request_histogram),
            lookups: Family::default(),
            compile_seconds: Family::new_with_constructor(compile_histogram),
            ooms: Family::default(),
            unreadable: Counter::default(),
        };
        let r = registry;
        r.register(
            "edgeshim_container_creates",
            "Create requests answered, by runtime and outcome (ok, denied, failed)",
            metrics.creates.clone(),
        );
        r.register(
            "edgeshim_container_starts",
            "Start requests answered, by runtime and outcome (ok, denied, failed)",
            metrics.starts.clone(),
        );
        r.register(
            "edgeshim_container_create_duration_seconds",
            "Time the shim took to answer a create request",
            metrics.create_seconds.clone(),
        );
        r.register(
            "edgeshim_container_start_duration_seconds",
            "Time the shim took to answer a start request",
            metrics.start_seconds.clone(),
        );
        r.register(
            "edgeshim_module_cache_lookups",
            "Wasm modules looked up at create: hit (prepared or cached) or miss (compiled)",
            metrics.lookups.clone(),
        );
        r.register(
            "edgeshim_module_compile_duration_seconds",
            "Time a module's compile took (its count is the number of compiles)",
            metrics.compile_seconds.clone(),
        );
        r.register(
            "edgeshim_oom_kills",
            "OOM kills in Wasm containers' memory cgroups",
            metrics.ooms.clone(),
        );
        r.register(
            "edgeshim_metrics_events_unreadable",
            "Datagrams on the events socket that are not an event a shim sends",
            metrics.unreadable.clone(),
        );
        metrics
    }

    /// Counts one datagram.
    pub fn observe(&self, datagram: &[u8]) {
        match Event::from_bytes(datagram) {
            Some(Event::Container {
                runtime,
                step,
                outcome,
                seconds,
            }) if plausible(seconds) => {
                let runtime = runtime_label(&runtime);
                let (count, histogram) = match step {
                    Step::Create => (&self.creates, &self.create_seconds),
                    Step::Start => (&self.starts, &self.start_seconds),
                };
                let outcome = match outcome {
                    Outcome::Ok => "ok",
                    Outcome::Denied => "denied",
                    Outcome::Failed => "failed",
                };
                count
                    .get_or_create(&OutcomeLabels {
                        runtime: runtime.runtime.clone(),
                        outcome: outcome.into(),
                    })
                    .inc();
                histogram.get_or_create(&runtime).observe(seconds);
            }
            Some(Event::Module {
                runtime,
                lookup,
                compile_seconds,
            }) if compile_seconds.is_none_or(plausible) => {
                let runtime = runtime_label(&runtime);
                let result = match lookup {
                    CacheLookup::Hit => "hit",
                    CacheLookup::Miss => "miss",
                };
                self.lookups
                    .get_or_create(&LookupLabels {
                        runtime: runtime.runtime.clone(),
                        result: result.into(),
                    })
                    .inc();
                if let Some(seconds) = compile_seconds {
                    self.compile_seconds
                        .get_or_create(&runtime)
                        .observe(seconds);
                }
            }
            Some(Event::Oom { runtime }) => {
                self.ooms.get_or_create(&runtime_label(&runtime)).inc();
            }
            _ => {
                self.unreadable.inc();
            }
        }
    }
}

/// The exporter's end of the events socket at `path`: its folder made
/// (root's alone) when it is not there (an existing folder, such as `/run`
/// when the socket is put there, is left as it is), a socket left by an
/// earlier exporter replaced (anything else there is refused), and only
/// root allowed to send.
pub fn bind(path: &Path) -> Result<UnixDatagram> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("events folder {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("events folder {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("old events socket {}", path.display()))?,
        Ok(_) => anyhow::bail!(
            "events socket {}: something that is not a socket is there",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("events socket {}", path.display())),
    }
    let socket =
        UnixDatagram::bind(path).with_context(|| format!("events socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("events socket {}", path.display()))?;
    Ok(socket)
}

/// Counts every datagram `socket` receives, for as long as it lives.
pub fn receive(socket: &UnixDatagram, metrics: &EventMetrics) {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        match socket.recv(&mut buf) {
            // A datagram longer than the buffer arrives cut: not an event.
            Ok(n) => metrics.observe(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("edgeshim-metrics: events socket: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
