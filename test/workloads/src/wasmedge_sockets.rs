//! WASI preview 1 modules that use WasmEdge's socket extension
//! (`sock_open`, `sock_connect`, ... as WasmEdge 0.14.1 declares them, the
//! ABI `wasmedge_wasi_socket` programs use), written in WAT and compiled by
//! the tests: the WasmEdge shim's counterparts of [`crate::components`].
//!
//! Each exits with the WASI errno of the first call that failed (2 is
//! EACCES: refused by the network guard), 0 when all went through.

/// The socket calls the modules import (WasmEdge 0.14.1, version 1 ABI:
/// an address is a `{buf, buf_len}` pair in linear memory, 4 bytes for
/// IPv4; the port a separate argument).
const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "sock_open" (func $sock_open (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_connect" (func $sock_connect (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_bind" (func $sock_bind (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_listen" (func $sock_listen (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  ;; 0: socket; 4: accepted socket; 8: address {buf = 16, len = 4};
  ;; 16: its 4 bytes; 32: iovec; 40: count out; 44: flags out;
  ;; 1024: data.
  (data (i32.const 8) "\10\00\00\00\04\00\00\00")
  (func $check (param $errno i32)
    (if (local.get $errno) (then (call $exit (local.get $errno)))))
  ;; sock_open(AF_INET, SOCK_STREAM) into 0.
  (func $open_tcp
    (call $check (call $sock_open (i32.const 1) (i32.const 2) (i32.const 0))))
"#;

/// Connects to `address:port` and writes `bytes` (at most 4096).
pub fn tcp_send(address: [u8; 4], port: u16, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() <= 4096, "at most 4096 bytes");
    let text = format!(
        r#"(module {IMPORTS}
  (data (i32.const 16) "{address}")
  (data (i32.const 1024) "{data}")
  (func (export "_start") (local $off i32)
    (call $open_tcp)
    (call $check (call $sock_connect (i32.load (i32.const 0)) (i32.const 8) (i32.const {port})))
    (block $done (loop $more
      (br_if $done (i32.ge_u (local.get $off) (i32.const {len})))
      (i32.store (i32.const 32) (i32.add (i32.const 1024) (local.get $off)))
      (i32.store (i32.const 36) (i32.sub (i32.const {len}) (local.get $off)))
      (call $check (call $sock_send (i32.load (i32.const 0)) (i32.const 32) (i32.const 1)
        (i32.const 0) (i32.const 40)))
      (local.set $off (i32.add (local.get $off) (i32.load (i32.const 40))))
      (br $more)))))"#,
        address = escaped(&address),
        data = escaped(bytes),
        len = bytes.len(),
    );
    wat::parse_str(text).expect("the send module")
}

/// Connects to `address:port`; nothing sent.
pub fn tcp_connect(address: [u8; 4], port: u16) -> Vec<u8> {
    tcp_send(address, port, &[])
}

/// Serves one TCP connection on `0.0.0.0:port`: binds, listens, accepts,
/// and echoes what it reads until the peer closes.
pub fn tcp_echo_server(port: u16) -> Vec<u8> {
    tcp_echo_server_at([0, 0, 0, 0], port)
}

/// [`tcp_echo_server`] bound to `address:port`.
pub fn tcp_echo_server_at(address: [u8; 4], port: u16) -> Vec<u8> {
    echo(address, port, "(br $served)")
}

/// [`tcp_echo_server`] serving one connection after another, for ever
/// (the network bench's server).
pub fn tcp_echo_server_forever(port: u16) -> Vec<u8> {
    echo(
        [0, 0, 0, 0],
        port,
        "(call $check (call $fd_close (i32.load (i32.const 4)))) (br $next)",
    )
}

/// The echo server; `on_close` ends a connection the peer closed.
fn echo(address: [u8; 4], port: u16, on_close: &str) -> Vec<u8> {
    let text = format!(
        r#"(module {IMPORTS}
  (data (i32.const 16) "{address}")
  (func (export "_start")
    (call $open_tcp)
    (call $check (call $sock_bind (i32.load (i32.const 0)) (i32.const 8) (i32.const {port})))
    (call $check (call $sock_listen (i32.load (i32.const 0)) (i32.const 16)))
    (block $served (loop $next
      (call $check (call $sock_accept (i32.load (i32.const 0)) (i32.const 4)))
      (loop $more
        (i32.store (i32.const 32) (i32.const 1024))
        (i32.store (i32.const 36) (i32.const 4096))
        (call $check (call $sock_recv (i32.load (i32.const 4)) (i32.const 32) (i32.const 1)
          (i32.const 0) (i32.const 40) (i32.const 44)))
        (if (i32.eqz (i32.load (i32.const 40))) (then {on_close}))
        (i32.store (i32.const 36) (i32.load (i32.const 40)))
        (call $check (call $sock_send (i32.load (i32.const 4)) (i32.const 32) (i32.const 1)
          (i32.const 0) (i32.const 40)))
        (br $more))))))"#,
        address = escaped(&address),
    );
    wat::parse_str(text).expect("the echo module")
}

/// Tries `times` connects to `address:port`, each on a new socket closed
/// after: exit status 0 when every one was refused with EACCES; the errno
/// of the first call that did otherwise (1 for a connect that went
/// through).
pub fn tcp_connect_flood(address: [u8; 4], port: u16, times: u32) -> Vec<u8> {
    let text = format!(
        r#"(module {IMPORTS}
  (data (i32.const 16) "{address}")
  (func (export "_start") (local $i i32) (local $errno i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
      (call $open_tcp)
      (local.set $errno
        (call $sock_connect (i32.load (i32.const 0)) (i32.const 8) (i32.const {port})))
      (if (i32.eqz (local.get $errno)) (then (call $exit (i32.const 1))))
      (if (i32.ne (local.get $errno) (i32.const 2)) (then (call $exit (local.get $errno))))
      (call $check (call $fd_close (i32.load (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))))"#,
        address = escaped(&address),
    );
    wat::parse_str(text).expect("the flood module")
}

/// `bytes` as a WAT string's escapes.
fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_the_modules_are_well_formed_text() {
        assert!(super::tcp_connect([127, 0, 0, 1], 80).starts_with(b"\0asm"));
        assert!(super::tcp_echo_server(7000).starts_with(b"\0asm"));
        assert!(super::tcp_echo_server_forever(7000).starts_with(b"\0asm"));
        assert!(super::tcp_connect_flood([127, 0, 0, 2], 80, 3).starts_with(b"\0asm"));
    }
}
