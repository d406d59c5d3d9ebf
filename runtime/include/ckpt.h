/*
 * ckpt.h: the C interface of the ckpt runtime (libckpt.so / libckpt.a).
 *
 * A program run under `ckpt` (or linked with the runtime) can be checkpointed
 * asynchronously by a signal (SIGTSTP unless CKPT_ASYNCSIG says otherwise), and
 * periodically (CKPT_INTERVAL). These functions let it checkpoint synchronously,
 * at a point it chooses, change the configuration, and run code around a
 * checkpoint and after a restart.
 *
 * Linking:
 *   ckpt PROG                                  preloads libckpt.so, nothing to link
 *   cc -o prog prog.o -L$DIST/lib -lckpt       dynamic (SONAME libckpt.so)
 *   cc -static -o prog prog.o $DIST/lib/libckpt.a
 *                                              static (glibc or musl); libckpt.a is a
 *                                              single prelinked object, so it is
 *                                              linked whole even when the program
 *                                              calls none of these functions
 *
 * Async-signal context: a checkpoint may run inside the runtime's signal handler,
 * at any instruction of the program, with every signal blocked. The hooks below
 * run there too: they must only do what is safe in a signal handler (no malloc,
 * no stdio on streams the program may be using, no locks the program may hold).
 * All functions here are async-signal-safe themselves.
 */
#ifndef CKPT_H
#define CKPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Return values of ckpt_checkpoint(). */
#define CKPT_WRITTEN   0  /* the checkpoint was written; the program continues */
#define CKPT_RESTARTED 1  /* this is the restarted process, returning from the call */

/* Longest checkpoint file name, including its terminating NUL. */
#define CKPT_MAXNAME 4096

/*
 * Checkpoint now into the file `name` (relative to the working directory), or
 * into the configured file (CKPT_NAME, default: program name + ".ckpt") if NULL.
 *
 * Without continue mode the program exits with status 85 (CKPT_EXIT_STATUS,
 * "checkpointed, run me again") once the file is
 * written, as with the signal. In continue mode it returns CKPT_WRITTEN once the
 * file is complete and durable (the call is synchronous: use the signal or the
 * periodic timer for checkpoints that pause the program only briefly).
 * In the process restarted from the file, returns CKPT_RESTARTED.
 * On failure prints "ckpt: checkpoint failed: ..." on stderr, leaves any previous
 * checkpoint file untouched, and returns -errno; the program keeps running.
 * Called while a checkpoint is already running (from a hook), returns -EBUSY.
 */
int ckpt_checkpoint(const char *name);

/*
 * The original ckpt interface: checkpoint now, with NAME (if not NULL)
 * overriding the configured name for this call only. Returns when the program
 * continues: after the checkpoint in continue mode, or in the restarted process
 * (after the restart hooks). Without continue mode the program exits once the
 * file is written. Failures are reported on stderr.
 */
void ckpt_ckpt(char *name);

/*
 * Hooks, up to 32 of each kind. `f(arg)` is called:
 *   ckpt_on_preckpt:  before each checkpoint, in registration order;
 *   ckpt_on_postckpt: after each checkpoint when the program continues (continue
 *                     mode, periodic checkpoints), in registration order;
 *   ckpt_on_restart:  in the restarted process, once everything is restored and
 *                     just before control returns to the program, in the reverse
 *                     of registration order.
 * Registering more than 32 of a kind prints a warning and ignores the hook.
 * Hooks registered before a checkpoint are part of it: a restarted process runs
 * the restart hooks it had when the checkpoint was taken.
 */
void ckpt_on_preckpt(void (*f)(void *), void *arg);
void ckpt_on_postckpt(void (*f)(void *), void *arg);
void ckpt_on_restart(void (*f)(void *), void *arg);

/*
 * The configuration. The original ckpt called the continue flag `continue`,
 * which is a C keyword: here it is `continues`.
 */
struct ckptconfig {
    char name[CKPT_MAXNAME];  /* checkpoint file (CKPT_NAME; setting it leaves directory mode, CKPT_DIR) */
    unsigned int asyncsig;    /* trigger signal, 0 = none (CKPT_ASYNCSIG: the first of them; setting it makes it the only one) */
    unsigned int continues;   /* non-zero: keep running after a checkpoint (CKPT_CONTINUE) */
    unsigned int interval;    /* seconds between periodic checkpoints, 0 = none (CKPT_INTERVAL) */
    unsigned int flags;       /* which fields ckpt_config() sets: CKPT_SET_* */
};

#define CKPT_SET_NAME     0x1u
#define CKPT_SET_ASYNCSIG 0x2u
#define CKPT_SET_CONTINUE 0x4u
#define CKPT_SET_INTERVAL 0x8u

/*
 * Read and change the configuration. If `old` is not NULL it receives the
 * configuration in force before the call (its `flags` set to all CKPT_SET_*
 * bits). If `cfg` is not NULL, the fields named in cfg->flags are changed:
 * changing asyncsig re-arms the handler (the old signal goes back to its default
 * action, 0 disables), changing interval re-arms the periodic timer. Invalid
 * values (an uncatchable signal, an empty or unterminated name) are reported on
 * stderr and leave that field as it was. Returns 0, or -EINVAL if any field was
 * refused, -EBUSY if called while a checkpoint is running.
 */
int ckpt_config(const struct ckptconfig *cfg, struct ckptconfig *old);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_H */
