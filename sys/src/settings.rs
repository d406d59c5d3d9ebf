//! Per-process settings and queued signals: what the runtime captures into the
//! image's PROCESS section and puts back after a restart (umask, nice, rlimits,
//! personality, prctl flags, groups, pending signals, mapping flags).

use syscalls::{Sysno, raw_syscall};

use crate::{Errno, Result, SigSet};

macro_rules! sys {
    ($($t:tt)*) => { Errno::from_ret(raw_syscall!($($t)*)) };
}

/// `prctl` options used here, from linux-raw-sys (include/uapi/linux/prctl.h).
pub mod pr {
    pub use linux_raw_sys::prctl::{
        PR_GET_CHILD_SUBREAPER as GET_CHILD_SUBREAPER, PR_GET_DUMPABLE as GET_DUMPABLE,
        PR_GET_NO_NEW_PRIVS as GET_NO_NEW_PRIVS, PR_GET_PDEATHSIG as GET_PDEATHSIG,
        PR_GET_THP_DISABLE as GET_THP_DISABLE, PR_GET_TIMERSLACK as GET_TIMERSLACK,
        PR_SET_CHILD_SUBREAPER as SET_CHILD_SUBREAPER, PR_SET_DUMPABLE as SET_DUMPABLE,
        PR_SET_NO_NEW_PRIVS as SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG as SET_PDEATHSIG,
        PR_SET_THP_DISABLE as SET_THP_DISABLE, PR_SET_TIMERSLACK as SET_TIMERSLACK,
        PR_TIMER_CREATE_RESTORE_IDS as TIMER_CREATE_RESTORE_IDS,
        PR_TIMER_CREATE_RESTORE_IDS_OFF as TIMER_CREATE_RESTORE_IDS_OFF,
        PR_TIMER_CREATE_RESTORE_IDS_ON as TIMER_CREATE_RESTORE_IDS_ON,
    };
}

/// `membarrier` commands used here, from linux-raw-sys (linux/membarrier.h).
pub mod membarrier_cmd {
    use linux_raw_sys::general::membarrier_cmd as m;
    /// `MEMBARRIER_CMD_GET_REGISTRATIONS` (Linux 6.3): the registration commands
    /// the process has issued, as a mask of their values.
    pub const GET_REGISTRATIONS: u32 = m::MEMBARRIER_CMD_GET_REGISTRATIONS as u32;
    /// The registration commands GET_REGISTRATIONS reports.
    pub const REGISTRATIONS: [u32; 4] = [
        m::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED as u32,
        m::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED as u32,
        m::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE as u32,
        m::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ as u32,
    ];
}

/// `int prctl(int option, unsigned long arg2, 0, 0, 0);` for the options whose
/// arguments are plain integers (the `PR_SET_*` and value-returning `PR_GET_*` of
/// [`pr`]); the call's result.
pub fn prctl_value(option: u32, arg2: usize) -> Result<usize> {
    // SAFETY: integer arguments only; the kernel validates them.
    unsafe { sys!(Sysno::prctl, option, arg2, 0usize, 0usize, 0usize) }
}

/// `int prctl(int option, int *out, 0, 0, 0);` for the `PR_GET_*` options that
/// write an int (`PR_GET_PDEATHSIG`, `PR_GET_CHILD_SUBREAPER`).
pub fn prctl_get_int(option: u32) -> Result<i32> {
    let mut v: i32 = 0;
    // SAFETY: the kernel writes one int into our variable.
    unsafe { sys!(Sysno::prctl, option, &mut v as *mut i32 as usize, 0usize, 0usize, 0usize) }.map(|_| v)
}

/// `mode_t umask(mode_t mask);` (cannot fail; returns the previous mask).
pub fn umask(mask: u32) -> u32 {
    // SAFETY: no memory involved.
    unsafe { raw_syscall!(Sysno::umask, mask) as u32 }
}

/// `int getpriority(PRIO_PROCESS, 0);` as the kernel returns it: `20 - nice`
/// (1..=40), never negative.
pub fn getpriority() -> Result<u32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::getpriority, 0usize, 0usize) }.map(|v| v as u32)
}

/// `int setpriority(PRIO_PROCESS, 0, int nice);` for the calling thread.
pub fn setpriority(nice: i32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::setpriority, 0usize, 0usize, nice as isize as usize) }.map(drop)
}

/// `int personality(unsigned long persona);` (0xffffffff only reads it).
pub fn personality(persona: u32) -> Result<u32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::personality, persona as usize) }.map(|v| v as u32)
}

/// `int prlimit64(0, int resource, const struct rlimit64 *new, struct rlimit64 *old);`
/// with 64-bit limits on both ABIs; `new` None only reads. Returns the old (cur, max).
pub fn prlimit64(resource: u32, new: Option<(u64, u64)>) -> Result<(u64, u64)> {
    let n = new.map(|(a, b)| [a, b]);
    let np = n.as_ref().map_or(0, |n| n.as_ptr() as usize);
    let mut old = [0u64; 2];
    // SAFETY: 16-byte limits we own: one read, one written.
    unsafe { sys!(Sysno::prlimit64, 0usize, resource, np, old.as_mut_ptr() as usize) }.map(|_| (old[0], old[1]))
}

/// `int getgroups(int size, gid_t list[]);` (32-bit gids: `getgroups32` on i386).
pub fn getgroups(list: &mut [u32]) -> Result<usize> {
    #[cfg(target_arch = "x86")]
    let nr = Sysno::getgroups32;
    #[cfg(not(target_arch = "x86"))]
    let nr = Sysno::getgroups;
    // SAFETY: the kernel writes at most `list.len()` gids.
    unsafe { sys!(nr, list.len(), list.as_mut_ptr() as usize) }
}

/// `int setgroups(size_t size, const gid_t *list);` (`setgroups32` on i386).
pub fn setgroups(list: &[u32]) -> Result<()> {
    #[cfg(target_arch = "x86")]
    let nr = Sysno::setgroups32;
    #[cfg(not(target_arch = "x86"))]
    let nr = Sysno::setgroups;
    // SAFETY: the kernel reads `list.len()` gids.
    unsafe { sys!(nr, list.len(), list.as_ptr() as usize) }.map(drop)
}

/// `int membarrier(int cmd, unsigned int flags, int cpu_id);` for the commands
/// without memory arguments (queries, registrations).
pub fn membarrier(cmd: u32, flags: u32) -> Result<u32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::membarrier, cmd, flags, 0usize) }.map(|v| v as u32)
}

/// `int mlock2(const void *addr, size_t len, unsigned int flags);`
pub fn mlock2(addr: usize, len: usize, flags: u32) -> Result<()> {
    // SAFETY: locking pages in memory changes no content.
    unsafe { sys!(Sysno::mlock2, addr, len, flags) }.map(drop)
}

/// The kernel's siginfo, as rt_sigtimedwait writes it (128 bytes on both ABIs).
pub type SigInfo = [u8; 128];

/// `int rt_sigtimedwait(const sigset_t *set, siginfo_t *info, const struct
/// timespec *timeout, size_t sigsetsize);` with a zero timeout: take one pending
/// signal of SET off the queue (the thread's own queue first, then the
/// process's), without running a handler; the signal number, or EAGAIN if none is
/// pending. SET must be blocked, or a handler may have run first.
pub fn rt_sigtimedwait(set: SigSet, info: Option<&mut SigInfo>) -> Result<u32> {
    // A native `struct timespec` (two longs: 32-bit on i386, where rt_sigtimedwait
    // takes the old 32-bit layout).
    let zero = [0isize; 2];
    let ip = info.map_or(0, |i| i.as_mut_ptr() as usize);
    // SAFETY: the set and the timespec are ours and read; the siginfo is ours,
    // 128 bytes, written.
    unsafe { sys!(Sysno::rt_sigtimedwait, &set as *const SigSet as usize, ip, zero.as_ptr() as usize, 8usize) }
        .map(|s| s as u32)
}

/// `int rt_sigqueueinfo(pid_t tgid, int sig, siginfo_t *info);`: queue SIG with
/// this siginfo for the whole process TGID. The kernel accepts any si_code only
/// when the caller's tid is TGID (the main thread sending to its own process);
/// otherwise si_code must be negative and not SI_TKILL (EPERM).
pub fn rt_sigqueueinfo(tgid: i32, sig: u32, info: &SigInfo) -> Result<()> {
    // SAFETY: the siginfo is ours and only read.
    unsafe { sys!(Sysno::rt_sigqueueinfo, tgid, sig, info.as_ptr() as usize) }.map(drop)
}

/// `int rt_tgsigqueueinfo(pid_t tgid, pid_t tid, int sig, siginfo_t *info);`:
/// queue SIG for thread TID only (same si_code rule, with TID as the caller).
pub fn rt_tgsigqueueinfo(tgid: i32, tid: i32, sig: u32, info: &SigInfo) -> Result<()> {
    // SAFETY: the siginfo is ours and only read.
    unsafe { sys!(Sysno::rt_tgsigqueueinfo, tgid, tid, sig, info.as_ptr() as usize) }.map(drop)
}
