/* Blocking system calls that a stop and continue make fail with EINTR
 * (signal(7)): epoll_wait and sigtimedwait, each with a short timeout, in a
 * loop. ckpt hijack interrupts the thread wherever it is, most likely inside one
 * of them: the program must never see EINTR (ckpt starts the call again), and
 * nanosleep must sleep its whole time. Prints TICK n after each round.
 * Usage: hijack_eintr ROUNDS */
#include "tick.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &usr2, NULL) == 0);
    ready();
    for (int i = 1; i <= rounds; i++) {
        struct epoll_event ev;
        int n = epoll_wait(ep, &ev, 1, 15);
        if (n != 0) FAIL("epoll_wait returned %d (%s)", n, n < 0 ? strerror(errno) : "an event");
        struct timespec t = {0, 15 * 1000000L};
        n = sigtimedwait(&usr2, NULL, &t);
        if (n != -1 || errno != EAGAIN) FAIL("sigtimedwait returned %d (%s)", n, strerror(errno));
        struct timespec a, b, nap = {0, 5 * 1000000L};
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (nanosleep(&nap, NULL) != 0) FAIL("nanosleep: %s", strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &b);
        long ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
        if (ns < 5 * 1000000L) FAIL("nanosleep slept %ld ns of 5 ms", ns);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
