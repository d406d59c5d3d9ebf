//! The C side: the load-time constructor and the functions of `ckpt.h`.
//!
//! # Safety
//! This module places the constructor in `.init_array`, reads C strings and
//! structures the program passes in, and calls the program's hooks.
#![allow(unsafe_code)]
#![warn(missing_docs)]

use core::ffi::{CStr, c_char, c_int, c_uint, c_void};

use ckpt_sys::Errno;
use ckpt_sys::msg::Msg;

use crate::config::{Config, NAME_MAX, Path};
use crate::{Outcome, Trigger, hooks, signal, state};

/// Runs when the dynamic loader (or the C start-up code of a static program) runs
/// initialisers, before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static CKPT_INIT: extern "C" fn() = ckpt_init;

extern "C" fn ckpt_init() {
    // The read keeps the marker (and its section) through --gc-sections links.
    // SAFETY: a plain read of our own static.
    let _ = unsafe { core::ptr::read_volatile(&RUNTIME_MARKER[0]) };
    crate::init();
}

/// Marks a program that has the runtime linked in (libckpt.a, or -lckpt): the
/// `ckpt` command looks for this section and then does not preload a second copy.
#[used]
#[unsafe(link_section = ".ckpt_runtime")]
static RUNTIME_MARKER: [u8; 16] = *b"ckpt runtime v1\0";

/// Runs when the program exits normally (`exit`, return from `main`): a checkpoint
/// still being written in the background is finished first, so the last image is
/// complete when the program is gone.
#[used]
#[unsafe(link_section = ".fini_array")]
static CKPT_FINI: extern "C" fn() = ckpt_fini;

extern "C" fn ckpt_fini() {
    crate::writer::wait_idle();
}

/// The entry of the runtime blob that `ckpt hijack` writes into a running
/// process (asm/x86_64/blob.S calls it on a stack of its own, then traps back to
/// `ckpt`): the settings are `len` bytes at `settings`, NUL-separated `CKPT_*`
/// variables. Returns 0 or an errno.
///
/// # Safety
/// `settings` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ckpt_hijack_entry(settings: *const u8, len: usize) -> c_int {
    // SAFETY: the caller's contract (ckpt wrote them on the entry's stack).
    let b = unsafe { core::slice::from_raw_parts(settings, len) };
    crate::init_hijacked(b) as c_int
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
/// continuing: without continue mode the program exits with the checkpoint exit
/// status, 85 unless `CKPT_EXIT_STATUS` says otherwise),
/// `CKPT_RESTARTED` (1) in the restarted process, or `-errno` on failure (the
/// program keeps running and the previous file is untouched).
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_checkpoint(name: *const c_char) -> c_int {
    crate::notice::begin(0);
    match crate::checkpoint(name_arg(name), Trigger::Call) {
        Ok(Outcome::Written { exit: true }) => ckpt_sys::exit_group(crate::config().exit_status as i32),
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

fn add_hook(t: &hooks::Table, kind: &str, f: Option<extern "C" fn(*mut c_void)>, arg: *mut c_void) {
    let Some(f) = f else { return };
    if !t.add(f, arg as usize) {
        Msg::new().s("ckpt: ignoring a ").s(kind).s(" hook: at most ").u(hooks::MAX as u64).s(" of each kind").emit();
    }
}

/// `void ckpt_on_preckpt(void (*f)(void *), void *arg)`: call `f(arg)` before
/// each checkpoint, in registration order.
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_on_preckpt(f: Option<extern "C" fn(*mut c_void)>, arg: *mut c_void) {
    add_hook(&hooks::PRE, "pre-checkpoint", f, arg)
}

/// `void ckpt_on_postckpt(void (*f)(void *), void *arg)`: call `f(arg)` after each
/// checkpoint the program continues from, in registration order.
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_on_postckpt(f: Option<extern "C" fn(*mut c_void)>, arg: *mut c_void) {
    add_hook(&hooks::POST, "post-checkpoint", f, arg)
}

/// `void ckpt_on_restart(void (*f)(void *), void *arg)`: call `f(arg)` in the
/// restarted process, in the reverse of registration order.
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_on_restart(f: Option<extern "C" fn(*mut c_void)>, arg: *mut c_void) {
    add_hook(&hooks::RESTART, "restart", f, arg)
}

/// `struct ckptconfig` of ckpt.h.
#[repr(C)]
pub struct CkptConfig {
    /// Checkpoint file name, NUL-terminated.
    pub name: [c_char; NAME_MAX],
    /// Trigger signal, 0 = none.
    pub asyncsig: c_uint,
    /// Non-zero: continue after a checkpoint.
    pub continues: c_uint,
    /// Seconds between periodic checkpoints, 0 = none.
    pub interval: c_uint,
    /// `CKPT_SET_*` bits: which fields `ckpt_config` sets.
    pub flags: c_uint,
}

const SET_NAME: c_uint = 0x1;
const SET_ASYNCSIG: c_uint = 0x2;
const SET_CONTINUE: c_uint = 0x4;
const SET_INTERVAL: c_uint = 0x8;

fn refuse(what: &str) -> bool {
    Msg::new().s("ckpt: ckpt_config: ").s(what).s("; left unchanged").emit();
    false
}

/// Apply the fields of `c` named by its flags to `cfg`; false if one was refused.
fn apply(c: &CkptConfig, cfg: &mut Config) -> bool {
    let mut ok = true;
    if c.flags & SET_NAME != 0 {
        // SAFETY: c_char and u8 have the same size; the array is the caller's.
        let raw = unsafe { &*(&c.name as *const [c_char; NAME_MAX] as *const [u8; NAME_MAX]) };
        match CStr::from_bytes_until_nul(raw).ok().map(CStr::to_bytes).filter(|n| !n.is_empty()).and_then(Path::new) {
            Some(p) => (cfg.name, cfg.dir) = (p, false),
            None => ok &= refuse("the name is empty or not NUL-terminated"),
        }
    }
    if c.flags & SET_ASYNCSIG != 0 {
        match c.asyncsig {
            0 => cfg.set_signal(0),
            s if ckpt_sys::signame::check(s).is_ok() => cfg.set_signal(s),
            _ => ok &= refuse("asyncsig is not a catchable signal"),
        }
    }
    if c.flags & SET_CONTINUE != 0 {
        cfg.cont = c.continues != 0;
    }
    if c.flags & SET_INTERVAL != 0 {
        cfg.interval = c.interval;
    }
    ok
}

fn export(cfg: &Config, out: &mut CkptConfig) {
    let n = cfg.name.as_bytes();
    for (d, s) in out.name.iter_mut().zip(n.iter().chain(core::iter::repeat(&0))) {
        *d = *s as c_char;
    }
    out.asyncsig = cfg.signal;
    out.continues = cfg.cont as c_uint;
    out.interval = cfg.interval;
    out.flags = SET_NAME | SET_ASYNCSIG | SET_CONTINUE | SET_INTERVAL;
}

/// `int ckpt_config(const struct ckptconfig *cfg, struct ckptconfig *old)`: read
/// and change the configuration (see ckpt.h).
#[unsafe(no_mangle)]
pub extern "C" fn ckpt_config(cfg: *const CkptConfig, old: *mut CkptConfig) -> c_int {
    let r = state::with(|st| {
        if !old.is_null() {
            // SAFETY: the caller passes a writable struct ckptconfig or NULL.
            export(&st.cfg, unsafe { &mut *old });
        }
        if cfg.is_null() {
            return 0;
        }
        let before = st.cfg;
        // SAFETY: the caller passes a readable struct ckptconfig or NULL.
        let ok = apply(unsafe { &*cfg }, &mut st.cfg);
        if let Err(e) = signal::arm(&st.cfg, Some(&before)) {
            Msg::new().s("ckpt: ckpt_config: cannot install the checkpoint trigger: ").errno(e).emit();
            return -(e.0 as c_int);
        }
        if ok { 0 } else { -(Errno::EINVAL.0 as c_int) }
    });
    r.unwrap_or(-(Errno::EBUSY.0 as c_int))
}
