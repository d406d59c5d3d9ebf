//! The asynchronous triggers: a handler for the configured signal (SIGTSTP unless
//! CKPT_ASYNCSIG says otherwise) that takes a checkpoint at whatever instruction
//! the program was at, and the periodic timer (CKPT_INTERVAL), a POSIX timer that
//! sends the same signal (or SIGRTMAX when the trigger signal is disabled) with a
//! value of ours, so the handler can tell the two apart. A POSIX timer is
//! independent of the program's `setitimer`/`alarm`.
//!
//! The interrupted registers, including the full FPU/AVX state, are in the
//! kernel's signal frame on the program's stack, which is saved with the rest of
//! memory: after a restart the handler simply returns and rt_sigreturn puts them
//! back. The handler blocks every signal while it runs, so the program's own
//! handlers never see a half-taken checkpoint.
//!
//! # Safety
//! The handler passes the kernel's `siginfo_t` and `ucontext_t` pointers, which
//! are valid for the handler's duration, to the `arch` functions that read them
//! (and, for an interrupted sleep, write the syscall result into the frame).
#![allow(unsafe_code)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, Ordering};

use ckpt_sys::task::TimerId;
use ckpt_sys::{KSigAction, Result, c};

use crate::config::Config;
use crate::{Outcome, Trigger, arch};

/// `sigev_value` of our timer's signals ("ckpt").
const TIMER_VALUE: usize = 0x636b_7074;
/// The timer's signal when the trigger signal is disabled.
const SIGRTMAX: u32 = 64;
/// The periodic timer's id + 1 (0: none).
static TIMER: AtomicI32 = AtomicI32::new(0);
/// The process the triggers are for. Ctrl-Z sends SIGTSTP to the whole process
/// group, including children the program forked (they inherit our handler): they
/// must not write an image of themselves under the program's name.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// The process the triggers are for (see `OWNER`).
pub fn owner() -> i32 {
    OWNER.load(Ordering::Acquire)
}

/// The signal the periodic timer sends under `cfg`.
pub fn timer_signal(cfg: &Config) -> u32 {
    if cfg.signal != 0 { cfg.signal } else { SIGRTMAX }
}

/// Signals our handler is installed for under `cfg`, as a mask.
pub fn our_signals(cfg: &Config) -> u64 {
    let bit = |s: u32| if s == 0 { 0 } else { 1u64 << (s - 1) };
    bit(cfg.signal) | if cfg.interval != 0 { bit(timer_signal(cfg)) } else { 0 }
}

/// Is another copy of the ckpt runtime already handling `sig` in this process
/// (libckpt.a linked into a program that `ckpt` also preloads libckpt.so into)?
/// Then this copy stays passive: one runtime, not two.
pub fn other_runtime_active(sig: u32) -> bool {
    let mut old = KSigAction::default();
    sig != 0
        && ckpt_sys::rt_sigaction(sig, None, Some(&mut old)).is_ok()
        && old.handler != on_signal as *const () as usize
        && old.flags & c::SA_RESTORER as usize != 0
        && arch::is_ckpt_restorer(old.restorer)
}

fn install(sig: u32) -> Result<()> {
    let mut act = KSigAction {
        handler: on_signal as *const () as usize,
        flags: (c::SA_SIGINFO | c::SA_RESTART | c::SA_RESTORER) as usize,
        restorer: arch::sigreturn_trampoline(),
        ..Default::default()
    };
    act.set_mask64(!0);
    ckpt_sys::rt_sigaction(sig, Some(&act), None)
}

/// Give `sig` back its default action.
fn uninstall(sig: u32) {
    let _ = ckpt_sys::rt_sigaction(sig, Some(&KSigAction::default()), None);
}

/// Install what `cfg` asks for, replacing what `old` had installed (None at load
/// time, and after a restart, where the handlers came back with the rest of the
/// signal state but the timer did not).
pub fn arm(cfg: &Config, old: Option<&Config>) -> Result<()> {
    OWNER.store(ckpt_sys::getpid(), Ordering::Release);
    disarm_timer();
    if let Some(o) = old {
        let keep = our_signals(cfg);
        for s in 1..=64u32 {
            if our_signals(o) & (1 << (s - 1)) != 0 && keep & (1 << (s - 1)) == 0 {
                uninstall(s);
            }
        }
    }
    for s in 1..=64u32 {
        if our_signals(cfg) & (1 << (s - 1)) != 0 {
            install(s)?;
        }
    }
    if cfg.interval != 0 {
        let id = ckpt_sys::task::timer_create(c::CLOCK_MONOTONIC, timer_signal(cfg), TIMER_VALUE)?;
        TIMER.store(id.0 + 1, Ordering::Release);
        ckpt_sys::task::timer_settime(id, cfg.interval as u64)?;
    }
    Ok(())
}

/// Delete the periodic timer, if any.
fn disarm_timer() {
    let t = TIMER.swap(0, Ordering::AcqRel);
    if t != 0 {
        let _ = ckpt_sys::task::timer_delete(TimerId(t - 1));
    }
}

/// A restarted process has no timer: the id saved in memory is the old process's.
pub fn forget_timer() {
    TIMER.store(0, Ordering::Release);
}

extern "C" fn on_signal(sig: i32, info: *mut c_void, uc: *mut c_void) {
    if ckpt_sys::getpid() != OWNER.load(Ordering::Acquire) {
        return; // a forked child of the program: not ours to checkpoint
    }
    // SAFETY: the kernel passes the siginfo of an SA_SIGINFO handler.
    let periodic = unsafe { arch::siginfo_from_timer(info, TIMER_VALUE) };
    let cfg = crate::config();
    if !periodic && sig as u32 != cfg.signal {
        return; // SIGRTMAX kept for the timer, sent by someone else
    }
    let trigger = if periodic { Trigger::Periodic } else { Trigger::Signal };
    match crate::checkpoint(None, trigger) {
        Ok(Outcome::Written { exit: true }) => ckpt_sys::exit_group(0),
        Ok(Outcome::Restarted) => {}
        Ok(Outcome::Written { exit: false }) => {
            // SAFETY: `uc` is this handler's ucontext.
            unsafe { arch::finish_interrupted_sleep(uc, our_signals(&cfg)) }
        }
        Err(f) => {
            f.report();
            // SAFETY: as above.
            unsafe { arch::finish_interrupted_sleep(uc, our_signals(&cfg)) }
        }
    }
}
