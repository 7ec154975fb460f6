// window.h: the sensor's aggregation, shared by sensor.c and mqtt.c.
// Readings go in; every 5 seconds of sensor time a window closes with its
// count, mean, min, max and an anomaly flag (a reading more than 4
// standard deviations from the running mean of earlier windows), handed to
// the includer's `window_closed` as one JSON object.
//
// Needs only snprintf and libm: mqtt.c's component build links no WASI
// preview 1 (see build.rs).
#include <math.h>
#include <stdint.h>
#include <stdio.h>

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

// Where a closed window's JSON line goes (without its newline): the
// sensor prints it, the MQTT publisher publishes it.
void window_closed(const char *json, int len);

static void emit(const struct window *w) {
    if (w->count == 0) return;
    double mean = w->sum / (double)w->count;
    char json[256];
    int len = snprintf(json, sizeof json,
                       "{\"window_start_ms\":%ld,\"count\":%ld,\"mean\":%.3f,\"min\":%.3f,"
                       "\"max\":%.3f,\"anomaly\":%s}",
                       w->start_ms, w->count, mean, w->min, w->max,
                       w->anomaly ? "true" : "false");
    if (len > 0 && len < (int)sizeof json) window_closed(json, len);
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

// Runs the synthetic feed for `seconds` seconds, closing the last window.
static void simulate(long seconds) {
    static double pending[1000];
    long n_pending = 0;
    struct window w;
    reset(&w, 0);
    for (long i = 0; i < seconds * 10; i++) reading(&w, i * 100, synthetic(i), pending, &n_pending);
    emit(&w);
}
