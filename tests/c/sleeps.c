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

#include "sleeps.h"

#include <string.h>

#define MS 30
#define KINDS SLEEP_KINDS
#define kinds sleep_kinds

static void sleep_once(int kind, int step) {
    long long t0 = clock_ns(CLOCK_MONOTONIC), deadline;
    int r = sleep_kind(kind, MS, CLOCK_REALTIME, &deadline);
    if (r != 0) FAIL("step %d: %s returned %d (%s)", step, kinds[kind], r, strerror(errno));
    long long took = clock_ns(CLOCK_MONOTONIC) - t0;
    if (took < (MS - 1) * 1000000LL) FAIL("step %d: %s returned after %lld ns", step, kinds[kind], took);
    if (kind == 2 && clock_ns(CLOCK_REALTIME) < deadline) FAIL("step %d: %s returned before its deadline", step, kinds[kind]);
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
