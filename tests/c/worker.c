/* A program and a worker it forks, in the same process group; the worker does
 * not call exec, so it carries the runtime too. The worker prints "WORKER <pid>"
 * and "WORK n" steps; the program ticks as usual and, at the end, reaps the
 * worker and prints how it ended ("WORKER EXITED n" or "WORKER KILLED sig").
 * argv[1] "handler": the worker installs its own handler for SIGTSTP and SIGUSR1,
 * which prints "WORKER GOT sig". argv[2]: the program's steps; argv[3]: the
 * worker's. */
#include "tick.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static volatile sig_atomic_t got;

static void on_sig(int s) { got = s; }

int main(int argc, char **argv) {
    int handler = argc > 1 && strcmp(argv[1], "handler") == 0;
    int total = argc > 2 ? atoi(argv[2]) : 60;
    int work = argc > 3 ? atoi(argv[3]) : 60;
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t w = fork();
    CHECK(w >= 0);
    if (w == 0) {
        if (handler) {
            signal(SIGTSTP, on_sig);
            signal(SIGUSR1, on_sig);
        }
        tick_pid_ = getpid();
        say("WORKER %d", (int)getpid());
        CHECK(write(go[1], "", 1) == 1);
        for (int i = 1; i <= work; i++) {
            if (got) {
                say("WORKER GOT %d", (int)got);
                got = 0;
            }
            if (restarted()) say("WORKER RESTARTED at %d", i);
            say("WORK %d", i);
            pause_ms(25);
        }
        say("WORKER DONE");
        _exit(0);
    }
    char c;
    CHECK(read(go[0], &c, 1) == 1); /* "WORKER pid" comes before READY */
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        say("TICK %d", i);
        pause_ms(25);
    }
    int st;
    if (waitpid(w, &st, 0) == w) {
        if (WIFEXITED(st)) say("WORKER EXITED %d", WEXITSTATUS(st));
        if (WIFSIGNALED(st)) say("WORKER KILLED %d", WTERMSIG(st));
    }
    say("DONE");
    return 0;
}
