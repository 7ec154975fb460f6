//! One container's record and its state machine:
//! `Created -> Running -> Stopped`, or `Created -> Stopped` (killed or failed
//! before start). Deletion removes the record.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use edgeshim_isolation::IsolatedContainer;
use edgeshim_network::NetworkGrant;
use edgeshim_policy::DecisionInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

/// What the task service knows of a container.
pub struct ContainerRecord {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: u32,
    pub stdio: [String; 3],
    /// The rootfs this shim mounted (unmounted on delete), if any.
    pub mounted_rootfs: Option<PathBuf>,
    /// What the policy gate saw at create; start is decided on the same.
    pub policy_input: DecisionInput,
    /// What the gate granted a Wasm container's sockets at create (none
    /// for a native one): what the shim's network guard holds it to.
    pub network: Option<NetworkGrant>,
    inner: Mutex<Inner>,
    exited: Condvar,
    /// The same wake-up for Wait requests, which wait on the shim's one
    /// runtime thread rather than holding a thread each.
    exited_async: tokio::sync::Notify,
}

pub struct Inner {
    pub status: Status,
    pub exit: Option<Exit>,
    pub process: IsolatedContainer,
    /// A SIGKILL reached the process while it waited to be started: a
    /// start after it is refused as such (the exit may not be seen yet).
    pub killed_before_start: bool,
}

impl ContainerRecord {
    pub fn new(
        id: String,
        bundle: PathBuf,
        stdio: [String; 3],
        mounted_rootfs: Option<PathBuf>,
        process: IsolatedContainer,
        policy_input: DecisionInput,
    ) -> Self {
        Self {
            id,
            bundle,
            pid: process.pid().unwrap_or_default(),
            stdio,
            mounted_rootfs,
            policy_input,
            network: None,
            inner: Mutex::new(Inner {
                status: Status::Created,
                exit: None,
                killed_before_start: false,
                process,
            }),
            exited: Condvar::new(),
            exited_async: tokio::sync::Notify::new(),
        }
    }

    /// The record of a Wasm container granted `network`.
    pub fn with_network(mut self, network: Option<NetworkGrant>) -> Self {
        self.network = network;
        self
    }

    /// The record's mutable part. Held while events about this container are
    /// queued, so TaskStart always precedes its TaskExit.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the exit (first one wins) and wakes waiters.
    pub fn set_exited(&self, inner: &mut Inner, status: u32) -> Exit {
        let exit = *inner.exit.get_or_insert(Exit {
            status,
            at: SystemTime::now(),
        });
        inner.status = Status::Stopped;
        self.exited.notify_all();
        self.exited_async.notify_waiters();
        exit
    }

    /// Resolves once the process has exited, without holding a thread.
    pub async fn exited(&self) -> Exit {
        loop {
            let notified = self.exited_async.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so an exit recorded between the
            // check and the await still wakes this waiter.
            notified.as_mut().enable();
            if let Some(exit) = self.lock().exit {
                return exit;
            }
            notified.await;
        }
    }

    /// Blocks until the process has exited.
    pub fn wait(&self) -> Exit {
        let mut inner = self.lock();
        loop {
            if let Some(exit) = inner.exit {
                return exit;
            }
            inner = self
                .exited
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
