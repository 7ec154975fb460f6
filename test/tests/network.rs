//! Sockets of Wasm containers, held to what the policy grants, under the
//! real containerd: a WASI 0.2 component on the Wasmtime shim connects
//! where its decision's network section allows, is refused elsewhere (the
//! refusal said on its stderr), and gets nothing without a section (the
//! suite's policy.toml keeps `network_default` at its default, deny).
//! The suite's policy (test/policy) grants containers with ids `net-...`
//! connects to 127.0.0.1:47811 only. Each refusal also reaches the decision
//! log, written by the shim for the container whose process reported it.

use std::net::TcpListener;

use edgeshim_integration::components::tcp_connect;
use edgeshim_integration::pods::LIMIT;
use edgeshim_integration::*;

/// The address the suite's policy grants `net-...` containers.
const GRANTED_PORT: u16 = 47811;

/// Runs the connect component to 127.0.0.1:`port` as container `id`, on
/// the host's network (no network namespace of its own).
fn connect_from(id: &str, port: u16) -> std::process::Output {
    let component = tcp_connect([127, 0, 0, 1], port);
    run_rm_with_spec(id, &[], &["/connect.wasm"], |spec| {
        let root = std::path::PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(&root).expect("rootfs");
        std::fs::write(root.join("connect.wasm"), &component).expect("component");
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
        }
    })
}

#[test]
fn test_a_component_connects_only_where_its_decision_allows() {
    if engine().name == "wasmedge" {
        // WasmEdge 0.14.1 runs no components: refused at create, by name.
        let out = connect_from("net-wasmedge", GRANTED_PORT);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("container net-wasmedge"),
            "{}",
            stderr(&out)
        );
        assert_no_leftovers("net-wasmedge");
        return;
    }
    let listener =
        TcpListener::bind(("127.0.0.1", GRANTED_PORT)).expect("the granted port is free");
    listener.set_nonblocking(true).expect("non-blocking");
    let out = connect_from("net-allowed", GRANTED_PORT);
    assert!(out.status.success(), "{}", stderr(&out));
    // The kernel completed the handshake for the listener's backlog.
    let mut peer = None;
    await_condition("the component's connection", LIMIT, || {
        peer = listener.accept().ok();
        peer.is_some()
    });
    let (_stream, from) = peer.expect("accepted");
    assert!(from.ip().is_loopback());
    assert_no_leftovers("net-allowed");

    // Another port of the same host: no rule matches.
    let out = connect_from("net-denied", GRANTED_PORT + 2);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "edgeshim: network: connect 127.0.0.1:{} refused by the policy (default)",
            GRANTED_PORT + 2
        )),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers("net-denied");
    // The shim names the container by the pid that reported the refusal,
    // and has logged it by the time the container is deleted.
    assert!(
        refusal_logged("net-denied", &format!("127.0.0.1:{}", GRANTED_PORT + 2)),
        "{}",
        decision_log()
    );

    // No network section: network_default, deny, even for the granted port.
    let out = connect_from("nonet-default", GRANTED_PORT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused by the policy"),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers("nonet-default");
}

/// Whether the decision log has the line for container `id` refused a
/// connect to `address` by no rule.
fn refusal_logged(id: &str, address: &str) -> bool {
    decision_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|l| {
            l["container"] == id
                && l["action"] == "connect"
                && l["address"] == address
                && l["rule"] == "default"
                && l["decision"] == "deny"
        })
}
