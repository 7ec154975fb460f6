// compute: a compute-heavy module for the ahead-of-time compilation
// benchmark. Three kernels an edge gateway runs (a 2-D filter over a frame,
// a CRC-32 over a buffer, a prime sieve), repeated ROUNDS times; prints one
// line with their checksums at the end, so its first output is the moment
// the work is done.
//
//   compute ROUNDS
//
// Built by test/workloads/build.rs with `clang --target=wasm32-wasi`.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 160
#define H 120
#define SIEVE 200000
#define BUFFER 65536

static float frame[H][W], filtered[H][W];
static unsigned char sieve[SIEVE];
static unsigned char buffer[BUFFER];

static double blur(void) {
    static const float k[3][3] = {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}};
    double sum = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            float acc = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) acc += k[dy + 1][dx + 1] * frame[y + dy][x + dx];
            filtered[y][x] = acc / 16.0f;
            sum += filtered[y][x];
        }
    memcpy(frame, filtered, sizeof frame);
    return sum;
}

static uint32_t crc32(const unsigned char *data, size_t len) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static long primes(void) {
    memset(sieve, 1, sizeof sieve);
    long count = 0;
    for (long i = 2; i < SIEVE; i++) {
        if (!sieve[i]) continue;
        count++;
        for (long j = i * i; j < SIEVE; j += i) sieve[j] = 0;
    }
    return count;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 10;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) frame[y][x] = (float)((x * 31 + y * 17) % 255);
    for (int i = 0; i < BUFFER; i++) buffer[i] = (unsigned char)(i * 2654435761u >> 24);
    double image = 0;
    uint32_t crc = 0;
    long prime_count = 0;
    for (long r = 0; r < rounds; r++) {
        image += blur();
        buffer[r % BUFFER] ^= (unsigned char)r;
        crc ^= crc32(buffer, BUFFER);
        prime_count = primes();
    }
    printf("compute: rounds=%ld image=%.1f crc=%08x primes=%ld\n", rounds, image, crc, prime_count);
    return 0;
}
