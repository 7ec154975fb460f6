//! The order of a container's events, whichever thread sees what first.
//!
//! Two threads meet here: create, which makes the record and queues
//! TaskCreate, and the exit thread, which queues TaskExit. A container's
//! process can die before its create has finished (killed from outside, or
//! failing at once), so its exit may reach the shim before its record
//! exists, or between the record's insert and its TaskCreate. Either way
//! containerd must see TaskCreate first, then exactly one TaskExit:
//! - the map's lock decides whether an exit is claimed by a record or kept
//!   as unclaimed, and create's insert and its look for a kept exit happen
//!   under that same lock, so an exit is claimed or found, never lost;
//! - the record's lock is held while TaskCreate is queued, and the exit
//!   thread queues TaskExit under it, so TaskExit cannot overtake.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use containerd_shim::protos::events::task::{TaskCreate, TaskExit};

use super::{Containers, timestamp};
use crate::container::{ContainerRecord, Exit};
use crate::events::{EventSink, TaskEvent};
use crate::exits::UnclaimedExits;

/// Makes `record` known, so that its process's exit is claimed by it, and
/// queues `created`, then the exit that came before, if one did. `since`
/// is when the create began: an earlier exit of the same pid was another
/// process's.
pub(super) fn publish_created(
    containers: &Containers,
    unclaimed: &UnclaimedExits,
    events: &dyn EventSink,
    record: &Arc<ContainerRecord>,
    since: Instant,
    created: TaskCreate,
) {
    let mut inner = record.lock();
    let early_exit = {
        let mut map = containers.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(record.id.clone(), record.clone());
        unclaimed.take(record.pid, since)
    };
    events.send(TaskEvent::of(created));
    if let Some(status) = early_exit {
        let exit = record.set_exited(&mut inner, status as u32);
        send_exit(events, record, exit);
    }
}

/// Marks the container whose process is `pid` as exited and tells
/// containerd; an exit no container claims is kept in `unclaimed`.
pub(super) fn record_exit(
    containers: &Containers,
    events: &dyn EventSink,
    unclaimed: &UnclaimedExits,
    pid: u32,
    status: i32,
) {
    let record = {
        let map = containers.lock().unwrap_or_else(PoisonError::into_inner);
        match map.values().find(|r| r.pid == pid) {
            Some(record) => record.clone(),
            None => {
                unclaimed.put(pid, status, Instant::now());
                return;
            }
        }
    };
    let mut inner = record.lock();
    let exit = record.set_exited(&mut inner, status as u32);
    send_exit(events, &record, exit);
    log::info!("container {} exited with status {}", record.id, exit.status);
}

/// Queues TaskExit for `record`.
pub(super) fn send_exit(events: &dyn EventSink, record: &ContainerRecord, exit: Exit) {
    events.send(TaskEvent::of(TaskExit {
        container_id: record.id.clone(),
        id: record.id.clone(),
        pid: record.pid,
        exit_status: exit.status,
        exited_at: Some(timestamp(exit.at)).into(),
        ..Default::default()
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeshim_isolation::IsolatedContainer;
    use std::sync::Mutex;
    use std::sync::mpsc;
    use std::time::Duration;

    const PID: u32 = 4242;

    type OnSend = Box<dyn Fn(&str) + Send + Sync>;

    /// Records the topics it is sent; `on_send` runs first, inside `send`.
    struct Recorder {
        topics: Mutex<Vec<String>>,
        on_send: OnSend,
    }

    impl Recorder {
        fn new(on_send: OnSend) -> Self {
            Self {
                topics: Mutex::default(),
                on_send,
            }
        }

        fn topics(&self) -> Vec<String> {
            self.topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    impl EventSink for Recorder {
        fn send(&self, event: TaskEvent) {
            let topic = event.topic();
            (self.on_send)(topic);
            self.topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(topic.to_string());
        }
    }

    fn record(dir: &std::path::Path) -> Arc<ContainerRecord> {
        let process = IsolatedContainer::for_tests("c1", PID as i32, dir).expect("record");
        Arc::new(ContainerRecord::new(
            "c1".into(),
            dir.to_path_buf(),
            Default::default(),
            None,
            process,
            input(),
        ))
    }

    fn input() -> edgeshim_policy::DecisionInput {
        serde_json::from_value(serde_json::json!({
            "action": "create",
            "container": {
                "id": "c1", "name": "", "kind": "wasm", "image": "",
                "entrypoint": "/m.wasm", "module": null, "args": [], "env": {},
                "mounts": [], "resources": {}, "namespaces": [],
                "host_network": false, "annotations": {}
            },
            "pod": null,
            "node": {"name": "n"}
        }))
        .expect("a decision input")
    }

    fn created() -> TaskCreate {
        TaskCreate {
            container_id: "c1".into(),
            pid: PID,
            ..Default::default()
        }
    }

    #[test]
    fn test_an_exit_before_the_record_exists_follows_its_task_create() {
        let dir = tempfile::tempdir().expect("dir");
        let containers = Containers::default();
        let unclaimed = UnclaimedExits::default();
        let events = Recorder::new(Box::new(|_| {}));
        let since = Instant::now();
        // The process died while its create was still running.
        record_exit(&containers, &events, &unclaimed, PID, 137);
        let record = record(dir.path());
        publish_created(&containers, &unclaimed, &events, &record, since, created());
        assert_eq!(events.topics(), ["/tasks/create", "/tasks/exit"]);
        assert_eq!(record.lock().exit.map(|e| e.status), Some(137));
    }

    #[test]
    fn test_an_exit_seen_while_task_create_is_queued_cannot_overtake_it() {
        let dir = tempfile::tempdir().expect("dir");
        let containers = Containers::default();
        let unclaimed = Arc::new(UnclaimedExits::default());
        let (exit_done_tx, exit_done) = mpsc::channel::<()>();
        let exit_done = Mutex::new(exit_done);
        let exit_thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
        let joined = exit_thread.clone();
        // The injected interleaving: the process exits, and the exit thread
        // runs, just as TaskCreate is being queued (after the insert).
        let events = Arc::new_cyclic(|weak: &std::sync::Weak<Recorder>| {
            let weak = weak.clone();
            let containers = containers.clone();
            let unclaimed = unclaimed.clone();
            Recorder::new(Box::new(move |topic| {
                if topic != "/tasks/create" {
                    return;
                }
                let (events, containers, unclaimed) =
                    (weak.upgrade(), containers.clone(), unclaimed.clone());
                let done = exit_done_tx.clone();
                let handle = std::thread::spawn(move || {
                    if let Some(events) = events {
                        record_exit(&containers, events.as_ref(), &unclaimed, PID, 0);
                    }
                    let _ = done.send(());
                });
                // Give the exit thread every chance to overtake: wait for it
                // to finish. It cannot while the record's lock is held, so
                // with the ordering right this wait ends by its bound.
                let _ = exit_done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv_timeout(Duration::from_millis(300));
                *exit_thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
            }))
        });
        let record = record(dir.path());
        publish_created(
            &containers,
            &unclaimed,
            events.as_ref(),
            &record,
            Instant::now(),
            created(),
        );
        let handle = joined
            .lock()
            .expect("thread")
            .take()
            .expect("exit thread ran");
        handle.join().expect("exit thread");
        assert_eq!(events.topics(), ["/tasks/create", "/tasks/exit"]);
        assert_eq!(record.lock().exit.map(|e| e.status), Some(0));
    }

    #[test]
    fn test_an_exit_of_an_earlier_process_with_the_pid_is_not_taken() {
        let dir = tempfile::tempdir().expect("dir");
        let containers = Containers::default();
        let unclaimed = UnclaimedExits::default();
        let events = Recorder::new(Box::new(|_| {}));
        record_exit(&containers, &events, &unclaimed, PID, 1);
        // The create began after that exit: the kernel reused the pid.
        let since = Instant::now() + Duration::from_millis(1);
        let record = record(dir.path());
        publish_created(&containers, &unclaimed, &events, &record, since, created());
        assert_eq!(events.topics(), ["/tasks/create"]);
        assert_eq!(record.lock().exit, None);
    }

    /// Wait requests await the exit on the shim's runtime thread: one
    /// already waiting is woken by the exit, recorded on another thread,
    /// and one that comes after it is answered at once.
    #[test]
    fn test_an_exit_wakes_a_waiting_wait_and_answers_a_later_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = record(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let exit = runtime.block_on(async {
            let waiting = record.clone();
            let waiter = tokio::spawn(async move { waiting.exited().await });
            // The waiter runs until it awaits the exit.
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            let exiting = record.clone();
            std::thread::spawn(move || {
                let mut inner = exiting.lock();
                exiting.set_exited(&mut inner, 7)
            })
            .join()
            .expect("the exit thread");
            waiter.await.expect("the waiter")
        });
        assert_eq!(exit.status, 7);
        assert_eq!(runtime.block_on(record.exited()), exit);
    }
}
