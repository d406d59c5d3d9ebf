/* eventfd, timerfd, signalfd, epoll and memfd across a restart: the eventfd's counter
 * (added to each step, read every fifth), a one-hour timerfd still armed with
 * about its remaining time and a 10 ms periodic one still firing, a signalfd
 * that still reads SIGUSR2 (blocked), and an epoll instance that still reports
 * the eventfd with the program's data word, and a sealed memfd with its name,
 * content and seals. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

int main(void) {
    int ev = eventfd(0, EFD_NONBLOCK);
    int slow = timerfd_create(CLOCK_MONOTONIC, 0), fast = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec hour = {{0, 0}, {3600, 0}}, tick = {{0, 10000000}, {0, 10000000}};
    CHECK(ev >= 0 && slow >= 0 && fast >= 0);
    CHECK(timerfd_settime(slow, 0, &hour, NULL) == 0 && timerfd_settime(fast, 0, &tick, NULL) == 0);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &m, NULL) == 0);
    int sig = signalfd(-1, &m, SFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0xabcdef0123456789ULL};
    CHECK(sig >= 0 && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == 0);
    int mfd = memfd_create("ckpt-test", MFD_ALLOW_SEALING);
    CHECK(mfd >= 0 && write(mfd, "memfd content", 13) == 13);
    CHECK(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    ready();
    uint64_t added = 0;
    for (int i = 1; i <= 60; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        uint64_t one = 1;
        CHECK(write(ev, &one, 8) == 8);
        added++;
        struct epoll_event got[4];
        int n = epoll_wait(ep, got, 4, 0);
        if (n != 1 || got[0].data.u64 != 0xabcdef0123456789ULL || !(got[0].events & EPOLLIN))
            FAIL("step %d: epoll_wait gave %d (%s)", i, n, strerror(errno));
        if (i % 5 == 0) {
            uint64_t v = 0;
            if (read(ev, &v, 8) != 8 || v != added) FAIL("step %d: eventfd counter %llu, want %llu", i, (unsigned long long)v, (unsigned long long)added);
            added = 0;
        }
        struct itimerspec left;
        CHECK(timerfd_gettime(slow, &left) == 0);
        if (left.it_value.tv_sec < 3500 || left.it_value.tv_sec > 3600) FAIL("step %d: one-hour timer has %ld s left", i, (long)left.it_value.tv_sec);
        pause_ms(25);
        uint64_t fired = 0;
        /* Right after a restart it may not be due yet (the time the process was
         * gone does not count): wait for it, a second at most. */
        struct pollfd pf = {fast, POLLIN, 0};
        poll(&pf, 1, 1000);
        if (read(fast, &fired, 8) != 8 || fired == 0) FAIL("step %d: the periodic timerfd did not fire: %s", i, strerror(errno));
        kill(getpid(), SIGUSR2);
        struct signalfd_siginfo si;
        if (read(sig, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR2) FAIL("step %d: signalfd: %s", i, strerror(errno));
        char mc[16] = "", link[64], lp[64] = "";
        if (pread(mfd, mc, 13, 0) != 13 || memcmp(mc, "memfd content", 13) != 0) FAIL("step %d: memfd content", i);
        if (fcntl(mfd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) FAIL("step %d: memfd seals %d", i, fcntl(mfd, F_GET_SEALS));
        snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
        if (readlink(link, lp, sizeof lp - 1) < 0 || strncmp(lp, "/memfd:ckpt-test", 16) != 0) FAIL("step %d: memfd is %s", i, lp);
        say("TICK %d", i);
    }
    say("DONE");
    return 0;
}
