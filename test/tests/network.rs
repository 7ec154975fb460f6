//! Sockets of Wasm containers, held to what the policy grants, under the
//! real containerd: a guest connects where its decision's network section
//! allows, is refused elsewhere, and gets nothing without a section (the
//! suite's policy.toml keeps `network_default` at its default, deny). The
//! guests are WASI 0.2 components on the Wasmtime shim (which checks each
//! address itself and says a refusal on the module's stderr) and modules
//! using WasmEdge's socket extension on the WasmEdge shim (held to the
//! grant by the shim's seccomp guard: the module sees EACCES).
//! The suite's policy (test/policy) grants containers with ids `net-...`
//! connects to 127.0.0.1:27811 only. Each refusal also reaches the decision
//! log, written by the shim for the container whose process reported it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use edgeshim_cri::ContainerSpec;
use edgeshim_integration::components;
use edgeshim_integration::pods::*;
use edgeshim_integration::wasmedge_sockets;
use edgeshim_integration::*;

/// Whether the shim under test is WasmEdge's (its guests are modules).
fn on_wasmedge() -> bool {
    engine().name == "wasmedge"
}

/// A guest that connects to `address:port` and writes `bytes`.
fn tcp_send(address: [u8; 4], port: u16, bytes: &[u8]) -> Vec<u8> {
    if on_wasmedge() {
        wasmedge_sockets::tcp_send(address, port, bytes)
    } else {
        components::tcp_send(address, port, bytes)
    }
}

/// A guest that connects to `address:port`.
fn tcp_connect(address: [u8; 4], port: u16) -> Vec<u8> {
    tcp_send(address, port, &[])
}

/// A guest serving one TCP connection on `0.0.0.0:port`, echoing.
fn tcp_echo_server(port: u16) -> Vec<u8> {
    tcp_echo_server_at([0, 0, 0, 0], port)
}

/// [`tcp_echo_server`] on `address:port`.
fn tcp_echo_server_at(address: [u8; 4], port: u16) -> Vec<u8> {
    if on_wasmedge() {
        wasmedge_sockets::tcp_echo_server_at(address, port)
    } else {
        components::tcp_echo_server_at(address, port)
    }
}

/// A guest that tries `times` connects to `address:port`; exit status 0
/// when each was refused.
fn tcp_connect_flood(address: [u8; 4], port: u16, times: u32) -> Vec<u8> {
    if on_wasmedge() {
        wasmedge_sockets::tcp_connect_flood(address, port, times)
    } else {
        components::tcp_connect_flood(address, port, times)
    }
}

/// The exit status of a guest whose `usage` of `address` was refused,
/// and what its output says: a component exits 1 after the engine's line
/// on its stderr; a WasmEdge module exits with the errno it got, EACCES
/// (WASI's 2), and the guard says nothing in the module's output (the
/// decision log has it).
fn assert_refused(status: Option<i32>, output: &str, usage: &str, address: &str) {
    if on_wasmedge() {
        assert_eq!(status, Some(2), "EACCES: {output}");
    } else {
        assert_eq!(status, Some(1), "{output}");
        let line = format!("edgeshim: network: {usage} {address} refused by the policy (default)");
        assert!(output.contains(&line), "{output}");
    }
}

/// The address the suite's policy grants `net-...` containers. Below the
/// kernel's ephemeral range (32768-60999): a port in it can be taken at
/// any moment as the local end of some other test's connection, as 47812
/// once was when a test bound it.
const GRANTED_PORT: u16 = 27811;

/// Runs the connect component to 127.0.0.1:`port` as container `id`, on
/// the host's network (no network namespace of its own).
fn connect_from(id: &str, port: u16) -> std::process::Output {
    run_guest(id, &tcp_connect([127, 0, 0, 1], port))
}

/// Runs `guest` as container `id` (`ctr run --rm`) on the host's
/// network.
fn run_guest(id: &str, guest: &[u8]) -> std::process::Output {
    run_guest_with_args(id, guest, &[])
}

/// [`run_guest`], with `args` after the module.
fn run_guest_with_args(id: &str, guest: &[u8], args: &[&str]) -> std::process::Output {
    let argv: Vec<&str> = std::iter::once("/connect.wasm")
        .chain(args.iter().copied())
        .collect();
    run_rm_with_spec(id, &[], &argv, |spec| {
        let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(&root).expect("rootfs");
        std::fs::write(root.join("connect.wasm"), guest).expect("guest");
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
        }
    })
}

#[test]
fn test_a_guest_connects_only_where_its_decision_allows() {
    let listener =
        TcpListener::bind(("127.0.0.1", GRANTED_PORT)).expect("the granted port is free");
    listener.set_nonblocking(true).expect("non-blocking");
    let out = connect_from("net-allowed", GRANTED_PORT);
    assert!(out.status.success(), "{}", stderr(&out));
    // The kernel completed the handshake for the listener's backlog.
    let mut peer = None;
    await_condition("the guest's connection", LIMIT, || {
        peer = listener.accept().ok();
        peer.is_some()
    });
    let (_stream, from) = peer.expect("accepted");
    assert!(from.ip().is_loopback());
    assert_no_leftovers("net-allowed");

    // Another port of the same host: no rule matches.
    let out = connect_from("net-denied", GRANTED_PORT + 2);
    let address = format!("127.0.0.1:{}", GRANTED_PORT + 2);
    assert_refused(out.status.code(), &stderr(&out), "connect", &address);
    assert_no_leftovers("net-denied");
    // The shim names the container by its process (the pid that reported
    // the refusal, or whose guard refused it), and has logged it by the
    // time the container is deleted.
    assert!(refusal_logged("net-denied", &address), "{}", decision_log());

    // No network section: network_default, deny, even for the granted port
    // (a component is refused its socket's implicit bind, before the
    // connect).
    let out = connect_from("nonet-default", GRANTED_PORT);
    if on_wasmedge() {
        let address = format!("127.0.0.1:{GRANTED_PORT}");
        assert_refused(out.status.code(), &stderr(&out), "connect", &address);
    } else {
        assert_refused(out.status.code(), &stderr(&out), "listen", "0.0.0.0:0");
    }
    assert_no_leftovers("nonet-default");
}

/// The C network probe (test/workloads/modules/netprobe.c): a component
/// on the Wasmtime shim, a module on WasmEdge's sockets.
fn netprobe() -> Vec<u8> {
    if on_wasmedge() {
        std::fs::read(built("netprobe.wasm")).expect("netprobe.wasm")
    } else {
        components::netprobe()
    }
}

/// Datagrams are held to the same rules as connects: a datagram to the
/// granted address arrives; one to another address is refused before it
/// leaves, and logged.
#[test]
fn test_a_datagram_goes_only_where_the_decision_allows_connects() {
    let socket = std::net::UdpSocket::bind(("127.0.0.1", GRANTED_PORT)).expect("the port is free");
    let port = GRANTED_PORT.to_string();
    let out = run_guest_with_args(
        "net-udp",
        &netprobe(),
        &["udp", "127.0.0.1", &port, "hello-udp"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 64];
    let mut received = None;
    await_condition("the guest's datagram", LIMIT, || {
        received = socket.recv_from(&mut buffer).ok();
        received.is_some()
    });
    let (len, from) = received.expect("a datagram");
    assert_eq!(&buffer[..len], b"hello-udp");
    assert!(from.ip().is_loopback());
    assert_no_leftovers("net-udp");

    let out = run_guest_with_args(
        "net-udp-outside",
        &netprobe(),
        &["udp", "127.0.0.2", &port, "hello-udp"],
    );
    let address = format!("127.0.0.2:{GRANTED_PORT}");
    assert_refused(out.status.code(), &stderr(&out), "connect", &address);
    assert!(
        refusal_logged("net-udp-outside", &address),
        "{}",
        decision_log()
    );
    assert_no_leftovers("net-udp-outside");
}

/// The port the suite's policy lets `http-...` containers connect to
/// (127.0.0.1 only).
const HTTP_PORT: u16 = 47815;

/// Serves one HTTP/1.1 request on 127.0.0.1:`port` with `hello edge`;
/// the thread's result is the request's head as it arrived.
fn http_server_once(port: u16) -> std::thread::JoinHandle<String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return String::new();
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello edge\n",
        );
        String::from_utf8_lossy(&head).into_owned()
    })
}

/// `wasi:http` requests are held to the decision like sockets: a GET to
/// the granted address is answered; one to another address never leaves
/// (`destination-IP-prohibited`, case 4 of wasi:http's `error-code`) and
/// is logged. WasmEdge 0.14 has no `wasi:http`: its module says so.
#[test]
fn test_a_wasi_http_request_goes_only_where_the_decision_allows() {
    let authority = format!("127.0.0.1:{HTTP_PORT}");
    if on_wasmedge() {
        let out = run_guest_with_args(
            "http-wasmedge",
            &netprobe(),
            &["http", "http", &authority, "/"],
        );
        assert_eq!(out.status.code(), Some(95), "{}", stderr(&out));
        assert!(stdout(&out).contains("needs a WASI 0.2 component"));
        assert_no_leftovers("http-wasmedge");
        return;
    }
    let server = http_server_once(HTTP_PORT);
    let out = run_guest_with_args(
        "http-get",
        &netprobe(),
        &["http", "http", &authority, "/reading?window=5"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "status 200\nhello edge\n\n");
    let head = server.join().expect("the server");
    assert!(
        head.starts_with("GET /reading?window=5 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: {authority}")),
        "{head}"
    );
    assert_no_leftovers("http-get");

    let outside = format!("127.0.0.2:{HTTP_PORT}");
    let out = run_guest_with_args(
        "http-outside",
        &netprobe(),
        &["http", "http", &outside, "/"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("http response failed: error-code 4"),
        "{}",
        stdout(&out)
    );
    assert_refused(out.status.code(), &stderr(&out), "connect", &outside);
    assert!(
        refusal_logged("http-outside", &outside),
        "{}",
        decision_log()
    );
    assert_no_leftovers("http-outside");
}

/// A DNS server for the lookup test on 127.0.0.3:53: every A question is
/// answered with 10.1.2.3, every other with no record (RFC 1035, written
/// by hand: a header, the question echoed, one answer); it counts the
/// questions it got. Stopped when dropped.
struct Resolver {
    questions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    const ADDRESS: &str = "127.0.0.3:53";

    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind(Self::ADDRESS).expect("127.0.0.3:53 is free");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .expect("timeout");
        let questions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, stopped) = (questions.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut query = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut query) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = Self::reply(&query[..len]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Self {
            questions,
            stop,
            thread: Some(thread),
        }
    }

    fn reply(query: &[u8]) -> Option<Vec<u8>> {
        // The question: after the 12-byte header, labels up to a 0, then
        // QTYPE and QCLASS.
        let mut end = 12;
        while *query.get(end)? != 0 {
            end += 1 + usize::from(query[end]);
        }
        let question = query.get(12..end + 5)?;
        let is_a = question[question.len() - 4..question.len() - 2] == [0, 1];
        let mut reply = query[..2].to_vec(); // the id
        reply.extend([0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
        reply.extend(question);
        if is_a {
            // A pointer to the name at 12, A, IN, TTL 60, 4 bytes.
            reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
        }
        Some(reply)
    }

    fn questions(&self) -> usize {
        self.questions.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the probe's lookup of `name` as container `id`, whose
/// /etc/resolv.conf names the test's resolver.
/// The image also ships an NSS module and a nsswitch.conf naming it first
/// (`hosts: evil files dns`): glibc would load it, native code of the
/// image's, if the launcher left `hosts` to the image.
fn lookup_from(id: &str, name: &str) -> std::process::Output {
    let guest = netprobe();
    run_rm_with_spec(id, &[], &["/netprobe.wasm", "lookup", name], |spec| {
        let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(root.join("etc")).expect("rootfs");
        std::fs::write(root.join("netprobe.wasm"), &guest).expect("guest");
        std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.3\n")
            .expect("resolv.conf");
        std::fs::write(root.join("etc/nsswitch.conf"), "hosts: evil files dns\n")
            .expect("nsswitch.conf");
        for lib in ["lib/x86_64-linux-gnu", "lib", "usr/lib"] {
            std::fs::create_dir_all(root.join(lib)).expect("lib folder");
            std::fs::copy(
                built("libnss_evil.so.2"),
                root.join(lib).join("libnss_evil.so.2"),
            )
            .expect("the image's NSS module");
        }
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
        }
    })
}

/// A name lookup is traffic to the container's resolver: it goes through
/// where the decision lets the container reach that resolver, and not
/// where it may only connect elsewhere, with the same answer on both
/// shims (docs/policy.md).
#[test]
fn test_a_name_is_looked_up_only_through_a_resolver_the_decision_allows() {
    let resolver = Resolver::start();
    // `dns-...` containers may connect to 127.0.0.3:53.
    let out = lookup_from("dns-lookup", "sensor.edge.test");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "10.1.2.3\n");
    assert!(resolver.questions() > 0);
    assert!(
        !stderr(&out).contains("nss-module-loaded"),
        "the image's NSS module ran: {}",
        stderr(&out)
    );
    assert_no_leftovers("dns-lookup");

    // `net-...` containers may connect to 127.0.0.1:27811 only: refused,
    // and the resolver never asked.
    let asked = resolver.questions();
    let out = lookup_from("net-lookup", "sensor.edge.test");
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(!stdout(&out).contains("10.1.2.3"), "{}", stdout(&out));
    assert_eq!(
        resolver.questions(),
        asked,
        "no question reached the resolver"
    );
    if on_wasmedge() {
        // The guard refused the resolver's own connect, and logged it.
        assert!(
            refusal_logged("net-lookup", Resolver::ADDRESS),
            "{}",
            decision_log()
        );
    }
    assert_no_leftovers("net-lookup");
}

/// The port the suite's policy lets `net-...` containers listen on
/// (127.0.0.1 only; below the ephemeral range, as [`GRANTED_PORT`]).
const GRANTED_LISTEN_PORT: u16 = 27812;

#[test]
fn test_a_bind_to_a_port_already_taken_fails_as_in_use_not_as_refused() {
    let _taken = TcpListener::bind(("127.0.0.1", GRANTED_LISTEN_PORT)).expect("the port is free");
    let out = run_guest(
        "net-inuse",
        &tcp_echo_server_at([127, 0, 0, 1], GRANTED_LISTEN_PORT),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if on_wasmedge() {
        // WASI's ADDRINUSE.
        assert_eq!(out.status.code(), Some(3), "{}{stdout}", stderr(&out));
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        // start-bind failed with address-in-use.
        assert!(stdout.contains("step 2 error-code 12"), "{stdout}");
    }
    assert!(
        !stderr(&out).contains("refused by the policy"),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers("net-inuse");
    let logged = decision_log()
        .lines()
        .any(|l| l.contains("\"container\":\"net-inuse\"") && l.contains("\"action\":\"listen\""));
    assert!(!logged, "the grant allowed it: {}", decision_log());
}

#[test]
fn test_a_connect_flood_is_refused_each_time_logged_within_the_limit_and_the_shim_serves_on() {
    const TIMES: u32 = 2000;
    let logs = tempfile::tempdir().expect("log dir");
    let dir = tempfile::tempdir().expect("tempdir");
    let flood = dir.path().join("flood.wasm");
    std::fs::write(&flood, tcp_connect_flood([10, 99, 0, 1], 1883, TIMES)).expect("guest");
    import_module_image("edgeshim.test/flood:1", &flood);
    let echo = dir.path().join("echo.wasm");
    std::fs::write(&echo, tcp_echo_server(ECHO_PORT)).expect("guest");
    import_module_image("edgeshim.test/echo:1", &echo);
    let mut cri = cri();
    let pod = pod("flood-pod", "uid-flood", false, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    // Named for the suite's listen grant (`net-echo...`): its sockets'
    // implicit binds are allowed, so each refusal is the connect's.
    let flooder = ContainerSpec {
        name: "net-echo-flooder".into(),
        image: "edgeshim.test/flood:1".into(),
        command: vec!["/flood.wasm".into()],
        log_path: "flooder.log".into(),
        memory_limit_bytes: 64 << 20,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let id = cri
        .create_container(&pod_id, &flooder.to_cri(), &pod)
        .expect("CreateContainer");
    cri.start_container(&id).expect("StartContainer");
    let status = wait_exited(&mut cri, &id);
    let log = std::fs::read_to_string(logs.path().join("flooder.log")).unwrap_or_default();
    assert_eq!(status.exit_code, 0, "each connect refused: {log}");
    cri.remove_container(&id).expect("RemoveContainer");
    let windows = started.elapsed().as_secs() / 10 + 1;

    // The log is bounded: at most 10 lines per container per 10 s.
    let lines = decision_log()
        .lines()
        .filter(|l| l.contains(&format!("\"container\":\"{id}\"")) && l.contains("10.99.0.1:1883"))
        .count();
    assert!(lines >= 1, "{}", decision_log());
    assert!(
        u64::try_from(lines).expect("count") <= 10 * windows,
        "{lines} lines in {windows} windows"
    );
    if !on_wasmedge() {
        // The module's own stderr is held to the same limit.
        let said = log.matches("refused by the policy").count();
        assert!(
            said >= 1 && u64::try_from(said).expect("count") <= 10 * windows,
            "{log}"
        );
    }

    // The same shim serves the pod's next container.
    let server = ContainerSpec {
        name: "net-echo-after-flood".into(),
        image: "edgeshim.test/echo:1".into(),
        command: vec!["/echo.wasm".into()],
        log_path: "after.log".into(),
        ..Default::default()
    };
    let next = cri
        .create_container(&pod_id, &server.to_cri(), &pod)
        .expect("CreateContainer after the flood");
    cri.start_container(&next)
        .expect("StartContainer after the flood");
    assert_echoed_at_pod_ip(&mut cri, &pod_id, "still here\n");
    assert_eq!(wait_exited(&mut cri, &next).exit_code, 0);
    remove_pod(&mut cri, &pod_id, &[&next]);
}

/// The same flood under the spec's pids and memory limits (through `ctr`:
/// CRI sets no pids limit per container): the limits hold the engine's
/// threads and memory, every connect is refused, and the log stays
/// bounded.
#[test]
fn test_a_connect_flood_under_pids_and_memory_limits_is_refused_within_them() {
    const TIMES: u32 = 1000;
    let guest = tcp_connect_flood([127, 0, 0, 2], GRANTED_PORT, TIMES);
    // Its own id on each engine; and only this run's lines count (the
    // decision log outlives a run).
    let id = format!("net-flood-limited-{}", engine().name);
    let earlier = decision_log().lines().count();
    let started = std::time::Instant::now();
    let out = run_rm_with_spec(&id, &[], &["/flood.wasm"], |spec| {
        let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(&root).expect("rootfs");
        std::fs::write(root.join("flood.wasm"), &guest).expect("guest");
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
        }
        spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 4 });
        spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 48 << 20 });
    });
    assert!(
        out.status.success(),
        "each connect refused: {}",
        stderr(&out)
    );
    let windows = started.elapsed().as_secs() / 10 + 1;
    let address = format!("127.0.0.2:{GRANTED_PORT}");
    let lines = decision_log()
        .lines()
        .skip(earlier)
        .filter(|l| l.contains(&format!("\"container\":\"{id}\"")) && l.contains(&address))
        .count();
    assert!(lines >= 1, "{}", decision_log());
    assert!(
        u64::try_from(lines).expect("count") <= 10 * windows,
        "{lines} lines in {windows} windows"
    );
    assert_no_leftovers(&id);
}

/// Whether the decision log has the line for container `id` refused a
/// connect to `address` by no rule.
fn refusal_logged(id: &str, address: &str) -> bool {
    decision_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|l| {
            l["container"] == id
                && l["action"] == "connect"
                && l["address"] == address
                && l["rule"] == "default"
                && l["decision"] == "deny"
        })
}

/// The port the suite's policy lets CRI containers named `net-echo...`
/// listen on.
const ECHO_PORT: u16 = 7000;

/// A pod (bridge network) running the echo component as container `name`.
fn echo_pod(
    cri: &mut edgeshim_cri::Cri,
    name: &str,
    logs: &std::path::Path,
) -> (String, edgeshim_cri::api::PodSandboxConfig, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("echo.wasm");
    std::fs::write(&path, tcp_echo_server(ECHO_PORT)).expect("component");
    import_module_image("edgeshim.test/echo:1", &path);
    let pod = pod(&format!("{name}-pod"), &format!("uid-{name}"), false, logs);
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let spec = ContainerSpec {
        name: name.into(),
        image: "edgeshim.test/echo:1".into(),
        command: vec!["/echo.wasm".into()],
        log_path: format!("{name}.log"),
        ..Default::default()
    };
    let id = cri
        .create_container(&pod_id, &spec.to_cri(), &pod)
        .expect("CreateContainer");
    (pod_id, pod, id)
}

/// Connects to the echo server at pod `pod_id`'s IP (once it accepts),
/// sends `message`, half-closes, and asserts it comes back whole.
fn assert_echoed_at_pod_ip(cri: &mut edgeshim_cri::Cri, pod_id: &str, message: &str) {
    let ip: std::net::IpAddr = pod_ip(cri, pod_id).parse().expect("the pod's IP");
    let mut stream = None;
    await_condition("the echo server to accept at the pod IP", LIMIT, || {
        stream = TcpStream::connect((ip, ECHO_PORT)).ok();
        stream.is_some()
    });
    let mut stream = stream.expect("connected");
    stream.write_all(message.as_bytes()).expect("send");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut echoed = String::new();
    stream.read_to_string(&mut echoed).expect("the echo");
    assert_eq!(echoed, message);
}

#[test]
fn test_a_guest_serves_tcp_at_its_pod_ip_where_the_policy_lets_it_listen() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let (pod_id, _pod, id) = echo_pod(&mut cri, "net-echo", logs.path());
    cri.start_container(&id).expect("StartContainer");
    assert_echoed_at_pod_ip(&mut cri, &pod_id, "hello from the node\n");
    let status = wait_exited(&mut cri, &id);
    assert_eq!(status.exit_code, 0, "the server saw the close");
    remove_pod(&mut cri, &pod_id, &[&id]);
}

#[test]
fn test_a_guest_may_not_listen_without_a_grant() {
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    // No network section for this name: network_default (deny).
    let (pod_id, _pod, id) = echo_pod(&mut cri, "nolisten-echo", logs.path());
    cri.start_container(&id).expect("StartContainer");
    let status = wait_exited(&mut cri, &id);
    let log = std::fs::read_to_string(logs.path().join("nolisten-echo.log")).expect("log");
    let address = format!("0.0.0.0:{ECHO_PORT}");
    assert_refused(Some(status.exit_code), &log, "listen", &address);
    let logged = decision_log().lines().any(|l| {
        l.contains(&format!("\"container\":\"{id}\"")) && l.contains("\"action\":\"listen\"")
    });
    assert!(logged, "{}", decision_log());
    remove_pod(&mut cri, &pod_id, &[&id]);
}

/// The port of the test's MQTT broker, which the suite's policy grants
/// containers with ids `mqtt-...` (127.0.0.1 only).
const BROKER_PORT: u16 = 47821;

/// Debian's mosquitto on 127.0.0.1:[`BROKER_PORT`], logging everything to
/// a file; stopped when dropped.
struct Broker {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("broker dir");
        let config = dir.path().join("mosquitto.conf");
        let log = dir.path().join("broker.log");
        std::fs::write(
            &config,
            format!(
                "listener {BROKER_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest file {}\nlog_type all\nuser root\n",
                log.display()
            ),
        )
        .expect("config");
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto (hack/install-deps.sh installs it)");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MQTT publisher written in C (test/workloads/modules/mqtt.c): a
/// component on the Wasmtime shim, a module on WasmEdge's sockets.
fn mqtt_publisher() -> Vec<u8> {
    if on_wasmedge() {
        std::fs::read(built("mqtt.wasm")).expect("mqtt.wasm")
    } else {
        components::mqtt_publisher()
    }
}

#[test]
fn test_a_wasm_mqtt_publisher_delivers_to_the_broker_and_is_refused_outside_its_range() {
    // The sensor module's own window aggregates, from a container of it.
    let sensor = run_sensor("mqtt-sensor", 15);
    let messages: Vec<String> = stdout(&sensor).lines().map(str::to_string).collect();
    assert_eq!(messages.len(), 3, "three 5-second windows");
    let broker = Broker::start();
    await_condition("the broker to listen", LIMIT, || {
        TcpStream::connect(("127.0.0.1", BROKER_PORT)).is_ok()
    });
    let subscriber = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &BROKER_PORT.to_string()])
        .args([
            "-t",
            "edge/#",
            "-v",
            "-C",
            &messages.len().to_string(),
            "-W",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    await_condition("the subscriber to subscribe", LIMIT, || {
        broker.log().contains("Received SUBSCRIBE")
    });

    let port = BROKER_PORT.to_string();
    let publish = |id: &str, address: &str| {
        run_guest_with_args(
            id,
            &mqtt_publisher(),
            &[address, &port, "15", "edge/line-3/sensor"],
        )
    };
    let out = publish("mqtt-publisher", "127.0.0.1");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // It says what it published: the sensor's windows, computed by the
    // same C code in the publisher.
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), messages);
    let received = subscriber.wait_with_output().expect("mosquitto_sub");
    let expected: String = messages
        .iter()
        .map(|m| format!("edge/line-3/sensor {m}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&received.stdout), expected);
    assert!(broker.log().contains("edgeshim-sensor"), "{}", broker.log());
    assert_no_leftovers("mqtt-publisher");

    // The same publisher pointed outside the granted range: refused, logged.
    let out = publish("mqtt-outside", "127.0.0.2");
    let address = format!("127.0.0.2:{BROKER_PORT}");
    assert_refused(out.status.code(), &stderr(&out), "connect", &address);
    if !on_wasmedge() {
        assert!(
            stdout(&out).contains("connect failed: error-code 1"),
            "access-denied: {}",
            stdout(&out)
        );
    }
    assert!(
        refusal_logged("mqtt-outside", &address),
        "{}",
        decision_log()
    );
    assert_no_leftovers("mqtt-outside");
}
