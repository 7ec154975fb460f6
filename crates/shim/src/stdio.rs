//! Opens the stdio FIFOs containerd created for a container.
//!
//! Opens are non-blocking (a FIFO nobody opened must not hang a create),
//! then the descriptors are made blocking, as a program expects its stdio
//! to be. Under CRI containerd opens its reading ends before the create
//! request; `ctr run -d` opens them from a goroutine, a moment later, and
//! a non-blocking open for writing then fails with ENXIO. For that case the
//! shim waits for the reader as runc's shim does (a blocking open), bounded
//! by [`READER_WAIT`].

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use edgeshim_isolation::Stdio;

/// How long a create waits for the reader of its stdout or stderr FIFO.
const READER_WAIT: Duration = Duration::from_secs(10);
/// The name of the thread that waits (tests look for it).
const WAITER_NAME: &str = "stdio-wait";

pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<Stdio, String> {
    Ok(Stdio {
        stdin: open_one(stdin, false)?,
        stdout: open_one(stdout, true)?,
        stderr: open_one(stderr, true)?,
    })
}

fn open_one(path: &str, write: bool) -> Result<Option<OwnedFd>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    let opened = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Err(e) if write && e.raw_os_error() == Some(libc::ENXIO) => {
            wait_for_reader(Path::new(path), READER_WAIT)
        }
        other => other,
    }
    .map_err(|e| format!("open {path}: {e}"))?;
    let fd = OwnedFd::from(file);
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(blocking))
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    Ok(Some(fd))
}

/// FIFO `path` opened for writing once a reader opens it, by a blocking
/// open on a thread of its own. When `limit` passes first, the shim opens
/// the reading end itself for a moment, which lets that open return (and
/// its descriptor be closed), so no thread or descriptor is left behind:
/// through an `O_PATH` descriptor taken first, so that this works even when
/// the FIFO was unlinked meanwhile (containerd removing a failed task's).
fn wait_for_reader(path: &Path, limit: Duration) -> std::io::Result<File> {
    wait_for_reader_observed(path, limit, |_| {})
}

/// [`wait_for_reader`], handing `waiter` the thread id of the thread that
/// blocks in the open (a test unlinks the FIFO once it is blocked there).
fn wait_for_reader_observed(
    path: &Path,
    limit: Duration,
    waiter: impl FnOnce(i32),
) -> std::io::Result<File> {
    let anchor = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    let (sender, opened) = std::sync::mpsc::channel();
    let (tid_sender, tid) = std::sync::mpsc::channel();
    let target = path.to_path_buf();
    std::thread::Builder::new()
        .name(WAITER_NAME.into())
        .spawn(move || {
            let _ = tid_sender.send(nix::unistd::gettid().as_raw());
            let open = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&target);
            let _ = sender.send(open);
        })?;
    if let Ok(tid) = tid.recv() {
        waiter(tid);
    }
    match opened.recv_timeout(limit) {
        Ok(open) => open,
        Err(_) => {
            let release = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{}", anchor.as_raw_fd()));
            // The waiting open completes now (or failed already); either
            // way its result is dropped here.
            if release.is_ok() {
                let _ = opened.recv();
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reader opened the FIFO within {} s", limit.as_secs_f64()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn fifo(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("stdout");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        path
    }

    /// The tests that look for the waiter thread, one at a time.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn await_waiter(running: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while waiter_running() != running {
            assert!(
                std::time::Instant::now() < deadline,
                "waiter running: {}",
                !running
            );
            std::thread::yield_now();
        }
    }

    fn waiter_running() -> bool {
        std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == WAITER_NAME)
            })
    }

    #[test]
    fn a_reader_that_comes_after_the_create_is_waited_for() {
        let _one_at_a_time = serial();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = fifo(dir.path());
        let target = path.display().to_string();
        let writer = std::thread::spawn(move || open_one(&target, true));
        // The writer found no reader (ENXIO) and waits for one.
        await_waiter(true);
        let mut reader = File::open(&path).expect("reader");
        let fd = writer
            .join()
            .expect("writer thread")
            .expect("opened once the reader came")
            .expect("a descriptor");
        nix::unistd::write(&fd, b"hi").expect("write");
        drop(fd);
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(text, "hi");
    }

    /// Whether thread `tid` of this process is blocked in `openat`.
    fn blocked_in_open(tid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .is_ok_and(|call| call.split_whitespace().next() == Some(&libc::SYS_openat.to_string()))
    }

    #[test]
    fn a_fifo_unlinked_while_waiting_still_releases_the_waiter() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = fifo(dir.path());
        let _one_at_a_time = serial();
        let target = path.clone();
        let (tid_sender, tid) = std::sync::mpsc::channel();
        // The time a reader is waited for: long enough that the unlink
        // below always comes while this call's waiter is blocked in open.
        let limit = Duration::from_secs(2);
        let waiting = std::thread::spawn(move || {
            wait_for_reader_observed(&target, limit, |waiter| {
                let _ = tid_sender.send(waiter);
            })
        });
        let waiter = tid.recv().expect("the waiter's thread id");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !blocked_in_open(waiter) {
            assert!(
                std::time::Instant::now() < deadline,
                "never blocked in open"
            );
            std::thread::yield_now();
        }
        std::fs::remove_file(&path).expect("unlink");
        let err = waiting.join().expect("thread").expect_err("no reader");
        assert!(err.to_string().contains("no reader"), "{err}");
        // Its waiting thread was let go, not left blocked on the FIFO.
        let gone = std::path::PathBuf::from(format!("/proc/self/task/{waiter}"));
        while gone.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiter still runs"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn no_reader_is_a_clear_error_and_leaves_no_writer_behind() {
        let _one_at_a_time = serial();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = fifo(dir.path());
        let err = wait_for_reader(&path, Duration::from_millis(200)).expect_err("no reader");
        assert!(
            err.to_string().contains("no reader opened the FIFO"),
            "{err}"
        );
        // No writer holds it: a reader sees end of file at once.
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("reader");
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).expect("read"), 0);
        await_waiter(false);
    }
}
