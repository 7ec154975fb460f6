//! What a shim tells its node's metrics exporter (`edgeshim-metrics`), and
//! how.
//!
//! Owns: the wire format ([`Event`], one JSON object per datagram) and the
//! sender ([`Reporter`]). Must not touch: anything a start waits on. A
//! shim lives as long as its pod, so counters cannot live in it; it sends
//! each event as one datagram on the exporter's node-local `SOCK_DGRAM`
//! socket, non-blocking, and forgets it. No exporter listening, or its
//! queue full, means the event is dropped: the numbers are the operator's,
//! a start never waits for them, and nothing grows on disk.
//!
//! Hand-written rather than a metrics-push library: Prometheus's push
//! gateway and StatsD both need a network listener and a client with its
//! own threads; one `sendto` on a Unix socket is the whole need here.

mod event;
mod reporter;

pub use event::{CacheLookup, Event, Outcome, Step};
pub use reporter::Reporter;

/// Where the exporter listens by default, and where a shim sends unless
/// [`SOCKET_ENV`] says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/edgeshim-metrics/events.sock";
/// The environment variable (of containerd, which shims inherit) naming
/// another socket.
pub const SOCKET_ENV: &str = "EDGESHIM_METRICS_SOCKET";
/// The largest datagram either side handles; an event is far smaller.
pub const MAX_DATAGRAM: usize = 1024;
