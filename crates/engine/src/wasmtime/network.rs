//! A container's sockets held to its [`NetworkGrant`]: wasmtime-wasi asks
//! before every bind, listen, connect and datagram send (its
//! `socket_addr_check`), and a refusal reaches the module as EACCES. Name
//! lookups are allowed when the container may reach one of its resolvers
//! (wasmtime-wasi can allow them only as a whole). `wasi:http` requests
//! are checked by the same [`Egress`] (http.rs).
//! Refusals are said on the container's stderr and handed to the shim's
//! report channel, rate-limited ([`RateLimit::for_refusals`]), so that a
//! connect flood can fill neither log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use edgeshim_network::{NetworkGrant, RateLimit, Refusal, ReportRefusal, Use};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// A grant, and where its refusals go besides stderr.
pub struct Checked {
    pub grant: NetworkGrant,
    pub report: Option<ReportRefusal>,
}

/// A container's grant as the engine checks it: every use of an address by
/// its sockets and its `wasi:http` requests, refusals said and reported
/// within one rate limit.
pub struct Egress {
    checked: Checked,
    limit: Mutex<RateLimit>,
    /// Whether names may be looked up (see `NetworkGrant::allows_name_lookup`).
    lookups: bool,
}

impl Egress {
    /// `checked`, with the resolvers of the container's own resolv.conf
    /// (read here: this runs in the container's process, `/` is its own).
    pub fn new(checked: Checked) -> Self {
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").ok();
        let resolvers = edgeshim_network::resolvers(resolv_conf.as_deref());
        Self {
            lookups: checked.grant.allows_name_lookup(&resolvers),
            checked,
            limit: Mutex::new(RateLimit::for_refusals()),
        }
    }

    /// Whether names may be looked up.
    pub fn allows_name_lookup(&self) -> bool {
        self.lookups
    }

    /// Whether `address` may be used as `usage`; a refusal is said on
    /// stderr and reported.
    pub fn allows(&self, address: SocketAddr, usage: SocketAddrUse) -> bool {
        decide(&self.checked, &self.limit, address, usage)
    }
}

/// Applies `egress` to the context being built.
pub fn apply(builder: &mut WasiCtxBuilder, egress: Arc<Egress>) {
    // wasmtime-wasi refuses TCP and UDP sockets unless told otherwise.
    // Sockets may be made; what they may do is checked address by address
    // (a socket that can neither bind nor connect reaches nothing), so that
    // every refusal is said, also where the grant allows nothing.
    builder
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(egress.allows_name_lookup());
    builder.socket_addr_check(move |address, usage| {
        let allowed = egress.allows(address, usage);
        Box::pin(async move { allowed })
    });
}

fn decide(
    checked: &Checked,
    limit: &Mutex<RateLimit>,
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
    let verdict = checked.grant.check(usage, address);
    if !verdict.allowed {
        let admitted = limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now());
        if let Some(held_back) = admitted {
            if held_back > 0 {
                eprintln!("edgeshim: network: {held_back} more refusals not shown");
            }
            eprintln!(
                "edgeshim: network: {action} {address} refused by the policy ({})",
                verdict.decided_by
            );
            if let Some(report) = &checked.report {
                report(&Refusal {
                    usage,
                    address,
                    decided_by: verdict.decided_by,
                });
            }
        }
    }
    verdict.allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_checks_follow_the_grant_and_refusals_are_reported_within_the_limit() {
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink = reported.clone();
        let checked = Checked {
            grant: NetworkGrant::Rules(edgeshim_network::NetworkRules {
                connect: vec!["10.0.0.0/8:1883".parse().expect("rule")],
                listen: vec!["*:1883".parse().expect("rule")],
            }),
            report: Some(Arc::new(move |refusal: &Refusal| {
                sink.lock().expect("sink").push(refusal.clone());
            })),
        };
        let limit = Mutex::new(RateLimit::for_refusals());
        let check = |a: &str, usage| decide(&checked, &limit, a.parse().expect("address"), usage);
        assert!(check("10.1.1.1:1883", SocketAddrUse::TcpConnect));
        assert!(!check("8.8.8.8:1883", SocketAddrUse::TcpConnect));
        assert!(!check("8.8.8.8:53", SocketAddrUse::UdpSend));
        assert!(check("0.0.0.0:1883", SocketAddrUse::TcpListen));
        assert!(!check("0.0.0.0:80", SocketAddrUse::TcpBind));
        assert!(check("0.0.0.0:0", SocketAddrUse::UdpBind));
        assert!(check("8.8.8.8:5000", SocketAddrUse::TcpAccept));
        let first = reported.lock().expect("reported")[0].clone();
        assert_eq!(first.usage, Use::Connect);
        assert_eq!(first.address.to_string(), "8.8.8.8:1883");
        assert_eq!(first.decided_by, "default");
        // A flood: the reports stop at the limit.
        for _ in 0..1000 {
            check("8.8.8.8:1883", SocketAddrUse::TcpConnect);
        }
        assert_eq!(reported.lock().expect("reported").len(), 10);
    }
}
