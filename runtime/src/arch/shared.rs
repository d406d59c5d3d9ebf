//! The parts of the runtime's `arch` module that are the same on x86_64 and i386
//! (each `arch/<target_arch>.rs` includes this file and re-exports it): the cells
//! the save point and the loader write, the signal trampoline and its identity,
//! rseq registration, the loader's unmap and the clone helper of the background
//! writer. The assembly behind `ckpt_sigreturn` and `ckpt_clone_vm` is per
//! architecture (asm/<arch>/save.S); its interface is not.
//!
//! # Safety
//! As the including module's: raw pointers into the runtime's own statics, and
//! system calls whose memory arguments are described at each call.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;

use ckpt_image::{REGS_WORDS, RESTART_INFO_LEN, RestartInfo};

const _: () = assert!(RESTART_INFO_LEN <= 64);
use ckpt_sys::{Errno, Result};

use super::{CTX, Regs, SI_PID, SI_VALUE};

unsafe extern "C" {
    fn ckpt_sigreturn();
    fn ckpt_clone_vm(
        flags: usize,
        stack_top: usize,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
    ) -> isize;
}

/// A cell written only on the checkpoint path, which `crate::state` serialises.
/// 64-byte aligned: the loader requires the restart slot (`RESTART_INFO_LEN`, at
/// most 64 bytes) to lie inside one writable mapping, and i386 aligns u64 to 4 only
/// (a static program's slot was seen straddling its .data and .bss mappings); a
/// 64-byte aligned slot of 64 bytes or less never crosses a page.
#[repr(align(64))]
pub(super) struct Slot<T>(pub(super) UnsafeCell<T>);
// SAFETY: accessed only by the single thread holding `crate::state`'s busy flag.
unsafe impl<T> Sync for Slot<T> {}

/// Where the loader leaves a `RestartInfo` before it jumps back.
pub(super) static RESTART_INFO: Slot<[u64; RESTART_INFO_LEN / 8]> = Slot(UnsafeCell::new([0; RESTART_INFO_LEN / 8]));

/// The registers recorded by the current `save_context` (valid inside `f`).
pub fn saved_regs() -> [u64; REGS_WORDS] {
    // SAFETY: written by the assembly before `f` runs; read on the same thread.
    unsafe { (*CTX.0.get()).to_words() }
}

/// Address of the restart-info slot (goes into the image).
pub fn restart_info_addr() -> u64 {
    RESTART_INFO.0.get() as u64
}

/// The `SA_RESTORER` trampoline for the runtime's own handlers.
pub fn sigreturn_trampoline() -> usize {
    ckpt_sigreturn as *const () as usize
}

/// Register glibc's rseq `area` for the calling thread after a restart (a new
/// process has no registration). Length 32 is what the kernel registers (the
/// original `struct rseq`), not `__rseq_size`; 0x53053053 is glibc's x86 signature.
pub fn rseq_register(area: usize) -> Result<()> {
    // SAFETY: the area is glibc's, inside the restored thread control block, and
    // stays there for the thread's life; the kernel only updates its cpu fields,
    // which is exactly what glibc registered it for.
    unsafe { ckpt_sys::rseq(area, 32, 0, 0x5305_3053) }
}

/// The image's sections, as the loader left them in its home block (valid until
/// `unmap_loader`; validated by the loader before it restored anything).
pub fn restart_sections(info: &RestartInfo) -> ckpt_image::Sections<'_> {
    if info.sections_len == 0 || info.sections_addr == 0 {
        return ckpt_image::Sections::EMPTY;
    }
    // SAFETY: the loader stored the address and length of the section area of its
    // metadata copy, inside the home block, which stays mapped until
    // `unmap_loader`; the borrow of `info` ties the slice to the caller's use of
    // the restart record, which ends before the unmap.
    let b = unsafe { core::slice::from_raw_parts(info.sections_addr as *const u8, info.sections_len as usize) };
    // Parsed again (cheap) rather than trusted: a loader of another build cannot
    // make the runtime read out of bounds.
    ckpt_image::Sections::parse(b).unwrap_or(ckpt_image::Sections::EMPTY)
}

/// Unmap the loader's home block in the restarted process.
pub fn unmap_loader(info: &RestartInfo) {
    // SAFETY: the block is the loader's (code, stack, buffers), which finished
    // with the jump; the runtime never referenced it.
    let _ = unsafe { ckpt_sys::munmap(info.loader_start as usize, info.loader_len as usize) };
}

/// `clone(flags)` with a child that runs `f(arg)` on the stack whose top is
/// `stack_top` and exits with its result (asm/<arch>/save.S). Returns the child's
/// pid.
///
/// # Safety
/// With `CLONE_VM` the child shares our memory: the caller must also pass
/// `CLONE_VFORK` (so it is suspended while the child runs), `stack_top` must be
/// the top of mapped memory nothing else uses, and `f` must only touch memory that
/// stays valid until the child exits.
pub unsafe fn clone_vm(
    flags: usize,
    stack_top: usize,
    f: unsafe extern "C" fn(*mut c_void) -> isize,
    arg: *mut c_void,
) -> Result<i32> {
    // SAFETY: forwarded to the caller's contract.
    let r = unsafe { ckpt_clone_vm(flags, stack_top, f, arg) };
    Errno::from_ret(r as usize).map(|p| p as i32)
}

/// Bytes of `ckpt_sigreturn`: its three instructions (9 bytes on both
/// architectures) and the 8-byte signature after them.
const RESTORER_LEN: usize = 17;

/// Is `restorer` (a handler's `sa_restorer`) the trampoline of a ckpt runtime,
/// this one or another copy in the same process?
pub fn is_ckpt_restorer(restorer: usize) -> bool {
    if restorer == 0 {
        return false;
    }
    let ours = sigreturn_trampoline();
    // SAFETY: both addresses are signal return trampolines the kernel jumps to on
    // every return from a handler, so they are mapped code; we read 17 bytes,
    // within the trampoline and its signature when it is ours, and within the
    // instructions that follow any other restorer (at least the syscall and the
    // function end) otherwise.
    unsafe {
        let a = core::slice::from_raw_parts(ours as *const u8, RESTORER_LEN);
        let b = core::slice::from_raw_parts(restorer as *const u8, RESTORER_LEN);
        a == b
    }
}

/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: i32 = -2;
/// `si_code` of a signal sent with sigqueue / rt_tgsigqueueinfo.
const SI_QUEUE: i32 = -1;

/// `(si_code, si_value)` of a `siginfo_t`.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to an SA_SIGINFO handler.
unsafe fn code_and_value(info: *const c_void) -> (i32, usize) {
    // SAFETY: si_code at 8 and si_value at SI_VALUE are inside the 128-byte record.
    unsafe {
        let code = core::ptr::read((info as *const u8).add(8) as *const i32);
        let v = core::ptr::read((info as *const u8).add(SI_VALUE) as *const usize);
        (code, v)
    }
}

/// Was this signal sent by a POSIX timer created with `sigev_value == value`?
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to an SA_SIGINFO handler.
pub unsafe fn siginfo_from_timer(info: *const c_void, value: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { code_and_value(info) == (SI_TIMER, value) }
}

/// Was this signal queued (`rt_tgsigqueueinfo`) with `si_value == value`?
///
/// # Safety
/// As [`siginfo_from_timer`].
pub unsafe fn siginfo_queued(info: *const c_void, value: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { code_and_value(info) == (SI_QUEUE, value) }
}

/// A `siginfo_t` for `rt_tgsigqueueinfo`: `sig`, SI_QUEUE, our pid and uid, `value`.
pub fn queued_siginfo(sig: u32, pid: i32, uid: u32, value: usize) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&(sig as i32).to_ne_bytes());
    b[8..12].copy_from_slice(&SI_QUEUE.to_ne_bytes());
    b[SI_PID..SI_PID + 4].copy_from_slice(&pid.to_ne_bytes());
    b[SI_PID + 4..SI_PID + 8].copy_from_slice(&uid.to_ne_bytes());
    b[SI_VALUE..SI_VALUE + core::mem::size_of::<usize>()].copy_from_slice(&value.to_ne_bytes());
    b
}

/// Record a save point of the calling thread into a `Regs` of its own (a thread
/// stopped by the runtime's stop handler, not the checkpointing thread) and run
/// `f(&regs)` below it. Returns `f`'s result on the first pass, 1 when the thread
/// was restarted from an image and resumes here (the loader started it at the
/// save point); `f` must not return 1. The registers live in this frame, above
/// the save point, so they are part of the image too.
pub fn save_thread<F: FnMut(&Regs) -> isize>(f: &mut F) -> Result<isize> {
    struct Arg<'a, F> {
        f: &'a mut F,
        regs: *const Regs,
    }
    unsafe extern "C" fn tramp<F: FnMut(&Regs) -> isize>(arg: *mut c_void) -> isize {
        // SAFETY: `arg` is the `Arg` below, live for the whole call; `regs` was
        // filled by the assembly before it called us.
        let a = unsafe { &mut *(arg as *mut Arg<'_, F>) };
        // SAFETY: as above: the registers of this frame's caller, written already.
        let regs = unsafe { &*a.regs };
        (a.f)(regs)
    }
    let mut regs = super::thread_regs()?;
    let mut a = Arg { f, regs: &raw const regs };
    // SAFETY: see the module comment of the arch file; `regs` outlives the call.
    let r = unsafe { super::save_raw(&raw mut regs, tramp::<F>, &mut a as *mut Arg<'_, F> as *mut c_void) };
    Ok(r)
}
