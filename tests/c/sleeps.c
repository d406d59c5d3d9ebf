/* Sleeps the checkpoint interrupts end as they would have, in the restarted
 * process too (issue 13): each step makes one 30 ms sleep of eight kinds, once,
 * without retrying, and fails on EINTR or an early return:
 *   nanosleep with rem, nanosleep without (usleep's), clock_nanosleep
 *   TIMER_ABSTIME on CLOCK_REALTIME, relative clock_nanosleep on
 *   CLOCK_MONOTONIC with rem, poll, select, ppoll (timeouts).
 * (epoll_wait is re-issued too, but its epoll descriptor does not survive a
 * restart until open files are restored.)
 * The step after a restart says which kind was sleeping across it. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/select.h>

#define MS 30
static const char *kinds[] = {"nanosleep-rem", "nanosleep", "clock_nanosleep-abs", "clock_nanosleep-rel",
                              "poll",          "select",    "ppoll"};
#define KINDS 7

static long long ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_once(int kind, int step) {
    struct timespec t = {0, MS * 1000000L}, rem = {0, 0};
    long long t0 = ns(CLOCK_MONOTONIC), deadline = ns(CLOCK_REALTIME) + MS * 1000000LL;
    int r;
    switch (kind) {
    case 0: r = nanosleep(&t, &t); break;
    case 1: r = nanosleep(&t, NULL); break;
    case 2: {
        struct timespec d = {deadline / 1000000000LL, deadline % 1000000000LL};
        r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &d, NULL);
        if (r) errno = r, r = -1;
        break;
    }
    case 3:
        r = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &rem);
        if (r) errno = r, r = -1;
        break;
    case 4: r = poll(NULL, 0, MS); break;
    case 5: {
        struct timeval tv = {0, MS * 1000};
        r = select(0, NULL, NULL, NULL, &tv);
        break;
    }
    default: r = ppoll(NULL, 0, &t, NULL); break;
    }
    if (r != 0) FAIL("step %d: %s returned %d (%s)", step, kinds[kind], r, strerror(errno));
    long long took = ns(CLOCK_MONOTONIC) - t0;
    if (took < (MS - 1) * 1000000LL) FAIL("step %d: %s returned after %lld ns", step, kinds[kind], took);
    if (kind == 2 && ns(CLOCK_REALTIME) < deadline) FAIL("step %d: %s returned before its deadline", step, kinds[kind]);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d, across %s", i, kinds[(i - 1) % KINDS]);
        sleep_once(i % KINDS, i);
        say("TICK %d", i);
    }
    say("DONE sleeps");
    return 0;
}
