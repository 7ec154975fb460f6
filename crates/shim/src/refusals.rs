//! Network refusals of this shim's Wasm containers, into the decision log.
//!
//! A container's engine checks every address against the container's grant
//! (edgeshim-network) and reports each refusal, rate-limited, as one
//! datagram on a socket every Wasm payload inherits from the launcher
//! ([`PAYLOAD_FD`](edgeshim_isolation::launcher::PAYLOAD_FD)); the send
//! never blocks the module (a full queue drops the report). The shim's end
//! receives the sender's pid from the kernel (`SO_PASSCRED`), so the
//! container a line names is the one whose process sent it, never what the
//! datagram says; a sender that is no container of this shim is ignored.
//! Read by a task on the shim's runtime whenever the socket is readable
//! (no thread of its own), limited again per container; a container's
//! delete drains what its process sent before it exited.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use edgeshim_network::guard::{HAND_OVER, Supervisor};
use edgeshim_network::{NetworkGrant, RateLimit, Refusal};
use edgeshim_policy::Gate;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, setsockopt,
    socketpair, sockopt,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The two ends: the shim's (receives) and the payloads' (sends).
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (shim_end, payload_end) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    setsockopt(&shim_end, sockopt::PassCred, &true)?;
    Ok((shim_end, payload_end))
}

/// A container of this shim, by the pid of its process: its id, and what
/// the gate granted its sockets (none for a native container).
pub type ContainerOf = Box<dyn Fn(u32) -> Option<(String, Option<NetworkGrant>)> + Send + Sync>;

/// The shim's end of the channel, read by one thread, and drained on
/// demand (see [`RefusalLog::drain`]); with the network guard that answers
/// the socket calls of containers whose engine has no address hook.
pub struct RefusalLog {
    shim_end: OwnedFd,
    container_of: ContainerOf,
    limited: Arc<Limited>,
    guard: Arc<Supervisor>,
}

/// The decision log, behind a per-container rate limit.
struct Limited {
    gate: Arc<dyn Gate>,
    limits: Mutex<HashMap<String, RateLimit>>,
}

impl Limited {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RateLimit>> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `Some(held back)` when `id` may log one more refusal now.
fn admit(limits: &mut HashMap<String, RateLimit>, id: &str) -> Option<u64> {
    if limits.len() > 4096 {
        limits.clear();
    }
    limits
        .entry(id.to_string())
        .or_insert_with(RateLimit::for_refusals)
        .admit(Instant::now())
}

impl RefusalLog {
    /// Receives reports on `shim_end` for as long as the shim lives, naming
    /// each by `container_of(pid)`: a task on the calling runtime (the
    /// shim's) drains the socket whenever it is readable. Fails outside a
    /// Tokio runtime.
    pub fn watch(
        shim_end: OwnedFd,
        gate: Arc<dyn Gate>,
        container_of: ContainerOf,
    ) -> std::io::Result<Arc<Self>> {
        let limited = Arc::new(Limited {
            gate,
            limits: Mutex::new(HashMap::new()),
        });
        let guarded = limited.clone();
        let guard = Supervisor::start(Box::new(move |id, refusal| {
            let held_back = admit(&mut guarded.lock(), id);
            if let Some(held_back) = held_back {
                guarded.gate.network_refused(id, refusal, held_back);
            }
        }))?;
        let log = Arc::new(Self {
            shim_end,
            container_of,
            limited,
            guard,
        });
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        // SAFETY: `as_raw_fd` is the log's report socket, which the log
        // owns and neither closes nor replaces while it lives (the Arc in
        // `Reading` keeps it alive as long as the AsyncFd).
        let readable =
            unsafe { AsyncFd::register_with_interest(Reading(log.clone()), Interest::READABLE) }
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        runtime.spawn(async move {
            loop {
                let mut ready = match readable.readable().await {
                    Ok(ready) => ready,
                    Err(e) => {
                        log::error!("network refusals: the report socket failed: {e}");
                        return;
                    }
                };
                // Readiness is cleared only when nothing new came in since
                // it was seen (Tokio's own check), so a report that lands
                // during the drain wakes the task again.
                let _ = ready.try_io(|reading| {
                    reading.get_ref().0.drain();
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
        });
        Ok(log)
    }

    /// Logs every report queued now. Delete calls it before a container's
    /// record goes, so that the reports its process sent before it exited
    /// are logged under its name.
    pub fn drain(&self) {
        // Held while reports are received and logged, so that a drain sees
        // every report queued before it was called.
        let mut limits = self.limited.lock();
        let mut buf = [0u8; 1024];
        while let Some(datagram) = receive(self.shim_end.as_raw_fd(), &mut buf) {
            let Some((id, grant)) = (self.container_of)(datagram.pid) else {
                continue;
            };
            if let Some(listener) = datagram.listener {
                self.hand_over(&id, grant, listener, &buf[..datagram.len]);
                continue;
            }
            // Limited before it is read: a container sending garbage fills
            // no log either.
            let Some(held_back) = admit(&mut limits, &id) else {
                continue;
            };
            match serde_json::from_slice::<Refusal>(&buf[..datagram.len]) {
                Ok(refusal) => self.limited.gate.network_refused(&id, &refusal, held_back),
                Err(e) => log::warn!("container {id}: an unreadable network refusal report: {e}"),
            }
        }
    }

    /// A Wasm container's process handed over its guard's listener: its
    /// socket calls are answered under the grant of its record, never one
    /// it claims. A native container has no guard to hand over.
    fn hand_over(&self, id: &str, grant: Option<NetworkGrant>, listener: OwnedFd, said: &[u8]) {
        let Some(grant) = grant.filter(|_| said == HAND_OVER) else {
            log::warn!("container {id}: a descriptor it sent was not its network guard; closed");
            return;
        };
        if !self.guard.watch(id, grant, listener) {
            log::warn!("container {id}: a second network guard; closed");
        }
    }

    /// Stops answering `id`'s socket calls and drops its rate limit (its
    /// delete, after the last [`RefusalLog::drain`]).
    pub fn forget(&self, id: &str) {
        self.guard.forget(id);
        self.limited.lock().remove(id);
    }
}

/// The report socket as the runtime's reactor watches it.
struct Reading(Arc<RefusalLog>);

impl AsRawFd for Reading {
    fn as_raw_fd(&self) -> RawFd {
        self.0.shim_end.as_raw_fd()
    }
}

/// One datagram a container sent.
struct Datagram {
    /// Its sender, as the kernel says.
    pid: u32,
    len: usize,
    /// A descriptor it carried (the first; any others are closed).
    listener: Option<OwnedFd>,
}

/// One queued datagram and the pid the kernel says sent it, without
/// waiting; `None` when none is queued. One without credentials is
/// skipped.
fn receive(fd: RawFd, buf: &mut [u8]) -> Option<Datagram> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; 4]);
        let message = recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let len = message.bytes;
        let mut pid = None;
        let mut listener = None;
        for cmsg in message.cmsgs().into_iter().flatten() {
            match cmsg {
                ControlMessageOwned::ScmCredentials(creds) => pid = u32::try_from(creds.pid()).ok(),
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        // SAFETY: the kernel just gave this process each of
                        // these descriptors; owning them closes the unused.
                        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                        listener.get_or_insert(owned);
                    }
                }
                _ => {}
            }
        }
        match pid {
            Some(pid) => return Some(Datagram { pid, len, listener }),
            // Nothing queued and no sender left: not a datagram.
            None if len == 0 => return None,
            None => {}
        }
    }
}

/// Whether the launcher handed this process (a Wasm payload) the report
/// socket.
fn payload_has_channel() -> bool {
    nix::sys::stat::fstat(edgeshim_isolation::launcher::PAYLOAD_FD)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// In a Wasm payload whose engine has no address hook: sets the network
/// guard and hands its listener to the shim over the report socket.
pub fn guard_payload() -> Result<(), String> {
    if !payload_has_channel() {
        return Err("the launcher gave this process no channel to its shim".into());
    }
    edgeshim_network::guard::guard_this_process(edgeshim_isolation::launcher::PAYLOAD_FD)
        .map_err(|e| e.to_string())
}

/// In a Wasm payload: sends each refusal to the shim, if the launcher
/// handed this process the report socket.
pub fn payload_reporter() -> Option<edgeshim_network::ReportRefusal> {
    use edgeshim_isolation::launcher::PAYLOAD_FD;
    if !payload_has_channel() {
        return None;
    }
    Some(Arc::new(|refusal: &Refusal| {
        if let Ok(bytes) = serde_json::to_vec(refusal) {
            // Never waits: a full queue drops this report.
            let _ = nix::sys::socket::send(
                PAYLOAD_FD,
                &bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            );
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is told to log.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Refusal, u64)>>);

    impl Gate for Recorder {
        fn decide(&self, input: &edgeshim_policy::DecisionInput) -> edgeshim_policy::Decision {
            edgeshim_policy::AllowAll.decide(input)
        }
        fn network_refused(&self, container: &str, refusal: &Refusal, held_back: u64) {
            self.0
                .lock()
                .expect("recorder")
                .push((container.into(), refusal.clone(), held_back));
        }
    }

    /// A refusal of `usage` at `address`, and the datagram an engine sends
    /// for it.
    fn report(usage: edgeshim_network::Use, address: &str) -> (Refusal, Vec<u8>) {
        let refusal = Refusal {
            usage,
            address: address.parse().expect("address"),
            decided_by: "default".into(),
        };
        let bytes = serde_json::to_vec(&refusal).expect("json");
        (refusal, bytes)
    }

    /// A watched channel on which this test process is container "c1".
    fn watched_as_c1() -> (Arc<RefusalLog>, Arc<Recorder>, OwnedFd) {
        let (shim_end, payload_end) = channel().expect("channel");
        let gate = Arc::new(Recorder::default());
        let me = std::process::id();
        let log = RefusalLog::watch(
            shim_end,
            gate.clone(),
            Box::new(move |pid| (pid == me).then(|| ("c1".to_string(), None))),
        )
        .expect("watch");
        (log, gate, payload_end)
    }

    #[tokio::test]
    async fn test_garbage_from_a_container_counts_against_its_limit() {
        let (log, gate, payload_end) = watched_as_c1();
        for _ in 0..30 {
            nix::sys::socket::send(payload_end.as_raw_fd(), b"not json", MsgFlags::empty())
                .expect("send");
        }
        let (_, bytes) = report(edgeshim_network::Use::Listen, "0.0.0.0:80");
        nix::sys::socket::send(payload_end.as_raw_fd(), &bytes, MsgFlags::empty()).expect("send");
        log.drain();
        assert!(
            gate.0.lock().expect("recorder").is_empty(),
            "the window was spent on garbage"
        );
    }

    #[tokio::test]
    async fn test_reports_are_named_by_the_senders_pid_and_limited() {
        let (log, gate, payload_end) = watched_as_c1();
        let (refusal, bytes) = report(edgeshim_network::Use::Connect, "10.9.9.9:1883");
        // The datagram's own claims are not read as the container: only
        // its sender's pid names it.
        for _ in 0..50 {
            nix::sys::socket::send(payload_end.as_raw_fd(), &bytes, MsgFlags::empty())
                .expect("send");
        }
        // Garbage counts against the limit too (and is never logged as a
        // refusal).
        nix::sys::socket::send(payload_end.as_raw_fd(), b"not json", MsgFlags::empty())
            .expect("send");
        // Everything queued so far is logged once drain returns.
        log.drain();
        let lines = gate.0.lock().expect("recorder").clone();
        assert_eq!(lines.len(), 10, "the per-container limit");
        assert_eq!(lines[0], ("c1".to_string(), refusal, 0));
    }

    /// A report reaches the decision log while its container runs: the
    /// runtime's task reads it, no delete needed.
    #[tokio::test]
    async fn test_a_report_is_logged_without_waiting_for_a_delete() {
        let (_log, gate, payload_end) = watched_as_c1();
        let (refusal, bytes) = report(edgeshim_network::Use::Connect, "10.1.2.3:443");
        nix::sys::socket::send(payload_end.as_raw_fd(), &bytes, MsgFlags::empty()).expect("send");
        let logged = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while gate.0.lock().expect("recorder").is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(logged.is_ok(), "the report was never logged");
        assert_eq!(
            gate.0.lock().expect("recorder").clone(),
            vec![("c1".to_string(), refusal, 0)]
        );
    }

    #[test]
    fn test_outside_a_runtime_watching_fails_rather_than_reading_nothing() {
        let (shim_end, _payload_end) = channel().expect("channel");
        let watched =
            RefusalLog::watch(shim_end, Arc::new(Recorder::default()), Box::new(|_| None));
        assert!(watched.is_err());
    }
}
