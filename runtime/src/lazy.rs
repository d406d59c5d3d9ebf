//! After a lazy restart (`CKPT_LAZY`, loader/src/lazy.rs): the loader's pager, a
//! process of its own, is still bringing the program's memory in. What needs
//! every page now waits for it here:
//!
//! - a checkpoint: its capture reads memory through the kernel (`writev`), and a
//!   missing page would be written as zeros (with an unprivileged userfaultfd the
//!   kernel does not wait for the pager: `EFAULT`), and continue mode's writer is
//!   a fork, which gets no registration;
//! - a `fork(3)`: the child's copy of a missing page would read as zeros (the
//!   fork event of userfaultfd needs CAP_SYS_PTRACE). glibc's fork runs the
//!   handler registered with `__register_atfork` at load.
//!
//! The two processes share one page (`ckpt_image::lazy_status`, in the loader's
//! home block, left mapped by `arch::unmap_loader`): the runtime sets HURRY, the
//! pager fetches the rest at disk speed, closes the userfaultfd (which removes
//! the registration), sets DONE and wakes the futex. Then the page is unmapped.
//!
//! # Safety
//! The status page is a shared mapping the loader made for this purpose; it is
//! only read and written through atomics, and unmapped once, by the thread that
//! takes its address out of `STATUS`.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use ckpt_image::lazy_status as ls;
use ckpt_sys::msg::Msg;

/// The status page's address, 0 when every page is in.
static STATUS: AtomicUsize = AtomicUsize::new(0);

/// Register the fork handler, if the C library can (glibc; not musl, where a
/// fork while pages are missing is not waited for: docs/memory.md).
pub fn watch() {
    crate::libc::register_atfork(before_fork);
}

extern "C" fn before_fork() {
    settle();
}

/// The restarted process: where the pager's status page is (0: an eager restart).
pub fn after_restart(status: u64) {
    STATUS.store(status as usize, Ordering::Release);
}

/// The status page's word `i`.
fn word(base: usize, i: usize) -> &'static AtomicU32 {
    // SAFETY: `base` is the live status page (see the module comment); the word
    // is 4-byte aligned inside it.
    unsafe { &*((base + 4 * i) as *const AtomicU32) }
}

/// Wait until every page of a lazy restart is in (nothing to do otherwise), then
/// unmap the status page.
pub fn settle() {
    let base = STATUS.load(Ordering::Acquire);
    if base == 0 {
        return;
    }
    let (state, pid) = (word(base, ls::STATE), word(base, ls::PID).load(Ordering::Acquire) as i32);
    if state.load(Ordering::Acquire) == ls::RUNNING {
        word(base, ls::HURRY).store(1, Ordering::Release);
        let _ = ckpt_sys::task::futex_wake(word(base, ls::HURRY));
    }
    while state.load(Ordering::Acquire) == ls::RUNNING {
        let _ = ckpt_sys::task::futex_wait(state, ls::RUNNING, 100);
        if state.load(Ordering::Acquire) == ls::RUNNING && ckpt_sys::kill(pid, 0) == Err(ckpt_sys::Errno::ESRCH) {
            Msg::new()
                .s("ckpt: warning: the lazy restart's pager (pid ")
                .u(pid as u64)
                .s(") is gone before every page was in: memory it had not brought in reads as zeros")
                .emit();
            break;
        }
    }
    if STATUS.compare_exchange(base, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        // SAFETY: the page is the loader's status page, which the pager no longer
        // writes (DONE) and nothing else refers to.
        let _ = unsafe { ckpt_sys::munmap(base, 4096) };
    }
}
