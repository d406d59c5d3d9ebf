//! Process creation and waiting, futexes, POSIX timers and syscall restart: what
//! the runtime needs to write a checkpoint from a copy-on-write child and to take
//! periodic checkpoints.

use syscalls::{Sysno, raw_syscall};

use crate::{Errno, Result};

macro_rules! sys {
    ($($t:tt)*) => { Errno::from_ret(raw_syscall!($($t)*)) };
}

/// `CLONE_VM`: share the address space.
pub const CLONE_VM: usize = 0x100;
/// `CLONE_VFORK`: suspend the caller until the child exits (or execs).
pub const CLONE_VFORK: usize = 0x4000;
/// `P_PID` for `waitid`.
const P_PID: u32 = 1;
/// `WEXITED` for `waitid`.
const WEXITED: u32 = 4;
/// `__WCLONE`: wait for children whose exit signal is not SIGCHLD.
const WCLONE: u32 = 0x8000_0000;
/// `FUTEX_WAIT`, `FUTEX_WAKE` (shared between processes: not the _PRIVATE forms).
const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
/// `SIGEV_SIGNAL`.
const SIGEV_SIGNAL: i32 = 0;

/// `pid_t clone(flags = 0, stack = NULL, ...)`: fork without a termination signal.
/// Returns the child's pid in the parent and 0 in the child, like fork(2); the
/// child has a copy-on-write copy of the address space and runs on the same stack.
/// No SIGCHLD reaches the parent when it ends, and the parent's `waitpid` without
/// `__WALL`/`__WCLONE` does not see it.
///
/// # Safety
/// As fork(2) in a program that may hold locks: the child must only issue system
/// calls and touch memory it knows is consistent, then `exit_group`.
pub unsafe fn clone_fork_nosignal() -> Result<i32> {
    // SAFETY: no CLONE_VM: the child's memory is a copy; both return here.
    unsafe { sys!(Sysno::clone, 0usize, 0usize, 0usize, 0usize, 0usize) }.map(|p| p as i32)
}

/// `int waitid(P_PID, pid, NULL, WEXITED | __WCLONE, NULL)`: reap the child `pid`
/// that was created without a termination signal.
pub fn waitid_clone(pid: i32) -> Result<()> {
    // SAFETY: no siginfo or rusage buffers are passed.
    unsafe { sys!(Sysno::waitid, P_PID, pid, 0usize, WEXITED | WCLONE, 0usize) }.map(drop)
}

/// `long futex(uint32_t *uaddr, FUTEX_WAIT, uint32_t val, const struct timespec *timeout)`
/// with a relative timeout in milliseconds. Ok also on a wake-up, a timeout
/// (ETIMEDOUT), EAGAIN (the value changed) or EINTR: the caller re-checks.
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, val: u32, ms: u64) -> Result<()> {
    // A native `struct timespec` (longs): i386's futex takes the 32-bit layout.
    let ts = [(ms / 1000) as isize, ((ms % 1000) * 1_000_000) as isize];
    // SAFETY: the word is a live atomic the caller owns; the timespec is ours.
    match unsafe { sys!(Sysno::futex, word.as_ptr() as usize, FUTEX_WAIT, val, ts.as_ptr() as usize) } {
        Ok(_) | Err(Errno::ETIMEDOUT) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `long futex(uint32_t *uaddr, FUTEX_WAKE, int n)`: wake every waiter.
pub fn futex_wake(word: &core::sync::atomic::AtomicU32) -> Result<()> {
    // SAFETY: the word is a live atomic; FUTEX_WAKE only reads the address.
    unsafe { sys!(Sysno::futex, word.as_ptr() as usize, FUTEX_WAKE, i32::MAX as usize) }.map(drop)
}

/// The kernel's `struct sigevent` (64 bytes on both ABIs): value, signo, notify,
/// then the union whose first int is the thread id of SIGEV_THREAD_ID.
#[repr(C)]
struct SigEvent {
    value: usize,
    signo: i32,
    notify: i32,
    tid: i32,
    pad: [u8; 64 - 12 - core::mem::size_of::<usize>()],
}

const _: () = assert!(core::mem::size_of::<SigEvent>() == 64);
same_layout!(SigEvent, linux_raw_sys::general::sigevent, {
    value => sigev_value, signo => sigev_signo, notify => sigev_notify,
});

/// A POSIX timer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId(pub i32);

/// What a timer does when it expires (the parts of `struct sigevent` the kernel
/// uses without SIGEV_THREAD, which is glibc's, not the kernel's).
#[derive(Clone, Copy, Debug)]
pub struct TimerEvent {
    /// `SIGEV_SIGNAL` (0), `SIGEV_NONE` (1) or `SIGEV_THREAD_ID` (4).
    pub notify: i32,
    /// The signal queued (`si_code == SI_TIMER`).
    pub signo: u32,
    /// `si_value` of that signal.
    pub value: usize,
    /// The thread, for `SIGEV_THREAD_ID`.
    pub tid: i32,
}

impl TimerEvent {
    /// `SIGEV_SIGNAL`: `signo` with `value`, to the process.
    pub fn signal(signo: u32, value: usize) -> TimerEvent {
        TimerEvent { notify: SIGEV_SIGNAL, signo, value, tid: 0 }
    }
}

/// `int timer_create(clockid_t clockid, struct sigevent *sevp, timer_t *timerid);`
/// `want`: the id to create it with when PR_TIMER_CREATE_RESTORE_IDS is on (the
/// kernel reads `*timerid` then; EBUSY if taken), ignored otherwise. A POSIX
/// timer is independent of `setitimer`/`alarm`.
pub fn timer_create(clock: u32, ev: &TimerEvent, want: i32) -> Result<TimerId> {
    let e = SigEvent {
        value: ev.value,
        signo: ev.signo as i32,
        notify: ev.notify,
        tid: ev.tid,
        pad: [0; 64 - 12 - core::mem::size_of::<usize>()],
    };
    let mut id: i32 = want;
    // SAFETY: the sigevent is read and the id read and written, both ours.
    unsafe { sys!(Sysno::timer_create, clock, &e as *const SigEvent as usize, &mut id as *mut i32 as usize) }
        .map(|_| TimerId(id))
}

/// `int timer_settime(timer_t timerid, 0, const struct itimerspec *new, NULL);`
/// relative: first expiry in `value_ns` (0 disarms), then every `interval_ns`.
pub fn timer_settime(id: TimerId, interval_ns: u64, value_ns: u64) -> Result<()> {
    // A native `struct itimerspec` (four longs; 32-bit on i386).
    let n = |ns: u64| [(ns / 1_000_000_000) as isize, (ns % 1_000_000_000) as isize];
    let (i, v) = (n(interval_ns), n(value_ns));
    let its = [i[0], i[1], v[0], v[1]];
    // SAFETY: the itimerspec is ours and only read.
    unsafe { sys!(Sysno::timer_settime, id.0, 0usize, its.as_ptr() as usize, 0usize) }.map(drop)
}

/// `int timer_gettime(timer_t timerid, struct itimerspec *curr);` as
/// (interval, time to the next expiry) in ns.
pub fn timer_gettime(id: TimerId) -> Result<(u64, u64)> {
    let mut its = [0isize; 4];
    // SAFETY: the kernel writes a native itimerspec into ours.
    unsafe { sys!(Sysno::timer_gettime, id.0, its.as_mut_ptr() as usize) }?;
    let ns = |s: isize, n: isize| (s as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64);
    Ok((ns(its[0], its[1]), ns(its[2], its[3])))
}

/// `int timer_delete(timer_t timerid);`
pub fn timer_delete(id: TimerId) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::timer_delete, id.0) }.map(drop)
}

/// `long restart_syscall(void);`: finish the system call the kernel interrupted
/// with -ERESTART_RESTARTBLOCK (nanosleep, clock_nanosleep, poll, futex wait...)
/// for the time it had left. Returns that call's result, or EINTR when there is
/// nothing to restart.
pub fn restart_syscall() -> isize {
    // SAFETY: continues a call the thread itself made, with the kernel's saved
    // arguments; its buffers (timespec for the remaining time, pollfds) belong to
    // the interrupted code and are still valid, since that code has not resumed.
    unsafe { raw_syscall!(Sysno::restart_syscall) as isize }
}

/// A CPU set of up to 1024 CPUs (`cpu_set_t`).
pub type CpuSet = [u64; 16];

/// `int sched_getaffinity(0, size_t cpusetsize, cpu_set_t *mask);` for the calling
/// thread; returns the mask and the bytes the kernel filled.
pub fn sched_getaffinity() -> Result<(CpuSet, usize)> {
    let mut set: CpuSet = [0; 16];
    // SAFETY: the kernel writes at most 128 bytes into our set.
    unsafe { sys!(Sysno::sched_getaffinity, 0usize, 128usize, set.as_mut_ptr() as usize) }.map(|n| (set, n))
}

/// `int sched_setaffinity(0, size_t cpusetsize, const cpu_set_t *mask);`
pub fn sched_setaffinity(set: &CpuSet, len: usize) -> Result<()> {
    // SAFETY: the kernel reads at most `len` (<= 128) bytes of our set.
    unsafe { sys!(Sysno::sched_setaffinity, 0usize, len.min(128), set.as_ptr() as usize) }.map(drop)
}

/// `long syscall(long number, ...)` with six arguments: re-issue a system call the
/// program made and a checkpoint interrupted, with the program's own arguments
/// (see the runtime's `sleep.rs`). Returns the raw result (-errno on failure).
///
/// # Safety
/// `nr` and `args` must be exactly a call the program itself was making, whose
/// pointers still refer to its live memory.
pub unsafe fn reissue_syscall(nr: usize, a: [usize; 6]) -> isize {
    // SAFETY: forwarded contract.
    unsafe { raw_syscall!(nr, a[0], a[1], a[2], a[3], a[4], a[5]) as isize }
}
