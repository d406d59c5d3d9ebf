//! Signal dispositions (all 64), the alternate signal stack and the three
//! interval timers. (The signal mask is put back by `crate::checkpoint`, last.)
//!
//! # Safety
//! Restoring installs handler addresses and an alternate stack: the ones the
//! kernel gave us at checkpoint time, in a process whose memory is the
//! checkpointed one again, so they are the program's own, where it left them.
#![allow(unsafe_code)]

use ckpt_sys::{ITimerVal, KSigAction, Result, StackT, c};

/// Captured signal state.
pub struct Signals {
    actions: [KSigAction; 65],
    altstack: StackT,
    timers: [ITimerVal; 3],
}

const NO_ACTION: KSigAction = KSigAction { handler: 0, flags: 0, restorer: 0, mask: [0; 64 / usize::BITS as usize] };
const NO_TIMER: ITimerVal = ITimerVal { interval_sec: 0, interval_usec: 0, value_sec: 0, value_usec: 0 };

fn catchable(sig: u32) -> bool {
    sig != c::SIGKILL && sig != c::SIGSTOP
}

impl Signals {
    /// Nothing captured.
    pub const EMPTY: Signals = Signals {
        actions: [NO_ACTION; 65],
        altstack: StackT { sp: 0, flags: c::SS_DISABLE as i32, size: 0 },
        timers: [NO_TIMER; 3],
    };

    /// Read everything from the kernel.
    pub fn capture(&mut self) -> Result<()> {
        for sig in (1..=64).filter(|&s| catchable(s)) {
            self.actions[sig as usize] = ckpt_sys::rt_sigaction_get(sig)?;
        }
        self.altstack = ckpt_sys::sigaltstack_get()?;
        for (i, t) in self.timers.iter_mut().enumerate() {
            *t = ckpt_sys::getitimer(i as u32)?;
        }
        Ok(())
    }

    /// Replace the captured action of `sig` (the runtime's own stop handler is
    /// installed while the image is taken: the program's action goes in instead).
    pub fn set_action(&mut self, sig: u32, act: KSigAction) {
        if let Some(a) = self.actions.get_mut(sig as usize) {
            *a = act;
        }
    }

    /// Handlers, alternate stack and timers.
    pub fn restore_handlers(&self) -> Result<()> {
        let mut first_err = Ok(());
        for sig in (1..=64).filter(|&s| catchable(s)) {
            // SAFETY: see the module comment: the program's own handler, in its
            // own restored memory.
            let r = unsafe { ckpt_sys::rt_sigaction(sig, Some(&self.actions[sig as usize]), None) };
            if first_err.is_ok() {
                first_err = r;
            }
        }
        // SS_ONSTACK is a status, not a setting: we are not on it now.
        let ss = StackT { flags: self.altstack.flags & !(c::SS_ONSTACK as i32), ..self.altstack };
        // SAFETY: see the module comment: the program's own stack, restored.
        first_err = first_err.and(unsafe { ckpt_sys::sigaltstack(Some(&ss), None) });
        for (i, t) in self.timers.iter().enumerate() {
            if *t != NO_TIMER {
                // A periodic timer that had just expired reads as 0 remaining: the
                // kernel re-arms it only when its signal is taken, and the
                // checkpoint had every signal blocked. Setting 0 would disarm it;
                // the expiry that was due happens now instead.
                let mut t = *t;
                if t.value_sec == 0 && t.value_usec == 0 {
                    t.value_usec = 1;
                }
                first_err = first_err.and(ckpt_sys::setitimer(i as u32, &t));
            }
        }
        first_err
    }
}
