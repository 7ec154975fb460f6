//! The answer to one socket call a guarded container made: let it go on
//! (the kernel then runs it as the caller made it), or refuse it with an
//! errno, and the refusal to log.
//!
//! Pure logic over [`Target`] (the caller's memory and sockets), so that
//! every case is tested without a process.

use std::io;

use super::sockaddr::{self, MAX_LEN, SockAddress, UnspecMeans};
use crate::{NetworkGrant, Refusal, Use, Verdict};

/// What the guard reads of the process whose call it answers.
pub trait Target {
    /// `len` bytes of the caller's memory at `address`.
    fn read(&self, address: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The local address of the caller's socket `fd` (`getsockname`).
    fn local_address(&self, fd: i32) -> io::Result<Vec<u8>>;
}

/// What the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The kernel runs the call as made.
    Continue,
    /// The call fails with `errno`; `refusal` is what the decision log
    /// gets (none for an address outside IP, which no rule can name).
    Refuse {
        errno: i32,
        refusal: Option<Refusal>,
    },
}

impl Answer {
    fn error(errno: i32) -> Self {
        Self::Refuse {
            errno,
            refusal: None,
        }
    }

    fn from_io(e: &io::Error) -> Self {
        Self::error(e.raw_os_error().unwrap_or(libc::EACCES))
    }
}

/// `msg_name` and `msg_namelen` of a `struct msghdr` (x86_64 layout: a
/// pointer, then a 32-bit length).
const MSGHDR_NAME_BYTES: usize = 12;

/// A `struct mmsghdr` (x86_64: a 56-byte `msghdr`, a 32-bit `msg_len`,
/// padding), and the most of them one `sendmmsg` sends (the kernel's
/// `UIO_MAXIOV`; it caps `vlen` there).
const MMSGHDR_BYTES: usize = 64;
const SENDMMSG_MAX: usize = 1024;

/// The answer to syscall `nr` with `args`, made by `target` under `grant`.
pub fn answer(nr: i64, args: &[u64; 6], grant: &NetworkGrant, target: &dyn Target) -> Answer {
    let fd = i32::try_from(args[0]).unwrap_or(-1);
    match nr {
        libc::SYS_connect => to_address(target, args[1], args[2], UnspecMeans::Disconnect, |a| {
            judge(Use::Connect, a, grant.check(Use::Connect, a))
        }),
        libc::SYS_bind => match read_address(target, args[1], args[2], UnspecMeans::Ipv4) {
            Ok(SockAddress::Ip(a)) => judge(Use::Listen, a, grant.check(Use::Listen, a)),
            // A netlink socket's own port id: no traffic.
            Ok(SockAddress::Netlink { .. }) => Answer::Continue,
            Ok(_) => Answer::error(libc::EACCES),
            Err(answer) => answer,
        },
        libc::SYS_listen => match target.local_address(fd) {
            Ok(bytes) => match sockaddr::parse(&bytes, UnspecMeans::Ipv4) {
                SockAddress::Ip(a) => judge(Use::Listen, a, grant.check_listening(a)),
                _ => Answer::error(libc::EACCES),
            },
            Err(e) => Answer::from_io(&e),
        },
        libc::SYS_sendto if args[4] == 0 => Answer::Continue,
        libc::SYS_sendto => to_address(target, args[4], args[5], UnspecMeans::Ipv4, |a| {
            judge(Use::Connect, a, grant.check(Use::Connect, a))
        }),
        libc::SYS_sendmsg => match target.read(args[1], MSGHDR_NAME_BYTES) {
            Ok(header) => message_to(target, grant, &header),
            Err(e) => Answer::from_io(&e),
        },
        // Each message's own address is judged, and the batch goes on only
        // when every one may (glibc's resolver sends its A and AAAA
        // queries in one `sendmmsg`, on a socket it connected first).
        libc::SYS_sendmmsg => {
            let count = usize::try_from(args[2]).unwrap_or(0).min(SENDMMSG_MAX);
            match target.read(args[1], count * MMSGHDR_BYTES) {
                Ok(headers) => headers
                    .chunks_exact(MMSGHDR_BYTES)
                    .map(|header| message_to(target, grant, header))
                    .find(|answer| *answer != Answer::Continue)
                    .unwrap_or(Answer::Continue),
                Err(e) => Answer::from_io(&e),
            }
        }
        // The filter traps nothing else; anything else is refused.
        _ => Answer::error(libc::EACCES),
    }
}

/// The answer for one message, from the start of its `msghdr`: without a
/// name it goes to the socket's peer (judged at connect).
fn message_to(target: &dyn Target, grant: &NetworkGrant, header: &[u8]) -> Answer {
    let name = u64::from_ne_bytes(header[..8].try_into().unwrap_or_default());
    let len = u32::from_ne_bytes(header[8..12].try_into().unwrap_or_default());
    if name == 0 {
        return Answer::Continue;
    }
    to_address(target, name, u64::from(len), UnspecMeans::Ipv4, |a| {
        judge(Use::Connect, a, grant.check(Use::Connect, a))
    })
}

/// The answer for a call that sends to (or connects to) the address at
/// `address`: `ip` judges an IP address; netlink to the kernel goes on.
fn to_address(
    target: &dyn Target,
    address: u64,
    len: u64,
    unspec: UnspecMeans,
    ip: impl Fn(std::net::SocketAddr) -> Answer,
) -> Answer {
    match read_address(target, address, len, unspec) {
        Ok(SockAddress::Ip(a)) => ip(a),
        Ok(SockAddress::Unspecified | SockAddress::Netlink { to_kernel: true }) => Answer::Continue,
        Ok(_) => Answer::error(libc::EACCES),
        Err(answer) => answer,
    }
}

/// The caller's address of `len` bytes at `address`, or the errno the
/// kernel would give for it.
fn read_address(
    target: &dyn Target,
    address: u64,
    len: u64,
    unspec: UnspecMeans,
) -> Result<SockAddress, Answer> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_LEN {
        return Err(Answer::error(libc::EINVAL));
    }
    let bytes = target
        .read(address, len)
        .map_err(|_| Answer::error(libc::EFAULT))?;
    Ok(sockaddr::parse(&bytes, unspec))
}

fn judge(usage: Use, address: std::net::SocketAddr, verdict: Verdict) -> Answer {
    if verdict.allowed {
        return Answer::Continue;
    }
    Answer::Refuse {
        errno: libc::EACCES,
        refusal: Some(Refusal {
            usage,
            address,
            decided_by: verdict.decided_by,
        }),
    }
}

#[cfg(test)]
mod tests;
