//! The container's own first steps, in the cloned process: stdio, the
//! rootfs and the pivot into it ([`super::rootfs`]), limits, ids and capabilities,
//! then the wait for start and the payload. The order is libcontainer's
//! init (`process/init/process.rs`), less what [`super::unsupported`]
//! sends elsewhere; the steps are libcontainer's public pieces.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use libcontainer::syscall::Syscall;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::Payload;
use crate::container::Stdio;

/// The container's ends of the pipes to the set-up process and the shim.
pub(super) struct Pipes {
    /// Written `ready` (or why not), then closed.
    pub ready: OwnedFd,
    /// The start byte comes here, from the shim.
    pub start: OwnedFd,
    /// Ends when the set-up process has exited.
    pub set_up_gone: OwnedFd,
}

/// Never returns: the process runs its payload and exits, or says on
/// `ready` why it cannot and exits.
pub(super) fn run(
    id: &str,
    spec: &Spec,
    bundle: &Path,
    new_namespaces: CloneFlags,
    stdio: Stdio,
    pipes: Pipes,
    payload: Arc<dyn Payload>,
) -> ! {
    let Pipes {
        ready,
        start,
        set_up_gone,
    } = pipes;
    crate::launcher::zygote::set_command_line(&[
        "/proc/self/exe",
        crate::launcher::CONTAINER_ARG,
        id,
    ]);
    let mut ready = std::fs::File::from(ready);
    // A panic must end this copy of the launcher here, not unwind into the
    // launcher's own frames.
    let set_up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        set_up(spec, bundle, new_namespaces, stdio)
    }))
    .unwrap_or_else(|_| Err("the container's set-up panicked".into()));
    if let Err(reason) = set_up {
        let _ = ready.write_all(reason.as_bytes());
        // SAFETY: ends this process without running the launcher's exit
        // handlers in a copy of it.
        unsafe { libc::_exit(1) }
    }
    if ready.write_all(super::READY.as_bytes()).is_err() {
        // SAFETY: as above; the set-up process is gone.
        unsafe { libc::_exit(1) }
    }
    drop(ready);
    // The launcher's leftovers, free in this copy of its heap, go back to
    // the kernel while the shim answers the create and before the start:
    // off both requests' paths.
    crate::release_free_heap();
    if !started(start) {
        // The shim let go of the container before starting it.
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    // Almost always at once: the set-up process exits right after its
    // reply, and the start comes a round trip later.
    let _ = started(set_up_gone);
    crate::executor::run_payload(payload.as_ref())
}

/// Blocks until a byte comes (true) or the writer closes its end.
fn started(start: OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(start.as_raw_fd(), &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(1) => return true,
            _ => return false,
        }
    }
}

fn set_up(
    spec: &Spec,
    bundle: &Path,
    new_namespaces: CloneFlags,
    stdio: Stdio,
) -> Result<(), String> {
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    let process = spec.process().as_ref().ok_or("no process section")?;
    let syscall = libcontainer::syscall::syscall::create_syscall();
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    set_stdio(stdio)?;
    let has_uts = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Uts);
    if has_uts {
        if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            syscall
                .set_hostname(hostname)
                .map_err(|e| format!("cannot set hostname {hostname:?}: {e}"))?;
        }
        if let Some(domain) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            syscall
                .set_domainname(domain)
                .map_err(|e| format!("cannot set domain name {domain:?}: {e}"))?;
        }
    }
    if process.no_new_privileges() == Some(true) {
        // SAFETY: a prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "cannot set no_new_privs: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    enter_rootfs(spec, bundle, new_namespaces, syscall.as_ref())?;
    // runc's default when the spec names none.
    let umask = process.user().umask().unwrap_or(0o022);
    let mode =
        nix::sys::stat::Mode::from_bits(umask).ok_or_else(|| format!("invalid umask {umask:o}"))?;
    nix::sys::stat::umask(mode);
    for rlimit in process.rlimits().iter().flatten() {
        syscall
            .set_rlimit(rlimit)
            .map_err(|e| format!("cannot set rlimit {:?}: {e}", rlimit.typ()))?;
    }
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).map_err(|e| format!("cannot enter cwd {}: {e}", cwd.display()))?;
    let user = process.user();
    syscall
        .set_id(
            nix::unistd::Uid::from_raw(user.uid()),
            nix::unistd::Gid::from_raw(user.gid()),
        )
        .map_err(|e| format!("cannot become uid {} gid {}: {e}", user.uid(), user.gid()))?;
    libcontainer::capabilities::drop_privileges(&capabilities(process)?, syscall.as_ref())
        .map_err(|e| format!("cannot set capabilities: {e}"))?;
    Ok(())
}

/// The spec's capability sets, an absent or null one empty (as runc takes
/// it; libcontainer would leave it as the set-up process had it: all of
/// root's).
fn capabilities(
    process: &oci_spec::runtime::Process,
) -> Result<oci_spec::runtime::LinuxCapabilities, String> {
    let caps = process.capabilities().as_ref();
    let set = |pick: fn(
        &oci_spec::runtime::LinuxCapabilities,
    ) -> &Option<oci_spec::runtime::Capabilities>| {
        caps.and_then(|c| pick(c).clone()).unwrap_or_default()
    };
    oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(set(|c| c.bounding()))
        .effective(set(|c| c.effective()))
        .inheritable(set(|c| c.inheritable()))
        .permitted(set(|c| c.permitted()))
        .ambient(set(|c| c.ambient()))
        .build()
        .map_err(|e| format!("capabilities: {e}"))
}

/// The container's stdio on fds 0-2; a missing one is the host's
/// /dev/null (opened before the pivot).
fn set_stdio(stdio: Stdio) -> Result<(), String> {
    let streams = [stdio.stdin, stdio.stdout, stdio.stderr];
    for (target, stream) in streams.into_iter().enumerate() {
        let fd = match stream {
            Some(fd) => fd,
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| format!("cannot open /dev/null: {e}"))?
                .into(),
        };
        if fd.as_raw_fd() != target as i32 {
            // SAFETY: dup2 onto the standard descriptors; `fd` stays owned
            // and is closed when dropped.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                return Err(format!(
                    "cannot set fd {target}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        } else {
            // Already in place: keep it open past the drop.
            std::mem::forget(fd);
        }
    }
    Ok(())
}

/// The rootfs (absolute) and the view made of it; needs a mount namespace
/// of the container's own.
fn enter_rootfs(
    spec: &Spec,
    bundle: &Path,
    new_namespaces: CloneFlags,
    syscall: &dyn Syscall,
) -> Result<(), String> {
    if !new_namespaces.contains(CloneFlags::CLONE_NEWNS) {
        return Err("a Wasm container needs a mount namespace of its own".into());
    }
    let root = spec.root().as_ref().ok_or("the spec has no root")?;
    let rootfs = bundle.join(root.path());
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| format!("rootfs {}: {e}", rootfs.display()))?;
    super::rootfs::enter(spec, &rootfs, syscall)
}
