/* Regular files across a restart: a file read step by step (its offset), one
 * written (write-only, truncated at open), one appended to (O_APPEND), a dup() of
 * the written one that shares its offset, a close-on-exec read-write file, a file
 * deleted while open (its content must come back, unlinked), and nothing else:
 * every step checks that the open descriptors are exactly these.
 *
 * Usage: files_regular DIR [STEPS]. At the end the files are read back by path
 * and compared with what the steps wrote. */
#include "tick.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static char path[4][4096];
static int fd_in, fd_out, fd_app, fd_dup, fd_rw, fd_del;

static unsigned char data_at(long i) { return (unsigned char)((i * 7 + 3) % 251); }

/* Descriptors open before ours (0, 1, 2 and whatever the test's parent
 * leaked): they stay what they are. */
static char initial[1024];

static void note_initial(void) {
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d) && fd < 1024) initial[fd] = 1;
    }
    closedir(d);
}

/* The open descriptors are exactly the initial ones and ours. */
static void check_fds(int step) {
    int want[] = {0, 1, 2, fd_in, fd_out, fd_app, fd_dup, fd_rw, fd_del};
    int seen[64] = {0};
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;
        int ok = fd < 1024 && initial[fd];
        for (unsigned k = 0; k < sizeof want / sizeof *want; k++) ok |= want[k] == fd;
        if (!ok) {
            char l[4096] = "";
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
            readlink(p, l, sizeof l - 1);
            FAIL("step %d: foreign descriptor %d (%s)", step, fd, l);
        }
        if (fd < 64) seen[fd] = 1;
    }
    closedir(d);
    for (unsigned k = 3; k < sizeof want / sizeof *want; k++)
        if (!seen[want[k]]) FAIL("step %d: descriptor %d is gone", step, want[k]);
}

static void check_flags(int fd, int acc, int append, int cloexec) {
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) FAIL("fcntl %d: %s", fd, strerror(errno));
    if ((fl & O_ACCMODE) != acc) FAIL("fd %d: access mode %o, want %o", fd, fl & O_ACCMODE, acc);
    if (!!(fl & O_APPEND) != append) FAIL("fd %d: O_APPEND %d, want %d", fd, !!(fl & O_APPEND), append);
    if (!!(fdfl & FD_CLOEXEC) != cloexec) FAIL("fd %d: cloexec %d, want %d", fd, !!(fdfl & FD_CLOEXEC), cloexec);
}

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_regular DIR [STEPS]");
    int steps = argc > 2 ? atoi(argv[2]) : 60;
    const char *names[4] = {"in.bin", "out.txt", "app.txt", "rw.bin"};
    for (int k = 0; k < 4; k++) snprintf(path[k], sizeof path[k], "%s/%s", argv[1], names[k]);

    note_initial();
    fd_in = open(path[0], O_RDONLY);
    fd_out = open(path[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    fd_app = open(path[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    fd_dup = dup(fd_out);
    fd_rw = open(path[3], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char del[4200];
    snprintf(del, sizeof del, "%s/deleted.bin", argv[1]);
    fd_del = open(del, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd_in >= 0 && fd_out >= 0 && fd_app >= 0 && fd_dup >= 0 && fd_rw >= 0 && fd_del >= 0);
    CHECK(unlink(del) == 0);
    /* Something already in the app file: O_APPEND must keep adding at the end. */
    CHECK(write(fd_app, "start\n", 6) == 6);
    ready();
    long in_pos = 0;
    for (int i = 1; i <= steps; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        check_fds(i);
        check_flags(fd_in, O_RDONLY, 0, 0);
        check_flags(fd_out, O_WRONLY, 0, 0);
        check_flags(fd_dup, O_WRONLY, 0, 0);
        check_flags(fd_app, O_WRONLY, 1, 0);
        check_flags(fd_rw, O_RDWR, 0, 1);
        check_flags(fd_del, O_RDWR, 0, 0);
        /* The input, 1000 bytes a step, from where the last step stopped. */
        long at = (long)lseek(fd_in, 0, SEEK_CUR);
        if (at != in_pos) FAIL("step %d: input offset %ld, want %ld (%s)", i, at, in_pos, at < 0 ? strerror(errno) : "");
        unsigned char buf[1000];
        if (read(fd_in, buf, sizeof buf) != (ssize_t)sizeof buf) FAIL("step %d: short read: %s", i, strerror(errno));
        for (unsigned k = 0; k < sizeof buf; k++)
            if (buf[k] != data_at(in_pos + k)) FAIL("step %d: input byte %ld is %d", i, in_pos + k, buf[k]);
        in_pos += sizeof buf;
        /* Two lines through two descriptors of one description: one offset. */
        dprintf(fd_out, "out %d\n", i);
        dprintf(fd_dup, "dup %d\n", i);
        dprintf(fd_app, "app %d\n", i);
        /* The read-write file: write at the offset, read back with pread. */
        char line[64];
        int n = snprintf(line, sizeof line, "rw %06d\n", i);
        CHECK(write(fd_rw, line, n) == n);
        char back[64];
        CHECK(pread(fd_rw, back, n, (long)(i - 1) * n) == n && memcmp(back, line, n) == 0);
        /* The deleted file: what all steps wrote is still there. */
        n = snprintf(line, sizeof line, "del %06d\n", i);
        CHECK(write(fd_del, line, n) == n);
        struct stat st;
        CHECK(fstat(fd_del, &st) == 0);
        if (st.st_nlink != 0) FAIL("step %d: the deleted file has a name again", i);
        if (st.st_size != (off_t)i * n) FAIL("step %d: deleted file is %ld bytes, want %ld", i, (long)st.st_size, (long)i * n);
        for (int j = 1; j <= i; j++) {
            char want[64];
            snprintf(want, sizeof want, "del %06d\n", j);
            CHECK(pread(fd_del, back, n, (long)(j - 1) * n) == n);
            if (memcmp(back, want, n) != 0) FAIL("step %d: deleted file line %d is %.11s", i, j, back);
        }
        say("TICK %d", i);
        pause_ms(20);
    }
    /* Read back by path what went into each file. */
    char got[1 << 16], want[1 << 16];
    int fd = open(path[1], O_RDONLY);
    ssize_t g = read(fd, got, sizeof got);
    close(fd);
    int w = 0;
    for (int i = 1; i <= steps; i++) w += sprintf(want + w, "out %d\ndup %d\n", i, i);
    if (g != w || memcmp(got, want, w) != 0) FAIL("out.txt differs (%ld bytes, want %d)", (long)g, w);
    fd = open(path[2], O_RDONLY);
    g = read(fd, got, sizeof got);
    close(fd);
    w = sprintf(want, "start\n");
    for (int i = 1; i <= steps; i++) w += sprintf(want + w, "app %d\n", i);
    if (g != w || memcmp(got, want, w) != 0) FAIL("app.txt differs (%ld bytes, want %d)", (long)g, w);
    say("DONE");
    return 0;
}
