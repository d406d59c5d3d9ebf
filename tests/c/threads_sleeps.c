/* Sleeps of threads other than the checkpointing one end as they would have,
 * in the restarted process too (issues 11 and 13): nine worker threads, each
 * making one kind of 40 ms sleep over and over, once per round, without
 * retrying, fail on EINTR or an early return:
 *   the seven of sleeps.h (nanosleep with and without rem, clock_nanosleep
 *   TIMER_ABSTIME on CLOCK_MONOTONIC, which the restart's time namespace keeps
 *   going, and relative, poll, select, ppoll), epoll_wait on an epoll nobody
 *   writes to, and a pthread_cond_timedwait (a futex wait) that must time out.
 * (argv[2] sets another length, in ms.)
 * The workers sleep nearly all the time, so the checkpoint (the main thread
 * takes it: it does not block the trigger) finds them in their sleeps. The main
 * thread ticks; at the end every worker is joined and its rounds are printed. */
#define _GNU_SOURCE
#include "threads.h"

#include "sleeps.h"

#include <stdatomic.h>
#include <sys/epoll.h>

static long MS = 40; /* argv[2] */
/* sleeps.h's seven, then epoll_wait and cond_timedwait. */
#define KINDS (SLEEP_KINDS + 2)
static const char *kind_name(int k) { return k < SLEEP_KINDS ? sleep_kinds[k] : k == 7 ? "epoll_wait" : "cond_timedwait"; }

static atomic_int stop;
static int epfd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static long rounds[KINDS];

static void sleep_once(int kind, long round) {
    long long t0 = clock_ns(CLOCK_MONOTONIC), deadline = 0;
    int r;
    if (kind < SLEEP_KINDS) {
        r = sleep_kind(kind, MS, CLOCK_MONOTONIC, &deadline);
    } else if (kind == 7) {
        struct epoll_event ev;
        r = epoll_wait(epfd, &ev, 1, MS);
    } else {
        long long m = t0 + MS * 1000000LL;
        struct timespec d = {m / 1000000000LL, m % 1000000000LL};
        pthread_mutex_lock(&lock);
        r = pthread_cond_timedwait(&cond, &lock, &d);
        pthread_mutex_unlock(&lock);
        if (r != ETIMEDOUT) FAIL("round %ld: %s returned %d (%s)", round, kind_name(kind), r, strerror(r));
        r = 0;
    }
    if (r != 0) FAIL("round %ld: %s returned %d (%s)", round, kind_name(kind), r, strerror(errno));
    long long took = clock_ns(CLOCK_MONOTONIC) - t0;
    if (took < (MS - 1) * 1000000LL) FAIL("round %ld: %s returned after %lld ns", round, kind_name(kind), took);
    if (kind == 2 && clock_ns(CLOCK_MONOTONIC) < deadline)
        FAIL("round %ld: %s returned before its deadline", round, kind_name(kind));
}

static void *worker(void *arg) {
    int kind = (int)(long)arg;
    while (!atomic_load(&stop)) sleep_once(kind, ++rounds[kind]);
    return NULL;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    if (argc > 2) MS = atol(argv[2]);
    epfd = epoll_create1(0);
    int pfd[2];
    if (epfd < 0 || pipe(pfd)) FAIL("epoll_create1/pipe: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, pfd[0], &ev)) FAIL("epoll_ctl: %s", strerror(errno));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_t th[KINDS];
    for (long k = 0; k < KINDS; k++)
        if (pthread_create(&th[k], NULL, worker, (void *)k)) FAIL("pthread_create");
    ready_threads();
    for (int i = 1; i <= total; i++) {
        pause_ms(25);
        if (restarted_threads()) say("RESTARTED thread sleeps at %d", i);
        say("TICK %d", i);
    }
    atomic_store(&stop, 1);
    for (int k = 0; k < KINDS; k++) {
        pthread_join(th[k], NULL);
        say("ROUNDS %s %ld", kind_name(k), rounds[k]);
    }
    say("DONE thread sleeps");
    return 0;
}
