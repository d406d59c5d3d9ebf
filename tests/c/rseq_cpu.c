/* glibc's rseq registration is back after a restart: the kernel keeps the cpu_id
 * field of the thread's rseq area current (it follows sched_setaffinity), and
 * sched_getcpu() agrees with getcpu(2). */
#define _GNU_SOURCE
#include "tick.h"

#include <sched.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

static volatile struct rseq *area(void) {
    return (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    CHECK(sched_setaffinity(0, sizeof s, &s) == 0);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    int ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (__rseq_size == 0) FAIL("glibc did not register rseq (GLIBC_TUNABLES?)");
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        int want = i % ncpu;
        pin(want);
        unsigned cpu;
        CHECK(syscall(SYS_getcpu, &cpu, NULL, NULL) == 0);
        if ((int)cpu != want) FAIL("pinned to %d, getcpu says %u", want, cpu);
        int32_t rc = area()->cpu_id;
        if (rc < 0) FAIL("rseq not registered at step %d (cpu_id %d)", i, rc);
        if (rc != want) FAIL("rseq cpu_id %d, pinned to %d", rc, want);
        if (sched_getcpu() != want) FAIL("sched_getcpu %d, pinned to %d", sched_getcpu(), want);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
