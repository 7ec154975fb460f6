//! The seccomp guard against the real kernel: a process guarded by
//! `guard_this_process` and answered by a `Supervisor` connects, binds,
//! listens and sends only where its grant says, cannot start a thread,
//! and keeps no listener that could answer its own calls.
//!
//! Its own `main` (no test harness): the guarded side must be a process
//! with one thread, so this binary runs itself as that process.

use std::io::IoSliceMut;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeshim_network::guard::{HAND_OVER, Supervisor, guard_this_process};
use edgeshim_network::{NetworkGrant, NetworkRules, Refusal, Use};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};

const CHILD: &str = "--guarded-child";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        guarded_child(&args[2..]);
        return;
    }
    test_a_guarded_process_uses_only_what_its_grant_allows();
    println!("guard: 1 test passed");
}

/// The parent: a granted and a refused TCP port (both listening, so that
/// only the guard can refuse), a supervisor, and the guarded child.
fn test_a_guarded_process_uses_only_what_its_grant_allows() {
    let granted = TcpListener::bind("127.0.0.1:0").expect("listener");
    let refused = TcpListener::bind("127.0.0.1:0").expect("listener");
    let granted_port = granted.local_addr().expect("port").port();
    let refused_port = refused.local_addr().expect("port").port();
    let reported: Arc<Mutex<Vec<(String, Refusal)>>> = Arc::default();
    let sink = reported.clone();
    let supervisor = Supervisor::start(Box::new(move |container, refusal| {
        sink.lock()
            .expect("reported")
            .push((container.to_string(), refusal.clone()));
    }))
    .expect("supervisor");

    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::empty(),
    )
    .expect("socketpair");
    let mut child = Command::new(std::env::current_exe().expect("this test"))
        .args([
            CHILD,
            &theirs.as_raw_fd().to_string(),
            &granted_port.to_string(),
            &refused_port.to_string(),
        ])
        .spawn()
        .expect("the guarded child");
    drop(theirs);

    let listener = receive_listener(&ours);
    let rules = NetworkRules {
        connect: vec![format!("127.0.0.1:{granted_port}").parse().expect("rule")],
        listen: vec![],
    };
    // No thread until a container needs answering.
    assert_eq!(threads_named("net-guard"), 0);
    assert!(supervisor.watch("c1", NetworkGrant::Rules(rules.clone()), listener));
    // The thread names itself once it runs.
    let started = std::time::Instant::now();
    while threads_named("net-guard") != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no net-guard thread after the first watch"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // One guard per container.
    let (a, _b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::empty(),
    )
    .expect("socketpair");
    assert!(!supervisor.watch("c1", NetworkGrant::Rules(rules.clone()), a));
    // Only a seccomp listener is watched: a socket (always readable, as a
    // hostile payload could send one) is refused.
    let (b, c) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::empty(),
    )
    .expect("socketpair");
    nix::sys::socket::send(c.as_raw_fd(), b"x", MsgFlags::empty()).expect("send");
    assert!(!supervisor.watch("c2", NetworkGrant::Rules(rules), b));
    assert!(!supervisor.is_watching("c2"));

    let status = child.wait().expect("the child's status");
    assert!(status.success(), "the guarded child failed: {status}");
    let reported = reported.lock().expect("reported").clone();
    let refusal = |usage, address: String| {
        (
            "c1".to_string(),
            Refusal {
                usage,
                address: address.parse().expect("address"),
                decided_by: "default".into(),
            },
        )
    };
    assert!(
        reported.contains(&refusal(Use::Connect, format!("127.0.0.1:{refused_port}"))),
        "{reported:?}"
    );
    assert!(
        reported.iter().any(|(_, r)| r.usage == Use::Listen),
        "{reported:?}"
    );
    // The child is gone: its guard is dropped.
    let mut waited = Duration::ZERO;
    while supervisor.is_watching("c1") {
        assert!(
            waited < Duration::from_secs(30),
            "the guard outlived its process"
        );
        std::thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
}

fn receive_listener(channel: &OwnedFd) -> OwnedFd {
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("the hand-over");
    let fd = message
        .cmsgs()
        .expect("control messages")
        .find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("a listener");
    assert_eq!(message.bytes, HAND_OVER.len());
    // SAFETY: the kernel just gave this process the descriptor.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The guarded side: each check that fails exits non-zero, naming it.
fn guarded_child(args: &[String]) {
    let channel: i32 = args[0].parse().expect("channel");
    let granted: u16 = args[1].parse().expect("port");
    let refused: u16 = args[2].parse().expect("port");
    guard_this_process(channel).expect("the guard");

    TcpStream::connect(("127.0.0.1", granted)).expect("a connect the grant allows");
    let err = TcpStream::connect(("127.0.0.1", refused)).expect_err("a refused connect");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    // A client's bind (port 0) is allowed; listening on it is not.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("an ephemeral bind");
    socket
        .send_to(b"x", ("127.0.0.1", granted))
        .expect("a datagram the grant allows");
    let err = socket
        .send_to(b"x", ("127.0.0.1", refused))
        .expect_err("a refused datagram");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    let err = TcpListener::bind("127.0.0.1:0").expect_err("a refused listen");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    // No second thread: nothing could change an address while the shim
    // reads it.
    let err = std::thread::Builder::new()
        .spawn(|| ())
        .expect_err("a thread");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");

    // No listener left here to answer its own calls with.
    for entry in std::fs::read_dir("/proc/self/fd").expect("fds").flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().contains("seccomp"),
            "the process kept {}",
            target.display()
        );
    }
}

/// How many threads of this process are named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("threads")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .count()
}
