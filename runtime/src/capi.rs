//! The C side: the load-time constructor and the functions of `ckpt.h`.
//!
//! # Safety
//! This module places the constructor in `.init_array` and reads C strings the
//! program passes in.
#![allow(unsafe_code)]

use core::ffi::{CStr, c_char, c_int};

use crate::Outcome;

/// Runs when the dynamic loader (or the C start-up code of a static program) runs
/// initialisers, before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static CKPT_INIT: extern "C" fn() = ckpt_init;

extern "C" fn ckpt_init() {
    crate::init();
}

/// Returned by [`ckpt_checkpoint`] when the checkpoint was written and the
/// program continues.
pub const CKPT_WRITTEN: c_int = 0;
/// Returned by [`ckpt_checkpoint`] in the restarted process.
pub const CKPT_RESTARTED: c_int = 1;

fn name_arg<'a>(name: *const c_char) -> Option<&'a [u8]> {
    if name.is_null() {
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated string or NULL (ckpt.h).
    Some(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// `int ckpt_checkpoint(const char *name)`: checkpoint now into `name` (or the
/// configured file if NULL). Returns `CKPT_WRITTEN` (0) after writing (only when
/// continuing: without continue mode the program exits with status 0),
/// `CKPT_RESTARTED` (1) in the restarted process, or `-errno` on failure (the
/// program keeps running and the previous file is untouched).
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_checkpoint(name: *const c_char) -> c_int {
    match crate::checkpoint(name_arg(name)) {
        Ok(Outcome::Written { exit: true }) => ckpt_sys::exit_group(0),
        Ok(Outcome::Written { exit: false }) => CKPT_WRITTEN,
        Ok(Outcome::Restarted) => CKPT_RESTARTED,
        Err(f) => {
            f.report();
            -(f.errno.0 as c_int)
        }
    }
}

/// `void ckpt_ckpt(char *name)`: the original ckpt interface to
/// [`ckpt_checkpoint`], without a result.
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_ckpt(name: *const c_char) {
    ckpt_checkpoint(name);
}
