/* inotify across a restart (run in a directory of its own, as root: the watch
 * on "far/c" is found by its file handle, open_by_handle_at):
 * - one instance, non-blocking, watching "." (the working directory), "a" (a
 *   file the program holds open), "far/c" (neither open nor the working
 *   directory) and, between them, a watch on "b" that was removed: the numbers
 *   are 1 (.), 2 (a), 4 (far/c) with 3 given back;
 * - a second instance with an event queued and never read (ckpt warns that
 *   such events are lost).
 * At every step the program writes to a, creates and removes an entry of ".",
 * writes to far/c, and reads the events, which must carry the watch numbers
 * it was given before the checkpoint (signals blocked meanwhile, so that the
 * checkpoint never falls between a change and its event: queued events are
 * not restored). */
#define _GNU_SOURCE
#include "tick.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

static int in;
static int wd_dot, wd_a, wd_c;

/* The events of one step: IN_MODIFY on a (wd_a), IN_CREATE and IN_DELETE of
 * "e" in "." (wd_dot), IN_MODIFY on far/c (wd_c); nothing else. */
static void step_events(int step, int afd) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    CHECK(write(afd, "x", 1) == 1);
    int e = open("e", O_CREAT | O_WRONLY, 0600);
    CHECK(e >= 0 && close(e) == 0 && unlink("e") == 0);
    int c = open("far/c", O_WRONLY | O_APPEND);
    CHECK(c >= 0 && write(c, "y", 1) == 1 && close(c) == 0);
    int seen_a = 0, seen_create = 0, seen_delete = 0, seen_c = 0;
    for (int tries = 0; tries < 200 && !(seen_a && seen_create && seen_delete && seen_c); tries++) {
        char buf[4096] __attribute__((aligned(8)));
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN) {
            pause_ms(1);
            continue;
        }
        if (n <= 0) FAIL("step %d: inotify read: %zd %s", step, n, strerror(errno));
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->wd == wd_a && (ev->mask & IN_MODIFY)) seen_a = 1;
            else if (ev->wd == wd_dot && (ev->mask & IN_CREATE) && !strcmp(ev->name, "e")) seen_create = 1;
            else if (ev->wd == wd_dot && (ev->mask & IN_DELETE) && !strcmp(ev->name, "e")) seen_delete = 1;
            else if (ev->wd == wd_c && (ev->mask & IN_MODIFY)) seen_c = 1;
            else if (!(ev->wd == wd_dot && (ev->mask & (IN_MODIFY | IN_OPEN | IN_CLOSE)))) {
                FAIL("step %d: unexpected event wd %d mask %#x name %s", step, ev->wd, ev->mask, ev->len ? ev->name : "");
            }
            p += sizeof *ev + ev->len;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (!(seen_a && seen_create && seen_delete && seen_c))
        FAIL("step %d: events missing: a %d create %d delete %d c %d", step, seen_a, seen_create, seen_delete, seen_c);
}

int main(void) {
    CHECK(mkdir("far", 0700) == 0 || errno == EEXIST);
    int afd = open("a", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    int cfd = open("far/c", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    int bfd = open("b", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(afd >= 0 && cfd >= 0 && bfd >= 0 && close(cfd) == 0 && close(bfd) == 0);
    in = inotify_init1(IN_NONBLOCK);
    CHECK(in >= 0);
    wd_dot = inotify_add_watch(in, ".", IN_CREATE | IN_DELETE);
    wd_a = inotify_add_watch(in, "a", IN_MODIFY);
    int wd_b = inotify_add_watch(in, "b", IN_MODIFY);
    CHECK(inotify_rm_watch(in, wd_b) == 0);
    wd_c = inotify_add_watch(in, "far/c", IN_MODIFY);
    CHECK(wd_dot == 1 && wd_a == 2 && wd_b == 3 && wd_c == 4);
    /* Drain the IN_IGNORED of b. */
    char buf[4096] __attribute__((aligned(8)));
    while (read(in, buf, sizeof buf) > 0) {
    }
    /* The instance with an event nobody reads. */
    int unread = inotify_init1(IN_NONBLOCK);
    CHECK(unread >= 0 && inotify_add_watch(unread, "b", IN_OPEN) == 1);
    int b = open("b", O_RDONLY);
    CHECK(b >= 0 && close(b) == 0);
    ready();
    for (int i = 1; i <= 60; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        step_events(i, afd);
        say("TICK %d", i);
        pause_ms(20);
    }
    say("DONE");
    return 0;
}
