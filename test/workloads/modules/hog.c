// A native memory hog: touches N MiB (argv[1]), so that a memory limit below
// it gets the container OOM-killed. Built by test/build.rs with `cc -static`.
// With `fork`, forks until the kernel refuses (the pids limit) and prints how
// many children it made; with `cmdline`, prints its /proc/self/cmdline; with
// `fds`, the descriptors it holds; with `home`, its HOME.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fork_until_refused(void) {
    int children = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid < 0) break;
        if (pid == 0) { pause(); _exit(0); }
        if (++children >= 1000) break;
    }
    printf("forked %d\n", children);
    return 0;
}

// Prints its own command line as /proc shows it (native containers keep
// runc's /proc).
static int own_cmdline(void) {
    FILE *f = fopen("/proc/self/cmdline", "r");
    if (!f) { perror("hog: /proc/self/cmdline"); return 2; }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++) if (!buf[i]) buf[i] = ' ';
    buf[n] = 0;
    printf("cmdline: %s\n", buf);
    return 0;
}

// Prints the numbers of the descriptors it was started with (those in
// /proc/self/fd but the one listing it), one a line.
static int own_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) { perror("hog: /proc/self/fd"); return 2; }
    int listing = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == listing) continue;
        printf("fd %s\n", e->d_name);
    }
    closedir(d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "fork")) return fork_until_refused();
    if (argc > 1 && !strcmp(argv[1], "cmdline")) return own_cmdline();
    if (argc > 1 && !strcmp(argv[1], "fds")) return own_fds();
    if (argc > 1 && !strcmp(argv[1], "home")) {
        const char *home = getenv("HOME");
        printf("HOME=%s\n", home ? home : "(unset)");
        return 0;
    }
    long mib = argc > 1 ? atol(argv[1]) : 1;
    for (long i = 0; i < mib; i++) {
        volatile char *p = malloc(1 << 20);
        if (!p) { fprintf(stderr, "hog: allocation failed after %ld MiB\n", i); return 3; }
        for (int off = 0; off < (1 << 20); off += 4096) p[off] = 1;
    }
    printf("hog: touched %ld MiB\n", mib);
    return 0;
}
