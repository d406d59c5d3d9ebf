/* fork works in the restarted process: the child sees the parent's memory, runs,
 * and exits with a status the parent collects with waitpid; a pipe carries the
 * child's answer. */
#include "tick.h"

#include <string.h>
#include <sys/wait.h>

static long state = 7;

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        state = state * 3 % 1000003;
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            long answer = state * 2;
            if (write(fds[1], &answer, sizeof answer) != sizeof answer) _exit(2);
            _exit(i % 100);
        }
        close(fds[1]);
        long got = -1;
        CHECK(read(fds[0], &got, sizeof got) == sizeof got);
        close(fds[0]);
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != i % 100) FAIL("child status %#x at step %d", st, i);
        if (got != state * 2) FAIL("child computed %ld, want %ld", got, state * 2);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
