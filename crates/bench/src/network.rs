//! Scenario `network`: a TCP echo server in a pod with its own network (the
//! private containerd's bridge CNI) and a client on the node at the pod's
//! IP, for each handler in the same run: the Wasm guests (a WASI 0.2
//! component on the Wasmtime shim; a module on WasmEdge's socket extension,
//! under the shim's seccomp guard, on the WasmEdge shim) and the same
//! server built natively under runc (test/workloads/modules/echo.c).
//!
//! Measured: new connections per second (connect, 1 KB out, 1 KB back,
//! close; one after another) and the round trip of 1 KB messages on one
//! connection. Then what the egress check itself costs: the grant's check
//! (what Wasmtime's `socket_addr_check` runs), and a connect, a `sendmsg`
//! and a `sendto` under the seccomp guard against the same calls without
//! it, in a process of this tool's own.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeshim_cri::{ContainerSpec, Cri};
use serde::Serialize;

use crate::images::echo_workload;
use crate::stats::{Summary, summarize};

/// The port the echo servers listen on; the suite's policy (test/policy)
/// lets containers named `net-echo...` listen on it.
pub const ECHO_PORT: u16 = 7000;
/// The size of each message.
const MESSAGE: usize = 1024;

#[derive(Debug, Serialize)]
pub struct EchoResult {
    pub handler: String,
    /// Connections made one after another, and how many a second.
    pub connections: usize,
    pub connections_per_s: f64,
    /// One connection: connect, 1 KB each way, close; µs.
    pub connection_us: Summary,
    /// 1 KB out and back on one open connection; µs.
    pub round_trip_us: Summary,
}

pub fn run(
    cri: &mut Cri,
    handlers: &[String],
    n: usize,
    log_root: &Path,
) -> Result<Vec<EchoResult>> {
    handlers
        .iter()
        .map(|handler| {
            one_handler(cri, handler, n, log_root).with_context(|| format!("handler {handler}"))
        })
        .collect()
}

fn one_handler(cri: &mut Cri, handler: &str, n: usize, log_root: &Path) -> Result<EchoResult> {
    let name = crate::pod_run::unique_name(&format!("net-{handler}"));
    let log_dir = log_root.join(&name);
    std::fs::create_dir_all(&log_dir)?;
    let pod = crate::pod_run::pod_config(&name, &log_dir, false);
    let pod_id = cri.run_pod(&pod, handler).context("RunPodSandbox")?;
    let workload = echo_workload(handler);
    let spec = ContainerSpec {
        name: "net-echo-bench".into(),
        image: workload.image.into(),
        command: workload.command.clone(),
        log_path: "echo.log".into(),
        ..Default::default()
    };
    let measured = (|| {
        let id = cri
            .create_container(&pod_id, &spec.to_cri(), &pod)
            .context("CreateContainer")?;
        cri.start_container(&id).context("StartContainer")?;
        let ip: IpAddr = cri
            .pod_status(&pod_id)?
            .network
            .map(|n| n.ip)
            .unwrap_or_default()
            .parse()
            .context("the pod's IP")?;
        wait_serving(ip, &log_dir)?;
        measure(handler, ip, n)
    })();
    cri.stop_pod(&pod_id).context("StopPodSandbox")?;
    cri.remove_pod(&pod_id).context("RemovePodSandbox")?;
    let _ = std::fs::remove_dir_all(&log_dir);
    measured
}

/// Waits until the server answers (a guard, not a measurement).
fn wait_serving(ip: IpAddr, log_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if exchange(ip).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log_dir.join("echo.log")).unwrap_or_default();
    bail!("the echo server at {ip}:{ECHO_PORT} never answered; its log: {log}")
}

/// One connection: connect, one message each way, close.
fn exchange(ip: IpAddr) -> Result<()> {
    let mut stream = TcpStream::connect((ip, ECHO_PORT))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    round_trip(&mut stream)
}

fn round_trip(stream: &mut TcpStream) -> Result<()> {
    let out = [0x5au8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    stream.write_all(&out)?;
    stream.read_exact(&mut back)?;
    if back != out {
        bail!("the echo differs from what was sent");
    }
    Ok(())
}

fn measure(handler: &str, ip: IpAddr, n: usize) -> Result<EchoResult> {
    let micros = |since: Instant| since.elapsed().as_secs_f64() * 1e6;
    for _ in 0..20 {
        exchange(ip)?;
    }
    let started = Instant::now();
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        exchange(ip)?;
        connections.push(micros(t));
    }
    let connections_per_s = n as f64 / started.elapsed().as_secs_f64();
    let mut stream = TcpStream::connect((ip, ECHO_PORT))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut trips = Vec::with_capacity(n * 4);
    for _ in 0..n * 4 {
        let t = Instant::now();
        round_trip(&mut stream)?;
        trips.push(micros(t));
    }
    Ok(EchoResult {
        handler: handler.to_string(),
        connections: n,
        connections_per_s,
        connection_us: summarize(&connections),
        round_trip_us: summarize(&trips),
    })
}
