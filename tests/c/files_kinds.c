/* Descriptors other than regular files across a restart:
 * - a pipe with both ends in the process, with bytes queued in it (3 written and
 *   2 read per step: the backlog grows and must come back in order);
 * - a pipe whose write end is held by a child (outside the image): after the
 *   restart its read end sees end of file (before: EAGAIN);
 * - a FIFO (DIR/../fifo, made here) open at both ends, bytes queued in it;
 * - /dev/null, /dev/zero and /dev/urandom;
 * - a directory read one entry per step with getdents64 (the readdir position);
 *   at the end every entry was seen exactly once;
 * - /proc/self/status read partway (ckpt warns: the text at that offset after a
 *   restart is the new process's): reopened at its offset, and it reads on;
 *   /proc/self/stat open and not read (no warning).
 *
 * Usage: files_kinds DIR (DIR holds the entries e000..e099, made by the test). */
#include "tick.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define ENTRIES 100

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_kinds DIR");
    int p[2], q[2];
    CHECK(pipe(p) == 0 && pipe(q) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        /* Holds q's write end until its parent goes (the checkpoint). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(q[0]);
        for (;;) pause();
    }
    close(q[1]);
    CHECK(fcntl(q[0], F_SETFL, O_NONBLOCK) == 0);
    int null = open("/dev/null", O_WRONLY), zero = open("/dev/zero", O_RDONLY);
    int urandom = open("/dev/urandom", O_RDONLY);
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    CHECK(null >= 0 && zero >= 0 && urandom >= 0 && dir >= 0);
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/../fifo", argv[1]);
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    int fr = open(fifo, O_RDONLY | O_NONBLOCK), fw = open(fifo, O_WRONLY);
    CHECK(fr >= 0 && fw >= 0);
    int status = open("/proc/self/status", O_RDONLY), stat = open("/proc/self/stat", O_RDONLY);
    char head[64];
    CHECK(status >= 0 && stat >= 0 && read(status, head, sizeof head) == sizeof head);
    unsigned char fifo_w = 0, fifo_r = 0;
    char seen[ENTRIES] = {0};
    int nseen = 0;
    ready();
    unsigned char next_w = 0, next_r = 0;
    int restarts = 0;
    for (int i = 1; i <= 60; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            restarts++;
        }
        unsigned char b[3] = {next_w, (unsigned char)(next_w + 1), (unsigned char)(next_w + 2)};
        if (write(p[1], b, 3) != 3) FAIL("step %d: pipe write: %s", i, strerror(errno));
        next_w += 3;
        if (read(p[0], b, 2) != 2) FAIL("step %d: pipe read: %s", i, strerror(errno));
        if (b[0] != next_r || b[1] != (unsigned char)(next_r + 1))
            FAIL("step %d: pipe gave %d %d, want %d %d", i, b[0], b[1], next_r, next_r + 1);
        next_r += 2;
        unsigned char f2[2] = {fifo_w, (unsigned char)(fifo_w + 1)};
        if (write(fw, f2, 2) != 2) FAIL("step %d: fifo write: %s", i, strerror(errno));
        fifo_w += 2;
        if (read(fr, f2, 1) != 1 || f2[0] != fifo_r) FAIL("step %d: fifo gave %d, want %d (%s)", i, f2[0], fifo_r, strerror(errno));
        fifo_r++;
        char c;
        ssize_t n = read(q[0], &c, 1);
        if (restarts == 0 && !(n < 0 && errno == EAGAIN)) FAIL("step %d: outside pipe: %zd %s", i, n, strerror(errno));
        if (restarts > 0 && n != 0) FAIL("step %d: outside pipe after restart: %zd %s (want EOF)", i, n, strerror(errno));
        if (write(null, "x", 1) != 1) FAIL("step %d: /dev/null: %s", i, strerror(errno));
        char z[16];
        memset(z, 1, sizeof z);
        if (read(zero, z, sizeof z) != sizeof z) FAIL("step %d: /dev/zero: %s", i, strerror(errno));
        for (unsigned k = 0; k < sizeof z; k++) CHECK(z[k] == 0);
        if (read(urandom, z, sizeof z) != sizeof z) FAIL("step %d: /dev/urandom: %s", i, strerror(errno));
        /* One directory entry (a buffer too small for two). */
        char d[40] __attribute__((aligned(8)));
        long got = syscall(SYS_getdents64, dir, d, sizeof d);
        if (got < 0) FAIL("step %d: getdents64: %s", i, strerror(errno));
        for (long at = 0; at < got;) {
            struct { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; } *e = (void *)(d + at);
            if (e->name[0] == 'e') {
                int k = atoi(e->name + 1);
                if (k < 0 || k >= ENTRIES || seen[k]) FAIL("step %d: entry %s again", i, e->name);
                seen[k] = 1;
                nseen++;
            }
            at += e->reclen;
        }
        if (lseek(status, 0, SEEK_CUR) != sizeof head) FAIL("step %d: /proc/self/status is not at its offset", i);
        if (lseek(stat, 0, SEEK_CUR) != 0) FAIL("step %d: /proc/self/stat is not at offset 0", i);
        say("TICK %d", i);
        pause_ms(20);
    }
    /* The rest of the directory, then every entry was seen once. */
    char d[4096] __attribute__((aligned(8)));
    long got;
    while ((got = syscall(SYS_getdents64, dir, d, sizeof d)) > 0) {
        for (long at = 0; at < got;) {
            struct { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; } *e = (void *)(d + at);
            if (e->name[0] == 'e') {
                int k = atoi(e->name + 1);
                if (k < 0 || k >= ENTRIES || seen[k]) FAIL("entry %s again", e->name);
                seen[k] = 1;
                nseen++;
            }
            at += e->reclen;
        }
    }
    if (read(status, head, 1) != 1) FAIL("/proc/self/status does not read on: %s", strerror(errno));
    if (read(stat, head, 1) != 1 || head[0] < '1' || head[0] > '9') FAIL("/proc/self/stat does not start with a pid");
    if (nseen != ENTRIES) FAIL("saw %d directory entries, want %d", nseen, ENTRIES);
    if (!restarts) kill(child, SIGKILL);
    say("DONE");
    return 0;
}
