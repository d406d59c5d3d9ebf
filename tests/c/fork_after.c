/* fork works in the restarted process: the child sees the parent's memory, runs,
 * and exits with a status the parent collects with waitpid; a pipe carries the
 * child's answer.
 *
 * A checkpoint can land inside a step, between the fork and the waitpid. The
 * restarted process then has no child (children are not part of a single-process
 * image) and its pipe has no writer: that step is done again, in the restarted
 * process. The case is told apart by the pid, which changes at a restart of a
 * single-threaded program; a failure of any step that no restart interrupted is a
 * failure. */
#include "tick.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>

static long state = 7;

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        pid_t me = getpid();
        /* The step was interrupted by a checkpoint and this is the restarted
         * process: do it again. */
#define REDO_IF_RESTARTED(fd)                                                        \
    if (getpid() != me) {                                                            \
        close(fd);                                                                   \
        i--;                                                                         \
        continue;                                                                    \
    }
        long next = state * 3 % 1000003;
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            long answer = next * 2;
            if (write(fds[1], &answer, sizeof answer) != sizeof answer) _exit(2);
            _exit(i % 100);
        }
        close(fds[1]);
        long got = -1;
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ready_fds;
        while ((ready_fds = poll(&pfd, 1, 5000)) < 0 && errno == EINTR) {
        }
        if (ready_fds != 1 || read(fds[0], &got, sizeof got) != sizeof got) {
            REDO_IF_RESTARTED(fds[0]);
            FAIL("no answer from the child at step %d", i);
        }
        close(fds[0]);
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            REDO_IF_RESTARTED(-1);
            FAIL("waitpid at step %d: %s", i, strerror(errno));
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != i % 100) FAIL("child status %#x at step %d", st, i);
        if (got != next * 2) FAIL("child computed %ld, want %ld", got, next * 2);
        state = next;
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
