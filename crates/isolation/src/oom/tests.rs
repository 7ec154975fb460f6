use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::*;

const LIMIT: Duration = Duration::from_secs(20);

fn watcher() -> (OomWatcher, Receiver<String>) {
    let (sender, ooms) = channel();
    let sender = Mutex::new(sender);
    let watcher = OomWatcher::spawn(Box::new(move |id: &str| {
        let _ = sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(id.to_string());
    }))
    .expect("the watcher");
    (watcher, ooms)
}

fn await_watched(watcher: &OomWatcher, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while watcher.watched() != n {
        assert!(
            Instant::now() < deadline,
            "watching {} not {n}",
            watcher.watched()
        );
        std::thread::yield_now();
    }
}

/// A cgroup2 folder as the kernel shows it, in a temp dir.
fn fake_v2(root: &Path, name: &str, kills: u64) -> CgroupFolder {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("cgroup dir");
    write_events(&dir, kills);
    CgroupFolder::V2(dir)
}

fn write_events(dir: &Path, kills: u64) {
    std::fs::write(
        dir.join("memory.events"),
        format!("low 0\nhigh 0\nmax 3\noom 1\noom_kill {kills}\n"),
    )
    .expect("memory.events");
}

#[test]
fn a_v2_oom_kill_is_told_once_per_increase_and_only_for_its_container() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (watcher, ooms) = watcher();
    let a = fake_v2(dir.path(), "a", 2);
    let b = fake_v2(dir.path(), "b", 0);
    watcher.watch("a", a.clone());
    watcher.watch("b", b.clone());
    await_watched(&watcher, 2);
    let (CgroupFolder::V2(a_dir) | CgroupFolder::V1(a_dir)) = a;
    let (CgroupFolder::V2(b_dir) | CgroupFolder::V1(b_dir)) = b;
    write_events(&a_dir, 3);
    assert_eq!(ooms.recv_timeout(LIMIT).expect("a's OOM"), "a");
    // A write that does not raise the count (another field moved) is no
    // OOM: the next one told is b's.
    write_events(&a_dir, 3);
    write_events(&b_dir, 1);
    assert_eq!(ooms.recv_timeout(LIMIT).expect("b's OOM"), "b");

    // Forgotten: its kills are not told; b's still are.
    watcher.forget("a");
    await_watched(&watcher, 1);
    write_events(&a_dir, 9);
    write_events(&b_dir, 2);
    assert_eq!(ooms.recv_timeout(LIMIT).expect("b's OOM"), "b");

    // Its cgroup removed, b is no longer watched.
    std::fs::remove_dir_all(&b_dir).expect("remove b");
    await_watched(&watcher, 0);
}

#[test]
fn a_cgroup_that_cannot_be_watched_is_skipped_and_the_rest_still_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (watcher, ooms) = watcher();
    watcher.watch("gone", CgroupFolder::V2(dir.path().join("nowhere")));
    watcher.watch("v1-gone", CgroupFolder::V1(dir.path().join("nowhere")));
    let c = fake_v2(dir.path(), "c", 0);
    watcher.watch("c", c.clone());
    await_watched(&watcher, 1);
    let (CgroupFolder::V2(c_dir) | CgroupFolder::V1(c_dir)) = c;
    write_events(&c_dir, 1);
    assert_eq!(ooms.recv_timeout(LIMIT).expect("c's OOM"), "c");
}

/// The kernel's own v1 notifier: a real memory cgroup on this (v1 or
/// hybrid) host, a process in it touching more than its limit.
#[test]
fn a_v1_oom_kill_in_a_real_memory_cgroup_is_told_and_its_removal_ends_the_watch() {
    let root = crate::cgroups::v1_mount_points()
        .get(&libcgroups::v1::ControllerType::Memory)
        .cloned()
        .expect("a v1 memory hierarchy (this host kind is cgroup v1 hybrid)");
    let dir = root.join(format!("edgeshim-oom-test-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("test cgroup (needs root)");
    std::fs::write(dir.join("memory.limit_in_bytes"), "8388608").expect("limit");
    let (watcher, ooms) = watcher();
    watcher.watch("hog", CgroupFolder::V1(dir.clone()));
    await_watched(&watcher, 1);
    let procs = dir.join("cgroup.procs");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec dd if=/dev/zero of=/dev/null bs=64M count=1",
            procs.display()
        ))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{status}"
    );
    assert_eq!(ooms.recv_timeout(LIMIT).expect("the OOM"), "hog");
    std::fs::remove_dir(&dir).expect("remove the cgroup");
    await_watched(&watcher, 0);
}

/// The shim turns the watcher from its runtime when the epoll descriptor
/// is readable: a request and an OOM kill each make it readable, a turn
/// handles them, and a turn with nothing ready handles nothing.
#[test]
fn a_watcher_turned_by_its_caller_is_readable_when_it_has_work() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::{AsRawFd, BorrowedFd};
    let readable = |events: &OomEvents| {
        // SAFETY: the descriptor is `events`' epoll, open while borrowed.
        let fd = unsafe { BorrowedFd::borrow_raw(events.as_raw_fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (sender, ooms) = channel();
    let sender = Mutex::new(sender);
    let (watcher, mut events) = OomWatcher::new(Box::new(move |id: &str| {
        let _ = sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(id.to_string());
    }))
    .expect("the watcher");
    assert!(!readable(&events));
    assert_eq!(events.turn(), Some(0));
    // Nothing v2 watched, no inotify instance held (a user has 128).
    assert!(!events.0.has_inotify());

    let a = fake_v2(dir.path(), "a", 0);
    watcher.watch("a", a.clone());
    assert!(readable(&events), "a request wakes it");
    assert_eq!(events.turn(), Some(1));
    assert_eq!(watcher.watched(), 1);
    assert!(events.0.has_inotify(), "made for the first v2 watch");
    assert!(!readable(&events));

    let (CgroupFolder::V2(a_dir) | CgroupFolder::V1(a_dir)) = a;
    write_events(&a_dir, 1);
    assert!(readable(&events), "an OOM kill wakes it");
    assert_eq!(events.turn(), Some(1));
    assert_eq!(ooms.try_recv().expect("a's OOM"), "a");
    assert_eq!(events.turn(), Some(0));
}
