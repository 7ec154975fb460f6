// mqtt: the sensor's window aggregates (window.h, the same code as
// sensor.c) published as MQTT 3.1.1 over TCP: CONNECT, a CONNACK awaited,
// one QoS 0 PUBLISH per window, DISCONNECT. Packets are written by hand
// (MQTT 3.1.1, sections 3.1, 3.2, 3.3, 3.14).
//
//   mqtt A.B.C.D PORT SECONDS TOPIC
//
// It prints each message it published on stdout, one line each. Built twice
// by test/workloads/build.rs from this one source:
//   - NET_WASMEDGE: a WASI preview 1 command (wasi-libc) on WasmEdge's socket
//     extension (sock_open, sock_connect, sock_send, sock_recv, declared
//     here as WasmEdge 0.14.1 has them). A failed call exits with its errno
//     (2 is EACCES: refused by the shim's network guard).
//   - NET_WASI_SOCKETS: the core module of a WASI 0.2 component on
//     `wasi:sockets`. It links no WASI preview 1: no start files, only
//     snprintf and libm from wasi-libc; its imports (module "net") are the
//     component's lowered functions, and the component around it is in
//     test/workloads/src/components.rs (`mqtt_publisher`). A failed step
//     is said on stdout with its `error-code`, and `run` returns an error
//     (exit status 1).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

#define CLIENT_ID "edgeshim-sensor"

static const char *topic;

// ---- the network, one connection: net_connect, net_send, net_recv, out ----

#if defined(NET_WASMEDGE)
#include <stdio.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
IMPORT("sock_open") int32_t sock_open(int32_t family, int32_t type, int32_t *fd);
IMPORT("sock_connect") int32_t sock_connect(int32_t fd, const void *address, int32_t port);
IMPORT("sock_send")
int32_t sock_send(int32_t fd, const void *iovs, int32_t iovs_len, int32_t flags, int32_t *sent);
IMPORT("sock_recv")
int32_t sock_recv(int32_t fd, const void *iovs, int32_t iovs_len, int32_t flags,
                  int32_t *received, int32_t *out_flags);

static int32_t fd;

// WasmEdge 0.14.1's version 1 ABI: an address is {buf, buf_len} in memory.
static int net_connect(const uint8_t ip[4], int port) {
    struct { const uint8_t *buf; int32_t len; } address = {ip, 4};
    int32_t errno_ = sock_open(1 /* inet4 */, 2 /* stream */, &fd);
    if (!errno_) errno_ = sock_connect(fd, &address, port);
    return errno_;
}

static int net_send(const uint8_t *bytes, int len) {
    while (len > 0) {
        struct { const uint8_t *buf; int32_t len; } iov = {bytes, len};
        int32_t sent = 0;
        int32_t errno_ = sock_send(fd, &iov, 1, 0, &sent);
        if (errno_) return errno_;
        bytes += sent;
        len -= sent;
    }
    return 0;
}

static int net_recv(uint8_t *bytes, int len) {
    while (len > 0) {
        struct { uint8_t *buf; int32_t len; } iov = {bytes, len};
        int32_t received = 0, flags = 0;
        int32_t errno_ = sock_recv(fd, &iov, 1, 0, &received, &flags);
        if (errno_) return errno_;
        if (received == 0) return 53; // ENOTCONN-ish: the peer closed early
        bytes += received;
        len -= received;
    }
    return 0;
}

static void out(const char *line, int len) {
    printf("%.*s\n", len, line);
    fflush(stdout);
}

#elif defined(NET_WASI_SOCKETS)

#define IMPORT(name) __attribute__((import_module("net"), import_name(name)))
// The canonical ABI's lowerings of the `wasi:sockets`, `wasi:io` and
// `wasi:cli` functions the component imports (see components.rs).
IMPORT("instance-network") int32_t instance_network(void);
IMPORT("create-tcp-socket") void create_tcp_socket(int32_t family, void *ret);
IMPORT("start-connect")
void start_connect(int32_t socket, int32_t network, int32_t tag, int32_t port, int32_t a,
                   int32_t b, int32_t c, int32_t d, int32_t pad0, int32_t pad1, int32_t pad2,
                   int32_t pad3, int32_t pad4, int32_t pad5, void *ret);
IMPORT("finish-connect") void finish_connect(int32_t socket, void *ret);
IMPORT("subscribe") int32_t subscribe(int32_t socket);
IMPORT("block") void block(int32_t pollable);
IMPORT("drop-pollable") void drop_pollable(int32_t pollable);
IMPORT("write") void write_and_flush(int32_t stream, const void *bytes, int32_t len, void *ret);
IMPORT("read") void blocking_read(int32_t stream, int64_t len, void *ret);
IMPORT("get-stdout") int32_t get_stdout(void);
IMPORT("get-arguments") void get_arguments(void *ret);

// A `result<T, error-code>` as the canonical ABI lays it out.
struct result { uint8_t is_err; uint8_t pad[3]; int32_t value[2]; };

static int32_t input, output;

static void out(const char *line, int len) {
    static char buffer[512];
    if (len > (int)sizeof buffer - 1) len = sizeof buffer - 1;
    memcpy(buffer, line, len);
    buffer[len] = '\n';
    struct result written;
    write_and_flush(get_stdout(), buffer, len + 1, &written);
}

// Says which step failed with which `error-code` (its number in
// wasi:sockets/network's enum: 1 access-denied, 14 connection-refused).
static int fail(const char *step, int code) {
    char line[64];
    int len = snprintf(line, sizeof line, "mqtt: %s failed: error-code %d", step, code);
    out(line, len);
    return code ? code : 99;
}

static int net_connect(const uint8_t ip[4], int port) {
    int32_t network = instance_network();
    struct result r;
    create_tcp_socket(0 /* ipv4 */, &r);
    if (r.is_err) return fail("create-tcp-socket", (uint8_t)r.value[0]);
    int32_t socket = r.value[0];
    start_connect(socket, network, 0 /* ipv4 */, port, ip[0], ip[1], ip[2], ip[3], 0, 0, 0, 0,
                  0, 0, &r);
    if (r.is_err) return fail("start-connect", (uint8_t)r.value[0]);
    for (;;) {
        finish_connect(socket, &r);
        if (!r.is_err) break;
        if ((uint8_t)r.value[0] != 8 /* would-block */)
            return fail("finish-connect", (uint8_t)r.value[0]);
        int32_t ready = subscribe(socket);
        block(ready);
        drop_pollable(ready);
    }
    input = r.value[0];
    output = r.value[1];
    return 0;
}

static int net_send(const uint8_t *bytes, int len) {
    struct result r;
    write_and_flush(output, bytes, len, &r);
    return r.is_err ? fail("write", 0) : 0;
}

static int net_recv(uint8_t *bytes, int len) {
    while (len > 0) {
        // result<list<u8>, stream-error>: the list is {pointer, length}.
        struct result r;
        blocking_read(input, len, &r);
        if (r.is_err) return fail("read", 0);
        int32_t got = r.value[1];
        if (got > len) got = len;
        memcpy(bytes, (const void *)(uintptr_t)r.value[0], got);
        bytes += got;
        len -= got;
    }
    return 0;
}

#else
#error "build with NET_WASMEDGE or NET_WASI_SOCKETS"
#endif

// ---- MQTT 3.1.1 ----

static int failed;

// Appends MQTT's "remaining length" (a base-128 varint) to `p`.
static int remaining_length(uint8_t *p, int length) {
    int n = 0;
    do {
        uint8_t byte = length % 128;
        length /= 128;
        p[n++] = byte | (length > 0 ? 0x80 : 0);
    } while (length > 0);
    return n;
}

static int put_string(uint8_t *p, const char *s, int len) {
    p[0] = len >> 8;
    p[1] = len & 0xff;
    memcpy(p + 2, s, len);
    return len + 2;
}

void window_closed(const char *json, int len) {
    if (failed) return;
    static uint8_t packet[1024];
    int topic_len = strlen(topic);
    int n = 0;
    packet[n++] = 0x30; // PUBLISH, QoS 0, no retain
    n += remaining_length(packet + n, 2 + topic_len + len);
    n += put_string(packet + n, topic, topic_len);
    memcpy(packet + n, json, len);
    n += len;
    failed = net_send(packet, n);
    if (!failed) out(json, len);
}

static int publish(const uint8_t ip[4], int port, long seconds) {
    failed = net_connect(ip, port);
    if (failed) return failed;
    uint8_t connect[64];
    int n = 0;
    connect[n++] = 0x10; // CONNECT
    n += remaining_length(connect + n, 10 + 2 + (int)strlen(CLIENT_ID));
    n += put_string(connect + n, "MQTT", 4);
    connect[n++] = 4;    // protocol level 3.1.1
    connect[n++] = 0x02; // clean session
    connect[n++] = 0;    // keep alive: 60 s
    connect[n++] = 60;
    n += put_string(connect + n, CLIENT_ID, strlen(CLIENT_ID));
    if ((failed = net_send(connect, n))) return failed;
    uint8_t connack[4];
    if ((failed = net_recv(connack, 4))) return failed;
    if (connack[0] != 0x20 || connack[1] != 2 || connack[3] != 0) {
        char line[64];
        int len = snprintf(line, sizeof line, "mqtt: refused by the broker (CONNACK %d)",
                           connack[3]);
        out(line, len);
        return 98;
    }
    simulate(seconds);
    if (failed) return failed;
    const uint8_t disconnect[2] = {0xe0, 0};
    return net_send(disconnect, 2);
}

// "A.B.C.D" into ip; 0 when it is one.
static int parse_ipv4(const char *text, uint8_t ip[4]) {
    for (int i = 0; i < 4; i++) {
        char *end;
        long part = strtol(text, &end, 10);
        if (end == text || part < 0 || part > 255 || *end != (i < 3 ? '.' : '\0')) return -1;
        ip[i] = part;
        text = end + 1;
    }
    return 0;
}

static int publish_args(int argc, char **argv) {
    uint8_t ip[4];
    if (argc != 5 || parse_ipv4(argv[1], ip)) {
        const char *usage = "usage: mqtt A.B.C.D PORT SECONDS TOPIC";
        out(usage, strlen(usage));
        return 64;
    }
    topic = argv[4];
    return publish(ip, atoi(argv[2]), atol(argv[3]));
}

#if defined(NET_WASMEDGE)
int main(int argc, char **argv) { return publish_args(argc, argv); }
#else
// `wasi:cli/run`: 0 is ok, anything else an error (exit status 1). The
// arguments come from `get-arguments` as a list of {pointer, length}
// strings, not NUL-terminated: copied into C strings here.
int run(void) {
    struct { void *ptr; int32_t len; } list;
    get_arguments(&list);
    const struct { const char *ptr; int32_t len; } *strings = list.ptr;
    static char storage[1024];
    static char *argv[8];
    int argc = 0, used = 0;
    for (int i = 0; i < list.len && argc < 8; i++) {
        if (used + strings[i].len + 1 > (int)sizeof storage) break;
        memcpy(storage + used, strings[i].ptr, strings[i].len);
        storage[used + strings[i].len] = '\0';
        argv[argc++] = storage + used;
        used += strings[i].len + 1;
    }
    return publish_args(argc, argv) != 0;
}
#endif
