//! Sleeps the checkpoint interrupted, finished in the restarted process.
//!
//! The kernel keeps the rest of an interrupted nanosleep, clock_nanosleep or
//! poll in the thread's restart block, which continue mode uses
//! (`arch::finish_interrupted_sleep`) but which is not in the image: a restarted
//! process would see EINTR. So the signal handler notes, before the checkpoint,
//! which call was interrupted (the `mov $NR, %eax; syscall` glibc and musl emit
//! right before the instruction the kernel stopped after) with its arguments,
//! and for a relative sleep the time it had left; in the restarted process the
//! handler re-issues the call for that time and hands its result to the program
//! in the signal frame, as if nothing had happened.
//!
//! What each call gets (docs/process-state.md has the measurements):
//! - clock_nanosleep with TIMER_ABSTIME: the same deadline, exactly.
//! - select, pselect6, ppoll: the kernel wrote the time left into the program's
//!   timeout when it was interrupted; re-issued as they are, exactly.
//! - nanosleep / relative clock_nanosleep with a `rem` pointer: the time left is
//!   read at checkpoint time by finishing the call at once (`restart_syscall`
//!   with a signal of ours pending, which makes the kernel write the rest into
//!   `*rem`, as it does on EINTR); exact.
//! - nanosleep / clock_nanosleep without `rem` (usleep), poll, epoll_wait: the
//!   kernel exposes the time left nowhere; re-issued with their full timeout, so
//!   the sleep lasts at most the time already slept longer, never EINTR.
//! - i386: not done (the call goes through the vDSO's __kernel_vsyscall; the
//!   number is set somewhere before it); such a sleep returns EINTR after a
//!   restart, as before.
//!
//! # Safety
//! The probe and the re-issue pass the program's own pointers (from its
//! registers) back to the kernel, for the call it was making; the timespecs
//! built here are locals. Signal frames come from the kernel.
#![allow(unsafe_code)]

use ckpt_sys::{KSigAction, c};

use crate::arch;

const NANOSLEEP: usize = 35;
const CLOCK_NANOSLEEP: usize = 230;
const TIMER_ABSTIME: usize = 1;
/// Calls re-issued after a restart (x86_64 numbers): nanosleep, clock_nanosleep,
/// poll, ppoll, select, pselect6, epoll_wait, epoll_pwait, epoll_pwait2.
const REISSUED: [usize; 9] = [35, 230, 7, 271, 23, 270, 232, 281, 441];

/// An interrupted call and, for a relative sleep, what was left of it.
#[derive(Clone, Copy)]
pub struct Interrupted {
    nr: usize,
    args: [usize; 6],
    /// Nanoseconds left of a relative sleep (None: unknown, or not a sleep).
    left: Option<u64>,
    /// CLOCK_MONOTONIC when `left` was read.
    at: u64,
}

extern "C" fn noop(_: i32) {}

/// Before the checkpoint, in the handler: which call the signal interrupted.
///
/// # Safety
/// `uc` is the running SA_SIGINFO handler's ucontext.
pub unsafe fn note(uc: *mut core::ffi::c_void) -> Option<Interrupted> {
    // SAFETY: forwarded.
    let (nr, args) = unsafe { arch::interrupted_call(uc) }?;
    if !REISSUED.contains(&nr) {
        return None;
    }
    let rem = match nr {
        NANOSLEEP => args[1],
        CLOCK_NANOSLEEP if args[1] & TIMER_ABSTIME == 0 => args[3],
        _ => 0,
    };
    let mut it = Interrupted { nr, args, left: None, at: 0 };
    if rem != 0 {
        // SAFETY: a relative sleep with the program's own `rem` buffer.
        match unsafe { probe(rem) } {
            Some(0) => {
                // The sleep was over: the program gets its 0 now.
                // SAFETY: as above.
                unsafe { arch::set_call_result(uc, 0) };
                return None;
            }
            left => {
                it.left = left;
                it.at = now();
            }
        }
    }
    Some(it)
}

/// Ask the kernel how much of the interrupted sleep is left: `restart_syscall`
/// with a signal of ours pending returns at once, after writing the rest into
/// `*rem` (the restart block survives it). Some(0): it had ended.
///
/// # Safety
/// `rem` is the program's `struct timespec *` of the interrupted sleep.
unsafe fn probe(rem: usize) -> Option<u64> {
    let pending = ckpt_sys::rt_sigpending().ok()?;
    // A real-time signal nobody has pending: ours for the moment.
    let z = (40..=62u32).rev().find(|&s| pending & (1 << (s - 1)) == 0)?;
    let mut act = KSigAction {
        handler: noop as *const () as usize,
        flags: (c::SA_RESTORER) as usize,
        restorer: arch::sigreturn_trampoline(),
        ..Default::default()
    };
    act.set_mask64(!0);
    let mut old = KSigAction::default();
    // SAFETY: our no-op handler with our trampoline, for a signal nobody has
    // pending; the program's action is put back below.
    unsafe { ckpt_sys::rt_sigaction(z, Some(&act), Some(&mut old)) }.ok()?;
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&(z as i32).to_le_bytes());
    info[8..12].copy_from_slice(&(-1i32).to_le_bytes()); // SI_QUEUE
    let pid = ckpt_sys::getpid();
    let mut r = None;
    if ckpt_sys::settings::rt_tgsigqueueinfo(pid, ckpt_sys::gettid(), z, &info).is_ok() {
        let only = !(1u64 << (z - 1));
        let mut saved = 0u64;
        if ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&only), Some(&mut saved)).is_ok() {
            let res = ckpt_sys::task::restart_syscall();
            let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&saved), None);
            r = if res == 0 {
                Some(0)
            } else {
                // SAFETY: the kernel just wrote a native timespec at `rem`.
                let t = unsafe { core::ptr::read_unaligned(rem as *const [isize; 2]) };
                Some((t[0] as u64).saturating_mul(1_000_000_000).saturating_add(t[1] as u64).max(1))
            };
        }
    }
    let _ = ckpt_sys::take_pending(1 << (z - 1));
    // SAFETY: the program's own action, as it was.
    let _ = unsafe { ckpt_sys::rt_sigaction(z, Some(&old), None) };
    r
}

fn now() -> u64 {
    ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, n)| s as u64 * 1_000_000_000 + n as u64)
}

/// In the process that goes on after a checkpoint (continue mode, or a failed
/// checkpoint): finish the interrupted sleep. The kernel's restart block does it
/// unless `note` used it to read the time left (a signal handler's return resets
/// it): then the call is re-issued for what is left of that time now.
///
/// # Safety
/// `uc` is the running handler's ucontext, the same frame `note` saw.
pub unsafe fn finish_here(uc: *mut core::ffi::c_void, it: Option<&Interrupted>, keep_blocked: u64) {
    match it {
        Some(i) if i.left.is_some() => {
            let gone = now().saturating_sub(i.at);
            let left = i.left.unwrap_or(0).saturating_sub(gone).max(1);
            // SAFETY: forwarded.
            unsafe { finish_after_restart(uc, &Interrupted { left: Some(left), ..*i }, keep_blocked) }
        }
        // SAFETY: forwarded.
        _ => unsafe { arch::finish_interrupted_sleep(uc, keep_blocked) },
    }
}

/// In the restarted process, in the handler: finish the call noted before the
/// checkpoint and put its result in the frame. The program's signals are
/// unblocked meanwhile, `keep_blocked` (ours) excepted.
///
/// # Safety
/// `uc` is the running handler's ucontext, the same frame `note` saw.
pub unsafe fn finish_after_restart(uc: *mut core::ffi::c_void, it: &Interrupted, keep_blocked: u64) {
    let mut a = it.args;
    let ts: [isize; 2];
    if let Some(left) = it.left {
        ts = [(left / 1_000_000_000) as isize, (left % 1_000_000_000) as isize];
        match it.nr {
            NANOSLEEP => a[0] = ts.as_ptr() as usize,
            _ => a[2] = ts.as_ptr() as usize,
        }
    }
    // SAFETY: the frame's mask.
    let mask = unsafe { arch::frame_mask(uc) } | keep_blocked;
    let mut all = 0u64;
    if ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&mask), Some(&mut all)).is_err() {
        return;
    }
    // SAFETY: the program's own call, its pointers into its restored memory
    // (or to `ts`, alive here).
    let r = unsafe { ckpt_sys::task::reissue_syscall(it.nr, a) };
    let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&all), None);
    // SAFETY: as above.
    unsafe { arch::set_call_result(uc, r) };
}
