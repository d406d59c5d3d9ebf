/* A program with a forked worker and an unreaped child, for tree mode
 * (ckpt --tree, docs/trees.md).
 *
 * The parent forks a child that exits at once with status 7 and leaves it
 * unreaped (a zombie, waited for with WNOWAIT), then a worker that prints
 * "W n" for n = 1..STEPS and exits with a status computed from its work. The
 * parent prints "P n" for n = 1..STEPS meanwhile, then checks that the worker
 * still has its pid (kill), reaps it with waitpid(pid) and finds the status it
 * computed itself, and reaps the zombie (status 7). The worker checks that its
 * parent is still its parent. Both write their step into a MAP_SHARED |
 * MAP_ANONYMOUS page mapped before the fork and check at the end that they see
 * the other's last step (the worker ends after the parent's last step, the
 * parent reads after reaping the worker). Every line is flushed: after a checkpoint at any
 * moment and a restart, each "W n" and "P n" appears exactly once over both
 * runs, and the parent ends with "DONE". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 40

static void say(const char *fmt, long a, long b) {
    printf(fmt, a, b);
    putchar('\n');
    fflush(stdout);
}

static void nap(long ms) {
    struct timespec t = {0, ms * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* The worker's status: what it computed, from its own steps. */
static int expected(void) {
    unsigned long h = 1469598103UL;
    for (int i = 1; i <= STEPS; i++) h = (h ^ (unsigned long)i) * 16777619UL % 1000003UL;
    return (int)(h % 200) + 1;
}

int main(void) {
    pid_t parent = getpid();
    volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    pid_t zombie = fork();
    if (zombie == 0) _exit(7);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, zombie, &si, WEXITED | WNOWAIT) != 0) {
        say("FAIL: waitid %ld %ld", errno, 0);
        return 1;
    }
    pid_t worker = fork();
    if (worker == 0) {
        unsigned long h = 1469598103UL;
        for (int i = 1; i <= STEPS; i++) {
            h = (h ^ (unsigned long)i) * 16777619UL % 1000003UL;
            shared[0] = i;
            say("W %ld", i, 0);
            nap(15);
        }
        if (shared[1] != STEPS) {
            say("FAIL: the worker sees the parent's step %ld in shared memory, not %ld", shared[1], STEPS);
            _exit(251);
        }
        if (getppid() != parent) {
            say("FAIL: worker's parent is %ld, not %ld", getppid(), parent);
            _exit(250);
        }
        _exit((int)(h % 200) + 1);
    }
    say("READY %ld %ld", worker, zombie);
    for (int i = 1; i <= STEPS; i++) {
        shared[1] = i;
        say("P %ld", i, 0);
        nap(10);
    }
    if (kill(worker, 0) != 0 && errno != 0) {
        /* Either running or a zombie: kill(pid, 0) succeeds on both. */
        say("FAIL: kill(worker %ld): errno %ld", worker, errno);
        return 1;
    }
    int st = 0;
    pid_t got = waitpid(worker, &st, 0);
    if (got != worker || !WIFEXITED(st) || WEXITSTATUS(st) != expected()) {
        say("FAIL: waitpid(worker) = %ld, status %ld", got, st);
        return 1;
    }
    if (shared[0] != STEPS) {
        say("FAIL: the parent sees the worker's step %ld in shared memory, not %ld", shared[0], STEPS);
        return 1;
    }
    got = waitpid(zombie, &st, 0);
    if (got != zombie || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
        say("FAIL: waitpid(zombie) = %ld, status %ld", got, st);
        return 1;
    }
    if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) {
        say("FAIL: a child too many %ld %ld", 0, 0);
        return 1;
    }
    say("DONE worker %ld zombie %ld", expected(), 7);
    return 0;
}
