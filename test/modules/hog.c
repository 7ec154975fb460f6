// A native memory hog: touches N MiB (argv[1]), so that a memory limit below
// it gets the container OOM-killed. Built by test/build.rs with `cc -static`.
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1;
    for (long i = 0; i < mib; i++) {
        volatile char *p = malloc(1 << 20);
        if (!p) { fprintf(stderr, "hog: allocation failed after %ld MiB\n", i); return 3; }
        for (int off = 0; off < (1 << 20); off += 4096) p[off] = 1;
    }
    printf("hog: touched %ld MiB\n", mib);
    return 0;
}
