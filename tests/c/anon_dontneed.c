/* Anonymous memory is restored as anonymous memory: after a restart its contents
 * are there, and MADV_DONTNEED on it reads back zeros, as Linux promises (a file
 * mapping of the image in its place would read back the saved bytes). Each step
 * checks every page, drops one and fills it again. */
#define _GNU_SOURCE
#include "tick.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define PAGES 256
#define PG 4096

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    unsigned char *m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    for (int p = 0; p < PAGES; p++) memset(m + p * PG, 1 + p % 250, PG);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        int drop = i % PAGES;
        for (int p = 0; p < PAGES; p++) {
            unsigned char want = 1 + p % 250;
            for (int b = 0; b < PG; b += 512)
                if (m[p * PG + b] != want) FAIL("page %d byte %d is %d, want %d", p, b, m[p * PG + b], want);
        }
        /* Drop one page with MADV_DONTNEED: it must read back as zeros. */
        memset(m + drop * PG, 0xAA, PG);
        CHECK(madvise(m + drop * PG, PG, MADV_DONTNEED) == 0);
        for (int b = 0; b < PG; b++)
            if (m[drop * PG + b] != 0) FAIL("after MADV_DONTNEED page %d byte %d is %#x, not 0", drop, b, m[drop * PG + b]);
        memset(m + drop * PG, 1 + drop % 250, PG);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
