//! Scenario 5: the shim alone, driven over its ttrpc Task API as containerd
//! drives it, with no containerd: `<shim> start` in a bundle folder (which
//! spawns the serving shim and prints its socket), then for each container
//! Create -> Start -> its first output on the stdout FIFO -> Wait -> Delete,
//! and Shutdown at the end. Events go to a ttrpc Events server of the
//! bench's own (what containerd listens on at `TTRPC_ADDRESS`), which
//! accepts and drops them.
//!
//! Every container runs the same module, so all but the first start find it
//! prepared: the figure is the shim's cost for a module it has seen.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, Empty, ForwardRequest, KillRequest, ShutdownRequest,
    StartRequest, WaitRequest,
};
use containerd_shim_protos::ttrpc::context::Context as TtrpcCall;
use containerd_shim_protos::ttrpc::{self, TtrpcContext};
use containerd_shim_protos::{Client, Events, TaskClient, create_events};
use edgeshim_workloads::built;
use serde::Serialize;

use crate::stats::{Summary, summarize};

const NAMESPACE: &str = "edgeshim-bench";
/// A guard against a hung container, not a measurement.
const OUTPUT_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize)]
pub struct ShimOnlyResult {
    pub shim: String,
    /// The first container's create to first output (module compiled or
    /// loaded from the disk cache).
    pub first_ms: f64,
    /// Create to first output, later containers (module already prepared).
    pub create_to_output: Summary,
    /// Create to Delete returned, later containers.
    pub create_to_delete: Summary,
}

/// Accepts containerd events and drops them.
struct DropEvents;

impl Events for DropEvents {
    fn forward(&self, _ctx: &TtrpcContext, _req: ForwardRequest) -> ttrpc::Result<Empty> {
        Ok(Empty::new())
    }
}

pub fn run(shim: &Path, n: usize) -> Result<ShimOnlyResult> {
    // It runs in the bundle folder: a relative path would not resolve.
    let shim = &std::fs::canonicalize(shim).with_context(|| format!("shim {}", shim.display()))?;
    let work = tempfile::tempdir()?;
    let events_socket = work.path().join("events.sock");
    let events_address = format!("unix://{}", events_socket.display());
    let mut events_server = ttrpc::Server::new()
        .bind(&events_address)
        .context("binding the events socket")?
        .register_service(create_events(Arc::new(DropEvents)));
    events_server
        .start()
        .context("starting the events server")?;

    let first_id = format!("shim-only-{}-0", std::process::id());
    let first_bundle = bundle(work.path(), &first_id)?;
    // containerd hands shims a bare path in TTRPC_ADDRESS.
    let socket = start_shim(shim, &first_bundle, &first_id, work.path(), &events_socket)?;
    let client = TaskClient::new(
        Client::connect(&socket).with_context(|| format!("connecting to the shim at {socket}"))?,
    );

    let mut current = None;
    let measured = measure(
        &client,
        work.path(),
        &first_id,
        &first_bundle,
        n,
        &mut current,
    );
    if measured.is_err()
        && let Some(id) = current
    {
        // The container that failed: kill and delete it so that the shim
        // can shut down and leaves no process, mount or cgroup behind.
        let mut kill = KillRequest::new();
        kill.id = id.clone();
        kill.signal = libc::SIGKILL as u32;
        let _ = client.kill(call(), &kill);
        let mut delete = DeleteRequest::new();
        delete.id = id;
        let _ = client.delete(call(), &delete);
    }
    let _ = client.shutdown(call(), &ShutdownRequest::new());
    events_server.shutdown();
    let (first_ms, to_output, to_delete) = measured?;
    Ok(ShimOnlyResult {
        shim: shim
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        first_ms,
        create_to_output: summarize(&to_output),
        create_to_delete: summarize(&to_delete),
    })
}

fn call() -> TtrpcCall {
    ttrpc::context::with_timeout(OUTPUT_LIMIT.as_nanos() as i64)
}

/// The first container, then `n` more; `current` names the container in
/// flight, for clean-up when one fails.
fn measure(
    client: &TaskClient,
    work: &Path,
    first_id: &str,
    first_bundle: &Path,
    n: usize,
    current: &mut Option<String>,
) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    let progress = crate::progress(n + 1, "shim-only starts");
    *current = Some(first_id.to_string());
    let (first_ms, _) = one_container(client, first_id, first_bundle)?;
    progress.inc(1);
    let (mut to_output, mut to_delete) = (Vec::new(), Vec::new());
    for i in 1..=n {
        let id = format!("shim-only-{}-{i}", std::process::id());
        *current = Some(id.clone());
        let bundle = bundle(work, &id)?;
        let (output, deleted) = one_container(client, &id, &bundle)?;
        let _ = std::fs::remove_dir_all(&bundle);
        to_output.push(output);
        to_delete.push(deleted);
        progress.inc(1);
    }
    *current = None;
    progress.finish_and_clear();
    Ok((first_ms, to_output, to_delete))
}

/// `<shim> -namespace .. -id .. -address .. start` in the bundle, as
/// containerd runs it; returns the socket the shim serves on.
fn start_shim(
    shim: &Path,
    bundle: &Path,
    id: &str,
    work: &Path,
    events_socket: &Path,
) -> Result<String> {
    // containerd's socket: the shim derives its own socket's name from it
    // and never connects to it (events go to TTRPC_ADDRESS).
    let containerd_address = work.join("containerd.sock");
    let output = Command::new(shim)
        .current_dir(bundle)
        .env("TTRPC_ADDRESS", events_socket)
        .env(
            "EDGESHIM_CACHE_DIR",
            std::env::var_os("EDGESHIM_CACHE_DIR").unwrap_or_else(|| work.join("cache").into()),
        )
        .args(["-namespace", NAMESPACE, "-id", id, "-address"])
        .arg(&containerd_address)
        .args(["-publish-binary", "/bin/true", "start"])
        .output()
        .with_context(|| format!("running {} start", shim.display()))?;
    if !output.status.success() {
        bail!(
            "{} start failed: {}",
            shim.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A bundle folder: the probe module in `rootfs/`, a config.json as
/// `ctr run` writes one (its namespaces and mounts), a stdout FIFO and
/// the `log` file the serving shim writes to.
fn bundle(work: &Path, id: &str) -> Result<PathBuf> {
    let dir = work.join(id);
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    std::fs::copy(built("probe.wasm"), rootfs.join("probe.wasm"))?;
    File::create(dir.join("log"))?;
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/probe.wasm", "hello"],
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/"
        },
        "root": {"path": "rootfs"},
        "hostname": id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/{NAMESPACE}/{id}"),
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"}
            ]
        }
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&spec)?)?;
    let fifo = dir.join("stdout");
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
    // SAFETY: `path` is a valid C string; mkfifo only reads it.
    if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
        bail!(
            "mkfifo {}: {}",
            fifo.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(dir)
}

/// Create -> Start -> first output -> Wait -> Delete; returns milliseconds
/// from Create to the first output and to Delete's return.
fn one_container(client: &TaskClient, id: &str, bundle: &Path) -> Result<(f64, f64)> {
    let fifo = bundle.join("stdout");
    // The read end first, as containerd does, so the shim's non-blocking
    // open of the write end succeeds.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)?;
    let t0 = Instant::now();
    let mut create = CreateTaskRequest::new();
    create.id = id.into();
    create.bundle = bundle.display().to_string();
    create.stdout = fifo.display().to_string();
    client
        .create(call(), &create)
        .with_context(|| format!("Create {id}"))?;
    let mut start = StartRequest::new();
    start.id = id.into();
    client
        .start(call(), &start)
        .with_context(|| format!("Start {id}"))?;
    await_output(&mut reader, id)?;
    let output_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut wait = WaitRequest::new();
    wait.id = id.into();
    let exited = client
        .wait(call(), &wait)
        .with_context(|| format!("Wait {id}"))?;
    if exited.exit_status != 0 {
        bail!("{id} exited with {}", exited.exit_status);
    }
    let mut delete = DeleteRequest::new();
    delete.id = id.into();
    client
        .delete(call(), &delete)
        .with_context(|| format!("Delete {id}"))?;
    Ok((output_ms, t0.elapsed().as_secs_f64() * 1e3))
}

/// Waits (poll(2) on the FIFO) until the container has written something.
fn await_output(reader: &mut File, id: &str) -> Result<()> {
    let deadline = Instant::now() + OUTPUT_LIMIT;
    let mut buffer = [0u8; 256];
    while Instant::now() < deadline {
        let mut fd = libc::pollfd {
            fd: reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut fd, 1, 5) };
        match reader.read(&mut buffer) {
            Ok(n) if n > 0 => return Ok(()),
            // No writer yet (EOF) or nothing written yet.
            Ok(_) => std::thread::sleep(Duration::from_micros(100)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("reading the stdout FIFO"),
        }
    }
    bail!("{id}: no output in {} s", OUTPUT_LIMIT.as_secs())
}
