use super::*;

fn rules(connect: &[&str], listen: &[&str]) -> NetworkGrant {
    let parse = |list: &[&str]| {
        list.iter()
            .map(|r| r.parse().expect("a rule"))
            .collect::<Vec<AddressRule>>()
    };
    NetworkGrant::Rules(NetworkRules {
        connect: parse(connect),
        listen: parse(listen),
    })
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

#[test]
fn test_rules_match_networks_and_ports() {
    let grant = rules(
        &["10.20.0.0/16:1883", "127.0.0.1:*", "[fd00::/8]:8000-8099"],
        &["*:1883"],
    );
    let connect = |a: &str| grant.check(Use::Connect, addr(a));
    assert!(connect("10.20.3.4:1883").allowed);
    assert_eq!(connect("10.20.3.4:1883").decided_by, "10.20.0.0/16:1883");
    assert!(!connect("10.21.0.1:1883").allowed);
    assert!(!connect("10.20.3.4:1884").allowed);
    assert_eq!(connect("10.20.3.4:1884").decided_by, "default");
    assert!(connect("127.0.0.1:9").allowed);
    assert!(connect("[fd12::1]:8050").allowed);
    assert!(!connect("[fd12::1]:8100").allowed);
    assert!(!connect("[fe80::1]:8050").allowed);
    let listen = |a: &str| grant.check(Use::Listen, addr(a));
    assert!(listen("0.0.0.0:1883").allowed);
    assert!(listen("[::]:1883").allowed);
    assert!(!listen("0.0.0.0:80").allowed);
    // Connect rules say nothing about listening, and the reverse.
    assert!(!listen("127.0.0.1:9").allowed);
    assert!(!connect("10.0.0.1:1883").allowed);
}

#[test]
fn test_an_ipv4_mapped_address_is_its_ipv4_address() {
    let grant = rules(&["10.20.0.0/16:1883"], &[]);
    assert!(
        grant
            .check(Use::Connect, addr("[::ffff:10.20.0.9]:1883"))
            .allowed
    );
    let outside = grant.check(Use::Connect, addr("[::ffff:8.8.8.8]:1883"));
    assert!(!outside.allowed, "{outside:?}");
}

#[test]
fn test_defaults_and_the_gate_off() {
    let deny = NetworkGrant::from_decision(None, NetworkDefault::Deny);
    assert!(!deny.check(Use::Connect, addr("127.0.0.1:80")).allowed);
    assert!(!deny.check(Use::Listen, addr("0.0.0.0:80")).allowed);
    assert!(!deny.allows_name_lookup(&resolvers(None)));
    assert!(!deny.allows_any());
    let all = NetworkGrant::from_decision(None, NetworkDefault::Allow);
    assert_eq!(all, NetworkGrant::All);
    assert!(all.check(Use::Listen, addr("0.0.0.0:80")).allowed);
    // A section always wins over the default.
    let section = NetworkRules {
        connect: vec!["*:53".parse().expect("rule")],
        listen: vec![],
    };
    let granted = NetworkGrant::from_decision(Some(section), NetworkDefault::Allow);
    assert!(!granted.check(Use::Connect, addr("1.1.1.1:80")).allowed);
    assert!(granted.allows_name_lookup(&resolvers(Some("nameserver 9.9.9.9\n"))));
}

#[test]
fn test_bad_rules_are_named() {
    for (text, reason) in [
        ("10.0.0.0/33:80", "is not a CIDR network"),
        (
            "10.0.0.1/8:80",
            "has host bits set (did you mean 10.0.0.0/8?)",
        ),
        ("10.0.0.0/8:0", "port 0 is not in 1-65535"),
        ("10.0.0.0/8:65536", "port 65536 is not in 1-65535"),
        ("10.0.0.0/8:90-80", "port range 90-80 is empty"),
        ("10.0.0.0/8", "expected <network>:<port>"),
        (":80", "expected <network>:<port>"),
        ("fd00::/8:80", "must be in brackets"),
        ("[fd00::/8:80", "must be in brackets"),
        ("example.com:80", "is not an IP address"),
    ] {
        let err = text.parse::<AddressRule>().expect_err(text);
        assert_eq!(err.text, text);
        assert!(err.reason.contains(reason), "{text}: {err}");
    }
}

#[test]
fn test_rules_keep_their_text_through_json() {
    let section: NetworkRules = serde_json::from_str(
        r#"{"connect": ["10.20.0.0/16:1883", "127.0.0.1:*", "[::1]:80"], "listen": ["*:1883"]}"#,
    )
    .expect("a section");
    let text = serde_json::to_string(&section).expect("json");
    assert_eq!(
        text,
        r#"{"connect":["10.20.0.0/16:1883","127.0.0.1:*","[::1]:80"],"listen":["*:1883"]}"#
    );
    let err = serde_json::from_str::<NetworkRules>(r#"{"connect": ["10.0.0.0/8:x"]}"#)
        .expect_err("bad port");
    assert!(
        err.to_string().contains("port x is not in 1-65535"),
        "{err}"
    );
    let err = serde_json::from_str::<NetworkRules>(r#"{"egress": []}"#).expect_err("unknown");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn test_a_bind_to_port_0_is_a_clients_and_needs_a_grant() {
    let client = rules(&["10.20.0.0/16:1883"], &[]);
    assert!(client.check(Use::Listen, addr("0.0.0.0:0")).allowed);
    assert!(!client.check(Use::Listen, addr("0.0.0.0:1883")).allowed);
    let server = rules(&[], &["127.0.0.1:8080"]);
    assert!(server.check(Use::Listen, addr("127.0.0.1:0")).allowed);
    assert!(!server.check(Use::Listen, addr("10.0.0.1:0")).allowed);
    let nothing = NetworkGrant::from_decision(None, NetworkDefault::Deny);
    assert!(!nothing.check(Use::Listen, addr("0.0.0.0:0")).allowed);
}

#[test]
fn test_lookups_follow_the_resolvers_the_container_may_reach() {
    let conf = "# comment\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
                nameserver bogus\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 10.0.0.5\n";
    assert_eq!(
        resolvers(Some(conf)),
        vec![
            addr("10.0.0.2:53"),
            addr("[fe80::1]:53"),
            addr("10.0.0.3:53")
        ],
        "at most three, unreadable ones skipped"
    );
    assert_eq!(resolvers(None), vec![addr("127.0.0.1:53")]);
    assert_eq!(resolvers(Some("search x\n")), vec![addr("127.0.0.1:53")]);
    let grant = |rule: &str| {
        NetworkGrant::Rules(NetworkRules {
            connect: vec![rule.parse().expect("rule")],
            listen: vec![],
        })
    };
    // A connect rule elsewhere is not a lookup: the resolver must be
    // reachable, as the WasmEdge guard judges the resolver's own traffic.
    assert!(!grant("10.1.0.0/16:1883").allows_name_lookup(&resolvers(Some(conf))));
    assert!(grant("10.0.0.3:53").allows_name_lookup(&resolvers(Some(conf))));
    assert!(!grant("10.0.0.3:53").allows_name_lookup(&resolvers(None)));
    assert!(NetworkGrant::All.allows_name_lookup(&resolvers(None)));
}
