//! The loader's machine layer: the entry stack, its own ELF image, its relocation
//! onto a copy, the stack switch, the thread pointer, thread creation and the final
//! jump, written once over the facts of one architecture.
//!
//! Each `arch/<target_arch>.rs` holds machine facts only (ELF header and program
//! header offsets, how relocations apply to a copy, how the thread pointer is set,
//! what clone3 takes as `tls`) and implements [`Machine`]: the compiler checks that
//! every architecture gives every fact. The assembly (`_start`, `ckpt_relocate`,
//! `ckpt_call_on_stack`, `ckpt_restore_context`, `ckpt_start_thread` in
//! asm/<arch>/restore.S) is per architecture; the interface of the last three is not.
//!
//! # Safety
//! This module reads the loader's own ELF headers through raw pointers the linker
//! guarantees, copies the loader, and ends in the assembly jumps.
#![allow(unsafe_code)]

use ckpt_image::REGS_WORDS;
use ckpt_sys::Errno;
use ckpt_sys::task::CloneArgs;

#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
#[cfg_attr(target_arch = "x86", path = "x86.rs")]
mod machine;
mod stack;
pub use stack::{arg, argv0, auxv, env};

/// The facts of one architecture (see the module comment).
pub trait Machine {
    /// `e_machine` of the images this loader restores.
    const ARCH: u32;
    /// ELF class facts: the size of an address (`e_phoff`, `p_offset`, `p_filesz`).
    const WORD: usize;
    /// Offsets of `e_phoff` and `e_phnum` in the ELF header.
    const E_PHOFF: usize;
    /// See `E_PHOFF`.
    const E_PHNUM: usize;
    /// Size of a program header, and the offsets of `p_offset`, `p_filesz` in it.
    const PHDR_LEN: usize;
    /// See `PHDR_LEN`.
    const P_OFFSET: usize;
    /// See `PHDR_LEN`.
    const P_FILESZ: usize;
    /// What clone3's `tls` points at for a new thread (nothing on x86_64, a
    /// `struct user_desc` on i386), kept alive across the call.
    type Tls: Default;
    /// Apply the loader's relocations to its copy at `dst` (the original runs at
    /// `src`); `rel` and `rel_end` are the table's offsets in the image.
    ///
    /// # Safety
    /// `dst` must hold a fresh copy of the loader image.
    unsafe fn relocate_copy(dst: usize, src: usize, rel: usize, rel_end: usize);
    /// `[start, end)` offsets of the relocation table in the loader image.
    fn rel_table() -> (usize, usize);
    /// Set the calling thread's thread pointer from the save point's words.
    ///
    /// # Safety
    /// The loader itself must use no TLS; the base is the restored program's.
    unsafe fn set_thread_pointer(words: &[u64; REGS_WORDS]) -> Result<(), Errno>;
    /// Fill `args.tls` (and, without TLS, drop `CLONE_SETTLS`) for a new thread
    /// whose save point has `words`, using `store` for what it points at.
    fn clone_tls(words: &[u64; REGS_WORDS], args: &mut CloneArgs, store: &mut Self::Tls);
}

#[cfg(target_arch = "x86_64")]
type M = machine::X86_64;
#[cfg(target_arch = "x86")]
type M = machine::X86;

/// `e_machine` of the images this loader restores.
pub const ARCH: u32 = M::ARCH;

unsafe extern "C" {
    static __ehdr_start: u8;
    static __loader_end: u8;
    fn ckpt_call_on_stack(arg: usize, sp: usize, f: usize) -> !;
    fn ckpt_restore_context(ctx: *const u64, retval: isize) -> !;
    fn ckpt_start_thread(args: *const CloneArgs, size: usize, ctx: *const u8) -> isize;
}

/// The symbol `_start` (asm/<arch>/restore.S) calls.
#[unsafe(no_mangle)]
extern "C" fn loader_main(sp: usize) -> ! {
    crate::main(sp)
}

/// `[start, end)` of the loader in memory: ELF header to the end of its segment.
pub fn loader_range() -> (usize, usize) {
    // Both symbols are defined by the linker script; only their addresses are taken.
    (&raw const __ehdr_start as usize, &raw const __loader_end as usize)
}

/// An address-sized little-endian field at `a`.
///
/// # Safety
/// `a` must be readable for `M::WORD` bytes.
unsafe fn word(a: usize) -> u64 {
    // SAFETY: the caller's contract; unaligned reads are fine on x86.
    unsafe {
        if M::WORD == 8 {
            core::ptr::read_unaligned(a as *const u64)
        } else {
            core::ptr::read_unaligned(a as *const u32) as u64
        }
    }
}

/// Length of the loader's file contents (the image starts at the next page): the
/// end of the furthest PT_LOAD in the file, read from our own program headers.
pub fn file_len() -> u64 {
    let base = loader_range().0;
    // SAFETY: the linker script puts the ELF header and the program headers at the
    // start of the loaded segment (FILEHDR PHDRS), so they are mapped at `base`.
    unsafe {
        let phoff = word(base + M::E_PHOFF) as usize;
        let phnum = *((base + M::E_PHNUM) as *const u16) as usize;
        let mut end = 0u64;
        for i in 0..phnum {
            let ph = base + phoff + i * M::PHDR_LEN;
            if *(ph as *const u32) == 1 {
                end = end.max(word(ph + M::P_OFFSET) + word(ph + M::P_FILESZ));
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
    let (rel, rel_end) = M::rel_table();
    // SAFETY: the source is our own mapped image; the destination is the caller's.
    // The relocation table copied along is applied to the copy only.
    unsafe {
        core::ptr::copy_nonoverlapping(s as *const u8, dst as *mut u8, e - s);
        M::relocate_copy(dst, s, rel, rel_end);
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
pub unsafe fn jump(words: &[u64; REGS_WORDS], retval: isize) -> Result<(), Errno> {
    // SAFETY: the loader itself uses no TLS; the base is the restored program's.
    unsafe { M::set_thread_pointer(words) }?;
    // SAFETY: the words are the save-point record's layout (little-endian u64s,
    // `RegsX86_64`/`RegsX86`) on the loader stack, which stays mapped until the
    // restarted runtime unmaps it; the memory it points into is restored.
    unsafe { ckpt_restore_context(words.as_ptr(), retval) }
}

/// Create a thread of the restored program (clone3 with `args`, whose `tls` this
/// fills) that starts at the save point whose registers are the 11 little-endian
/// words at `ctx` (`words` is a copy of them). Returns its tid.
///
/// # Safety
/// The address space must be restored; `ctx` must stay readable until the thread
/// has jumped (the loader's metadata copy), every signal must be blocked.
pub unsafe fn start_thread(args: &mut CloneArgs, words: &[u64; REGS_WORDS], ctx: *const u8) -> Result<i32, Errno> {
    let mut store = <M as Machine>::Tls::default();
    M::clone_tls(words, args, &mut store);
    // SAFETY: forwarded to the caller's contract; the kernel reads `args` and what
    // its `tls` points at (`store`, live until the call returns) only.
    let r = unsafe { ckpt_start_thread(args, core::mem::size_of::<CloneArgs>(), ctx) };
    Errno::from_ret(r as usize).map(|t| t as i32)
}

/// The precompiled `core` (built for unwinding) references the personality routine
/// from its unwind tables. With `panic = "abort"` nothing unwinds, and the linker
/// script discards the tables; this symbol only satisfies the reference.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
