//! The workloads the integration suite and the benchmark tool run, built by
//! this crate's build script: C to Wasm with Debian's clang + wasi-libc, WAT
//! with the `wat` crate, static native programs with the system C compiler.
//!
//! - `probe.wasm`: one module, a behaviour per first argument (hello, args,
//!   env, read, write, grow, trap, sleep, spin, exit).
//! - `sensor.wasm`: a realistic edge module: sensor readings in, 5-second
//!   window aggregates and an anomaly flag out.
//! - `compute.wasm`: compute-heavy kernels (filter, CRC-32, sieve) that
//!   print one line when done: the ahead-of-time compilation benchmark.
//! - `sqlite_logger.wasm`: sensor readings into SQLite (3.46's
//!   amalgamation, about 1 MB of Wasm): a module the size of a real edge
//!   application, for first starts.
//! - `spin.wasm`: a loop with no host calls (WAT).
//! - `pause`, `hog`: static native programs (a pod sandbox; a memory and
//!   process hog); `echo`: the network bench's TCP echo server, native.
//!
//! And the network guests, compiled from WAT when asked for: WASI 0.2
//! components ([`components`], the Wasmtime shim's) and modules using
//! WasmEdge's socket extension ([`wasmedge_sockets`]).

pub mod components;
pub mod wasmedge_sockets;

use std::path::{Path, PathBuf};

/// Path of a built workload.
pub fn built(name: &str) -> PathBuf {
    Path::new(env!("OUT_DIR")).join(name)
}
