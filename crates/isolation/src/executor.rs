//! What runs inside the container process once libcontainer has set it up.

use std::sync::Arc;

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

/// Work done inside the container process instead of `exec`: returns the
/// exit status. Called once, after the rootfs is `/` and fds 0-2 are the
/// container's stdio.
pub trait Payload: Send + Sync + 'static {
    fn run(&self) -> i32;
}

/// Native programs are `exec`ed by libcontainer's own executor; a payload is
/// run in-process and the process exits with its status.
#[derive(Clone)]
pub(crate) struct ContainerExecutor {
    pub payload: Option<Arc<dyn Payload>>,
}

impl Executor for ContainerExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        match &self.payload {
            None => DefaultExecutor {}.exec(spec),
            Some(payload) => run_payload(payload.as_ref()),
        }
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        match &self.payload {
            None => match program_path(spec) {
                Some(path) => validate_program(path),
                None => DefaultExecutor {}.validate(spec),
            },
            // The shim validated and compiled the module before create.
            Some(_) => Ok(()),
        }
    }
}

/// Runs a Wasm payload in the container process, set up by either launch
/// path, and exits with its status.
pub(crate) fn run_payload(payload: &dyn Payload) -> ! {
    close_launcher_socket();
    terminate_on_signals();
    // A panic must end the container, not unwind into the set-up code
    // (which would leave it hanging).
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| payload.run()))
        .unwrap_or(PANIC_STATUS);
    std::process::exit(status)
}

/// `process.args[0]` when it is a path (holds a `/`): exec'd as it is, with
/// no PATH lookup, so the spec needs no PATH (runc's behaviour; an OCI spec
/// from `ctr oci spec` has no env at all).
fn program_path(spec: &Spec) -> Option<&str> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .and_then(|args| args.first())
        .map(String::as_str)
        .filter(|arg0| arg0.contains('/'))
}

/// Runs after pivot_root, so `path` is looked up in the container's rootfs.
fn validate_program(path: &str) -> Result<(), ExecutorValidationError> {
    use std::os::unix::fs::PermissionsExt;
    let invalid = |reason: String| ExecutorValidationError::ArgValidationError(reason);
    let metadata =
        std::fs::metadata(path).map_err(|e| invalid(format!("executable '{path}': {e}")))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        return Err(invalid(format!(
            "'{path}' is not an executable file in the container"
        )));
    }
    Ok(())
}

/// A Wasm payload runs in a copy of the launcher, which holds its socket to
/// the shim: the container must not. (Other inherited descriptors stay: a
/// compiled module's file is mapped from its descriptor when instantiated.)
fn close_launcher_socket() {
    let fd = crate::launcher::LAUNCHER_FD;
    let is_socket =
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    if is_socket {
        let _ = nix::unistd::close(fd);
    }
}

/// Exit status of a payload that panicked (Rust's own for a panicking main).
const PANIC_STATUS: i32 = 101;

/// Signals whose default action ends a process.
const TERMINATING: &[nix::sys::signal::Signal] = {
    use nix::sys::signal::Signal::*;
    &[
        SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE,
    ]
};

/// A Wasm module cannot handle signals, so each one whose default action is
/// to terminate ends the container at once with status 128+signal, as a
/// native process killed by it would report. Needed because the process is
/// PID 1 of its PID namespace, where the kernel drops signals that have no
/// handler (a tight loop would otherwise ignore SIGTERM).
fn terminate_on_signals() {
    extern "C" fn exit_with_signal(signal: libc::c_int) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(128 + signal) }
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(exit_with_signal),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for signal in TERMINATING {
        // SAFETY: the handler only calls `_exit`.
        if let Err(e) = unsafe { nix::sys::signal::sigaction(*signal, &action) } {
            eprintln!("edgeshim: cannot install handler for {signal}: {e}");
        }
    }
    // WASI has no SIGPIPE: a write to a stdio FIFO nobody reads any more
    // (`ctr run -d` has gone) must return EPIPE to the module, not kill it.
    // SAFETY: ignoring a signal installs no handler code.
    if let Err(e) = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    } {
        eprintln!("edgeshim: cannot ignore SIGPIPE: {e}");
    }
    // libcontainer may leave signals blocked from set-up; a module must see them.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}
