/* Per-process settings and mapping flags survive a restart (issue 13). Set up
 * before READY, recorded, and compared at every step before and after the
 * restart (the checkpoint falls at any moment):
 *   umask 027, nice +5, RLIMIT_NOFILE 300/1000 and RLIMIT_CORE 4096/8192 (every
 *   limit compared), personality | ADDR_NO_RANDOMIZE, no_new_privs, parent-death
 *   signal SIGURG, dumpable 0, timer slack 123456 ns, child subreaper,
 *   oom_score_adj 345, THP_DISABLE, membarrier PRIVATE_EXPEDITED registration,
 *   supplementary groups 4242 4343 (when the user may set them: root);
 *   mappings: mlock'ed, MADV_DONTFORK, MADV_WIPEONFORK, MADV_HUGEPAGE,
 *   MADV_NOHUGEPAGE, MAP_GROWSDOWN, and a plain one that must not gain
 *   MAP_NORESERVE ("nr"), each with its VmFlags (lo gd dc wf hg nh nr, and ex:
 *   none may come back executable) and its content compared. */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <grp.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NMAP 7
#define MAPLEN (4 * 4096)
static const char *map_names[NMAP] = {"locked", "dontfork", "wipeonfork", "hugepage", "nohugepage", "growsdown", "plain"};
static char *maps[NMAP];
static char map_flags[NMAP][64];

struct settings {
    mode_t umask;
    int nice, personality, nnp, pdeathsig, dumpable, subreaper, thp, oom;
    long slack, membarrier;
    struct rlimit rl[RLIM_NLIMITS];
    int ngroups;
    gid_t groups[64];
};
static struct settings want;

static void read_settings(struct settings *s) {
    memset(s, 0, sizeof *s);
    s->umask = umask(0);
    umask(s->umask);
    errno = 0;
    s->nice = getpriority(PRIO_PROCESS, 0);
    s->personality = personality(0xffffffff);
    s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    CHECK(prctl(PR_GET_PDEATHSIG, &s->pdeathsig) == 0);
    s->dumpable = prctl(PR_GET_DUMPABLE);
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &s->subreaper) == 0);
    s->thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    s->slack = prctl(PR_GET_TIMERSLACK);
    s->membarrier = syscall(SYS_membarrier, 1 << 9 /* GET_REGISTRATIONS */, 0, 0);
    for (int r = 0; r < RLIM_NLIMITS; r++) CHECK(getrlimit(r, &s->rl[r]) == 0);
    s->ngroups = getgroups(64, s->groups);
    char oom[32];
    read_proc("/proc/self/oom_score_adj", oom, sizeof oom);
    CHECK(sscanf(oom, "%d", &s->oom) == 1);
}

/* The VmFlags of the mapping at ADDR, only the ones ckpt restores (and "ex":
 * data must not come back executable), in order. */
static void vmflags(char *addr, char *out) {
    static char text[1 << 18];
    read_proc("/proc/self/smaps", text, sizeof text);
    int in = 0;
    out[0] = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (unsigned long)addr >= a && (unsigned long)addr < b;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            const char *keep[] = {"ex", "lo", "gd", "dc", "wf", "hg", "nh", "nr"};
            for (int k = 0; k < 8; k++) {
                char pat[5];
                snprintf(pat, sizeof pat, " %s", keep[k]);
                char *p = line + 8;
                while ((p = strstr(p, pat)) && p[3] != ' ' && p[3] != 0) p++;
                if (p) strcat(out, pat);
            }
        }
        if (!nl) break;
        line = nl + 1;
    }
}

static void check(int step) {
    struct settings now;
    read_settings(&now);
#define SAME(field) \
    if (now.field != want.field) FAIL("step %d: " #field " is %ld, was %ld", step, (long)now.field, (long)want.field)
    SAME(umask);
    SAME(nice);
    SAME(personality);
    SAME(nnp);
    SAME(pdeathsig);
    SAME(dumpable);
    SAME(subreaper);
    SAME(thp);
    SAME(slack);
    SAME(membarrier);
    SAME(oom);
    SAME(ngroups);
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        SAME(rl[r].rlim_cur);
        SAME(rl[r].rlim_max);
    }
    for (int g = 0; g < want.ngroups; g++) SAME(groups[g]);
    for (int m = 0; m < NMAP; m++) {
        char f[64];
        vmflags(maps[m], f);
        if (strcmp(f, map_flags[m]) != 0)
            FAIL("step %d: mapping %s has VmFlags [%s], had [%s]", step, map_names[m], f, map_flags[m]);
        for (int i = 0; i < MAPLEN; i += 512)
            if (maps[m][i] != (char)(m * 31 + i / 512)) FAIL("step %d: mapping %s content at %d", step, map_names[m], i);
    }
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    umask(027);
    errno = 0;
    CHECK(setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + 5) == 0);
    struct rlimit nofile = {300, 1000}, core = {4096, 8192};
    CHECK(setrlimit(RLIMIT_NOFILE, &nofile) == 0);
    CHECK(setrlimit(RLIMIT_CORE, &core) == 0);
    CHECK(personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE) != -1);
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK(prctl(PR_SET_PDEATHSIG, SIGURG) == 0);
    CHECK(prctl(PR_SET_DUMPABLE, 0) == 0);
    CHECK(prctl(PR_SET_TIMERSLACK, 123456) == 0);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    CHECK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
    CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0);
    FILE *f = fopen("/proc/self/oom_score_adj", "w");
    CHECK(f && fprintf(f, "345\n") > 0 && fclose(f) == 0);
    gid_t groups[] = {4242, 4343};
    int set_groups = setgroups(2, groups) == 0;

    for (int m = 0; m < NMAP; m++) {
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | (m == 5 ? MAP_GROWSDOWN : 0);
        maps[m] = mmap(NULL, MAPLEN, PROT_READ | PROT_WRITE, flags, -1, 0);
        CHECK(maps[m] != MAP_FAILED);
        for (int i = 0; i < MAPLEN; i += 512) maps[m][i] = (char)(m * 31 + i / 512);
    }
    CHECK(mlock(maps[0], MAPLEN) == 0);
    CHECK(madvise(maps[1], MAPLEN, MADV_DONTFORK) == 0);
    CHECK(madvise(maps[2], MAPLEN, MADV_WIPEONFORK) == 0);
    CHECK(madvise(maps[3], MAPLEN, MADV_HUGEPAGE) == 0);
    CHECK(madvise(maps[4], MAPLEN, MADV_NOHUGEPAGE) == 0);
    for (int m = 0; m < NMAP; m++) vmflags(maps[m], map_flags[m]);
    CHECK(strstr(map_flags[0], "lo") && strstr(map_flags[1], "dc") && strstr(map_flags[2], "wf"));
    CHECK(strstr(map_flags[3], "hg") && strstr(map_flags[4], "nh") && strstr(map_flags[5], "gd"));
    CHECK(strstr(map_flags[6], "nr") == NULL);
    for (int m = 0; m < NMAP; m++) CHECK(strstr(map_flags[m], "ex") == NULL);
    read_settings(&want);
    say("SETTINGS groups %s", set_groups ? "set" : "unchanged (no CAP_SETGID)");

    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        check(i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE settings");
    return 0;
}
