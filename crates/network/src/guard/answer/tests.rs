use std::collections::HashMap;
use std::net::SocketAddr;

use super::*;
use crate::{AddressRule, NetworkRules};

/// A caller's memory (by address) and its sockets' local addresses.
#[derive(Default)]
struct Fake {
    memory: HashMap<u64, Vec<u8>>,
    local: HashMap<i32, Vec<u8>>,
}

impl Target for Fake {
    fn read(&self, address: u64, len: usize) -> io::Result<Vec<u8>> {
        match self.memory.get(&address) {
            Some(bytes) if bytes.len() >= len => Ok(bytes[..len].to_vec()),
            _ => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        }
    }
    fn local_address(&self, fd: i32) -> io::Result<Vec<u8>> {
        self.local
            .get(&fd)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }
}

fn sockaddr_in(address: &str) -> Vec<u8> {
    let address: SocketAddr = address.parse().expect("address");
    let SocketAddr::V4(v4) = address else {
        panic!("IPv4 only")
    };
    let mut bytes = (libc::AF_INET as u16).to_ne_bytes().to_vec();
    bytes.extend(v4.port().to_be_bytes());
    bytes.extend(v4.ip().octets());
    bytes.extend([0u8; 8]);
    bytes
}

fn grant(connect: &[&str], listen: &[&str]) -> NetworkGrant {
    let rules = |texts: &[&str]| -> Vec<AddressRule> {
        texts.iter().map(|t| t.parse().expect("rule")).collect()
    };
    NetworkGrant::Rules(NetworkRules {
        connect: rules(connect),
        listen: rules(listen),
    })
}

const ADDR: u64 = 0x1000;

fn caller_with(address: &str) -> Fake {
    let mut fake = Fake::default();
    fake.memory.insert(ADDR, sockaddr_in(address));
    fake
}

fn refused(usage: Use, address: &str) -> Answer {
    Answer::Refuse {
        errno: libc::EACCES,
        refusal: Some(Refusal {
            usage,
            address: address.parse().expect("address"),
            decided_by: "default".into(),
        }),
    }
}

#[test]
fn test_connect_goes_on_only_to_a_granted_address() {
    let grant = grant(&["127.0.0.1:1883"], &[]);
    let args = [3, ADDR, 16, 0, 0, 0];
    let ok = caller_with("127.0.0.1:1883");
    assert_eq!(
        answer(libc::SYS_connect, &args, &grant, &ok),
        Answer::Continue
    );
    let other = caller_with("127.0.0.2:1883");
    assert_eq!(
        answer(libc::SYS_connect, &args, &grant, &other),
        refused(Use::Connect, "127.0.0.2:1883")
    );
}

#[test]
fn test_sends_are_judged_by_their_destination() {
    let grant = grant(&["10.0.0.0/8:53"], &[]);
    let caller = caller_with("8.8.8.8:53");
    // sendto without an address: a connected socket, judged at connect.
    assert_eq!(
        answer(libc::SYS_sendto, &[3, 0, 10, 0, 0, 0], &grant, &caller),
        Answer::Continue
    );
    assert_eq!(
        answer(libc::SYS_sendto, &[3, 0, 10, 0, ADDR, 16], &grant, &caller),
        refused(Use::Connect, "8.8.8.8:53")
    );
    // sendmsg: the address its msghdr points at.
    let mut caller = caller;
    let mut header = ADDR.to_ne_bytes().to_vec();
    header.extend(16u32.to_ne_bytes());
    caller.memory.insert(0x2000, header);
    assert_eq!(
        answer(libc::SYS_sendmsg, &[3, 0x2000, 0, 0, 0, 0], &grant, &caller),
        refused(Use::Connect, "8.8.8.8:53")
    );
    let mut no_name = 0u64.to_ne_bytes().to_vec();
    no_name.extend(0u32.to_ne_bytes());
    caller.memory.insert(0x3000, no_name);
    assert_eq!(
        answer(libc::SYS_sendmsg, &[3, 0x3000, 0, 0, 0, 0], &grant, &caller),
        Answer::Continue
    );
}

/// `sendmmsg`: two `mmsghdr`s at 0x4000 naming `first` and `second`
/// (0 for none).
fn batch(caller: &mut Fake, first: u64, second: u64) {
    let mut headers = Vec::new();
    for name in [first, second] {
        let mut header = name.to_ne_bytes().to_vec();
        header.extend(if name == 0 { 0u32 } else { 16u32 }.to_ne_bytes());
        header.resize(MMSGHDR_BYTES, 0);
        headers.extend(header);
    }
    caller.memory.insert(0x4000, headers);
}

#[test]
fn test_a_batched_send_goes_on_only_when_every_message_may() {
    let grant = grant(&["10.0.0.0/8:53"], &[]);
    let mut caller = caller_with("8.8.8.8:53");
    caller.memory.insert(0x5000, sockaddr_in("10.0.0.2:53"));
    let call = |caller: &Fake, vlen: u64| {
        answer(
            libc::SYS_sendmmsg,
            &[3, 0x4000, vlen, 0, 0, 0],
            &grant,
            caller,
        )
    };
    // A connected socket's batch (the resolver's A and AAAA queries).
    batch(&mut caller, 0, 0);
    assert_eq!(call(&caller, 2), Answer::Continue);
    batch(&mut caller, 0x5000, 0x5000);
    assert_eq!(call(&caller, 2), Answer::Continue);
    // One message to a refused address refuses the batch, named.
    batch(&mut caller, 0x5000, ADDR);
    assert_eq!(call(&caller, 2), refused(Use::Connect, "8.8.8.8:53"));
    // Only `vlen` messages are read: the first alone is allowed.
    assert_eq!(call(&caller, 1), Answer::Continue);
    // A batch the caller's memory does not hold: EFAULT, as the kernel.
    assert_eq!(
        call(&caller, 3),
        Answer::Refuse {
            errno: libc::EFAULT,
            refusal: None
        }
    );
}

#[test]
fn test_bind_and_listen_are_judged_against_listen_rules() {
    let grant = grant(&[], &["*:1883"]);
    let args = [3, ADDR, 16, 0, 0, 0];
    assert_eq!(
        answer(libc::SYS_bind, &args, &grant, &caller_with("0.0.0.0:1883")),
        Answer::Continue
    );
    assert_eq!(
        answer(libc::SYS_bind, &args, &grant, &caller_with("0.0.0.0:22")),
        refused(Use::Listen, "0.0.0.0:22")
    );
    // listen judges the address the kernel bound, not what a caller said.
    let mut caller = Fake::default();
    caller.local.insert(3, sockaddr_in("0.0.0.0:1883"));
    caller.local.insert(4, sockaddr_in("0.0.0.0:40000"));
    // Never bound: listen would bind a port the kernel picks.
    caller.local.insert(5, sockaddr_in("0.0.0.0:0"));
    let listen = |fd: u64| answer(libc::SYS_listen, &[fd, 16, 0, 0, 0, 0], &grant, &caller);
    assert_eq!(listen(3), Answer::Continue);
    assert_eq!(listen(4), refused(Use::Listen, "0.0.0.0:40000"));
    assert_eq!(listen(5), refused(Use::Listen, "0.0.0.0:0"));
    // A bad descriptor fails as the kernel would fail it.
    assert_eq!(listen(9), Answer::error(libc::EBADF));
    let anywhere = NetworkGrant::Rules(NetworkRules {
        connect: vec![],
        listen: vec!["*:*".parse().expect("rule")],
    });
    assert_eq!(
        answer(libc::SYS_listen, &[5, 16, 0, 0, 0, 0], &anywhere, &caller),
        Answer::Continue
    );
}

#[test]
fn test_addresses_no_rule_can_name_are_refused() {
    let grant = grant(&["*:*"], &["*:*"]);
    let mut caller = Fake::default();
    let mut unix = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    unix.extend(b"/run/containerd/containerd.sock\0");
    caller.memory.insert(ADDR, unix);
    for nr in [libc::SYS_connect, libc::SYS_bind] {
        assert_eq!(
            answer(nr, &[3, ADDR, 34, 0, 0, 0], &grant, &caller),
            Answer::error(libc::EACCES)
        );
    }
    // Longer than any socket address: the kernel's own answer.
    assert_eq!(
        answer(
            libc::SYS_connect,
            &[3, ADDR, 4096, 0, 0, 0],
            &grant,
            &caller
        ),
        Answer::error(libc::EINVAL)
    );
    // Unreadable memory.
    assert_eq!(
        answer(
            libc::SYS_connect,
            &[3, 0x9999, 16, 0, 0, 0],
            &grant,
            &caller
        ),
        Answer::error(libc::EFAULT)
    );
    // A call the filter never traps.
    assert_eq!(
        answer(libc::SYS_openat, &[0; 6], &grant, &caller),
        Answer::error(libc::EACCES)
    );
}

#[test]
fn test_unspec_disconnects_but_binds_and_sends_as_ipv4() {
    let grant = grant(&["127.0.0.1:53"], &[]);
    let mut caller = Fake::default();
    let mut unspec = (libc::AF_UNSPEC as u16).to_ne_bytes().to_vec();
    unspec.extend(53u16.to_be_bytes());
    unspec.extend([8, 8, 8, 8]);
    unspec.extend([0u8; 8]);
    caller.memory.insert(ADDR, unspec);
    assert_eq!(
        answer(libc::SYS_connect, &[3, ADDR, 16, 0, 0, 0], &grant, &caller),
        Answer::Continue
    );
    assert_eq!(
        answer(libc::SYS_sendto, &[3, 0, 1, 0, ADDR, 16], &grant, &caller),
        refused(Use::Connect, "8.8.8.8:53")
    );
}
