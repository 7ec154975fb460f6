//! WASI 0.2 components for the integration suite, written in the component
//! model's text format and compiled by the tests (`wat`): no Rust wasm32
//! target or component tool chain exists here, and nothing built is
//! committed.

/// A `wasi:cli/command` component serving one TCP connection on
/// `0.0.0.0:port`: it binds, listens, accepts (waiting on the socket's
/// pollable), and echoes what it reads until the peer closes; exit status
/// 0 then, 1 on any failure (a refused bind or listen included).
pub fn tcp_echo_server(port: u16) -> Vec<u8> {
    tcp_echo_server_at([0, 0, 0, 0], port)
}

/// [`tcp_echo_server`] bound to `address:port`. A failed step is said on
/// stdout (`step 2 error-code 12`: start-bind, address-in-use).
pub fn tcp_echo_server_at(address: [u8; 4], port: u16) -> Vec<u8> {
    let text = with_address(ECHO_TEMPLATE, address, port).replace("{ON_CLOSE}", ON_CLOSE_EXIT);
    wat::parse_str(text).expect("the echo component")
}

/// [`tcp_echo_server`] serving one connection after another, for ever
/// (the network bench's server).
pub fn tcp_echo_server_forever(port: u16) -> Vec<u8> {
    let text = with_address(ECHO_TEMPLATE, [0, 0, 0, 0], port).replace("{ON_CLOSE}", ON_CLOSE_NEXT);
    wat::parse_str(text).expect("the echo component")
}

/// The echo's end of a connection (the read failed; 1 is `closed`): exit,
/// 0 when the peer closed.
const ON_CLOSE_EXIT: &str = "(return (select (i32.const 0) (i32.const 7)
            (i32.eq (i32.load8_u (i32.const 132)) (i32.const 1))))";

/// Or, when the peer closed, drop the connection's streams and socket and
/// accept the next.
const ON_CLOSE_NEXT: &str = "(if (i32.ne (i32.load8_u (i32.const 132)) (i32.const 1))
            (then (return (i32.const 7))))
          (call $drop-input (local.get $in))
          (call $drop-output (local.get $out))
          (call $drop-socket (i32.load (i32.const 100)))
          (br $next)";

/// `template` with its imports, `$fail`, and `address:port` filled in.
fn with_address(template: &str, [a, b, c, d]: [u8; 4], port: u16) -> String {
    template
        .replace("{IMPORTS}", SOCKET_IMPORTS)
        .replace("{MEMORY}", WAT_MEMORY)
        .replace("{FAIL}", FAIL)
        .replace("{PORT}", &port.to_string())
        .replace("{A}", &a.to_string())
        .replace("{B}", &b.to_string())
        .replace("{C}", &c.to_string())
        .replace("{D}", &d.to_string())
}

/// A component that tries `times` connects to `address:port`, each on a
/// new socket dropped after: exit status 0 when every one was refused
/// (access-denied), else 1 with the step said on stdout.
pub fn tcp_connect_flood(address: [u8; 4], port: u16, times: u32) -> Vec<u8> {
    let text = with_address(
        &CONNECT_TEMPLATE.replace("{BODY}", FLOOD_BODY),
        address,
        port,
    )
    .replace("{TIMES}", &times.to_string());
    wat::parse_str(text).expect("the flood component")
}

/// A `wasi:cli/command` component that connects to `a.b.c.d:port` and
/// writes `bytes` (at most 4096: one `blocking-write-and-flush`); exit
/// status 0 once written, 1 when refused or failed.
pub fn tcp_send(address: [u8; 4], port: u16, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() <= 4096, "one write carries at most 4096 bytes");
    let data: String = bytes.iter().map(|byte| format!("\\{byte:02x}")).collect();
    let text = with_address(
        &CONNECT_TEMPLATE.replace("{BODY}", SEND_BODY),
        address,
        port,
    )
    .replace("{DATA}", &data)
    .replace("{LEN}", &bytes.len().to_string());
    wat::parse_str(text).expect("the send component")
}

/// A `wasi:cli/command` component that opens a TCP socket and connects to
/// `a.b.c.d:port` through `wasi:sockets`: exit status 0 once connected, 1
/// when refused (the policy's check answers `start-connect` itself, with
/// `access-denied`) or the connect failed. [`tcp_send`] with nothing to
/// send.
pub fn tcp_connect(address: [u8; 4], port: u16) -> Vec<u8> {
    tcp_send(address, port, &[])
}

/// The WASI 0.2.0 interfaces both components import, as wasmtime-wasi
/// declares them, reduced to the functions they call.
const SOCKET_IMPORTS: &str = r#"
  (import "wasi:io/error@0.2.0" (instance $ioerror
    (export "error" (type (sub resource)))))
  (alias export $ioerror "error" (type $error))
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer $C $error (type $e))
    (export "error" (type $ee (eq $e)))
    (export "input-stream" (type $in (sub resource)))
    (export "output-stream" (type $out (sub resource)))
    (type $se (variant (case "last-operation-failed" (own $ee)) (case "closed")))
    (export "stream-error" (type $see (eq $se)))
    (export "[method]input-stream.blocking-read" (func (param "self" (borrow $in))
      (param "len" u64) (result (result (list u8) (error $see)))))
    (export "[method]output-stream.blocking-write-and-flush" (func (param "self" (borrow $out))
      (param "contents" (list u8)) (result (result (error $see)))))))
  (alias export $streams "input-stream" (type $input))
  (alias export $streams "output-stream" (type $output))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer $C $output (type $o))
    (export "output-stream" (type $oe (eq $o)))
    (export "get-stdout" (func (result (own $oe))))))
  (import "wasi:sockets/network@0.2.0" (instance $net
    (export "network" (type (sub resource)))
    (type $ec (enum "unknown" "access-denied" "not-supported" "invalid-argument"
      "out-of-memory" "timeout" "concurrency-conflict" "not-in-progress" "would-block"
      "invalid-state" "new-socket-limit" "address-not-bindable" "address-in-use"
      "remote-unreachable" "connection-refused" "connection-reset" "connection-aborted"
      "datagram-too-large" "name-unresolvable" "temporary-resolver-failure"
      "permanent-resolver-failure"))
    (export "error-code" (type (eq $ec)))
    (type $fam (enum "ipv4" "ipv6"))
    (export "ip-address-family" (type (eq $fam)))
    (type $v4 (tuple u8 u8 u8 u8))
    (export "ipv4-address" (type $v4e (eq $v4)))
    (type $v6 (tuple u16 u16 u16 u16 u16 u16 u16 u16))
    (export "ipv6-address" (type $v6e (eq $v6)))
    (type $ia (variant (case "ipv4" $v4e) (case "ipv6" $v6e)))
    (export "ip-address" (type (eq $ia)))
    (type $sa4 (record (field "port" u16) (field "address" $v4e)))
    (export "ipv4-socket-address" (type $sa4e (eq $sa4)))
    (type $sa6 (record (field "port" u16) (field "flow-info" u32) (field "address" $v6e)
      (field "scope-id" u32)))
    (export "ipv6-socket-address" (type $sa6e (eq $sa6)))
    (type $sa (variant (case "ipv4" $sa4e) (case "ipv6" $sa6e)))
    (export "ip-socket-address" (type (eq $sa)))))
  (alias export $net "network" (type $network))
  (alias export $net "error-code" (type $error-code))
  (alias export $net "ip-address-family" (type $family))
  (alias export $net "ip-socket-address" (type $address))
  (alias export $net "ip-address" (type $ip-address))
  (import "wasi:sockets/instance-network@0.2.0" (instance $inet
    (alias outer $C $network (type $n))
    (export "network" (type $ne (eq $n)))
    (export "instance-network" (func (result (own $ne))))))
  (import "wasi:sockets/tcp@0.2.0" (instance $tcp
    (alias outer $C $network (type $n))
    (export "network" (type $ne (eq $n)))
    (alias outer $C $error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (alias outer $C $address (type $a))
    (export "ip-socket-address" (type $ae (eq $a)))
    (alias outer $C $input (type $i))
    (export "input-stream" (type $ie (eq $i)))
    (alias outer $C $output (type $o))
    (export "output-stream" (type $oe (eq $o)))
    (alias outer $C $pollable (type $p))
    (export "pollable" (type $pe (eq $p)))
    (export "tcp-socket" (type $sock (sub resource)))
    (export "[method]tcp-socket.start-bind" (func (param "self" (borrow $sock))
      (param "network" (borrow $ne)) (param "local-address" $ae) (result (result (error $ee)))))
    (export "[method]tcp-socket.finish-bind" (func (param "self" (borrow $sock))
      (result (result (error $ee)))))
    (export "[method]tcp-socket.start-connect" (func (param "self" (borrow $sock))
      (param "network" (borrow $ne)) (param "remote-address" $ae) (result (result (error $ee)))))
    (export "[method]tcp-socket.finish-connect" (func (param "self" (borrow $sock))
      (result (result (tuple (own $ie) (own $oe)) (error $ee)))))
    (export "[method]tcp-socket.start-listen" (func (param "self" (borrow $sock))
      (result (result (error $ee)))))
    (export "[method]tcp-socket.finish-listen" (func (param "self" (borrow $sock))
      (result (result (error $ee)))))
    (export "[method]tcp-socket.accept" (func (param "self" (borrow $sock))
      (result (result (tuple (own $sock) (own $ie) (own $oe)) (error $ee)))))
    (export "[method]tcp-socket.subscribe" (func (param "self" (borrow $sock))
      (result (own $pe))))))
  (alias export $tcp "tcp-socket" (type $tcp-socket))
  (import "wasi:sockets/tcp-create-socket@0.2.0" (instance $create
    (alias outer $C $error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (alias outer $C $family (type $f))
    (export "ip-address-family" (type $fe (eq $f)))
    (alias outer $C $tcp-socket (type $s))
    (export "tcp-socket" (type $se (eq $s)))
    (export "create-tcp-socket" (func (param "address-family" $fe)
      (result (result (own $se) (error $ee)))))))
{MEMORY}
  (core instance $mem (instantiate $mem))
  (core func $instance-network (canon lower (func $inet "instance-network")))
  (core func $create-tcp-socket (canon lower (func $create "create-tcp-socket")
    (memory (core memory $mem "memory"))))
  (core func $write (canon lower (func $streams "[method]output-stream.blocking-write-and-flush")
    (memory (core memory $mem "memory"))))
  (core func $get-stdout (canon lower (func $stdout "get-stdout")))
"#;

/// The WAT guests' memory, and an allocator for lists the host returns:
/// one buffer at 4096 (a test guest reads at most 1024 bytes at a time).
const WAT_MEMORY: &str = r#"
  (core module $mem
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (if (i32.gt_u (local.get 3) (i32.const 60000)) (then unreachable))
      (i32.const 4096)))"#;

/// The C publisher's memory: its own data and stack in the first four
/// pages (it is linked with `--initial-memory` of four pages), and a bump
/// allocator over the fifth for what the host returns (the arguments, the
/// broker's CONNACK): a short-lived guest never frees.
const C_MEMORY: &str = r#"
  (core module $mem
    (memory (export "memory") 5)
    (global $next (mut i32) (i32.const 262144))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (local $at i32)
      (if (local.get 1) (then unreachable))
      (local.set $at (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (if (i32.gt_u (global.get $next) (i32.const 327680)) (then unreachable))
      (local.get $at)))"#;

/// The MQTT publisher (modules/mqtt.c) as a `wasi:cli/command` component,
/// run as `mqtt.wasm A.B.C.D PORT SECONDS TOPIC`.
pub fn mqtt_publisher() -> Vec<u8> {
    c_component("mqtt-core.wasm")
}

/// The network probe (modules/netprobe.c) as a `wasi:cli/command`
/// component: `netprobe.wasm udp A.B.C.D PORT MESSAGE` sends a datagram,
/// `netprobe.wasm lookup NAME` resolves a name, `netprobe.wasm http
/// SCHEME AUTHORITY PATH` GETs over `wasi:http`.
pub fn netprobe() -> Vec<u8> {
    c_component("netprobe-core.wasm")
}

/// A C guest (modules/net.h's NET_WASI_SOCKETS build, made by build.rs as
/// the core module `core`) as a component: the core module is printed as
/// text (wasmprinter) into a component that lowers the `wasi:sockets`,
/// `wasi:io` and `wasi:cli` functions it imports from `net`.
fn c_component(core: &str) -> Vec<u8> {
    let bytes = std::fs::read(crate::built(core)).unwrap_or_else(|e| panic!("{core}: {e}"));
    let text = wasmprinter::print_bytes(&bytes).expect("the C module as text");
    let main = text.replacen("(module", "(core module $main", 1);
    let component = C_TEMPLATE
        .replace("{IMPORTS}", SOCKET_IMPORTS)
        .replace("{MEMORY}", C_MEMORY)
        .replace("{MAIN}", &main);
    wat::parse_str(component).unwrap_or_else(|e| panic!("the component around {core}: {e}"))
}

/// The component around a C guest (see [`c_component`]): every function
/// net.h may import, lowered (`wasi:sockets`, `wasi:http`'s types and
/// outgoing handler, `wasi:io`, `wasi:cli`); a guest imports those it
/// calls. The `wasi:http` types are wasmtime-wasi-http's, reduced to the
/// functions net.h calls (`error-code` whole: a variant is matched case by
/// case).
const C_TEMPLATE: &str = r#"(component $C
{IMPORTS}
  (import "wasi:cli/environment@0.2.0" (instance $environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:sockets/udp@0.2.0" (instance $udp
    (alias outer $C $network (type $n))
    (export "network" (type $ne (eq $n)))
    (alias outer $C $error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (alias outer $C $address (type $a))
    (export "ip-socket-address" (type $ae (eq $a)))
    (alias outer $C $pollable (type $p))
    (export "pollable" (type $pe (eq $p)))
    (type $og (record (field "data" (list u8)) (field "remote-address" (option $ae))))
    (export "outgoing-datagram" (type $oge (eq $og)))
    (export "udp-socket" (type $sock (sub resource)))
    (export "incoming-datagram-stream" (type $ids (sub resource)))
    (export "outgoing-datagram-stream" (type $ods (sub resource)))
    (export "[method]udp-socket.start-bind" (func (param "self" (borrow $sock))
      (param "network" (borrow $ne)) (param "local-address" $ae) (result (result (error $ee)))))
    (export "[method]udp-socket.finish-bind" (func (param "self" (borrow $sock))
      (result (result (error $ee)))))
    (export "[method]udp-socket.stream" (func (param "self" (borrow $sock))
      (param "remote-address" (option $ae))
      (result (result (tuple (own $ids) (own $ods)) (error $ee)))))
    (export "[method]outgoing-datagram-stream.check-send" (func (param "self" (borrow $ods))
      (result (result u64 (error $ee)))))
    (export "[method]outgoing-datagram-stream.send" (func (param "self" (borrow $ods))
      (param "datagrams" (list $oge)) (result (result u64 (error $ee)))))
    (export "[method]outgoing-datagram-stream.subscribe" (func (param "self" (borrow $ods))
      (result (own $pe))))))
  (alias export $udp "udp-socket" (type $udp-socket))
  (import "wasi:sockets/udp-create-socket@0.2.0" (instance $udp-create
    (alias outer $C $error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (alias outer $C $family (type $f))
    (export "ip-address-family" (type $fe (eq $f)))
    (alias outer $C $udp-socket (type $s))
    (export "udp-socket" (type $se (eq $s)))
    (export "create-udp-socket" (func (param "address-family" $fe)
      (result (result (own $se) (error $ee)))))))
  (import "wasi:sockets/ip-name-lookup@0.2.0" (instance $lookup
    (alias outer $C $network (type $n))
    (export "network" (type $ne (eq $n)))
    (alias outer $C $error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (alias outer $C $ip-address (type $i))
    (export "ip-address" (type $ie (eq $i)))
    (alias outer $C $pollable (type $p))
    (export "pollable" (type $pe (eq $p)))
    (export "resolve-address-stream" (type $ras (sub resource)))
    (export "resolve-addresses" (func (param "network" (borrow $ne)) (param "name" string)
      (result (result (own $ras) (error $ee)))))
    (export "[method]resolve-address-stream.resolve-next-address" (func
      (param "self" (borrow $ras)) (result (result (option $ie) (error $ee)))))
    (export "[method]resolve-address-stream.subscribe" (func (param "self" (borrow $ras))
      (result (own $pe))))))
  (import "wasi:http/types@0.2.0" (instance $http
    (alias outer $C $input (type $i))
    (export "input-stream" (type $ie (eq $i)))
    (alias outer $C $pollable (type $p))
    (export "pollable" (type $pe (eq $p)))
    (type $dns (record (field "rcode" (option string)) (field "info-code" (option u16))))
    (export "DNS-error-payload" (type $dnse (eq $dns)))
    (type $tls (record (field "alert-id" (option u8)) (field "alert-message" (option string))))
    (export "TLS-alert-received-payload" (type $tlse (eq $tls)))
    (type $fsp (record (field "field-name" (option string)) (field "field-size" (option u32))))
    (export "field-size-payload" (type $fspe (eq $fsp)))
    (type $ec (variant
      (case "DNS-timeout") (case "DNS-error" $dnse) (case "destination-not-found")
      (case "destination-unavailable") (case "destination-IP-prohibited")
      (case "destination-IP-unroutable") (case "connection-refused")
      (case "connection-terminated") (case "connection-timeout")
      (case "connection-read-timeout") (case "connection-write-timeout")
      (case "connection-limit-reached") (case "TLS-protocol-error")
      (case "TLS-certificate-error") (case "TLS-alert-received" $tlse)
      (case "HTTP-request-denied") (case "HTTP-request-length-required")
      (case "HTTP-request-body-size" (option u64)) (case "HTTP-request-method-invalid")
      (case "HTTP-request-URI-invalid") (case "HTTP-request-URI-too-long")
      (case "HTTP-request-header-section-size" (option u32))
      (case "HTTP-request-header-size" (option $fspe))
      (case "HTTP-request-trailer-section-size" (option u32))
      (case "HTTP-request-trailer-size" $fspe) (case "HTTP-response-incomplete")
      (case "HTTP-response-header-section-size" (option u32))
      (case "HTTP-response-header-size" $fspe) (case "HTTP-response-body-size" (option u64))
      (case "HTTP-response-trailer-section-size" (option u32))
      (case "HTTP-response-trailer-size" $fspe)
      (case "HTTP-response-transfer-coding" (option string))
      (case "HTTP-response-content-coding" (option string)) (case "HTTP-response-timeout")
      (case "HTTP-upgrade-failed") (case "HTTP-protocol-error") (case "loop-detected")
      (case "configuration-error") (case "internal-error" (option string))))
    (export "error-code" (type $ece (eq $ec)))
    (type $sc (variant (case "HTTP") (case "HTTPS") (case "other" string)))
    (export "scheme" (type $sce (eq $sc)))
    (export "fields" (type $fields (sub resource)))
    (export "outgoing-request" (type $req (sub resource)))
    (export "request-options" (type $opts (sub resource)))
    (export "future-incoming-response" (type $fut (sub resource)))
    (export "incoming-response" (type $res (sub resource)))
    (export "incoming-body" (type $body (sub resource)))
    (export "[constructor]fields" (func (result (own $fields))))
    (export "[constructor]outgoing-request" (func (param "headers" (own $fields))
      (result (own $req))))
    (export "[method]outgoing-request.set-scheme" (func (param "self" (borrow $req))
      (param "scheme" (option $sce)) (result (result))))
    (export "[method]outgoing-request.set-authority" (func (param "self" (borrow $req))
      (param "authority" (option string)) (result (result))))
    (export "[method]outgoing-request.set-path-with-query" (func (param "self" (borrow $req))
      (param "path-with-query" (option string)) (result (result))))
    (export "[method]future-incoming-response.subscribe" (func (param "self" (borrow $fut))
      (result (own $pe))))
    (export "[method]future-incoming-response.get" (func (param "self" (borrow $fut))
      (result (option (result (result (own $res) (error $ece)))))))
    (export "[method]incoming-response.status" (func (param "self" (borrow $res)) (result u16)))
    (export "[method]incoming-response.consume" (func (param "self" (borrow $res))
      (result (result (own $body)))))
    (export "[method]incoming-body.stream" (func (param "self" (borrow $body))
      (result (result (own $ie)))))))
  (alias export $http "outgoing-request" (type $outgoing-request))
  (alias export $http "request-options" (type $request-options))
  (alias export $http "future-incoming-response" (type $future-incoming-response))
  (alias export $http "error-code" (type $http-error-code))
  (import "wasi:http/outgoing-handler@0.2.0" (instance $outgoing
    (alias outer $C $outgoing-request (type $r))
    (export "outgoing-request" (type $re (eq $r)))
    (alias outer $C $request-options (type $o))
    (export "request-options" (type $oe (eq $o)))
    (alias outer $C $future-incoming-response (type $f))
    (export "future-incoming-response" (type $fe (eq $f)))
    (alias outer $C $http-error-code (type $e))
    (export "error-code" (type $ee (eq $e)))
    (export "handle" (func (param "request" (own $re)) (param "options" (option (own $oe)))
      (result (result (own $fe) (error $ee)))))))
  (core func $http-fields (canon lower (func $http "[constructor]fields")))
  (core func $http-outgoing-request (canon lower (func $http "[constructor]outgoing-request")))
  (core func $http-set-scheme (canon lower (func $http "[method]outgoing-request.set-scheme")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $http-set-authority (canon lower
    (func $http "[method]outgoing-request.set-authority")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $http-set-path (canon lower
    (func $http "[method]outgoing-request.set-path-with-query")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $http-handle (canon lower (func $outgoing "handle")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $http-future-subscribe (canon lower
    (func $http "[method]future-incoming-response.subscribe")))
  (core func $http-future-get (canon lower (func $http "[method]future-incoming-response.get")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $http-status (canon lower (func $http "[method]incoming-response.status")))
  (core func $http-consume (canon lower (func $http "[method]incoming-response.consume")
    (memory (core memory $mem "memory"))))
  (core func $http-body-stream (canon lower (func $http "[method]incoming-body.stream")
    (memory (core memory $mem "memory"))))
  (core func $start-connect (canon lower (func $tcp "[method]tcp-socket.start-connect")
    (memory (core memory $mem "memory"))))
  (core func $finish-connect (canon lower (func $tcp "[method]tcp-socket.finish-connect")
    (memory (core memory $mem "memory"))))
  (core func $subscribe (canon lower (func $tcp "[method]tcp-socket.subscribe")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $read (canon lower (func $streams "[method]input-stream.blocking-read")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $get-arguments (canon lower (func $environment "get-arguments")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $create-udp-socket (canon lower (func $udp-create "create-udp-socket")
    (memory (core memory $mem "memory"))))
  (core func $udp-start-bind (canon lower (func $udp "[method]udp-socket.start-bind")
    (memory (core memory $mem "memory"))))
  (core func $udp-finish-bind (canon lower (func $udp "[method]udp-socket.finish-bind")
    (memory (core memory $mem "memory"))))
  (core func $udp-stream (canon lower (func $udp "[method]udp-socket.stream")
    (memory (core memory $mem "memory"))))
  (core func $udp-check-send (canon lower
    (func $udp "[method]outgoing-datagram-stream.check-send") (memory (core memory $mem "memory"))))
  (core func $udp-send (canon lower (func $udp "[method]outgoing-datagram-stream.send")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $udp-subscribe (canon lower
    (func $udp "[method]outgoing-datagram-stream.subscribe")))
  (core func $resolve-addresses (canon lower (func $lookup "resolve-addresses")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core func $resolve-next-address (canon lower
    (func $lookup "[method]resolve-address-stream.resolve-next-address")
    (memory (core memory $mem "memory"))))
  (core func $resolve-subscribe (canon lower
    (func $lookup "[method]resolve-address-stream.subscribe")))
  ;; wasi-libc's snprintf object refers to stdio's file functions; the
  ;; guests never call them (they write through `net`), so they trap, and
  ;; the component imports no WASI preview 1.
  (core module $never
    (func (export "fd_write") (param i32 i32 i32 i32) (result i32) unreachable)
    (func (export "fd_seek") (param i32 i64 i32 i32) (result i32) unreachable)
    (func (export "fd_close") (param i32) (result i32) unreachable))
  (core instance $never (instantiate $never))
{MAIN}
  (core instance $main (instantiate $main
    (with "env" (instance $mem))
    (with "wasi_snapshot_preview1" (instance $never))
    (with "net" (instance
      (export "instance-network" (func $instance-network))
      (export "create-tcp-socket" (func $create-tcp-socket))
      (export "start-connect" (func $start-connect))
      (export "finish-connect" (func $finish-connect))
      (export "subscribe" (func $subscribe))
      (export "block" (func $block))
      (export "drop-pollable" (func $drop-pollable))
      (export "write" (func $write))
      (export "read" (func $read))
      (export "get-stdout" (func $get-stdout))
      (export "get-arguments" (func $get-arguments))
      (export "create-udp-socket" (func $create-udp-socket))
      (export "udp-start-bind" (func $udp-start-bind))
      (export "udp-finish-bind" (func $udp-finish-bind))
      (export "udp-stream" (func $udp-stream))
      (export "udp-check-send" (func $udp-check-send))
      (export "udp-send" (func $udp-send))
      (export "udp-subscribe" (func $udp-subscribe))
      (export "resolve-addresses" (func $resolve-addresses))
      (export "resolve-next-address" (func $resolve-next-address))
      (export "resolve-subscribe" (func $resolve-subscribe))
      (export "http-fields" (func $http-fields))
      (export "http-outgoing-request" (func $http-outgoing-request))
      (export "http-set-scheme" (func $http-set-scheme))
      (export "http-set-authority" (func $http-set-authority))
      (export "http-set-path" (func $http-set-path))
      (export "http-handle" (func $http-handle))
      (export "http-future-subscribe" (func $http-future-subscribe))
      (export "http-future-get" (func $http-future-get))
      (export "http-status" (func $http-status))
      (export "http-consume" (func $http-consume))
      (export "http-body-stream" (func $http-body-stream))))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $api (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $api)))"#;

/// In a guest's core module: `$fail`, which says on stdout which step
/// failed with which `error-code` (its number in `wasi:sockets/network`'s
/// enum, two digits: 01 access-denied, 12 address-in-use, 14
/// connection-refused) and returns the step.
const FAIL: &str = r#"
    (import "net" "get-stdout" (func $get-stdout (result i32)))
    (data (i32.const 12288) "step 0 error-code 00\n")
    (func $fail (param $step i32) (param $code i32) (result i32)
      (i32.store8 (i32.const 12293) (i32.add (i32.const 48) (local.get $step)))
      (i32.store8 (i32.const 12306) (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
      (i32.store8 (i32.const 12307) (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
      (call $write (call $get-stdout) (i32.const 12288) (i32.const 21) (i32.const 12320))
      (local.get $step))
"#;

/// A client component: the socket functions it calls, and `run`, which
/// calls {BODY}'s `$body` (0: success, else the failed step).
const CONNECT_TEMPLATE: &str = r#"(component $C
{IMPORTS}
  (core func $start-connect (canon lower (func $tcp "[method]tcp-socket.start-connect")
    (memory (core memory $mem "memory"))))
  (core func $finish-connect (canon lower (func $tcp "[method]tcp-socket.finish-connect")
    (memory (core memory $mem "memory"))))
  (core func $drop-socket (canon resource.drop $tcp-socket))
  (core module $main
    (import "mem" "memory" (memory 1))
    (import "net" "instance-network" (func $instance-network (result i32)))
    (import "net" "create-tcp-socket" (func $create (param i32 i32)))
    (import "net" "start-connect" (func $connect (param i32 i32 i32 i32 i32 i32 i32 i32
      i32 i32 i32 i32 i32 i32 i32)))
    (import "net" "finish-connect" (func $finish (param i32 i32)))
    (import "net" "drop-socket" (func $drop-socket (param i32)))
    (import "net" "write" (func $write (param i32 i32 i32 i32)))
{FAIL}
    (func (export "run") (result i32) (i32.ne (call $body) (i32.const 0)))
{BODY}
  )
  (core instance $main (instantiate $main
    (with "mem" (instance $mem))
    (with "net" (instance
      (export "instance-network" (func $instance-network))
      (export "create-tcp-socket" (func $create-tcp-socket))
      (export "start-connect" (func $start-connect))
      (export "finish-connect" (func $finish-connect))
      (export "drop-socket" (func $drop-socket))
      (export "write" (func $write))
      (export "get-stdout" (func $get-stdout))))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $api (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $api)))"#;

/// The body of [`tcp_send`]: connect to {A}.{B}.{C}.{D}:{PORT} (`create-tcp-socket`,
/// `start-connect`, then `finish-connect` until it stops saying would-block), then
/// write {LEN} bytes of {DATA}; results through memory (canonical ABI).
const SEND_BODY: &str = r#"    (data (i32.const 8192) "{DATA}")
    (func $body (result i32) (local $network i32) (local $socket i32)
      (local.set $network (call $instance-network))
      (call $create (i32.const 0) (i32.const 16))
      (if (i32.load8_u (i32.const 16)) (then (return (call $fail (i32.const 1) (i32.load8_u (i32.const 20))))))
      (local.set $socket (i32.load (i32.const 20)))
      (call $connect (local.get $socket) (local.get $network) (i32.const 0)
        (i32.const {PORT}) (i32.const {A}) (i32.const {B}) (i32.const {C}) (i32.const {D})
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 32))
      (if (i32.load8_u (i32.const 32)) (then (return (call $fail (i32.const 2) (i32.load8_u (i32.const 33))))))
      (block $connected (loop $again
        (call $finish (local.get $socket) (i32.const 48))
        (br_if $connected (i32.eqz (i32.load8_u (i32.const 48))))
        (if (i32.ne (i32.load8_u (i32.const 52)) (i32.const 8))
          (then (return (call $fail (i32.const 3) (i32.load8_u (i32.const 52))))))
        (br $again)))
      ;; finish-connect's streams: input at 52, output at 56
      (call $write (i32.load (i32.const 56)) (i32.const 8192) (i32.const {LEN}) (i32.const 64))
      (if (i32.load8_u (i32.const 64)) (then (return (call $fail (i32.const 4) (i32.const 0)))))
      (i32.const 0))
"#;

/// The body of [`tcp_connect_flood`]: {TIMES} connects.
const FLOOD_BODY: &str = r#"    (func $body (result i32) (local $network i32) (local $socket i32) (local $i i32)
      (local $code i32)
      (local.set $network (call $instance-network))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const {TIMES})))
        (call $create (i32.const 0) (i32.const 16))
        (if (i32.load8_u (i32.const 16)) (then (return (call $fail (i32.const 1) (i32.load8_u (i32.const 20))))))
        (local.set $socket (i32.load (i32.const 20)))
        (call $connect (local.get $socket) (local.get $network) (i32.const 0)
          (i32.const {PORT}) (i32.const {A}) (i32.const {B}) (i32.const {C}) (i32.const {D})
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
          (i32.const 32))
        ;; refused with access-denied (1): by start-connect, or by
        ;; finish-connect once it stops saying would-block (8)
        (if (i32.load8_u (i32.const 32))
          (then (local.set $code (i32.load8_u (i32.const 33))))
          (else
            (block $finished (loop $again
              (call $finish (local.get $socket) (i32.const 48))
              (if (i32.eqz (i32.load8_u (i32.const 48)))
                (then (return (call $fail (i32.const 3) (i32.const 0)))))
              (local.set $code (i32.load8_u (i32.const 52)))
              (br_if $finished (i32.ne (local.get $code) (i32.const 8)))
              (br $again)))))
        (if (i32.ne (local.get $code) (i32.const 1))
          (then (return (call $fail (i32.const 2) (local.get $code)))))
        (call $drop-socket (local.get $socket))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (i32.const 0))
"#;

/// Serves one connection on {A}.{B}.{C}.{D}:{PORT} (see [`tcp_echo_server`]).
const ECHO_TEMPLATE: &str = r#"(component $C
{IMPORTS}
  (core func $start-bind (canon lower (func $tcp "[method]tcp-socket.start-bind")
    (memory (core memory $mem "memory"))))
  (core func $finish-bind (canon lower (func $tcp "[method]tcp-socket.finish-bind")
    (memory (core memory $mem "memory"))))
  (core func $start-listen (canon lower (func $tcp "[method]tcp-socket.start-listen")
    (memory (core memory $mem "memory"))))
  (core func $finish-listen (canon lower (func $tcp "[method]tcp-socket.finish-listen")
    (memory (core memory $mem "memory"))))
  (core func $accept (canon lower (func $tcp "[method]tcp-socket.accept")
    (memory (core memory $mem "memory"))))
  (core func $subscribe (canon lower (func $tcp "[method]tcp-socket.subscribe")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core func $drop-input (canon resource.drop $input))
  (core func $drop-output (canon resource.drop $output))
  (core func $drop-socket (canon resource.drop $tcp-socket))
  (core func $read (canon lower (func $streams "[method]input-stream.blocking-read")
    (memory (core memory $mem "memory")) (realloc (core func $mem "cabi_realloc"))))
  (core module $main
    (import "mem" "memory" (memory 1))
    (import "net" "instance-network" (func $instance-network (result i32)))
    (import "net" "create-tcp-socket" (func $create (param i32 i32)))
    (import "net" "start-bind" (func $start-bind (param i32 i32 i32 i32 i32 i32 i32 i32
      i32 i32 i32 i32 i32 i32 i32)))
    (import "net" "finish-bind" (func $finish-bind (param i32 i32)))
    (import "net" "start-listen" (func $start-listen (param i32 i32)))
    (import "net" "finish-listen" (func $finish-listen (param i32 i32)))
    (import "net" "accept" (func $accept (param i32 i32)))
    (import "net" "subscribe" (func $subscribe (param i32) (result i32)))
    (import "net" "block" (func $block (param i32)))
    (import "net" "drop-input" (func $drop-input (param i32)))
    (import "net" "drop-output" (func $drop-output (param i32)))
    (import "net" "drop-socket" (func $drop-socket (param i32)))
    (import "net" "read" (func $read (param i32 i64 i32)))
    (import "net" "write" (func $write (param i32 i32 i32 i32)))
{FAIL}
    (func (export "run") (result i32) (i32.ne (call $serve) (i32.const 0)))
    ;; 0 once the peer closed; otherwise the step that failed
    (func $serve (result i32) (local $network i32) (local $socket i32) (local $ready i32)
      (local $in i32) (local $out i32)
      (local.set $network (call $instance-network))
      (call $create (i32.const 0) (i32.const 64))
      (if (i32.load8_u (i32.const 64)) (then (return (call $fail (i32.const 1) (i32.load8_u (i32.const 68))))))
      (local.set $socket (i32.load (i32.const 68)))
      ;; bind {A}.{B}.{C}.{D}:{PORT}
      (call $start-bind (local.get $socket) (local.get $network) (i32.const 0)
        (i32.const {PORT}) (i32.const {A}) (i32.const {B}) (i32.const {C}) (i32.const {D})
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 80))
      (if (i32.load8_u (i32.const 80)) (then (return (call $fail (i32.const 2) (i32.load8_u (i32.const 81))))))
      (call $finish-bind (local.get $socket) (i32.const 80))
      (if (i32.load8_u (i32.const 80)) (then (return (call $fail (i32.const 3) (i32.load8_u (i32.const 81))))))
      (call $start-listen (local.get $socket) (i32.const 80))
      (if (i32.load8_u (i32.const 80)) (then (return (call $fail (i32.const 4) (i32.load8_u (i32.const 81))))))
      (call $finish-listen (local.get $socket) (i32.const 80))
      (if (i32.load8_u (i32.const 80)) (then (return (call $fail (i32.const 5) (i32.load8_u (i32.const 81))))))
      (local.set $ready (call $subscribe (local.get $socket)))
      ;; accept, waiting while it says would-block (8): result at 96
      (loop $next
      (block $accepted (loop $again
        (call $accept (local.get $socket) (i32.const 96))
        (br_if $accepted (i32.eqz (i32.load8_u (i32.const 96))))
        (if (i32.ne (i32.load8_u (i32.const 100)) (i32.const 8))
          (then (return (call $fail (i32.const 6) (i32.load8_u (i32.const 100))))))
        (call $block (local.get $ready))
        (br $again)))
      (local.set $in (i32.load (i32.const 104)))
      (local.set $out (i32.load (i32.const 108)))
      ;; echo until the stream is closed: read result at 128, write at 144
      (loop $echo
        (call $read (local.get $in) (i64.const 1024) (i32.const 128))
        (if (i32.load8_u (i32.const 128))
          (then {ON_CLOSE}))
        (call $write (local.get $out) (i32.load (i32.const 132)) (i32.load (i32.const 136))
          (i32.const 144))
        (if (i32.load8_u (i32.const 144)) (then (return (i32.const 8))))
        (br $echo)))
      (i32.const 9)))
  (core instance $main (instantiate $main
    (with "mem" (instance $mem))
    (with "net" (instance
      (export "instance-network" (func $instance-network))
      (export "create-tcp-socket" (func $create-tcp-socket))
      (export "start-bind" (func $start-bind))
      (export "finish-bind" (func $finish-bind))
      (export "start-listen" (func $start-listen))
      (export "finish-listen" (func $finish-listen))
      (export "accept" (func $accept))
      (export "subscribe" (func $subscribe))
      (export "block" (func $block))
      (export "drop-input" (func $drop-input))
      (export "drop-output" (func $drop-output))
      (export "drop-socket" (func $drop-socket))
      (export "read" (func $read))
      (export "write" (func $write))
      (export "get-stdout" (func $get-stdout))))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $api (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $api)))"#;

#[cfg(test)]
mod tests {
    #[test]
    fn test_the_components_are_well_formed_text() {
        assert!(super::tcp_connect([127, 0, 0, 1], 80).starts_with(b"\0asm"));
        assert!(super::tcp_echo_server(7000).starts_with(b"\0asm"));
        assert!(super::tcp_echo_server_forever(7000).starts_with(b"\0asm"));
        assert!(super::tcp_send([127, 0, 0, 1], 1883, b"bytes").starts_with(b"\0asm"));
        assert!(super::mqtt_publisher().starts_with(b"\0asm"));
        assert!(super::netprobe().starts_with(b"\0asm"));
        assert!(super::tcp_connect_flood([127, 0, 0, 2], 1883, 5).starts_with(b"\0asm"));
    }
}
