/* A MAP_SHARED mapping of a file: each step writes its number through the
 * mapping and reads it back from the file with pread (the page cache is one), so
 * a mapping that came back as a private or anonymous copy fails at once.
 *
 * Usage: files_mmap FILE */
#include "tick.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_mmap FILE");
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 8192) == 0);
    volatile uint32_t *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    ready();
    for (uint32_t i = 1; i <= 60; i++) {
        if (restarted()) say("RESTARTED at %u", i);
        if (p[0] != i - 1) FAIL("step %u: the mapping holds %u", i, p[0]);
        p[0] = i;
        p[1024] = i * 3;
        uint32_t f[2];
        CHECK(pread(fd, &f[0], 4, 0) == 4 && pread(fd, &f[1], 4, 4096) == 4);
        if (f[0] != i || f[1] != i * 3) FAIL("step %u: the file holds %u %u: writes do not reach it", i, f[0], f[1]);
        say("TICK %u", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
