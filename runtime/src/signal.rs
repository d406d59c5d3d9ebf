//! The asynchronous trigger: a handler for the configured signal (SIGTSTP unless
//! CKPT_ASYNCSIG says otherwise) that takes a checkpoint at whatever instruction
//! the program was at. The interrupted registers, including the full FPU/AVX
//! state, are in the kernel's signal frame on the program's stack, which is saved
//! with the rest of memory: after a restart the handler simply returns and
//! rt_sigreturn puts them back.
//!
//! The handler blocks every signal while it runs, so the program's own handlers
//! never see a half-written checkpoint.

use core::ffi::c_void;

use ckpt_sys::{KSigAction, Result, c};

use crate::{Outcome, arch};

/// Install the handler for `sig` (0 removes nothing and installs nothing).
pub fn install(sig: u32) -> Result<()> {
    if sig == 0 {
        return Ok(());
    }
    let mut act = KSigAction {
        handler: on_signal as *const () as usize,
        flags: (c::SA_SIGINFO | c::SA_RESTART | c::SA_RESTORER) as usize,
        restorer: arch::sigreturn_trampoline(),
        ..Default::default()
    };
    act.set_mask64(!0);
    ckpt_sys::rt_sigaction(sig, Some(&act), None)
}

extern "C" fn on_signal(_sig: i32, _info: *mut c_void, _uc: *mut c_void) {
    match crate::checkpoint(None) {
        Ok(Outcome::Written { exit: true }) => ckpt_sys::exit_group(0),
        Ok(_) => {}
        Err(f) => f.report(),
    }
}
