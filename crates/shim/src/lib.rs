//! The shim process: containerd's shim v2 Task API served over ttrpc.
//!
//! A request flows: [`task`] (one file per Task operation) -> the policy gate
//! (`edgeshim-policy`) -> the bundle (`edgeshim-bundle`) -> the isolation
//! layer (`edgeshim-isolation`) -> an engine (`edgeshim-engine`), with
//! [`events`] flowing back to containerd.
//!
//! Owns: the shim's start/delete subcommands ([`service`]), the container
//! records and their state machine ([`container`]), containerd's rootfs mounts
//! and stdio FIFOs, exit collection, events, and what it reports to the
//! node's metrics exporter ([`metrics`]).
//!
//! Leaves out: namespaces and cgroups (isolation), compiling and running Wasm
//! (engine), the decision itself (policy).

pub mod container;
pub mod error;
pub mod events;
mod exits;
mod launch;
mod logging;
pub mod metrics;
mod oom;
mod refusals;
mod reservations;
mod rootfs;
pub mod service;
mod stdio;
pub mod task;

pub use service::EdgeShim;

/// The shim's `main`: runs containers on engine `E` and OPA Wasm policies
/// on `policy_wasm_host`, e.g.
/// `run::<WasmtimeEngine>("io.containerd.wasmtime.v1", WasmHost::WASMTIME)`.
/// Started as its own launcher (`--edgeshim-launcher`, see
/// `edgeshim_isolation::launcher`), the binary serves its shim instead.
pub fn run<E: edgeshim_engine::Engine>(
    runtime_id: &str,
    policy_wasm_host: edgeshim_policy::WasmHost,
) {
    limit_malloc_arenas();
    if let Some(status) = launch::launcher_main::<E>() {
        std::process::exit(status);
    }
    if serving() {
        start_zygote::<E>();
    }
    service::set_policy_wasm_host(policy_wasm_host);
    match shim_runtime() {
        Ok(runtime) => {
            runtime.block_on(containerd_shim::run::<EdgeShim<E>>(runtime_id, None));
            // The shim is done (containerd asked it to shut down): a request
            // still running on the blocking pool must not hold the process,
            // as a dropped runtime would until it returned.
            runtime.shutdown_background();
        }
        Err(e) => {
            eprintln!("{runtime_id}: cannot start the shim's runtime: {e}");
            std::process::exit(1);
        }
    }
}

/// How long a blocking-pool thread with no request lives on: a pod's
/// requests come in bursts (create, start, then nothing for its life).
const REQUEST_THREAD_IDLE: std::time::Duration = std::time::Duration::from_secs(2);
/// At most this many requests run their blocking part at once; more wait
/// their turn. High, because a request waiting for a pool thread waits
/// behind every one running: creates queued on a launcher that hangs must
/// not hold up a Kill or Delete of another container. Threads exist only
/// while requests run, so the bound costs nothing when the pod is quiet.
const REQUEST_THREADS_MAX: usize = 128;

/// The shim's tokio runtime: one thread, which serves ttrpc and awaits
/// Waits and exits, and a blocking pool that holds threads only while
/// requests run.
fn shim_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("shim-request")
        .thread_keep_alive(REQUEST_THREAD_IDLE)
        .max_blocking_threads(REQUEST_THREADS_MAX)
        .build()
}

/// glibc gives each thread that allocates an arena of its own (up to eight
/// per core), each with pages of its own touched; a shim's threads mostly
/// wait on ttrpc, so one arena serves them, and its memory is per pod.
/// Set before the first thread starts; containers cloned from the
/// launcher inherit it. (Measured: BENCHMARKS.md, density.) An environment
/// `MALLOC_ARENA_MAX` wins, as glibc reads it at the first allocation.
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator; no
        // memory is touched and no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Whether this process is the serving shim (neither `start` nor `delete`).
fn serving() -> bool {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    containerd_shim::parse(&args).is_ok_and(|flags| flags.action.is_empty())
}

/// Forks the zygote the launchers are made from (see
/// `edgeshim_isolation::launcher::zygote`), before anything starts a thread.
/// It must be the subreaper's descendant marked as such: a process forked
/// before its parent becomes a subreaper does not send its orphans there,
/// and the containers' exits must reach this shim. Without a zygote the
/// shim execs its launchers, as before.
fn start_zygote<E: edgeshim_engine::Engine>() {
    // SAFETY: prctl sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        return;
    }
    // SAFETY: nothing has started a thread yet: `run` is the shim's first
    // code after main, and the arena setting and argument parsing above
    // start none.
    if let Err(e) = unsafe { edgeshim_isolation::launcher::zygote::start(launch::serve::<E>) } {
        eprintln!("edgeshim: no zygote ({e}); launchers will be exec'd");
    }
}
