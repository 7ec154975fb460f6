//! One address rule and its text form: `<network>:<port>`.
//!
//! - network: `*` (any address, IPv4 or IPv6), an IPv4 address or CIDR
//!   (`10.20.0.0/16`, `127.0.0.1`), or an IPv6 one in brackets
//!   (`[fd00::/8]`, `[::1]`); an address without a prefix is that host;
//! - port: `*` (any), a port (`1883`) or an inclusive range (`8000-8099`),
//!   from 1 to 65535.
//!
//! Written by hand on `ipnet` (no crate parses this host:port-range form).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A rule: which addresses and ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddressRule {
    /// `None`: any address.
    network: Option<IpNet>,
    /// Inclusive; `1..=65535` for `*`.
    ports: (u16, u16),
}

/// Why a rule's text is not a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network rule {text:?}: {reason}")]
pub struct RuleError {
    pub text: String,
    pub reason: String,
}

impl AddressRule {
    /// Whether `address` is in the rule's network and port range.
    pub fn matches(&self, address: SocketAddr) -> bool {
        let port = address.port();
        let in_ports = self.ports.0 <= port && port <= self.ports.1;
        in_ports && self.covers_address(address)
    }

    /// Whether the rule takes every port (`*`).
    pub fn any_port(&self) -> bool {
        self.ports == (1, 65535)
    }

    /// Whether `address`'s IP is in the rule's network, whatever its port.
    pub fn covers_address(&self, address: SocketAddr) -> bool {
        self.network
            .is_none_or(|net| net.contains(&canonical(address.ip())))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address:
/// a module must not reach an IPv4 host an IPv4 rule denies through it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl FromStr for AddressRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, RuleError> {
        let fail = |reason: &str| RuleError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (network, ports) = text
            .rsplit_once(':')
            .filter(|(network, _)| !network.is_empty())
            .ok_or_else(|| fail("expected <network>:<port>, as in 10.0.0.0/8:1883 or *:*"))?;
        let network = if network == "*" {
            None
        } else {
            let bare = match network.strip_prefix('[') {
                Some(rest) => rest
                    .strip_suffix(']')
                    .ok_or_else(|| fail("an IPv6 network must be in brackets, as in [fd00::/8]"))?,
                None if network.contains(':') => {
                    return Err(fail(
                        "an IPv6 network must be in brackets, as in [fd00::/8]",
                    ));
                }
                None => network,
            };
            Some(parse_network(bare).map_err(|e| fail(&e))?)
        };
        let ports = parse_ports(ports).map_err(|e| fail(&e))?;
        Ok(Self { network, ports })
    }
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        let net = IpNet::from_str(text).map_err(|_| format!("{text} is not a CIDR network"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "{text} has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        IpAddr::from_str(text)
            .map(IpNet::from)
            .map_err(|_| format!("{text} is not an IP address"))
    }
}

fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {p} is not in 1-65535")),
        Ok(port) => Ok(port),
    };
    match text {
        "*" => Ok((1, u16::MAX)),
        range if range.contains('-') => {
            let (low, high) = range.split_once('-').unwrap_or_default();
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(format!("port range {range} is empty"));
            }
            Ok((low, high))
        }
        single => port(single).map(|p| (p, p)),
    }
}

impl TryFrom<String> for AddressRule {
    type Error = RuleError;

    fn try_from(text: String) -> Result<Self, RuleError> {
        text.parse()
    }
}

impl From<AddressRule> for String {
    fn from(rule: AddressRule) -> String {
        rule.to_string()
    }
}

impl fmt::Display for AddressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A single host is written as its address, as it is usually given.
        match self.network {
            None => write!(f, "*")?,
            Some(IpNet::V4(net)) if net.prefix_len() == 32 => write!(f, "{}", net.addr())?,
            Some(IpNet::V4(net)) => write!(f, "{net}")?,
            Some(IpNet::V6(net)) if net.prefix_len() == 128 => write!(f, "[{}]", net.addr())?,
            Some(IpNet::V6(net)) => write!(f, "[{net}]")?,
        }
        match self.ports {
            (1, u16::MAX) => write!(f, ":*"),
            (low, high) if low == high => write!(f, ":{low}"),
            (low, high) => write!(f, ":{low}-{high}"),
        }
    }
}
