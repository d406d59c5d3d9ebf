/* Per-thread state of threads other than the checkpointing one comes back
 * after a restart (issues 11 and 13):
 *   - worker A blocks SIGUSR1 and SIGRTMIN+4; the main thread sends it a
 *     SIGUSR1 (pthread_kill) and two SIGRTMIN+4 with values 7 and 8
 *     (pthread_sigqueue): after the restart all three are pending for A alone
 *     (SigPnd of its /proc/thread-self/status, not ShdPnd), and come out in
 *     order with their siginfo (code, sender pid, value) as recorded before;
 *   - A has nice 3 and timer slack 123456 ns, B 2000000 ns, the main thread
 *     its own (measured at start);
 *   - a SIGEV_THREAD_ID timer (every 20 ms, SIGRTMIN+5, value 42) signals
 *     worker B, which takes its signals with sigtimedwait: after the restart
 *     they still reach B (the main thread and A would leave them pending);
 *   - a SIGUSR2 sent to the process with kill() (SI_USER) is pending for the
 *     process after the restart, with its siginfo.
 * The main thread takes the checkpoint (it does not block the trigger), or
 * with ARGV[2] "worker-takes-trigger" worker A does (only A leaves SIGTSTP
 * unblocked): then the process-wide SIGUSR2, which only the thread-group leader
 * may queue back, is handed to the main thread. */
#define _GNU_SOURCE
#include "threads.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static atomic_int restarts, stop, a_checked, b_after;
static pid_t tid_a, tid_b;
static pthread_barrier_t started;

/* SigPnd and ShdPnd of the calling thread. */
static void pending_sets(unsigned long long *thread, unsigned long long *shared) {
    char buf[4096];
    read_proc("/proc/thread-self/status", buf, sizeof buf);
    char *p = strstr(buf, "SigPnd:"), *q = strstr(buf, "ShdPnd:");
    if (!p || !q) FAIL("no SigPnd/ShdPnd");
    *thread = strtoull(p + 7, NULL, 16);
    *shared = strtoull(q + 7, NULL, 16);
}

static unsigned long long bit(int sig) { return 1ULL << (sig - 1); }

static void take(int sig, int code, int value) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    siginfo_t si;
    struct timespec zero = {0, 0};
    if (sigtimedwait(&s, &si, &zero) != sig) FAIL("thread A: signal %d not pending after the restart", sig);
    if (si.si_code != code || si.si_pid != getpid())
        FAIL("thread A: signal %d has code %d pid %d (want %d, %d)", sig, si.si_code, si.si_pid, code, getpid());
    if (value >= 0 && si.si_value.sival_int != value)
        FAIL("thread A: signal %d has value %d (want %d)", sig, si.si_value.sival_int, value);
}

static int code_usr1;

static int worker_takes_trigger;

static void *worker_a(void *arg) {
    (void)arg;
    tid_a = sys_gettid();
    if (worker_takes_trigger) {
        sigset_t t;
        sigemptyset(&t);
        sigaddset(&t, SIGTSTP);
        pthread_sigmask(SIG_UNBLOCK, &t, NULL);
    }
    setpriority(PRIO_PROCESS, 0, 3);
    prctl(PR_SET_TIMERSLACK, 123456UL);
    pthread_barrier_wait(&started);
    int seen = atomic_load(&restarts);
    while (!atomic_load(&stop)) {
        pause_ms(5);
        if (atomic_load(&restarts) == seen) continue;
        seen = atomic_load(&restarts);
        unsigned long long own, shared;
        pending_sets(&own, &shared);
        unsigned long long want = bit(SIGUSR1) | bit(SIGRTMIN + 4);
        if ((own & want) != want || (shared & want))
            FAIL("thread A: pending for the thread %llx, process-wide %llx after the restart", own, shared);
        if (sys_gettid() != tid_a) FAIL("thread A: tid %d, was %d", sys_gettid(), tid_a);
        if (getpriority(PRIO_PROCESS, 0) != 3) FAIL("thread A: nice %d", getpriority(PRIO_PROCESS, 0));
        if (prctl(PR_GET_TIMERSLACK) != 123456) FAIL("thread A: timer slack %d", prctl(PR_GET_TIMERSLACK));
        take(SIGUSR1, code_usr1, -1);
        take(SIGRTMIN + 4, SI_QUEUE, 7);
        take(SIGRTMIN + 4, SI_QUEUE, 8);
        atomic_store(&a_checked, 1);
    }
    return NULL;
}

static void *worker_b(void *arg) {
    (void)arg;
    tid_b = sys_gettid();
    prctl(PR_SET_TIMERSLACK, 2000000UL);
    pthread_barrier_wait(&started);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 5);
    int seen = atomic_load(&restarts);
    while (!atomic_load(&stop)) {
        siginfo_t si;
        struct timespec t = {0, 300 * 1000000L};
        int r = sigtimedwait(&s, &si, &t);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) FAIL("thread B: no timer signal within 300 ms (%s)", strerror(errno));
        if (si.si_value.sival_int != 42 || si.si_code != SI_TIMER) FAIL("thread B: bad timer siginfo");
        if (atomic_load(&restarts) != seen) {
            if (prctl(PR_GET_TIMERSLACK) != 2000000) FAIL("thread B: timer slack %d", prctl(PR_GET_TIMERSLACK));
            atomic_fetch_add(&b_after, 1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    worker_takes_trigger = argc > 2 && !strcmp(argv[2], "worker-takes-trigger");
    long main_slack = prctl(PR_GET_TIMERSLACK);
    /* Every thread blocks the signals; A and B inherit the mask. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGRTMIN + 4);
    sigaddset(&block, SIGRTMIN + 5);
    sigaddset(&block, SIGUSR2);
    if (worker_takes_trigger) sigaddset(&block, SIGTSTP);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_barrier_init(&started, NULL, 3);
    pthread_t a, b;
    if (pthread_create(&a, NULL, worker_a, NULL) || pthread_create(&b, NULL, worker_b, NULL)) FAIL("pthread_create");
    pthread_barrier_wait(&started);
    pthread_kill(a, SIGUSR1);
    union sigval v7 = {.sival_int = 7}, v8 = {.sival_int = 8};
    pthread_sigqueue(a, SIGRTMIN + 4, v7);
    pthread_sigqueue(a, SIGRTMIN + 4, v8);
    /* The code the kernel gives pthread_kill's tgkill, recorded as it is. */
    {
        unsigned long long own, shared;
        pending_sets(&own, &shared);
        if (shared & (bit(SIGUSR1) | bit(SIGRTMIN + 4))) FAIL("signals for A are process-wide");
    }
    code_usr1 = SI_TKILL;
    {
        /* Learn it from a SIGUSR1 sent to ourselves the same way. */
        pthread_kill(pthread_self(), SIGUSR1);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        siginfo_t si;
        if (sigwaitinfo(&s, &si) == SIGUSR1) code_usr1 = si.si_code;
    }
    kill(getpid(), SIGUSR2);
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 5};
    ev.sigev_value.sival_int = 42;
    ev._sigev_un._tid = tid_b; /* sigev_notify_thread_id */
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer)) FAIL("timer_create: %s", strerror(errno));
    struct itimerspec its = {{0, 20000000}, {0, 20000000}};
    timer_settime(timer, 0, &its, NULL);
    ready_threads();
    for (int i = 1; i <= total; i++) {
        pause_ms(25);
        if (restarted_threads()) {
            atomic_fetch_add(&restarts, 1);
            if (prctl(PR_GET_TIMERSLACK) != main_slack) FAIL("main: timer slack %d", prctl(PR_GET_TIMERSLACK));
            unsigned long long own, shared;
            pending_sets(&own, &shared);
            if (!(shared & bit(SIGUSR2)) || (own & bit(SIGUSR2)))
                FAIL("main: SIGUSR2 not pending process-wide (thread %llx, process %llx)", own, shared);
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, SIGUSR2);
            siginfo_t si;
            struct timespec zero = {0, 0};
            if (sigtimedwait(&s, &si, &zero) != SIGUSR2 || si.si_code != SI_USER || si.si_pid != getpid())
                FAIL("main: SIGUSR2's siginfo changed (code %d, pid %d)", si.si_code, si.si_pid);
            say("RESTARTED thread state");
        }
        say("TICK %d", i);
    }
    atomic_store(&stop, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (atomic_load(&restarts)) {
        if (!atomic_load(&a_checked)) FAIL("thread A never checked its state after the restart");
        if (atomic_load(&b_after) < 5) FAIL("thread B got %d timer signals after the restart", atomic_load(&b_after));
        say("THREAD STATE ok");
    }
    say("DONE thread state");
    return 0;
}
