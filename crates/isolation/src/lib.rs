//! The isolation layer: every container, Wasm or native, gets a process of
//! its own with the namespaces, rootfs and cgroup its OCI spec asks for.
//!
//! Owns: creating, starting, signalling and deleting that process, and
//! what runs first inside it ([`Payload`]). A Wasm container is made on the
//! direct launch path (`wasm_process`: one clone, its own cgroup, mount and
//! start code) when its spec is one that path covers; a native one, and any
//! other spec, through youki's `libcontainer`. A native program is `exec`ed
//! as runc would; a Wasm payload runs in the process, which is a copy of
//! the shim's single-threaded [`launcher`] made at create time, so the
//! engine and the compiled module are already in memory.
//!
//! Leaves out: what a payload does (the engine crate), the container's stdio
//! endpoints (the task service opens them and hands over descriptors), and
//! policy. It never runs a payload in the shim's own process.

mod bundle_config;
mod cgroups;
mod container;
mod error;
mod executor;
pub mod launcher;
pub mod oom;
pub mod proc_cgroup;
mod wasm_process;

pub use container::{IsolatedContainer, LaunchPayload, Stdio};
pub use error::{IsolationError, Result};
pub use executor::Payload;
pub use wasm_process::LAUNCH_PATH_ENV;

/// Hands the free pages of glibc's heap back to the kernel. Preparing a
/// module allocates far more than it keeps (its bytes, a validation pass,
/// WasmEdge's parse of every function body, dropped once the cached native
/// code is loaded); in a process that then lives for days (a pod's shim, a
/// sleeping container, which inherits its launcher's heap) those pages
/// stay resident for nothing: on the WasmEdge shim they were 516 KB of a
/// sleeping container's 728 KB of heap (BENCHMARKS.md, density). glibc
/// trims only the top of its heap by itself; `malloc_trim` also releases
/// free pages in the middle. Each call walks the heap and the next
/// allocations fault their pages in again: call it where a process
/// settles, never per request.
pub fn release_free_heap() {
    // SAFETY: malloc_trim only returns free pages of glibc's own heap to the
    // kernel; no allocation this program holds is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The smallest pids limit a container can be created under: two processes
/// share the cgroup for a moment (libcontainer's intermediate and the
/// container's init; on the direct launch path the set-up process and the
/// container, whose payload waits for the set-up's exit), and a Wasm
/// payload keeps one WASI I/O thread beside its main.
pub const MIN_PIDS_LIMIT: i64 = 2;
