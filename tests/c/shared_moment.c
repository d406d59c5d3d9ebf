/* Continue mode's image of shared memory must be of the checkpoint's moment, like
 * the rest of the image: the writer is a fork, and a MAP_SHARED region is the
 * same pages in the program and in the writer. Each tick fills a 32 MiB shared
 * anonymous region and a memfd mapping with the tick's byte, then records the
 * tick in private memory; the writer takes many ticks to write the image. After
 * a restart, both regions must hold the byte of the tick the private memory says
 * (an image with shared bytes of a later tick is a silent wrong state). */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "tick.h"

#define LEN (32u << 20)
#define MEMFD_LEN (4u << 20)

static void check(const unsigned char *p, size_t len, unsigned char want, const char *what) {
    for (size_t i = 0; i < len; i += 4096)
        if (p[i] != want || p[i + 4095] != want)
            FAIL("%s holds byte %u at offset %zu, the private state says tick byte %u", what, p[i], i, want);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 100;
    unsigned char *sh = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    int fd = memfd_create("shared-moment", 0);
    CHECK(fd >= 0 && ftruncate(fd, MEMFD_LEN) == 0);
    unsigned char *mf = mmap(NULL, MEMFD_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(mf != MAP_FAILED);
    close(fd);
    volatile long mine = 0;
    memset(sh, 0, LEN);
    memset(mf, 0, MEMFD_LEN);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) {
            check(sh, LEN, (unsigned char)mine, "the shared anonymous region");
            check(mf, MEMFD_LEN, (unsigned char)mine, "the memfd mapping");
            say("RESTARTED shared memory of tick %ld", mine);
        }
        memset(sh, i & 0xff, LEN);
        memset(mf, i & 0xff, MEMFD_LEN);
        mine = i;
        say("TICK %d", i);
        pause_ms(10);
    }
    say("DONE");
    return 0;
}
