/* A program with a second thread: a checkpoint is refused (only single-threaded
 * programs can be checkpointed yet), nothing is written, and the program, both
 * threads, goes on to the end. */
#include "tick.h"

#include <pthread.h>

static volatile long spins;

static void *spin(void *arg) {
    (void)arg;
    for (;;) {
        spins++;
        pause_ms(1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spin, NULL) == 0);
    ready();
    long last = -1;
    for (int i = 1; i <= total; i++) {
        if (restarted()) FAIL("restarted: a checkpoint of two threads was written");
        pause_ms(25);
        if (spins == last) FAIL("the second thread stopped at step %d", i);
        last = spins;
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
