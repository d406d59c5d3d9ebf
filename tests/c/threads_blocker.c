/* A thread that blocks every signal for good, with the raw system call (so also
 * 33, which sigfillset leaves out and the runtime falls back on):
 * a checkpoint cannot stop it, so it must fail with a message naming the thread,
 * write nothing, and the program, every thread, goes on to the end. */
#include "threads.h"

#include <signal.h>
#include <sys/prctl.h>

static volatile long spins;

static void *blocker(void *arg) {
    (void)arg;
    unsigned long long all = ~0ULL;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
    prctl(PR_SET_NAME, "blocker");
    for (;;) {
        spins++;
        pause_ms(1);
    }
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 40;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocker, NULL) == 0);
    while (spins == 0) pause_ms(1);
    ready_threads();
    long last = -1;
    for (int i = 1; i <= total; i++) {
        if (restarted_threads()) FAIL("restarted: an image was written");
        pause_ms(25);
        if (spins == last) FAIL("the blocking thread stopped at step %d", i);
        last = spins;
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
