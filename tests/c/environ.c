/* The program's own environment comes back after a restart, whatever the
 * restarting shell has: getenv and /proc/self/environ both show the original
 * variables and none of the restarting shell's. */
#include "tick.h"

#include <string.h>

static int environ_has(const char *kv) {
    static char buf[1 << 16];
    size_t n = read_proc("/proc/self/environ", buf, sizeof buf);
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, kv) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    const char *want = getenv("CKPT_TEST_ORIGINAL");
    if (!want || strcmp(want, "from the first shell") != 0) FAIL("test setup: CKPT_TEST_ORIGINAL missing");
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        const char *v = getenv("CKPT_TEST_ORIGINAL");
        if (!v || strcmp(v, "from the first shell") != 0) FAIL("getenv lost the original value");
        if (getenv("CKPT_TEST_RESTART_SHELL")) FAIL("the restarting shell's environment leaked in");
        if (!environ_has("CKPT_TEST_ORIGINAL=from the first shell")) FAIL("/proc/self/environ lost it");
        if (environ_has("CKPT_TEST_RESTART_SHELL=1")) FAIL("/proc/self/environ has the new shell's");
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
