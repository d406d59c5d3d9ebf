//! The program's hooks (`ckpt_on_preckpt`, `ckpt_on_postckpt`, `ckpt_on_restart`):
//! three fixed tables in the runtime's static memory, so a restarted process finds
//! the hooks it had when the checkpoint was taken.
//!
//! Hooks are called with every signal blocked, on the checkpointing path (often
//! inside the signal handler): ckpt.h tells the program to treat them as signal
//! handlers.
//!
//! # Safety
//! An entry is written before the count that publishes it (release/acquire), and
//! entries are never changed once published, so a checkpoint that reads a table
//! while the program registers a hook sees whole entries only.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Most hooks of each kind.
pub const MAX: usize = 32;

/// A hook: the C function and its argument.
type Hook = (extern "C" fn(*mut c_void), usize);

/// One kind of hook.
pub struct Table {
    n: AtomicUsize,
    hooks: [UnsafeCell<Option<Hook>>; MAX],
}

// SAFETY: see the module comment: publication through `n`, entries immutable after.
unsafe impl Sync for Table {}

impl Table {
    const fn new() -> Table {
        Table { n: AtomicUsize::new(0), hooks: [const { UnsafeCell::new(None) }; MAX] }
    }

    /// Append a hook; false if the table is full.
    pub fn add(&self, f: extern "C" fn(*mut c_void), arg: usize) -> bool {
        let i = self.n.load(Ordering::Acquire);
        if i >= MAX {
            return false;
        }
        // SAFETY: slot i is not published yet (n == i), so no reader looks at it;
        // registration is not reentrant in a single-threaded program.
        unsafe { *self.hooks[i].get() = Some((f, arg)) };
        self.n.store(i + 1, Ordering::Release);
        true
    }

    /// Call every hook, in registration order or its reverse.
    pub fn run(&self, reverse: bool) {
        let n = self.n.load(Ordering::Acquire);
        for k in 0..n {
            let i = if reverse { n - 1 - k } else { k };
            // SAFETY: published entries are immutable (module comment).
            if let Some((f, arg)) = unsafe { *self.hooks[i].get() } {
                f(arg as *mut c_void);
            }
        }
    }
}

/// Before each checkpoint.
pub static PRE: Table = Table::new();
/// After each checkpoint the program survives.
pub static POST: Table = Table::new();
/// In the restarted process.
pub static RESTART: Table = Table::new();
