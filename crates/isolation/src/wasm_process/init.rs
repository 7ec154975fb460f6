//! The container's own first steps, in the cloned process: stdio, the
//! rootfs and the pivot into it ([`super::rootfs`]), limits, ids and capabilities,
//! then the wait for start and the payload (a Wasm module run here) or the
//! `exec` of a native program. The order is libcontainer's init
//! (`process/init/process.rs`), less what [`super::unsupported`] sends
//! elsewhere; the steps are libcontainer's public pieces, the native
//! program's look-up, environment and `exec` its default executor's.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use libcontainer::syscall::Syscall;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::Program;
use crate::Payload;
use crate::container::Stdio;
use crate::executor::ContainerExecutor;

/// The container's ends of the pipes to the set-up process and the shim.
pub(super) struct Pipes {
    /// Written `ready` (or why not), then closed.
    pub ready: OwnedFd,
    /// The start byte comes here, from the shim.
    pub start: OwnedFd,
    /// Ends when the set-up process has exited.
    pub set_up_gone: OwnedFd,
}

/// Never returns: the process runs its payload (`None`: `exec`s the spec's
/// program) and exits, or says on `ready` why it cannot and exits.
pub(super) fn run(
    id: &str,
    spec: &Spec,
    bundle: &Path,
    new_namespaces: CloneFlags,
    stdio: Stdio,
    pipes: Pipes,
    payload: Option<Arc<dyn Payload>>,
) -> ! {
    let program = Program::of(&payload);
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
        set_up(spec, bundle, new_namespaces, stdio, program)
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
    if payload.is_some() {
        // The launcher's leftovers, free in this copy of its heap, go back
        // to the kernel while the shim answers the create and before the
        // start: off both requests' paths. (An exec drops them all.)
        crate::release_free_heap();
    }
    if !started(start) {
        // The shim let go of the container before starting it.
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    // Almost always at once: the set-up process exits right after its
    // reply, and the start comes a round trip later.
    let _ = started(set_up_gone);
    match payload {
        Some(payload) => crate::executor::run_payload(payload.as_ref()),
        None => exec_program(spec),
    }
}

/// Replaces this process with the spec's program (looked up before
/// `ready`); only fds 0-2 cross the `exec`. If the `exec` itself fails,
/// the reason goes to the container's stderr and it exits 127, as a shell
/// does.
fn exec_program(spec: &Spec) -> ! {
    // libcontainer's init marks every fd past stdio close-on-exec the same
    // way, as late as it can (runc's GHSA-xr7r-f8xq-vfvv).
    // SAFETY: a system call with integer arguments only.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    default_signals();
    let reason = match libcontainer::workload::Executor::exec(&NATIVE, spec) {
        Ok(()) => "the program returned from exec".to_string(),
        Err(e) => e.to_string(),
    };
    let _ = writeln!(std::io::stderr(), "exec failed: {reason}");
    // SAFETY: ends this process without running the launcher's exit
    // handlers in a copy of it.
    unsafe { libc::_exit(127) }
}

/// libcontainer's executor for a native program (its default one).
const NATIVE: ContainerExecutor = ContainerExecutor { payload: None };

/// What the program inherits of the launcher's signal state, undone: every
/// signal unblocked and back to its default action (the Rust runtime
/// ignores SIGPIPE, and an ignored signal stays ignored across `exec`).
fn default_signals() {
    /// The kernel's `struct sigaction` (libc's `signal` refuses glibc's
    /// own signals 32 and 33, which an exec would also carry ignored).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    let none = 0u64;
    // SAFETY: system calls given valid pointers to values of the kernel's
    // layout and size (8 bytes of mask), for this single-threaded process
    // about to exec; no handler of ours runs.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &default as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
    }
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
    program: Program,
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
    enter_rootfs(spec, bundle, new_namespaces, program, syscall.as_ref())?;
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
    if program == Program::Native {
        // A missing program fails the create, not the start (runc's and
        // libcontainer's order: looked up as the container's user, in its
        // root, on its PATH).
        use libcontainer::workload::Executor;
        NATIVE
            .validate(spec)
            .map_err(|e| format!("cannot run the program: {e}"))?;
        NATIVE
            .setup_envs(program_environment(process))
            .map_err(|e| format!("cannot set the environment: {e}"))?;
    }
    Ok(())
}

/// The spec's environment, with HOME added when it has none (runc's and
/// libcontainer's rule: the user's home from the container's
/// /etc/passwd, else `/`).
fn program_environment(
    process: &oci_spec::runtime::Process,
) -> std::collections::HashMap<String, String> {
    let mut env: std::collections::HashMap<String, String> = process
        .env()
        .iter()
        .flatten()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    if !env.contains_key("HOME") {
        let passwd = image_passwd().unwrap_or_default();
        let home = home_of(&passwd, process.user().uid()).unwrap_or("/");
        env.insert("HOME".into(), home.to_string());
    }
    env
}

/// The image's /etc/passwd, when it is a regular file: opened without
/// blocking (a FIFO put there must not hold the create) and read up to
/// 4 MiB.
fn image_passwd() -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/etc/passwd")
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(4 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The home folder of `uid` in a passwd file's text. Read by hand, not
/// through NSS (`getpwuid`), which could load modules from the
/// container's root into this process.
fn home_of(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [_, _, id, _, _, home, _, ..] if id.parse::<u32>().ok() == Some(uid) => {
                Some(*home).filter(|home| !home.is_empty())
            }
            _ => None,
        }
    })
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
    program: Program,
    syscall: &dyn Syscall,
) -> Result<(), String> {
    if !new_namespaces.contains(CloneFlags::CLONE_NEWNS) {
        return Err("the direct path needs a mount namespace of the container's own".into());
    }
    let root = spec.root().as_ref().ok_or("the spec has no root")?;
    let rootfs = bundle.join(root.path());
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| format!("rootfs {}: {e}", rootfs.display()))?;
    super::rootfs::enter(spec, &rootfs, program, syscall)
}

#[cfg(test)]
mod tests {
    use super::home_of;

    #[test]
    fn test_home_comes_from_the_users_passwd_line() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                      broken line\n\
                      app:x:1000:1000::/srv/app:/bin/false\n\
                      nohome:x:1001:1001:::/bin/false\n";
        assert_eq!(home_of(passwd, 0), Some("/root"));
        assert_eq!(home_of(passwd, 1000), Some("/srv/app"));
        assert_eq!(home_of(passwd, 1001), None);
        assert_eq!(home_of(passwd, 42), None);
    }
}
