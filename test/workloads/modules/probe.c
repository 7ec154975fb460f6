// probe: one Wasm test workload with a behaviour per first argument, so the
// integration suite needs one image. Built by test/build.rs with
// `clang --target=wasm32-wasi`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>

static int cat(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "probe: cannot open %s: %s\n", path, strerror(errno)); return 2; }
    char buf[4096]; size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "probe: cannot create %s: %s\n", path, strerror(errno)); return 2; }
    fputs(text, f);
    fclose(f);
    printf("wrote %s\n", path);
    return 0;
}

// Keeps every allocation reachable so the compiler cannot drop them.
static char *volatile held[4096];

// Grows the heap in 1 MiB steps up to `mib`, touching every page.
static int grow(long mib) {
    for (long i = 0; i < mib && i < 4096; i++) {
        char *p = malloc(1 << 20);
        if (!p) { fprintf(stderr, "probe: allocation failed after %ld MiB\n", i); return 3; }
        for (int off = 0; off < (1 << 20); off += 4096) ((volatile char *)p)[off] = 1;
        held[i] = p;
    }
    printf("grew %ld MiB\n", mib);
    return 0;
}

// Tries to open each path as an attacker would (read-write first, then
// read-only; directories are listed) and prints what it reached; exits with
// the number of paths it could open.
static int escape(int n, char **paths) {
    int opened = 0;
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDWR);
        if (fd < 0) fd = open(paths[i], O_RDONLY);
        if (fd < 0) fd = open(paths[i], O_RDONLY | O_DIRECTORY);
        if (fd < 0) { printf("refused %s: %s\n", paths[i], strerror(errno)); continue; }
        close(fd);
        printf("OPENED %s\n", paths[i]);
        opened++;
    }
    return opened;
}

// Lists a directory's entries other than . and .., one a line.
static int list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { fprintf(stderr, "probe: cannot list %s: %s\n", path, strerror(errno)); return 2; }
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        printf("%s\n", e->d_name);
        count++;
    }
    closedir(d);
    printf("%d entries\n", count);
    return 0;
}

// The OCI default devices, used as a program would.
static int devices(void) {
    char buf[16];
    int fails = 0;
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0 || write(fd, "x", 1) != 1) { printf("null: %s\n", strerror(errno)); fails++; } else printf("null ok\n");
    if (fd >= 0) close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buf, 1, sizeof buf);
    if (fd < 0 || read(fd, buf, sizeof buf) != sizeof buf || buf[0] || buf[15]) { printf("zero: %s\n", strerror(errno)); fails++; } else printf("zero ok\n");
    if (fd >= 0) close(fd);
    fd = open("/dev/full", O_WRONLY);
    errno = 0;
    if (fd < 0 || write(fd, "x", 1) != -1 || errno != ENOSPC) { printf("full: %s\n", strerror(errno)); fails++; } else printf("full ok\n");
    if (fd >= 0) close(fd);
    const char *random[] = {"/dev/random", "/dev/urandom"};
    for (int i = 0; i < 2; i++) {
        fd = open(random[i], O_RDONLY);
        if (fd < 0 || read(fd, buf, sizeof buf) != sizeof buf) { printf("%s: %s\n", random[i], strerror(errno)); fails++; } else printf("%s ok\n", random[i] + 5);
        if (fd >= 0) close(fd);
    }
    struct stat st;
    if (stat("/dev/tty", &st) != 0) { printf("tty: %s\n", strerror(errno)); fails++; } else printf("tty ok\n");
    return fails;
}

// Writes 64 KiB blocks to stdout (stderr with "err") for ever, after one
// line saying so on the same stream (containerd copies stdout and stderr
// separately, so only on one stream is the line sure to come first): a
// module flooding its output.
static int flood(const char *to) {
    static char block[65536];
    memset(block, 'x', sizeof block - 1);
    block[sizeof block - 1] = '\n';
    int fd = to && !strcmp(to, "err") ? 2 : 1;
    static const char said[] = "flooding\n";
    (void)write(fd, said, sizeof said - 1);
    for (;;) (void)write(fd, block, sizeof block);
}

// Spins in one host call for ever, after one line saying so: the clock,
// the random source, or a write to a descriptor it does not have.
static int hostcalls(const char *kind) {
    volatile unsigned long n = 0;
    char buf[256];
    printf("calling %s\n", kind); fflush(stdout);
    if (!strcmp(kind, "clock")) {
        for (;;) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); n += ts.tv_nsec; }
    }
    if (!strcmp(kind, "random")) {
        for (;;) { getentropy(buf, sizeof buf); n += buf[0]; }
    }
    if (!strcmp(kind, "badfd")) {
        for (;;) n += write(99, "x", 1);
    }
    fprintf(stderr, "probe: unknown host call %s\n", kind);
    return 64;
}

// Makes a hard link; prints what happened, exits 2 when refused.
static int hard_link(const char *from, const char *to) {
    if (link(from, to) != 0) {
        printf("refused %s -> %s: %s\n", from, to, strerror(errno));
        return 2;
    }
    printf("LINKED %s -> %s\n", from, to);
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "hello";
    if (!strcmp(cmd, "hello")) { printf("hello from wasm\n"); return 0; }
    if (!strcmp(cmd, "stderr")) { fprintf(stderr, "to stderr: %s\n", argc > 2 ? argv[2] : ""); return 0; }
    if (!strcmp(cmd, "args")) { for (int i = 0; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]); return 0; }
    if (!strcmp(cmd, "env")) { const char *v = getenv(argc > 2 ? argv[2] : "HOME"); printf("%s=%s\n", argc > 2 ? argv[2] : "HOME", v ? v : "(unset)"); return 0; }
    if (!strcmp(cmd, "exit")) { int code = argc > 2 ? atoi(argv[2]) : 0; printf("exiting %d\n", code); exit(code); }
    if (!strcmp(cmd, "read")) return cat(argc > 2 ? argv[2] : "/");
    if (!strcmp(cmd, "write")) return write_file(argc > 2 ? argv[2] : "/out", argc > 3 ? argv[3] : "");
    if (!strcmp(cmd, "grow")) return grow(argc > 2 ? atol(argv[2]) : 1);
    if (!strcmp(cmd, "escape")) return escape(argc - 2, argv + 2);
    if (!strcmp(cmd, "list")) return list(argc > 2 ? argv[2] : "/");
    if (!strcmp(cmd, "devices")) return devices();
    if (!strcmp(cmd, "flood")) return flood(argc > 2 ? argv[2] : "out");
    if (!strcmp(cmd, "hostcalls")) return hostcalls(argc > 2 ? argv[2] : "clock");
    if (!strcmp(cmd, "link")) return argc > 3 ? hard_link(argv[2], argv[3]) : 64;
    if (!strcmp(cmd, "trap")) { printf("about to trap\n"); fflush(stdout); __builtin_trap(); }
    if (!strcmp(cmd, "sleep")) {
        printf("sleeping\n"); fflush(stdout);
        struct timespec ts = { argc > 2 ? atol(argv[2]) : 3600, 0 };
        nanosleep(&ts, NULL);
        return 0;
    }
    if (!strcmp(cmd, "spin")) {
        printf("spinning\n"); fflush(stdout);
        volatile unsigned long n = 0;
        for (;;) n++;
    }
    fprintf(stderr, "probe: unknown command %s\n", cmd);
    return 64;
}
