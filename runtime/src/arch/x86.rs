//! i386 facts of the runtime, behind [`super::Machine`]: the save-point record and
//! its assembly, the thread pointer (a TLS segment: `%gs` selects a GDT entry set
//! with set_thread_area, glibc uses entry 12, selector 0x63), and the kernel's
//! `siginfo_t` and `ucontext_t` offsets. The logic that uses them is written once,
//! in `arch/mod.rs`.
//!
//! # Safety
//! `save_raw` calls the save-point assembly (asm/x86/save.S), whose contract is
//! `Machine::save_raw`'s; reading `%gs` has no side effect.
#![allow(unsafe_code)]

use core::ffi::c_void;

use ckpt_image::{ARCH_X86, RegsX86};
use ckpt_sys::Result;

unsafe extern "C" {
    fn ckpt_save_context(
        ctx: *mut RegsX86,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
        stack_top: usize,
    ) -> isize;
}

/// The `%gs` selector of the calling thread.
fn gs() -> u32 {
    let sel: u32;
    // SAFETY: reading a segment register has no side effect.
    unsafe { core::arch::asm!("mov {0:e}, gs", out(reg) sel, options(nomem, nostack, preserves_flags)) };
    sel & 0xffff
}

/// The TLS descriptor `%gs` selects: `(entry, base)`, or None when `%gs` holds no
/// TLS selector (a program without TLS).
fn tls() -> Result<Option<(u32, u32)>> {
    let sel = gs();
    // A GDT selector (TI bit clear) of privilege 3; anything else is not TLS.
    if sel & 7 != 3 {
        return Ok(None);
    }
    let d = ckpt_sys::get_thread_area(sel >> 3)?;
    Ok(Some((sel >> 3, d.base_addr)))
}

/// The i386 machine.
pub struct X86;

impl super::Machine for X86 {
    const ARCH: u32 = ARCH_X86;
    type Regs = RegsX86;
    const ZERO: RegsX86 =
        RegsX86 { esp: 0, eip: 0, ebx: 0, ebp: 0, esi: 0, edi: 0, mxcsr: 0, fcw: 0, tls_entry: 0, tls_base: 0, gs: 0 };
    // siginfo: three ints, then the union at 12 (si_pid, si_uid / si_tid,
    // si_overrun, then si_value at 20).
    const SI_PID: usize = 12;
    const SI_VALUE: usize = 20;
    // ucontext: uc_flags, uc_link, a 12-byte uc_stack, then uc_mcontext at 20: the
    // kernel's `struct sigcontext_32`, 22 words in the order gs, fs, es, ds, edi,
    // esi, ebp, esp, ebx, edx, ecx, eax, trapno, err, eip, cs, eflags,
    // esp_at_signal, ss, fpstate, oldmask, cr2; then the 8-byte uc_sigmask (4-byte
    // aligned).
    const UC_RET: usize = 20 + 11 * 4;
    const UC_IP: usize = 20 + 14 * 4;
    const UC_SIGMASK: usize = 20 + 22 * 4;
    /// `int 0x80`. glibc enters the kernel through the vDSO's `__kernel_vsyscall`
    /// (sysenter or syscall), but a 64-bit kernel reports every interrupted compat
    /// fast system call at the vDSO's int 0x80 landing pad, right after an `int
    /// 0x80` instruction: the same two bytes as an inline `int 0x80` leaves.
    const SYSCALL_INSN: [u8; 2] = [0xcd, 0x80];

    /// Not done on i386 (see `sleep.rs`): the number of a call made through
    /// `__kernel_vsyscall` is not next to the instruction the kernel stopped after.
    unsafe fn interrupted_call(_uc: *mut c_void) -> Option<(usize, [usize; 6])> {
        None
    }

    fn thread_pointer() -> Result<Option<usize>> {
        Ok(tls()?.map(|(_, base)| base as usize))
    }

    /// The loader gives a restarted thread the same GDT entry with the same base
    /// (set_thread_area, or clone3's CLONE_SETTLS), and the assembly records `%gs`.
    fn thread_regs() -> Result<RegsX86> {
        let (tls_entry, tls_base) = tls()?.unwrap_or((0, 0));
        Ok(RegsX86 { tls_entry: tls_entry as u64, tls_base: tls_base as u64, ..Default::default() })
    }

    fn words(r: &RegsX86) -> [u64; ckpt_image::REGS_WORDS] {
        r.to_words()
    }

    unsafe fn save_raw(
        ctx: *mut RegsX86,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
        stack_top: usize,
    ) -> isize {
        // SAFETY: forwarded to the caller's contract.
        unsafe { ckpt_save_context(ctx, f, arg, stack_top) }
    }
}
