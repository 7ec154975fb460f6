//! Property tests on generated input (proptest; no nightly fuzzer exists
//! here): the rule parser and the seccomp guard's judgement never panic,
//! every error names what it read, and the guard lets a call go on to an
//! IP address only where the grant allows that address.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default, what the
//! suite runs; RELIABILITY.md gives a long run's counts).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use edgeshim_network::guard::{Answer, Target, answer};
use edgeshim_network::{AddressRule, NetworkGrant, NetworkRules, Use};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_text_parses_or_is_named_in_its_error(text in ".{0,40}") {
        match text.parse::<AddressRule>() {
            Ok(rule) => {
                // What parses prints as a rule that parses to the same.
                let again: AddressRule = rule.to_string().parse().expect("its own text");
                prop_assert_eq!(again, rule);
            }
            Err(e) => prop_assert!(e.to_string().contains(&format!("{text:?}")), "{}", e),
        }
    }

    #[test]
    fn generated_rules_round_trip_and_match_what_they_say(
        octets in any::<[u8; 4]>(),
        prefix in 0u8..=32,
        low in 1u16..,
        span in 0u16..1000,
        port in 1u16..,
    ) {
        let net = ipnet::Ipv4Net::new(Ipv4Addr::from(octets), prefix).expect("prefix").trunc();
        let high = low.saturating_add(span);
        let rule: AddressRule = format!("{net}:{low}-{high}").parse().expect("a rule");
        let again: AddressRule = rule.to_string().parse().expect("its own text");
        prop_assert_eq!(&again, &rule);
        let address = SocketAddr::new(IpAddr::V4(net.addr()), port);
        prop_assert_eq!(rule.matches(address), (low..=high).contains(&port));
    }
}

/// A caller whose memory holds `bytes` at every address asked for (as
/// long as the bytes go) and whose sockets are bound to `local`.
struct Caller {
    memory: HashMap<u64, Vec<u8>>,
    local: Vec<u8>,
}

impl Target for Caller {
    fn read(&self, address: u64, len: usize) -> io::Result<Vec<u8>> {
        match self.memory.get(&address) {
            Some(bytes) if bytes.len() >= len => Ok(bytes[..len].to_vec()),
            _ => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        }
    }
    fn local_address(&self, _fd: i32) -> io::Result<Vec<u8>> {
        Ok(self.local.clone())
    }
}

/// The socket address the kernel would read from `bytes` for `nr`, when
/// it is an IP one (the property's own reading, by the kernel's layout).
fn ip_in(bytes: &[u8], disconnect_on_unspec: bool) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    match i32::from(family) {
        libc::AF_UNSPEC if disconnect_on_unspec => None,
        libc::AF_INET | libc::AF_UNSPEC if bytes.len() >= 16 => {
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Some(SocketAddr::new(ip.into(), port))
        }
        libc::AF_INET6 if bytes.len() >= 24 => {
            let octets: [u8; 16] = bytes[8..24].try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        _ => None,
    }
}

fn grant_strategy() -> impl Strategy<Value = NetworkGrant> {
    let rule = prop_oneof![
        Just("*:*".to_string()),
        Just("127.0.0.1:1883".to_string()),
        Just("10.0.0.0/8:1-1024".to_string()),
        Just("[fd00::/8]:*".to_string()),
        Just("0.0.0.0/0:53".to_string()),
    ];
    (
        proptest::collection::vec(rule.clone(), 0..3),
        proptest::collection::vec(rule, 0..3),
    )
        .prop_map(|(connect, listen)| {
            NetworkGrant::Rules(NetworkRules {
                connect: connect.iter().map(|r| r.parse().expect("rule")).collect(),
                listen: listen.iter().map(|r| r.parse().expect("rule")).collect(),
            })
        })
}

/// Socket-address bytes: mostly well-formed families, sometimes garbage.
fn sockaddr_strategy() -> impl Strategy<Value = Vec<u8>> {
    let family = prop_oneof![
        Just(libc::AF_INET as u16),
        Just(libc::AF_INET6 as u16),
        Just(libc::AF_UNSPEC as u16),
        Just(libc::AF_UNIX as u16),
        Just(libc::AF_NETLINK as u16),
        any::<u16>(),
    ];
    (family, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(family, rest)| {
        let mut bytes = family.to_ne_bytes().to_vec();
        bytes.extend(rest);
        bytes
    })
}

proptest! {
    #[test]
    fn the_guard_never_panics_and_lets_ip_calls_on_only_as_the_grant_allows(
        grant in grant_strategy(),
        nr in prop_oneof![
            Just(libc::SYS_connect),
            Just(libc::SYS_bind),
            Just(libc::SYS_listen),
            Just(libc::SYS_sendto),
            Just(libc::SYS_sendmsg),
            any::<i64>(),
        ],
        address in sockaddr_strategy(),
        local in sockaddr_strategy(),
        mut args in any::<[u64; 6]>(),
        null_address in any::<bool>(),
    ) {
        const AT: u64 = 0x1000;
        const HEADER: u64 = 0x2000;
        let len = address.len() as u64;
        let mut memory = HashMap::from([(AT, address.clone())]);
        let mut header = AT.to_ne_bytes().to_vec();
        header.extend(u32::try_from(len).expect("short").to_ne_bytes());
        memory.insert(HEADER, header);
        match nr {
            libc::SYS_connect | libc::SYS_bind => {
                args[1] = AT;
                args[2] = len;
            }
            libc::SYS_sendto => {
                args[4] = if null_address { 0 } else { AT };
                args[5] = len;
            }
            libc::SYS_sendmsg => args[1] = HEADER,
            _ => {}
        }
        let caller = Caller { memory, local: local.clone() };
        let got = answer(nr, &args, &grant, &caller);
        if got == Answer::Continue {
            let judged = match nr {
                libc::SYS_connect => ip_in(&address, true).map(|a| (Use::Connect, a)),
                libc::SYS_sendto if !null_address => ip_in(&address, false).map(|a| (Use::Connect, a)),
                libc::SYS_sendmsg => ip_in(&address, false).map(|a| (Use::Connect, a)),
                libc::SYS_bind => ip_in(&address, false).map(|a| (Use::Listen, a)),
                _ => None,
            };
            if let Some((usage, a)) = judged {
                prop_assert!(grant.check(usage, a).allowed, "{:?} {} went on", usage, a);
            }
            if nr == libc::SYS_listen {
                let bound = ip_in(&local, false);
                prop_assert!(bound.is_some_and(|a| grant.check_listening(a).allowed));
            }
        }
    }
}
