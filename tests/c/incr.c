/* Incremental checkpoints: every kind of change write tracking must see, one or
 * more per tick, between periodic checkpoints the test does not time.
 *
 *   ./incr TICKS MS
 *
 * State: a 16 MiB anonymous heap of which each tick writes a few scattered
 * pages (by the main thread, by a short-lived thread, and by read(2) from a
 * pipe: a write the kernel does); a set of small mappings that ticks create
 * (mmap), remove (munmap), move (mremap to a fixed new address), mprotect
 * read-only and back, partly zero (MADV_DONTNEED); the break moved up and down
 * (sbrk) with data above the old break; a MAP_SHARED region written each tick.
 * Everything is a function of the tick number only, so each TICK line's
 * checksum of all that memory (read back byte by byte) is the same in every
 * run: the test compares a restarted run's lines with a run never checkpointed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* A tick's short-lived thread may be running when a checkpoint lands: the image
 * is then multi-threaded and restarts with the same pid, so a restart is
 * noticed by the start time (threads.h), not by a change of pid. */
#include "threads.h"

#define HEAP (16u << 20)
#define PAGE 4096u
#define NMAP 8
#define MAPLEN (16 * PAGE)

static unsigned char *heap;
static unsigned char *shared;
static unsigned char *maps[NMAP]; /* NULL: not mapped now */
static unsigned char *area;       /* where mremap moves a mapping to */
static char *brk0;
static long brk_len;

static uint64_t rng(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* FNV-1a over 64-bit words (and the last bytes one by one). */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

struct job {
    long tick;
};

static void *thread_writes(void *arg) {
    long t = ((struct job *)arg)->tick;
    for (int k = 0; k < 4; k++) {
        uint64_t r = rng(t * 977 + k + 5000);
        heap[(r % (HEAP / PAGE)) * PAGE + (r >> 40) % PAGE] = (unsigned char)(r >> 8);
    }
    return NULL;
}

/* Unmap a mapping; inside `area`, reserve its place again instead, so that
 * nothing else (a thread stack, the C library's or ckpt's own memory) is ever
 * mapped where a later mremap(MREMAP_FIXED) moves a mapping to. */
static void release(unsigned char *p) {
    if (p >= area && p < area + 4 * MAPLEN)
        CHECK(mmap(p, MAPLEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
    else
        CHECK(munmap(p, MAPLEN) == 0);
}

static void fill(unsigned char *p, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i += 64) p[i] = (unsigned char)rng(seed + i);
}

static void step(long t) {
    /* The main thread: 8 scattered pages. */
    for (int k = 0; k < 8; k++) {
        uint64_t r = rng(t * 131 + k);
        size_t page = r % (HEAP / PAGE);
        memset(heap + page * PAGE + (r >> 32) % 2048, (int)(t + k), 64);
    }
    /* Another thread. */
    pthread_t th;
    struct job j = {t};
    CHECK(pthread_create(&th, NULL, thread_writes, &j) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    /* The kernel writes (read into a page of the heap). */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    char msg[32];
    int n = snprintf(msg, sizeof msg, "tick %ld", t);
    CHECK(write(pfd[1], msg, n) == n);
    size_t at = (rng(t * 7 + 3) % (HEAP / PAGE)) * PAGE;
    CHECK(read(pfd[0], heap + at, n) == n);
    close(pfd[0]);
    close(pfd[1]);
    /* Shared memory. */
    shared[(t * 97) % (4 * PAGE)] = (unsigned char)t;

    int i = (int)(t % NMAP);
    switch (t % 6) {
    case 0: /* map (or map again) slot i */
        if (maps[i]) release(maps[i]);
        maps[i] = mmap(NULL, MAPLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(maps[i] != MAP_FAILED);
        fill(maps[i], MAPLEN, t);
        break;
    case 1: /* unmap slot i+1 */
        if (maps[(i + 1) % NMAP]) {
            release(maps[(i + 1) % NMAP]);
            maps[(i + 1) % NMAP] = NULL;
        }
        break;
    case 2: { /* move some mapping into the free half of `area` */
        for (int k = 0; k < NMAP; k++) {
            int s = (i + k) % NMAP;
            if (!maps[s]) continue;
            unsigned char *to = area + ((t / 6) % 2) * MAPLEN * 2;
            int busy = 0;
            for (int q = 0; q < NMAP; q++) busy |= maps[q] && maps[q] < to + MAPLEN && to < maps[q] + MAPLEN;
            if (busy || maps[s] == to) continue;
            unsigned char *from = maps[s];
            void *m = mremap(from, MAPLEN, MAPLEN, MREMAP_MAYMOVE | MREMAP_FIXED, to);
            CHECK(m == to);
            maps[s] = to;
            if (from >= area && from < area + 4 * MAPLEN)
                CHECK(mmap(from, MAPLEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == from);
            break;
        }
        break;
    }
    case 3: /* mprotect read-only and back, writing in between around it */
        if (maps[i]) {
            CHECK(mprotect(maps[i], MAPLEN, PROT_READ) == 0);
            CHECK(mprotect(maps[i], MAPLEN, PROT_READ | PROT_WRITE) == 0);
            maps[i][PAGE + t % PAGE] ^= 0x5a;
        }
        break;
    case 4: /* zero pages: of the heap and of a mapping */
        CHECK(madvise(heap + (rng(t) % (HEAP / PAGE - 4)) * PAGE, 4 * PAGE, MADV_DONTNEED) == 0);
        if (maps[i]) CHECK(madvise(maps[i] + 2 * PAGE, 3 * PAGE, MADV_DONTNEED) == 0);
        break;
    case 5: /* the break: up with data, or down */
        if (brk_len < 64 * (long)PAGE) {
            char *p = sbrk(8 * PAGE);
            CHECK(p != (char *)-1);
            brk_len += 8 * PAGE;
            fill((unsigned char *)p, 8 * PAGE, t * 3);
        } else {
            CHECK(sbrk(-40 * (long)PAGE) != (char *)-1);
            brk_len -= 40 * PAGE;
        }
        break;
    }
}

static uint64_t digest(void) {
    uint64_t h = fnv(0xcbf29ce484222325ULL, heap, HEAP);
    h = fnv(h, shared, 4 * PAGE);
    for (int i = 0; i < NMAP; i++) {
        unsigned char tag = maps[i] ? 1 : 0;
        h = fnv(h, &tag, 1);
        if (maps[i]) h = fnv(h, maps[i], MAPLEN);
    }
    h = fnv(h, (unsigned char *)&brk_len, sizeof brk_len);
    return fnv(h, (unsigned char *)brk0, brk_len);
}

int main(int argc, char **argv) {
    long ticks = argc > 1 ? atol(argv[1]) : 60, ms = argc > 2 ? atol(argv[2]) : 50;
    heap = mmap(NULL, HEAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    area = mmap(NULL, 4 * MAPLEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(heap != MAP_FAILED && shared != MAP_FAILED && area != MAP_FAILED);
    /* `area` stays reserved (PROT_NONE): mremap replaces part of it. */
    for (size_t i = 0; i < HEAP; i += PAGE) fill(heap + i, PAGE, i);
    /* The C library's own allocations first (the stdout buffer, a thread's
     * stack and TLS), so that the break above brk0 is this program's alone. */
    ready_threads();
    pthread_t th;
    struct job j = {0};
    CHECK(pthread_create(&th, NULL, thread_writes, &j) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    brk0 = sbrk(0);
    for (long t = 1; t <= ticks; t++) {
        step(t);
        if (restarted_threads()) say("RESTARTED");
        say("TICK %ld %016llx", t, (unsigned long long)digest());
        pause_ms(ms);
    }
    say("DONE");
    return 0;
}
