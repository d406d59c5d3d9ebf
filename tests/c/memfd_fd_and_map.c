/* A memfd held both by a descriptor and by a MAP_SHARED mapping: ckpt brings the
 * two back as separate copies, and must say so at checkpoint time. */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "tick.h"

int main(void) {
    int fd = memfd_create("buf", 0);
    CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
    char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    ready();
    for (int i = 1; i <= 100; i++) {
        p[0] = (char)i;
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
