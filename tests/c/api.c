/* The C API (ckpt.h): configuration read and changed at run time, hooks in their
 * order, and the values ckpt_checkpoint() returns in the original process and in
 * the restarted one. At step 10 the program checkpoints itself into api-sync.ckpt
 * (continue mode, set through ckpt_config), at step 20 with ckpt_ckpt() into
 * api-old.ckpt; each restart must report its own hook log and go on from there. */
#define _GNU_SOURCE
#include "tick.h"

#include <ckpt.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

static char hook_log[64];
static int hook_len;

static void hook(void *arg) {
    const char *s = arg;
    size_t n = strlen(s);
    if (hook_len + n < sizeof hook_log) {
        memcpy(hook_log + hook_len, s, n);
        hook_len += n;
        hook_log[hook_len] = 0;
    }
}

static void check_config(void) {
    struct ckptconfig c, old;
    CHECK(ckpt_config(NULL, &old) == 0);
    if (strcmp(old.name, "api.ckpt") != 0) FAIL("default name '%s'", old.name);
    CHECK(old.asyncsig == SIGTSTP && old.continues == 0 && old.interval == 0);

    memset(&c, 0, sizeof c);
    strcpy(c.name, "api-sync.ckpt");
    c.continues = 1;
    c.flags = CKPT_SET_NAME | CKPT_SET_CONTINUE;
    CHECK(ckpt_config(&c, &old) == 0);
    CHECK(strcmp(old.name, "api.ckpt") == 0); /* old is what was in force before */
    CHECK(ckpt_config(NULL, &old) == 0);
    CHECK(strcmp(old.name, "api-sync.ckpt") == 0 && old.continues == 1 && old.asyncsig == SIGTSTP);

    /* An uncatchable signal is refused and changes nothing. */
    c.flags = CKPT_SET_ASYNCSIG;
    c.asyncsig = SIGKILL;
    CHECK(ckpt_config(&c, NULL) == -EINVAL);
    CHECK(ckpt_config(NULL, &old) == 0 && old.asyncsig == SIGTSTP);

    /* Moving the trigger re-arms the handler: SIGUSR2 caught, SIGTSTP default. */
    struct sigaction sa;
    c.asyncsig = SIGUSR2;
    CHECK(ckpt_config(&c, NULL) == 0);
    CHECK(sigaction(SIGUSR2, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL);
    CHECK(sigaction(SIGTSTP, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL);
    c.asyncsig = SIGTSTP;
    CHECK(ckpt_config(&c, NULL) == 0);
    CHECK(sigaction(SIGTSTP, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL);
    CHECK(sigaction(SIGUSR2, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL);
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 30;
    check_config();
    ckpt_on_preckpt(hook, "a");
    ckpt_on_preckpt(hook, "b");
    ckpt_on_preckpt(hook, "c");
    ckpt_on_postckpt(hook, "1");
    ckpt_on_postckpt(hook, "2");
    ckpt_on_postckpt(hook, "3");
    ckpt_on_restart(hook, "x");
    ckpt_on_restart(hook, "y");
    ckpt_on_restart(hook, "z");
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        if (i == 10) {
            hook_len = 0;
            int r = ckpt_checkpoint(NULL);
            if (r == CKPT_WRITTEN) {
                /* Pre hooks in order, then post hooks in order. */
                if (strcmp(hook_log, "abc123") != 0) FAIL("hooks after writing: '%s'", hook_log);
                say("WRITTEN hooks %s", hook_log);
            } else if (r == CKPT_RESTARTED) {
                /* Pre hooks ran before the snapshot; restart hooks in reverse. */
                if (strcmp(hook_log, "abczyx") != 0) FAIL("hooks after restart: '%s'", hook_log);
                say("RESTARTED-CALL hooks %s", hook_log);
            } else {
                FAIL("ckpt_checkpoint returned %d", r);
            }
        }
        if (i == 20) {
            hook_len = 0;
            ckpt_ckpt("api-old.ckpt");
            say("CKPT_CKPT returned hooks %s", hook_log);
        }
        say("TICK %d", i);
        pause_ms(10);
    }
    /* A checkpoint into a directory that does not exist fails with -ENOENT and
     * the program goes on. */
    CHECK(ckpt_checkpoint("no/such/dir/x.ckpt") == -ENOENT);
    say("DONE");
    return 0;
}
