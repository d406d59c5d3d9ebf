/* All-zero pages cost nothing in the image and come back as zero: 32 MiB written
 * with zeros, 32 MiB only read (the kernel's shared zero page), and 4 MiB of data
 * between them, page by page. After the restart the data is intact, every zero page
 * reads as zero and is writable, and a page released with MADV_DONTNEED still reads
 * as zero (the memory is anonymous). */
#include "tick.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096
#define PAGES (68 << 8) /* 68 MiB */

static unsigned char *p;

static int kind(size_t pg) { return pg % 17 == 0 ? 'd' : pg % 2 ? 'w' : 'r'; }

int main(void) {
    p = mmap(0, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) FAIL("mmap");
    volatile unsigned sink = 0;
    for (size_t pg = 0; pg < PAGES; pg++) {
        unsigned char *q = p + pg * PAGE;
        if (kind(pg) == 'd') for (int i = 0; i < PAGE; i++) q[i] = (unsigned char)((pg * 31 + i) | 1);
        else if (kind(pg) == 'w') memset(q, 0, PAGE);
        else sink += q[PAGE / 2];
    }
    (void)sink;
    ready();
    for (int t = 1; t <= 60; t++) {
        if (restarted()) {
            for (size_t pg = 0; pg < PAGES; pg++) {
                unsigned char *q = p + pg * PAGE;
                for (int i = 0; i < PAGE; i++) {
                    unsigned char want = kind(pg) == 'd' ? (unsigned char)((pg * 31 + i) | 1) : 0;
                    if (q[i] != want) FAIL("page %zu (%c) byte %d is %d", pg, kind(pg), i, q[i]);
                }
                if (kind(pg) != 'd') q[pg % PAGE] = 7; /* writable */
            }
            unsigned char *d = p + 17 * PAGE;
            if (madvise(d, PAGE, MADV_DONTNEED) || d[0] != 0) FAIL("MADV_DONTNEED did not zero-fill");
            say("RESTARTED zero pages ok");
        }
        say("TICK %d", t);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
