//! x86_64 facts of the loader, behind [`super::Machine`]: ELF64 offsets, RELA
//! relocations, the fs base as thread pointer.
//!
//! # Safety
//! Calls the relocation assembly and arch_prctl(ARCH_SET_FS).
#![allow(unsafe_code)]

use ckpt_image::{ARCH_X86_64, REGS_WORDS, RegsX86_64};
use ckpt_sys::Errno;
use ckpt_sys::task::CloneArgs;

unsafe extern "C" {
    static __rela_start: u8;
    static __rela_end: u8;
    fn ckpt_relocate(base: usize, rela: usize, end: usize);
}

/// The x86_64 machine.
pub struct X86_64;

/// clone3's `tls` is the fs base itself: nothing to keep alive.
#[derive(Default)]
pub struct NoTls;

impl super::Machine for X86_64 {
    const ARCH: u32 = ARCH_X86_64;
    // Elf64_Ehdr: e_phoff at 32, e_phnum at 56; Elf64_Phdr: 56 bytes, p_offset at
    // 8, p_filesz at 32.
    const WORD: usize = 8;
    const E_PHOFF: usize = 32;
    const E_PHNUM: usize = 56;
    const PHDR_LEN: usize = 56;
    const P_OFFSET: usize = 8;
    const P_FILESZ: usize = 32;
    type Tls = NoTls;

    /// RELA: `*(base + r_offset) = base + r_addend`, applied with the copy's base.
    unsafe fn relocate_copy(dst: usize, _src: usize, rel: usize, rel_end: usize) {
        // SAFETY: the caller's contract: `dst` holds a fresh copy with its table.
        unsafe { ckpt_relocate(dst, dst + rel, dst + rel_end) }
    }

    fn rel_table() -> (usize, usize) {
        let s = super::loader_range().0;
        (&raw const __rela_start as usize - s, &raw const __rela_end as usize - s)
    }

    unsafe fn set_thread_pointer(words: &[u64; REGS_WORDS]) -> Result<(), Errno> {
        // SAFETY: the caller's contract.
        unsafe { ckpt_sys::arch_prctl_set_fs(RegsX86_64::from_words(words).fs_base) }
    }

    fn clone_tls(words: &[u64; REGS_WORDS], args: &mut CloneArgs, _store: &mut NoTls) {
        args.tls = RegsX86_64::from_words(words).fs_base;
    }
}
