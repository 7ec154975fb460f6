//! The node's edgeshim metrics (`edgeshim-metrics`).
//!
//! Each pod has its own short-lived shim, so no counter can live in a shim.
//! The owner of the node's numbers is this exporter, one long-running
//! process per node. Its sources:
//! - the decision log, one JSON line per decision and per refused address,
//!   which every shim already writes; followed across rotations
//!   ([`follow`]) and counted ([`decisions`]);
//! - the shims' events (creates, starts, module cache lookups, OOM kills),
//!   one datagram each on the exporter's socket ([`events`]; the sending
//!   side is `edgeshim-telemetry`);
//! - the node's live tasks, read at each scrape ([`running`]).
//!
//! It serves Prometheus's text format (prometheus-client) on a node-local
//! address. Must not touch: anything a shim waits on. Shims send without
//! waiting and never read from it, so a stopped or broken exporter costs
//! the node its numbers and nothing else.

pub mod decisions;
pub mod events;
pub mod follow;
pub mod running;
