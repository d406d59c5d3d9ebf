/* Worker threads that count under an error-checking mutex, checkpointed at any
 * moment. Before and after a restart every worker checks that gettid() is the tid
 * it recorded when it started, and every mutex unlock succeeds (an error-checking
 * mutex stores its owner's tid). After a restart the main thread checks getpid(),
 * signals each worker with pthread_kill (the handler must run on that worker),
 * creates and joins a new thread, and every worker must keep counting. */
#include "threads.h"

#include <signal.h>

#define MAXW 600

struct worker {
    pthread_t thread;
    volatile pid_t tid;
    volatile long count;
    volatile pid_t got_signal_on;
};

static struct worker workers[MAXW];
static int nworkers;
static pthread_mutex_t lock;
static long shared;
static __thread struct worker *self;

static void on_usr1(int sig) {
    (void)sig;
    self->got_signal_on = sys_gettid();
}

static void *work(void *arg) {
    struct worker *w = arg;
    self = w;
    w->tid = sys_gettid();
    for (;;) {
        if (sys_gettid() != w->tid) FAIL("worker tid changed: %d, was %d", (int)sys_gettid(), (int)w->tid);
        if (pthread_mutex_lock(&lock) != 0) FAIL("lock failed");
        shared++;
        w->count++;
        int r = pthread_mutex_unlock(&lock);
        if (r != 0) FAIL("unlock by the owner failed: %d", r);
        pause_ms(2);
    }
    return NULL;
}

static void *short_lived(void *arg) {
    return (void *)(long)(sys_gettid() + (long)arg);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    nworkers = argc > 2 ? atoi(argv[2]) : 4;
    if (nworkers > MAXW) nworkers = MAXW;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&lock, &a);
    signal(SIGUSR1, on_usr1);
    pid_t pid = getpid();
    for (int i = 0; i < nworkers; i++) {
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 64 << 10);
        CHECK(pthread_create(&workers[i].thread, &at, work, &workers[i]) == 0);
    }
    for (int i = 0; i < nworkers; i++)
        while (workers[i].tid == 0) pause_ms(1);
    /* "worker-takes-trigger": the main thread blocks SIGTSTP, so the checkpoint
     * signal goes to a worker, which then stops the others, the main thread too. */
    if (argc > 3 && strcmp(argv[3], "worker-takes-trigger") == 0) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGTSTP);
        CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    }
    ready_threads();
    long last[MAXW] = {0};
    for (int i = 1; i <= total; i++) {
        if (restarted_threads()) {
            if (getpid() != pid) FAIL("pid %d after restart, was %d", (int)getpid(), (int)pid);
            for (int k = 0; k < nworkers; k++) {
                workers[k].got_signal_on = 0;
                CHECK(pthread_kill(workers[k].thread, SIGUSR1) == 0);
                for (int n = 0; workers[k].got_signal_on == 0 && n < 2000; n++) pause_ms(1);
                if (workers[k].got_signal_on != workers[k].tid)
                    FAIL("pthread_kill of worker %d (tid %d) ran on %d", k, (int)workers[k].tid,
                         (int)workers[k].got_signal_on);
            }
            pthread_t t;
            void *res;
            CHECK(pthread_create(&t, NULL, short_lived, (void *)1L) == 0);
            CHECK(pthread_join(t, &res) == 0);
            CHECK((long)res > 1);
            say("RESTARTED threads ok (%d workers)", nworkers);
        }
        pause_ms(25);
        for (int k = 0; k < nworkers; k++) {
            long c = workers[k].count;
            for (int n = 0; c == last[k] && n < 1000; n++) {
                pause_ms(1);
                c = workers[k].count;
            }
            if (c == last[k]) FAIL("worker %d stopped at step %d", k, i);
            last[k] = c;
        }
        pthread_mutex_lock(&lock);
        long s = shared, sum = 0;
        for (int k = 0; k < nworkers; k++) sum += workers[k].count;
        pthread_mutex_unlock(&lock);
        if (s != sum) FAIL("shared %ld != sum %ld", s, sum);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
