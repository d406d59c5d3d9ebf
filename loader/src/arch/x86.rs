//! i386 facts of the loader, behind [`super::Machine`]: ELF32 offsets, REL
//! relocations, the TLS descriptor (`%gs` selects a GDT entry).
//!
//! The loader must itself be a 32-bit program to restore a 32-bit image: exec of
//! an i386 ELF gives the process a compat address space (4 GiB, TASK_SIZE
//! 0xffffe000) and the 32-bit vDSO, whose `__kernel_vsyscall` and signal return
//! trampolines the restored program uses.
//!
//! # Safety
//! Calls the relocation assembly and set_thread_area.
#![allow(unsafe_code)]

use ckpt_image::{ARCH_X86, REGS_WORDS, RegsX86};
use ckpt_sys::task::{CLONE_SETTLS, CloneArgs};
use ckpt_sys::{Errno, UserDesc};

unsafe extern "C" {
    static __rel_start: u8;
    static __rel_end: u8;
    fn ckpt_relocate(image: usize, rel: usize, end: usize, delta: usize);
}

/// `user_desc.flags` of glibc's TLS descriptor: seg_32bit, limit_in_pages, useable
/// (contents 0 = data, read_exec_only 0, present); limit 0xfffff pages = 4 GiB.
/// What glibc's TLS_INIT_TP asks for, and what `get_thread_area` reports for it.
const TLS_FLAGS: u32 = 1 | (1 << 4) | (1 << 6);
const TLS_LIMIT: u32 = 0xfffff;

/// The descriptor of the GDT entry and base the save point recorded: the same
/// entry number as before, so the saved `%gs` selector (and any copy of it in the
/// program's memory) selects it again.
fn desc(r: &RegsX86) -> UserDesc {
    UserDesc { entry_number: r.tls_entry as u32, base_addr: r.tls_base as u32, limit: TLS_LIMIT, flags: TLS_FLAGS }
}

/// The i386 machine.
pub struct X86;

impl super::Machine for X86 {
    const ARCH: u32 = ARCH_X86;
    // Elf32_Ehdr: e_phoff at 28, e_phnum at 44; Elf32_Phdr: 32 bytes, p_offset at
    // 4, p_filesz at 16.
    const WORD: usize = 4;
    const E_PHOFF: usize = 28;
    const E_PHNUM: usize = 44;
    const PHDR_LEN: usize = 32;
    const P_OFFSET: usize = 4;
    const P_FILESZ: usize = 16;
    type Tls = UserDesc;

    /// REL: the addend is the word in place, which the copy already holds relocated
    /// for where we run now: the copy gets the distance between the two added.
    unsafe fn relocate_copy(dst: usize, src: usize, rel: usize, rel_end: usize) {
        // SAFETY: the caller's contract: `dst` holds a fresh copy with its table.
        unsafe { ckpt_relocate(dst, dst + rel, dst + rel_end, dst.wrapping_sub(src)) }
    }

    fn rel_table() -> (usize, usize) {
        let s = super::loader_range().0;
        (&raw const __rel_start as usize - s, &raw const __rel_end as usize - s)
    }

    unsafe fn set_thread_pointer(words: &[u64; REGS_WORDS]) -> Result<(), Errno> {
        let r = RegsX86::from_words(words);
        if r.tls_entry == 0 {
            return Ok(());
        }
        // SAFETY: the caller's contract.
        unsafe { ckpt_sys::set_thread_area(&mut desc(&r)) }
    }

    fn clone_tls(words: &[u64; REGS_WORDS], args: &mut CloneArgs, store: &mut UserDesc) {
        let r = RegsX86::from_words(words);
        if r.tls_entry == 0 {
            args.flags &= !CLONE_SETTLS;
        }
        *store = desc(&r);
        args.tls = store as *const UserDesc as usize as u64;
    }
}
