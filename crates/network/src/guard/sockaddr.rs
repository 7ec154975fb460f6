//! A socket address as a syscall's caller laid it out in memory (the
//! kernel's `struct sockaddr` family), read into what the grant can judge.
//!
//! Written by hand: the bytes come from another process's memory, and the
//! layouts are the kernel's ABI (`sockaddr_in`, `sockaddr_in6`,
//! `sockaddr_nl`), which no crate parses from raw bytes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The most bytes a socket address takes (`sizeof(struct
/// sockaddr_storage)`); the kernel refuses longer ones.
pub const MAX_LEN: usize = 128;

/// What a caller's address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockAddress {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// `AF_UNSPEC`: to `connect`, "dissolve the association".
    Unspecified,
    /// A netlink address: the kernel's own (port id 0), or another
    /// process's.
    Netlink { to_kernel: bool },
    /// Any other family (`AF_UNIX`, `AF_PACKET`, ...), or too short for its
    /// family.
    Other { family: u16 },
}

/// How the kernel reads `AF_UNSPEC` in the call: `connect` dissolves the
/// association; `bind` and `sendto`/`sendmsg` on an IPv4 socket read the
/// rest as an IPv4 address (Linux's compatibility rule, `inet_bind` and
/// `udp_sendmsg`), so it must be judged as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnspecMeans {
    Disconnect,
    Ipv4,
}

const AF_UNSPEC: u16 = libc::AF_UNSPEC as u16;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const AF_NETLINK: u16 = libc::AF_NETLINK as u16;
/// `sizeof(struct sockaddr_in)`.
const SOCKADDR_IN_LEN: usize = 16;
/// The shortest `sockaddr_in6` the kernel takes (`SIN6_LEN_RFC2133`).
const SOCKADDR_IN6_MIN_LEN: usize = 24;
/// `sizeof(struct sockaddr_nl)`.
const SOCKADDR_NL_LEN: usize = 12;

/// Reads `bytes` (the caller's address, as long as it said) as the kernel
/// would for a call where `AF_UNSPEC` means `unspec`.
pub fn parse(bytes: &[u8], unspec: UnspecMeans) -> SockAddress {
    let Some(family) = bytes.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]])) else {
        return SockAddress::Other { family: 0 };
    };
    match family {
        AF_UNSPEC if unspec == UnspecMeans::Disconnect => SockAddress::Unspecified,
        AF_INET | AF_UNSPEC if bytes.len() >= SOCKADDR_IN_LEN => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            SockAddress::Ip(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 if bytes.len() >= SOCKADDR_IN6_MIN_LEN => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[8..24]);
            let ip = Ipv6Addr::from(octets);
            SockAddress::Ip(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)))
        }
        AF_NETLINK if bytes.len() >= SOCKADDR_NL_LEN => {
            let port_id = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            SockAddress::Netlink {
                to_kernel: port_id == 0,
            }
        }
        family => SockAddress::Other { family },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(family: u16, port: u16, ip: [u8; 4]) -> Vec<u8> {
        let mut bytes = family.to_ne_bytes().to_vec();
        bytes.extend(port.to_be_bytes());
        bytes.extend(ip);
        bytes.extend([0u8; 8]);
        bytes
    }

    #[test]
    fn test_ipv4_and_ipv6_read_as_the_kernel_lays_them_out() {
        let v4 = inet(AF_INET, 1883, [10, 20, 0, 5]);
        assert_eq!(
            parse(&v4, UnspecMeans::Disconnect),
            SockAddress::Ip("10.20.0.5:1883".parse().expect("address"))
        );
        let mut v6 = AF_INET6.to_ne_bytes().to_vec();
        v6.extend(8080u16.to_be_bytes());
        v6.extend([0u8; 4]);
        v6.extend("fd00::1".parse::<Ipv6Addr>().expect("ip").octets());
        v6.extend([0u8; 4]);
        assert_eq!(
            parse(&v6, UnspecMeans::Ipv4),
            SockAddress::Ip("[fd00::1]:8080".parse().expect("address"))
        );
    }

    #[test]
    fn test_unspec_is_a_disconnect_only_where_the_kernel_reads_it_so() {
        // Linux binds and sends to an AF_UNSPEC address as IPv4: a module
        // must not slip an address past the check that way.
        let unspec = inet(AF_UNSPEC, 53, [8, 8, 8, 8]);
        assert_eq!(
            parse(&unspec, UnspecMeans::Ipv4),
            SockAddress::Ip("8.8.8.8:53".parse().expect("address"))
        );
        assert_eq!(
            parse(&unspec, UnspecMeans::Disconnect),
            SockAddress::Unspecified
        );
    }

    #[test]
    fn test_short_and_foreign_addresses_are_other() {
        let v4 = inet(AF_INET, 80, [1, 2, 3, 4]);
        assert_eq!(
            parse(&v4[..8], UnspecMeans::Ipv4),
            SockAddress::Other { family: AF_INET }
        );
        assert_eq!(
            parse(&[], UnspecMeans::Ipv4),
            SockAddress::Other { family: 0 }
        );
        let unix = (libc::AF_UNIX as u16).to_ne_bytes();
        assert_eq!(
            parse(&unix, UnspecMeans::Ipv4),
            SockAddress::Other {
                family: libc::AF_UNIX as u16
            }
        );
    }

    #[test]
    fn test_netlink_to_the_kernel_is_told_from_netlink_to_a_process() {
        let mut nl = AF_NETLINK.to_ne_bytes().to_vec();
        nl.extend([0u8; 2]);
        nl.extend(0u32.to_ne_bytes());
        nl.extend(0u32.to_ne_bytes());
        assert_eq!(
            parse(&nl, UnspecMeans::Ipv4),
            SockAddress::Netlink { to_kernel: true }
        );
        nl[4..8].copy_from_slice(&4242u32.to_ne_bytes());
        assert_eq!(
            parse(&nl, UnspecMeans::Ipv4),
            SockAddress::Netlink { to_kernel: false }
        );
    }
}
