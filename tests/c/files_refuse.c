/* A program with an io_uring instance (`uring`) or an AIO context (`aio`): ckpt
 * cannot restore either, so a checkpoint is refused with a message and the
 * program runs on to DONE.
 *
 * Usage: files_refuse uring|aio */
#include "tick.h"

#include <string.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_refuse uring|aio");
    if (strcmp(argv[1], "uring") == 0) {
        char params[120] = {0}; /* struct io_uring_params */
        long fd = syscall(__NR_io_uring_setup, 4, params);
        if (fd < 0) FAIL("io_uring_setup failed");
    } else {
        unsigned long ctx = 0;
        if (syscall(__NR_io_setup, 8, &ctx) != 0) FAIL("io_setup failed");
    }
    ready();
    for (int i = 1; i <= 40; i++) {
        if (restarted()) FAIL("restarted: the checkpoint should have been refused");
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
