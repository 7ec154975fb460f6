// sensor: a realistic edge workload, as on an industrial IoT gateway.
// Sensor readings come in (lines "t_ms value" on stdin, or, with `simulate`,
// a deterministic synthetic feed of a 10 Hz temperature sensor with
// occasional spikes); every 5 seconds of sensor time it prints one JSON line
// with the window's count, mean, min, max and an anomaly flag (a reading more
// than 4 standard deviations from the running mean of earlier windows).
//
//   sensor simulate SECONDS   synthetic feed of SECONDS seconds, then exit
//   sensor stdin              readings from stdin until EOF
//   sensor serve              synthetic feed forever, one window per second
//                             of wall time (a long-running container)
//
// Built by test/workloads/build.rs with `clang --target=wasm32-wasi`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "window.h"

void window_closed(const char *json, int len) {
    printf("%.*s\n", len, json);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "simulate";
    static double pending[1000];
    long n_pending = 0;
    struct window w;
    reset(&w, 0);
    if (!strcmp(mode, "simulate")) {
        simulate(argc > 2 ? atol(argv[2]) : 60);
        return 0;
    }
    if (!strcmp(mode, "stdin")) {
        long t_ms;
        double value;
        while (scanf("%ld %lf", &t_ms, &value) == 2) reading(&w, t_ms, value, pending, &n_pending);
        emit(&w);
        return 0;
    }
    if (!strcmp(mode, "serve")) {
        for (long i = 0;; i++) {
            reading(&w, i * 100, synthetic(i), pending, &n_pending);
            if (i % 50 == 49) {
                struct timespec second = {1, 0};
                nanosleep(&second, NULL);
            }
        }
    }
    fprintf(stderr, "sensor: unknown mode %s (simulate|stdin|serve)\n", mode);
    return 64;
}
