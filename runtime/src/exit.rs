//! A program that exits with the checkpoint exit status by itself (85 unless
//! `CKPT_EXIT_STATUS` says otherwise) would be taken by a scheduler for one that
//! was checkpointed, and run again: say so when it happens.
//!
//! The runtime intercepts no function, but glibc's `on_exit(3)` handlers are
//! given the status `exit` was called with. When the C library has `on_exit`
//! (`libc::on_exit`; none in musl), a handler is registered at load. A
//! checkpoint-and-exit ends with `exit_group` directly and runs no handler, so a
//! status the handler sees is the program's own. `_exit` also runs none: such an
//! exit goes unremarked. The registration is part of the C library's memory, so
//! a restarted process has it too.

use core::ffi::{c_int, c_void};

use ckpt_sys::msg::Msg;

/// Register the handler, if the C library can.
pub fn watch() {
    crate::libc::on_exit(at_exit);
}

extern "C" fn at_exit(status: c_int, _: *mut c_void) {
    let cfg = crate::config();
    if cfg.exit_status == 0 || status != cfg.exit_status as c_int || !crate::signal::is_owner() {
        return;
    }
    Msg::new()
        .s("ckpt: warning: the program exited with status ")
        .u(status as u64)
        .s(" by itself, not after a checkpoint; that is the checkpoint exit status, which a scheduler takes for \"checkpointed, run me again\" (choose another with -x / CKPT_EXIT_STATUS)")
        .emit();
}
