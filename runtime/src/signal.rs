//! The asynchronous triggers: a handler for the configured signal (SIGTSTP unless
//! CKPT_ASYNCSIG says otherwise) that takes a checkpoint at whatever instruction
//! the program was at, and the periodic timer (CKPT_INTERVAL), a POSIX timer that
//! sends the same signal (or SIGRTMAX when the trigger signal is disabled) with a
//! value of ours, so the handler can tell the two apart. A POSIX timer is
//! independent of the program's `setitimer`/`alarm`.
//!
//! The interrupted registers, including the full FPU/AVX state, are in the
//! kernel's signal frame on the program's stack, which is saved with the rest of
//! memory: after a restart the handler simply returns and rt_sigreturn puts them
//! back. The handler blocks every signal while it runs, so the program's own
//! handlers never see a half-taken checkpoint.
//!
//! # Who answers a trigger
//! The runtime is armed in one process, its *owner* (the process `ckpt` started,
//! or a restarted one). A process the owner forks inherits the handler, and:
//! - the owner answers every trigger;
//! - a forked process answers a trigger that was addressed to it alone: sent
//!   with `sigqueue` or `tgkill` (`si_code` SI_QUEUE, SI_TKILL), or any trigger
//!   once the owner is no longer in its process group (the owner exited, or the
//!   process called `setsid`/`setpgid`: a daemon). A terminal's ^Z, or `kill` to
//!   the group, reaches a forked worker that still shares the owner's group
//!   together with the owner: the owner answers it, once, and the worker gets the
//!   default action (it stops), exactly as without ckpt;
//! - a forked process that answers becomes the owner of its own triggers and
//!   takes a name of its own: its pid goes into the configured one
//!   (`prog.ckpt` becomes `prog.PID.ckpt`, any other `NAME` becomes `NAME.PID`),
//!   so it never overwrites its parent's image.
//!
//! A process that does not answer gets the signal's default action (stop for
//! SIGTSTP, termination for SIGUSR1...): the handler sets SIG_DFL, sends the
//! signal to its own thread again and unblocks it, so the kernel acts on it right
//! there, then puts the handler back when (if) the process continues. A handler
//! the program installs itself replaces ours, and wins.
//!
//! # Safety
//! The handler passes the kernel's `siginfo_t` and `ucontext_t` pointers, which
//! are valid for the handler's duration, to the `arch` functions that read them
//! (and, for an interrupted sleep, write the syscall result into the frame).
#![allow(unsafe_code)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, Ordering};

use ckpt_sys::task::TimerId;
use ckpt_sys::{Errno, KSigAction, Result, c};

use crate::config::{Config, Path};
use crate::{Outcome, Trigger, arch};

/// `sigev_value` of our timer's signals ("ckpt").
const TIMER_VALUE: usize = 0x636b_7074;
/// The timer's signal when the trigger signal is disabled.
const SIGRTMAX: u32 = 64;
/// The periodic timer's id + 1 (0: none).
static TIMER: AtomicI32 = AtomicI32::new(0);
/// The process the triggers are for (see the module comment). Ctrl-Z sends
/// SIGTSTP to the whole process group, including children the program forked
/// (they inherit our handler): they must not all answer it.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// `our_signals` of the configuration armed last, for a handler that cannot
/// read the configuration (a checkpoint holds it in another thread).
static OURS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The signal the periodic timer sends under `cfg`.
pub fn timer_signal(cfg: &Config) -> u32 {
    if cfg.signal != 0 { cfg.signal } else { SIGRTMAX }
}

/// Signals our handler is installed for under `cfg`, as a mask.
pub fn our_signals(cfg: &Config) -> u64 {
    let bit = |s: u32| if s == 0 { 0 } else { 1u64 << (s - 1) };
    let tree = if cfg.tree { bit(crate::tree::SIGNAL) } else { 0 };
    cfg.signals | bit(cfg.signal) | tree | if cfg.interval != 0 { bit(timer_signal(cfg)) } else { 0 }
}

/// Is another copy of the ckpt runtime already handling `sig` in this process
/// (libckpt.a linked into a program that `ckpt` also preloads libckpt.so into)?
/// Then this copy stays passive: one runtime, not two.
pub fn other_runtime_active(sig: u32) -> bool {
    let Ok(old) = ckpt_sys::rt_sigaction_get(sig) else { return false };
    sig != 0
        && old.handler != on_signal as *const () as usize
        && old.flags & c::SA_RESTORER as usize != 0
        && arch::is_ckpt_restorer(old.restorer)
}

/// `SA_ONSTACK` for our handlers, or 0 (see [`ONSTACK`]).
pub fn onstack_flag() -> usize {
    if ONSTACK.load(Ordering::Relaxed) { c::SA_ONSTACK as usize } else { 0 }
}

/// Our handlers run on the thread's alternate signal stack, if it has one: set
/// by `ckpt hijack` for a Go program (`CKPT_ONSTACK=1`), whose goroutine stacks
/// may have less than a kilobyte left below the stack pointer, while every Go
/// thread has a signal stack of 32 KiB. Not by default: a C program's signal
/// stack for its own SIGSEGV handler can be as small as MINSIGSTKSZ.
pub static ONSTACK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn install(sig: u32) -> Result<()> {
    let mut act = KSigAction {
        handler: on_signal as *const () as usize,
        flags: (c::SA_SIGINFO | c::SA_RESTART | c::SA_RESTORER) as usize | onstack_flag(),
        restorer: arch::sigreturn_trampoline(),
        ..Default::default()
    };
    act.set_mask64(!0);
    // SAFETY: `on_signal` is the runtime's handler, written to run at any
    // instruction with every signal blocked; the restorer is our sigreturn
    // trampoline.
    unsafe { ckpt_sys::rt_sigaction(sig, Some(&act), None) }
}

/// Give `sig` back its default action.
fn uninstall(sig: u32) {
    let _ = ckpt_sys::sigaction_default(sig);
}

/// Install what `cfg` asks for, replacing what `old` had installed (None at load
/// time).
pub fn arm(cfg: &Config, old: Option<&Config>) -> Result<()> {
    OWNER.store(ckpt_sys::getpid(), Ordering::Release);
    OURS.store(our_signals(cfg), Ordering::Release);
    disarm_timer();
    if let Some(o) = old {
        let keep = our_signals(cfg);
        for s in 1..=64u32 {
            if our_signals(o) & (1 << (s - 1)) != 0 && keep & (1 << (s - 1)) == 0 {
                uninstall(s);
            }
        }
    }
    for s in 1..=64u32 {
        if our_signals(cfg) & (1 << (s - 1)) != 0 {
            install(s)?;
        }
    }
    arm_timer(cfg)
}

/// After a restart, or in a forked process that answered a trigger: this process
/// is now the owner. The handlers are in place (a restart brought back every
/// disposition as it was, a program's own handler included); the periodic timer
/// is not (timers belong to the process that created them).
pub fn arm_here(cfg: &Config) -> Result<()> {
    OWNER.store(ckpt_sys::getpid(), Ordering::Release);
    disarm_timer();
    arm_timer(cfg)
}

fn arm_timer(cfg: &Config) -> Result<()> {
    if cfg.interval != 0 {
        let ev = ckpt_sys::task::TimerEvent::signal(timer_signal(cfg), TIMER_VALUE);
        let id = ckpt_sys::task::timer_create(c::CLOCK_MONOTONIC, &ev, 0)?;
        TIMER.store(id.0 + 1, Ordering::Release);
        let ns = cfg.interval as u64 * 1_000_000_000;
        ckpt_sys::task::timer_settime(id, ns, ns)?;
    }
    Ok(())
}

/// Delete the periodic timer, if any.
fn disarm_timer() {
    let t = TIMER.swap(0, Ordering::AcqRel);
    if t != 0 {
        let _ = ckpt_sys::task::timer_delete(TimerId(t - 1));
    }
}

/// A restarted or forked process has no timer: the id in memory is another
/// process's.
pub fn forget_timer() {
    TIMER.store(0, Ordering::Release);
}

/// The kernel id of the runtime's own periodic timer, if armed (it is not the
/// program's: not saved, re-created after a restart).
pub fn own_timer() -> Option<i32> {
    let t = TIMER.load(Ordering::Acquire);
    (t != 0).then_some(t - 1)
}

/// Is this process the owner of the triggers?
pub fn is_owner() -> bool {
    ckpt_sys::getpid() == OWNER.load(Ordering::Acquire)
}

/// Should this process answer a trigger whose `si_code` is `code`? See the
/// module comment.
fn answers(code: i32) -> bool {
    if is_owner() || code == c::SI_QUEUE || code == c::SI_TKILL {
        return true;
    }
    let owner = OWNER.load(Ordering::Acquire);
    let (Ok(theirs), Ok(mine)) = (ckpt_sys::getpgid(owner), ckpt_sys::getpgid(0)) else {
        return true; // the owner is gone (ESRCH)
    };
    theirs != mine || is_zombie(owner)
}

/// Has `pid` exited, its parent not having reaped it yet (state Z or X in
/// /proc/PID/stat)? A daemon's parent that just exited can be in that state.
fn is_zombie(pid: i32) -> bool {
    let m = ckpt_sys::msg::Msg::new().s("/proc/").u(pid as u64).s("/stat");
    let mut path = [0u8; 40];
    let p = m.as_bytes();
    if p.len() >= path.len() {
        return false;
    }
    path[..p.len()].copy_from_slice(p);
    let Ok(cpath) = core::ffi::CStr::from_bytes_until_nul(&path) else { return false };
    let mut buf = [0u8; 2048];
    let n = match ckpt_sys::read_file(cpath, &mut buf) {
        Ok(n) => n,
        Err(Errno::ENOENT | Errno::ESRCH) => return true, // reaped meanwhile
        Err(_) => return false,
    };
    // "pid (comm) S ...": the state follows the last ')'.
    let b = &buf[..n];
    b.iter().rposition(|&c| c == b')').and_then(|i| b.get(i + 2)).is_some_and(|s| matches!(s, b'Z' | b'X'))
}

/// Give `sig` its default action now, as if our handler were not installed,
/// then put the handler back if the process goes on (see the module comment).
fn pass_on(sig: u32) {
    uninstall(sig);
    let bit = 1u64 << (sig - 1);
    if ckpt_sys::tgkill(ckpt_sys::getpid(), ckpt_sys::gettid(), sig).is_ok() {
        // The kernel acts on it as soon as it is unblocked: stop, terminate, or
        // (orphaned process group, SIGCHLD...) discard it.
        let _ = ckpt_sys::rt_sigprocmask(c::SIG_UNBLOCK, Some(&bit), None);
        let _ = ckpt_sys::rt_sigprocmask(c::SIG_BLOCK, Some(&bit), None);
    }
    // Continued (or not stopped at all). Unless the program has installed a
    // handler of its own meanwhile, ours goes back.
    if ckpt_sys::rt_sigaction_get(sig).is_ok_and(|now| now.handler == 0) {
        let _ = install(sig);
    }
}

/// A forked process about to answer its first trigger: it becomes the owner of
/// its triggers, under a name of its own (see the module comment).
pub fn adopt(cfg: &mut Config) {
    if is_owner() || cfg.tree {
        return;
    }
    let pid = ckpt_sys::getpid() as u64;
    cfg.name = if cfg.dir {
        // Directory mode's numbered images are the program's: a forked process
        // writes DIR/forked.PID.ckpt, which `ckpt run` does not resume from.
        cfg.dir = false;
        let m = ckpt_sys::msg::Msg::new().b(cfg.name.as_bytes()).s("/forked.").u(pid).s(".ckpt");
        Path::new(m.as_bytes()).unwrap_or(cfg.name)
    } else {
        name_with_pid(&cfg.name, pid)
    };
    forget_timer();
    if let Err(e) = arm_here(cfg) {
        ckpt_sys::msg::Msg::new()
            .s("ckpt: warning: cannot start the periodic checkpoints of a forked process: ")
            .errno(e)
            .emit();
    }
}

/// `stem.ckpt` -> `stem.PID.ckpt`; anything else -> `NAME.PID`.
pub fn name_with_pid(name: &Path, pid: u64) -> Path {
    let n = name.as_bytes();
    let (stem, ext): (&[u8], &[u8]) = match n.strip_suffix(b".ckpt") {
        Some(s) if !s.is_empty() && !s.ends_with(b"/") => (s, b".ckpt"),
        _ => (n, b""),
    };
    let m = ckpt_sys::msg::Msg::new().b(stem).s(".").u(pid).b(ext);
    Path::new(m.as_bytes()).unwrap_or(*name)
}

extern "C" fn on_signal(sig: i32, info: *mut c_void, uc: *mut c_void) {
    // SAFETY: the kernel passes the siginfo of an SA_SIGINFO handler.
    let periodic = unsafe { arch::siginfo_from_timer(info, TIMER_VALUE) };
    // SAFETY: as above; si_code is the third int of siginfo_t on both
    // architectures.
    let code = unsafe { core::ptr::read((info as *const u8).add(8) as *const i32) };
    if !periodic && !(1..=64).contains(&sig) {
        return;
    }
    let Some(cfg) = crate::config_if_idle() else {
        // A checkpoint is running in another thread, which holds the
        // configuration: a trigger that reached this thread meanwhile (the
        // terminal's Ctrl-Z passed on by a tree's member, SIGTERM sent twice)
        // asked for what it is doing, and the periodic timer's tick too. Only
        // the sleep it interrupted here is finished.
        // SAFETY: `uc` is this handler's ucontext.
        let interrupted = unsafe { crate::sleep::note(uc, crate::sleep::Probe::None) };
        // SAFETY: as above.
        unsafe { crate::sleep::finish_here(uc, interrupted.as_ref(), OURS.load(Ordering::Acquire)) };
        return;
    };
    // `ckpt checkpoint PID`: one of our signals, queued with a request's value.
    let asked = if !periodic && code == c::SI_QUEUE && our_signals(&cfg) & (1u64 << (sig - 1)) != 0 {
        // SAFETY: the kernel's siginfo is 128 bytes on both architectures.
        let first = unsafe { core::ptr::read(info as *const [u8; 128]) };
        let (_, pid, value) = arch::siginfo_code_pid_value(&first);
        ckpt_sys::request::fd_of(value).map(|fd| (pid, fd))
    } else {
        None
    };
    if cfg.tree && sig as u32 == crate::tree::SIGNAL {
        // The root's requests to a member (a stray reply to the root is dropped).
        if crate::tree::is_member(&cfg) {
            // SAFETY: `uc` is this handler's ucontext.
            let interrupted = unsafe { crate::sleep::note(uc, crate::sleep::Probe::Borrow) };
            // SAFETY: the kernel's siginfo is 128 bytes on both architectures.
            let first = unsafe { core::ptr::read(info as *const [u8; 128]) };
            if crate::tree::member(&cfg, &first) {
                if let Some(it) = &interrupted {
                    // SAFETY: as above; the frame came back with the stack.
                    unsafe { crate::sleep::finish_after_restart(uc, it, our_signals(&crate::config())) }
                }
            } else {
                // SAFETY: as above.
                unsafe { crate::sleep::finish_here(uc, interrupted.as_ref(), our_signals(&cfg)) }
            }
        }
        return;
    }
    if cfg.tree
        && !periodic
        && asked.is_none()
        && crate::tree::is_member(&cfg)
        && cfg.signals & (1u64 << (sig - 1)) != 0
    {
        // The terminal's Ctrl-Z reaches the whole foreground group: the root
        // checkpoints the tree, once.
        crate::tree::pass_to_root(&cfg, sig as u32);
        return;
    }
    if !periodic && asked.is_none() && (cfg.signals & (1u64 << (sig - 1)) == 0 || !answers(code)) {
        // SIGRTMAX kept for the timer but sent by someone else, or a trigger this
        // process does not answer (a forked worker in the owner's group).
        pass_on(sig as u32);
        return;
    }
    let trigger = if periodic { Trigger::Periodic } else { Trigger::Signal };
    crate::notice::begin(if periodic { 0 } else { sig as u32 });
    // A local: on the program's stack, so in the image, back after a restart.
    // SAFETY: `uc` is this handler's ucontext.
    let interrupted = unsafe { crate::sleep::note(uc, crate::sleep::Probe::Borrow) };
    crate::sleep::taking();
    let r = match asked {
        Some((pid, fd)) => crate::checkpoint_requested(pid, fd),
        None => crate::checkpoint(None, trigger),
    };
    if r.is_ok() {
        crate::sleep::taken(matches!(r, Ok(Outcome::Restarted)));
    }
    if !matches!(r, Ok(Outcome::Restarted)) {
        // A trigger that arrived while this checkpoint ran (a scheduler sending
        // SIGTERM twice, Ctrl-Z pressed again) asked for what was just done: it
        // does not start another. Every signal is still blocked (our sa_mask).
        while ckpt_sys::take_pending(our_signals(&cfg)).is_ok() {}
    }
    match r {
        Ok(Outcome::Written { exit: true }) => ckpt_sys::exit_group(cfg.exit_status as i32),
        Ok(Outcome::Restarted) => {
            if let Some(it) = &interrupted {
                // SAFETY: as above; the frame came back with the stack.
                unsafe { crate::sleep::finish_after_restart(uc, it, our_signals(&crate::config())) }
            }
        }
        Ok(Outcome::Written { exit: false }) => {
            // SAFETY: `uc` is this handler's ucontext.
            unsafe { crate::sleep::finish_here(uc, interrupted.as_ref(), our_signals(&cfg)) }
        }
        Err(f) => {
            // Busy: a trigger that reached another thread at the same moment
            // started the checkpoint between our `config_if_idle` and our
            // `checkpoint`. This one asked for what that one does (as above,
            // when the state was already busy): nothing to say.
            if !(asked.is_none() && f.is_busy()) {
                f.report();
            }
            // SAFETY: as above.
            unsafe { crate::sleep::finish_here(uc, interrupted.as_ref(), our_signals(&cfg)) }
        }
    }
}
