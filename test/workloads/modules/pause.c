// A native pause-style container: sleeps until SIGTERM/SIGINT, then exits 0.
// Built by test/build.rs with `cc -static`.
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static void done(int sig) { (void)sig; _exit(0); }

int main(void) {
    signal(SIGTERM, done);
    signal(SIGINT, done);
    printf("pause: waiting\n");
    fflush(stdout);
    for (;;) pause();
}
