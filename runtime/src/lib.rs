//! The ckpt runtime: lives inside the program (preloaded as `libckpt.so`, or linked
//! from `libckpt.a`) and writes checkpoints.
//!
//! - `capi`: the load-time constructor and the C API (`ckpt.h`).
//! - `config`: CKPT_* settings, read once at load.
//! - `preload`: keeps the runtime to the program (through its execs), not its children.
//! - `signal`: the asynchronous triggers (a signal, SIGTSTP by default, and the
//!   periodic timer).
//! - `hooks`: the program's pre-checkpoint, post-checkpoint and restart hooks.
//! - `capture`: kernel state that memory does not carry, captured before the image
//!   is written and restored after a restart.
//! - `write`: the checkpoint file itself.
//! - `dir`: directory mode (`CKPT_DIR`): numbered images, the `current` pointer.
//! - `notice`: the line printed after each checkpoint; the deadline.
//! - `exit`: a warning when the program exits with the checkpoint status itself.
//! - `names`: the program's and libraries' names, kept across restarts.
//! - `writer`: continue mode's copy-on-write background writer.
//! - `tree`: tree mode, the program and its descendants in one image.
//! - `arch`: the save point, the thread pointer, rseq (one file per architecture).
//! - `state`: the single global, serialised.
//!
//! The checkpoint path runs inside a signal handler at any instruction of the
//! program: it uses raw syscalls only (no malloc, no stdio, no locks, no errno).
//! Memory comes from `mmap`, diagnostics from `ckpt_sys::msg`.
#![no_std]
#![deny(unsafe_code)]
// `Failure` carries the file name inline (there is no allocator to box it in) and
// travels only up the few frames of a failed checkpoint: its size is the point.
#![allow(clippy::result_large_err)]

mod arch;
mod capi;
mod capture;
mod config;
mod dir;
mod exit;
mod failure;
mod hooks;
mod incremental;
mod lazy;
mod libc;
mod names;
mod notice;
mod preload;
mod request;
mod signal;
mod sleep;
mod state;
mod threads;
mod track;
mod tree;
mod write;
mod writer;

use ckpt_sys::{Errno, c};

use crate::arch::Saved;
use crate::config::{Config, Path};
use crate::failure::Failure;
use crate::write::Job;

/// What a checkpoint request came to.
pub enum Outcome {
    /// The image is written (or, from a background writer, being written); `exit`
    /// if the program should now end.
    Written {
        /// Not continuing: the program ends with the checkpoint exit status.
        exit: bool,
    },
    /// This is the restarted process, returning from the checkpoint call.
    Restarted,
}

/// Who asked for a checkpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The program, through the C API: synchronous, the result is reported back.
    Call,
    /// The trigger signal: the program goes on (continue mode, from a background
    /// writer) or exits once the image is written.
    Signal,
    /// The periodic timer: always continues, from a background writer.
    Periodic,
}

/// Load-time set-up: read the configuration and install the triggers.
pub fn init() {
    let (env, env_len) = match ckpt_sys::scratch::read_whole(c"/proc/self/environ") {
        Ok(v) => v,
        Err(_) => return,
    };
    let argv = ckpt_sys::scratch::read_whole(c"/proc/self/cmdline").ok();
    let argv0 = argv.as_ref().map_or(&b""[..], |(b, n)| {
        let a = &b.as_slice()[..*n];
        a.split(|&c| c == 0).next().unwrap_or(b"")
    });
    let cfg = Config::from_env(&env.as_slice()[..env_len], argv0);
    state::with(|st| {
        st.cfg = cfg;
        st.names.at_load();
    });
    capture::files::TREE.store(cfg.tree, core::sync::atomic::Ordering::Relaxed);
    if signal::other_runtime_active(cfg.signal) {
        // Another copy of the runtime (preloaded, while this one is linked in)
        // already handles the trigger: it is the one; this copy only serves the
        // program's own calls.
        return;
    }
    if cfg.tree && tree::is_member(&cfg) {
        // A descendant in tree mode: the root's periodic checkpoints cover it.
        state::with(|st| st.cfg.interval = 0);
    }
    let cfg = config();
    if preload::settle(cfg.inherit || cfg.tree, cfg.starter) == preload::Role::Passive {
        // A child of the program (see `preload`): no triggers; the C API still
        // answers, as in any process the runtime is loaded into.
        state::with(|st| {
            st.cfg.set_signal(0);
            st.cfg.interval = 0;
        });
        return;
    }
    if let Err(e) = signal::arm(&cfg, None) {
        ckpt_sys::msg::Msg::new().s("ckpt: cannot install the checkpoint trigger: ").errno(e).emit();
    }
    exit::watch();
    lazy::watch();
}

/// Set-up in a process `ckpt hijack` put the runtime into (see docs/hijack.md):
/// the settings come as `settings` (the `CKPT_*` variables `ckpt` would have set,
/// NUL-separated), not from the environment, which is the program's own. What the
/// load-time set-up does for a preload is left out: there is no `LD_PRELOAD` entry
/// to keep or remove and no C library symbol to look up (the runtime came in as a
/// blob, its weak references are null). 0, or the errno of what failed.
pub fn init_hijacked(settings: &[u8]) -> u16 {
    let argv = ckpt_sys::scratch::read_whole(c"/proc/self/cmdline").ok();
    let argv0 = argv.as_ref().map_or(&b""[..], |(b, n)| {
        let a = &b.as_slice()[..*n];
        a.split(|&c| c == 0).next().unwrap_or(b"")
    });
    let cfg = Config::from_env(settings, argv0);
    for kv in settings.split(|&b| b == 0) {
        if kv == b"CKPT_ONSTACK=1" {
            signal::ONSTACK.store(true, core::sync::atomic::Ordering::Relaxed);
        }
        // CKPT_RSEQ=OFFSET,SIZE: glibc's rseq area, from the thread pointer.
        if let Some(off) = kv.strip_prefix(b"CKPT_RSEQ=").and_then(|v| v.split(|&b| b == b',').next()) {
            let off = ckpt_sys::num::signed(off).unwrap_or(0) as isize;
            arch::RSEQ_TOLD.store(off, core::sync::atomic::Ordering::Relaxed);
        }
    }
    if signal::other_runtime_active(cfg.signal) {
        return Errno::EEXIST.0;
    }
    if state::with(|st| {
        st.cfg = cfg;
        st.names.at_load();
    })
    .is_none()
    {
        return Errno::EBUSY.0;
    }
    match signal::arm(&cfg, None) {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// The configuration in force (the default while a checkpoint holds the state,
/// which cannot happen in a signal handler: signals are blocked meanwhile).
pub fn config() -> Config {
    config_if_idle().unwrap_or(Config::DEFAULT)
}

/// The configuration, or `None` while a checkpoint holds it (in another thread).
pub fn config_if_idle() -> Option<Config> {
    state::with(|st| st.cfg)
}

/// Take a checkpoint now, into `name` or the configured file, on the runtime's
/// own stack (see `arch::on_checkpoint_stack`).
pub fn checkpoint(name: Option<&[u8]>, trigger: Trigger) -> Result<Outcome, Failure> {
    arch::on_checkpoint_stack(|| checkpoint_here(name, trigger, false, None))
}

/// Take the checkpoint `ckpt checkpoint` asked for with the request on
/// descriptor `fd` of process `pid` (see `request`), answering it.
pub fn checkpoint_requested(pid: i32, fd: u16) -> Result<Outcome, Failure> {
    arch::on_checkpoint_stack(|| checkpoint_here(None, Trigger::Signal, false, Some((pid, fd))))
}

/// A tree member's image, into the root's temporary file `path` (see `tree`):
/// synchronous, the member goes on (or exits when the root says so).
pub fn checkpoint_member(path: &Path) -> Result<Outcome, Failure> {
    arch::on_checkpoint_stack(|| checkpoint_here(Some(path.as_bytes()), Trigger::Call, true, None))
}

fn checkpoint_here(
    name: Option<&[u8]>,
    trigger: Trigger,
    member: bool,
    asked: Option<(i32, u16)>,
) -> Result<Outcome, Failure> {
    // Nothing else may run while the image is taken: block every signal.
    let (all, mut old) = (!0u64, 0u64);
    ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&all), Some(&mut old))
        .map_err(|e| Failure::bare("blocking signals", e))?;
    let req = match asked.map(|(pid, fd)| request::Request::read(pid, fd)) {
        Some(Ok(r)) => r,
        Some(Err(f)) => {
            let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&old), None);
            return Err(f);
        }
        None => request::Request::NONE,
    };
    req.accepted();
    let pending = ckpt_sys::rt_sigpending().unwrap_or(!0);
    // After a lazy restart, every page must be in before memory is read.
    lazy::settle();
    let r = state::with(|st| {
        // A forked process checkpoints under a name of its own.
        signal::adopt(&mut st.cfg);
        // The previous background writer first: images are renamed into place in
        // the order they were taken, and snapshots do not pile up.
        writer::wait_idle();
        hooks::PRE.run(false);
        st.req = req;
        let asked_name = req.name().and_then(Path::new);
        let name = asked_name.as_ref().map(Path::as_bytes).or(name);
        let r = take(st, name, trigger, member);
        if let Err(f) = &r {
            st.req.fail(f);
        }
        // Answered (a background writer answers from its own copy); in the
        // restarted process, the request was the old process's.
        st.req = request::Request::NONE;
        match r {
            Ok(Outcome::Written { exit: false }) => hooks::POST.run(false),
            Ok(Outcome::Written { exit: true }) => st.kernel.files.abort_connections(),
            Ok(Outcome::Restarted) => {
                writer::forget_after_restart();
                track::forget_after_restart();
                signal::forget_timer();
                if let Err(e) = signal::arm_here(&st.cfg) {
                    ckpt_sys::msg::Msg::new()
                        .s("ckpt: warning: after restart, could not re-arm the checkpoint trigger: ")
                        .errno(e)
                        .emit();
                }
                trace("checkpoint trigger armed again; running the program's restart hooks");
                hooks::RESTART.run(true);
            }
            _ => {}
        }
        r
    })
    .unwrap_or_else(|| {
        let f = Failure::busy();
        req.fail(&f);
        Err(f)
    });
    if !matches!(r, Ok(Outcome::Restarted)) {
        // Writing past RLIMIT_FSIZE fails with EFBIG and also raises SIGXFSZ,
        // whose default action would kill the program we just promised to keep
        // running: a SIGXFSZ that our write raised is ours to drop.
        let xfsz = 1u64 << (c::SIGXFSZ - 1);
        if pending & xfsz == 0 {
            let _ = ckpt_sys::take_pending(xfsz);
        }
    }
    // Last, in the restarted process too (`old` is on the restored stack).
    let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&old), None);
    if matches!(r, Ok(Outcome::Restarted)) {
        trace("signal mask restored; the program continues");
    }
    r
}

fn take(st: &mut state::State, name: Option<&[u8]>, trigger: Trigger, member: bool) -> Result<Outcome, Failure> {
    let path = match name {
        Some(n) => Path::new(n).ok_or(Failure::new("invalid checkpoint file name", Errno::EINVAL, n))?,
        None => st.cfg.name,
    };
    // Directory mode: the next numbered image in the directory (the number is
    // kept in this memory before the image is taken, so the image carries it).
    let (path, seq) = if st.cfg.dir && name.is_none() && !member {
        let (p, seq) = dir::next(&path, st.seq)?;
        st.seq = seq;
        (p, seq)
    } else {
        (path, 0)
    };
    // Tree mode, in the root: every descendant stops and writes its image first
    // (see `tree`); the root's own image then carries the TREE section.
    let mut session = None;
    if st.cfg.tree && !member && !tree::is_member(&st.cfg) {
        let s = tree::freeze(ckpt_sys::getpid()).map_err(|f| f.for_path(path.as_bytes()))?;
        if tree::members(s).len() > 1 {
            tree::capture(s, &path).map_err(|f| f.for_path(path.as_bytes()))?;
            st.kernel.tree = tree::section(s);
            session = Some(s);
        } else {
            tree::release(s, false);
        }
    }
    // Every other thread stops (in the stop handler, its state recorded) for as
    // long as the image is taken: in this process, or until the writer is forked.
    let stopped = match threads::stop_all(path.as_bytes(), signal::our_signals(&st.cfg)) {
        Ok(s) => s,
        Err(f) => {
            if let Some(s) = session {
                tree::release(s, false);
            }
            st.kernel.tree = capture::TreeSection::EMPTY;
            return Err(f);
        }
    };
    if stopped.is_some() && st.cfg.timing {
        threads::report_stop();
    }
    let target = Target { member, tree: session.as_deref() };
    let r = take_stopped(st, &path, seq, trigger, stopped.as_ref(), &target);
    st.kernel.threads = capture::ThreadsSection::EMPTY;
    st.kernel.tree = capture::TreeSection::EMPTY;
    if let Some(s) = session {
        match r {
            Ok(Outcome::Restarted) => tree::forget(),
            Ok(Outcome::Written { exit }) => tree::release(s, exit),
            Err(_) => tree::release(s, false),
        }
    }
    match (r.as_ref(), stopped) {
        // The session's table belongs to the old process (it is not in the image).
        (Ok(Outcome::Restarted), Some(s)) => core::mem::forget(s),
        // The program ends now: its threads stay where they are.
        (Ok(Outcome::Written { exit: true }), Some(s)) => core::mem::forget(s),
        (_, Some(s)) => threads::release(s),
        (_, None) => {}
    }
    r
}

/// Where an image goes besides its path: a tree member writes into the root's
/// file; the root of a tree appends its members' images.
struct Target<'a> {
    member: bool,
    tree: Option<&'a tree::Session>,
}

fn take_stopped(
    st: &mut state::State,
    path: &Path,
    seq: u64,
    trigger: Trigger,
    stopped: Option<&threads::Stopped>,
    target: &Target,
) -> Result<Outcome, Failure> {
    if let Some(f) = capture::maps::unsaveable() {
        return Err(f.for_path(path.as_bytes()));
    }
    st.kernel.capture(signal::our_signals(&st.cfg)).map_err(|f| f.for_path(path.as_bytes()))?;
    let mut exclude = (0, 0);
    match stopped {
        Some(s) => {
            st.kernel.signals.set_action(threads::STOP_SIGNAL, s.old_action);
            if let Some(old) = s.fallback_old {
                st.kernel.signals.set_action(threads::FALLBACK_SIGNAL, old);
            }
            let me = threads::coordinator_record();
            let leader = st.kernel.pid as u64;
            if me.tid != leader && !s.records().iter().any(|t| t.tid == leader) {
                return Err(Failure::new(
                    "the main thread has exited (pthread_exit from main); not writing",
                    Errno::EOPNOTSUPP,
                    path.as_bytes(),
                ));
            }
            if s.n == 0 {
                // Every other thread ended between the count and the stop (a
                // program that starts and joins threads): the image is of a
                // single-threaded process, without a THREADS section (one of a
                // single thread would be refused as damaged).
                threads::none();
            } else {
                st.kernel.threads = capture::ThreadsSection { me, others: (s.records().as_ptr() as usize, s.n) };
            }
            exclude = s.range();
        }
        None => threads::none(),
    }
    // A tree is written by its root from this process: its members are stopped
    // until the file is durable, continue mode or not.
    let tree = target.member || target.tree.is_some();
    // `ckpt checkpoint -c` continues this once, whatever the setting.
    let cont = st.cfg.cont || st.req.cont;
    match trigger {
        Trigger::Signal if cont && !tree => take_background(st, path, seq, exclude),
        Trigger::Periodic if !tree => take_background(st, path, seq, exclude),
        Trigger::Periodic => take_here(st, path, seq, false, exclude, target),
        Trigger::Call | Trigger::Signal => take_here(st, path, seq, !cont && !target.member, exclude, target),
    }
}

/// The image `path` (number `seq` in directory mode, else 0) of `bytes` is
/// durable: publish it in its directory and say so (also to `ckpt checkpoint`).
fn written(cfg: &Config, req: &request::Request, path: &Path, seq: u64, bytes: u64) {
    if seq != 0 {
        dir::publish(&cfg.name, seq, cfg.keep);
    }
    notice::written(cfg, path.as_bytes(), seq, bytes);
    req.ok(path.as_bytes(), bytes);
}

/// Write the image from this process, below the save point; `exit` goes into
/// the outcome (not continuing: the program ends once the file is written).
fn take_here(
    st: &mut state::State,
    path: &Path,
    seq: u64,
    exit: bool,
    table: (u64, u64),
    target: &Target,
) -> Result<Outcome, Failure> {
    let mut job = if target.member { Job::on_file(path)? } else { Job::create(path)? };
    // A tree's images are not compressed yet: the root's loader reads the
    // memory the processes share straight from their saved runs (docs/trees.md).
    job.compress = st.cfg.compress && !st.cfg.tree;
    let (kernel, names) = (&st.kernel, &st.names);
    let saved = arch::save_context(&mut || match job.write(kernel, names, &[table], None, None) {
        Ok(()) => 0,
        Err(f) => {
            job.failed = Some(f);
            -1
        }
    });
    if let (Ok(Saved::Wrote(0)), Some(s)) = (&saved, target.tree)
        && let Err(f) = job.append_tree(s)
    {
        job.abort();
        return Err(f);
    }
    match saved {
        Ok(Saved::Wrote(0)) => job.commit().map(|bytes| {
            if !target.member {
                written(&st.cfg, &st.req, path, seq, bytes);
            }
            Outcome::Written { exit }
        }),
        Ok(Saved::Wrote(_)) => {
            let f = job.failed.unwrap_or(Failure::bare("writing", Errno::EIO));
            job.abort();
            Err(f)
        }
        Err(e) => {
            job.abort();
            Err(Failure::bare("saving registers", e))
        }
        Ok(Saved::Restarted(info)) => {
            // The job's descriptor and buffers belong to the old process.
            core::mem::forget(job);
            restored(st, &info);
            Ok(Outcome::Restarted)
        }
    }
}

/// Have a background writer (see `writer`) write the image of this moment, and
/// return at once. The writer creates the temporary file itself, so the pid in
/// its name is the writer's: a writer killed half-way is recognised as dead, and
/// its file removed, by the next checkpoint of that name. Its failures are
/// reported on stderr by the writer; the program goes on either way.
fn take_background(st: &mut state::State, path: &Path, seq: u64, table: (u64, u64)) -> Result<Outcome, Failure> {
    let (kernel, cfg, names, req) = (&st.kernel, &st.cfg, &st.names, &st.req);
    // Incremental images: what to write against, and the buffer the scan at the
    // fork fills (runtime scratch, left out of the image; see `track`).
    let last = writer::report();
    let mut plan = track::plan(cfg, last);
    let scan = match plan.map(|_| track::buffer()) {
        Some(Ok(b)) => Some(core::cell::RefCell::new(b)),
        Some(Err(_)) => {
            track::disarm();
            plan = None;
            None
        }
        None => None,
    };
    let scan_range = scan.as_ref().map_or((0, 0), |b| b.borrow().range());
    // Shared memory as it is now (every thread is stopped): the program changes
    // it while the writer runs.
    let shared = writer::Snapshot::take(&[writer::scratch_ranges(), table, scan_range])
        .map_err(|e| Failure::new("copying shared memory for", e, path.as_bytes()))?;
    let shared_range = shared.as_ref().map_or((0, 0), |s| s.range());
    let mut before = || {
        if let (Some(p), Some(b)) = (&plan, &scan) {
            track::at_fork(p, b.borrow_mut().bytes());
        }
    };
    let mut failed = Errno::EIO;
    let saved = arch::save_context(&mut || {
        let mut write = |stack: (u64, u64)| {
            req.writer();
            let r = Job::create(path).and_then(|mut job| {
                job.compress = cfg.compress && plan.is_none();
                let guard = scan.as_ref().map(|b| b.borrow());
                let chain = match (plan, guard.as_deref()) {
                    (Some(p), Some(b)) => {
                        job.also = Some(job.sibling(p.seq)?);
                        Some(incremental::Chain { plan: p, scan: b.as_slice(), last })
                    }
                    _ => None,
                };
                let exclude = [stack, writer::scratch_ranges(), table, scan_range, shared_range];
                match job.write(kernel, names, &exclude, chain.as_ref(), shared.as_ref()) {
                    Ok(()) => job.commit().map(|bytes| {
                        if let Some(ch) = &chain {
                            job.report(ch, kernel.pid);
                        }
                        written(cfg, req, path, seq, bytes)
                    }),
                    Err(f) => {
                        job.abort();
                        Err(f)
                    }
                }
            });
            writer::done();
            match r {
                Ok(()) => ckpt_sys::exit_group(0),
                Err(f) => {
                    f.report();
                    req.fail(&f);
                    ckpt_sys::exit_group(1)
                }
            }
        };
        match writer::spawn(&mut write, &mut before) {
            Ok(()) => 0,
            Err(e) => {
                failed = e;
                -1
            }
        }
    });
    match saved {
        Ok(Saved::Wrote(0)) => Ok(Outcome::Written { exit: false }),
        Ok(Saved::Wrote(_)) => Err(Failure::new("starting the writer of", failed, path.as_bytes())),
        Err(e) => Err(Failure::bare("saving registers", e)),
        Ok(Saved::Restarted(info)) => {
            // The copy was the old process's (not in the image): nothing to unmap.
            core::mem::forget(shared);
            restored(st, &info);
            Ok(Outcome::Restarted)
        }
    }
}

/// First steps of the restarted process, back at the save point: the kernel
/// state, from the runtime's memory and from the image's sections (which live in
/// the loader's home block), then the home block goes.
fn restored(st: &mut state::State, info: &ckpt_image::RestartInfo) {
    ckpt_sys::trace::enable(info.flags & ckpt_image::RestartInfo::TRACE != 0);
    trace("back at the save point in the restarted process");
    // The other threads run loader code until they reach their save points;
    // they all exist once they have, which the restore needs (a coordinator
    // that is not the leader runs while the loader still creates threads, and a
    // timer that signals one of them cannot be re-created before it exists).
    let others = threads::others() != 0;
    if others {
        threads::wait_checked_in();
    }
    st.kernel.restore(&arch::restart_sections(info));
    arch::unmap_loader(info);
    lazy::after_restart(info.lazy_status);
    trace("the loader's home block unmapped");
    st.names.after_restart(write::LOADER.len());
    if st.cfg.starter != 0 {
        st.cfg.starter = preload::restarted();
    }
    if others {
        threads::resume_all();
    }
    if st.cfg.timing && info.started_ns != 0 {
        threads::report_restart(info.started_ns);
    }
}

/// The end of a path that cannot happen (no panics in the runtime: no core::fmt).
fn panic_free_abort() -> ! {
    ckpt_sys::msg::Msg::new().s("ckpt: internal error (impossible state)").emit();
    ckpt_sys::exit_group(127)
}

/// One step of the restored path, on stderr when the restart was run with
/// `CKPT_DEBUG=1` (`ckpt_sys::trace`).
pub fn trace(step: &str) {
    ckpt_sys::trace::step("ckpt: ", step);
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    ckpt_sys::msg::Msg::new().s("ckpt: internal error (runtime panic)").emit();
    ckpt_sys::exit_group(127)
}
