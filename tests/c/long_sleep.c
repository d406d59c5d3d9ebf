/* A program that spends its time in long sleeps (issue 13): each step is one
 * 1500 ms sleep, of three kinds in turn, made once and never retried: nanosleep
 * with rem, poll with a timeout, epoll_wait with a timeout. EINTR or an early
 * return fails. The test checkpoints it during a sleep, restarts it, and
 * checkpoints the restarted process again while it finishes that sleep: the
 * trigger must not wait for the sleep to end. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>

#define MS 1500

static long long mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 3;
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    ready();
    for (int i = 1; i <= total; i++) {
        long long t0 = mono_ns();
        struct timespec t = {MS / 1000, (MS % 1000) * 1000000L};
        struct epoll_event ev;
        int r, kind = i % 3;
        switch (kind) {
        case 0: r = nanosleep(&t, &t); break;
        case 1: r = poll(NULL, 0, MS); break;
        default: r = epoll_wait(ep, &ev, 1, MS); break;
        }
        if (r != 0) FAIL("step %d: sleep kind %d returned %d (%s)", i, kind, r, strerror(errno));
        /* CLOCK_MONOTONIC goes on while the process is gone: never less. */
        if (mono_ns() - t0 < MS * 1000000LL - 2000000LL) FAIL("step %d: sleep kind %d returned early", i, kind);
        if (restarted()) say("RESTARTED at %d", i);
        say("TICK %d", i);
    }
    say("DONE long sleeps");
    return 0;
}
