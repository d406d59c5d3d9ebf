/* The target program of `cargo xtask bench` (xtask/src/bench.rs), which drives it
 * through the line protocol below. It lives with the test programs because it is
 * one: a small C program run under `ckpt`, compiled the same way.
 *
 *   bench heap MIB rand|half [spin]
 *                              map MIB MiB of anonymous memory, touch every page, then
 *                              loop reading CLOCK_MONOTONIC until killed or restarted:
 *                              spinning with `spin` (continue mode: every gap counts),
 *                              else sleeping 100 us per iteration, so that the harness
 *                              measures its reference writes on a quiet machine.
 *                              rand: every page holds pseudo-random (incompressible)
 *                              data. half: even pages random; of the odd pages, half
 *                              are written with zeros and half only read (which maps
 *                              the kernel's shared zero page).
 *   bench work ITERS           a CPU-bound loop (arithmetic, small malloc/free, vDSO
 *                              clock reads) that prints its own run time.
 *   bench true                 exit at once (the start-up cost).
 *
 * Lines on stdout; every time is CLOCK_MONOTONIC in ns, which is system-wide, so
 * the harness compares them with its own clock readings:
 *
 *   READY sum=HEX t=NS      the memory is filled and summed; the loop starts
 *   GAP max=NS at=NS        on SIGUSR1: the largest gap between two consecutive loop
 *                           iterations since the previous report (the pause a
 *                           checkpoint in continue mode costs the program)
 *   FIRST t=NS              the first iteration that finds a new pid: the restored
 *                           program's first steps after a restart
 *   HEARTBEAT ok t=NS       then, after the checksum of the whole memory was
 *                           computed again and matched: the program is back, whole
 *   WORK ns=NS              `work`: the loop's run time
 *   FAIL: ...               a check failed (exit status 1)
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

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void fail(const char *why) {
    printf("FAIL: %s\n", why);
    fflush(stdout);
    exit(1);
}

/* FNV-1a over 64-bit words: any wrong or missing page changes it. */
static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static volatile sig_atomic_t report;

static void on_usr1(int sig) {
    (void)sig;
    report = 1;
}

static int heap(size_t mib, int half, int spin) {
    size_t len = mib << 20, words = len / 8, per_page = PAGE / 8;
    uint64_t *p = mmap(0, len ? len : PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    uint64_t x = 0x9e3779b97f4a7c15ull;
    volatile uint64_t sink = 0;
    for (size_t pg = 0; pg < len / PAGE; pg++) {
        uint64_t *w = p + pg * per_page;
        if (half && pg % 4 == 1) {
            memset(w, 0, PAGE); /* a real page that holds zeros */
        } else if (half && pg % 4 == 3) {
            sink += w[0]; /* read only: the shared zero page */
        } else {
            for (size_t i = 0; i < per_page; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                w[i] = x;
            }
        }
    }
    (void)sink;
    const uint64_t want = sum(p, words);
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &sa, 0);

    pid_t pid = getpid();
    uint64_t prev = now_ns(), max_gap = 0, gap_at = 0;
    printf("READY sum=%016llx t=%llu\n", (unsigned long long)want, (unsigned long long)prev);
    fflush(stdout);
    for (;;) {
        uint64_t t = now_ns();
        if (t - prev > max_gap) max_gap = t - prev, gap_at = prev;
        prev = t;
        if (getpid() != pid) {
            /* Read the clock again: the checkpoint may have fallen between the read
             * above and getpid, and that reading belongs to the old process. */
            uint64_t first = now_ns();
            printf("FIRST t=%llu\n", (unsigned long long)first);
            fflush(stdout);
            uint64_t got = sum(p, words);
            if (got != want) fail("checksum differs after the restart");
            printf("HEARTBEAT ok t=%llu\n", (unsigned long long)now_ns());
            fflush(stdout);
            return 0;
        }
        if (report) {
            /* SIGUSR1 is often delivered the moment a checkpoint ends (it was
             * blocked meanwhile), that is before the next clock read: count the
             * gap up to now, or the pause would be reported one window late. */
            uint64_t r = now_ns();
            if (r - prev > max_gap) max_gap = r - prev, gap_at = prev;
            report = 0;
            printf("GAP max=%llu at=%llu\n", (unsigned long long)max_gap,
                   (unsigned long long)gap_at);
            fflush(stdout);
            max_gap = 0;
            prev = now_ns();
        }
        if (!spin) {
            /* A restart lands in this sleep more often than not: it then returns
             * early (EINTR), so the first iteration still follows at once. */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, 0);
        }
    }
}

static int work(long iters) {
    uint64_t t0 = now_ns(), x = 1, acc = 0;
    for (long i = 0; i < iters; i++) {
        for (int k = 0; k < 1000; k++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, acc += x;
        char *b = malloc(64 + (x & 1023));
        b[0] = (char)x;
        acc += (uint64_t)b[0];
        free(b);
        if (i % 64 == 0) acc += now_ns() & 1;
    }
    printf("WORK ns=%llu acc=%llu\n", (unsigned long long)(now_ns() - t0),
           (unsigned long long)acc);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "heap"))
        return heap(strtoul(argv[2], 0, 10), !strcmp(argv[3], "half"),
                    argc >= 5 && !strcmp(argv[4], "spin"));
    if (argc >= 3 && !strcmp(argv[1], "work")) return work(strtol(argv[2], 0, 10));
    if (argc >= 2 && !strcmp(argv[1], "true")) return 0;
    fprintf(stderr, "usage: bench heap MIB rand|half [spin] | work ITERS | true\n");
    return 2;
}
