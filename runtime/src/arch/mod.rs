//! The runtime's machine layer: the save point, the thread pointer, the signal
//! trampoline, rseq, the interrupted-sleep fix-up and the clone helper of the
//! background writer, written once over the facts of one architecture.
//!
//! Each `arch/<target_arch>.rs` holds machine facts only (the save-point record
//! and its assembly, the thread pointer, the `siginfo_t` and `ucontext_t`
//! offsets, the system-call instruction) and implements [`Machine`]: the compiler
//! checks that every architecture gives every fact. The assembly behind
//! `ckpt_save_context`, `ckpt_sigreturn` and `ckpt_clone_vm` is per architecture
//! (asm/<arch>/save.S); its interface is not.
//!
//! # Safety
//! The save point is assembly that returns twice (once after writing the image,
//! once in the restarted process). It is sound because the image writer runs
//! *below* the save point's frame (as the callback of `ckpt_save_context`), so the
//! frames above it are dumped exactly as they are when the call returns, and
//! callee-saved registers come back from the saved context. The rest: raw pointers
//! into the runtime's own statics, the kernel's signal frame of the running
//! handler, and system calls whose memory arguments are described at each call.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ckpt_image::{REGS_WORDS, RESTART_INFO_LEN, RestartInfo};
use ckpt_sys::{Errno, Result};

const _: () = assert!(RESTART_INFO_LEN <= 64);

#[cfg_attr(target_arch = "x86_64", path = "x86_64.rs")]
#[cfg_attr(target_arch = "x86", path = "x86.rs")]
mod machine;

/// The facts of one architecture (see the module comment).
pub trait Machine {
    /// `e_machine` of the images this runtime writes.
    const ARCH: u32;
    /// The save-point record (`ckpt_image::RegsX86_64` / `RegsX86`), also the
    /// layout the assembly writes.
    type Regs: Copy;
    /// An all-zero record (for statics).
    const ZERO: Self::Regs;
    /// Offsets of `si_pid` and `si_value` in `siginfo_t`.
    const SI_PID: usize;
    /// See `SI_PID`.
    const SI_VALUE: usize;
    /// Offsets in `ucontext_t` of the system-call return register, the
    /// instruction pointer and `uc_sigmask`.
    const UC_RET: usize;
    /// See `UC_RET`.
    const UC_IP: usize;
    /// See `UC_RET`.
    const UC_SIGMASK: usize;
    /// The two bytes before the instruction pointer of a thread interrupted in a
    /// system call.
    const SYSCALL_INSN: [u8; 2];
    /// The system call the kernel interrupted for the running handler, read from
    /// its signal frame `uc` and the code before the instruction pointer: its
    /// number and its six argument registers (None where it cannot be told).
    ///
    /// # Safety
    /// `uc` must be the `ucontext_t` of the running SA_SIGINFO handler.
    unsafe fn interrupted_call(uc: *mut c_void) -> Option<(usize, [usize; 6])>;
    /// The calling thread's thread pointer (None: it has none).
    fn thread_pointer() -> Result<Option<usize>>;
    /// A save-point record with the calling thread's thread pointer filled in.
    fn thread_regs() -> Result<Self::Regs>;
    /// The record as the words of `ckpt_image::Process::regs`.
    fn words(r: &Self::Regs) -> [u64; REGS_WORDS];
    /// `ckpt_save_context(ctx, f, arg, stack_top)`: record the caller's
    /// callee-saved state in `*ctx` and run `f(arg)` below it (on the stack whose
    /// top is `stack_top`, or on this one for 0); returns `f`'s result, or the
    /// restart value when the loader resumes the save point.
    ///
    /// # Safety
    /// `ctx` must stay valid for the call; `f` must not return the restart value;
    /// `stack_top` must be 0 or the 16-byte aligned top of writable memory nothing
    /// else uses.
    unsafe fn save_raw(
        ctx: *mut Self::Regs,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
        stack_top: usize,
    ) -> isize;
}

#[cfg(target_arch = "x86_64")]
type M = machine::X86_64;
#[cfg(target_arch = "x86")]
type M = machine::X86;

/// `e_machine` of the images this runtime writes.
pub const ARCH: u32 = M::ARCH;
/// The save-point record of this architecture.
pub type Regs = <M as Machine>::Regs;

unsafe extern "C" {
    fn ckpt_rseq_offset_ptr() -> *const isize;
    fn ckpt_rseq_size_ptr() -> *const u32;
    fn ckpt_sigreturn();
    fn ckpt_clone_vm(
        flags: usize,
        stack_top: usize,
        f: unsafe extern "C" fn(*mut c_void) -> isize,
        arg: *mut c_void,
    ) -> isize;
}

/// A cell written only on the checkpoint path, which `crate::state` serialises.
/// 64-byte aligned: the loader requires the restart slot (`RESTART_INFO_LEN`, at
/// most 64 bytes) to lie inside one writable mapping, and i386 aligns u64 to 4 only
/// (a static program's slot was seen straddling its .data and .bss mappings); a
/// 64-byte aligned slot of 64 bytes or less never crosses a page.
#[repr(align(64))]
struct Slot<T>(UnsafeCell<T>);
// SAFETY: accessed only by the single thread holding `crate::state`'s busy flag.
unsafe impl<T> Sync for Slot<T> {}

/// Where the loader leaves a `RestartInfo` before it jumps back.
static RESTART_INFO: Slot<[u64; RESTART_INFO_LEN / 8]> = Slot(UnsafeCell::new([0; RESTART_INFO_LEN / 8]));

/// The save point's registers (asm/<arch>/save.S writes them).
static CTX: Slot<Regs> = Slot(UnsafeCell::new(M::ZERO));

/// The registers recorded by the current `save_context` (valid inside `f`).
pub fn saved_regs() -> [u64; REGS_WORDS] {
    // SAFETY: written by the assembly before `f` runs; read on the same thread.
    M::words(unsafe { &*CTX.0.get() })
}

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
    // The loader puts the thread pointer back before it jumps (the fs base; on
    // i386 the same GDT entry with the same base, and the assembly records %gs).
    let regs = M::thread_regs()?;
    // SAFETY: the busy flag of crate::state gives us CTX and RESTART_INFO alone.
    unsafe {
        *CTX.0.get() = regs;
        *RESTART_INFO.0.get() = [0; RESTART_INFO_LEN / 8];
    }
    // SAFETY: see the module comment; CTX is a static that outlives the call.
    let r = unsafe { M::save_raw(CTX.0.get(), tramp::<F>, f as *mut F as *mut c_void, 0) };
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

/// The stack a checkpoint runs on (see [`on_checkpoint_stack`]): its base, 0 until
/// the first checkpoint maps it.
static CKPT_STACK: AtomicUsize = AtomicUsize::new(0);
/// Held while a thread runs on it.
static CKPT_STACK_BUSY: AtomicBool = AtomicBool::new(false);
/// Its size: the checkpoint path needs some 100 KiB (paths, the writer's tables);
/// only the pages it touches cost anything.
const CKPT_STACK_LEN: usize = 1 << 20;

/// Run `f` (a whole checkpoint) on the runtime's own stack rather than the calling
/// thread's: any thread may take the trigger, and a thread's stack may be small (a
/// 64 KiB pthread stack overflows on the checkpoint path). The stack is an
/// ordinary mapping of the process, saved in the image with the frames of the
/// checkpoint above its save point, so a restarted process returns through them
/// and back onto the thread's stack. Mapped at the first checkpoint, kept for the
/// life of the process. When it is in use (another thread is checkpointing, and
/// will refuse this one) or cannot be mapped, `f` runs where it is.
pub fn on_checkpoint_stack<R, F: FnOnce() -> R>(f: F) -> R {
    struct Slot<F, R> {
        f: Option<F>,
        r: Option<R>,
    }
    unsafe extern "C" fn tramp<R, F: FnOnce() -> R>(arg: *mut c_void) -> isize {
        // SAFETY: `arg` is the `Slot` below, live for the whole call.
        let s = unsafe { &mut *(arg as *mut Slot<F, R>) };
        if let Some(f) = s.f.take() {
            s.r = Some(f());
        }
        0
    }
    if CKPT_STACK_BUSY.swap(true, Ordering::Acquire) {
        return f();
    }
    let mut base = CKPT_STACK.load(Ordering::Acquire);
    if base == 0 {
        let rw = ckpt_sys::c::PROT_READ | ckpt_sys::c::PROT_WRITE;
        let flags = ckpt_sys::c::MAP_PRIVATE | ckpt_sys::c::MAP_ANONYMOUS | ckpt_sys::c::MAP_NORESERVE;
        // SAFETY: a fresh mapping at an address of the kernel's choice.
        match unsafe { ckpt_sys::mmap(0, CKPT_STACK_LEN, rw, flags, ckpt_sys::Fd(-1), 0) } {
            Ok(p) => {
                base = p;
                CKPT_STACK.store(p, Ordering::Release);
            }
            Err(_) => {
                CKPT_STACK_BUSY.store(false, Ordering::Release);
                return f();
            }
        }
    }
    let mut slot = Slot { f: Some(f), r: None };
    let mut scratch = M::ZERO;
    // SAFETY: the save-point assembly used as a plain stack switch (the record it
    // fills is a dummy); the stack is ours alone while CKPT_STACK_BUSY is held,
    // and its top is 16-byte aligned (a mapping's end).
    unsafe {
        M::save_raw(&mut scratch, tramp::<R, F>, &mut slot as *mut Slot<F, R> as *mut c_void, base + CKPT_STACK_LEN)
    };
    CKPT_STACK_BUSY.store(false, Ordering::Release);
    match slot.r {
        Some(r) => r,
        // Unreachable: tramp ran `f`. Run it here rather than invent a result.
        None => match slot.f.take() {
            Some(f) => f(),
            None => crate::panic_free_abort(),
        },
    }
}

/// The rseq area's offset from the thread pointer, as `ckpt hijack` read it from
/// the kernel (PTRACE_GET_RSEQ_CONFIGURATION); 0: not told.
pub static RSEQ_TOLD: core::sync::atomic::AtomicIsize = core::sync::atomic::AtomicIsize::new(0);

/// glibc's rseq area of the calling thread, if glibc registered one
/// (`__rseq_size > 0` and `cpu_id >= 0`): the thread pointer + `__rseq_offset`.
pub fn rseq_area() -> Option<usize> {
    // SAFETY: the functions return the addresses of glibc's exported constants or
    // NULL (weak references); the constants are read-only data.
    let (off, size) = unsafe { (ckpt_rseq_offset_ptr(), ckpt_rseq_size_ptr()) };
    let (off, size) = if off.is_null() || size.is_null() {
        // The blob `ckpt hijack` put in has no C library to ask: ckpt told it.
        match RSEQ_TOLD.load(Ordering::Relaxed) {
            0 => return None,
            v => (v, 32u32),
        }
    } else {
        // SAFETY: both non-null, pointing at glibc's constants.
        unsafe { (*off, *size) }
    };
    if size == 0 {
        return None;
    }
    let tp = M::thread_pointer().ok()?? as isize;
    let area = tp.wrapping_add(off) as usize;
    // SAFETY: glibc places the rseq area inside the thread control block at the
    // thread pointer. `cpu_id` is the second u32 of struct rseq; -1/-2 mean "not
    // registered".
    let cpu_id = unsafe { core::ptr::read_volatile((area + 4) as *const i32) };
    (cpu_id >= 0).then_some(area)
}

/// The system call the kernel interrupted for this handler (see
/// `Machine::interrupted_call`; always None on i386, see `sleep.rs`).
///
/// # Safety
/// `uc` must be the `ucontext_t` of the running SA_SIGINFO handler.
pub unsafe fn interrupted_call(uc: *mut c_void) -> Option<(usize, [usize; 6])> {
    // SAFETY: the caller's contract.
    unsafe { M::interrupted_call(uc) }
}

/// Put `r` in the frame's return register: the interrupted call's result for the
/// program.
///
/// # Safety
/// As [`interrupted_call`].
pub unsafe fn set_call_result(uc: *mut c_void, r: isize) {
    // SAFETY: the return register of the kernel's signal frame, a machine word.
    unsafe { core::ptr::write((uc as *mut u8).add(M::UC_RET) as *mut usize, r as usize) };
}

/// The signal mask the frame restores.
///
/// # Safety
/// As [`interrupted_call`].
pub unsafe fn frame_mask(uc: *mut c_void) -> u64 {
    // SAFETY: uc_sigmask of the kernel's frame (only 4-byte aligned on i386).
    unsafe { core::ptr::read_unaligned((uc as *const u8).add(M::UC_SIGMASK) as *const u64) }
}

/// If the program was in a sleep the kernel interrupted for our handler
/// (nanosleep, clock_nanosleep, poll... return -ERESTART_RESTARTBLOCK, which
/// becomes EINTR once a handler runs, SA_RESTART or not), finish that sleep now,
/// for the time it had left, and hand its result to the program: a checkpoint
/// must not make the program's sleeps end early. The program's own signals are
/// unblocked meanwhile (`keep_blocked` stays blocked), so they interrupt it as
/// they would have. Returns the result put in the frame (None: nothing done).
///
/// # Safety
/// `uc` must be the `ucontext_t` the kernel passed to the running SA_SIGINFO
/// handler, which returns to it afterwards.
pub unsafe fn finish_interrupted_sleep(uc: *mut c_void, keep_blocked: u64) -> Option<isize> {
    /// -EINTR as the kernel leaves it in the return register (a machine word).
    const EINTR_RET: usize = (-4isize) as usize;
    let uc = uc as *mut u8;
    // SAFETY: the kernel's signal frame: the return register, the instruction
    // pointer and the saved mask are plain words in it (the mask only 4-byte
    // aligned on i386: read unaligned); the two bytes before the instruction
    // pointer are the end of the instruction the program executed last, in its
    // mapped code or the vDSO.
    unsafe {
        let ret = core::ptr::read(uc.add(M::UC_RET) as *const usize);
        let ip = core::ptr::read(uc.add(M::UC_IP) as *const usize);
        // The two bytes must lie in the page of the instruction, which is mapped.
        if ret != EINTR_RET
            || ip < 2
            || (ip - 2) / 4096 != (ip - 1) / 4096
            || core::ptr::read((ip - 2) as *const [u8; 2]) != M::SYSCALL_INSN
        {
            return None;
        }
        let mask = core::ptr::read_unaligned(uc.add(M::UC_SIGMASK) as *const u64) | keep_blocked;
        let mut all = 0u64;
        if ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_SETMASK, Some(&mask), Some(&mut all)).is_err() {
            return None;
        }
        // With nothing to restart the kernel answers -EINTR, and nothing changes.
        let r = ckpt_sys::task::restart_syscall();
        let _ = ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_SETMASK, Some(&all), None);
        core::ptr::write(uc.add(M::UC_RET) as *mut usize, r as usize);
        Some(r)
    }
}

/// Address of the restart-info slot (goes into the image).
pub fn restart_info_addr() -> u64 {
    RESTART_INFO.0.get() as u64
}

/// The `SA_RESTORER` trampoline for the runtime's own handlers.
pub fn sigreturn_trampoline() -> usize {
    ckpt_sigreturn as *const () as usize
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

/// The image's sections, as the loader left them in its home block (valid until
/// `unmap_loader`; validated by the loader before it restored anything).
pub fn restart_sections(info: &RestartInfo) -> ckpt_image::Sections<'_> {
    if info.sections_len == 0 || info.sections_addr == 0 {
        return ckpt_image::Sections::EMPTY;
    }
    // SAFETY: the loader stored the address and length of the section area of its
    // metadata copy, inside the home block, which stays mapped until
    // `unmap_loader`; the borrow of `info` ties the slice to the caller's use of
    // the restart record, which ends before the unmap.
    let b = unsafe { core::slice::from_raw_parts(info.sections_addr as *const u8, info.sections_len as usize) };
    // Parsed again (cheap) rather than trusted: a loader of another build cannot
    // make the runtime read out of bounds.
    ckpt_image::Sections::parse(b).unwrap_or(ckpt_image::Sections::EMPTY)
}

/// Unmap the loader's home block in the restarted process, all but the page a
/// lazy restart's pager shares with the runtime (`crate::lazy`), if it is there.
pub fn unmap_loader(info: &RestartInfo) {
    let (s, e) = (info.loader_start, info.loader_start + info.loader_len);
    let keep = info.lazy_status;
    let parts = if keep >= s && keep < e { [(s, keep), (keep + 4096, e)] } else { [(s, e), (e, e)] };
    for (a, b) in parts.into_iter().filter(|(a, b)| a < b) {
        // SAFETY: the block is the loader's (code, stack, buffers), which finished
        // with the jump; the runtime never referenced it.
        let _ = unsafe { ckpt_sys::munmap(a as usize, (b - a) as usize) };
    }
}

/// `clone(flags)` with a child that runs `f(arg)` on the stack whose top is
/// `stack_top` and exits with its result (asm/<arch>/save.S). Returns the child's
/// pid.
///
/// # Safety
/// With `CLONE_VM` the child shares our memory: the caller must also pass
/// `CLONE_VFORK` (so it is suspended while the child runs), `stack_top` must be
/// the top of mapped memory nothing else uses, and `f` must only touch memory that
/// stays valid until the child exits.
pub unsafe fn clone_vm(
    flags: usize,
    stack_top: usize,
    f: unsafe extern "C" fn(*mut c_void) -> isize,
    arg: *mut c_void,
) -> Result<i32> {
    // SAFETY: forwarded to the caller's contract.
    let r = unsafe { ckpt_clone_vm(flags, stack_top, f, arg) };
    Errno::from_ret(r as usize).map(|p| p as i32)
}

/// Bytes of `ckpt_sigreturn`: its three instructions (9 bytes on both
/// architectures) and the 8-byte signature after them.
const RESTORER_LEN: usize = 17;

/// Is `restorer` (a handler's `sa_restorer`) the trampoline of a ckpt runtime,
/// this one or another copy in the same process?
pub fn is_ckpt_restorer(restorer: usize) -> bool {
    if restorer == 0 {
        return false;
    }
    let ours = sigreturn_trampoline();
    // SAFETY: both addresses are signal return trampolines the kernel jumps to on
    // every return from a handler, so they are mapped code; we read 17 bytes,
    // within the trampoline and its signature when it is ours, and within the
    // instructions that follow any other restorer (at least the syscall and the
    // function end) otherwise.
    unsafe {
        let a = core::slice::from_raw_parts(ours as *const u8, RESTORER_LEN);
        let b = core::slice::from_raw_parts(restorer as *const u8, RESTORER_LEN);
        a == b
    }
}

/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: i32 = -2;
/// `si_code` of a signal sent with sigqueue / rt_tgsigqueueinfo.
const SI_QUEUE: i32 = -1;

/// `(si_code, si_value)` of a `siginfo_t`.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to an SA_SIGINFO handler.
unsafe fn code_and_value(info: *const c_void) -> (i32, usize) {
    // SAFETY: si_code at 8 and si_value at SI_VALUE are inside the 128-byte record.
    unsafe {
        let code = core::ptr::read((info as *const u8).add(8) as *const i32);
        let v = core::ptr::read((info as *const u8).add(M::SI_VALUE) as *const usize);
        (code, v)
    }
}

/// Was this signal sent by a POSIX timer created with `sigev_value == value`?
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to an SA_SIGINFO handler.
pub unsafe fn siginfo_from_timer(info: *const c_void, value: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { code_and_value(info) == (SI_TIMER, value) }
}

/// Was this signal queued (`rt_tgsigqueueinfo`) with `si_value == value`?
///
/// # Safety
/// As [`siginfo_from_timer`].
pub unsafe fn siginfo_queued(info: *const c_void, value: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { code_and_value(info) == (SI_QUEUE, value) }
}

/// `si_code`, `si_pid` and `si_value` of a siginfo that `rt_sigtimedwait` wrote.
pub fn siginfo_code_pid_value(b: &[u8; 128]) -> (i32, i32, usize) {
    let i32_at = |o: usize| i32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut v = [0u8; core::mem::size_of::<usize>()];
    let n = v.len();
    v.copy_from_slice(&b[M::SI_VALUE..M::SI_VALUE + n]);
    (i32_at(8), i32_at(M::SI_PID), usize::from_ne_bytes(v))
}

/// A `siginfo_t` for `rt_tgsigqueueinfo`: `sig`, SI_QUEUE, our pid and uid, `value`.
pub fn queued_siginfo(sig: u32, pid: i32, uid: u32, value: usize) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&(sig as i32).to_ne_bytes());
    b[8..12].copy_from_slice(&SI_QUEUE.to_ne_bytes());
    b[M::SI_PID..M::SI_PID + 4].copy_from_slice(&pid.to_ne_bytes());
    b[M::SI_PID + 4..M::SI_PID + 8].copy_from_slice(&uid.to_ne_bytes());
    b[M::SI_VALUE..M::SI_VALUE + core::mem::size_of::<usize>()].copy_from_slice(&value.to_ne_bytes());
    b
}

/// Record a save point of the calling thread into a `Regs` of its own (a thread
/// stopped by the runtime's stop handler, not the checkpointing thread) and run
/// `f(&regs)` below it. Returns `f`'s result on the first pass, 1 when the thread
/// was restarted from an image and resumes here (the loader started it at the
/// save point); `f` must not return 1. The registers live in this frame, above
/// the save point, so they are part of the image too.
pub fn save_thread<F: FnMut(&Regs) -> isize>(f: &mut F) -> Result<isize> {
    struct Arg<'a, F> {
        f: &'a mut F,
        regs: *const Regs,
    }
    unsafe extern "C" fn tramp<F: FnMut(&Regs) -> isize>(arg: *mut c_void) -> isize {
        // SAFETY: `arg` is the `Arg` below, live for the whole call; `regs` was
        // filled by the assembly before it called us.
        let a = unsafe { &mut *(arg as *mut Arg<'_, F>) };
        // SAFETY: as above: the registers of this frame's caller, written already.
        let regs = unsafe { &*a.regs };
        (a.f)(regs)
    }
    let mut regs = M::thread_regs()?;
    let mut a = Arg { f, regs: &raw const regs };
    // SAFETY: see the module comment of the arch file; `regs` outlives the call.
    let r = unsafe { M::save_raw(&raw mut regs, tramp::<F>, &mut a as *mut Arg<'_, F> as *mut c_void, 0) };
    Ok(r)
}
