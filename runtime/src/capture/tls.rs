//! Per-thread kernel pointers glibc sets up at thread start: the robust futex list
//! head and the clear-child-tid address. (The thread pointer itself is part of the
//! saved registers and set by the loader.)
//!
//! # Safety
//! The kernel writes through both pointers when the thread exits. They are put
//! back only in the restarted process, whose memory is the checkpointed one: they
//! point at glibc's own words again, as they did when they were read.
#![allow(unsafe_code)]

use ckpt_sys::Result;

/// Captured thread pointers.
pub struct Tls {
    robust: (usize, usize),
    tid_address: usize,
}

impl Tls {
    /// Nothing captured.
    pub const EMPTY: Tls = Tls { robust: (0, 0), tid_address: 0 };

    /// Read both from the kernel.
    pub fn capture(&mut self) -> Result<()> {
        self.robust = ckpt_sys::get_robust_list()?;
        self.tid_address = ckpt_sys::prctl_get_tid_address()?;
        Ok(())
    }

    /// Set both again.
    pub fn restore(&self) {
        if self.robust.0 != 0 {
            // SAFETY: see the module comment.
            let _ = unsafe { ckpt_sys::set_robust_list(self.robust.0, self.robust.1) };
        }
        if self.tid_address != 0 {
            // SAFETY: see the module comment.
            unsafe { ckpt_sys::set_tid_address(self.tid_address) };
        }
    }
}
