/* The two ends of a pipeline, for tree mode: `sh -c 'tree_pipe produce N |
 * tree_pipe consume N'` under ckpt --tree (docs/trees.md).
 *
 *   produce N   writes the lines "i h(i)" for i = 1..N in bursts of 40 with a
 *               pause between bursts, so the pipe usually holds unread lines
 *               when the checkpoint comes; then exits 0.
 *   consume N   prints READY, then reads the lines one by one, slower than
 *               they come, checks that each is the next one and its checksum
 *               right, prints "TICK i" for each, and "DONE" after line N
 *               (FAIL on a missing, repeated or damaged line, or an early end
 *               of file).
 *
 * After a checkpoint at any moment and a restart, the TICKs of both runs are
 * exactly 1..N: the queued bytes of the pipe came back, in order, and the two
 * processes are joined by it again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long h(unsigned long i) { return (i * 2654435761UL) % 1000003UL; }

static void nap(long ms) {
    struct timespec t = {0, ms * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    if (strcmp(argv[1], "produce") == 0) {
        for (long i = 1; i <= n; i++) {
            printf("%ld %lu\n", i, h((unsigned long)i));
            if (i % 40 == 0) {
                fflush(stdout);
                nap(30);
            }
        }
        fflush(stdout);
        return 0;
    }
    printf("READY\n");
    fflush(stdout);
    char line[64];
    long want = 1;
    while (fgets(line, sizeof line, stdin)) {
        long i;
        unsigned long v;
        if (sscanf(line, "%ld %lu", &i, &v) != 2 || i != want || v != h((unsigned long)i)) {
            printf("FAIL: line %ld: got '%s'\n", want, line);
            return 1;
        }
        printf("TICK %ld\n", i);
        fflush(stdout);
        want++;
        nap(2);
    }
    if (want != n + 1) {
        printf("FAIL: end of input after %ld lines of %ld\n", want - 1, n);
        return 1;
    }
    printf("DONE\n");
    return 0;
}
