//! The benchmark's images, built from the workloads crate and imported into
//! containerd's CRI namespace with `ctr`, and what each handler runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeshim_cri::Cri;
use edgeshim_tools::oci_image::{ImageFile, ImageSpec, write_archive};
use edgeshim_workloads::{built, components, wasmedge_sockets};

pub const PROBE_IMAGE: &str = "edgeshim.bench/probe:1";
pub const SENSOR_IMAGE: &str = "edgeshim.bench/sensor:1";
pub const COMPUTE_IMAGE: &str = "edgeshim.bench/compute:1";
pub const SQLITE_IMAGE: &str = "edgeshim.bench/sqlite-logger:1";
pub const BUSYBOX_IMAGE: &str = "edgeshim.bench/busybox:1";
/// The network scenario's echo servers: a WASI 0.2 component (Wasmtime), a
/// module on WasmEdge's socket extension, and the native program (runc).
pub const ECHO_COMPONENT_IMAGE: &str = "edgeshim.bench/echo-component:1";
pub const ECHO_WASMEDGE_IMAGE: &str = "edgeshim.bench/echo-wasmedge:1";
pub const ECHO_NATIVE_IMAGE: &str = "edgeshim.bench/echo-native:1";
/// The sandbox image `hack/containerd.sh` configures.
pub const SANDBOX_IMAGE: &str = "edgeshim.local/pause:1";
/// Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";

/// What a container runs: its image and command.
#[derive(Debug, Clone)]
pub struct Workload {
    pub image: &'static str,
    pub command: Vec<String>,
}

/// Which program a scenario runs, for any handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Program {
    /// Prints one line and exits.
    Hello,
    /// The sensor module over 5 s of synthetic readings (one window).
    Sensor,
    /// Sleeps (density).
    Sleep,
    /// Compute-heavy kernels, one line when done (ahead-of-time compilation).
    Compute,
    /// 1,000 readings into an in-memory SQLite database, a line per sensor
    /// when done: a module the size of a real application (about 1 MB).
    Sqlite,
}

/// The workload for `handler`: `runc` runs busybox, every other handler the
/// Wasm modules.
pub fn workload(handler: &str, program: Program) -> Workload {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
    match (handler == "runc", program) {
        (true, Program::Hello | Program::Sensor | Program::Compute | Program::Sqlite) => Workload {
            image: BUSYBOX_IMAGE,
            command: words(&[BUSYBOX, "echo", "hello from busybox"]),
        },
        (true, Program::Sleep) => Workload {
            image: BUSYBOX_IMAGE,
            // Says it is up, as the Wasm sleeper does, then sleeps.
            command: words(&[
                BUSYBOX,
                "sh",
                "-c",
                "echo sleeping; exec /bin/busybox sleep 1000000",
            ]),
        },
        (false, Program::Hello) => Workload {
            image: PROBE_IMAGE,
            command: words(&["/probe.wasm", "hello"]),
        },
        (false, Program::Sensor) => Workload {
            image: SENSOR_IMAGE,
            command: words(&["/sensor.wasm", "simulate", "5"]),
        },
        (false, Program::Compute) => Workload {
            image: COMPUTE_IMAGE,
            command: words(&["/compute.wasm", "20"]),
        },
        (false, Program::Sqlite) => Workload {
            image: SQLITE_IMAGE,
            command: words(&["/sqlite_logger.wasm", ":memory:", "1000"]),
        },
        (false, Program::Sleep) => Workload {
            image: PROBE_IMAGE,
            command: words(&["/probe.wasm", "sleep", "1000000"]),
        },
    }
}

/// The echo server `handler` runs, on [`crate::network::ECHO_PORT`].
pub fn echo_workload(handler: &str) -> Workload {
    let port = crate::network::ECHO_PORT.to_string();
    match handler {
        "runc" => Workload {
            image: ECHO_NATIVE_IMAGE,
            command: vec!["/echo".into(), port],
        },
        "wasmedge" => Workload {
            image: ECHO_WASMEDGE_IMAGE,
            command: vec!["/echo.wasm".into()],
        },
        _ => Workload {
            image: ECHO_COMPONENT_IMAGE,
            command: vec!["/echo.wasm".into()],
        },
    }
}

/// Builds and imports every image, then waits for CRI to list them.
pub fn prepare(address: &Path, cri: &mut Cri) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = crate::network::ECHO_PORT;
    let component = dir.path().join("echo-component.wasm");
    std::fs::write(&component, components::tcp_echo_server_forever(port))?;
    let module = dir.path().join("echo-wasmedge.wasm");
    std::fs::write(&module, wasmedge_sockets::tcp_echo_server_forever(port))?;
    let mut images = vec![
        (PROBE_IMAGE, vec![(built("probe.wasm"), "/probe.wasm")]),
        (SENSOR_IMAGE, vec![(built("sensor.wasm"), "/sensor.wasm")]),
        (
            COMPUTE_IMAGE,
            vec![(built("compute.wasm"), "/compute.wasm")],
        ),
        (
            SQLITE_IMAGE,
            vec![(built("sqlite_logger.wasm"), "/sqlite_logger.wasm")],
        ),
        (SANDBOX_IMAGE, vec![(built("pause"), "/pause")]),
        (ECHO_COMPONENT_IMAGE, vec![(component, "/echo.wasm")]),
        (ECHO_WASMEDGE_IMAGE, vec![(module, "/echo.wasm")]),
        (ECHO_NATIVE_IMAGE, vec![(built("echo"), "/echo")]),
    ];
    if Path::new(BUSYBOX).exists() {
        images.push((BUSYBOX_IMAGE, vec![(BUSYBOX.into(), BUSYBOX)]));
    }
    for (name, files) in &images {
        let mut spec = ImageSpec::new(name);
        spec.entrypoint = vec![files[0].1.to_string()];
        spec.dirs = vec!["/tmp".into()];
        spec.files = files
            .iter()
            .map(|(source, target)| ImageFile {
                source: source.clone(),
                target: target.to_string(),
                mode: 0o755,
            })
            .collect();
        let archive = dir.path().join("image.tar");
        write_archive(&spec, &archive)?;
        let status = Command::new("ctr")
            .arg("--address")
            .arg(address)
            .args(["--namespace", "k8s.io", "image", "import"])
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .status()
            .context("running ctr")?;
        if !status.success() {
            bail!("ctr image import {name} failed: {status}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, _) in &images {
        while cri.image_status(name)?.is_none() {
            if Instant::now() > deadline {
                bail!("CRI does not see image {name}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}
