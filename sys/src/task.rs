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

/// Reap the child `pid` that was created without a termination signal
/// ([`waitid_clone_status`], how it ended left unsaid).
pub fn waitid_clone(pid: i32) -> Result<()> {
    waitid_clone_status(pid).map(drop)
}

/// How a child ended, as `waitid` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It called `exit` with this status.
    Exited(i32),
    /// A signal ended it (this number).
    Killed(i32),
}

/// `int waitid(P_PID, pid, &info, WEXITED | __WCLONE, NULL)`: reap the child
/// `pid` that was created without a termination signal, and say how it ended.
pub fn waitid_clone_status(pid: i32) -> Result<Ended> {
    // siginfo_t (128 bytes): si_code at byte 8; for SIGCHLD, si_status follows
    // si_pid and si_uid in the union, which starts at byte 16 on x86_64 (8-aligned)
    // and at byte 12 on i386.
    let mut info = [0i32; 32];
    loop {
        // SAFETY: `info` is a writable siginfo_t-sized buffer; no rusage.
        match unsafe { sys!(Sysno::waitid, P_PID, pid, info.as_mut_ptr() as usize, WEXITED | WCLONE, 0usize) } {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    const CLD_EXITED: i32 = 1;
    let status = info[if cfg!(target_pointer_width = "64") { 6 } else { 5 }];
    Ok(if info[2] == CLD_EXITED { Ended::Exited(status) } else { Ended::Killed(status) })
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

// ---------------------------------------------------------------------------
// Threads, ids and namespaces
// ---------------------------------------------------------------------------

/// `CLONE_FS`: share the cwd, root and umask.
pub const CLONE_FS: u64 = 0x200;
/// `CLONE_FILES`: share the descriptor table.
pub const CLONE_FILES: u64 = 0x400;
/// `CLONE_SIGHAND`: share the signal handlers.
pub const CLONE_SIGHAND: u64 = 0x800;
/// `CLONE_THREAD`: same thread group.
pub const CLONE_THREAD: u64 = 0x10000;
/// `CLONE_NEWNS`: a new mount namespace.
pub const CLONE_NEWNS: u64 = 0x20000;
/// `CLONE_SYSVSEM`: share System V semaphore undo values.
pub const CLONE_SYSVSEM: u64 = 0x40000;
/// `CLONE_SETTLS`: the `tls` argument is the new thread pointer.
pub const CLONE_SETTLS: u64 = 0x80000;
/// `CLONE_NEWTIME`: children in a new time namespace (offsets set through
/// /proc/self/timens_offsets before the first child).
pub const CLONE_NEWTIME: u64 = 0x80;
/// `CLONE_NEWUSER`: a new user namespace.
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
/// `CLONE_NEWPID`: children in a new pid namespace.
pub const CLONE_NEWPID: u64 = 0x2000_0000;
/// `SIGCHLD`, the usual termination signal.
pub const SIGCHLD: u64 = 17;

/// The kernel's `struct clone_args` (`CLONE_ARGS_SIZE_VER2`, 88 bytes, every field
/// a u64 on both ABIs; on i386 `tls` is the address of a `struct user_desc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    /// `CLONE_*` flags.
    pub flags: u64,
    /// `CLONE_PIDFD`: where to store the pidfd.
    pub pidfd: u64,
    /// `CLONE_CHILD_SETTID` / `CLONE_CHILD_CLEARTID` address.
    pub child_tid: u64,
    /// `CLONE_PARENT_SETTID` address.
    pub parent_tid: u64,
    /// Termination signal (threads: 0).
    pub exit_signal: u64,
    /// Lowest byte of the child's stack (0: the caller's stack pointer).
    pub stack: u64,
    /// Its size.
    pub stack_size: u64,
    /// `CLONE_SETTLS` value.
    pub tls: u64,
    /// Address of an array of pids, innermost namespace first.
    pub set_tid: u64,
    /// Entries of `set_tid` (0: the kernel chooses).
    pub set_tid_size: u64,
    /// `CLONE_INTO_CGROUP` descriptor.
    pub cgroup: u64,
}

const _: () = assert!(core::mem::size_of::<CloneArgs>() == 88);

/// `long clone3(struct clone_args *cl_args, size_t size)` without `CLONE_VM`:
/// fork(2) with the arguments of `args` (a new pid namespace level, a chosen pid).
/// Returns the child's pid in the parent and 0 in the child.
///
/// # Safety
/// As fork(2): the child runs on a copy of the caller's memory and stack; `args`
/// must not contain `CLONE_VM` or `CLONE_THREAD`, and any `set_tid` pointer must
/// point at `set_tid_size` readable pids.
pub unsafe fn clone3_fork(args: &CloneArgs) -> Result<i32> {
    debug_assert!(args.flags & (CLONE_VM as u64 | CLONE_THREAD) == 0);
    // SAFETY: the caller's contract; the kernel reads `args` only.
    unsafe { sys!(Sysno::clone3, args as *const CloneArgs as usize, core::mem::size_of::<CloneArgs>()) }
        .map(|p| p as i32)
}

/// `int tgkill(pid_t tgid, pid_t tid, int sig);`
pub fn tgkill(pid: i32, tid: i32, sig: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::tgkill, pid, tid, sig) }.map(drop)
}

/// `int unshare(int flags);`
pub fn unshare(flags: u64) -> Result<()> {
    // SAFETY: no memory involved; the namespaces change for the caller (or its
    // future children for CLONE_NEWPID).
    unsafe { sys!(Sysno::unshare, flags as usize) }.map(drop)
}

/// `int pidfd_open(pid_t pid, 0)`: a descriptor (close-on-exec) that polls
/// readable once process `pid` has exited.
pub fn pidfd_open(pid: i32) -> Result<crate::Fd> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::pidfd_open, pid, 0usize) }.map(|fd| crate::Fd(fd as i32))
}

/// `uid_t getuid(void);` (the 32-bit call on i386)
pub fn getuid() -> u32 {
    #[cfg(target_arch = "x86")]
    let n = Sysno::getuid32;
    #[cfg(not(target_arch = "x86"))]
    let n = Sysno::getuid;
    // SAFETY: no arguments, cannot fail.
    unsafe { raw_syscall!(n) as u32 }
}

/// `gid_t getgid(void);` (the 32-bit call on i386)
pub fn getgid() -> u32 {
    #[cfg(target_arch = "x86")]
    let n = Sysno::getgid32;
    #[cfg(not(target_arch = "x86"))]
    let n = Sysno::getgid;
    // SAFETY: no arguments, cannot fail.
    unsafe { raw_syscall!(n) as u32 }
}

/// `WUNTRACED`: report stopped children too.
pub const WUNTRACED: u32 = 2;
/// `WNOHANG`: do not wait.
pub const WNOHANG: u32 = 1;
/// `__WALL`: every child, whatever its termination signal.
pub const WALL: u32 = 0x4000_0000;

/// `pid_t wait4(pid_t pid, int *wstatus, int options, NULL)`: (pid, status); pid 0
/// with WNOHANG when no child changed state.
pub fn wait4(pid: i32, options: u32) -> Result<(i32, i32)> {
    let mut status: i32 = 0;
    // SAFETY: the status word is ours; no rusage.
    unsafe { sys!(Sysno::wait4, pid, &mut status as *mut i32 as usize, options, 0usize) }.map(|p| (p as i32, status))
}

/// `int signalfd4(-1, const sigset_t *mask, 8, SFD_CLOEXEC)`: a descriptor that
/// reads the blocked signals of `mask` as 128-byte `signalfd_siginfo` records.
pub fn signalfd(mask: u64) -> Result<crate::Fd> {
    const SFD_CLOEXEC: u32 = 0x80000;
    // SAFETY: the mask is ours and only read.
    unsafe { sys!(Sysno::signalfd4, -1i32, &mask as *const u64 as usize, 8usize, SFD_CLOEXEC) }
        .map(|f| crate::Fd(f as i32))
}

/// `PRIO_PROCESS`: `who` is a thread id (0: the calling thread).
const PRIO_PROCESS: u32 = 0;

/// `int getpriority(PRIO_PROCESS, 0)`: the calling thread's nice value.
pub fn getpriority() -> Result<i32> {
    // SAFETY: no memory involved. The raw call returns 20 - nice.
    unsafe { sys!(Sysno::getpriority, PRIO_PROCESS, 0usize) }.map(|v| 20 - v as i32)
}

/// `int setpriority(PRIO_PROCESS, 0, int prio)`: the calling thread's nice value.
pub fn setpriority(nice: i32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::setpriority, PRIO_PROCESS, 0usize, nice as isize as usize) }.map(drop)
}

/// `int sched_getscheduler(0)`: the calling thread's policy.
pub fn sched_getscheduler() -> Result<u32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::sched_getscheduler, 0usize) }.map(|v| v as u32)
}

/// `int sched_getparam(0, struct sched_param *param)`: the static priority.
pub fn sched_getparam() -> Result<i32> {
    let mut p: i32 = 0;
    // SAFETY: the kernel writes one int into ours.
    unsafe { sys!(Sysno::sched_getparam, 0usize, &mut p as *mut i32 as usize) }.map(|_| p)
}

/// `int sched_setscheduler(0, int policy, const struct sched_param *param)`.
pub fn sched_setscheduler(policy: u32, priority: i32) -> Result<()> {
    // SAFETY: the kernel reads one int of ours.
    unsafe { sys!(Sysno::sched_setscheduler, 0usize, policy, &priority as *const i32 as usize) }.map(drop)
}

/// `int mount(const char *source, const char *target, const char *fstype,
/// unsigned long flags, const void *data);` (no data)
pub fn mount(source: &core::ffi::CStr, target: &core::ffi::CStr, fstype: &core::ffi::CStr, flags: u64) -> Result<()> {
    // SAFETY: three NUL-terminated strings we borrow; no data.
    unsafe {
        sys!(
            Sysno::mount,
            source.as_ptr() as usize,
            target.as_ptr() as usize,
            fstype.as_ptr() as usize,
            flags as usize,
            0usize
        )
    }
    .map(drop)
}

/// `int pipe2(int pipefd[2], O_CLOEXEC)`: (read end, write end).
pub fn pipe2() -> Result<(crate::Fd, crate::Fd)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into ours.
    unsafe { sys!(Sysno::pipe2, fds.as_mut_ptr() as usize, crate::c::O_CLOEXEC.0) }
        .map(|_| (crate::Fd(fds[0]), crate::Fd(fds[1])))
}

/// The kernel's `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PollFd {
    /// Descriptor.
    pub fd: i32,
    /// Requested events (`POLLIN` = 1).
    pub events: i16,
    /// Returned events.
    pub revents: i16,
}

/// `int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo, NULL, 8)`:
/// wait, the signal mask unchanged, without a timeout (`None`) or for `ms`
/// milliseconds.
pub fn ppoll(fds: &mut [PollFd], ms: Option<u64>) -> Result<usize> {
    // A native `struct timespec` (longs): i386's ppoll takes the 32-bit layout.
    let ts = ms.map(|ms| [(ms / 1000) as isize, ((ms % 1000) * 1_000_000) as isize]);
    let tp = ts.as_ref().map_or(0, |t| t.as_ptr() as usize);
    // SAFETY: the kernel reads and writes `fds.len()` pollfd records of ours and
    // reads the timespec, which lives across the call.
    unsafe { sys!(Sysno::ppoll, fds.as_mut_ptr() as usize, fds.len(), tp, 0usize, 8usize) }
}

/// `pid_t setsid(void);`
pub fn setsid() -> Result<i32> {
    // SAFETY: no arguments.
    unsafe { sys!(Sysno::setsid) }.map(|p| p as i32)
}

/// `int rt_tgsigqueueinfo(pid_t tgid, pid_t tid, int sig, siginfo_t *info);`
pub fn rt_tgsigqueueinfo(pid: i32, tid: i32, sig: u32, info: &[u8; 128]) -> Result<()> {
    // SAFETY: the kernel reads our 128-byte siginfo.
    unsafe { sys!(Sysno::rt_tgsigqueueinfo, pid, tid, sig, info.as_ptr() as usize) }.map(drop)
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
