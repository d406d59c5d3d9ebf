/* The line protocol of the end-to-end test programs (see tests/common/mod.rs).
 *
 *   READY          set up; the harness may now checkpoint at any moment
 *   TICK n         one step of work done, state verified
 *   RESTARTED ...  the first step that runs in a new process (after a restart)
 *   FAIL: ...      a check failed; the program exits 1
 *   DONE           the end
 *   # ...          padding (large writes); the harness drops these lines
 *
 * A restart is noticed by a change of PID: the restarted process is a new one. */
#ifndef CKPT_TEST_TICK_H
#define CKPT_TEST_TICK_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pid_t tick_pid_;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

#define FAIL(...)                                                                  \
    do {                                                                           \
        printf("FAIL: %s:%d: ", __FILE__, __LINE__);                               \
        say(__VA_ARGS__);                                                          \
        exit(1);                                                                   \
    } while (0)

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) FAIL("check failed: %s", #cond);                              \
    } while (0)

__attribute__((unused)) static void ready(void) {
    tick_pid_ = getpid();
    say("READY");
}

/* 1 exactly once after each restart (the PID changed since the last call). */
__attribute__((unused)) static int restarted(void) {
    pid_t p = getpid();
    if (p == tick_pid_) return 0;
    tick_pid_ = p;
    return 1;
}

/* Sleep MS milliseconds, however often signals interrupt the sleep. */
__attribute__((unused)) static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

/* Read the /proc (or /sys) file PATH whole into BUF (NUL-terminated; at most
 * LEN - 1 bytes), with every signal blocked meanwhile, so that no checkpoint
 * falls while the file is open: the kernel writes such a file as it is read,
 * and a restart in the middle would join the text of two processes (ckpt warns
 * about a file like that held partway). Returns the length read. */
__attribute__((unused)) static size_t read_proc(const char *path, char *buf, size_t len) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0) n += r;
    if (fd >= 0) close(fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fd < 0) FAIL("cannot open %s", path);
    buf[n] = 0;
    return n;
}

#endif
