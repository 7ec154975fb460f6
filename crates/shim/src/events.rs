//! Events back to containerd: TaskCreate, TaskStart, TaskExit, TaskDelete.
//!
//! Sending is off the request path: events go into a queue, and one thread
//! forwards them to containerd in order, so a start never waits on it. An
//! event containerd does not take (it is restarting, its socket is gone) is
//! sent again, reconnecting, with a growing pause, before any later event:
//! order is kept, and nothing is dropped unless containerd stays away for
//! [`Retry::give_up_after`].
//!
//! The connection is let go of once the queue has been empty for
//! [`Retry::release_after`] and made again for the next event: a sleeping
//! pod's shim then holds no descriptor in containerd for its events, and
//! containerd's open-file limit is what caps the pods of a node.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use containerd_shim::Context;
use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::util::{connect, timestamp};

/// The protobuf package of containerd's task events (containerd's
/// `api/events/task.proto`).
const EVENTS_PACKAGE: &str = "containerd.events";

/// An event for containerd, encoded: its topic, its type's name and its
/// bytes, as they go into the envelope.
///
/// Encoded when made, and named from the type's `Message::NAME`, rather
/// than by containerd-shim's `convert_to_any`: that asks the message for
/// its reflection descriptor, and rust-protobuf then builds the descriptors
/// of the whole events file and of everything it imports (gogo.proto, and
/// through it google/protobuf/descriptor.proto, comments included) and
/// keeps them for the process's life: about 0.5 MB of heap in every pod's
/// shim, measured with smaps before and after this change (docs/design.md,
/// "Where a pod's memory goes").
#[derive(Debug, Clone)]
pub struct TaskEvent {
    topic: String,
    type_url: String,
    encoded: Result<Vec<u8>, String>,
}

impl TaskEvent {
    pub fn of<M: Event + Message>(event: M) -> Self {
        Self {
            topic: event.topic(),
            type_url: format!("{EVENTS_PACKAGE}.{}", M::NAME),
            encoded: event.write_to_bytes().map_err(|e| e.to_string()),
        }
    }

    /// containerd's topic for it, e.g. `/tasks/create`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The event as the envelope carries it.
    fn to_any(&self) -> Result<Any, String> {
        let mut any = Any::new();
        any.type_url = self.type_url.clone();
        any.value = self.encoded.clone()?;
        Ok(any)
    }
}

/// Where the task service sends events; a fake records them in unit tests.
pub trait EventSink: Send + Sync + 'static {
    fn send(&self, event: TaskEvent);
}

/// One attempt to hand an event to containerd.
pub trait Publish: Send + 'static {
    fn publish(&mut self, topic: &str, event: Any) -> Result<(), String>;

    /// No event for a while: let go of the connection (the next publish
    /// makes a new one).
    fn release(&mut self) {}
}

/// How failed sends are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first_pause: Duration,
    pub longest_pause: Duration,
    pub give_up_after: Duration,
    /// How long the queue stays empty before the connection is let go of.
    pub release_after: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            first_pause: Duration::from_millis(50),
            longest_pause: Duration::from_secs(2),
            // containerd restarts take seconds; an hour covers an upgrade
            // done by hand on a node nobody watches.
            give_up_after: Duration::from_secs(3600),
            // A container's events come in bursts (create and start, then
            // exit and delete); a second without one is the end of a burst.
            release_after: Duration::from_secs(1),
        }
    }
}

/// containerd's event service over ttrpc; reconnects after a failure (a
/// restarted containerd listens on a new connection). The client is ttrpc's
/// async one, driven from the event thread through the shim's runtime
/// (whose one thread drives its socket): a sync client would add two
/// threads of its own.
struct Containerd {
    runtime: tokio::runtime::Handle,
    client: Option<EventsClient>,
    /// A duplicate of the client's socket, to shut the connection down on
    /// release: dropping ttrpc's client ends its writer, but its reader
    /// keeps the socket open until containerd closes it.
    connection: Option<OwnedFd>,
    address: String,
    namespace: String,
}

impl Containerd {
    /// Ends the last connection, whoever still holds its socket: both
    /// ends see it closed, and ttrpc's tasks for it end and close theirs.
    fn shut_down_connection(&mut self) {
        if let Some(socket) = self.connection.take() {
            let _ =
                nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    }

    async fn forward(&mut self, topic: &str, event: Any) -> Result<(), String> {
        let client = match self.client.take() {
            Some(client) => client,
            None => {
                self.shut_down_connection();
                let fd = connect(&self.address)
                    .map_err(|e| format!("cannot reach containerd at {}: {e}", self.address))?;
                // SAFETY: `fd` is the connected socket `connect` just made,
                // owned by nothing else until the client takes it below.
                let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                self.connection = borrowed
                    .try_clone_to_owned()
                    .map_err(|e| log::debug!("no duplicate of the event socket: {e}"))
                    .ok();
                // SAFETY: as above; the client owns `fd` from here on.
                EventsClient::new(unsafe { Client::from_raw_unix_socket_fd(fd) })
            }
        };
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.to_string());
        envelope.set_namespace(self.namespace.clone());
        envelope.set_timestamp(timestamp().map_err(|e| e.to_string())?);
        envelope.set_event(event);
        let mut request = ForwardRequest::new();
        request.set_envelope(envelope);
        client
            .forward(Context::default(), &request)
            .await
            .map_err(|e| e.to_string())?;
        // Kept only after a send that worked; a failed one reconnects.
        self.client = Some(client);
        Ok(())
    }
}

impl Publish for Containerd {
    fn publish(&mut self, topic: &str, event: Any) -> Result<(), String> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.forward(topic, event))
    }

    fn release(&mut self) {
        self.client = None;
        self.shut_down_connection();
    }
}

/// Shuts down every connection this process holds to the socket at
/// `address` (containerd's event service).
///
/// Written by hand because containerd-shim 0.11's `RemotePublisher`, which
/// its `run` connects before the task service exists and which the shim
/// drops unused (it sends its own events, in order), keeps its connection
/// for the process's life: its queue task holds a sender of its own queue,
/// so dropping the publisher ends nothing. That is a descriptor in
/// containerd per pod for nothing. Shutting the socket down (not closing
/// it: the library's task owns the descriptor) makes ttrpc's reader see
/// the end and close it. It runs before this shim's own first event, so
/// the only connection to that socket is the library's.
pub fn shut_down_connections_to(address: &str) {
    use nix::sys::socket::{Shutdown, UnixAddr, getpeername, shutdown};
    let path = std::path::Path::new(address.strip_prefix("unix://").unwrap_or(address));
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let peer = getpeername::<UnixAddr>(fd).ok();
        if peer.as_ref().and_then(UnixAddr::path) == Some(path) {
            match shutdown(fd, Shutdown::Both) {
                Ok(()) => log::debug!("shut down the library's event connection (fd {fd})"),
                Err(e) => log::debug!("cannot shut down fd {fd} to {address}: {e}"),
            }
        }
    }
}

/// What the forwarding thread takes, in order.
enum Queued {
    Event(TaskEvent),
    /// Answered once every event queued before it is forwarded (or given up).
    Flush(Sender<()>),
}

/// Forwards events to containerd's event service, in order.
pub struct ContainerdEvents {
    queue: Mutex<Sender<Queued>>,
}

impl ContainerdEvents {
    /// Events to containerd, sent through the runtime the caller runs on.
    pub fn new(namespace: String) -> Self {
        // The address containerd gave the shim for its event service.
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let target = Containerd {
            runtime: tokio::runtime::Handle::current(),
            client: None,
            connection: None,
            address,
            namespace,
        };
        Self::with_publisher(target, Retry::default())
    }

    /// Events forwarded to `target` by a thread of their own.
    pub fn with_publisher(target: impl Publish, retry: Retry) -> Self {
        let (queue, events) = channel::<Queued>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || forward(events, target, retry))
            .map_err(|e| log::error!("cannot start the event thread: {e}"))
            .ok();
        Self {
            queue: Mutex::new(queue),
        }
    }

    /// Waits, at most `limit`, until every event sent so far has been
    /// forwarded: the shim calls it before it exits, so that the events
    /// of its last moments (a TaskDelete just before containerd's
    /// Shutdown) are not lost with the process. Whether they all went.
    pub fn flush(&self, limit: Duration) -> bool {
        let (done, flushed) = channel();
        self.enqueue(Queued::Flush(done)) && flushed.recv_timeout(limit).is_ok()
    }

    fn enqueue(&self, item: Queued) -> bool {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queue.send(item).is_ok()
    }
}

impl EventSink for ContainerdEvents {
    fn send(&self, event: TaskEvent) {
        if !self.enqueue(Queued::Event(event)) {
            log::warn!("event thread is gone; event dropped");
        }
    }
}

/// Sends each event until containerd takes it, then the next.
fn forward(events: Receiver<Queued>, mut target: impl Publish, retry: Retry) {
    // Whether a publish went through since the last release: only then is
    // a connection held, and only then does the thread wake to release it
    // (an idle shim's event thread otherwise sleeps until the next event).
    let mut holding = false;
    loop {
        let item = if holding {
            match events.recv_timeout(retry.release_after) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => {
                    target.release();
                    holding = false;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match events.recv() {
                Ok(item) => item,
                Err(_) => return,
            }
        };
        let event = match item {
            Queued::Event(event) => event,
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let topic = event.topic();
        // A publish consumes its message; a retry sends a copy again.
        let message = match event.to_any() {
            Ok(message) => message,
            Err(e) => {
                log::error!("cannot encode {topic}: {e}; event dropped");
                continue;
            }
        };
        let first_try = Instant::now();
        let mut pause = retry.first_pause;
        let mut failures = 0u32;
        loop {
            match target.publish(topic, message.clone()) {
                Ok(()) => {
                    holding = true;
                    if failures > 0 {
                        log::info!("{topic} reached containerd after {failures} failed sends");
                    }
                    break;
                }
                Err(e) if first_try.elapsed() >= retry.give_up_after => {
                    log::error!(
                        "{topic} not taken by containerd for {:?}: {e}; event dropped",
                        retry.give_up_after
                    );
                    break;
                }
                Err(e) => {
                    if failures == 0 {
                        log::warn!("cannot publish {topic} to containerd, retrying: {e}");
                    }
                    failures += 1;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(retry.longest_pause);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::events::task::{TaskCreate, TaskExit, TaskStart};
    use std::sync::mpsc::SyncSender;

    /// Fails every other attempt (and the first three), recording what it
    /// took.
    struct Flaky {
        attempts: u32,
        taken: SyncSender<(String, String)>,
    }

    impl Publish for Flaky {
        fn publish(&mut self, topic: &str, event: Any) -> Result<(), String> {
            self.attempts += 1;
            if self.attempts <= 3 || self.attempts.is_multiple_of(2) {
                return Err(format!("attempt {} refused", self.attempts));
            }
            let id = match event.type_url.as_str() {
                "containerd.events.TaskExit" => TaskExit::parse_from_bytes(&event.value)
                    .map(|e| e.container_id)
                    .unwrap_or_default(),
                "containerd.events.TaskCreate" => TaskCreate::parse_from_bytes(&event.value)
                    .map(|e| e.container_id)
                    .unwrap_or_default(),
                "containerd.events.TaskStart" => TaskStart::parse_from_bytes(&event.value)
                    .map(|e| e.container_id)
                    .unwrap_or_default(),
                other => panic!("unexpected type {other}"),
            };
            let _ = self.taken.send((topic.to_string(), id));
            Ok(())
        }
    }

    #[test]
    fn test_refused_events_are_sent_again_in_order() {
        let (taken, received) = std::sync::mpsc::sync_channel(16);
        let retry = Retry {
            first_pause: Duration::from_millis(1),
            longest_pause: Duration::from_millis(2),
            give_up_after: Duration::from_secs(60),
            release_after: Duration::from_secs(60),
        };
        let events = ContainerdEvents::with_publisher(Flaky { attempts: 0, taken }, retry);
        for id in ["a", "b"] {
            events.send(TaskEvent::of(TaskCreate {
                container_id: id.into(),
                ..Default::default()
            }));
            events.send(TaskEvent::of(TaskStart {
                container_id: id.into(),
                ..Default::default()
            }));
            events.send(TaskEvent::of(TaskExit {
                container_id: id.into(),
                ..Default::default()
            }));
        }
        let got: Vec<(String, String)> = (0..6).map(|_| received.recv().expect("event")).collect();
        let want: Vec<(String, String)> = ["a", "b"]
            .iter()
            .flat_map(|id| {
                ["/tasks/create", "/tasks/start", "/tasks/exit"]
                    .map(|topic| (topic.to_string(), id.to_string()))
            })
            .collect();
        assert_eq!(got, want);
    }

    /// Each event this shim sends is named as its reflection descriptor
    /// names it (what containerd-shim's `convert_to_any` put in the
    /// envelope), without the shim building descriptors.
    #[test]
    fn test_event_types_are_named_as_their_descriptors_name_them() {
        use containerd_shim::protos::events::task::{
            TaskDelete, TaskExecAdded, TaskExecStarted, TaskOOM, TaskPaused, TaskResumed,
        };
        use containerd_shim::protos::protobuf::MessageFull;
        fn check<M: Event + MessageFull + Default>() {
            let event = TaskEvent::of(M::default());
            assert_eq!(event.type_url, M::descriptor().full_name());
            assert_eq!(event.topic(), M::default().topic());
            let any = event.to_any().expect("encoded");
            assert!(M::parse_from_bytes(&any.value).is_ok());
        }
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskExit>();
        check::<TaskDelete>();
        check::<TaskOOM>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
        let exit = TaskEvent::of(TaskExit {
            container_id: "c".into(),
            exit_status: 137,
            ..Default::default()
        });
        let any = exit.to_any().expect("encoded");
        let decoded = TaskExit::parse_from_bytes(&any.value).expect("decoded");
        assert_eq!(
            (decoded.container_id.as_str(), decoded.exit_status),
            ("c", 137)
        );
    }

    /// Takes each event only on its third attempt.
    struct Slow {
        attempts: u32,
        taken: std::sync::Arc<Mutex<Vec<String>>>,
    }

    impl Publish for Slow {
        fn publish(&mut self, topic: &str, _: Any) -> Result<(), String> {
            self.attempts += 1;
            if !self.attempts.is_multiple_of(3) {
                return Err("not yet".into());
            }
            self.taken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(topic.to_string());
            Ok(())
        }
    }

    #[test]
    fn test_a_flush_returns_once_every_event_before_it_is_forwarded() {
        let taken = std::sync::Arc::new(Mutex::new(Vec::new()));
        let retry = Retry {
            first_pause: Duration::from_millis(5),
            longest_pause: Duration::from_millis(5),
            give_up_after: Duration::from_secs(60),
            release_after: Duration::from_secs(60),
        };
        let publisher = Slow {
            attempts: 0,
            taken: taken.clone(),
        };
        let events = ContainerdEvents::with_publisher(publisher, retry);
        events.send(TaskEvent::of(TaskExit::default()));
        events.send(TaskEvent::of(TaskCreate::default()));
        assert!(events.flush(Duration::from_secs(60)), "the flush timed out");
        let taken = taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(taken, vec!["/tasks/exit", "/tasks/create"]);
    }

    #[test]
    fn test_a_flush_gives_up_at_its_limit_when_containerd_is_gone() {
        let retry = Retry {
            first_pause: Duration::from_millis(5),
            longest_pause: Duration::from_millis(5),
            give_up_after: Duration::from_secs(60),
            release_after: Duration::from_secs(60),
        };
        let events = ContainerdEvents::with_publisher(Gone, retry);
        events.send(TaskEvent::of(TaskExit::default()));
        assert!(!events.flush(Duration::from_millis(100)));
    }

    /// Never takes anything.
    struct Gone;

    impl Publish for Gone {
        fn publish(&mut self, _: &str, _: Any) -> Result<(), String> {
            Err("containerd is gone".into())
        }
    }

    #[test]
    fn test_an_event_refused_past_the_limit_is_dropped_and_the_queue_moves_on() {
        let (queue, events) = channel::<Queued>();
        queue
            .send(Queued::Event(TaskEvent::of(TaskExit::default())))
            .expect("queued");
        drop(queue);
        let retry = Retry {
            first_pause: Duration::from_millis(1),
            longest_pause: Duration::from_millis(1),
            give_up_after: Duration::from_millis(20),
            release_after: Duration::from_secs(60),
        };
        // Returns (rather than retrying forever) once the limit has passed.
        forward(events, Gone, retry);
    }

    /// Takes everything, and says when it lets go of its connection.
    struct Releasing {
        said: SyncSender<&'static str>,
    }

    impl Publish for Releasing {
        fn publish(&mut self, _: &str, _: Any) -> Result<(), String> {
            let _ = self.said.send("published");
            Ok(())
        }

        fn release(&mut self) {
            let _ = self.said.send("released");
        }
    }

    /// A sleeping pod's shim holds no connection into containerd: once the
    /// queue has been empty for `release_after` the connection is let go of
    /// (once), and the next event is published on a new one.
    #[test]
    fn test_the_connection_is_let_go_of_when_the_queue_goes_quiet() {
        let (said, heard) = std::sync::mpsc::sync_channel(16);
        let retry = Retry {
            release_after: Duration::from_millis(10),
            ..Retry::default()
        };
        let events = ContainerdEvents::with_publisher(Releasing { said }, retry);
        let wait = |what| {
            assert_eq!(
                heard.recv_timeout(Duration::from_secs(30)).expect(what),
                what
            );
        };
        events.send(TaskEvent::of(TaskCreate::default()));
        wait("published");
        wait("released");
        events.send(TaskEvent::of(TaskStart::default()));
        wait("published");
        wait("released");
        assert!(events.flush(Duration::from_secs(30)));
        assert!(
            heard.try_recv().is_err(),
            "a flush with nothing to send releases nothing more"
        );
    }

    /// The library's event connection is ended by shutting its socket down:
    /// containerd's side sees the end; the descriptor stays the library's
    /// (open, never closed under it); a connection elsewhere is left alone.
    #[test]
    fn test_connections_to_an_address_are_shut_down_and_others_left_alone() {
        use std::io::{Read, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().expect("tempdir");
        let (target, other) = (
            dir.path().join("events.sock"),
            dir.path().join("other.sock"),
        );
        let (target_listener, other_listener) = (
            UnixListener::bind(&target).expect("bind"),
            UnixListener::bind(&other).expect("bind"),
        );
        let library = UnixStream::connect(&target).expect("connect");
        let elsewhere = UnixStream::connect(&other).expect("connect");
        let (mut containerd_side, _) = target_listener.accept().expect("accept");
        let (mut other_side, _) = other_listener.accept().expect("accept");

        shut_down_connections_to(&format!("unix://{}", target.display()));

        let mut byte = [0u8; 1];
        assert_eq!(
            containerd_side.read(&mut byte).expect("read"),
            0,
            "the end seen"
        );
        assert!((&library).write(b"x").is_err(), "shut down, still open");
        (&elsewhere)
            .write_all(b"y")
            .expect("the other connection works");
        other_side.read_exact(&mut byte).expect("read");
        assert_eq!(&byte, b"y");
    }
}
