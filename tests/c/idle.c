/* What the runtime leaves visible when no checkpoint is requested: the open
 * descriptors, the threads and the caught, blocked and ignored signals, as the
 * kernel reports them, printed before any checkpoint. The program itself opens
 * nothing and installs no handler, so anything beyond the harness's 0, 1, 2,
 * one thread and the configured trigger signal is the runtime's doing. */
#include "tick.h"

#include <dirent.h>
#include <string.h>

/* Print "FDS 0 1 2": every open descriptor except the one listing them. */
static void fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) FAIL("opendir /proc/self/fd");
    char line[4096] = "FDS";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (atoi(e->d_name) == dirfd(d)) continue;
        strncat(line, " ", sizeof line - strlen(line) - 1);
        strncat(line, e->d_name, sizeof line - strlen(line) - 1);
    }
    closedir(d);
    say("%s", line);
}

static void tasks(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) FAIL("opendir /proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    say("TASKS %d", n);
}

/* Print the SigCgt, SigBlk and SigIgn lines of /proc/self/status. */
static void signals(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) FAIL("fopen /proc/self/status");
    char l[256];
    while (fgets(l, sizeof l, f)) {
        if (!strncmp(l, "SigCgt:", 7) || !strncmp(l, "SigBlk:", 7) || !strncmp(l, "SigIgn:", 7)) {
            l[strcspn(l, "\n")] = 0;
            say("%s", l);
        }
    }
    fclose(f);
}

int main(void) {
    fds();
    tasks();
    signals();
    ready();
    say("DONE");
    return 0;
}
