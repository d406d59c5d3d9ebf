/* Locks across a restart: an exclusive flock on DIR/a, a POSIX write lock on
 * bytes 10..99 of DIR/b and a read lock from 200 to its end. At every step a
 * child process (not the lock owner) checks that it cannot take any of them.
 *
 * Usage: files_locks DIR */
#include "tick.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>

static char pa[4200], pb[4200];

/* In a child: 0 if every lock is still held by the parent. */
static int check_held(void) {
    pid_t c = fork();
    if (c == 0) {
        int a = open(pa, O_RDWR), b = open(pb, O_RDWR);
        if (flock(a, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) _exit(1);
        struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 1};
        if (fcntl(b, F_SETLK, &w) == 0) _exit(2);
        struct flock w2 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 300, .l_len = 1};
        if (fcntl(b, F_SETLK, &w2) == 0) _exit(3);
        struct flock r = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 300, .l_len = 1};
        if (fcntl(b, F_SETLK, &r) != 0) _exit(4); /* a read lock is shared */
        _exit(0);
    }
    int st = 0;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_locks DIR");
    snprintf(pa, sizeof pa, "%s/a", argv[1]);
    snprintf(pb, sizeof pb, "%s/b", argv[1]);
    int a = open(pa, O_RDWR | O_CREAT, 0600), b = open(pb, O_RDWR | O_CREAT, 0600);
    CHECK(a >= 0 && b >= 0 && flock(a, LOCK_EX) == 0);
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 90};
    struct flock r = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 200, .l_len = 0};
    CHECK(fcntl(b, F_SETLK, &w) == 0 && fcntl(b, F_SETLK, &r) == 0);
    ready();
    for (int i = 1; i <= 40; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        int e = check_held();
        if (e) FAIL("step %d: a lock is not held (check %d)", i, e);
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
