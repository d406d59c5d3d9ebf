/* A program that daemonizes the way servers and job scripts do, then works: the
 * parent forks and exits at once; the child (optionally) calls setsid() and
 * counts. argv[1]: "setsid" (fork, parent exits, setsid), "plain" (no setsid:
 * the child stays in the group its dead parent led), "double" (fork, setsid,
 * fork again, the middle process exits: the classic double fork). The worker
 * prints "DAEMON <pid>" first, then the usual protocol; the state it checks at
 * each step lives in data, bss, heap and stack. */
#include "tick.h"

#include <string.h>
#include <sys/wait.h>

static long in_data = 1000;
static long in_bss;

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "setsid";
    int total = argc > 2 ? atoi(argv[2]) : 60;
    pid_t p = fork();
    CHECK(p >= 0);
    if (p > 0) return 0; /* the parent: gone, the shell gets its prompt back */
    if (strcmp(mode, "plain") != 0) CHECK(setsid() == getpid());
    if (strcmp(mode, "double") == 0) {
        pid_t q = fork();
        CHECK(q >= 0);
        if (q > 0) _exit(0);
        CHECK(getsid(0) != getpid()); /* not a session leader: no terminal, ever */
    }
    say("DAEMON %d", (int)getpid());
    long on_stack = -1;
    long *on_heap = malloc(sizeof *on_heap);
    *on_heap = 0;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        in_data++, in_bss++, on_stack--, (*on_heap)++;
        if (in_data != 1000 + i || in_bss != i || on_stack != -1 - i || *on_heap != i)
            FAIL("state lost at step %d", i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
