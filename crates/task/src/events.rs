//! Events back to containerd: TaskCreate, TaskStart, TaskExit, TaskDelete.
//!
//! Sending is off the request path: events go into a queue, and one thread
//! forwards them to containerd in order, so a start never waits on it.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use containerd_shim::Context;
use containerd_shim::event::Event;
use containerd_shim::publisher::RemotePublisher;

/// An event for containerd, with its topic.
pub type TaskEvent = Box<dyn Event + Send>;

/// Where the task service sends events; a fake records them in unit tests.
pub trait EventSink: Send + Sync + 'static {
    fn send(&self, event: TaskEvent);
}

/// Forwards events to containerd's event service, in order.
pub struct ContainerdEvents {
    queue: Mutex<Sender<TaskEvent>>,
}

impl ContainerdEvents {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (queue, events) = channel::<TaskEvent>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for event in events {
                    let topic = event.topic();
                    if let Err(e) = publisher.publish(Context::default(), &topic, &namespace, event)
                    {
                        log::warn!("cannot publish {topic} to containerd: {e}");
                    }
                }
            })
            .map_err(|e| log::error!("cannot start the event thread: {e}"))
            .ok();
        Self {
            queue: Mutex::new(queue),
        }
    }
}

impl EventSink for ContainerdEvents {
    fn send(&self, event: TaskEvent) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.send(event).is_err() {
            log::warn!("event thread is gone; event dropped");
        }
    }
}
