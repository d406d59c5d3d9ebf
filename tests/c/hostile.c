/* Checkpoints at hostile moments: the program spends its time inside malloc and
 * free, blocked in read(2) on stdin (the harness feeds it a byte now and then),
 * in write(2) of lines of up to 48 KiB to stdout (`#` lines, which the harness
 * drops), and in nanosleep(2), while the
 * harness sends checkpoint signals at random times (continue mode).
 *
 * A checkpoint must be invisible: no call may fail with EINTR (read and write
 * are restarted by SA_RESTART; a sleep must resume for its remaining time), and
 * the heap must stay intact. Every live block carries a pattern derived from
 * its slot and generation, checked before it is freed; all blocks are checked
 * at every TICK and after a restart.
 *
 * The run ends when stdin reaches end of file. A restarted process has the
 * restarting shell's stdin (the harness gives /dev/null): it checks the whole
 * heap, prints RESTARTED, does a few more TICKs of work and ends. */
#include "tick.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define SLOTS 128

struct block {
    uint32_t slot, gen, len, sum;
    unsigned char data[];
};

static struct block *slots[SLOTS];
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static long eintr_read, eintr_write, eintr_sleep;
static char line[48 << 10];

static uint64_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static unsigned char pattern(uint32_t slot, uint32_t gen, uint32_t i) {
    return (unsigned char)(slot * 131u + gen * 31u + i * 7u + (i >> 8));
}

static void check_block(const struct block *b, uint32_t slot) {
    if (b->slot != slot) FAIL("heap: block in slot %u says slot %u", slot, b->slot);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < b->len; i++) {
        if (b->data[i] != pattern(slot, b->gen, i))
            FAIL("heap: slot %u gen %u byte %u is %u", slot, b->gen, i, b->data[i]);
        sum += b->data[i];
    }
    if (sum != b->sum) FAIL("heap: slot %u sum %u, expected %u", slot, sum, b->sum);
}

static void check_heap(void) {
    for (uint32_t s = 0; s < SLOTS; s++)
        if (slots[s]) check_block(slots[s], s);
}

/* Replace one random block by a new one of a random size (16 B .. 16 KiB,
 * sometimes 160 KiB so that glibc uses mmap for it). */
static void churn(uint32_t gen) {
    uint32_t s = next() % SLOTS;
    if (slots[s]) {
        check_block(slots[s], s);
        free(slots[s]);
    }
    uint32_t len = next() % 16 == 0 ? (160u << 10) : 16 + next() % (16u << 10);
    struct block *b = malloc(sizeof *b + len);
    if (!b) FAIL("malloc %u", len);
    b->slot = s, b->gen = gen, b->len = len, b->sum = 0;
    for (uint32_t i = 0; i < len; i++) {
        b->data[i] = pattern(s, gen, i);
        b->sum += b->data[i];
    }
    slots[s] = b;
}

/* write(2) all of buf; a short count (a signal after part of a large write)
 * is fine, EINTR is not. */
static void put(const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, buf, n);
        if (w < 0 && errno == EINTR) {
            eintr_write++;
            FAIL("write(2) failed with EINTR");
        }
        if (w < 0) FAIL("write: %s", strerror(errno));
        buf += w, n -= (size_t)w;
    }
}

/* One blocking read(2) of stdin; returns 0 at end of file. */
static int get(void) {
    char buf[64];
    ssize_t r = read(0, buf, sizeof buf);
    if (r < 0 && errno == EINTR) {
        eintr_read++;
        FAIL("read(2) failed with EINTR");
    }
    if (r < 0) FAIL("read: %s", strerror(errno));
    return r > 0;
}

/* The sleep a checkpoint interrupted is finished in the restarted process too
 * (re-issued by the runtime's handler, docs/process-state.md): never EINTR.
 * Seen before restarted() has noticed the new pid. */
static long eintr_sleep_restarted;

/* One nanosleep(2) of up to 2 ms, counted (not retried) when interrupted. */
static void nap(void) {
    struct timespec t = {0, (long)(next() % 2000000)};
    if (nanosleep(&t, NULL) != 0) {
        if (errno != EINTR) FAIL("nanosleep: %s", strerror(errno));
        if (getpid() != tick_pid_) eintr_sleep_restarted++;
        else eintr_sleep++;
    }
}

int main(void) {
    for (uint32_t i = 0; i < SLOTS; i++) churn(0);
    ready();
    int tick = 0, after_restart = -1;
    int input = 1;
    for (uint32_t gen = 1;; gen++) {
        if (restarted()) {
            check_heap();
            say("RESTARTED heap ok");
            after_restart = 0;
            input = 0;
        }
        churn(gen);
        switch (next() % 4) {
        case 0:
            if (input) input = get();
            break;
        case 1: {
            size_t n = 1 + next() % (sizeof line - 2);
            memset(line, 'x', n);
            line[0] = '#', line[n] = '\n';
            put(line, n + 1);
            break;
        }
        case 2:
            nap();
            break;
        default:
            break;
        }
        if (gen % 64 == 0) {
            check_heap();
            say("TICK %d", ++tick);
            if (after_restart >= 0 && ++after_restart == 5) break;
        }
        if (!input && after_restart < 0) {
            /* End of file: the harness is done, unless this is a restarted
             * process whose read(2) just met the new stdin's end. */
            if (getpid() == tick_pid_) break;
        }
    }
    check_heap();
    say("EINTR read=%ld write=%ld nanosleep=%ld", eintr_read, eintr_write, eintr_sleep);
    if (eintr_sleep) FAIL("nanosleep(2) failed with EINTR %ld times", eintr_sleep);
    if (eintr_sleep_restarted > 0) FAIL("nanosleep(2) EINTR %ld times on restart", eintr_sleep_restarted);
    say("DONE");
    return 0;
}
