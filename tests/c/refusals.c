/* Checkpoints that must be refused with a message saying what and why, the
 * program going on; then, once the program has put things right, one that works.
 *   argv[1] "dumpable": the program makes itself non-dumpable (as a setuid
 *     change of ids does), which leaves its /proc/self files to root; after step
 *     argv[2] it calls prctl(PR_SET_DUMPABLE, 1) and prints "FIXED".
 *   argv[1] "cwd": the program works in a directory it then removes; after step
 *     argv[2] it changes to argv[3] and prints "FIXED". */
#include "tick.h"

#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "dumpable";
    int fix_at = argc > 2 ? atoi(argv[2]) : 30;
    int total = 60;
    if (strcmp(mode, "dumpable") == 0) {
        CHECK(prctl(PR_SET_DUMPABLE, 0) == 0);
    } else {
        CHECK(mkdir("gone", 0700) == 0 && chdir("gone") == 0 && rmdir("../gone") == 0);
    }
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        if (i == fix_at) {
            if (strcmp(mode, "dumpable") == 0)
                CHECK(prctl(PR_SET_DUMPABLE, 1) == 0);
            else
                CHECK(chdir(argv[3]) == 0);
            say("FIXED");
        }
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
