/* pthread_cancel reaches the threads of a restarted process: one worker
 * sleeps (nanosleep, 5 s at a time: the sleep the checkpoint interrupts is
 * still being finished by the runtime when the cancel comes), one blocks in
 * read() on a pipe nobody writes to, one waits on a condition variable; every
 * one is a cancellation point. At the first tick after the restart the main
 * thread cancels each and joins it: each must end with PTHREAD_CANCELED, its
 * cleanup handler run, and the mutex the waiter held must be free. */
#define _GNU_SOURCE
#include "threads.h"

#include <stdatomic.h>

static int pfd[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static atomic_int cleaned[3];

static void cleanup(void *arg) { atomic_fetch_add(&cleaned[(long)arg], 1); }
static void unlock(void *arg) { pthread_mutex_unlock(arg); }

static void *sleeper(void *arg) {
    pthread_cleanup_push(cleanup, arg);
    for (;;) {
        struct timespec t = {5, 0};
        nanosleep(&t, NULL);
    }
    pthread_cleanup_pop(0);
    return NULL;
}

static void *reader(void *arg) {
    pthread_cleanup_push(cleanup, arg);
    char c;
    for (;;)
        if (read(pfd[0], &c, 1) > 0) FAIL("reader: read a byte nobody wrote");
    pthread_cleanup_pop(0);
    return NULL;
}

static void *waiter(void *arg) {
    pthread_cleanup_push(cleanup, arg);
    pthread_mutex_lock(&lock);
    pthread_cleanup_push(unlock, &lock);
    for (;;) pthread_cond_wait(&cond, &lock);
    pthread_cleanup_pop(1);
    pthread_cleanup_pop(0);
    return NULL;
}

static void cancel_all(pthread_t *th) {
    for (int k = 0; k < 3; k++) {
        if (pthread_cancel(th[k])) FAIL("pthread_cancel %d", k);
        void *r;
        if (pthread_join(th[k], &r)) FAIL("pthread_join %d", k);
        if (r != PTHREAD_CANCELED) FAIL("thread %d ended with %p, not PTHREAD_CANCELED", k, r);
        if (atomic_load(&cleaned[k]) != 1) FAIL("thread %d: cleanup ran %d times", k, atomic_load(&cleaned[k]));
    }
    /* A mutex the cancelled waiter held is free again. */
    if (pthread_mutex_trylock(&lock)) FAIL("the waiter's mutex is still held");
    pthread_mutex_unlock(&lock);
    say("CANCELLED ok");
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    if (pipe(pfd)) FAIL("pipe");
    void *(*fn[3])(void *) = {sleeper, reader, waiter};
    pthread_t th[3];
    for (long k = 0; k < 3; k++)
        if (pthread_create(&th[k], NULL, fn[k], (void *)k)) FAIL("pthread_create");
    ready_threads();
    int restarts = 0;
    for (int i = 1; i <= total; i++) {
        pause_ms(20);
        if (restarted_threads() && !restarts++) {
            say("RESTARTED cancelling");
            cancel_all(th);
        }
        say("TICK %d", i);
    }
    say("DONE cancel");
    return 0;
}
