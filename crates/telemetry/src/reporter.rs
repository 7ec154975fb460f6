//! The sending end: one unbound, non-blocking datagram socket per shim,
//! opened on the first event.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{DEFAULT_SOCKET, Event, SOCKET_ENV};

/// Sends events to the exporter's socket and never waits for it.
pub struct Reporter {
    target: PathBuf,
    socket: OnceLock<Option<UnixDatagram>>,
    /// Whether a drop was logged already (once is enough: the exporter is
    /// simply not running, or busy).
    said_dropped: AtomicBool,
}

impl Reporter {
    pub fn new(target: impl Into<PathBuf>) -> Self {
        Self {
            target: target.into(),
            socket: OnceLock::new(),
            said_dropped: AtomicBool::new(false),
        }
    }

    /// To the socket the environment names, else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Self {
        Self::new(std::env::var_os(SOCKET_ENV).map_or_else(|| DEFAULT_SOCKET.into(), PathBuf::from))
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Sends `event`: one `sendto`, dropped when nobody listens or the
    /// exporter's queue is full.
    pub fn send(&self, event: &Event) {
        let socket = self.socket.get_or_init(|| {
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(socket)
        });
        let Some(socket) = socket else {
            return;
        };
        if let Err(e) = socket.send_to(&event.to_bytes(), &self.target)
            && !self.said_dropped.swap(true, Ordering::Relaxed)
        {
            log::debug!(
                "metrics events to {} are dropped ({e}); is edgeshim-metrics running?",
                self.target.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, Step};

    fn event() -> Event {
        Event::Container {
            runtime: "wasmtime".into(),
            step: Step::Create,
            outcome: Outcome::Ok,
            seconds: 0.001,
        }
    }

    #[test]
    fn events_arrive_one_per_datagram() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let reporter = Reporter::new(&path);
        reporter.send(&event());
        reporter.send(&event());
        let mut buf = [0u8; crate::MAX_DATAGRAM];
        for _ in 0..2 {
            let n = receiver.recv(&mut buf).expect("a datagram");
            assert_eq!(Event::from_bytes(&buf[..n]), Some(event()));
        }
    }

    #[test]
    fn nobody_listening_or_a_full_queue_never_blocks_the_sender() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.sock");
        Reporter::new(&path).send(&event());
        // A listener that never reads: its queue fills, and sends past
        // that return at once (a blocking send would hang this test).
        let _receiver = UnixDatagram::bind(&path).expect("bind");
        let reporter = Reporter::new(&path);
        for _ in 0..10_000 {
            reporter.send(&event());
        }
        assert!(reporter.said_dropped.load(Ordering::Relaxed));
    }
}
