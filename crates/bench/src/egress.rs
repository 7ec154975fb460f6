//! Part of scenario `network`: what checking an address costs, apart from
//! the network. The grant's own check (what Wasmtime's
//! `socket_addr_check` runs for each use), and a connect, a `sendmsg`
//! and a `sendto` with an address in a process under the seccomp guard
//! (what each such call of a WasmEdge module pays: a round trip to the
//! shim's answering thread) against the same calls before the guard was
//! set. The guarded process is this tool itself, run again (the guard
//! needs a process alone in its memory), answered by a supervisor here.

use std::io::IoSliceMut;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use edgeshim_network::guard::{Supervisor, guard_this_process};
use edgeshim_network::{AddressRule, NetworkGrant, NetworkRules, Use};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use crate::stats::{Summary, summarize};

#[derive(Debug, Serialize)]
pub struct CheckCost {
    pub what: String,
    /// µs per call.
    pub us: Summary,
}

/// The child's samples, µs per call: before and after the guard.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Samples {
    connect: [Vec<f64>; 2],
    sendmsg: [Vec<f64>; 2],
    sendto: [Vec<f64>; 2],
}

pub fn run(n: usize) -> Result<Vec<CheckCost>> {
    let mut costs = vec![grant_check(n)];
    let samples = guarded_child(n)?;
    for (call, [before, after]) in [
        ("connect (TCP, 127.0.0.1)", samples.connect),
        (
            "sendmsg, no address (as WasmEdge's sock_send)",
            samples.sendmsg,
        ),
        ("sendto with an address (UDP)", samples.sendto),
    ] {
        costs.push(CheckCost {
            what: format!("{call}, unguarded"),
            us: summarize(&before),
        });
        costs.push(CheckCost {
            what: format!("{call}, under the seccomp guard"),
            us: summarize(&after),
        });
    }
    Ok(costs)
}

/// The grant's check for an address its tenth rule allows, in batches of
/// 1000 calls.
fn grant_check(n: usize) -> CheckCost {
    let rules: Vec<AddressRule> = (1..=10)
        .map(|i| format!("10.{i}.0.0/16:1883").parse().expect("a rule"))
        .collect();
    let grant = NetworkGrant::Rules(NetworkRules {
        connect: rules,
        listen: Vec::new(),
    });
    let address: SocketAddr = "10.10.3.4:1883".parse().expect("an address");
    let mut batches = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(
                std::hint::black_box(&grant)
                    .check(Use::Connect, address)
                    .allowed
            );
        }
        batches.push(t.elapsed().as_secs_f64() * 1e6 / 1000.0);
    }
    CheckCost {
        what: "the grant's check, 10 rules (per call)".into(),
        us: summarize(&batches),
    }
}

/// The hidden subcommand's name, for the child.
pub const CHILD_COMMAND: &str = "egress-child";

/// Runs this tool as a guarded child and collects its samples.
fn guarded_child(n: usize) -> Result<Samples> {
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let tcp_port = tcp.local_addr()?.port();
    let udp_port = udp.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in tcp.incoming() {
            drop(stream);
        }
    });
    let supervisor = Supervisor::start(Box::new(|container, refusal| {
        eprintln!("egress: {container}: unexpected refusal {refusal:?}");
    }))?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::empty(),
    )?;
    let child = Command::new(std::env::current_exe()?)
        .args([
            CHILD_COMMAND,
            &theirs.as_raw_fd().to_string(),
            &tcp_port.to_string(),
            &udp_port.to_string(),
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("the guarded child")?;
    drop(theirs);
    let listener = receive_listener(&ours)?;
    let grant = NetworkGrant::Rules(NetworkRules {
        connect: vec![
            format!("127.0.0.1:{tcp_port}").parse()?,
            format!("127.0.0.1:{udp_port}").parse()?,
        ],
        listen: Vec::new(),
    });
    supervisor.watch("egress-bench", grant, listener);
    let output = child.wait_with_output()?;
    drop(udp);
    if !output.status.success() {
        bail!("the guarded child failed: {}", output.status);
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn receive_listener(channel: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave this process the descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    bail!("the child sent no listener")
}

/// The child: each call `n` times, then the guard, then again; the samples
/// as JSON on stdout.
pub fn child_main(channel: RawFd, tcp_port: u16, udp_port: u16, n: usize) -> Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let to: SocketAddr = ([127, 0, 0, 1], udp_port).into();
    let connected = UdpSocket::bind("127.0.0.1:0")?;
    connected.connect(to)?;
    let mut samples = Samples::default();
    for pass in 0..2 {
        if pass == 1 {
            guard_this_process(channel)?;
        }
        for _ in 0..n {
            let t = Instant::now();
            drop(TcpStream::connect(("127.0.0.1", tcp_port))?);
            samples.connect[pass].push(micros(t));
            let t = Instant::now();
            sendmsg::<()>(
                connected.as_raw_fd(),
                &[std::io::IoSlice::new(b"x")],
                &[],
                MsgFlags::empty(),
                None,
            )?;
            samples.sendmsg[pass].push(micros(t));
            let t = Instant::now();
            udp.send_to(b"x", to)?;
            samples.sendto[pass].push(micros(t));
        }
    }
    println!("{}", serde_json::to_string(&samples)?);
    Ok(())
}

fn micros(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e6
}
