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
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW_MS 5000

struct window {
    long start_ms;
    long count;
    double sum, sum_sq, min, max;
    int anomaly;
};

// Running statistics of every reading of the closed windows.
static double seen_n, seen_mean, seen_m2;

static void reset(struct window *w, long start_ms) {
    w->start_ms = start_ms;
    w->count = 0;
    w->sum = w->sum_sq = 0;
    w->min = INFINITY;
    w->max = -INFINITY;
    w->anomaly = 0;
}

static void emit(const struct window *w) {
    if (w->count == 0) return;
    double mean = w->sum / (double)w->count;
    printf("{\"window_start_ms\":%ld,\"count\":%ld,\"mean\":%.3f,\"min\":%.3f,"
           "\"max\":%.3f,\"anomaly\":%s}\n",
           w->start_ms, w->count, mean, w->min, w->max, w->anomaly ? "true" : "false");
    fflush(stdout);
}

static void learn(double value) {
    seen_n += 1;
    double delta = value - seen_mean;
    seen_mean += delta / seen_n;
    seen_m2 += delta * (value - seen_mean);
}

static void add(struct window *w, double value) {
    if (seen_n >= 20) {
        double sd = sqrt(seen_m2 / (seen_n - 1));
        if (sd > 0 && fabs(value - seen_mean) > 4 * sd) w->anomaly = 1;
    }
    w->count++;
    w->sum += value;
    w->sum_sq += value * value;
    if (value < w->min) w->min = value;
    if (value > w->max) w->max = value;
}

// A reading at time t_ms: closes the current window when t_ms leaves it.
static void reading(struct window *w, long t_ms, double value, double *pending, long *n_pending) {
    while (t_ms >= w->start_ms + WINDOW_MS) {
        emit(w);
        for (long i = 0; i < *n_pending; i++) learn(pending[i]);
        *n_pending = 0;
        reset(w, w->start_ms + WINDOW_MS);
    }
    add(w, value);
    if (*n_pending < 1000) pending[(*n_pending)++] = value;
}

// Deterministic synthetic temperature: slow drift, noise, rare spikes.
// 64-bit state (a `long` is 32 bits on wasm32: a shift by 33 there was
// undefined, and clang folded the readings away).
static uint64_t rng = 12345;
static double synthetic(long i) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double noise = (double)((rng >> 33) % 1000) / 1000.0 - 0.5;
    double value = 60.0 + 5.0 * sin((double)i / 600.0) + noise;
    if ((rng >> 20) % 997 == 0) value += 25.0;
    return value;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "simulate";
    static double pending[1000];
    long n_pending = 0;
    struct window w;
    reset(&w, 0);
    if (!strcmp(mode, "simulate")) {
        long seconds = argc > 2 ? atol(argv[2]) : 60;
        for (long i = 0; i < seconds * 10; i++)
            reading(&w, i * 100, synthetic(i), pending, &n_pending);
        emit(&w);
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
