//! ptrace(2), for `ckpt hijack` (the std side): attach to a running thread
//! without stopping it in the program's eyes (PTRACE_SEIZE, PTRACE_INTERRUPT),
//! read and write its registers and extended state, run it to its next system
//! call stop, detach. One typed wrapper per request; nothing here touches the
//! tracee's memory (ckpt uses /proc/PID/mem for that).

use syscalls::{Sysno, raw_syscall};

use crate::{Errno, Result};

macro_rules! sys {
    ($($t:tt)*) => { Errno::from_ret(raw_syscall!($($t)*)) };
}

const PTRACE_CONT: usize = 7;
const PTRACE_GETREGS: usize = 12;
const PTRACE_SETREGS: usize = 13;
const PTRACE_DETACH: usize = 17;
const PTRACE_SYSCALL: usize = 24;
const PTRACE_GETREGSET: usize = 0x4204;
const PTRACE_SETREGSET: usize = 0x4205;
const PTRACE_SEIZE: usize = 0x4206;
const PTRACE_INTERRUPT: usize = 0x4207;
/// `PTRACE_O_TRACESYSGOOD`: system call stops report SIGTRAP | 0x80.
pub const O_TRACESYSGOOD: usize = 1;
/// The `wait` status's event of a PTRACE_INTERRUPT (or group) stop.
pub const EVENT_STOP: i32 = 128;
/// `NT_X86_XSTATE`: the XSAVE area (x87, SSE, AVX, AVX-512...).
const NT_X86_XSTATE: usize = 0x202;

/// `struct user_regs_struct` of x86_64, field by field in the kernel's order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// `PTRACE_SEIZE` thread `tid` with `options`: it goes on running.
pub fn seize(tid: i32, options: usize) -> Result<()> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::ptrace, PTRACE_SEIZE, tid, 0usize, options) }.map(drop)
}

/// `PTRACE_INTERRUPT`: stop the seized thread (a PTRACE_EVENT_STOP, no signal).
pub fn interrupt(tid: i32) -> Result<()> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::ptrace, PTRACE_INTERRUPT, tid, 0usize, 0usize) }.map(drop)
}

/// Resume the stopped thread, delivering `sig` (0: none).
pub fn cont(tid: i32, sig: u32) -> Result<()> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::ptrace, PTRACE_CONT, tid, 0usize, sig as usize) }.map(drop)
}

/// Resume it to its next system call entry or exit stop.
pub fn syscall(tid: i32) -> Result<()> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::ptrace, PTRACE_SYSCALL, tid, 0usize, 0usize) }.map(drop)
}

/// Detach, delivering `sig` (0: none).
pub fn detach(tid: i32, sig: u32) -> Result<()> {
    // SAFETY: no memory is passed.
    unsafe { sys!(Sysno::ptrace, PTRACE_DETACH, tid, 0usize, sig as usize) }.map(drop)
}

/// The stopped thread's general registers.
pub fn get_regs(tid: i32) -> Result<Regs> {
    let mut r = Regs::default();
    // SAFETY: the kernel writes one user_regs_struct into ours.
    unsafe { sys!(Sysno::ptrace, PTRACE_GETREGS, tid, 0usize, &mut r as *mut Regs as usize) }.map(|_| r)
}

/// Set them.
pub fn set_regs(tid: i32, r: &Regs) -> Result<()> {
    // SAFETY: the kernel reads one user_regs_struct of ours.
    unsafe { sys!(Sysno::ptrace, PTRACE_SETREGS, tid, 0usize, r as *const Regs as usize) }.map(drop)
}

/// `PTRACE_GET_RSEQ_CONFIGURATION`: the thread's registered rseq area, as
/// (address, size); address 0 when none.
pub fn rseq_configuration(tid: i32) -> Result<(u64, u32)> {
    const PTRACE_GET_RSEQ_CONFIGURATION: usize = 0x420f;
    // struct ptrace_rseq_configuration: u64 address, u32 size, signature, flags, pad.
    let mut conf = [0u64; 3];
    // SAFETY: the kernel writes at most the 24 bytes we say we have.
    unsafe { sys!(Sysno::ptrace, PTRACE_GET_RSEQ_CONFIGURATION, tid, 24usize, conf.as_mut_ptr() as usize) }?;
    Ok((conf[0], conf[1] as u32))
}

/// The XSAVE area into `buf`; its length.
pub fn get_xstate(tid: i32, buf: &mut [u8]) -> Result<usize> {
    let mut iov = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: the kernel writes at most buf.len() bytes into buf and the length into iov.
    unsafe { sys!(Sysno::ptrace, PTRACE_GETREGSET, tid, NT_X86_XSTATE, iov.as_mut_ptr() as usize) }.map(|_| iov[1])
}

/// Put the XSAVE area `buf` back.
pub fn set_xstate(tid: i32, buf: &[u8]) -> Result<()> {
    let iov = [buf.as_ptr() as usize, buf.len()];
    // SAFETY: the kernel reads buf.len() bytes of buf.
    unsafe { sys!(Sysno::ptrace, PTRACE_SETREGSET, tid, NT_X86_XSTATE, iov.as_ptr() as usize) }.map(drop)
}
