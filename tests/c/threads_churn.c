/* Threads that come and go: each step starts and joins short-lived threads
 * (each adds its number to a total), as programs with a thread per request or
 * per task do. Checkpointed (continue mode) at moments the harness does not
 * control, some checkpoints find a thread that ends before it can be stopped:
 * every image must still be whole and restart. argv[1]: steps (default 60).
 * The total after each step is checked against the formula. A restart keeps
 * the pid when the image has threads: it is noticed by the start time. */
#include "threads.h"

#include <stdint.h>

static volatile long total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *add(void *arg) {
    pthread_mutex_lock(&lock);
    total += (long)(intptr_t)arg;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 60;
    ready_threads();
    long want = 0;
    for (int i = 1; i <= steps; i++) {
        if (restarted_threads()) say("RESTARTED at %d", i);
        /* 25 ms of threads: start one, join it, again. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long n = 0;
        do {
            pthread_t th;
            CHECK(pthread_create(&th, NULL, add, (void *)(intptr_t)(n + 1)) == 0);
            CHECK(pthread_join(th, NULL) == 0);
            n++;
            want += n;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 25000000L);
        if (total != want) FAIL("total %ld, want %ld at step %d", total, want, i);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
