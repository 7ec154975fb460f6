//! What a Wasm container may connect to and listen on.
//!
//! Owns: the network section of a policy decision ([`NetworkRules`], in its
//! text form `"10.20.0.0/16:1883"`), the node's default when a decision has
//! none ([`NetworkDefault`]), what a container is finally granted
//! ([`NetworkGrant`]), and the one answer to "may this address be used"
//! ([`NetworkGrant::check`]) that every engine gives its module.
//!
//! Also: what a refusal says ([`Refusal`], sent from the container to its
//! shim, which logs it), the one rate limit both ends apply, and the
//! seccomp guard ([`guard`]) that holds an engine with no hook of its own
//! (WasmEdge) to the grant from below the runtime.
//!
//! Leaves out: how an engine with a hook uses it (the engine crate), how a
//! policy is evaluated (the policy crate), and writing the decision log.

pub mod guard;
mod report;
mod rule;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use report::{RateLimit, Refusal, ReportRefusal};
pub use rule::{AddressRule, RuleError};

/// A decision's `network` section: the addresses a container may connect
/// to (and send datagrams to) and those it may bind and listen on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRules {
    #[serde(default)]
    pub connect: Vec<AddressRule>,
    #[serde(default)]
    pub listen: Vec<AddressRule>,
}

/// What a decision without a network section means while the gate is on
/// (policy.toml `network_default`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDefault {
    /// No socket use at all.
    #[default]
    Deny,
    /// Every address, as with the gate off.
    Allow,
}

/// What a container may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkGrant {
    /// Every address (the gate is off, or `network_default = "allow"`
    /// with no section): as runwasi's shims allow it.
    All,
    /// Only what the rules name.
    Rules(NetworkRules),
}

/// How an address is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    /// Connect, or send a datagram to: the remote address.
    Connect,
    /// Bind (to listen, or to receive datagrams): the local address.
    Listen,
}

/// The answer for one address: allowed or not, and what decided it (a
/// rule's text, `"all"`, or `"default"` when no rule matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub decided_by: String,
}

impl Verdict {
    /// Allowed by the first rule that matched; refused by default when
    /// none did.
    fn first(matched: Option<&AddressRule>) -> Self {
        match matched {
            Some(rule) => Self {
                allowed: true,
                decided_by: rule.to_string(),
            },
            None => Self {
                allowed: false,
                decided_by: "default".into(),
            },
        }
    }
}

impl NetworkGrant {
    /// The grant for a decision: its section if it had one, else the
    /// node's default.
    pub fn from_decision(section: Option<NetworkRules>, default: NetworkDefault) -> Self {
        match (section, default) {
            (Some(rules), _) => Self::Rules(rules),
            (None, NetworkDefault::Allow) => Self::All,
            (None, NetworkDefault::Deny) => Self::Rules(NetworkRules::default()),
        }
    }

    /// Whether `address` may be used as `usage`; the first matching rule
    /// decides.
    pub fn check(&self, usage: Use, address: SocketAddr) -> Verdict {
        let rules = match self {
            Self::All => {
                return Verdict {
                    allowed: true,
                    decided_by: "all".into(),
                };
            }
            Self::Rules(rules) => rules,
        };
        // Port 0: the kernel picks a port, as for a client's implicit bind
        // before connect or send. The connect itself is checked; a bind for
        // it is allowed where the container may connect at all, or listen
        // on that address.
        if usage == Use::Listen && address.port() == 0 {
            let allowed = !rules.connect.is_empty()
                || rules.listen.iter().any(|rule| rule.covers_address(address));
            return Verdict {
                allowed,
                decided_by: if allowed { "ephemeral port" } else { "default" }.into(),
            };
        }
        let list = match usage {
            Use::Connect => &rules.connect,
            Use::Listen => &rules.listen,
        };
        Verdict::first(list.iter().find(|rule| rule.matches(address)))
    }

    /// Whether a socket bound to `local` may listen. A socket never bound
    /// (port 0) is bound by its `listen` to a port the kernel picks: only a
    /// rule that takes every port of the address covers that. The seccomp
    /// guard ([`guard`]) checks each `listen` here, with the address the
    /// kernel bound.
    pub fn check_listening(&self, local: SocketAddr) -> Verdict {
        let Self::Rules(rules) = self else {
            return self.check(Use::Listen, local);
        };
        if local.port() != 0 {
            return self.check(Use::Listen, local);
        }
        Verdict::first(
            rules
                .listen
                .iter()
                .find(|rule| rule.any_port() && rule.covers_address(local)),
        )
    }

    /// Whether names may be looked up through `resolvers` (the container's
    /// name servers, [`resolvers`]): when the container may connect to one
    /// of them. A lookup is traffic to the resolver, and this is the answer
    /// the WasmEdge shim's guard gives the resolver's own connects and
    /// sends, for an engine (Wasmtime) that can allow or deny lookups only
    /// as a whole.
    pub fn allows_name_lookup(&self, resolvers: &[SocketAddr]) -> bool {
        resolvers
            .iter()
            .any(|resolver| self.check(Use::Connect, *resolver).allowed)
    }

    /// Whether the container may use sockets at all.
    pub fn allows_any(&self) -> bool {
        match self {
            Self::All => true,
            Self::Rules(rules) => !rules.connect.is_empty() || !rules.listen.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests;

/// The name servers a resolver reads from `resolv_conf` (the text of a
/// container's `/etc/resolv.conf`, or `None` when it has none), on port 53:
/// its `nameserver` lines, at most three as glibc reads them
/// (`MAXNS`), or the local host's server when there are none, as glibc
/// falls back. resolv(5) is a line format with no library here; read by
/// hand.
pub fn resolvers(resolv_conf: Option<&str>) -> Vec<SocketAddr> {
    let mut servers: Vec<SocketAddr> = resolv_conf
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(address)) => {
                    // A scoped IPv6 address (`fe80::1%eth0`) is read
                    // without its scope.
                    let address = address.split('%').next().unwrap_or(address);
                    address.parse::<std::net::IpAddr>().ok()
                }
                _ => None,
            }
        })
        .take(3)
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    servers
}
