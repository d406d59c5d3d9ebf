//! Continue mode's background writer: the image is written by a copy-on-write copy
//! of the process, so the program is paused only for the copy of its page tables,
//! whatever its size.
//!
//! The writer must be invisible to the program: no SIGCHLD, nothing for its
//! `waitpid(-1)` to reap, no zombie left behind. So it is a grandchild:
//!
//! 1. The program (inside the checkpoint, every signal blocked) starts a child
//!    with `CLONE_VM | CLONE_VFORK` and no termination signal, on a small stack of
//!    its own. The child shares the memory and the program sleeps in the kernel
//!    until it exits, so this costs no page-table copy.
//! 2. The child forks the writer (`clone` without `CLONE_VM`, no termination
//!    signal): the one copy of the page tables, the program's pause. Then it
//!    exits, and the program reaps it by pid (`waitid(__WCLONE)`).
//! 3. The writer, orphaned, belongs to init (or the nearest subreaper), which
//!    reaps it. It writes the image of the memory as it was at the fork, with the
//!    program's stack frames exactly as they are at the save point, and exits.
//!
//! One writer at a time: a word in a small shared page holds the running writer's
//! pid; the next checkpoint waits for it (futex), so images are renamed into place
//! in the order they were taken and snapshots do not pile up in memory. That page
//! and the child's stack are runtime scratch, left out of the image.
//!
//! # Safety
//! The child of step 1 runs Rust code on its own stack while the program sleeps:
//! it only reads the context block the program prepared and issues two system
//! calls. The writer of step 3 is a fork of a single-threaded process taken inside
//! the checkpoint (no lock of the program's is held by us), and uses only the
//! runtime's own memory and system calls before `exit_group`.
#![allow(unsafe_code)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use ckpt_sys::scratch::Scratch;
use ckpt_sys::task::{CLONE_VFORK, CLONE_VM};
use ckpt_sys::{Errno, Result};

use crate::arch;

/// The child's stack, which the writer (a copy of the child) goes on using: it
/// builds the job and walks the address space there, with path buffers of a few
/// KiB each on it. Pages never touched cost nothing.
const STACK_LEN: usize = 1 << 20;
/// The running writer's pid word lives here (0: none).
static BUSY_PAGE: AtomicUsize = AtomicUsize::new(0);
/// "A writer is being started": the pid is not known yet.
const STARTING: u32 = u32::MAX;

fn busy_word() -> Option<&'static AtomicU32> {
    let p = BUSY_PAGE.load(Ordering::Acquire);
    // SAFETY: a page we mapped shared and never unmap while BUSY_PAGE names it.
    (p != 0).then(|| unsafe { &*(p as *const AtomicU32) })
}

/// Address ranges of the runtime's writer scratch, to leave out of an image.
pub fn scratch_ranges() -> (u64, u64) {
    let p = BUSY_PAGE.load(Ordering::Acquire) as u64;
    if p == 0 { (0, 0) } else { (p, p + 4096) }
}

/// Wait until the previous writer has finished (or died).
pub fn wait_idle() {
    let Some(w) = busy_word() else { return };
    loop {
        let v = w.load(Ordering::Acquire);
        if v == 0 {
            return;
        }
        if v != STARTING && ckpt_sys::kill(v as i32, 0) == Err(Errno::ESRCH) {
            // Killed before it could say it was done: its temporary file is left
            // behind, the previous image is intact.
            let _ = w.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Acquire);
            return;
        }
        let _ = ckpt_sys::task::futex_wait(w, v, 100);
    }
}

/// The restarted process has no writer and no busy page (it was not saved).
pub fn forget_after_restart() {
    BUSY_PAGE.store(0, Ordering::Release);
}

/// Where the writer leaves its report for the next checkpoint (after the pid word).
const REPORT_OFF: usize = 64;

/// What the last writer reported (incremental images, `track`), if any.
pub fn report() -> Option<crate::track::Report> {
    let p = BUSY_PAGE.load(Ordering::Acquire);
    // SAFETY: the shared page we mapped (4096 bytes, never unmapped while named),
    // read after `wait_idle`: the writer that wrote it has finished.
    (p != 0).then(|| unsafe { core::ptr::read_volatile((p + REPORT_OFF) as *const crate::track::Report) })
}

/// In the writer, once its image is durable: say what it is.
pub fn set_report(r: &crate::track::Report) {
    let p = BUSY_PAGE.load(Ordering::Acquire);
    if p != 0 {
        // SAFETY: as in `report`; the program reads it only after this writer ends.
        unsafe { core::ptr::write_volatile((p + REPORT_OFF) as *mut crate::track::Report, *r) };
    }
}

const _: () = assert!(REPORT_OFF + core::mem::size_of::<crate::track::Report>() <= 4096);

/// What the child of step 1 needs.
struct Ctx<F, G> {
    write: *mut F,
    /// Run in the child just before the fork (write tracking, `track::at_fork`).
    before: *mut G,
    stack: (u64, u64),
    /// Out: the writer's pid, or -errno.
    result: i64,
}

/// Start the writer; it runs `write(stack_range)` and then exits (`write` may
/// `exit_group` itself with a status of its choice).
/// `stack_range` is the child's stack, also to be left out of the image.
/// `before` runs in the child of step 1 just before the fork.
pub fn spawn<F: FnMut((u64, u64)), G: FnMut()>(write: &mut F, before: &mut G) -> Result<()> {
    if busy_word().is_none() {
        let rw = ckpt_sys::c::PROT_READ | ckpt_sys::c::PROT_WRITE;
        let flags = ckpt_sys::c::MAP_SHARED | ckpt_sys::c::MAP_ANONYMOUS;
        // SAFETY: a fresh mapping at an address of the kernel's choice.
        let p = unsafe { ckpt_sys::mmap(0, 4096, rw, flags, ckpt_sys::Fd(-1), 0) }?;
        BUSY_PAGE.store(p, Ordering::Release);
    }
    let word = busy_word().ok_or(Errno::ENOMEM)?;
    word.store(STARTING, Ordering::Release);

    let stack = Scratch::new(STACK_LEN)?;
    let (lo, hi) = stack.range();
    let mut ctx = Ctx { write: write as *mut F, before: before as *mut G, stack: (lo, hi), result: 0 };

    unsafe extern "C" fn child<F: FnMut((u64, u64)), G: FnMut()>(arg: *mut c_void) -> isize {
        // SAFETY: `arg` is the Ctx on the suspended program's stack (shared memory).
        let ctx = unsafe { &mut *(arg as *mut Ctx<F, G>) };
        // SAFETY: the closure lives in the suspended program's stack frame.
        unsafe { (*ctx.before)() };
        // SAFETY: see the module comment (step 2).
        match unsafe { ckpt_sys::task::clone_fork_nosignal() } {
            Ok(0) => {
                // The writer: our own copy of everything.
                let _ = ckpt_sys::prctl_set_name(b"ckpt-writer\0\0\0\0\0");
                // SAFETY: the closure lives in the (copied) program stack frame.
                let f = unsafe { &mut *ctx.write };
                f(ctx.stack);
                ckpt_sys::exit_group(0)
            }
            Ok(pid) => {
                ctx.result = pid as i64;
                if let Some(w) = busy_word() {
                    // Unless the writer already finished and cleared it.
                    let _ = w.compare_exchange(STARTING, pid as u32, Ordering::AcqRel, Ordering::Acquire);
                }
                0
            }
            Err(e) => {
                ctx.result = -(e.0 as i64);
                1
            }
        }
    }

    // SAFETY: CLONE_VFORK suspends us until the child exits; its stack is ours
    // alone; `child` touches only `ctx` (see the module comment). Exit signal 0.
    let pid = unsafe {
        arch::clone_vm(CLONE_VM | CLONE_VFORK, hi as usize, child::<F, G>, &mut ctx as *mut Ctx<F, G> as *mut c_void)
    };
    let r = pid.and_then(ckpt_sys::task::waitid_clone);
    drop(stack);
    let started = r.and(if ctx.result < 0 { Err(Errno(-ctx.result as u16)) } else { Ok(()) });
    if started.is_err() {
        word.store(0, Ordering::Release);
    }
    started
}

/// In the writer, when done: let the next checkpoint go.
pub fn done() {
    if let Some(w) = busy_word() {
        w.store(0, Ordering::Release);
        let _ = ckpt_sys::task::futex_wake(w);
    }
}
