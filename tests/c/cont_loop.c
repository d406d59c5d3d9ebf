/* Many checkpoints in continue mode are invisible to the program: no SIGCHLD, no
 * child for waitpid(-1) to reap, sleeps and reads not cut short (EINTR), and its
 * memory (a checksummed buffer rewritten at each step) intact. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

static volatile sig_atomic_t chld;

static void on_chld(int sig) { (void)sig; chld++; }

#define WORDS (1 << 18) /* 2 MiB */

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 400;
    signal(SIGCHLD, on_chld);
    uint64_t *buf = malloc(WORDS * sizeof *buf);
    CHECK(buf != NULL);
    uint64_t sum = 0;
    for (int w = 0; w < WORDS; w++) sum += buf[w] = w * 0x9E3779B97F4A7C15ull;
    int fds[2];
    CHECK(pipe(fds) == 0);
    ready();
    for (int i = 1; i <= total; i++) {
        uint64_t s = 0;
        for (int w = 0; w < WORDS; w++) s += buf[w];
        if (s != sum) FAIL("checksum changed at step %d", i);
        for (int w = i % 64; w < WORDS; w += 64) { sum -= buf[w]; buf[w] ^= i; sum += buf[w]; }
        if (chld) FAIL("got SIGCHLD %d times", (int)chld);
        errno = 0;
        if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) FAIL("waitpid(-1) found a child");
        struct timespec t = {0, 5000000};
        /* The one EINTR allowed: the sleep a checkpoint interrupted, returning in
         * the restarted process (the kernel's record of the remaining time stayed
         * with the old process). Never in the process that keeps running. */
        if (nanosleep(&t, NULL) != 0 && !(errno == EINTR && getpid() != tick_pid_))
            FAIL("nanosleep: %s at step %d", strerror(errno), i);
        if (restarted()) say("RESTARTED at %d", i); /* the pipe comes back too */
        char c = 'x';
        /* The pipe is the same one in a restarted process, also when the
         * checkpoint fell inside the write or the read (the kernel restarts it). */
        if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1) FAIL("pipe: %s at step %d", strerror(errno), i);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
