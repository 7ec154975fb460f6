// mqtt: the sensor's window aggregates (window.h, the same code as
// sensor.c) published as MQTT 3.1.1 over TCP: CONNECT, a CONNACK awaited,
// one QoS 0 PUBLISH per window, DISCONNECT. Packets are written by hand
// (MQTT 3.1.1, sections 3.1, 3.2, 3.3, 3.14).
//
//   mqtt A.B.C.D PORT SECONDS TOPIC
//
// It prints each message it published on stdout, one line each. Built as
// a module on WasmEdge's sockets and as a WASI 0.2 component (net.h).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "window.h"

#define CLIENT_ID "edgeshim-sensor"

static const char *topic;

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

static int guest_main(int argc, char **argv) {
    uint8_t ip[4];
    if (argc != 5 || parse_ipv4(argv[1], ip)) {
        const char *usage = "usage: mqtt A.B.C.D PORT SECONDS TOPIC";
        out(usage, strlen(usage));
        return 64;
    }
    topic = argv[4];
    return publish(ip, atoi(argv[2]), atol(argv[3]));
}

