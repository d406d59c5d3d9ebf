/* Pending signals survive a checkpoint and a restart (issue 13): blocked and
 * queued at set-up, then checked at every step, before and after the restart,
 * the checkpoint falling at any moment:
 *   process-wide: SIGUSR2 from kill (SI_USER), SIGRTMIN+1 twice from sigqueue
 *                 (values 111, 222, in that order), SIGRTMIN+2 (333);
 *   this thread:  SIGWINCH from tgkill, SIGRTMIN+3 from
 *                 rt_tgsigqueueinfo (SI_QUEUE, 444).
 * Every step reads both pending sets from /proc/thread-self/status. The first
 * step after the restart takes every signal with sigtimedwait and checks its
 * siginfo (code, sender pid and uid, value, order), then queues them again. */
#define _GNU_SOURCE
#include "tick.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>

static pid_t orig_pid;
static uid_t uid;
/* The si_code tgkill gives (SI_TKILL in man pages, SI_USER on Linux 6.18). */
static int tkill_code;

static unsigned long long status_mask(const char *key) {
    char text[4096];
    read_proc("/proc/thread-self/status", text, sizeof text);
    unsigned long long v = ~0ull;
    for (char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, strlen(key)) == 0) v = strtoull(line + strlen(key), NULL, 16);
    return v;
}

static unsigned long long bit(int sig) { return 1ull << (sig - 1); }

static void queue_all(void) {
    pid_t me = getpid();
    CHECK(kill(me, SIGUSR2) == 0);
    union sigval v = {.sival_int = 111};
    CHECK(sigqueue(me, SIGRTMIN + 1, v) == 0);
    v.sival_int = 222;
    CHECK(sigqueue(me, SIGRTMIN + 1, v) == 0);
    v.sival_int = 333;
    CHECK(sigqueue(me, SIGRTMIN + 2, v) == 0);
    CHECK(syscall(SYS_tgkill, me, gettid(), SIGWINCH) == 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGRTMIN + 3;
    si.si_code = SI_QUEUE;
    si.si_pid = me;
    si.si_uid = uid;
    si.si_value.sival_int = 444;
    CHECK(syscall(SYS_rt_tgsigqueueinfo, me, gettid(), SIGRTMIN + 3, &si) == 0);
}

static void check_masks(int step) {
    unsigned long long own = status_mask("SigPnd:"), shd = status_mask("ShdPnd:");
    unsigned long long want_own = bit(SIGWINCH) | bit(SIGRTMIN + 3);
    unsigned long long want_shd = bit(SIGUSR2) | bit(SIGRTMIN + 1) | bit(SIGRTMIN + 2);
    if (own != want_own || shd != want_shd)
        FAIL("step %d: pending thread %llx process %llx, want %llx %llx", step, own, shd, want_own, want_shd);
}

static void take(int sig, int code, pid_t pid, int value) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    struct timespec zero = {0, 0};
    siginfo_t si;
    int got = sigtimedwait(&s, &si, &zero);
    if (got != sig) FAIL("signal %d not pending (%d)", sig, got);
    if (si.si_code != code) FAIL("signal %d: si_code %d, want %d", sig, si.si_code, code);
    if (si.si_pid != pid) FAIL("signal %d: si_pid %d, want %d", sig, (int)si.si_pid, (int)pid);
    if (si.si_uid != uid) FAIL("signal %d: si_uid %d", sig, (int)si.si_uid);
    if (value >= 0 && si.si_value.sival_int != value)
        FAIL("signal %d: value %d, want %d", sig, si.si_value.sival_int, value);
}

static void check_siginfo(void) {
    take(SIGRTMIN + 1, SI_QUEUE, orig_pid, 111);
    take(SIGRTMIN + 1, SI_QUEUE, orig_pid, 222);
    take(SIGRTMIN + 2, SI_QUEUE, orig_pid, 333);
    take(SIGRTMIN + 3, SI_QUEUE, orig_pid, 444);
    take(SIGUSR2, SI_USER, orig_pid, -1);
    take(SIGWINCH, tkill_code, orig_pid, -1);
    sigset_t p;
    CHECK(sigpending(&p) == 0);
    for (int s = 1; s < 65; s++)
        if (s != SIGTSTP && sigismember(&p, s)) FAIL("signal %d pending after all were taken", s);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    uid = getuid();
    orig_pid = getpid();
    sigset_t block;
    sigemptyset(&block);
    int sigs[] = {SIGUSR2, SIGWINCH, SIGRTMIN + 1, SIGRTMIN + 2, SIGRTMIN + 3};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&block, sigs[i]);
    CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0);
    {
        CHECK(syscall(SYS_tgkill, orig_pid, gettid(), SIGWINCH) == 0);
        sigset_t w;
        sigemptyset(&w);
        sigaddset(&w, SIGWINCH);
        siginfo_t si;
        CHECK(sigwaitinfo(&w, &si) == SIGWINCH);
        tkill_code = si.si_code;
    }
    queue_all();
    check_masks(0);

    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            check_masks(i);
            check_siginfo();
            orig_pid = getpid();
            queue_all();
            say("PENDING ok");
        }
        check_masks(i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE pending");
    return 0;
}
