/* The heap keeps growing after a restart: malloc of many small blocks (glibc
 * grows the main arena with brk) and sbrk itself, with /proc/self/maps naming
 * [heap] and the program break moving. Every block ever allocated keeps its
 * contents. */
#define _GNU_SOURCE
#include "tick.h"

#include <stdint.h>
#include <fcntl.h>
#include <string.h>

#define PER_STEP 200

static uint64_t *blocks[PER_STEP * 1000];
static int nblocks;

/* Read with read(2) into a static buffer, not stdio: fopen's buffer is malloc'ed
 * and may grow the heap between the program's sbrk calls. */
static int heap_in_maps(void) {
    static char buf[1 << 16];
    read_proc("/proc/self/maps", buf, sizeof buf);
    unsigned long lo, hi, heap_end = 0;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2) heap_end = hi;
        if (nl) *nl = '\n';
    }
    uintptr_t brk_now = (uintptr_t)sbrk(0);
    return heap_end == ((brk_now + 4095) & ~4095UL);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        for (int k = 0; k < PER_STEP; k++) {
            uint64_t *b = malloc(96);
            CHECK(b != NULL);
            for (int j = 0; j < 12; j++) b[j] = (uint64_t)nblocks * 31 + j;
            blocks[nblocks++] = b;
        }
        for (int n = 0; n < nblocks; n++)
            for (int j = 0; j < 12; j++)
                if (blocks[n][j] != (uint64_t)n * 31 + j) FAIL("block %d word %d lost", n, j);
        /* sbrk by hand: grow one page, write it, shrink back. */
        char *old = sbrk(0);
        char *p = sbrk(4096);
        if (p == (void *)-1 || p != old) FAIL("sbrk(4096) failed at step %d", i);
        memset(p, i, 4096);
        if (sbrk(0) != old + 4096) FAIL("break did not move");
        if (!heap_in_maps()) FAIL("[heap] in /proc/self/maps does not end at the break");
        CHECK(sbrk(-4096) != (void *)-1);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE blocks %d", nblocks);
    return 0;
}
