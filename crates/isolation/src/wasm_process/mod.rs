//! The direct launch path: a container's process made by one clone from
//! the launcher's set-up process, without libcontainer's builder,
//! intermediate and init processes. A Wasm container runs its payload in
//! that process; a native program (a pod's pause, a `ctr run` program) is
//! `exec`ed there.
//!
//! Why: those three spent about 10 of the 13 ms from create to a module's
//! first output (docs/design.md, "Where a start's time goes") on state
//! files, a cgroup manager that parses mountinfo per controller, and a
//! second clone, none of which a Wasm container needs.
//!
//! What it does itself: the cgroup ([`cgroup_v1`]), the namespaces (joined
//! by `setns` in the set-up process, made by the clone's flags), the start
//! handshake (a pipe whose write end the shim holds: a byte starts the
//! payload, its end without one ends the container unstarted), and a small
//! record for signals and delete ([`record`]). What it keeps from
//! libcontainer, through its public pieces: the pivot, the ids,
//! capabilities and rlimits ([`init`]); the mounts are made here
//! ([`rootfs`]).
//!
//! A spec it does not cover ([`unsupported`]) goes through libcontainer;
//! `EDGESHIM_LAUNCH_PATH=libcontainer` sends every container there.
//!
//! Why native programs too: a pod's pause went through libcontainer,
//! whose join of a v1 cgroup (a pid written to `cgroup.procs`) waits for
//! an RCU grace period when the node has been quiet (8 to 25 ms here,
//! docs/design.md "Where a start's time goes"), on every pod's sandbox.

mod cgroup_v1;
mod handle;
mod init;
pub(crate) mod record;
mod rootfs;

pub(crate) use handle::{DirectProcess, remove_failed_create};

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libcgroups::common::CgroupSetup;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::Payload;
use crate::container::Stdio;
use crate::launcher::LaunchRequest;

/// The environment variable that sends every container through
/// libcontainer (`libcontainer`); anything else, or unset, is the default.
pub const LAUNCH_PATH_ENV: &str = "EDGESHIM_LAUNCH_PATH";

/// What the container process runs once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    /// A payload run in the process itself (the shim's Wasm engine).
    Wasm,
    /// The spec's `process.args`, `exec`ed.
    Native,
}

impl Program {
    /// A Wasm payload's container, or (`None`) a native program's.
    pub(crate) fn of<T>(payload: &Option<T>) -> Self {
        match payload {
            Some(_) => Self::Wasm,
            None => Self::Native,
        }
    }
}

/// Why `spec` must be made by libcontainer, or `None` when the direct path
/// makes it exactly as libcontainer would. A Wasm spec's devices,
/// read-only paths and sysctls are gone before it is made
/// (`bundle_config::wasm_sandbox`); a native spec with devices or sysctls
/// goes to libcontainer.
pub(crate) fn unsupported(
    spec: &Spec,
    setup: &CgroupSetup,
    systemd: bool,
    program: Program,
) -> Option<String> {
    if std::env::var(LAUNCH_PATH_ENV).is_ok_and(|v| v == "libcontainer") {
        return Some(format!("{LAUNCH_PATH_ENV}=libcontainer"));
    }
    if systemd {
        return Some("the systemd cgroup driver".into());
    }
    if !matches!(setup, CgroupSetup::Legacy | CgroupSetup::Hybrid) {
        return Some("a cgroup2-only host".into());
    }
    let Some(linux) = spec.linux() else {
        return Some("no linux section".into());
    };
    if linux.cgroups_path().is_none() {
        return Some("no cgroups path".into());
    }
    spec_unsupported(spec, program)
}

/// The part of [`unsupported`] read from the spec alone; the set-up
/// process asks it again of the config.json it loads.
fn spec_unsupported(spec: &Spec, program: Program) -> Option<String> {
    let Some(linux) = spec.linux() else {
        return Some("no linux section".into());
    };
    let Some(process) = spec.process() else {
        return Some("no process".into());
    };
    let named = [
        (linux.seccomp().is_some(), "a seccomp profile"),
        (process.apparmor_profile().is_some(), "an AppArmor profile"),
        (
            process.selinux_label().is_some() || linux.mount_label().is_some(),
            "an SELinux label",
        ),
        (spec.hooks().is_some(), "hooks"),
        (process.terminal() == Some(true), "a terminal"),
        (linux.personality().is_some(), "a personality"),
        (linux.intel_rdt().is_some(), "Intel RDT"),
        (
            process.scheduler().is_some() || process.io_priority().is_some(),
            "a scheduler or I/O priority",
        ),
        (
            linux.uid_mappings().is_some() || linux.gid_mappings().is_some(),
            "id mappings",
        ),
        (linux.net_devices().is_some(), "network devices"),
    ];
    if let Some((_, what)) = named.iter().find(|(present, _)| *present) {
        return Some((*what).to_string());
    }
    if program == Program::Native
        && let Some(why) = native_unsupported(spec)
    {
        return Some(why.to_string());
    }
    for namespace in linux.namespaces().iter().flatten() {
        if clone_flag(namespace.typ()).is_none() {
            return Some(format!("a {:?} namespace", namespace.typ()));
        }
    }
    if let Some(why) = linux.resources().as_ref().and_then(cgroup_v1::unsupported) {
        return Some(why.to_string());
    }
    rootfs::unsupported(spec, program)
}

/// What of a native program's spec the direct path does not make (a
/// Wasm spec loses these in the sandbox edit).
fn native_unsupported(spec: &Spec) -> Option<&'static str> {
    let linux = spec.linux().as_ref()?;
    let has_args = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .is_some_and(|args| !args.is_empty());
    if !has_args {
        return Some("no program to run");
    }
    if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Some("devices");
    }
    if linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()) {
        return Some("sysctls");
    }
    None
}

/// The clone flag of a namespace the direct path makes or joins.
fn clone_flag(kind: LinuxNamespaceType) -> Option<CloneFlags> {
    Some(match kind {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        _ => return None,
    })
}

/// The mounted v1 controllers (name, folder), in a fixed order, as the
/// shim read them once. The shim reads them, not the launcher: libcgroups
/// looks them up through pathrs, which keeps a procfs handle open for the
/// process, and every container cloned from the launcher would inherit it.
pub(crate) fn controller_mounts() -> Vec<(String, PathBuf)> {
    let mut mounts: Vec<_> = crate::cgroups::v1_mount_points()
        .iter()
        .map(|(controller, path)| (controller.to_string(), path.clone()))
        .collect();
    mounts.sort();
    mounts
}

/// What the set-up process hands back: the container's pid and the write
/// end of its start pipe.
pub(crate) struct Made {
    pub pid: u32,
    pub start: OwnedFd,
}

/// In the launcher's set-up process (a single-threaded fork it will `_exit`
/// soon after): makes the cgroup and joins it and the spec's namespaces,
/// clones the container into the namespaces it makes, and waits until the
/// container is ready to start or has said why not.
pub(crate) fn make(
    request: &LaunchRequest,
    stdio: Stdio,
    payload: Option<Arc<dyn Payload>>,
) -> Result<Made, String> {
    let config = request.bundle.join("config.json");
    let spec = Spec::load(&config).map_err(|e| format!("cannot load {}: {e}", config.display()))?;
    let program = Program::of(&payload);
    // The shim chose this path from the spec it was given; a config.json
    // changed since must not take the container past what it checked.
    if let Some(why) = spec_unsupported(&spec, program) {
        return Err(format!("{} now asks for {why}", config.display()));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or("the spec has no linux section")?;
    let record_dir = record::make_dir(&request.state_root, &request.id)?;
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("cannot set oom_score_adj {adj}: {e}"))?;
    }
    let cgroups_path = linux
        .cgroups_path()
        .as_deref()
        .ok_or("the spec has no cgroups path")?;
    cgroup_v1::make(
        &request.cgroup_mounts,
        cgroups_path,
        linux.resources().as_ref(),
    )?;
    // From here the cgroup is this container's: a failed create removes it
    // (and kills what is in it) only when this mark is there.
    record::mark_cgroup_made(&record_dir)?;
    cgroup_v1::join(&request.cgroup_mounts, cgroups_path)?;
    let mut flags = CloneFlags::empty();
    for namespace in linux.namespaces().iter().flatten() {
        let flag = clone_flag(namespace.typ())
            .ok_or_else(|| format!("a {:?} namespace", namespace.typ()))?;
        match namespace.path() {
            Some(path) => join_namespace(path, flag)?,
            None => flags |= flag,
        }
    }
    let (ready_read, ready_write) = pipe()?;
    let (start_read, start_write) = pipe()?;
    // Held by this process until it exits: the container runs its payload
    // only once this process has left the cgroup (a pids limit of 2 counts
    // the payload's two threads, not this process).
    let (set_up_gone, set_up_alive) = pipe()?;
    let pid = clone(flags)?;
    if pid == 0 {
        drop(ready_read);
        drop(start_write);
        drop(set_up_alive);
        init::run(
            &request.id,
            &spec,
            &request.bundle,
            flags,
            stdio,
            init::Pipes {
                ready: ready_write,
                start: start_read,
                set_up_gone,
            },
            payload,
        )
    }
    drop(ready_write);
    drop(start_read);
    drop(set_up_gone);
    // Leaked on purpose: closed by this process's exit, which the container
    // waits for.
    std::mem::forget(set_up_alive);
    drop(stdio);
    let pid = u32::try_from(pid).map_err(|e| format!("clone returned {pid}: {e}"))?;
    if let Err(reason) = wait_ready(ready_read) {
        let child = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(reason);
    }
    record::write(&record_dir, pid, cgroups_path)?;
    Ok(Made {
        pid,
        start: start_write,
    })
}

/// Joins the namespace at `path` (a pid namespace: for the children).
fn join_namespace(path: &Path, flag: CloneFlags) -> Result<(), String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open namespace {}: {e}", path.display()))?;
    nix::sched::setns(&file, flag)
        .map_err(|e| format!("cannot join namespace {}: {e}", path.display()))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A fork-like clone into new namespaces: the child continues on a copy of
/// the caller's stack, as after `fork`. Called from a single-threaded
/// process only (libcontainer clones its processes the same way).
fn clone(flags: CloneFlags) -> Result<i64, String> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: no new stack and no CLONE_VM, so the child has its own copy
    // of the address space; the caller has one thread, so no lock is held.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid < 0 {
        return Err(format!(
            "cannot clone the container: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(pid)
}

/// What the container writes on `ready` when it waits for start; anything
/// else it writes is why it cannot.
pub(crate) const READY: &str = "ready";

/// Reads the container's word on `ready` to its end.
fn wait_ready(ready: OwnedFd) -> Result<(), String> {
    use std::io::Read;
    let mut word = String::new();
    std::fs::File::from(ready)
        .read_to_string(&mut word)
        .map_err(|e| format!("cannot hear from the container's set-up: {e}"))?;
    match word.as_str() {
        READY => Ok(()),
        "" => Err("the container's process ended during its set-up".into()),
        reason => Err(reason.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxDeviceBuilder, ProcessBuilder, SpecBuilder};

    fn native_spec(args: &[&str], linux: LinuxBuilder) -> Spec {
        let process = ProcessBuilder::default()
            .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .build()
            .expect("process");
        SpecBuilder::default()
            .process(process)
            .linux(linux.build().expect("linux"))
            .build()
            .expect("spec")
    }

    #[test]
    fn test_what_a_native_program_needs_beyond_the_direct_path_is_named() {
        assert_eq!(
            native_unsupported(&native_spec(&["/pause"], LinuxBuilder::default())),
            None
        );
        assert_eq!(
            native_unsupported(&native_spec(&[], LinuxBuilder::default())),
            Some("no program to run")
        );
        let device = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .major(10)
            .minor(229)
            .build()
            .expect("device");
        assert_eq!(
            native_unsupported(&native_spec(
                &["/pause"],
                LinuxBuilder::default().devices(vec![device])
            )),
            Some("devices")
        );
        let sysctl: std::collections::HashMap<String, String> =
            [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
        assert_eq!(
            native_unsupported(&native_spec(
                &["/pause"],
                LinuxBuilder::default().sysctl(sysctl)
            )),
            Some("sysctls")
        );
    }
}
