/* The clocks work after a restart, through the vDSO (moved to its saved address)
 * and agree with the kernel's own answer from a real system call: CLOCK_REALTIME,
 * CLOCK_MONOTONIC, gettimeofday and time. The vDSO must be where glibc thinks it
 * is (AT_SYSINFO_EHDR) and named [vdso] in /proc/self/maps. */
#define _GNU_SOURCE
#include "tick.h"

#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>

static double ts(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }

static void check_clock(clockid_t id, const char *name) {
    struct timespec a, v, b;
    CHECK(syscall(SYS_clock_gettime, id, &a) == 0);
    CHECK(clock_gettime(id, &v) == 0);
    CHECK(syscall(SYS_clock_gettime, id, &b) == 0);
    if (ts(v) < ts(a) || ts(v) > ts(b))
        FAIL("%s: vDSO %.9f not between syscalls %.9f and %.9f", name, ts(v), ts(a), ts(b));
}

static void check_vdso_mapping(void) {
    unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
    CHECK(ehdr != 0);
    static char text[1 << 16];
    read_proc("/proc/self/maps", text, sizeof text);
    int found = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long lo, hi;
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strstr(line, "[vdso]")) found = lo == ehdr;
        if (nl) *nl = '\n';
    }
    if (!found) FAIL("[vdso] is not at AT_SYSINFO_EHDR %#lx", ehdr);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    struct timespec prev_mono;
    clock_gettime(CLOCK_MONOTONIC, &prev_mono);
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        check_vdso_mapping();
        check_clock(CLOCK_REALTIME, "CLOCK_REALTIME");
        check_clock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
        struct timeval tv;
        CHECK(gettimeofday(&tv, NULL) == 0);
        time_t now = syscall(SYS_time, NULL);
        if (tv.tv_sec < now - 1 || tv.tv_sec > now + 1) FAIL("gettimeofday %ld, time %ld", (long)tv.tv_sec, (long)now);
        struct timespec m;
        clock_gettime(CLOCK_MONOTONIC, &m);
        if (ts(m) < ts(prev_mono)) FAIL("CLOCK_MONOTONIC went back");
        prev_mono = m;
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
    return 0;
}
