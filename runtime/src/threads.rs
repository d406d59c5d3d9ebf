//! The other threads of a multi-threaded program: stopping them for a checkpoint,
//! recording each one's save point and kernel state, and letting them go on (after
//! the image is written, or after a restart). See docs/threads.md.
//!
//! The thread that takes the trigger (the signal, the periodic timer or an API call,
//! on whichever thread) is the **coordinator**. It lists /proc/self/task and sends
//! every other thread [`STOP_SIGNAL`] with tgkill. Each thread, in [`on_stop`] (every
//! signal blocked), records its own kernel state and a save point (the same
//! `save_context` mechanism as the coordinator's, into a record of its own), counts
//! itself stopped in the shared table, and waits on a futex for the release. The
//! coordinator re-lists the tasks until every task it sees is recorded (threads
//! created meanwhile are caught, threads that exited are dropped), within
//! [`STOP_TIMEOUT_MS`]; a thread that does not stop in time (it blocks the stop
//! signal, for instance) fails the checkpoint with a message naming it, nothing is
//! written and everyone is released.
//!
//! After a restart each thread comes back at its save point, created by the loader:
//! it checks in, waits until the coordinator has restored the process-wide state and
//! unmapped the loader, puts back its own state and returns from the stop handler,
//! which puts back its interrupted registers and signal mask (rt_sigreturn).
//!
//! # Safety
//! The stop handler receives the kernel's pointers and reads none of them. The
//! table of records is a scratch mapping the coordinator owns for the session;
//! each stopped thread writes only the slot it claimed with an atomic counter,
//! before it counts itself stopped (Release), and the coordinator reads only slots
//! counted (Acquire).
#![allow(unsafe_code)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use ckpt_image::process::PendingSignal;
use ckpt_image::threads::{COORDINATOR, MAX_THREADS, Thread};
use ckpt_sys::scratch::Scratch;
use ckpt_sys::task::{futex_wait, futex_wake};
use ckpt_sys::{Errno, Fd, KSigAction, StackT, c, msg::Msg};

use crate::arch;
use crate::failure::Failure;

/// The signal that stops the other threads: SIGRTMAX-1 (63). glibc keeps 32 and 33
/// for itself, the periodic timer uses SIGRTMAX when the trigger is disabled.
pub const STOP_SIGNAL: u32 = 63;
/// The stop signal of last resort, for a thread that blocks STOP_SIGNAL: 33, which
/// glibc (SIGSETXID) and musl (SIGCANCEL) keep for themselves and never let a
/// program block (`sigfillset` leaves it out; node's inspector thread, for one,
/// blocks everything else). It is queued with a value of ours; any other 33 is
/// handed to the C library's own handler.
pub const FALLBACK_SIGNAL: u32 = 33;
/// `si_value` of our fallback signals ("ckptstop").
const FALLBACK_VALUE: usize = 0x6b63_7074_7374_6f70u64 as usize;
/// The action the C library had for FALLBACK_SIGNAL while ours is installed.
static FALLBACK_OLD: AtomicUsize = AtomicUsize::new(0);
static FALLBACK_OLD_FLAGS: AtomicUsize = AtomicUsize::new(0);
/// Stop signals taken in the current session, per signal.
static TOOK: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
/// Signals pending for one stopped thread alone that the image keeps (136 bytes
/// each, on the thread's stack while it is stopped).
const MAX_THREAD_PENDING: usize = 16;
/// How long the coordinator waits for every thread to stop.
pub const STOP_TIMEOUT_MS: u64 = 2000;

/// Generation of the last session (never 0).
static GEN: AtomicU32 = AtomicU32::new(0);
/// CLOCK_MONOTONIC (ns) when the last session began, on the clock of the
/// process that took it (in the image).
static STOP_AT: AtomicU64 = AtomicU64::new(0);
/// The trigger signals of the last session (the coordinator's configuration,
/// which a stopped thread cannot read while the coordinator holds it).
static TRIGGERS: AtomicU64 = AtomicU64::new(0);
/// `si_value` of the stop signal a stopped thread queues to itself to read the
/// time left of its interrupted sleep (`sleep::Probe::Own`; "ckptprob").
const PROBE_VALUE: usize = 0x6b63_7074_7072_6f62u64 as usize;
/// The generation of the session in progress, 0 when none: the handler ignores
/// a stop signal that arrives outside a session.
static ACTIVE: AtomicU32 = AtomicU32::new(0);
/// Threads recorded in the current session (slots of the table filled).
static STOPPED: AtomicU32 = AtomicU32::new(0);
/// Slots claimed.
static SLOTS: AtomicU32 = AtomicU32::new(0);
/// The generation released: stopped threads wait until it is theirs.
static RELEASE: AtomicU32 = AtomicU32::new(0);
/// The table of records of the current session.
static TABLE: AtomicUsize = AtomicUsize::new(0);
/// Restarted threads that reached their save point.
static CHECKED_IN: AtomicU32 = AtomicU32::new(0);
/// Set by the coordinator of a restarted process once the process is whole.
static RESUME: AtomicU32 = AtomicU32::new(0);
/// How long the last stop took, in µs (CKPT_TIMING).
static LAST_STOP_US: AtomicU32 = AtomicU32::new(0);
/// Threads other than the coordinator in the last image taken.
static OTHERS: AtomicU32 = AtomicU32::new(0);

/// The stopped threads of a session, held by the coordinator.
pub struct Stopped {
    table: Scratch,
    generation: u32,
    /// Records in the table.
    pub n: usize,
    /// The program's own action for STOP_SIGNAL, put back when the session ends.
    pub old_action: KSigAction,
    /// The C library's action for FALLBACK_SIGNAL, if ours was installed.
    pub fallback_old: Option<KSigAction>,
    /// Stop signals sent: STOP_SIGNAL, FALLBACK_SIGNAL.
    sent: [u32; 2],
}

impl Stopped {
    /// The records of the stopped threads (not the coordinator).
    pub fn records(&self) -> &[Thread] {
        // SAFETY: the table holds MAX_THREADS records; the first `n` were written
        // by stopped threads before they counted themselves (see the module comment).
        unsafe { core::slice::from_raw_parts(self.table.as_slice().as_ptr() as *const Thread, self.n) }
    }

    /// The table's address range, to leave out of the image.
    pub fn range(&self) -> (u64, u64) {
        self.table.range()
    }
}

/// This thread's kernel state, in a record without registers.
pub fn capture_thread() -> Thread {
    let mut t = Thread { tid: ckpt_sys::gettid() as u64, ..Default::default() };
    let mut ss = StackT::default();
    // SAFETY: only reads the current alternate stack.
    if unsafe { ckpt_sys::sigaltstack(None, Some(&mut ss)) }.is_ok() {
        t.altstack = [ss.sp as u64, ss.flags as u32 as u64, ss.size as u64];
    } else {
        t.altstack = [0, c::SS_DISABLE as u64, 0];
    }
    t.rseq = arch::rseq_area().unwrap_or(0) as u64;
    if let Ok((h, l)) = ckpt_sys::get_robust_list() {
        t.robust = [h as u64, l as u64];
    }
    t.tid_address = ckpt_sys::prctl_get_tid_address().unwrap_or(0) as u64;
    t.comm = ckpt_sys::prctl_get_name().unwrap_or([0; 16]);
    if let Ok((set, n)) = ckpt_sys::task::sched_getaffinity() {
        t.affinity = set;
        t.affinity_len = n as u64;
    }
    t.policy = ckpt_sys::task::sched_getscheduler().unwrap_or(0) as u64;
    t.priority = ckpt_sys::task::sched_getparam().unwrap_or(0) as u64;
    t.nice = ckpt_sys::task::getpriority().unwrap_or(0) as i64 as u64;
    t
}

/// Put back this thread's kernel state after a restart (the coordinator's comes
/// back through `capture::Kernel`, this is every other thread's). Failures are
/// reported and the thread goes on.
pub fn restore_thread(t: &Thread) {
    let warn = |what: &str, e: Errno| {
        Msg::new().s("ckpt: warning: after restart, thread ").u(t.tid).s(" could not ").s(what).s(": ").errno(e).emit();
    };
    if t.rseq != 0
        && let Err(e) = arch::rseq_register(t.rseq as usize)
    {
        warn("register rseq", e);
    }
    if t.robust[0] != 0
        // SAFETY: the head this thread had registered, in its restored memory.
        && let Err(e) = unsafe { ckpt_sys::set_robust_list(t.robust[0] as usize, t.robust[1] as usize) }
    {
        warn("set its robust futex list", e);
    }
    if t.tid_address != 0 {
        // SAFETY: the address this thread had registered (its descriptor's tid
        // word, in its restored memory), cleared by the kernel when it exits.
        unsafe { ckpt_sys::set_tid_address(t.tid_address as usize) };
    }
    let flags = t.altstack[1] as u32 as i32;
    if flags & c::SS_DISABLE as i32 == 0 {
        // SS_ONSTACK is a status, not a setting.
        let ss =
            StackT { sp: t.altstack[0] as usize, flags: flags & !(c::SS_ONSTACK as i32), size: t.altstack[2] as usize };
        // SAFETY: the alternate stack this thread had, in its restored memory.
        if let Err(e) = unsafe { ckpt_sys::sigaltstack(Some(&ss), None) } {
            warn("set its alternate signal stack", e);
        }
    }
    let _ = ckpt_sys::prctl_set_name(&t.comm);
    if t.affinity_len != 0
        && let Err(e) = ckpt_sys::task::sched_setaffinity(&t.affinity, t.affinity_len as usize)
    {
        warn("restore its CPU affinity", e);
    }
    restore_sched(t.policy as u32, t.priority as i32, t.nice as i64 as i32, &|what, e| warn(what, e));
}

/// Scheduling policy and nice value of the calling thread, where they differ from
/// what a new thread has (SCHED_OTHER, nice of the restarting process).
pub fn restore_sched(policy: u32, priority: i32, nice: i32, warn: &dyn Fn(&str, Errno)) {
    if policy != 0
        && ckpt_sys::task::sched_getscheduler() != Ok(policy)
        && let Err(e) = ckpt_sys::task::sched_setscheduler(policy, priority)
    {
        warn("restore its scheduling policy", e);
    }
    if ckpt_sys::task::getpriority() != Ok(nice)
        && let Err(e) = ckpt_sys::task::setpriority(nice)
    {
        warn("restore its nice value", e);
    }
}

/// The handler of STOP_SIGNAL, on a thread the coordinator stops.
extern "C" fn on_stop(sig: i32, info: *mut c_void, uc: *mut c_void) {
    // SAFETY: the kernel passes the siginfo of an SA_SIGINFO handler.
    if unsafe { arch::siginfo_queued(info, PROBE_VALUE) } {
        return; // this thread's own probe (below), nested
    }
    // A session is active only in the process whose coordinator started it (a
    // forked child that checkpoints itself has sessions of its own; the
    // background writer, a fork taken during one, has no other thread).
    let generation = ACTIVE.load(Ordering::Acquire);
    if generation == 0 {
        return; // late or stray
    }
    TOOK[(sig as u32 == FALLBACK_SIGNAL) as usize].fetch_add(1, Ordering::AcqRel);
    // The sleep the stop signal interrupted, if any (a local: in the image).
    // SAFETY: `uc` is this handler's ucontext; STOP_SIGNAL's action is this
    // handler, which returns at once for PROBE_VALUE.
    let interrupted = unsafe { crate::sleep::note(uc, crate::sleep::Probe::Own(STOP_SIGNAL, PROBE_VALUE)) };
    // The triggers stay blocked while that sleep is finished (but for one
    // thread at a time, see `sleep::finish_after_restart`); the stop signals do
    // not, so the thread can be stopped again during it.
    let keep = TRIGGERS.load(Ordering::Acquire);
    // The signals pending for this thread alone, and its timer slack (locals:
    // in the image, put back by the thread itself after a restart).
    let mut sigs = [PendingSignal::default(); MAX_THREAD_PENDING];
    let stop_signals = (1u64 << (STOP_SIGNAL - 1)) | (1u64 << (FALLBACK_SIGNAL - 1));
    let (nsigs, full) = crate::capture::process::take_own_pending(keep | stop_signals, &mut sigs);
    if full {
        Msg::new()
            .s("ckpt: warning: thread ")
            .u(ckpt_sys::gettid() as u64)
            .s(" has more than 16 signals pending for it: the rest are not in the image")
            .emit();
    }
    let slack = ckpt_sys::settings::prctl_value(ckpt_sys::settings::pr::GET_TIMERSLACK, 0).ok();
    let mut rec = capture_thread();
    let table = TABLE.load(Ordering::Acquire) as *mut Thread;
    let r = arch::save_thread(&mut |regs: &arch::Regs| {
        let slot = SLOTS.fetch_add(1, Ordering::AcqRel) as usize;
        if slot < MAX_THREADS {
            let t = Thread { regs: regs.to_words(), ..rec };
            // SAFETY: our own slot of the session's table (see the module comment).
            unsafe { table.add(slot).write(t) };
            STOPPED.fetch_add(1, Ordering::AcqRel);
            let _ = futex_wake(&STOPPED);
        }
        loop {
            let v = RELEASE.load(Ordering::Acquire);
            if v == generation {
                break;
            }
            let _ = futex_wait(&RELEASE, v, 1000);
        }
        0
    });
    if r == Ok(1) {
        // Restarted: the loader started this thread at its save point.
        CHECKED_IN.fetch_add(1, Ordering::AcqRel);
        let _ = futex_wake(&CHECKED_IN);
        loop {
            let v = RESUME.load(Ordering::Acquire);
            if v != 0 {
                break;
            }
            let _ = futex_wait(&RESUME, v, 1000);
        }
        rec.regs = [0; ckpt_image::REGS_WORDS];
        restore_thread(&rec);
        if let Some(v) = slack
            && let Err(e) = ckpt_sys::settings::prctl_value(ckpt_sys::settings::pr::SET_TIMERSLACK, v)
        {
            Msg::new()
                .s("ckpt: warning: after restart, thread ")
                .u(rec.tid)
                .s(" could not restore its timer slack: ")
                .errno(e)
                .emit();
        }
        // Before the frame's mask comes back: the program finds them pending.
        crate::capture::process::queue_own(&sigs[..nsigs]);
        if rec.tid == ckpt_sys::getpid() as u64 {
            queue_deferred();
        }
        if let Some(it) = &interrupted {
            // SAFETY: `uc` is this handler's ucontext; the frame came back with
            // the stack.
            unsafe { crate::sleep::finish_after_restart(uc, it, keep) }
        }
    } else {
        if rec.tid == ckpt_sys::getpid() as u64 {
            queue_deferred();
        }
        // In the process that goes on: finish the sleep for the time it had left.
        // SAFETY: `uc` is this handler's ucontext, the frame `note` saw.
        unsafe { crate::sleep::finish_here(uc, interrupted.as_ref(), keep) }
    }
}

/// The handler of FALLBACK_SIGNAL while a session needs it: ours when queued with
/// our value, the C library's otherwise.
extern "C" fn on_fallback(sig: i32, info: *mut c_void, uc: *mut c_void) {
    // SAFETY: the kernel passes the siginfo of an SA_SIGINFO handler.
    if unsafe { arch::siginfo_queued(info, FALLBACK_VALUE) } {
        return on_stop(sig, info, uc);
    }
    let h = FALLBACK_OLD.load(Ordering::Acquire);
    if h <= 1 {
        return; // SIG_DFL or SIG_IGN: a C library that does not use it
    }
    if FALLBACK_OLD_FLAGS.load(Ordering::Acquire) & c::SA_SIGINFO as usize != 0 {
        // SAFETY: the C library installed `h` as an SA_SIGINFO handler; it gets
        // the kernel's arguments as they came.
        let f: extern "C" fn(i32, *mut c_void, *mut c_void) = unsafe { core::mem::transmute(h) };
        f(sig, info, uc)
    } else {
        // SAFETY: as above, a one-argument handler.
        let f: extern "C" fn(i32) = unsafe { core::mem::transmute(h) };
        f(sig)
    }
}

fn install_fallback() -> Result<KSigAction, Errno> {
    let mut cur = KSigAction::default();
    // SAFETY: only reads the current action.
    unsafe { ckpt_sys::rt_sigaction(FALLBACK_SIGNAL, None, Some(&mut cur)) }?;
    FALLBACK_OLD.store(cur.handler, Ordering::Release);
    FALLBACK_OLD_FLAGS.store(cur.flags, Ordering::Release);
    install(FALLBACK_SIGNAL, on_fallback as *const () as usize)
}

fn install(sig: u32, handler: usize) -> Result<KSigAction, Errno> {
    let mut act = KSigAction {
        handler,
        flags: (c::SA_SIGINFO | c::SA_RESTART | c::SA_RESTORER) as usize | crate::signal::onstack_flag(),
        restorer: arch::sigreturn_trampoline(),
        ..Default::default()
    };
    act.set_mask64(!0);
    let mut old = KSigAction::default();
    // SAFETY: `handler` is one of this module's handlers (on_stop, on_fallback),
    // with our trampoline as restorer and every signal blocked while it runs.
    unsafe { ckpt_sys::rt_sigaction(sig, Some(&act), Some(&mut old)) }?;
    Ok(old)
}

/// Tids of /proc/self/task, through `f`.
fn each_task(buf: &mut [u8], mut f: impl FnMut(i32)) -> Result<(), Errno> {
    let d = ckpt_sys::openat(Fd::CWD, c"/proc/self/task", c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0)?;
    let r = (|| {
        loop {
            let n = ckpt_sys::getdents64(d, buf)?;
            if n == 0 {
                return Ok(());
            }
            for name in ckpt_sys::dirent_names(&buf[..n]) {
                if let Some(tid) = ckpt_sys::num::parse(name, 10) {
                    f(tid as i32);
                }
            }
        }
    })();
    let _ = ckpt_sys::close(d);
    r
}

fn now_us() -> u64 {
    ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, ns)| s as u64 * 1_000_000 + ns as u64 / 1000)
}

/// `CKPT_TIMING`: how long the last stop took.
pub fn report_stop() {
    Msg::new()
        .s("ckpt: timing: ")
        .u(OTHERS.load(Ordering::Relaxed) as u64)
        .s(" other threads stopped in ")
        .u(LAST_STOP_US.load(Ordering::Relaxed) as u64)
        .s(" us")
        .emit();
}

/// `CKPT_TIMING`: all threads of the restarted process run, `started_ns` being the
/// loader's start.
pub fn report_restart(started_ns: u64) {
    let now = now_us();
    Msg::new()
        .s("ckpt: timing: restart: ")
        .u(OTHERS.load(Ordering::Relaxed) as u64 + 1)
        .s(" threads running ")
        .u(now.saturating_sub(started_ns / 1000))
        .s(" us after the loader started")
        .emit();
}

fn now_ms() -> u64 {
    ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, ns)| s as u64 * 1000 + ns as u64 / 1_000_000)
}

/// Stop every other thread of the process (see the module comment). `Ok(None)`
/// for a single-threaded process. `path` names the image in a failure.
pub fn stop_all(path: &[u8], triggers: u64) -> Result<Option<Stopped>, Failure> {
    if crate::capture::mm::thread_count().unwrap_or(1) <= 1 {
        return Ok(None);
    }
    if triggers & (1 << (STOP_SIGNAL - 1)) != 0 {
        return Err(Failure::new(
            "the trigger signal is 63, the signal that stops the other threads: choose another (ckpt -a); not writing",
            Errno::EINVAL,
            path,
        ));
    }
    let fail = |e| Failure::new("stopping the other threads for", e, path);
    let table = Scratch::new(MAX_THREADS * core::mem::size_of::<Thread>()).map_err(fail)?;
    // Signalled tids, and a getdents buffer.
    let mut work = Scratch::new(MAX_THREADS * 4 + (64 << 10)).map_err(fail)?;
    let old_action = install(STOP_SIGNAL, on_stop as *const () as usize).map_err(fail)?;
    let generation = GEN.load(Ordering::Relaxed).wrapping_add(1).max(1);
    STOP_AT.store(crate::sleep::now(), Ordering::Relaxed);
    TRIGGERS.store(triggers, Ordering::Relaxed);
    GEN.store(generation, Ordering::Release);
    STOPPED.store(0, Ordering::Relaxed);
    SLOTS.store(0, Ordering::Relaxed);
    TOOK[0].store(0, Ordering::Relaxed);
    TOOK[1].store(0, Ordering::Relaxed);
    CHECKED_IN.store(0, Ordering::Relaxed);
    RESUME.store(0, Ordering::Relaxed);
    TABLE.store(table.as_slice().as_ptr() as usize, Ordering::Relaxed);
    ACTIVE.store(generation, Ordering::Release);

    let mut s = Stopped { table, generation, n: 0, old_action, fallback_old: None, sent: [0, 0] };
    let started = now_ms();
    // Tids sent the fallback signal, as a bit per slot of `tids`.
    let mut fallback = [0u64; MAX_THREADS / 64];
    let (pid, me) = (ckpt_sys::getpid(), ckpt_sys::gettid());
    let t0 = now_us();
    let deadline = now_ms() + STOP_TIMEOUT_MS;
    let w = work.bytes();
    let (tids, dents) = w.split_at_mut(MAX_THREADS * 4);
    let mut nsig = 0usize;
    let tid_at = |t: &[u8], i: usize| i32::from_ne_bytes([t[i * 4], t[i * 4 + 1], t[i * 4 + 2], t[i * 4 + 3]]);
    loop {
        // Signal every task not signalled yet.
        let mut new = 0;
        let mut too_many = false;
        let listed = each_task(dents, |tid| {
            if tid == me || (0..nsig).any(|i| tid_at(tids, i) == tid) {
                return;
            }
            if nsig >= MAX_THREADS - 1 {
                too_many = true;
                return;
            }
            // An error: it exited meanwhile (ESRCH), or it is retried next round.
            if ckpt_sys::task::tgkill(pid, tid, STOP_SIGNAL).is_ok() {
                tids[nsig * 4..nsig * 4 + 4].copy_from_slice(&tid.to_ne_bytes());
                nsig += 1;
                new += 1;
                s.sent[0] += 1;
            }
        });
        if let Err(e) = listed {
            release(s);
            return Err(fail(e));
        }
        if too_many {
            release(s);
            return Err(Failure::new(
                "too many threads (ckpt records at most 4095 besides this one); not writing",
                Errno::E2BIG,
                path,
            ));
        }
        let stopped = STOPPED.load(Ordering::Acquire) as usize;
        s.n = stopped;
        // Done when every signalled thread is recorded or gone, and a listing
        // found nobody new.
        let is_missing = |s: &Stopped, t: i32| {
            !s.records().iter().any(|r| r.tid == t as u64) && ckpt_sys::task::tgkill(pid, t, 0) != Err(Errno::ESRCH)
        };
        let missing = (0..nsig).map(|i| tid_at(tids, i)).find(|&t| is_missing(&s, t));
        // A thread that has not stopped after 20 ms and blocks the stop signal
        // (but not the fallback one) gets the fallback signal.
        if missing.is_some() && now_ms() > started + 20 {
            for i in 0..nsig {
                let t = tid_at(tids, i);
                if fallback[i / 64] & (1 << (i % 64)) != 0 || !is_missing(&s, t) {
                    continue;
                }
                let blocked = blocked_signals(t);
                if blocked & (1 << (STOP_SIGNAL - 1)) == 0 || blocked & (1 << (FALLBACK_SIGNAL - 1)) != 0 {
                    continue;
                }
                if s.fallback_old.is_none() {
                    match install_fallback() {
                        Ok(old) => s.fallback_old = Some(old),
                        Err(_) => break,
                    }
                }
                let info = arch::queued_siginfo(FALLBACK_SIGNAL, pid, ckpt_sys::task::getuid(), FALLBACK_VALUE);
                if ckpt_sys::task::rt_tgsigqueueinfo(pid, t, FALLBACK_SIGNAL, &info).is_ok() {
                    s.sent[1] += 1;
                }
                fallback[i / 64] |= 1 << (i % 64);
            }
        }
        match missing {
            None if new == 0 => break,
            Some(t) if now_ms() > deadline => {
                let f = not_stopped(t, path);
                release(s);
                return Err(f);
            }
            _ => {}
        }
        let _ = futex_wait(&STOPPED, stopped as u32, 5);
    }
    OTHERS.store(s.n as u32, Ordering::Relaxed);
    LAST_STOP_US.store(now_us().saturating_sub(t0) as u32, Ordering::Relaxed);
    Ok(Some(s))
}

/// `/proc/self/task/TID/FILE` into `out`; the bytes read (0 on failure).
fn read_task_file(tid: i32, file: &str, out: &mut [u8]) -> usize {
    let m = Msg::new().s("/proc/self/task/").u(tid as u64).s(file);
    let mut p = [0u8; 64];
    let b = m.as_bytes();
    let n = b.len().min(63);
    p[..n].copy_from_slice(&b[..n]);
    let Ok(c) = core::ffi::CStr::from_bytes_until_nul(&p[..]) else { return 0 };
    ckpt_sys::read_file(c, out).unwrap_or(0)
}

/// The signals thread `tid` blocks (SigBlk of its status), 0 if unknown.
fn blocked_signals(tid: i32) -> u64 {
    let mut status = [0u8; 2048];
    let sn = read_task_file(tid, "/status", &mut status);
    ckpt_sys::num::field(&status[..sn], b"SigBlk:", 16).unwrap_or(0)
}

/// The failure for thread `tid`, which did not stop: its name, and whether it
/// blocks the stop signals (/proc/self/task/TID/status, SigBlk).
fn not_stopped(tid: i32, path: &[u8]) -> Failure {
    let mut comm = [0u8; 32];
    let cn = read_task_file(tid, "/comm", &mut comm);
    let both = (1 << (STOP_SIGNAL - 1)) | (1 << (FALLBACK_SIGNAL - 1));
    let blocked = blocked_signals(tid) & both == both;
    let name = comm[..cn].strip_suffix(b"\n").unwrap_or(&comm[..cn]);
    let why = if blocked { " blocks the stop signals (63 and 33)" } else { " did not stop within 2 s" };
    let m = Msg::new().s("thread ").u(tid as u64).s(" (").b(name).s(")").s(why).s("; not writing ").b(path);
    Failure::new("cannot stop every thread:", Errno::EAGAIN, m.as_bytes())
}

/// Let the stopped threads go on (the image is written, or failed).
pub fn release(s: Stopped) {
    ACTIVE.store(0, Ordering::Release);
    RELEASE.store(s.generation, Ordering::Release);
    let _ = futex_wake(&RELEASE);
    // Every thread signalled took the signal: put the program's own action back.
    // A thread that never took it (it blocks it) still has it pending; our
    // handler, left in place then, ignores it when it comes.
    if TOOK[0].load(Ordering::Acquire) >= s.sent[0] {
        // SAFETY: the action the program had installed itself.
        let _ = unsafe { ckpt_sys::rt_sigaction(STOP_SIGNAL, Some(&s.old_action), None) };
    }
    if let Some(old) = s.fallback_old
        && TOOK[1].load(Ordering::Acquire) >= s.sent[1]
    {
        // SAFETY: the action the C library had installed itself.
        let _ = unsafe { ckpt_sys::rt_sigaction(FALLBACK_SIGNAL, Some(&old), None) };
    }
    drop(s);
}

/// In a restarted process, on the coordinator once the process-wide state is
/// back: wait until every other thread the loader created has reached its save
/// point (they run loader code until then), so the loader can be unmapped.
pub fn wait_checked_in() {
    let want = OTHERS.load(Ordering::Acquire);
    let deadline = now_ms() + 10_000;
    loop {
        let v = CHECKED_IN.load(Ordering::Acquire);
        if v >= want {
            return;
        }
        if now_ms() > deadline {
            Msg::new()
                .s("ckpt: warning: after restart, only ")
                .u(v as u64)
                .s(" of ")
                .u(want as u64)
                .s(" threads came back")
                .emit();
            return;
        }
        let _ = futex_wait(&CHECKED_IN, v, 100);
    }
}

/// In a restarted process: let the other threads restore their own state and go on.
pub fn resume_all() {
    RESUME.store(1, Ordering::Release);
    let _ = futex_wake(&RESUME);
}

/// The coordinator's own record (registers added by the caller).
pub fn coordinator_record() -> Thread {
    Thread { flags: COORDINATOR, ..capture_thread() }
}

/// Process-wide signals the coordinator of a restarted process could not queue
/// back (it is not the thread-group leader), for the leader to queue.
struct Deferred(core::cell::UnsafeCell<core::mem::MaybeUninit<[PendingSignal; MAX_DEFERRED]>>);
// SAFETY: written only by the coordinator, slot by slot before it counts the
// slot in DEFERRED_N and before RESUME (Release); read only by the leader after
// it saw RESUME (Acquire), slots below DEFERRED_N.
unsafe impl Sync for Deferred {}
const MAX_DEFERRED: usize = 64;
static DEFERRED: Deferred = Deferred(core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()));
static DEFERRED_N: AtomicU32 = AtomicU32::new(0);

/// On the coordinator (not the leader), while the other threads are stopped or
/// before a restarted process resumes them: keep `p` for the leader to queue
/// when it goes on. False when the list is full.
pub fn defer_process_signal(p: &PendingSignal) -> bool {
    let n = DEFERRED_N.load(Ordering::Relaxed) as usize;
    if n >= MAX_DEFERRED {
        return false;
    }
    // SAFETY: see `Deferred`: slot `n` is the coordinator's until it is counted.
    unsafe { (*DEFERRED.0.get()).as_mut_ptr().cast::<PendingSignal>().add(n).write(*p) };
    DEFERRED_N.store(n as u32 + 1, Ordering::Release);
    true
}

/// A restarted process, before anything is deferred: the list in the image's
/// memory is the checkpointed process's, whose signals the image has anyway.
pub fn forget_deferred() {
    DEFERRED_N.store(0, Ordering::Release);
}

/// On the leader, released (after RESUME in a restarted process, after the
/// release in the process that goes on): queue what the coordinator deferred,
/// in order.
fn queue_deferred() {
    let n = DEFERRED_N.swap(0, Ordering::AcqRel) as usize;
    // SAFETY: see `Deferred`: the first `n` slots were written before RESUME.
    let sigs = unsafe { core::slice::from_raw_parts((*DEFERRED.0.get()).as_ptr().cast::<PendingSignal>(), n) };
    let failed = sigs.iter().filter(|p| crate::capture::process::queue(p).is_err()).count();
    if failed > 0 {
        Msg::new()
            .s("ckpt: warning: after restart, could not queue ")
            .u(failed as u64)
            .s(" process-wide pending signals back")
            .emit();
    }
}

/// Sessions begun so far (stops of the other threads), in this process and,
/// through the image, its ancestors.
pub fn sessions() -> u32 {
    GEN.load(Ordering::Acquire)
}

/// CLOCK_MONOTONIC (ns) when the last session began.
pub fn last_stop_at() -> u64 {
    STOP_AT.load(Ordering::Acquire)
}

/// Threads other than the coordinator in the last image (0: single-threaded).
pub fn others() -> u32 {
    OTHERS.load(Ordering::Acquire)
}

/// A single-threaded checkpoint: no other thread in the image.
pub fn none() {
    OTHERS.store(0, Ordering::Relaxed);
}
