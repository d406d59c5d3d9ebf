/*
 * ckpt.h: the C interface of the ckpt runtime (libckpt.so / libckpt.a).
 *
 * A program run under `ckpt` (or linked with the runtime) can be checkpointed
 * asynchronously by a signal (SIGTSTP unless CKPT_ASYNCSIG says otherwise). These
 * functions take a checkpoint synchronously, at a point the program chooses.
 *
 * All functions are async-signal-safe with respect to the program: a checkpoint
 * uses raw system calls only, and may itself run inside a signal handler.
 */
#ifndef CKPT_H
#define CKPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Return values of ckpt_checkpoint(). */
#define CKPT_WRITTEN   0  /* the checkpoint was written; the program continues */
#define CKPT_RESTARTED 1  /* this is the restarted process, returning from the call */

/*
 * Checkpoint now into the file `name` (relative to the working directory), or
 * into the configured file (CKPT_NAME, default: program name + ".ckpt") if NULL.
 *
 * Without continue mode (CKPT_CONTINUE / ckpt -c) the program exits with status 0
 * once the file is written, as with the signal. With it, returns CKPT_WRITTEN.
 * In the process restarted from the file, returns CKPT_RESTARTED.
 * On failure prints "ckpt: checkpoint failed: ..." on stderr, leaves any previous
 * checkpoint file untouched, and returns -errno; the program keeps running.
 */
int ckpt_checkpoint(const char *name);

/* The original ckpt interface: ckpt_checkpoint() without a result. */
void ckpt_ckpt(char *name);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_H */
