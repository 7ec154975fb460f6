//! The launcher: a single-threaded process, one per shim, that every
//! container process is cloned from.
//!
//! Why: libcontainer clones its set-up processes from whatever process calls
//! it, and a child of a multi-threaded process may find a lock held forever
//! by a thread that does not exist in the child (a create hung so, in
//! `std::process::exit` of the intermediate process, once in a few thousand
//! starts). The launcher is forked from the shim's single-threaded zygote
//! (or exec'd fresh from the shim's own binary) and never starts a thread,
//! and checks that it has exactly one before every clone,
//! so no lock can be held at a clone: the hang cannot recur by construction.
//! It also makes the clone cheap (a small address space to copy) and keeps
//! libcontainer's intermediate processes out of the shim's reaper.
//!
//! Shim side: [`Launcher`] has the shim's [`zygote`] fork it (or, without
//! one, execs `/proc/self/exe` with [`LAUNCHER_ARG`]) and sends it
//! [`LaunchRequest`]s. Launcher side:
//! [`serve`], with a [`PayloadFactory`] that turns a request's payload
//! description into the Wasm payload the container process runs.

mod client;
mod server;
mod wire;
pub mod zygote;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use client::Launcher;
pub use server::{PayloadFactory, serve};

/// First argument that makes the shim binary a launcher.
pub const LAUNCHER_ARG: &str = "--edgeshim-launcher";

/// Second word of a direct-path Wasm container's command line (the third is
/// its id, also its `comm`): a copy of the launcher, told from it by `ps`
/// and the tools.
pub const CONTAINER_ARG: &str = "--edgeshim-wasm-container";

/// The launcher's end of its socket to the shim.
pub(crate) const LAUNCHER_FD: std::os::fd::RawFd = 3;
/// Where the launcher, and every Wasm payload it makes, finds the
/// descriptor given to [`Launcher::with_payload_fd`] (native programs lose
/// it at their `exec`: libcontainer marks it close-on-exec).
pub const PAYLOAD_FD: std::os::fd::RawFd = 4;

/// What the launcher makes: one container process, waiting for start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub id: String,
    pub state_root: PathBuf,
    pub bundle: PathBuf,
    pub systemd: bool,
    /// Which of stdin, stdout, stderr come as descriptors, in that order,
    /// first among the message's descriptors (missing ones are /dev/null).
    pub stdio: [bool; 3],
    /// Handed to the launcher's [`PayloadFactory`]; `None`: a native process.
    pub payload: Option<serde_json::Value>,
    /// Whether the message's last descriptor goes to the payload factory.
    pub payload_fd: bool,
    /// The supplementary groups the set-up process takes before it makes
    /// the container, which inherits them: exactly these, none of the
    /// shim's (as runc sets them). A native container's spec still names
    /// its own, which libcontainer sets again; a Wasm container's cannot be
    /// set there (see `bundle_config::wasm_sandbox`).
    #[serde(default)]
    pub supplementary_gids: Vec<u32>,
    /// Made on the direct launch path (a Wasm payload whose spec it
    /// covers), not through libcontainer: the reply then carries the
    /// write end of the container's start pipe.
    #[serde(default)]
    pub direct: bool,
    /// For the direct path: the host's cgroup v1 controllers (name,
    /// mount folder), as the shim read them (see
    /// `wasm_process::controller_mounts`).
    #[serde(default)]
    pub cgroup_mounts: Vec<(String, PathBuf)>,
}

/// The launcher's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchReply {
    /// The process exists and waits; its host pid.
    Created {
        pid: u32,
    },
    /// The payload factory needs the descriptor it was not sent (a module it
    /// has not seen): send the request again with it.
    NeedPayloadFd,
    Failed {
        reason: String,
    },
}
