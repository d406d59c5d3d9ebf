/* cargo xtask bench: N threads that sleep 1 ms at a time (so a stop catches most
 * of them inside nanosleep, as a real thread pool would be). Prints READY, then,
 * after a restart, RUNNING once every thread has made progress again. Runs until
 * killed. */
#include "threads.h"

#define MAXT 600
static volatile long count[MAXT];

static void *work(void *arg) {
    volatile long *c = arg;
    for (;;) {
        (*c)++;
        pause_ms(1);
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (n > MAXT) n = MAXT;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 << 10);
    pthread_t t;
    for (int i = 1; i < n; i++) CHECK(pthread_create(&t, &at, work, (void *)&count[i]) == 0);
    for (int i = 1; i < n; i++)
        while (count[i] == 0) pause_ms(1);
    ready_threads();
    for (;;) {
        if (restarted_threads()) {
            long seen[MAXT];
            for (int i = 1; i < n; i++) seen[i] = count[i];
            for (int i = 1; i < n; i++)
                while (count[i] == seen[i]) {
                    struct timespec ts = {0, 100000};
                    nanosleep(&ts, NULL);
                }
            say("RUNNING");
        }
        pause_ms(5);
    }
}
