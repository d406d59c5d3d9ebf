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

use ckpt_image::{ARCH_X86_64, REGS_WORDS, RESTART_INFO_LEN, RegsX86_64, RestartInfo};
use ckpt_sys::{Errno, Result};

/// `e_machine` of the images this runtime writes.
pub const ARCH: u32 = ARCH_X86_64;

unsafe extern "C" {
    fn ckpt_save_context(
        ctx: *mut RegsX86_64,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
    ) -> isize;
    fn ckpt_sigreturn();
    fn ckpt_rseq_offset_ptr() -> *const isize;
    fn ckpt_rseq_size_ptr() -> *const u32;
}

/// A cell written only on the checkpoint path, which `crate::state` serialises.
struct Slot<T>(UnsafeCell<T>);
// SAFETY: accessed only by the single thread holding `crate::state`'s busy flag.
unsafe impl<T> Sync for Slot<T> {}

static CTX: Slot<RegsX86_64> = Slot(UnsafeCell::new(RegsX86_64 {
    rsp: 0, rip: 0, rbx: 0, rbp: 0, r12: 0, r13: 0, r14: 0, r15: 0, mxcsr: 0, fcw: 0, fs_base: 0,
}));

/// Where the loader leaves a `RestartInfo` before it jumps back.
static RESTART_INFO: Slot<[u64; RESTART_INFO_LEN / 8]> = Slot(UnsafeCell::new([0; 4]));

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
        *RESTART_INFO.0.get() = [0; 4];
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
pub fn rseq_register(area: usize) -> Result<()> {
    // SAFETY: the area is glibc's, inside the restored thread control block, and
    // stays there for the thread's life; the kernel only updates its cpu fields,
    // which is exactly what glibc registered it for.
    unsafe { ckpt_sys::rseq(area, 32, 0, 0x5305_3053) }
}

/// Unmap the loader's home block in the restarted process.
pub fn unmap_loader(info: &RestartInfo) {
    // SAFETY: the block is the loader's (code, stack, buffers), which finished
    // with the jump; the runtime never referenced it.
    let _ = unsafe { ckpt_sys::munmap(info.loader_start as usize, info.loader_len as usize) };
}
