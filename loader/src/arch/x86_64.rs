//! x86_64 facts of the loader: the entry stack, its own ELF image, the final jump.
//! Every architecture module defines the same names (see `arch/x86.rs`).
//!
//! # Safety
//! This module reads the initial stack and the loader's own ELF headers through raw
//! pointers the kernel and the linker guarantee, and ends in the assembly jump.
#![allow(unsafe_code)]

use ckpt_image::{ARCH_X86_64, RegsX86_64};
use ckpt_sys::Errno;
use ckpt_sys::task::CloneArgs;

/// `e_machine` of the images this loader restores.
pub const ARCH: u32 = ARCH_X86_64;

#[path = "stack.rs"]
mod stack;
pub use stack::{argv0, auxv};

unsafe extern "C" {
    static __ehdr_start: u8;
    static __loader_end: u8;
    static __rela_start: u8;
    static __rela_end: u8;
    fn ckpt_call_on_stack(arg: usize, sp: usize, f: usize) -> !;
    fn ckpt_relocate(base: usize, rela: usize, end: usize);
    fn ckpt_restore_context(ctx: *const RegsX86_64, retval: isize) -> !;
    fn ckpt_start_thread(args: *const CloneArgs, size: usize, ctx: *const u8) -> isize;
}

/// The symbol `_start` (asm/x86_64/restore.S) calls.
#[unsafe(no_mangle)]
extern "C" fn loader_main(sp: usize) -> ! {
    crate::main(sp)
}

/// `[start, end)` of the loader in memory: ELF header to the end of its segment.
pub fn loader_range() -> (usize, usize) {
    // Both symbols are defined by the linker script; only their addresses are taken.
    (&raw const __ehdr_start as usize, &raw const __loader_end as usize)
}

/// Length of the loader's file contents (the image starts at the next page): the
/// end of the furthest PT_LOAD in the file, read from our own program headers.
pub fn file_len() -> u64 {
    let base = loader_range().0;
    // SAFETY: the linker script puts the ELF header and the program headers at the
    // start of the loaded segment (FILEHDR PHDRS), so they are mapped at `base`.
    unsafe {
        let phoff = *((base + 32) as *const u64) as usize;
        let phnum = *((base + 56) as *const u16) as usize;
        let mut end = 0u64;
        for i in 0..phnum {
            let ph = base + phoff + i * 56;
            let p_type = *(ph as *const u32);
            if p_type == 1 {
                let off = *((ph + 8) as *const u64);
                let filesz = *((ph + 32) as *const u64);
                end = end.max(off + filesz);
            }
        }
        end
    }
}

/// Copy the loader to `dst` (which must hold `loader_range()` bytes) and apply its
/// relocations for the new base, so the copy runs there.
///
/// # Safety
/// `dst` must be writable memory of that size that nothing else uses.
pub unsafe fn copy_self(dst: usize) {
    let (s, e) = loader_range();
    let rela = &raw const __rela_start as usize - s;
    let rela_end = &raw const __rela_end as usize - s;
    // SAFETY: the source is our own mapped image; the destination is the caller's.
    // The relocation table copied along is applied to the copy only.
    unsafe {
        core::ptr::copy_nonoverlapping(s as *const u8, dst as *mut u8, e - s);
        ckpt_relocate(dst, dst + rela, dst + rela_end);
    }
}

/// Switch to the stack whose top is `sp` and call `f(arg)` there.
///
/// # Safety
/// `sp` must be the top of mapped writable memory; `f` must be the address of a
/// function `extern "C" fn(usize) -> !` (possibly in a copy of the loader).
pub unsafe fn call_on_stack(arg: usize, sp: usize, f: usize) -> ! {
    // SAFETY: forwarded to the caller's contract.
    unsafe { ckpt_call_on_stack(arg, sp, f) }
}

/// Set the thread pointer and jump back into the restored program.
///
/// # Safety
/// The address space must be fully restored: this never comes back.
pub unsafe fn jump(words: &[u64; ckpt_image::REGS_WORDS], retval: isize) -> Result<(), Errno> {
    let regs = RegsX86_64::from_words(words);
    // SAFETY: the saved fs base points at the restored thread control block; the
    // loader itself uses no TLS.
    unsafe { ckpt_sys::arch_prctl_set_fs(regs.fs_base) }?;
    // SAFETY: `regs` lives on the loader stack, which stays mapped until the
    // restarted runtime unmaps it; the memory it points into is restored.
    unsafe { ckpt_restore_context(&regs, retval) }
}

/// Create a thread of the restored program (clone3 with `args`, whose `tls` this
/// fills) that starts at the save point whose registers are the 11 little-endian
/// words at `ctx` (`words` is a copy of them). Returns its tid.
///
/// # Safety
/// The address space must be restored; `ctx` must stay readable until the thread
/// has jumped (the loader's metadata copy), every signal must be blocked.
pub unsafe fn start_thread(
    args: &mut CloneArgs,
    words: &[u64; ckpt_image::REGS_WORDS],
    ctx: *const u8,
) -> Result<i32, Errno> {
    args.tls = RegsX86_64::from_words(words).fs_base;
    // SAFETY: forwarded to the caller's contract; the kernel reads `args` only.
    let r = unsafe { ckpt_start_thread(args, core::mem::size_of::<CloneArgs>(), ctx) };
    Errno::from_ret(r as usize).map(|t| t as i32)
}

/// The precompiled `core` (built for unwinding) references the personality routine
/// from its unwind tables. With `panic = "abort"` nothing unwinds, and the linker
/// script discards the tables; this symbol only satisfies the reference.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
