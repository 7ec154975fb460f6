//! The node's edgeshim metrics (`edgeshim-metrics`).
//!
//! Each pod has its own short-lived shim, so no counter can live in a shim.
//! The owner of the node's numbers is this exporter, one long-running
//! process per node, and its source is what every shim already writes: the
//! decision log, one JSON line per decision and per refused address, which
//! the exporter follows across rotations ([`follow`]) and counts
//! ([`decisions`]). It serves Prometheus's text format (prometheus-client)
//! on a node-local address.
//!
//! It only reads: nothing here is read by a shim, so a stopped or broken
//! exporter costs the node its numbers and nothing else.

pub mod decisions;
pub mod follow;
