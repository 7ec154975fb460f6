// net.h: the network of the C guests (mqtt.c, netprobe.c), for the two
// builds test/workloads/build.rs makes of each:
//   - NET_WASMEDGE: a WASI preview 1 command (wasi-libc) on WasmEdge's
//     socket extension (sock_open, sock_connect, sock_send, sock_send_to,
//     sock_recv, sock_getaddrinfo, declared here as WasmEdge 0.14.1 has
//     them). A failed call returns its errno (2 is EACCES: refused by the
//     shim's network guard).
//   - NET_WASI_SOCKETS: the core module of a WASI 0.2 component on
//     `wasi:sockets`. It links no WASI preview 1: no start files, only
//     snprintf, strtol and libm from wasi-libc; its imports (module "net")
//     are the component's lowered functions (test/workloads/src/
//     components.rs, `c_component`). A failed step is said on stdout with
//     its `error-code` (its number in wasi:sockets/network's enum: 1
//     access-denied, 14 connection-refused), and that number returned.
//
// Every function returns 0 or that error number. One TCP connection at a
// time (net_connect, net_send, net_recv).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(NET_WASMEDGE)

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
IMPORT("sock_open") int32_t sock_open(int32_t family, int32_t type, int32_t *fd);
IMPORT("sock_connect") int32_t sock_connect(int32_t fd, const void *address, int32_t port);
IMPORT("sock_send")
int32_t sock_send(int32_t fd, const void *iovs, int32_t iovs_len, int32_t flags, int32_t *sent);
IMPORT("sock_send_to")
int32_t sock_send_to(int32_t fd, const void *iovs, int32_t iovs_len, const void *address,
                     int32_t port, int32_t flags, int32_t *sent);
IMPORT("sock_recv")
int32_t sock_recv(int32_t fd, const void *iovs, int32_t iovs_len, int32_t flags,
                  int32_t *received, int32_t *out_flags);
IMPORT("sock_getaddrinfo")
int32_t sock_getaddrinfo(const char *node, int32_t node_len, const char *service,
                         int32_t service_len, const void *hints, void *results,
                         int32_t max_results, int32_t *count);

// WasmEdge 0.14.1's version 1 ABI: an address is {buf, buf_len} in memory
// (4 bytes for IPv4), the port a separate argument; family 1 is IPv4,
// socket type 1 a datagram socket and 2 a stream.
struct address { const uint8_t *buf; int32_t len; };
struct iovec_ { const uint8_t *buf; int32_t len; };

static int32_t tcp_fd;

static inline int net_connect(const uint8_t ip[4], int port) {
    struct address address = {ip, 4};
    int32_t errno_ = sock_open(1, 2, &tcp_fd);
    return errno_ ? errno_ : sock_connect(tcp_fd, &address, port);
}

static inline int net_send(const uint8_t *bytes, int len) {
    while (len > 0) {
        struct iovec_ iov = {bytes, len};
        int32_t sent = 0;
        int32_t errno_ = sock_send(tcp_fd, &iov, 1, 0, &sent);
        if (errno_) return errno_;
        bytes += sent;
        len -= sent;
    }
    return 0;
}

static inline int net_recv(uint8_t *bytes, int len) {
    while (len > 0) {
        struct iovec_ iov = {bytes, len};
        int32_t received = 0, flags = 0;
        int32_t errno_ = sock_recv(tcp_fd, &iov, 1, 0, &received, &flags);
        if (errno_) return errno_;
        if (received == 0) return 53; // ECONNABORTED: the peer closed early
        bytes += received;
        len -= received;
    }
    return 0;
}

static inline int net_send_datagram(const uint8_t ip[4], int port, const uint8_t *bytes, int len) {
    int32_t fd, sent = 0;
    int32_t errno_ = sock_open(1, 1, &fd);
    if (errno_) return errno_;
    struct address address = {ip, 4};
    struct iovec_ iov = {bytes, len};
    return sock_send_to(fd, &iov, 1, &address, port, 0, &sent);
}

// sock_getaddrinfo's records (WasmEdge 0.14.1; packed to 4 as
// wasmedge_wasi_socket declares them) and IPv4 sockaddr data: the port,
// then the address.
struct sockaddr_ { uint8_t family; uint8_t pad[3]; uint32_t data_len; uint8_t *data; };
struct addrinfo_ {
    uint16_t flags;
    uint8_t family, socktype, protocol;
    uint8_t pad[3];
    uint32_t addrlen;
    struct sockaddr_ *addr;
    char *canonname;
    uint32_t canonnamelen;
    struct addrinfo_ *next;
};

// Resolves `name` into at most `max` IPv4 addresses; *found says how many.
static inline int net_lookup(const char *name, uint8_t (*ips)[4], int max, int *found) {
    enum { N = 4 };
    static struct addrinfo_ infos[N];
    static struct sockaddr_ addrs[N];
    static uint8_t data[N][32];
    static char canon[N][64];
    static struct addrinfo_ *results[N];
    for (int i = 0; i < N; i++) {
        addrs[i] = (struct sockaddr_){.data_len = sizeof data[i], .data = data[i]};
        infos[i] = (struct addrinfo_){.addr = &addrs[i], .canonname = canon[i],
                                      .canonnamelen = sizeof canon[i]};
        results[i] = &infos[i];
    }
    struct addrinfo_ hints = {.family = 0 /* IPv4 */, .socktype = 1 /* stream */};
    int32_t count = 0;
    int32_t errno_ = sock_getaddrinfo(name, strlen(name), "", 0, &hints, results, N, &count);
    if (errno_) return errno_;
    *found = 0;
    for (int i = 0; i < count && i < N && *found < max; i++) {
        memcpy(ips[*found], data[i] + 2, 4);
        (*found)++;
    }
    return 0;
}

static inline void out(const char *line, int len) {
    printf("%.*s\n", len, line);
    fflush(stdout);
}

// wasi:http is WASI 0.2's; WasmEdge 0.14's modules have no such thing.
static inline int net_http_get(int tls, const char *authority, const char *path) {
    (void)tls, (void)authority, (void)path;
    const char *text = "http: wasi:http needs a WASI 0.2 component (the Wasmtime shim)";
    out(text, strlen(text));
    return 95; // ENOTSUP
}

#elif defined(NET_WASI_SOCKETS)

#define IMPORT(name) __attribute__((import_module("net"), import_name(name)))
// The canonical ABI's lowerings of the functions the component imports.
// An IPv4 `ip-socket-address` flattens to 12 values: its case (0), the
// port, four address bytes, and six unused slots of the IPv6 case.
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
IMPORT("create-udp-socket") void create_udp_socket(int32_t family, void *ret);
IMPORT("udp-start-bind")
void udp_start_bind(int32_t socket, int32_t network, int32_t tag, int32_t port, int32_t a,
                    int32_t b, int32_t c, int32_t d, int32_t pad0, int32_t pad1, int32_t pad2,
                    int32_t pad3, int32_t pad4, int32_t pad5, void *ret);
IMPORT("udp-finish-bind") void udp_finish_bind(int32_t socket, void *ret);
// `stream(none)`: the option's case (0) and 12 unused slots.
IMPORT("udp-stream")
void udp_stream(int32_t socket, int32_t some, int32_t s0, int32_t s1, int32_t s2, int32_t s3,
                int32_t s4, int32_t s5, int32_t s6, int32_t s7, int32_t s8, int32_t s9,
                int32_t s10, int32_t s11, void *ret);
IMPORT("udp-check-send") void udp_check_send(int32_t stream, void *ret);
IMPORT("udp-send") void udp_send(int32_t stream, const void *datagrams, int32_t count, void *ret);
IMPORT("udp-subscribe") int32_t udp_subscribe(int32_t stream);
IMPORT("resolve-addresses")
void resolve_addresses(int32_t network, const char *name, int32_t len, void *ret);
IMPORT("resolve-next-address") void resolve_next_address(int32_t stream, void *ret);
IMPORT("resolve-subscribe") int32_t resolve_subscribe(int32_t stream);
// wasi:http (types, outgoing-handler). An option<string> flattens to
// {is_some, pointer, length}; an option<scheme> to {is_some, case,
// pointer, length} (case 0 HTTP, 1 HTTPS).
IMPORT("http-fields") int32_t http_fields(void);
IMPORT("http-outgoing-request") int32_t http_outgoing_request(int32_t headers);
IMPORT("http-set-scheme")
int32_t http_set_scheme(int32_t request, int32_t some, int32_t scheme, const char *other,
                        int32_t len);
IMPORT("http-set-authority")
int32_t http_set_authority(int32_t request, int32_t some, const char *authority, int32_t len);
IMPORT("http-set-path")
int32_t http_set_path(int32_t request, int32_t some, const char *path, int32_t len);
IMPORT("http-handle") void http_handle(int32_t request, int32_t some, int32_t options, void *ret);
IMPORT("http-future-subscribe") int32_t http_future_subscribe(int32_t future);
IMPORT("http-future-get") void http_future_get(int32_t future, void *ret);
IMPORT("http-status") int32_t http_status(int32_t response);
IMPORT("http-consume") void http_consume(int32_t response, void *ret);
IMPORT("http-body-stream") void http_body_stream(int32_t body, void *ret);

// A `result<T, error-code>` of 32-bit values as the canonical ABI lays it
// out, and one of a u64 (`check-send`, `send`: aligned to 8).
struct result { uint8_t is_err; uint8_t pad[3]; int32_t value[2]; };
struct result64 { uint8_t is_err; uint8_t pad[7]; uint64_t value; };

#define WOULD_BLOCK 8

static int32_t tcp_input, tcp_output;

static inline void out(const char *line, int len) {
    static char buffer[512];
    if (len > (int)sizeof buffer - 1) len = sizeof buffer - 1;
    memcpy(buffer, line, len);
    buffer[len] = '\n';
    struct result written;
    write_and_flush(get_stdout(), buffer, len + 1, &written);
}

static inline int fail(const char *step, int code) {
    char line[64];
    int len = snprintf(line, sizeof line, "%s failed: error-code %d", step, code);
    out(line, len);
    return code ? code : 99;
}

static inline void wait_for(int32_t pollable) {
    block(pollable);
    drop_pollable(pollable);
}

static inline int net_connect(const uint8_t ip[4], int port) {
    int32_t network = instance_network();
    struct result r;
    create_tcp_socket(0 /* ipv4 */, &r);
    if (r.is_err) return fail("create-tcp-socket", (uint8_t)r.value[0]);
    int32_t socket = r.value[0];
    start_connect(socket, network, 0, port, ip[0], ip[1], ip[2], ip[3], 0, 0, 0, 0, 0, 0, &r);
    if (r.is_err) return fail("start-connect", (uint8_t)r.value[0]);
    for (;;) {
        finish_connect(socket, &r);
        if (!r.is_err) break;
        if ((uint8_t)r.value[0] != WOULD_BLOCK) return fail("finish-connect", (uint8_t)r.value[0]);
        wait_for(subscribe(socket));
    }
    tcp_input = r.value[0];
    tcp_output = r.value[1];
    return 0;
}

static inline int net_send(const uint8_t *bytes, int len) {
    struct result r;
    write_and_flush(tcp_output, bytes, len, &r);
    return r.is_err ? fail("write", 0) : 0;
}

static inline int net_recv(uint8_t *bytes, int len) {
    while (len > 0) {
        // result<list<u8>, stream-error>: the list is {pointer, length}.
        struct result r;
        blocking_read(tcp_input, len, &r);
        if (r.is_err) return fail("read", 0);
        int32_t got = r.value[1];
        if (got > len) got = len;
        memcpy(bytes, (const void *)(uintptr_t)r.value[0], got);
        bytes += got;
        len -= got;
    }
    return 0;
}

// One datagram from a socket bound to 0.0.0.0:0, its address given with
// the datagram (`send`'s `remote-address`, which the engine checks).
static inline int net_send_datagram(const uint8_t ip[4], int port, const uint8_t *bytes, int len) {
    int32_t network = instance_network();
    struct result r;
    create_udp_socket(0, &r);
    if (r.is_err) return fail("create-udp-socket", (uint8_t)r.value[0]);
    int32_t socket = r.value[0];
    udp_start_bind(socket, network, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, &r);
    if (r.is_err) return fail("start-bind", (uint8_t)r.value[0]);
    udp_finish_bind(socket, &r);
    if (r.is_err) return fail("finish-bind", (uint8_t)r.value[0]);
    udp_stream(socket, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, &r);
    if (r.is_err) return fail("stream", (uint8_t)r.value[0]);
    int32_t outgoing = r.value[1];
    struct result64 permit;
    for (;;) {
        udp_check_send(outgoing, &permit);
        if (permit.is_err) return fail("check-send", (uint8_t)permit.value);
        if (permit.value > 0) break;
        wait_for(udp_subscribe(outgoing));
    }
    // outgoing-datagram: data {pointer, length} at 0, then
    // option<ip-socket-address> at 8: some (1), its case at 12 (ipv4: 0),
    // the port at 16 and the address bytes at 18.
    uint8_t datagram[44] = {0};
    uint32_t data = (uint32_t)(uintptr_t)bytes, length = len;
    uint16_t port16 = port;
    memcpy(datagram, &data, 4);
    memcpy(datagram + 4, &length, 4);
    datagram[8] = 1;
    memcpy(datagram + 16, &port16, 2);
    memcpy(datagram + 18, ip, 4);
    struct result64 sent;
    udp_send(outgoing, datagram, 1, &sent);
    if (sent.is_err) return fail("send", (uint8_t)sent.value);
    return sent.value == 1 ? 0 : fail("send", 0);
}

static inline int net_lookup(const char *name, uint8_t (*ips)[4], int max, int *found) {
    struct result r;
    resolve_addresses(instance_network(), name, strlen(name), &r);
    if (r.is_err) return fail("resolve-addresses", (uint8_t)r.value[0]);
    int32_t stream = r.value[0];
    *found = 0;
    for (;;) {
        // result<option<ip-address>, error-code>: is_err at 0; then the
        // error code, or the option's case, at 2; the address's case at 4
        // and an IPv4 address's bytes at 6.
        uint8_t next[24] = {0};
        resolve_next_address(stream, next);
        if (next[0]) {
            if (next[2] != WOULD_BLOCK) return fail("resolve-next-address", next[2]);
            wait_for(resolve_subscribe(stream));
            continue;
        }
        if (!next[2]) return 0;
        if (next[4] == 0 && *found < max) memcpy(ips[(*found)++], next + 6, 4);
    }
}

// GET http(s)://authority/path: says `status N` and the body, on stdout.
// wasi:http's error-code is 8-aligned (it holds option<u64>), so results
// holding one put their payload at 8: `handle`'s result at 0 with the
// future's handle (or the error's case) at 8; `get`'s
// option<result<result<incoming-response, error-code>>> nests the option
// at 0, the outer result at 8, the inner at 16 and its payload at 24.
static inline int net_http_get(int tls, const char *authority, const char *path) {
    int32_t request = http_outgoing_request(http_fields());
    if (http_set_scheme(request, 1, tls ? 1 : 0, 0, 0)) return fail("set-scheme", 0);
    if (http_set_authority(request, 1, authority, strlen(authority)))
        return fail("set-authority", 0);
    if (http_set_path(request, 1, path, strlen(path))) return fail("set-path", 0);
    uint8_t handled[48] __attribute__((aligned(8))) = {0};
    http_handle(request, 0, 0, handled);
    if (handled[0]) return fail("http handle", handled[8]);
    int32_t future;
    memcpy(&future, handled + 8, 4);
    uint8_t got[64] __attribute__((aligned(8)));
    for (;;) {
        memset(got, 0, sizeof got);
        http_future_get(future, got);
        if (got[0]) break;
        wait_for(http_future_subscribe(future));
    }
    if (got[8]) return fail("http response", 0);
    if (got[16]) return fail("http response", got[24]);
    int32_t response;
    memcpy(&response, got + 24, 4);
    char line[32];
    int len = snprintf(line, sizeof line, "status %d", (int)http_status(response));
    out(line, len);
    struct result r;
    http_consume(response, &r);
    if (r.is_err) return fail("consume", 0);
    int32_t body = r.value[0];
    http_body_stream(body, &r);
    if (r.is_err) return fail("body stream", 0);
    int32_t stream = r.value[0];
    static char text[4096];
    int length = 0;
    for (;;) {
        blocking_read(stream, sizeof text - length, &r);
        if (r.is_err) break; // closed: the body is all here
        int32_t n = r.value[1];
        if (n > (int)sizeof text - length) n = sizeof text - length;
        memcpy(text + length, (const void *)(uintptr_t)r.value[0], n);
        length += n;
        if (length == (int)sizeof text) break;
    }
    out(text, length);
    return 0;
}

#else
#error "build with NET_WASMEDGE or NET_WASI_SOCKETS"
#endif

// "A.B.C.D" into ip; 0 when it is one.
static inline int parse_ipv4(const char *text, uint8_t ip[4]) {
    for (int i = 0; i < 4; i++) {
        char *end;
        long part = strtol(text, &end, 10);
        if (end == text || part < 0 || part > 255 || *end != (i < 3 ? '.' : '\0')) return -1;
        ip[i] = part;
        text = end + 1;
    }
    return 0;
}

// The program's entry: `main` on WasmEdge; on the component, `run`
// (`wasi:cli/run`: 0 is ok, anything else an error, exit status 1), with
// the arguments from `get-arguments`: {pointer, length} strings, not
// NUL-terminated, copied into C strings here.
static int guest_main(int argc, char **argv);

#if defined(NET_WASMEDGE)
int main(int argc, char **argv) { return guest_main(argc, argv); }
#else
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
    return guest_main(argc, argv) != 0;
}
#endif
