//! x86_64 facts of the runtime, behind [`super::Machine`]: the save-point record and
//! its assembly, the thread pointer (the fs base), and the kernel's `siginfo_t` and
//! `ucontext_t` offsets. The logic that uses them is written once, in `arch/mod.rs`.
//!
//! # Safety
//! `save_raw` calls the save-point assembly (asm/x86_64/save.S), whose contract is
//! `Machine::save_raw`'s.
#![allow(unsafe_code)]

use core::ffi::c_void;

use ckpt_image::{ARCH_X86_64, RegsX86_64};
use ckpt_sys::Result;

unsafe extern "C" {
    fn ckpt_save_context(
        ctx: *mut RegsX86_64,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
        stack_top: usize,
    ) -> isize;
}

/// The x86_64 machine.
pub struct X86_64;

impl super::Machine for X86_64 {
    const ARCH: u32 = ARCH_X86_64;
    type Regs = RegsX86_64;
    const ZERO: RegsX86_64 =
        RegsX86_64 { rsp: 0, rip: 0, rbx: 0, rbp: 0, r12: 0, r13: 0, r14: 0, r15: 0, mxcsr: 0, fcw: 0, fs_base: 0 };
    // siginfo: three ints, padding, then the union at 16 (`_rt`/`_timer`: si_pid,
    // si_uid / si_tid, si_overrun, then si_value at 24).
    const SI_PID: usize = 16;
    const SI_VALUE: usize = 24;
    // ucontext: uc_mcontext at 40; gregs in the kernel's `struct sigcontext` order
    // r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip; uc_sigmask at 40 + 256.
    const UC_RET: usize = 40 + 13 * 8;
    const UC_IP: usize = 40 + 16 * 8;
    const UC_SIGMASK: usize = 40 + 256;
    /// `syscall`.
    const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

    unsafe fn interrupted_call(uc: *mut c_void) -> Option<(usize, [usize; 6])> {
        /// -EINTR as the kernel leaves it in rax.
        const EINTR_RET: u64 = (-4i64) as u64;
        let uc = uc as *const u8;
        let reg = |i: usize| -> u64 {
            // SAFETY: gregs of the kernel's signal frame.
            unsafe { core::ptr::read(uc.add(40 + i * 8) as *const u64) }
        };
        let rip = reg(16) as usize;
        // Glibc and musl emit `mov $NR, %eax; syscall`. The 7 bytes must lie in
        // the page of the `syscall` itself, which is mapped: the page before may
        // not be.
        if reg(13) != EINTR_RET || rip < 7 || (rip - 7) / 4096 != (rip - 1) / 4096 {
            return None;
        }
        // SAFETY: the 7 bytes before rip end the instruction the program executed
        // last, in its mapped code (the kernel stopped right after it), on its page.
        let code = unsafe { core::ptr::read((rip - 7) as *const [u8; 7]) };
        if code[0] != 0xb8 || code[5..] != [0x0f, 0x05] {
            return None;
        }
        let nr = u32::from_le_bytes([code[1], code[2], code[3], code[4]]) as usize;
        // rdi, rsi, rdx, r10, r8, r9.
        Some((
            nr,
            [reg(8) as usize, reg(9) as usize, reg(12) as usize, reg(2) as usize, reg(0) as usize, reg(1) as usize],
        ))
    }

    fn thread_pointer() -> Result<Option<usize>> {
        Ok(Some(ckpt_sys::arch_prctl_get_fs()? as usize))
    }

    fn thread_regs() -> Result<RegsX86_64> {
        Ok(RegsX86_64 { fs_base: ckpt_sys::arch_prctl_get_fs()?, ..Default::default() })
    }

    fn words(r: &RegsX86_64) -> [u64; ckpt_image::REGS_WORDS] {
        r.to_words()
    }

    unsafe fn save_raw(
        ctx: *mut RegsX86_64,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
        stack_top: usize,
    ) -> isize {
        // SAFETY: forwarded to the caller's contract.
        unsafe { ckpt_save_context(ctx, f, arg, stack_top) }
    }
}
