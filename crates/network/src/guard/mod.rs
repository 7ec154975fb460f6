//! Holding a Wasm engine's sockets to the grant from below, for an engine
//! with no hook of its own where an address is used (WasmEdge 0.14.1: its
//! built-in WASI sockets call the kernel directly).
//!
//! The container's process sets a seccomp filter before its module runs
//! ([`guard_this_process`]): `connect`, `bind`, `listen`, `sendto` and
//! `sendmsg` wait for the shim's answer, and every way to a second thread,
//! a second process or io_uring is refused. The shim's [`Supervisor`]
//! reads the address from the waiting caller's memory, judges it with
//! [`NetworkGrant::check`](crate::NetworkGrant::check) (`listen` with the
//! address the kernel bound), and lets the call go on or fails it with
//! EACCES. See docs/design.md, "Network enforcement".

mod answer;
mod filter;
mod sockaddr;
mod supervisor;

pub use answer::{Answer, Target, answer};
pub use filter::{GuardError, HAND_OVER, guard_this_process};
pub use supervisor::{RefusalSink, Supervisor};
