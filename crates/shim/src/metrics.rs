//! What this shim tells the node's metrics exporter (`edgeshim-metrics`):
//! each create and start answered (outcome, time), each module lookup,
//! each OOM kill. One datagram each through `edgeshim-telemetry`, never
//! waited on; the shim keeps no counter itself (it lives as long as its
//! pod).

use std::time::{Duration, Instant};

use edgeshim_telemetry::{CacheLookup, Event, Outcome, Reporter, Step};

use crate::error::TaskError;

pub struct Telemetry {
    reporter: Reporter,
    /// The engine's name, which is the runtime handler's (`wasmtime`, `wasmedge`).
    runtime: &'static str,
}

impl Telemetry {
    /// To the socket containerd's environment names (or the default).
    pub fn from_env(runtime: &'static str) -> Self {
        Self {
            reporter: Reporter::from_env(),
            runtime,
        }
    }

    /// A create or start request answered, `since` it arrived.
    pub fn answered<T>(&self, step: Step, result: &Result<T, TaskError>, since: Instant) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(TaskError::Denied { .. }) => Outcome::Denied,
            Err(_) => Outcome::Failed,
        };
        self.reporter.send(&Event::Container {
            runtime: self.runtime.into(),
            step,
            outcome,
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    /// A module prepared at create: compiled (taking `compiled`) or found.
    pub fn module(&self, compiled: Option<Duration>) {
        self.reporter.send(&Event::Module {
            runtime: self.runtime.into(),
            lookup: if compiled.is_some() {
                CacheLookup::Miss
            } else {
                CacheLookup::Hit
            },
            compile_seconds: compiled.map(|d| d.as_secs_f64()),
        });
    }

    pub fn oom(&self) {
        self.reporter.send(&Event::Oom {
            runtime: self.runtime.into(),
        });
    }
}
