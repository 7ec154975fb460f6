//! The node's metrics exporter (`edgeshim-metrics`, the release binary
//! beside this one) switched on and off between a scenario's runs, so that
//! `cold --exporter on,off` measures what it costs a start: with it on,
//! each create and start sends its events to a listener; off, the shims'
//! sends find nobody and are dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug)]
pub struct Switch {
    decision_log: PathBuf,
    events_socket: PathBuf,
    running: Mutex<Option<Child>>,
}

impl Switch {
    /// For the private containerd `hack/containerd.sh env` describes.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .with_context(|| format!("--exporter needs {name} (eval hack/containerd.sh env)"))
        };
        Ok(Self {
            decision_log: var("EDGESHIM_DECISION_LOG")?,
            events_socket: var("EDGESHIM_METRICS_SOCKET")?,
            running: Mutex::new(None),
        })
    }

    /// Starts the exporter (waiting until its events socket is there) or
    /// stops it.
    pub fn set(&self, on: bool) -> Result<()> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match (on, running.as_mut()) {
            (true, Some(_)) | (false, None) => Ok(()),
            (false, Some(child)) => {
                let _ = child.kill();
                let _ = child.wait();
                *running = None;
                Ok(())
            }
            (true, None) => {
                let binary = std::env::current_exe()?
                    .parent()
                    .context("the bench binary's folder")?
                    .join("edgeshim-metrics");
                let _ = std::fs::remove_file(&self.events_socket);
                let child = Command::new(&binary)
                    // Any free port: nothing scrapes it during the runs.
                    .args(["--listen", "127.0.0.1:0"])
                    .arg("--decision-log")
                    .arg(&self.decision_log)
                    .arg("--events-socket")
                    .arg(&self.events_socket)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("{}", binary.display()))?;
                *running = Some(child);
                let deadline = Instant::now() + Duration::from_secs(10);
                while !self.events_socket.exists() {
                    if Instant::now() > deadline {
                        bail!(
                            "edgeshim-metrics made no socket at {}",
                            self.events_socket.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            }
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.set(false);
    }
}
