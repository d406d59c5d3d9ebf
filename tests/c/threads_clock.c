/* CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from their checkpointed values in
 * a restarted multi-threaded process (a time namespace with offsets), however
 * long the image waited: each tick records both clocks; the first tick after
 * the restart checks that neither moved by more than ARGV[2] ms (default 700)
 * since the last tick before it, nor went backwards. The test waits longer
 * than that between the checkpoint and the restart. A worker thread makes the
 * image multi-threaded and checks the same of its own readings. */
#define _GNU_SOURCE
#include "threads.h"

#include <stdatomic.h>

static long long ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long limit_ms = 700;
static atomic_int stop;

static void check(const char *who, long long *last_mono, long long *last_boot) {
    long long m = ns(CLOCK_MONOTONIC), b = ns(CLOCK_BOOTTIME);
    if (*last_mono) {
        long long dm = m - *last_mono, db = b - *last_boot;
        if (dm < 0 || db < 0) FAIL("%s: a clock went backwards (monotonic %lld ns, boottime %lld ns)", who, dm, db);
        if (dm > limit_ms * 1000000LL || db > limit_ms * 1000000LL)
            FAIL("%s: the clocks jumped (monotonic %lld ms, boottime %lld ms)", who, dm / 1000000, db / 1000000);
    }
    *last_mono = m;
    *last_boot = b;
}

static void *worker(void *arg) {
    (void)arg;
    long long m = 0, b = 0;
    while (!atomic_load(&stop)) {
        check("worker", &m, &b);
        pause_ms(10);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    if (argc > 2) limit_ms = atol(argv[2]);
    pthread_t w;
    if (pthread_create(&w, NULL, worker, NULL)) FAIL("pthread_create");
    long long m = 0, b = 0;
    ready_threads();
    for (int i = 1; i <= total; i++) {
        pause_ms(20);
        long long before = m;
        check("main", &m, &b);
        if (restarted_threads()) say("RESTARTED clocks went on (+%lld ms)", (m - before) / 1000000);
        say("TICK %d", i);
    }
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    say("DONE clocks");
    return 0;
}
