/* Helpers of the thread tests: a restart keeps the pid (and every tid), so a
 * restart is noticed by the process's start time (/proc/self/stat field 22),
 * which a restarted process gets anew. */
#ifndef CKPT_TEST_THREADS_H
#define CKPT_TEST_THREADS_H

#include "tick.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>

static unsigned long long start_time_;

static unsigned long long start_time(void) {
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) FAIL("cannot open /proc/self/stat");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) FAIL("bad /proc/self/stat");
    p += 2; /* field 3 */
    for (int i = 3; i < 22; i++) {
        p = strchr(p, ' ');
        if (!p) FAIL("bad /proc/self/stat");
        p++;
    }
    return strtoull(p, NULL, 10);
}

__attribute__((unused)) static void ready_threads(void) {
    start_time_ = start_time();
    say("READY");
}

/* 1 exactly once after each restart. */
__attribute__((unused)) static int restarted_threads(void) {
    unsigned long long t = start_time();
    if (t == start_time_) return 0;
    start_time_ = t;
    return 1;
}

__attribute__((unused)) static pid_t sys_gettid(void) { return (pid_t)syscall(SYS_gettid); }

#endif
