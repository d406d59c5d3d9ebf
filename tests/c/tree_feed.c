/* A parent that reads, from a pipe, the numbers its forked child writes into it
 * (one every 20 ms): the pipe has one end in each process of the tree, so it
 * is made again at restart and joined (`ckpt --tree`, docs/trees.md). The
 * parent ticks each number it reads, 1 to 60, then reaps the child. */
#include "tick.h"

#include <string.h>
#include <sys/wait.h>

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        close(p[0]);
        for (int i = 1; i <= 60; i++) {
            char b[16];
            int n = snprintf(b, sizeof b, "%d\n", i);
            CHECK(write(p[1], b, n) == n);
            pause_ms(20);
        }
        return 0;
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    CHECK(in != NULL);
    ready();
    char line[32];
    for (int want = 1; want <= 60; want++) {
        if (!fgets(line, sizeof line, in)) FAIL("the pipe ended before %d", want);
        if (atoi(line) != want) FAIL("read %s, want %d", line, want);
        if (restarted()) say("RESTARTED at %d", want);
        say("TICK %d", want);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    say("DONE feed");
    return 0;
}
