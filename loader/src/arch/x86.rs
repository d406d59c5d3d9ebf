//! i386 facts of the loader: the entry stack, its own ELF32 image, the TLS
//! descriptor and the final jump. Every architecture module defines the same names
//! (see `arch/x86_64.rs`).
//!
//! The loader must itself be a 32-bit program to restore a 32-bit image: exec of
//! an i386 ELF gives the process a compat address space (4 GiB, TASK_SIZE
//! 0xffffe000) and the 32-bit vDSO, whose `__kernel_vsyscall` and signal return
//! trampolines the restored program uses.
//!
//! # Safety
//! This module reads the initial stack and the loader's own ELF headers through raw
//! pointers the kernel and the linker guarantee, and ends in the assembly jump.
#![allow(unsafe_code)]

use ckpt_image::{ARCH_X86, RegsX86};
use ckpt_sys::task::CloneArgs;
use ckpt_sys::{Errno, UserDesc};

/// `e_machine` of the images this loader restores.
pub const ARCH: u32 = ARCH_X86;

#[path = "stack.rs"]
mod stack;
pub use stack::{argv0, auxv};

unsafe extern "C" {
    static __ehdr_start: u8;
    static __loader_end: u8;
    static __rel_start: u8;
    static __rel_end: u8;
    fn ckpt_call_on_stack(arg: usize, sp: usize, f: usize) -> !;
    fn ckpt_relocate(image: usize, rel: usize, end: usize, delta: usize);
    fn ckpt_restore_context(ctx: *const RegsX86, retval: isize) -> !;
    fn ckpt_start_thread(args: *const CloneArgs, size: usize, ctx: *const u8) -> isize;
}

/// The symbol `_start` (asm/x86/restore.S) calls.
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
/// end of the furthest PT_LOAD in the file, read from our own program headers
/// (Elf32_Ehdr: e_phoff at 28, e_phnum at 44; Elf32_Phdr: 32 bytes, p_offset at 4,
/// p_filesz at 16).
pub fn file_len() -> u64 {
    let base = loader_range().0;
    // SAFETY: the linker script puts the ELF header and the program headers at the
    // start of the loaded segment (FILEHDR PHDRS), so they are mapped at `base`.
    unsafe {
        let phoff = *((base + 28) as *const u32) as usize;
        let phnum = *((base + 44) as *const u16) as usize;
        let mut end = 0u64;
        for i in 0..phnum {
            let ph = base + phoff + i * 32;
            let p_type = *(ph as *const u32);
            if p_type == 1 {
                let off = *((ph + 4) as *const u32) as u64;
                let filesz = *((ph + 16) as *const u32) as u64;
                end = end.max(off + filesz);
            }
        }
        end
    }
}

/// Copy the loader to `dst` (which must hold `loader_range()` bytes) and apply its
/// relocations for the new base, so the copy runs there. The copied words were
/// relocated for where we run now (REL: the addend is the word itself), so the
/// copy gets the distance between the two added.
///
/// # Safety
/// `dst` must be writable memory of that size that nothing else uses.
pub unsafe fn copy_self(dst: usize) {
    let (s, e) = loader_range();
    let rel = &raw const __rel_start as usize - s;
    let rel_end = &raw const __rel_end as usize - s;
    // SAFETY: the source is our own mapped image; the destination is the caller's.
    // The relocation table copied along is applied to the copy only.
    unsafe {
        core::ptr::copy_nonoverlapping(s as *const u8, dst as *mut u8, e - s);
        ckpt_relocate(dst, dst + rel, dst + rel_end, dst.wrapping_sub(s));
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

/// `user_desc.flags` of glibc's TLS descriptor: seg_32bit, limit_in_pages, useable
/// (contents 0 = data, read_exec_only 0, present); limit 0xfffff pages = 4 GiB.
/// What glibc's TLS_INIT_TP asks for, and what `get_thread_area` reports for it.
const TLS_FLAGS: u32 = 1 | (1 << 4) | (1 << 6);
const TLS_LIMIT: u32 = 0xfffff;

/// Set the TLS descriptor, load `%gs` and jump back into the restored program.
///
/// # Safety
/// The address space must be fully restored: this never comes back.
pub unsafe fn jump(words: &[u64; ckpt_image::REGS_WORDS], retval: isize) -> Result<(), Errno> {
    let regs = RegsX86::from_words(words);
    if regs.tls_entry != 0 {
        // The same GDT entry number as before, so the saved %gs selector (and any
        // copy of it in the program's memory) selects it again.
        let mut d = UserDesc {
            entry_number: regs.tls_entry as u32,
            base_addr: regs.tls_base as u32,
            limit: TLS_LIMIT,
            flags: TLS_FLAGS,
        };
        // SAFETY: the loader itself uses no TLS; the base is the restored thread
        // control block.
        unsafe { ckpt_sys::set_thread_area(&mut d) }?;
    }
    // SAFETY: `regs` lives on the loader stack, which stays mapped until the
    // restarted runtime unmaps it; the memory it points into is restored.
    unsafe { ckpt_restore_context(&regs, retval) }
}

/// Create a thread of the restored program (clone3 with `args`, whose `tls` this
/// points at a `user_desc` for the thread's GDT entry and base) that starts at the
/// save point whose registers are the 11 little-endian words at `ctx` (`words` is a
/// copy of them). Returns its tid.
///
/// # Safety
/// The address space must be restored; `ctx` must stay readable until the thread
/// has jumped (the loader's metadata copy), every signal must be blocked.
pub unsafe fn start_thread(
    args: &mut CloneArgs,
    words: &[u64; ckpt_image::REGS_WORDS],
    ctx: *const u8,
) -> Result<i32, Errno> {
    let regs = RegsX86::from_words(words);
    let d = UserDesc {
        entry_number: regs.tls_entry as u32,
        base_addr: regs.tls_base as u32,
        limit: TLS_LIMIT,
        flags: TLS_FLAGS,
    };
    if regs.tls_entry == 0 {
        args.flags &= !ckpt_sys::task::CLONE_SETTLS;
    }
    args.tls = &d as *const UserDesc as usize as u64;
    // SAFETY: forwarded to the caller's contract; the kernel reads `args` and the
    // descriptor (live until the call returns) only.
    let r = unsafe { ckpt_start_thread(args, core::mem::size_of::<CloneArgs>(), ctx) };
    Errno::from_ret(r as usize).map(|t| t as i32)
}

/// The precompiled `core` (built for unwinding) references the personality routine
/// from its unwind tables. With `panic = "abort"` nothing unwinds, and the linker
/// script discards the tables; this symbol only satisfies the reference.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
