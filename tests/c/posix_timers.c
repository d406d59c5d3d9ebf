/* POSIX timers survive a restart (issue 13), checked at every step before and
 * after it (the checkpoint falls at any moment):
 *   a: CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+4 value 0x1234, every 20 ms: its
 *      signals keep coming, with SI_TIMER, the value and the timer's id;
 *   b: CLOCK_REALTIME, SIGEV_THREAD_ID SIGUSR1 value 77, once in 1000 s;
 *   c: CLOCK_BOOTTIME, SIGEV_NONE, once in 500 s, every 7 s after;
 *   d: CLOCK_MONOTONIC, created, never armed;
 *   e: this process's CPU-time clock (clock_getcpuclockid), SIGEV_NONE, 900 s.
 * Each keeps its id (timer_t, and /proc/self/timers), its clock, interval and
 * remaining time (never more than before, and not expired). */
#define _GNU_SOURCE
#include "tick.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>

#define N 5
static timer_t ids[N];
static long long left[N];
static const long long interval[N] = {20000000LL, 0, 7000000000LL, 0, 0};
static volatile sig_atomic_t a_count, a_bad;

static void on_a(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    if (si->si_code != SI_TIMER || si->si_value.sival_int != 0x1234 || si->si_timerid != (int)(intptr_t)ids[0]) a_bad = 1;
    a_count++;
}

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void check(int step) {
    for (int i = 0; i < N; i++) {
        struct itimerspec it;
        if (timer_gettime(ids[i], &it) != 0) FAIL("step %d: timer %c is gone (timer_gettime: %m)", step, 'a' + i);
        if (ns(it.it_interval) != interval[i])
            FAIL("step %d: timer %c interval %lld, want %lld", step, 'a' + i, ns(it.it_interval), interval[i]);
        long long v = ns(it.it_value);
        if (i == 3 && v != 0) FAIL("step %d: timer d armed (%lld)", step, v);
        if (i == 1 || i == 2 || i == 4) {
            if (v <= 0 || v > left[i]) FAIL("step %d: timer %c has %lld ns left, had %lld", step, 'a' + i, v, left[i]);
            left[i] = v;
        }
    }
    if (a_bad) FAIL("step %d: a timer signal with a wrong siginfo", step);
    /* Every id is listed by the kernel under its own number. */
    char text[8192];
    read_proc("/proc/self/timers", text, sizeof text);
    int seen = 0;
    for (char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        int id;
        if (sscanf(line, "ID: %d", &id) == 1)
            for (int i = 0; i < N; i++)
                if ((int)(intptr_t)ids[i] == id) seen |= 1 << i;
    }
    if (seen != (1 << N) - 1) FAIL("step %d: /proc/self/timers lists ids %x of ours", step, seen);
}

static timer_t make(clockid_t clock, int notify, int sig, int value) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = value;
    if (notify == SIGEV_THREAD_ID) ev._sigev_un._tid = gettid();
    timer_t t;
    CHECK(timer_create(clock, &ev, &t) == 0);
    return t;
}

static void arm(timer_t t, long long first, long long every) {
    struct itimerspec it = {{every / 1000000000LL, every % 1000000000LL}, {first / 1000000000LL, first % 1000000000LL}};
    CHECK(timer_settime(t, 0, &it, NULL) == 0);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_a;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    CHECK(sigaction(SIGRTMIN + 4, &sa, NULL) == 0);
    signal(SIGUSR1, SIG_IGN);
    clockid_t cpu;
    CHECK(clock_getcpuclockid(getpid(), &cpu) == 0);
    ids[0] = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 4, 0x1234);
    ids[1] = make(CLOCK_REALTIME, SIGEV_THREAD_ID, SIGUSR1, 77);
    ids[2] = make(CLOCK_BOOTTIME, SIGEV_NONE, 0, 0);
    ids[3] = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0);
    ids[4] = make(cpu, SIGEV_NONE, 0, 0);
    arm(ids[0], interval[0], interval[0]);
    arm(ids[1], 1000000000000LL, 0);
    arm(ids[2], 500000000000LL, interval[2]);
    arm(ids[4], 900000000000LL, 0);
    for (int i = 0; i < N; i++) left[i] = 1LL << 62;
    check(0);

    ready();
    int at_restart = -1;
    for (int i = 1; i <= total; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            at_restart = a_count;
        }
        check(i);
        if (at_restart >= 0 && i == total) {
            if (a_count - at_restart < 5) FAIL("timer a fired %d times since the restart", a_count - at_restart);
            say("TIMER a fired %d times since the restart", a_count - at_restart);
        }
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE timers");
    return 0;
}
