//! The runtime's one global: configuration plus the kernel state captured at the
//! last checkpoint. It lives in the runtime's static memory, so it is part of every
//! image: after a restart the runtime finds what it captured right where it left it.
//!
//! # Safety
//! Access goes through [`with`], which hands out `&mut State` to one caller at a
//! time, guarded by an atomic flag: a second checkpoint request arriving while one
//! is running (another signal, a nested API call) is refused, not interleaved.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::capture::Kernel;
use crate::config::Config;
use crate::names::Names;
use crate::request::Request;

/// Everything the runtime keeps.
pub struct State {
    /// From CKPT_* at load time.
    pub cfg: Config,
    /// Captured at the last checkpoint; restored after a restart.
    pub kernel: Kernel,
    /// Directory mode: the number of the last image taken (0: none yet).
    pub seq: u64,
    /// The program's original names, for images taken after a restart.
    pub names: Names,
    /// The `ckpt checkpoint` request being answered, for one checkpoint.
    pub req: Request,
}

struct Global(UnsafeCell<State>);
// SAFETY: all access is serialised by BUSY (see `with`).
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(State {
    cfg: Config::DEFAULT,
    kernel: Kernel::EMPTY,
    seq: 0,
    names: Names::EMPTY,
    req: Request::NONE,
}));
static BUSY: AtomicBool = AtomicBool::new(false);

/// Run `f` with exclusive access to the state; `None` if another caller has it.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    if BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    // SAFETY: BUSY was false and is now ours: no other reference exists until we
    // clear it below.
    let r = f(unsafe { &mut *STATE.0.get() });
    BUSY.store(false, Ordering::Release);
    Some(r)
}
