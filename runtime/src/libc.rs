//! The C library's functions the runtime calls, when the program has them: each
//! found through a weak reference (`WEAK_ADDR` in asm/<arch>/save.S), which is
//! NULL when the C library lacks it (musl has no `__register_atfork` visible to
//! us; a static program links only what it uses). The runtime intercepts no
//! function; these only register handlers of ours.
//!
//! # Safety
//! Each address is the C library's own function of that name, called with its
//! documented prototype; the handlers passed are functions of the runtime, which
//! live as long as the process.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};

unsafe extern "C" {
    fn ckpt_on_exit_ptr() -> *const c_void;
    fn ckpt_register_atfork_ptr() -> *const c_void;
}

/// `int on_exit(void (*function)(int, void *), void *arg);`
type OnExit = unsafe extern "C" fn(extern "C" fn(c_int, *mut c_void), *mut c_void) -> c_int;

/// glibc's `int __register_atfork(void (*prepare)(void), void (*parent)(void),
/// void (*child)(void), void *dso_handle);`
type RegisterAtfork = unsafe extern "C" fn(
    Option<extern "C" fn()>,
    Option<extern "C" fn()>,
    Option<extern "C" fn()>,
    *mut c_void,
) -> c_int;

/// Register `f` with `on_exit(3)` (glibc: it is given the status `exit` was
/// called with). False if the C library has no `on_exit` or refused.
pub fn on_exit(f: extern "C" fn(c_int, *mut c_void)) -> bool {
    // SAFETY: returns an address or NULL; no other effect.
    let p = unsafe { ckpt_on_exit_ptr() };
    if p.is_null() {
        return false;
    }
    // SAFETY: p is the C library's on_exit (see the module comment).
    let on_exit: OnExit = unsafe { core::mem::transmute::<*const c_void, OnExit>(p) };
    // SAFETY: as above.
    unsafe { on_exit(f, core::ptr::null_mut()) == 0 }
}

/// Register `prepare` to run before every `fork(3)` of the C library (glibc's
/// `pthread_atfork` machinery; a NULL handle registers handlers that are never
/// unregistered). False if the C library cannot.
pub fn register_atfork(prepare: extern "C" fn()) -> bool {
    // SAFETY: returns an address or NULL; no other effect.
    let p = unsafe { ckpt_register_atfork_ptr() };
    if p.is_null() {
        return false;
    }
    // SAFETY: p is glibc's __register_atfork (see the module comment).
    let register: RegisterAtfork = unsafe { core::mem::transmute::<*const c_void, RegisterAtfork>(p) };
    // SAFETY: as above.
    unsafe { register(Some(prepare), None, None, core::ptr::null_mut()) == 0 }
}
