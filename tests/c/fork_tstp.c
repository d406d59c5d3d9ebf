/* Ctrl-Z reaches the whole process group: a child the program forked (which
 * inherits the runtime's handler) must not write an image, but stop as it would
 * without ckpt; the program itself checkpoints as usual. The child ticks on its
 * own stream ("CHILD n"), after printing "CHILD PID <pid>". */
#include "tick.h"

#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        say("CHILD PID %d", (int)getpid());
        for (int i = 1; i <= 40; i++) {
            say("CHILD %d", i);
            pause_ms(25);
        }
        say("CHILD DONE");
        _exit(0);
    }
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
