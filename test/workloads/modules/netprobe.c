// netprobe: one network call of a Wasm container, for the network tests.
//
//   netprobe udp A.B.C.D PORT MESSAGE   sends MESSAGE as one datagram
//   netprobe lookup NAME                resolves NAME; prints its IPv4
//                                       addresses, one a line
//   netprobe http http|https AUTHORITY PATH
//                                       GET over wasi:http (components
//                                       only); says `status N`, then the
//                                       body
//
// Exit status 0 when the call went through; otherwise, as net.h says, the
// errno (WasmEdge) or 1 after the failed step on stdout (a component).
// Built as a module on WasmEdge's sockets and as a WASI 0.2 component.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static int usage(void) {
    const char *text =
        "usage: netprobe udp A.B.C.D PORT MESSAGE | lookup NAME | http SCHEME AUTHORITY PATH";
    out(text, strlen(text));
    return 64;
}

static int guest_main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "udp")) {
        uint8_t ip[4];
        if (parse_ipv4(argv[2], ip)) return usage();
        return net_send_datagram(ip, atoi(argv[3]), (const uint8_t *)argv[4], strlen(argv[4]));
    }
    if (argc == 3 && !strcmp(argv[1], "lookup")) {
        uint8_t ips[8][4];
        int found = 0;
        int failed = net_lookup(argv[2], ips, 8, &found);
        if (failed) return failed;
        for (int i = 0; i < found; i++) {
            char line[32];
            int len = snprintf(line, sizeof line, "%d.%d.%d.%d", ips[i][0], ips[i][1], ips[i][2],
                               ips[i][3]);
            out(line, len);
        }
        return found > 0 ? 0 : 65;
    }
    if (argc == 5 && !strcmp(argv[1], "http")) {
        return net_http_get(!strcmp(argv[2], "https"), argv[3], argv[4]);
    }
    return usage();
}
