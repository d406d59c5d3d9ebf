/* Periodic checkpoints (ckpt -i) do not disturb the program's own timers: an
 * ITIMER_REAL of 20 ms keeps firing SIGALRM at its pace, before and after each
 * checkpoint and after a restart, and sleeps are never cut short. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) { (void)sig; alarms++; }

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 100;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {{0, 20000}, {0, 20000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    ready();
    int last = alarms;
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        /* 50 ms of work between two looks at the alarm count: at 20 ms a period
         * it must have moved. (Sleeping here would be cut short by SIGALRM.) */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 50000000L);
        if (alarms == last) FAIL("SIGALRM stopped at step %d (%d alarms)", i, (int)alarms);
        struct itimerval cur;
        CHECK(getitimer(ITIMER_REAL, &cur) == 0);
        if (cur.it_interval.tv_usec != 20000 || cur.it_interval.tv_sec != 0) FAIL("itimer interval changed");
        last = alarms;
        say("TICK %d", i);
    }
    say("DONE alarms %d", (int)alarms);
    return 0;
}
