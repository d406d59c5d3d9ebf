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
//!
//! The triggers stay open while the call is re-issued: the program can be
//! checkpointed again during the rest of its sleep (a restarted server in
//! `epoll_wait(-1)`, `sleep 1000`). That checkpoint interrupts the re-issued
//! call, which is then re-issued once more for what is left (the time the
//! process was gone does not count), never handed EINTR.
//! - i386: the call goes through the vDSO's __kernel_vsyscall; its number is
//!   found from glibc's call site (`arch/x86.rs`, `vsyscall_number`).
//!
//! # Safety
//! The probe and the re-issue pass the program's own pointers (from its
//! registers) back to the kernel, for the call it was making; the timespecs
//! built here are locals. Signal frames come from the kernel.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use ckpt_sys::{KSigAction, c};

use crate::arch;

/// The thread re-issuing an interrupted call inside the trigger handler (0:
/// none): a trigger that interrupts that call finds the runtime's own call,
/// not the program's, and leaves it to the loop in `finish_after_restart`.
static REISSUING: AtomicI32 = AtomicI32::new(0);
/// Checkpoints the trigger handler has taken (in this process and, through the
/// image, its ancestors), restarts among them, and CLOCK_MONOTONIC at the start
/// of the last one (on the clock of the process that took it).
static TAKEN: AtomicU64 = AtomicU64::new(0);
static RESTARTS: AtomicU64 = AtomicU64::new(0);
static TAKEN_AT: AtomicU64 = AtomicU64::new(0);

/// The trigger handler is about to take a checkpoint.
pub fn taking() {
    TAKEN_AT.store(now(), Ordering::Release);
}

/// The trigger handler took one (`restarted`: this is the restarted process).
pub fn taken(restarted: bool) {
    RESTARTS.fetch_add(restarted as u64, Ordering::AcqRel);
    TAKEN.fetch_add(1, Ordering::AcqRel);
}

/// Whether this thread is re-issuing a call in the trigger handler.
pub fn reissuing() -> bool {
    REISSUING.load(Ordering::Acquire) == ckpt_sys::gettid()
}

const TIMER_ABSTIME: usize = 1;

/// What a re-issued call is, for this module.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// nanosleep(req, rem).
    Nanosleep,
    /// clock_nanosleep(clock, flags, req, rem).
    ClockNanosleep,
    /// poll(fds, n, ms).
    Poll,
    /// epoll_wait and epoll_pwait (fd, events, n, ms, ...).
    EpollWait,
    /// epoll_pwait2(fd, events, n, timespec, ...).
    EpollPwait2,
    /// select, pselect6, ppoll: the kernel writes the time left into their
    /// timeout itself.
    Updated,
}

/// A call re-issued after a restart: its number, what it is, and whether its
/// timespecs are 64-bit (`__kernel_timespec`) or 32-bit (`old_timespec32`).
#[derive(Clone, Copy)]
struct Call(usize, Kind, bool);

/// x86_64: nanosleep, clock_nanosleep, poll, ppoll, select, pselect6,
/// epoll_wait, epoll_pwait, epoll_pwait2.
#[cfg(target_arch = "x86_64")]
const CALLS: [Call; 9] = [
    Call(35, Kind::Nanosleep, true),
    Call(230, Kind::ClockNanosleep, true),
    Call(7, Kind::Poll, true),
    Call(271, Kind::Updated, true),
    Call(23, Kind::Updated, true),
    Call(270, Kind::Updated, true),
    Call(232, Kind::EpollWait, true),
    Call(281, Kind::EpollWait, true),
    Call(441, Kind::EpollPwait2, true),
];
/// i386: nanosleep, clock_nanosleep and clock_nanosleep_time64, poll, ppoll and
/// ppoll_time64, _newselect, pselect6 and pselect6_time64, epoll_wait,
/// epoll_pwait, epoll_pwait2 (glibc 2.36 makes the 32-bit time calls while the
/// times fit, the _time64 ones otherwise).
#[cfg(target_arch = "x86")]
const CALLS: [Call; 12] = [
    Call(162, Kind::Nanosleep, false),
    Call(267, Kind::ClockNanosleep, false),
    Call(407, Kind::ClockNanosleep, true),
    Call(168, Kind::Poll, false),
    Call(309, Kind::Updated, false),
    Call(414, Kind::Updated, true),
    Call(142, Kind::Updated, false),
    Call(308, Kind::Updated, false),
    Call(413, Kind::Updated, true),
    Call(256, Kind::EpollWait, false),
    Call(319, Kind::EpollWait, false),
    Call(441, Kind::EpollPwait2, true),
];

fn call(nr: usize) -> Option<Call> {
    CALLS.iter().copied().find(|c| c.0 == nr)
}

/// The timespec at `p` (64-bit fields, or 32-bit ones), in ns (negative parts
/// as 0).
///
/// # Safety
/// `p` points at a readable timespec of that layout.
unsafe fn read_timespec(p: usize, wide: bool) -> u64 {
    let (s, n) = if wide {
        // SAFETY: per the contract.
        let t = unsafe { core::ptr::read_unaligned(p as *const [i64; 2]) };
        (t[0], t[1])
    } else {
        // SAFETY: per the contract.
        let t = unsafe { core::ptr::read_unaligned(p as *const [i32; 2]) };
        (t[0] as i64, t[1] as i64)
    };
    (s.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(n.max(0) as u64)
}

/// An interrupted call and, for a relative sleep, what was left of it.
#[derive(Clone, Copy)]
pub struct Interrupted {
    call: Call,
    args: [usize; 6],
    /// Nanoseconds left of a relative sleep (None: unknown, or not a sleep).
    left: Option<u64>,
    /// CLOCK_MONOTONIC when `left` was read.
    at: u64,
}

impl Interrupted {
    /// Whether the kernel kept no restart block for the call: select, pselect6,
    /// ppoll, epoll_wait and its variants, and clock_nanosleep TIMER_ABSTIME
    /// (-ERESTARTNOHAND: the deadline is the program's, nothing to keep).
    fn no_restart_block(&self) -> bool {
        match self.call.1 {
            Kind::Nanosleep | Kind::Poll => false,
            Kind::ClockNanosleep => self.args[1] & TIMER_ABSTIME != 0,
            Kind::EpollWait | Kind::EpollPwait2 | Kind::Updated => true,
        }
    }
}

/// The borrowed action's handler. SA_SIGINFO, like every handler of ours: the
/// trampoline calls rt_sigreturn, and i386 gives a handler without SA_SIGINFO
/// the older frame, which wants sigreturn.
extern "C" fn noop(_: i32, _: *mut core::ffi::c_void, _: *mut core::ffi::c_void) {}

/// A relative sleep a stopped thread asked for that is no longer than this is
/// not probed (see [`note`]).
const SHORT_NS: u64 = 10_000_000;

/// How [`note`] reads the time left of a relative sleep: the signal it makes
/// pending for a moment, whose action must be a handler.
#[derive(Clone, Copy)]
pub enum Probe {
    /// The checkpointing thread, before any other thread is stopped: a real-time
    /// signal nobody has pending, whose action is borrowed (a no-op handler) for
    /// the moment of the probe.
    Borrow,
    /// A thread stopped by the coordinator: the stop signal itself, queued to
    /// this thread alone with this `si_value`, which the stop handler returns on
    /// at once. No action changes, so any number of threads probe at the same
    /// time (borrowing one process-wide action from hundreds of threads raced:
    /// one thread put the action back while another's signal was on its way).
    Own(u32, usize),
    /// No probe: a handler that takes no checkpoint and only finishes the sleep
    /// in this process (a trigger on another thread while a checkpoint runs),
    /// which the kernel's restart block does exactly.
    None,
}

/// Before the checkpoint, in the handler: which call the signal interrupted.
///
/// # Safety
/// `uc` is the running SA_SIGINFO handler's ucontext; with `Probe::Own(sig, _)`,
/// `sig`'s action is a handler that returns at once for that value.
pub unsafe fn note(uc: *mut core::ffi::c_void, how: Probe) -> Option<Interrupted> {
    if reissuing() {
        return None;
    }
    // SAFETY: forwarded.
    let (nr, args) = unsafe { arch::interrupted_call(uc) }?;
    let call = call(nr)?;
    let rem = match call.1 {
        Kind::Nanosleep => args[1],
        Kind::ClockNanosleep if args[1] & TIMER_ABSTIME == 0 => args[3],
        _ => 0,
    };
    let mut it = Interrupted { call, args, left: None, at: 0 };
    // A stopped thread's short sleep is not probed: after a restart it sleeps
    // its whole time again (at most SHORT_NS longer than it would have), and a
    // thread pool of short sleepers stops faster (a probe is a signal and six
    // calls per thread: 500 threads in 1 ms sleeps stopped in 21 ms instead of
    // 14 ms, best runs, docs/threads.md). In the process that goes on the
    // kernel's restart block finishes it exactly.
    // SAFETY: the request of a relative sleep, the program's readable timespec
    // (args[0] of nanosleep, args[2] of clock_nanosleep).
    let short = matches!(how, Probe::Own(..))
        && rem != 0
        && unsafe { read_timespec(args[if call.1 == Kind::Nanosleep { 0 } else { 2 }], call.2) } <= SHORT_NS;
    if rem != 0 && !short && !matches!(how, Probe::None) {
        // SAFETY: a relative sleep with the program's own `rem` buffer; `how`
        // per the contract.
        match unsafe { probe(rem, call.2, how) } {
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
/// `rem` is the program's `struct timespec *` of the interrupted sleep (64-bit
/// fields if `wide`); `how` as for [`note`].
unsafe fn probe(rem: usize, wide: bool, how: Probe) -> Option<u64> {
    let pending = ckpt_sys::rt_sigpending().ok()?;
    let (z, value) = match how {
        // A real-time signal nobody has pending: ours for the moment.
        Probe::Borrow => ((40..=62u32).rev().find(|&s| pending & (1 << (s - 1)) == 0)?, 0),
        // One already pending (sent by someone else) would be taken instead.
        Probe::Own(sig, _) if pending & (1 << (sig - 1)) != 0 => return None,
        Probe::Own(sig, value) => (sig, value),
        Probe::None => return None,
    };
    let mut old = KSigAction::default();
    if let Probe::Borrow = how {
        let mut act = KSigAction {
            handler: noop as *const () as usize,
            flags: (c::SA_SIGINFO | c::SA_RESTORER) as usize,
            restorer: arch::sigreturn_trampoline(),
            ..Default::default()
        };
        act.set_mask64(!0);
        // SAFETY: our no-op handler with our trampoline, for a signal nobody has
        // pending; the program's action is put back below.
        unsafe { ckpt_sys::rt_sigaction(z, Some(&act), Some(&mut old)) }.ok()?;
    }
    let pid = ckpt_sys::getpid();
    let info = arch::queued_siginfo(z, pid, ckpt_sys::task::getuid(), value);
    let mut r = None;
    if ckpt_sys::task::rt_tgsigqueueinfo(pid, ckpt_sys::gettid(), z, &info).is_ok() {
        let only = !(1u64 << (z - 1));
        let mut saved = 0u64;
        if ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&only), Some(&mut saved)).is_ok() {
            let res = ckpt_sys::task::restart_syscall();
            let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&saved), None);
            r = if res == 0 {
                Some(0)
            } else {
                // SAFETY: the kernel just wrote the call's timespec at `rem`.
                Some(unsafe { read_timespec(rem, wide) }.max(1))
            };
        }
    }
    let _ = ckpt_sys::take_pending(1 << (z - 1));
    if let Probe::Borrow = how {
        // SAFETY: the program's own action, as it was.
        let _ = unsafe { ckpt_sys::rt_sigaction(z, Some(&old), None) };
    }
    r
}

/// CLOCK_MONOTONIC in ns (0 if unreadable).
pub fn now() -> u64 {
    ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, n)| s as u64 * 1_000_000_000 + n as u64)
}

/// In the process that goes on after a checkpoint (continue mode, or a failed
/// checkpoint): finish the interrupted sleep. The kernel's restart block does it
/// unless `note` used it to read the time left (a signal handler's return resets
/// it): then the call is re-issued for what is left of that time now. Calls the
/// kernel keeps no restart block for (select, pselect6, ppoll, epoll_wait and
/// its variants, clock_nanosleep TIMER_ABSTIME: -ERESTARTNOHAND, EINTR once a
/// handler ran) are re-issued as they are: select's and ppoll's timeouts hold
/// what is left, epoll_wait's is its full one, the deadline is the same.
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
        // The call interrupted was our own re-issue: its loop goes on.
        _ if reissuing() => {}
        // SAFETY: forwarded.
        Some(i) if i.no_restart_block() => unsafe { finish_after_restart(uc, i, keep_blocked) },
        _ => {
            // The kernel's restart block finishes it exactly, with the triggers
            // open as in `finish_after_restart`. A checkpoint during it resets
            // the block (its handler returns): then the noted call is re-issued.
            let open = REISSUING.compare_exchange(0, ckpt_sys::gettid(), Ordering::AcqRel, Ordering::Acquire).is_ok();
            let (taken, stops) = (TAKEN.load(Ordering::Acquire), crate::threads::sessions());
            // SAFETY: forwarded.
            let r = unsafe { arch::finish_interrupted_sleep(uc, if open { 0 } else { keep_blocked }) };
            if open {
                REISSUING.store(0, Ordering::Release);
            }
            if let (Some(-4), Some(i)) = (r, it)
                && (TAKEN.load(Ordering::Acquire) != taken || crate::threads::sessions() != stops)
            {
                // SAFETY: forwarded.
                unsafe { finish_after_restart(uc, i, keep_blocked) }
            }
        }
    }
}

/// In the restarted process, in the handler: finish the call noted before the
/// checkpoint and put its result in the frame. The program's signals are
/// unblocked meanwhile, and so are the triggers (`keep_blocked`, ours) unless
/// another thread is re-issuing a call already: a checkpoint taken during the
/// call interrupts it, and it is re-issued for what is left.
///
/// # Safety
/// `uc` is the running handler's ucontext, the same frame `note` saw.
pub unsafe fn finish_after_restart(uc: *mut core::ffi::c_void, it: &Interrupted, keep_blocked: u64) {
    const EINTR: isize = -4;
    let me = ckpt_sys::gettid();
    let open = REISSUING.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire).is_ok();
    // SAFETY: the frame's mask.
    let mask = unsafe { arch::frame_mask(uc) } | if open { 0 } else { keep_blocked };
    let mut all = 0u64;
    if ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&mask), Some(&mut all)).is_err() {
        if open {
            REISSUING.store(0, Ordering::Release);
        }
        return;
    }
    let timeout = Timeout::of(it.call);
    // The time left (ns) of a call with a relative timeout; None: no timeout
    // to count down (infinite, absolute, or one the kernel updates itself).
    // SAFETY: the program's own arguments for this call.
    let mut left = it.left.or_else(|| unsafe { timeout.read(&it.args) });
    let mut a = it.args;
    let r = loop {
        let (taken, restarts, start) = (TAKEN.load(Ordering::Acquire), RESTARTS.load(Ordering::Acquire), now());
        // The timeout as either timespec: [i64; 2], or two [i32; 2] in it.
        let mut ts = [0i64; 2];
        if let Some(l) = left {
            timeout.write(&mut a, l, &mut ts);
        }
        let stops = crate::threads::sessions();
        // SAFETY: the program's own call, its pointers into its restored memory
        // (or to `ts`, alive here).
        let r = unsafe { ckpt_sys::task::reissue_syscall(it.call.0, a) };
        let was_taken = TAKEN.load(Ordering::Acquire) != taken;
        // Another thread's checkpoint stopped this one during the call (its
        // stop handler ran over it): that EINTR is ours too.
        let was_stopped = crate::threads::sessions() != stops;
        if r != EINTR || !(was_taken || was_stopped) {
            break r;
        }
        // A checkpoint came during the call: the time slept before it counts
        // (on the clock of the process that slept), the time gone does not.
        if let Some(l) = left {
            let slept = if !was_taken {
                // Up to the moment the stop began (the stop itself, a few ms
                // when the process goes on, is slept again).
                crate::threads::last_stop_at().saturating_sub(start)
            } else if RESTARTS.load(Ordering::Acquire) != restarts {
                TAKEN_AT.load(Ordering::Acquire).saturating_sub(start)
            } else {
                now().saturating_sub(start)
            };
            left = Some(l.saturating_sub(slept).max(1));
        }
    };
    if open {
        REISSUING.store(0, Ordering::Release);
    }
    let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&all), None);
    // SAFETY: as above.
    unsafe { arch::set_call_result(uc, r) };
}

/// Where a re-issued call keeps its relative timeout.
#[derive(Clone, Copy)]
enum Timeout {
    /// A `struct timespec *` argument (nanosleep's first, relative
    /// clock_nanosleep's third, epoll_pwait2's fourth; NULL: none), with 64-bit
    /// fields or not.
    Spec(usize, bool),
    /// An int of milliseconds (poll's third, epoll_wait's and epoll_pwait's
    /// fourth; negative: none).
    Millis(usize),
    /// None to count down: select's, pselect6's and ppoll's the kernel updates
    /// in place, clock_nanosleep TIMER_ABSTIME waits for a deadline.
    Kept,
}

impl Timeout {
    fn of(c: Call) -> Timeout {
        match c.1 {
            Kind::Nanosleep => Timeout::Spec(0, c.2),
            Kind::ClockNanosleep => Timeout::Spec(2, c.2),
            Kind::EpollPwait2 => Timeout::Spec(3, c.2),
            Kind::Poll => Timeout::Millis(2),
            Kind::EpollWait => Timeout::Millis(3),
            Kind::Updated => Timeout::Kept,
        }
    }

    /// The call's timeout in ns, if it has one to count down.
    ///
    /// # Safety
    /// `args` are the program's arguments for the call: a timespec pointer in
    /// them is NULL or points at the program's readable timespec.
    unsafe fn read(self, args: &[usize; 6]) -> Option<u64> {
        match self {
            // clock_nanosleep TIMER_ABSTIME: a deadline, not a duration.
            Timeout::Spec(2, _) if args[1] & TIMER_ABSTIME != 0 => None,
            // SAFETY: per the contract.
            Timeout::Spec(i, wide) if args[i] != 0 => Some(unsafe { read_timespec(args[i], wide) }),
            Timeout::Millis(i) if (args[i] as i32) >= 0 => Some(args[i] as i32 as u64 * 1_000_000),
            _ => None,
        }
    }

    /// Make `a` ask for `left` ns, `ts` holding it as the call's timespec.
    fn write(self, a: &mut [usize; 6], left: u64, ts: &mut [i64; 2]) {
        let (s, n) = (left / 1_000_000_000, (left % 1_000_000_000) as i64);
        match self {
            Timeout::Spec(i, true) => {
                *ts = [s.min(i64::MAX as u64) as i64, n];
                a[i] = ts.as_ptr() as usize;
            }
            Timeout::Spec(i, false) => {
                // Two i32 fields in the first 8 bytes (little-endian).
                ts[0] = (s.min(i32::MAX as u64) as i64) | (n << 32);
                a[i] = ts.as_ptr() as usize;
            }
            // Rounded up: never shorter than what is left.
            Timeout::Millis(i) => a[i] = left.div_ceil(1_000_000).min(i32::MAX as u64) as usize,
            Timeout::Kept => {}
        }
    }
}
