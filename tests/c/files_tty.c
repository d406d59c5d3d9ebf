/* A terminal on stdin: the program switches it to raw-ish mode (no echo, no
 * canonical input) and checks at every step that it still is, on whatever
 * terminal it has, and that it is the terminal's foreground process group.
 * Prints `PID n` first (the harness signals it, not the `script` around it). */
#include "tick.h"

#include <errno.h>
#include <string.h>
#include <termios.h>

int main(void) {
    struct termios t;
    if (tcgetattr(0, &t) != 0) FAIL("stdin is not a terminal: %s", strerror(errno));
    t.c_lflag &= ~(ECHO | ICANON);
    t.c_cc[VMIN] = 1;
    CHECK(tcsetattr(0, TCSANOW, &t) == 0);
    say("PID %d", (int)getpid());
    ready();
    for (int i = 1; i <= 60; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        struct termios now;
        if (tcgetattr(0, &now) != 0) FAIL("step %d: tcgetattr: %s", i, strerror(errno));
        if (now.c_lflag & (ECHO | ICANON)) FAIL("step %d: the terminal is back in cooked mode (lflag %o)", i, now.c_lflag);
        if (tcgetpgrp(0) != getpgrp()) FAIL("step %d: not the foreground group (%d, we are %d)", i, (int)tcgetpgrp(0), (int)getpgrp());
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
