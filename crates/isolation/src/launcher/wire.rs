//! The launcher's framing: a 4-byte little-endian length sent with the
//! message's descriptors attached (SCM_RIGHTS), then that many bytes of JSON,
//! on a Unix stream socket.
//!
//! Written here rather than taken from ttrpc: the launcher must stay
//! single-threaded and allocation-light, and this is one request and one
//! reply at a time between two processes of the same binary.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Most descriptors one message carries (stdio and a payload's).
pub(crate) const MAX_FDS: usize = 4;
/// Largest message body accepted (a spec's env can be large).
pub(crate) const MAX_BODY: usize = 16 << 20;

/// Sends `body` with `fds` attached.
pub(crate) fn send(sock: &UnixStream, body: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    if fds.len() > MAX_FDS || body.len() > MAX_BODY {
        return Err(std::io::Error::other(format!(
            "message too large: {} bytes, {} descriptors",
            body.len(),
            fds.len()
        )));
    }
    let len = u32::try_from(body.len())
        .map_err(std::io::Error::other)?
        .to_le_bytes();
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&len)],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    let mut stream = sock;
    stream.write_all(&len[sent..])?;
    stream.write_all(body)
}

/// Receives one message; `None` at end of stream (the peer is gone).
pub(crate) fn recv(sock: &UnixStream) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut len = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (got, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut len)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel installed these descriptors in this
                // process for this message; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC))
    };
    if got == 0 {
        return Ok(None);
    }
    if truncated {
        return Err(std::io::Error::other("too many descriptors in one message"));
    }
    let mut stream = sock;
    stream.read_exact(&mut len[got..])?;
    let size = u32::from_le_bytes(len) as usize;
    if size > MAX_BODY {
        return Err(std::io::Error::other(format!(
            "message of {size} bytes is over the {MAX_BODY}-byte limit"
        )));
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body)?;
    Ok(Some((body, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    #[test]
    fn test_message_and_descriptors_arrive_together() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"through the socket").expect("write");
        send(&a, b"{\"x\":1}", &[file.as_raw_fd()]).expect("send");
        send(&a, b"second", &[]).expect("send");
        let (body, fds) = recv(&b).expect("recv").expect("a message");
        assert_eq!(body, b"{\"x\":1}");
        assert_eq!(fds.len(), 1);
        let mut received = std::fs::File::from(fds.into_iter().next().expect("fd"));
        received.rewind().expect("seek");
        let mut text = String::new();
        received.read_to_string(&mut text).expect("read");
        assert_eq!(text, "through the socket");
        let (body, fds) = recv(&b).expect("recv").expect("a message");
        assert_eq!(body, b"second");
        assert!(fds.is_empty());
        drop(a);
        assert!(recv(&b).expect("recv at end").is_none());
    }

    #[test]
    fn test_oversized_length_is_refused() {
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(&u32::MAX.to_le_bytes()).expect("write");
        let err = recv(&b).expect_err("refused");
        assert!(err.to_string().contains("over the"), "{err}");
    }
}
