//! x86_64 facts of the runtime: the save point, the thread pointer, the signal
//! trampoline and glibc's rseq symbols. Every architecture module defines the same
//! names (see `arch/x86.rs`).
//!
//! # Safety
//! The save point is assembly that returns twice (once after writing the image,
//! once in the restarted process). It is sound here because the image writer runs
//! *below* the save point's frame (as the callback of `ckpt_save_context`), so the
//! frames above it are dumped exactly as they are when the call returns, and
//! callee-saved registers come back from the saved context.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;

use ckpt_image::{ARCH_X86_64, RESTART_INFO_LEN, RegsX86_64, RestartInfo};
use ckpt_sys::{Errno, Result};

/// `e_machine` of the images this runtime writes.
pub const ARCH: u32 = ARCH_X86_64;

#[path = "shared.rs"]
mod shared;
pub use shared::*;
use shared::{RESTART_INFO, Slot};

unsafe extern "C" {
    fn ckpt_save_context(
        ctx: *mut RegsX86_64,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
    ) -> isize;
    fn ckpt_rseq_offset_ptr() -> *const isize;
    fn ckpt_rseq_size_ptr() -> *const u32;
}

/// The save point's registers (asm/<arch>/save.S writes them).
static CTX: Slot<RegsX86_64> = Slot(UnsafeCell::new(RegsX86_64 {
    rsp: 0,
    rip: 0,
    rbx: 0,
    rbp: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
    mxcsr: 0,
    fcw: 0,
    fs_base: 0,
}));

/// The save-point record of this architecture.
pub type Regs = RegsX86_64;

/// A save-point record with the calling thread's thread pointer filled in.
pub fn thread_regs() -> Result<Regs> {
    Ok(RegsX86_64 { fs_base: ckpt_sys::arch_prctl_get_fs()?, ..Default::default() })
}

/// `ckpt_save_context` (asm/x86_64/save.S).
///
/// # Safety
/// As `ckpt_save_context`: `ctx` must stay valid for the call.
pub(super) unsafe fn save_raw(
    ctx: *mut Regs,
    f: unsafe extern "C" fn(*mut c_void) -> isize,
    arg: *mut c_void,
) -> isize {
    // SAFETY: forwarded to the caller's contract.
    unsafe { ckpt_save_context(ctx, f, arg) }
}

/// How `save_context` came back.
pub enum Saved {
    /// First pass: the callback's result.
    Wrote(isize),
    /// The process was restarted from the image; the loader left this record.
    Restarted(RestartInfo),
}

/// Record the save point and run `f` below it; see the module comment.
/// `f` returns a non-negative value or `-errno`; the restart value is 1, so `f`
/// must not return 1 itself (use 0 for success).
pub fn save_context<F: FnMut() -> isize>(f: &mut F) -> Result<Saved> {
    unsafe extern "C" fn tramp<F: FnMut() -> isize>(arg: *mut c_void) -> isize {
        // SAFETY: `arg` is the `&mut F` passed below, live for the whole call.
        let f = unsafe { &mut *(arg as *mut F) };
        let r = f();
        debug_assert!(r != 1);
        r
    }
    let fs = ckpt_sys::arch_prctl_get_fs()?;
    // SAFETY: the busy flag of crate::state gives us CTX and RESTART_INFO alone.
    unsafe {
        *CTX.0.get() = RegsX86_64 { fs_base: fs, ..Default::default() };
        *RESTART_INFO.0.get() = [0; RESTART_INFO_LEN / 8];
    }
    // SAFETY: see the module comment; CTX is a static that outlives the call.
    let r = unsafe { ckpt_save_context(CTX.0.get(), tramp::<F>, f as *mut F as *mut c_void) };
    if r != 1 {
        return Ok(Saved::Wrote(r));
    }
    // SAFETY: the loader wrote the slot before jumping here; volatile because the
    // compiler cannot know that memory changed under it.
    let w = unsafe { core::ptr::read_volatile(RESTART_INFO.0.get()) };
    let mut b = [0u8; RESTART_INFO_LEN];
    for (i, x) in w.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    let info = RestartInfo::decode(&b).map_err(|_| Errno::EINVAL)?;
    if info.magic != RestartInfo::MAGIC {
        return Err(Errno::EINVAL);
    }
    Ok(Saved::Restarted(info))
}

/// The registers recorded by the current `save_context` (valid inside `f`).
/// Address of the restart-info slot (goes into the image).
/// The `SA_RESTORER` trampoline for the runtime's own handlers.
/// glibc's rseq area of the calling thread and the length to register it with, if
/// glibc registered one (`__rseq_size > 0` and `cpu_id >= 0`).
pub fn rseq_area() -> Option<usize> {
    // SAFETY: the functions return the addresses of glibc's exported constants or
    // NULL (weak references); the constants are read-only data.
    let (off, size) = unsafe { (ckpt_rseq_offset_ptr(), ckpt_rseq_size_ptr()) };
    if off.is_null() || size.is_null() {
        return None;
    }
    // SAFETY: both non-null, pointing at glibc's constants.
    let (off, size) = unsafe { (*off, *size) };
    if size == 0 {
        return None;
    }
    let tp = ckpt_sys::arch_prctl_get_fs().ok()? as isize;
    let area = tp.wrapping_add(off) as usize;
    // SAFETY: glibc places the rseq area inside the thread control block at fs.
    // `cpu_id` is the second u32 of struct rseq; -1/-2 mean "not registered".
    let cpu_id = unsafe { core::ptr::read_volatile((area + 4) as *const i32) };
    (cpu_id >= 0).then_some(area)
}

/// Register glibc's rseq `area` for the calling thread after a restart (a new
/// process has no registration). Length 32 is what the kernel registers (the
/// original `struct rseq`), not `__rseq_size`; 0x53053053 is glibc's x86 signature.
/// Unmap the loader's home block in the restarted process.
/// `clone(flags)` with a child that runs `f(arg)` on the stack whose top is
/// `stack_top` and exits with its result (asm/x86_64/save.S). Returns the child's
/// pid.
///
/// # Safety
/// With `CLONE_VM` the child shares our memory: the caller must also pass
/// `CLONE_VFORK` (so it is suspended while the child runs), `stack_top` must be
/// the top of mapped memory nothing else uses, and `f` must only touch memory that
/// stays valid until the child exits.
/// Bytes of `ckpt_sigreturn`: its three instructions and the signature after them.
/// Is `restorer` (a handler's `sa_restorer`) the trampoline of a ckpt runtime,
/// this one or another copy in the same process?
/// `si_code` of a signal sent by a POSIX timer.
/// Offsets in `siginfo_t` of `si_pid` and `si_value` (the `_rt` and `_timer` members
/// of the union; on x86_64 the union starts at 16, after three ints and padding).
pub(super) const SI_PID: usize = 16;
pub(super) const SI_VALUE: usize = 24;

/// Offsets in the x86_64 `ucontext_t` (uc_mcontext at 40; gregs in the kernel's
/// `struct sigcontext` order r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip).
const UC_RAX: usize = 40 + 13 * 8;
const UC_RIP: usize = 40 + 16 * 8;
const UC_SIGMASK: usize = 40 + 256;
/// -EINTR as the kernel leaves it in rax.
const EINTR_RET: u64 = (-4i64) as u64;

/// If the program was in a sleep the kernel interrupted for our handler
/// (nanosleep, clock_nanosleep, poll... return -ERESTART_RESTARTBLOCK, which
/// becomes EINTR once a handler runs, SA_RESTART or not), finish that sleep now,
/// for the time it had left, and hand its result to the program: a checkpoint
/// must not make the program's sleeps end early. The program's own signals are
/// unblocked meanwhile (`keep_blocked` stays blocked), so they interrupt it as
/// they would have.
///
/// # Safety
/// `uc` must be the `ucontext_t` the kernel passed to the running SA_SIGINFO
/// handler, which returns to it afterwards.
pub unsafe fn finish_interrupted_sleep(uc: *mut c_void, keep_blocked: u64) {
    let uc = uc as *mut u8;
    // SAFETY: the kernel's signal frame: rax, rip and the saved mask are plain
    // words in it; the two bytes before rip are the end of the instruction the
    // program executed last, in its mapped code.
    unsafe {
        let rax = core::ptr::read(uc.add(UC_RAX) as *const u64);
        let rip = core::ptr::read(uc.add(UC_RIP) as *const u64) as usize;
        if rax != EINTR_RET || rip < 2 || core::ptr::read((rip - 2) as *const [u8; 2]) != [0x0f, 0x05] {
            return;
        }
        let mask = core::ptr::read(uc.add(UC_SIGMASK) as *const u64) | keep_blocked;
        let mut all = 0u64;
        if ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_SETMASK, Some(&mask), Some(&mut all)).is_err() {
            return;
        }
        // With nothing to restart the kernel answers -EINTR, and nothing changes.
        let r = ckpt_sys::task::restart_syscall();
        let _ = ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_SETMASK, Some(&all), None);
        core::ptr::write(uc.add(UC_RAX) as *mut u64, r as u64);
    }
}
