/* Threads caught by the checkpoint wherever they are: waiting on a condition
 * variable (futex), blocked in read() on a pipe, in nanosleep, inside a signal
 * handler, holding a normal, a recursive and a robust mutex, and three threads
 * going round a barrier. Every tick the main thread checks that each of them made
 * progress; each thread checks its own tid and that every unlock by the owner
 * succeeds. The checkpoint moment is the harness's. */
#include "threads.h"

#include <errno.h>
#include <signal.h>

enum { COND, PIPE, SLEEP, HANDLER, MUTEX, BAR0, BAR1, BAR2, N };
static volatile long progress[N];
static volatile pid_t tids[N];

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long generation;
static int pipefd[2];
static pthread_mutex_t recursive, robust, normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;

static void mine(int k) {
    if (tids[k] == 0) tids[k] = sys_gettid();
    if (sys_gettid() != tids[k]) FAIL("thread %d: tid %d, was %d", k, (int)sys_gettid(), (int)tids[k]);
}

static void *cond_waiter(void *a) {
    (void)a;
    long seen = 0;
    for (;;) {
        pthread_mutex_lock(&m);
        while (generation == seen) pthread_cond_wait(&cv, &m);
        seen = generation;
        CHECK(pthread_mutex_unlock(&m) == 0);
        mine(COND);
        progress[COND]++;
    }
}

static void *pipe_reader(void *a) {
    (void)a;
    for (;;) {
        char c;
        ssize_t n = read(pipefd[0], &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1) FAIL("read on the pipe: %zd", n);
        mine(PIPE);
        progress[PIPE]++;
    }
}

static void *sleeper(void *a) {
    (void)a;
    for (;;) {
        struct timespec t = {0, 20 * 1000000L};
        nanosleep(&t, NULL);
        mine(SLEEP);
        progress[SLEEP]++;
    }
}

static void on_usr2(int sig) {
    (void)sig;
    for (;;) { /* lives in the handler */
        mine(HANDLER);
        progress[HANDLER]++;
        pause_ms(3);
    }
}

static void *in_handler(void *a) {
    (void)a;
    mine(HANDLER);
    raise(SIGUSR2);
    FAIL("returned from the handler");
}

static void *mutex_holder(void *a) {
    (void)a;
    for (;;) {
        CHECK(pthread_mutex_lock(&recursive) == 0);
        CHECK(pthread_mutex_lock(&recursive) == 0);
        int r = pthread_mutex_lock(&robust);
        if (r != 0) FAIL("robust lock: %d", r);
        CHECK(pthread_mutex_lock(&normal) == 0);
        pause_ms(7); /* held across many checkpoint moments */
        mine(MUTEX);
        CHECK(pthread_mutex_unlock(&normal) == 0);
        if ((r = pthread_mutex_unlock(&robust)) != 0) FAIL("robust unlock by its owner: %d", r);
        if ((r = pthread_mutex_unlock(&recursive)) != 0) FAIL("recursive unlock: %d", r);
        if ((r = pthread_mutex_unlock(&recursive)) != 0) FAIL("recursive unlock: %d", r);
        progress[MUTEX]++;
        pause_ms(1);
    }
}

static void *barrier_thread(void *a) {
    int k = (int)(long)a;
    for (;;) {
        int r = pthread_barrier_wait(&barrier);
        if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD) FAIL("barrier: %d", r);
        mine(k);
        progress[k]++;
        pause_ms(1 + k - BAR0);
    }
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&recursive, &a);
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_barrier_init(&barrier, NULL, 3);
    CHECK(pipe(pipefd) == 0);
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    void *(*fn[])(void *) = {cond_waiter, pipe_reader, sleeper, in_handler, mutex_holder};
    pthread_t t;
    for (int k = 0; k < 5; k++) CHECK(pthread_create(&t, NULL, fn[k], NULL) == 0);
    for (int k = BAR0; k <= BAR2; k++) CHECK(pthread_create(&t, NULL, barrier_thread, (void *)(long)k) == 0);
    ready_threads();
    long last[N] = {0};
    for (int i = 1; i <= total; i++) {
        if (restarted_threads()) say("RESTARTED blocking threads");
        pthread_mutex_lock(&m);
        generation++;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&m);
        if (write(pipefd[1], "x", 1) != 1) FAIL("write to the pipe");
        pause_ms(25);
        for (int k = 0; k < N; k++) {
            for (int n = 0; progress[k] == last[k] && n < 2000; n++) pause_ms(1);
            if (progress[k] == last[k]) FAIL("thread %d made no progress at step %d", k, i);
            last[k] = progress[k];
        }
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
