/* Memory that a lazy restart (CKPT_LAZY) brings in while the program runs:
 * argv[1] MiB (default 32) of words that each say where they are (word i holds
 * mix(i)), in a static buffer (.bss: one anonymous region), 60 TICKs of 30 ms.
 * After each restart, argv[2] says what the program does first with memory that
 * may not have arrived yet:
 *
 *   all       check every word at once
 *   dontneed  MADV_DONTNEED a part never touched since the restart and a part
 *             already checked: both read zeros; the rest checks; the dropped
 *             part takes new writes
 *   fork      fork at once; the child checks every word and exits 0/1, the
 *             parent checks its status, then every word itself
 *   threads   4 threads (running since the start, so the image has them) check
 *             a quarter each, all at once
 *   remap     mremap a part never touched since the restart away, check it
 *             there, move it back; munmap another part and map fresh memory
 *             there: zeros
 *   slow      check one MiB per tick, in order (the rest stays missing for a
 *             while under CKPT_LAZY=faults)
 *   holes     make one page in every 64 KiB read-only (mprotect: many
 *             mappings, and no event tells the pager), check the lower half,
 *             make them writable again; then replace one page in every 64 KiB,
 *             from the top down, with fresh memory (munmap + mmap) holding the
 *             words again, while a new thread checks the words around them
 *             from the bottom up
 *
 * and every restarted run checks every word again before DONE. Any wrong word
 * is a FAIL line naming it. */
#define _GNU_SOURCE
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MAX_MIB 64
static uint64_t big[(size_t)MAX_MIB << 17] __attribute__((aligned(4096)));
static size_t words;

static uint64_t mix(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) | 1; /* never zero: a zero page is always caught */
}

/* The first wrong word of [lo, hi), or (size_t)-1. */
static size_t check(size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++)
        if (big[i] != mix(i)) return i;
    return (size_t)-1;
}

#define CHECK_RANGE(lo, hi)                                                            \
    do {                                                                               \
        size_t bad_ = check((lo), (hi));                                               \
        if (bad_ != (size_t)-1)                                                        \
            FAIL("word %zu is %016llx, expected %016llx", bad_, (unsigned long long)big[bad_], \
                 (unsigned long long)mix(bad_));                                       \
    } while (0)

static void dontneed(void) {
    size_t page = 4096 / 8, q = words / 4;
    CHECK_RANGE(0, q);
    /* A part not touched since the restart, and one just checked. */
    uint64_t *a = big + 2 * q, *b = big + 16 * page;
    if (madvise(a, q * 8, MADV_DONTNEED) || madvise(b, 16 * 4096, MADV_DONTNEED)) FAIL("madvise");
    for (size_t i = 0; i < q; i++)
        if (a[i]) FAIL("word %zu after MADV_DONTNEED is %016llx, not 0", 2 * q + i, (unsigned long long)a[i]);
    for (size_t i = 0; i < 16 * page; i++)
        if (b[i]) FAIL("checked word %zu after MADV_DONTNEED is not 0", 16 * page + i);
    CHECK_RANGE(q, 2 * q);
    CHECK_RANGE(3 * q, words);
    /* The dropped memory is the program's again: put the words back. */
    for (size_t i = 0; i < q; i++) a[i] = mix(2 * q + i);
    for (size_t i = 0; i < 16 * page; i++) b[i] = mix(16 * page + i);
    say("DONTNEED zeros ok");
}

static void forked(void) {
    pid_t c = fork();
    if (c < 0) FAIL("fork");
    if (c == 0) _exit(check(0, words) == (size_t)-1 ? 0 : 1);
    int st;
    if (waitpid(c, &st, 0) != c) FAIL("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) FAIL("the forked child saw wrong memory (status %#x)", st);
    CHECK_RANGE(0, words);
    say("FORK child ok");
}

/* Move a quarter never touched since the restart elsewhere (mremap), check it
 * there, move it back; unmap another and map fresh memory there: zeros. */
static void moved(void) {
    size_t q = words / 4;
    uint64_t *a = big + 2 * q, *b = big + q;
    /* A place to move to (a same-size MAYMOVE alone would not move). */
    void *to = mmap(0, q * 8, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (to == MAP_FAILED) FAIL("mmap");
    uint64_t *n = mremap(a, q * 8, q * 8, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (n != to) FAIL("mremap away: %m");
    for (size_t i = 0; i < q; i++)
        if (n[i] != mix(2 * q + i)) FAIL("moved word %zu is %016llx", 2 * q + i, (unsigned long long)n[i]);
    if (mremap(n, q * 8, q * 8, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a) FAIL("mremap back: %m");
    if (munmap(b, q * 8)) FAIL("munmap");
    if (mmap(b, q * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != b) FAIL("mmap");
    for (size_t i = 0; i < q; i++)
        if (b[i]) FAIL("word %zu of fresh memory is not 0", q + i);
    for (size_t i = 0; i < q; i++) b[i] = mix(q + i);
    CHECK_RANGE(0, words);
    say("MOVED ok");
}

/* Many new mapping boundaries while the pager copies ranges that cross them:
 * the pages on either side must still arrive, the fresh ones read zeros. One
 * thread reads every word from the bottom up (each fault makes the pager copy
 * the next MiB) while this one replaces pages from the top down: they meet in
 * the middle, where the pager's ranges cross holes it has not heard of yet. */
static void *upwards(void *arg) {
    (void)arg;
    size_t chunk = 65536 / 8;
    for (size_t i = 0; i + chunk <= words; i += chunk) {
        size_t h = i + chunk / 2, page = 4096 / 8;
        /* The hole in this chunk may be replaced (zeros, then its words) while
         * it is read: only the words around it are checked here. */
        CHECK_RANGE(i, h);
        CHECK_RANGE(h + page, i + chunk);
    }
    return 0;
}

static void holes(void) {
    size_t step = 65536 / 8, page = 4096 / 8;
    /* First mapping boundaries the pager is never told of: mprotect splits the
     * memory into many mappings, without an event. */
    for (size_t h = step / 2; h + page <= words; h += step)
        if (mprotect(big + h, 4096, PROT_READ)) FAIL("mprotect: %m");
    CHECK_RANGE(0, words / 2);
    for (size_t h = step / 2; h + page <= words; h += step)
        if (mprotect(big + h, 4096, PROT_READ | PROT_WRITE)) FAIL("mprotect: %m");
    pthread_t t;
    if (pthread_create(&t, 0, upwards, 0)) FAIL("pthread_create");
    for (size_t k = words / step; k-- > 0;) {
        size_t h = k * step + step / 2;
        uint64_t *x = big + h;
        if (munmap(x, 4096)) FAIL("munmap");
        if (mmap(x, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != x) FAIL("mmap");
        for (size_t i = 0; i < page; i++)
            if (x[i]) FAIL("word %zu of fresh memory is not 0", h + i);
        for (size_t i = 0; i < page; i++) x[i] = mix(h + i);
    }
    if (pthread_join(t, 0)) FAIL("pthread_join");
    CHECK_RANGE(0, words);
    say("HOLES ok");
}

static atomic_int gen, done, bad;

static void *worker(void *arg) {
    size_t k = (size_t)arg, q = words / 4;
    int seen = 0;
    for (;;) {
        int g = atomic_load(&gen);
        if (g != seen) {
            seen = g;
            if (check(k * q, k == 3 ? words : (k + 1) * q) != (size_t)-1) atomic_fetch_add(&bad, 1);
            atomic_fetch_add(&done, 1);
        }
        pause_ms(5);
    }
    return 0;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 32;
    const char *mode = argc > 2 ? argv[2] : "all";
    if (mib < 4 || mib > MAX_MIB) FAIL("size");
    words = mib << 17;
    for (size_t i = 0; i < words; i++) big[i] = mix(i);
    if (!strcmp(mode, "threads"))
        for (long k = 0; k < 4; k++) {
            pthread_t t;
            if (pthread_create(&t, 0, worker, (void *)k)) FAIL("pthread_create");
        }
    ready_threads();
    size_t next = 0, chunk = (size_t)1 << 17;
    int again = 0;
    for (int i = 1; i <= 60; i++) {
        if (restarted_threads()) {
            again = 1;
            next = 0;
            if (!strcmp(mode, "all")) CHECK_RANGE(0, words);
            if (!strcmp(mode, "dontneed")) dontneed();
            if (!strcmp(mode, "fork")) forked();
            if (!strcmp(mode, "remap")) moved();
            if (!strcmp(mode, "holes")) holes();
            if (!strcmp(mode, "threads")) {
                atomic_store(&done, 0);
                atomic_fetch_add(&gen, 1);
                while (atomic_load(&done) < 4) pause_ms(1);
                if (atomic_load(&bad)) FAIL("a thread saw wrong memory");
                say("THREADS ok");
            }
            say("RESTARTED");
        }
        if (again && !strcmp(mode, "slow") && next < words) {
            CHECK_RANGE(next, next + chunk);
            next += chunk;
        }
        say("TICK %d", i);
        pause_ms(30);
    }
    if (again) CHECK_RANGE(0, words);
    say("DONE");
    return 0;
}
