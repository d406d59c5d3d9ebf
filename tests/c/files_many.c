/* Many open files: N files (DIR/fK), each open at its own offset (K % 7); every
 * step checks each descriptor: still that file (its first line, with pread) and
 * still at its offset. Prints `T n` with CLOCK_MONOTONIC (ns) at each step, so
 * the harness can time a restart to the first step.
 *
 * Usage: files_many DIR N [STEPS] */
#include "tick.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) FAIL("usage: files_many DIR N [STEPS]");
    int n = atoi(argv[2]), steps = argc > 3 ? atoi(argv[3]) : 40;
    int *fd = malloc(sizeof(int) * (n + 1));
    char p[4096];
    for (int k = 0; k < n; k++) {
        snprintf(p, sizeof p, "%s/f%d", argv[1], k);
        fd[k] = open(p, O_RDONLY);
        if (fd[k] < 0) FAIL("open %s: %s", p, strerror(errno));
        CHECK(lseek(fd[k], k % 7, SEEK_SET) == k % 7);
    }
    ready();
    for (int i = 1; i <= steps; i++) {
        int again = restarted();
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (again) say("RESTARTED at %d t=%lld", i, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
        for (int k = 0; k < n; k++) {
            char want[32], got[32] = "";
            int w = snprintf(want, sizeof want, "file %d\n", k);
            if (pread(fd[k], got, w, 0) != w || memcmp(got, want, w) != 0) FAIL("step %d: fd %d is not f%d", i, fd[k], k);
            if (lseek(fd[k], 0, SEEK_CUR) != k % 7) FAIL("step %d: f%d at offset %ld", i, k, (long)lseek(fd[k], 0, SEEK_CUR));
        }
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
