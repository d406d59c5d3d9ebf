/* The target program of the incremental part of `cargo xtask bench`
 * (xtask/src/bench/incr.rs).
 *
 *   bench_incr MIB PERMILLE
 *
 * Maps MIB MiB of anonymous memory and fills every page with pseudo-random
 * data, then sleeps in a loop, answering signals (lines on stdout, times in
 * CLOCK_MONOTONIC ns):
 *
 *   READY                  filled
 *   SIGUSR1 -> DIRTY n=N   N = PERMILLE/1000 of the pages, scattered, got one
 *                          word each (what an incremental image then holds)
 *   SIGUSR2 -> WRITE ns=T pages=N
 *                          one word written in each of the first N = MIB/4 MiB of
 *                          pages, timed: after a checkpoint with write tracking,
 *                          each first write to a page is a write-protect fault
 *   RESTARTED sum=HEX      a new pid (the image was restarted): the checksum of
 *                          the whole memory, then exit 0
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static volatile sig_atomic_t dirty, timed;

static void on_usr1(int s) {
    (void)s;
    dirty = 1;
}
static void on_usr2(int s) {
    (void)s;
    timed = 1;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 1024;
    size_t permille = argc > 2 ? strtoul(argv[2], 0, 10) : 10;
    size_t len = mib << 20, pages = len / PAGE;
    uint64_t *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len / 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = x;
    }
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    pid_t pid = getpid();
    uint64_t round = 0;
    printf("READY\n");
    fflush(stdout);
    for (;;) {
        usleep(1000);
        if (getpid() != pid) {
            uint64_t h = 1469598103934665603ull;
            for (size_t i = 0; i < len / 8; i++) h = (h ^ p[i]) * 1099511628211ull;
            printf("RESTARTED sum=%016llx\n", (unsigned long long)h);
            fflush(stdout);
            return 0;
        }
        if (dirty) {
            dirty = 0;
            round++;
            size_t n = pages * permille / 1000;
            for (size_t k = 0; k < n; k++) {
                uint64_t r = (k * 2654435761u + round * 40503u) % pages;
                p[r * (PAGE / 8) + round % (PAGE / 8)] ^= round;
            }
            printf("DIRTY n=%zu\n", n);
            fflush(stdout);
        }
        if (timed) {
            timed = 0;
            size_t n = pages / 4;
            uint64_t t0 = now_ns();
            for (size_t k = 0; k < n; k++) p[k * (PAGE / 8) + 1] += 1;
            uint64_t t1 = now_ns();
            printf("WRITE ns=%llu pages=%zu\n", (unsigned long long)(t1 - t0), n);
            fflush(stdout);
        }
    }
}
