//! A program that exits with the checkpoint exit status by itself (85 unless
//! `CKPT_EXIT_STATUS` says otherwise) would be taken by a scheduler for one that
//! was checkpointed, and run again: say so when it happens.
//!
//! The runtime intercepts no function, but glibc's `on_exit(3)` handlers are
//! given the status `exit` was called with. When the C library has `on_exit` (a
//! weak reference, `ckpt_on_exit_ptr` in asm/<arch>/save.S; none in musl), a
//! handler is registered at load. A checkpoint-and-exit ends with `exit_group`
//! directly and runs no handler, so a status the handler sees is the program's
//! own. `_exit` also runs none: such an exit goes unremarked. The registration
//! is part of the C library's memory, so a restarted process has it too.
//!
//! # Safety
//! `on_exit` is called with its documented prototype,
//! `int on_exit(void (*function)(int, void *), void *arg)`.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};

use ckpt_sys::msg::Msg;

unsafe extern "C" {
    fn ckpt_on_exit_ptr() -> *const c_void;
}

type OnExit = unsafe extern "C" fn(extern "C" fn(c_int, *mut c_void), *mut c_void) -> c_int;

/// Register the handler, if the C library can.
pub fn watch() {
    // SAFETY: returns an address or NULL; no other effect.
    let p = unsafe { ckpt_on_exit_ptr() };
    if p.is_null() {
        return;
    }
    // SAFETY: p is the C library's on_exit (see the module comment).
    let on_exit: OnExit = unsafe { core::mem::transmute::<*const c_void, OnExit>(p) };
    // SAFETY: as above; the handler is a function of ours that lives as long as the process.
    let _ = unsafe { on_exit(at_exit, core::ptr::null_mut()) };
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
