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

/// The `N` bytes of this process's memory at `addr`, or None where any is not
/// readable (`process_vm_readv` on ourselves: a copy that cannot fault).
fn peek<const N: usize>(addr: usize) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    peek_into(addr, &mut b).then_some(b)
}

fn peek_into(addr: usize, b: &mut [u8]) -> bool {
    let n = b.len();
    ckpt_sys::process_vm_readv(ckpt_sys::getpid(), b, &[ckpt_sys::IoVec { base: addr, len: n }]) == Ok(n)
}

fn peek_u32(addr: usize) -> Option<usize> {
    peek::<4>(addr).map(|b| u32::from_le_bytes(b) as usize)
}

/// `call *%gs:0x10`: glibc's call of `__kernel_vsyscall` (the vDSO entry in its
/// thread descriptor).
const CALL_VSYSCALL: [u8; 7] = [0x65, 0xff, 0x15, 0x10, 0, 0, 0];
/// glibc's helper for six-argument calls (`__libc_do_syscall`): `push %ebx;
/// push %edi; push %ebp; mov (%edi),%ebx; mov 8(%edi),%ebp; mov 4(%edi),%edi`,
/// then `call *%gs:0x10`. Its caller set eax before `call` to it.
const SIX_ARG_HELPER: [u8; 11] = [0x53, 0x57, 0x55, 0x8b, 0x1f, 0x8b, 0x6f, 0x08, 0x8b, 0x7f, 0x04];

/// The number of the call the kernel interrupted at `eip` with the stack at
/// `esp`, for a call glibc made through `__kernel_vsyscall`; None otherwise.
///
/// The kernel reports such a call at the vDSO's int 0x80 landing pad (`int
/// $0x80` before it; `pop %ebp; pop %edx; pop %ecx; ret` after), with eax
/// -EINTR: the number is gone from the registers (orig_eax is not in the
/// sigcontext). But the return address above the three words the vDSO pushed
/// is glibc's, right after `call *%gs:0x10`, and glibc sets eax with `mov
/// $NR, %eax` a few instructions before that call, with only moves of the
/// other registers in between (measured over Debian 12's i386 libc, glibc
/// 2.36: 469 of its 576 direct calls decode so, and all 48 calls through the
/// six-argument helper; every call site of the sleeps among them). So: walk
/// back at most 48
/// bytes for a `mov $imm32, %eax` from which [`moves_only`] decodes exactly up
/// to the call. A six-argument call goes through glibc's helper: then the
/// helper's own return address, four words higher, is the place to look.
fn vsyscall_number(eip: usize, esp: usize) -> Option<usize> {
    if eip < 2 || peek::<6>(eip - 2)? != [0xcd, 0x80, 0x5d, 0x5a, 0x59, 0xc3] {
        return None;
    }
    let ra = peek_u32(esp + 12)?;
    let before = peek::<7>(ra.checked_sub(7)?)?;
    if before != CALL_VSYSCALL {
        return None;
    }
    let start = ra - 7;
    if peek::<11>(start.checked_sub(11)?)? == SIX_ARG_HELPER {
        // The helper's three pushes, then its caller's return address, right
        // after a 5-byte `call rel32` to the helper's first byte.
        let ra2 = peek_u32(esp + 28)?;
        let call = peek::<5>(ra2.checked_sub(5)?)?;
        let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
        if call[0] != 0xe8 || ra2.wrapping_add(rel as isize as usize) != start - 11 {
            return None;
        }
        return mov_eax_before(ra2 - 5);
    }
    mov_eax_before(start)
}

/// The immediate of the `mov $imm32, %eax` that starts a run of [`moves_only`]
/// ending exactly at `end`, looking back at most 48 bytes.
fn mov_eax_before(end: usize) -> Option<usize> {
    let mut buf = [0u8; 48];
    // The whole window, or (at the start of a mapping) what of it is on the
    // page of `end`.
    let w = if end >= 48 && peek_into(end - 48, &mut buf) { 48 } else { end % 4096 }.min(48);
    let code = &mut buf[48 - w..];
    if w < 48 && !peek_into(end - w, code) {
        return None;
    }
    (5..=w).map(|back| w - back).find_map(|i| {
        let imm = u32::from_le_bytes([code[i + 1], code[i + 2], code[i + 3], code[i + 4]]) as usize;
        (code[i] == 0xb8 && moves_only(&code[i + 5..])).then_some(imm)
    })
}

/// Bytes of a ModRM operand (ModRM, SIB, displacement) starting at `b[0]`.
fn modrm_len(b: &[u8]) -> Option<usize> {
    let m = *b.first()?;
    let (md, rm) = (m >> 6, m & 7);
    let mut n = 1;
    if md != 3 && rm == 4 {
        n += 1;
        if md == 0 && b.get(1)? & 7 == 5 {
            n += 4;
        }
    }
    n += match (md, rm) {
        (1, _) => 1,
        (2, _) => 4,
        (0, 5) => 4,
        _ => 0,
    };
    Some(n)
}

/// Whether `code` is, whole, a run of instructions none of which writes eax:
/// mov/lea/xor/add/sub/or/and between registers and memory, xchg, `mov $imm32`
/// to another register, push, pop of another register, nop. Anything else
/// (a jump, a call, an instruction writing eax) says no.
fn moves_only(mut code: &[u8]) -> bool {
    while let Some(&op) = code.first() {
        let n = match op {
            // reg <- r/m: mov, lea, xor, add, sub, or, and.
            0x8b | 0x8d | 0x33 | 0x03 | 0x2b | 0x0b | 0x23 => match code.get(1) {
                Some(m) if (m >> 3) & 7 != 0 => modrm_len(&code[1..]).map(|n| n + 1),
                _ => None,
            },
            // r/m <- reg: a register destination must not be eax.
            0x89 | 0x31 | 0x01 | 0x29 | 0x09 | 0x21 => match code.get(1) {
                Some(m) if !(m >> 6 == 3 && m & 7 == 0) => modrm_len(&code[1..]).map(|n| n + 1),
                _ => None,
            },
            0x87 => match code.get(1) {
                Some(m) if (m >> 3) & 7 != 0 && !(m >> 6 == 3 && m & 7 == 0) => modrm_len(&code[1..]).map(|n| n + 1),
                _ => None,
            },
            0xb9..=0xbf => Some(5),
            0x50..=0x57 | 0x59..=0x5f | 0x90 => Some(1),
            _ => None,
        };
        match n {
            Some(n) if n <= code.len() => code = &code[n..],
            _ => return false,
        }
    }
    true
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

    /// A call glibc made through `__kernel_vsyscall` (see [`vsyscall_number`]):
    /// the frame's registers are its arguments in ebx, ecx, edx, esi, edi, ebp
    /// (the kernel reads ebp back from the vDSO's stack for a sysenter call).
    unsafe fn interrupted_call(uc: *mut c_void) -> Option<(usize, [usize; 6])> {
        let uc = uc as *const u8;
        // SAFETY: word `i` of the sigcontext in the kernel's signal frame.
        let reg = |i: usize| unsafe { core::ptr::read(uc.add(20 + i * 4) as *const u32) } as usize;
        // eax is -EINTR; esp is word 7, eip word 14.
        if reg(11) != (-4i32) as u32 as usize {
            return None;
        }
        let nr = vsyscall_number(reg(14), reg(7))?;
        Some((nr, [reg(8), reg(10), reg(9), reg(5), reg(4), reg(6)]))
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
