//! A container's sockets held to its [`NetworkGrant`]: wasmtime-wasi asks
//! before every bind, listen, connect and datagram send (its
//! `socket_addr_check`), and a refusal reaches the module as EACCES.
//! Refusals are said on the container's stderr, at most
//! [`REPORTS_PER_WINDOW`] per [`REPORT_WINDOW`], so that a connect flood
//! cannot fill its log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use edgeshim_network::{NetworkGrant, Use};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

const REPORT_WINDOW: Duration = Duration::from_secs(10);
const REPORTS_PER_WINDOW: u32 = 10;

/// Applies `grant` to the context being built.
pub fn apply(builder: &mut WasiCtxBuilder, grant: &NetworkGrant) {
    // wasmtime-wasi refuses TCP and UDP sockets unless told otherwise.
    // Sockets may be made; what they may do is checked address by address
    // (a socket that can neither bind nor connect reaches nothing), so that
    // every refusal is said, also where the grant allows nothing.
    builder
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(grant.allows_name_lookup());
    let grant = Arc::new(grant.clone());
    let reports = Arc::new(Mutex::new(Reports::default()));
    builder.socket_addr_check(move |address, usage| {
        let allowed = decide(&grant, &reports, address, usage);
        Box::pin(async move { allowed })
    });
}

fn decide(
    grant: &NetworkGrant,
    reports: &Mutex<Reports>,
    address: SocketAddr,
    usage: SocketAddrUse,
) -> bool {
    let (usage, action) = match usage {
        SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => (Use::Connect, "connect"),
        SocketAddrUse::TcpBind | SocketAddrUse::TcpListen | SocketAddrUse::UdpBind => {
            (Use::Listen, "listen")
        }
        // Who may reach a socket the container was allowed to open is the
        // pod network's business: the grant says where it may listen.
        SocketAddrUse::TcpAccept | SocketAddrUse::UdpReceive => return true,
    };
    let verdict = grant.check(usage, address);
    if !verdict.allowed {
        let mut reports = reports.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(dropped) = reports.admit(Instant::now()) {
            if dropped > 0 {
                eprintln!("edgeshim: network: {dropped} more refusals not shown");
            }
            eprintln!(
                "edgeshim: network: {action} {address} refused by the policy ({})",
                verdict.decided_by
            );
        }
    }
    verdict.allowed
}

/// How many refusals were said in the current window.
#[derive(Default)]
struct Reports {
    window_start: Option<Instant>,
    said: u32,
    dropped: u32,
}

impl Reports {
    /// `Some(dropped since the last report)` when a refusal may be said now.
    fn admit(&mut self, now: Instant) -> Option<u32> {
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= REPORT_WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.said = 0;
        }
        if self.said < REPORTS_PER_WINDOW {
            self.said += 1;
            Some(std::mem::take(&mut self.dropped))
        } else {
            self.dropped += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refusal_reports_are_bounded_per_window() {
        let mut reports = Reports::default();
        let start = Instant::now();
        let said = (0..1000).filter(|_| reports.admit(start).is_some()).count();
        assert_eq!(said, REPORTS_PER_WINDOW as usize);
        // The next window says how many were held back.
        assert_eq!(reports.admit(start + REPORT_WINDOW), Some(990));
        assert_eq!(reports.admit(start + REPORT_WINDOW), Some(0));
    }

    #[test]
    fn test_checks_follow_the_grant() {
        let grant = NetworkGrant::Rules(edgeshim_network::NetworkRules {
            connect: vec!["10.0.0.0/8:1883".parse().expect("rule")],
            listen: vec!["*:1883".parse().expect("rule")],
        });
        let reports = Mutex::new(Reports::default());
        let at = |a: &str| a.parse::<SocketAddr>().expect("address");
        assert!(decide(
            &grant,
            &reports,
            at("10.1.1.1:1883"),
            SocketAddrUse::TcpConnect
        ));
        assert!(!decide(
            &grant,
            &reports,
            at("8.8.8.8:1883"),
            SocketAddrUse::TcpConnect
        ));
        assert!(!decide(
            &grant,
            &reports,
            at("8.8.8.8:53"),
            SocketAddrUse::UdpSend
        ));
        assert!(decide(
            &grant,
            &reports,
            at("0.0.0.0:1883"),
            SocketAddrUse::TcpListen
        ));
        assert!(!decide(
            &grant,
            &reports,
            at("0.0.0.0:80"),
            SocketAddrUse::TcpBind
        ));
        assert!(decide(
            &grant,
            &reports,
            at("0.0.0.0:0"),
            SocketAddrUse::UdpBind
        ));
        assert!(decide(
            &grant,
            &reports,
            at("8.8.8.8:5000"),
            SocketAddrUse::TcpAccept
        ));
    }
}
