/* Signal state survives a restart: an SA_SIGINFO handler (with its flags and
 * sa_mask), a blocked signal that stays blocked (and pending stays pending-able),
 * and a handler that runs on the alternate signal stack. Checked at every step by
 * sending the signals to ourselves. */
#define _GNU_SOURCE
#include "tick.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>

static volatile sig_atomic_t usr1_count, last_code, on_alt;
static char altstack[64 * 1024];

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (sig != SIGUSR1) return;
    usr1_count++;
    last_code = si->si_code;
    char here;
    on_alt = &here >= altstack && &here < altstack + sizeof altstack;
}

static void check_signal_state(int step) {
    struct sigaction sa;
    CHECK(sigaction(SIGUSR1, NULL, &sa) == 0);
    CHECK(sa.sa_sigaction == on_usr1);
    CHECK(sa.sa_flags & SA_SIGINFO);
    CHECK(sa.sa_flags & SA_ONSTACK);
    CHECK(sigismember(&sa.sa_mask, SIGHUP));
    CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);

    sigset_t cur;
    CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
    CHECK(sigismember(&cur, SIGUSR2));
    CHECK(!sigismember(&cur, SIGUSR1));

    stack_t ss;
    CHECK(sigaltstack(NULL, &ss) == 0);
    CHECK(ss.ss_sp == altstack && ss.ss_size == sizeof altstack && !(ss.ss_flags & SS_DISABLE));

    /* The handler fires, with siginfo, on the alternate stack. */
    int before = usr1_count;
    on_alt = 0;
    union sigval v = {.sival_int = step};
    CHECK(sigqueue(getpid(), SIGUSR1, v) == 0);
    if (usr1_count != before + 1) FAIL("SIGUSR1 handler did not run (step %d)", step);
    CHECK(last_code == SI_QUEUE);
    CHECK(on_alt);

    /* A blocked signal stays pending, and is not delivered. */
    CHECK(raise(SIGPIPE) == 0); /* ignored: nothing happens */
    CHECK(kill(getpid(), SIGUSR2) == 0);
    sigset_t pend;
    CHECK(sigpending(&pend) == 0 && sigismember(&pend, SIGUSR2));
    /* Consume it without unblocking. */
    int got;
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, SIGUSR2);
    CHECK(sigwait(&only, &got) == 0 && got == SIGUSR2);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 60;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0);

    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        check_signal_state(i);
        if (usr1_count != i) FAIL("handler count %d at step %d", (int)usr1_count, i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE handlers %d", (int)usr1_count);
    return 0;
}
