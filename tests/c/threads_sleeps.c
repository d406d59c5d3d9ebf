/* Sleeps of threads other than the checkpointing one end as they would have,
 * in the restarted process too (issues 11 and 13): nine worker threads, each
 * making one kind of 40 ms sleep over and over, once per round, without
 * retrying, fail on EINTR or an early return:
 *   nanosleep with rem, nanosleep without (usleep's), clock_nanosleep
 *   TIMER_ABSTIME on CLOCK_MONOTONIC, relative clock_nanosleep with rem, poll,
 *   select, ppoll, epoll_wait on an epoll nobody writes to, and a
 *   pthread_cond_timedwait (a futex wait) that must time out.
 * (argv[2] sets another length, in ms.)
 * The workers sleep nearly all the time, so the checkpoint (the main thread
 * takes it: it does not block the trigger) finds them in their sleeps. The main
 * thread ticks; at the end every worker is joined and its rounds are printed. */
#define _GNU_SOURCE
#include "threads.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>

static long MS = 40; /* argv[2] */
static const char *kinds[] = {"nanosleep-rem", "nanosleep", "clock_nanosleep-abs", "clock_nanosleep-rel", "poll",
                              "select",        "ppoll",     "epoll_wait",          "cond_timedwait"};
#define KINDS 9

static atomic_int stop;
static int epfd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static long rounds[KINDS];

static long long ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_once(int kind, long round) {
    struct timespec t = {MS / 1000, MS % 1000 * 1000000L}, rem = {0, 0};
    long long t0 = ns(), deadline = t0 + MS * 1000000LL;
    struct timespec d = {deadline / 1000000000LL, deadline % 1000000000LL};
    int r = 0;
    switch (kind) {
    case 0: r = nanosleep(&t, &t); break;
    case 1: r = nanosleep(&t, NULL); break;
    case 2:
        r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
        if (r) errno = r, r = -1;
        break;
    case 3:
        r = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &rem);
        if (r) errno = r, r = -1;
        break;
    case 4: r = poll(NULL, 0, MS); break;
    case 5: {
        struct timeval tv = {MS / 1000, MS % 1000 * 1000};
        r = select(0, NULL, NULL, NULL, &tv);
        break;
    }
    case 6: r = ppoll(NULL, 0, &t, NULL); break;
    case 7: {
        struct epoll_event ev;
        r = epoll_wait(epfd, &ev, 1, MS);
        break;
    }
    default:
        pthread_mutex_lock(&lock);
        r = pthread_cond_timedwait(&cond, &lock, &d);
        pthread_mutex_unlock(&lock);
        if (r != ETIMEDOUT) FAIL("round %ld: %s returned %d (%s)", round, kinds[kind], r, strerror(r));
        r = 0;
        break;
    }
    if (r != 0) FAIL("round %ld: %s returned %d (%s)", round, kinds[kind], r, strerror(errno));
    long long took = ns() - t0;
    if (took < (MS - 1) * 1000000LL) FAIL("round %ld: %s returned after %lld ns", round, kinds[kind], took);
    if (kind == 2 && ns() < deadline) FAIL("round %ld: %s returned before its deadline", round, kinds[kind]);
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
        say("ROUNDS %s %ld", kinds[k], rounds[k]);
    }
    say("DONE thread sleeps");
    return 0;
}
