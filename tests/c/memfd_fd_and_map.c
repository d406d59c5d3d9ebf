/* A memfd held both by a descriptor and by a MAP_SHARED mapping: after a restart
 * they still share its pages. Each step writes through the mapping and reads it
 * through the descriptor, and the other way round. */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "tick.h"

int main(void) {
    int fd = memfd_create("buf", 0);
    CHECK(fd >= 0 && ftruncate(fd, 8192) == 0);
    char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    ready();
    for (int i = 1; i <= 100; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        char a = (char)i, b = (char)(i + 1), got = 0;
        p[4097] = a;
        if (pread(fd, &got, 1, 4097) != 1 || got != a) FAIL("step %d: the descriptor does not see the mapping's write", i);
        if (pwrite(fd, &b, 1, 5) != 1 || p[5] != b) FAIL("step %d: the mapping does not see the descriptor's write", i);
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
