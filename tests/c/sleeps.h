/* Seven kinds of sleep for the sleep tests (sleeps.c, threads_sleeps.c), each
 * made once, without retrying: nanosleep with rem, nanosleep without (usleep's),
 * clock_nanosleep TIMER_ABSTIME (on a clock of the caller's), relative clock_nanosleep on
 * CLOCK_MONOTONIC with rem, poll, select, ppoll (timeouts). */
#ifndef CKPT_TEST_SLEEPS_H
#define CKPT_TEST_SLEEPS_H

#include <errno.h>
#include <poll.h>
#include <sys/select.h>
#include <time.h>

#define SLEEP_KINDS 7
static const char *sleep_kinds[SLEEP_KINDS] = {"nanosleep-rem", "nanosleep", "clock_nanosleep-abs",
                                               "clock_nanosleep-rel", "poll", "select", "ppoll"};

__attribute__((unused)) static long long clock_ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Sleep MS ms the way of kind KIND (0..SLEEP_KINDS-1); 0, or -1 with errno.
 * *DEADLINE is the deadline on clock ABS of kind 2 (set for every kind). */
__attribute__((unused)) static int sleep_kind(int kind, long ms, clockid_t abs, long long *deadline) {
    struct timespec t = {ms / 1000, ms % 1000 * 1000000L}, rem = {0, 0};
    *deadline = clock_ns(abs) + ms * 1000000LL;
    int r;
    switch (kind) {
    case 0: return nanosleep(&t, &t);
    case 1: return nanosleep(&t, NULL);
    case 2: {
        struct timespec d = {*deadline / 1000000000LL, *deadline % 1000000000LL};
        r = clock_nanosleep(abs, TIMER_ABSTIME, &d, NULL);
        break;
    }
    case 3: r = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &rem); break;
    case 4: return poll(NULL, 0, ms);
    case 5: {
        struct timeval tv = {ms / 1000, ms % 1000 * 1000};
        return select(0, NULL, NULL, NULL, &tv);
    }
    default: return ppoll(NULL, 0, &t, NULL);
    }
    if (r) errno = r, r = -1;
    return r;
}

#endif
