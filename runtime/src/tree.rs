//! Tree mode (`ckpt --tree`, `CKPT_TREE=1`, docs/trees.md): one trigger
//! checkpoints the program and every descendant into one file.
//!
//! Every process of the tree runs the runtime (`LD_PRELOAD` is kept for all of
//! them). The **root** (the process `ckpt` started, `CKPT_PID`) coordinates; every
//! other process (a **member**) captures itself when asked. They talk with one
//! real-time signal, [`SIGNAL`] (62, SIGRTMAX-2), queued with `rt_sigqueueinfo`
//! and a value that says what it means ([`Cmd`]); each side takes the other's
//! signals off its queue with `rt_sigtimedwait` while it runs inside its handler
//! with every signal blocked, and checks that the sender is who it must be.
//!
//! 1. **Freeze.** The root lists its descendants (/proc/PID/stat of every
//!    process: parent, group, session, state, caught signals, exit code) and asks
//!    each one to freeze; a member answers from its handler and waits there. The
//!    root lists again until no new descendant appears (one forked meanwhile is
//!    caught: its parent is frozen now). A descendant whose signal 62 is not
//!    caught does not run the runtime (a static program, or one started without
//!    `LD_PRELOAD`): the checkpoint fails and names it. A zombie is recorded with
//!    its wait status.
//! 2. **Capture.** For each member the root creates a temporary file next to the
//!    image (`.NAME.tmp.ROOTPID.N`, which a later checkpoint removes if the root
//!    died) and tells the member its descriptor number; the member opens it
//!    through `/proc/ROOT/fd/N` and writes its own complete image into it, exactly
//!    as a single process would (its threads stopped, its descriptors recorded).
//! 3. **Root.** The root writes its own image with the TREE section, appends each
//!    member's image after it, syncs and renames: all or nothing.
//! 4. **Release.** Each member exits with the checkpoint status or goes on (`-c`);
//!    after a failure, every member goes on and the root reports the failure.
//!
//! A member that gets a trigger (the terminal's Ctrl-Z reaches the whole
//! foreground group) passes it to the root, which checkpoints the tree once.
//!
//! # Safety
//! None here: `rt_sigqueueinfo`, `rt_sigtimedwait` and file calls through typed
//! wrappers.

use ckpt_image::tree::{Member, ROOT, SharedFd, ZOMBIE};
use ckpt_image::{PAGE_SIZE, page_up};
use ckpt_sys::msg::Msg;
use ckpt_sys::scratch::Scratch;
use ckpt_sys::{AtFlags, Errno, Fd, c};

use crate::config::{Config, Path};
use crate::failure::Failure;
use crate::write::CPath;

/// The signal the root and the members talk with (SIGRTMAX-2).
pub const SIGNAL: u32 = 62;
/// Most processes in a tree this runtime checkpoints (the root included).
pub const MAX: usize = 256;
/// How long a descendant may take to answer the freeze.
const FREEZE_MS: u64 = 2000;
/// How long a member may take to write its image (it is as long as its memory).
const CAPTURE_MS: u64 = 600_000;

/// What a tree signal says (bits 23..25 of the value; bits 26..31 are [`TAG`],
/// bits 0..22 the argument: a thread id, or a descriptor number for
/// [`Cmd::Capture`]).
///
/// Every word but the first goes to one thread (`rt_tgsigqueueinfo`): the
/// thread of the other side that handles the exchange. A word queued to the
/// whole process would go to any thread that does not block the signal, and in
/// a multi-threaded process another thread's handler would take it (python's
/// `multiprocessing.Pool` has three threads in the root). So the root's Freeze
/// names the root's thread (its argument), each member's Frozen names the
/// member's, and the rest goes to those two threads only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// Root to member (to the process): stop and wait in the handler; the
    /// argument is the root's thread to answer.
    Freeze = 1,
    /// Root to member: write your image into the root's descriptor N.
    Capture = 2,
    /// Root to member: the tree image is durable; exit with the checkpoint status.
    Exit = 3,
    /// Root to member: go on (continue mode, or the checkpoint failed).
    Go = 4,
    /// Member to root: frozen; the argument is the member's thread that waits.
    Frozen = 5,
    /// Member to root: image written.
    Captured = 6,
    /// Member to root: the image could not be written (the member said why).
    Failed = 7,
}

const TAG: usize = 0x31;

/// The largest argument (a thread id: the kernel's pid_max is at most 2^22).
const ARG_MASK: usize = (1 << 23) - 1;

fn value(cmd: Cmd, arg: u32) -> usize {
    (TAG << 26) | ((cmd as usize) << 23) | (arg as usize & ARG_MASK)
}

fn decode(v: usize) -> Option<(Cmd, u32)> {
    if (v >> 26) & 0x3f != TAG {
        return None;
    }
    let cmd = match (v >> 23) & 0x7 {
        1 => Cmd::Freeze,
        2 => Cmd::Capture,
        3 => Cmd::Exit,
        4 => Cmd::Go,
        5 => Cmd::Frozen,
        6 => Cmd::Captured,
        7 => Cmd::Failed,
        _ => return None,
    };
    Some((cmd, (v & ARG_MASK) as u32))
}

/// Queue `cmd` to thread `tid` of process `pid` (`tid` 0: to the process).
fn send(pid: i32, tid: i32, cmd: Cmd, arg: u32) -> Result<(), Errno> {
    let info = crate::arch::queued_siginfo(SIGNAL, ckpt_sys::getpid(), ckpt_sys::task::getuid(), value(cmd, arg));
    match tid {
        0 => ckpt_sys::settings::rt_sigqueueinfo(pid, SIGNAL, &info),
        _ => ckpt_sys::settings::rt_tgsigqueueinfo(pid, tid, SIGNAL, &info),
    }
}

/// Take one tree signal off this process's queue: (sender, command, argument).
/// Signals that are not ours (another value, another code) are dropped.
fn take() -> Option<(i32, Cmd, u32)> {
    let mut info = [0u8; 128];
    let bit = 1u64 << (SIGNAL - 1);
    while ckpt_sys::settings::rt_sigtimedwait(bit, Some(&mut info)).is_ok() {
        let (code, pid, v) = crate::arch::siginfo_code_pid_value(&info);
        if code != c::SI_QUEUE {
            continue;
        }
        if let Some((cmd, arg)) = decode(v) {
            return Some((pid, cmd, arg));
        }
    }
    None
}

/// Sleep a millisecond (a futex wait on a word nobody wakes).
fn nap() {
    let w = core::sync::atomic::AtomicU32::new(0);
    let _ = ckpt_sys::task::futex_wait(&w, 0, 1);
}

/// Is `cmd` queued for this process by the tree's root? `Some(cmd, arg)` when
/// the root sent one of `want`; `None` when the root is gone.
fn wait_root(root: i32, want: &[Cmd]) -> Option<(Cmd, u32)> {
    loop {
        while let Some((pid, cmd, arg)) = take() {
            if pid == root && want.contains(&cmd) {
                return Some((cmd, arg));
            }
        }
        if ckpt_sys::kill(root, 0) == Err(Errno::ESRCH) {
            return None;
        }
        nap();
    }
}

// ---------------------------------------------------------------------------
// The member side
// ---------------------------------------------------------------------------

/// The tree's root, as this process's runtime knows it (`CKPT_PID`).
pub fn root(cfg: &Config) -> i32 {
    cfg.starter
}

/// Is this process a member (a descendant of the root, in tree mode)?
pub fn is_member(cfg: &Config) -> bool {
    cfg.tree && cfg.starter != 0 && cfg.starter != ckpt_sys::getpid()
}

/// In a member's handler for [`SIGNAL`] (every signal blocked): answer the
/// root's freeze, write the image when asked, then exit or go on as the root
/// says. `Ok(true)`: this is the restarted process (the image was restored).
pub fn member(cfg: &Config, first: &[u8; 128]) -> bool {
    let root = root(cfg);
    // The freeze that brought us here (`first`, the handler's siginfo). What is
    // queued behind it is left there: the root's next word (a `Go` that ends a
    // failed freeze may already be waiting).
    let (code, pid, v) = crate::arch::siginfo_code_pid_value(first);
    let Some((Cmd::Freeze, to)) = decode(v).filter(|_| code == c::SI_QUEUE && pid == root) else { return false };
    let to = to as i32;
    if send(root, to, Cmd::Frozen, ckpt_sys::gettid() as u32).is_err() {
        return false;
    }
    let Some((Cmd::Capture, fd)) = wait_root(root, &[Cmd::Capture, Cmd::Go]) else { return false };
    let m = Msg::new().s("/proc/").u(root as u64).s("/fd/").u(fd as u64);
    let Some(path) = Path::new(m.as_bytes()) else { return false };
    match crate::checkpoint_member(&path) {
        Ok(crate::Outcome::Restarted) => return true,
        Ok(_) => {
            let _ = send(root, to, Cmd::Captured, 0);
        }
        Err(f) => {
            f.report();
            let _ = send(root, to, Cmd::Failed, 0);
        }
    }
    match wait_root(root, &[Cmd::Exit, Cmd::Go]) {
        Some((Cmd::Exit, _)) => ckpt_sys::exit_group(cfg.exit_status as i32),
        _ => false,
    }
}

/// A trigger reached a member (the terminal's Ctrl-Z goes to the whole
/// foreground group): the root answers it for the whole tree.
pub fn pass_to_root(cfg: &Config, sig: u32) {
    let _ = ckpt_sys::kill(root(cfg), sig);
}

// ---------------------------------------------------------------------------
// The root side
// ---------------------------------------------------------------------------

/// One process found in /proc.
#[derive(Clone, Copy, Default)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgid: i32,
    sid: i32,
    state: u8,
    caught: u64,
    exit_code: u32,
    comm: [u8; 16],
}

/// The root's session: the members it froze, and their image files.
pub struct Session {
    members: [Member; MAX],
    comm: [[u8; 16]; MAX],
    /// The temporary file of each member's image while the member writes it
    /// (-1: none; closed before the root captures its own descriptors).
    fds: [i32; MAX],
    /// Each member has an image file (`tmp_name`).
    has_file: [bool; MAX],
    /// The thread of each member that answered the freeze and waits for the
    /// root's words (0: none yet; the words then go to the process).
    tids: [i32; MAX],
    n: usize,
    /// The tree image's name (the temporary files are next to it).
    path: Path,
    /// The members' images' total length, each padded to a page.
    pub bytes: u64,
    /// Descriptors of different members that share one open file description
    /// of a regular file (`shared_files`), for the TREE section.
    shared: [SharedFd; MAX_SHARED],
    nshared: usize,
}

/// Most shared descriptors recorded (more are said, and each gets its own offset).
const MAX_SHARED: usize = 1024;

/// Where the session lives: static memory of the runtime (one checkpoint at a
/// time; the state lock serialises them). Too large for the checkpoint stack.
struct Slot(core::cell::UnsafeCell<Session>);
// SAFETY: used only under the runtime's state lock (`state::with`).
#[allow(unsafe_code)]
unsafe impl Sync for Slot {}
static SESSION: Slot = Slot(core::cell::UnsafeCell::new(Session {
    members: [Member { pid: 0, ppid: 0, pgid: 0, sid: 0, flags: 0, status: 0, offset: 0, len: 0, reserved: 0 }; MAX],
    comm: [[0; 16]; MAX],
    fds: [-1; MAX],
    has_file: [false; MAX],
    tids: [0; MAX],
    n: 0,
    path: Path::EMPTY,
    bytes: 0,
    shared: [SharedFd { member: 0, fd: 0, group: 0, reserved: 0 }; MAX_SHARED],
    nshared: 0,
}));

/// The session (the caller holds the runtime's state lock).
#[allow(unsafe_code)]
fn session() -> &'static mut Session {
    // SAFETY: only the checkpointing thread of the root, under the state lock,
    // reaches this; no other reference lives across calls.
    unsafe { &mut *SESSION.0.get() }
}

/// /proc/PID/stat of `pid`.
fn stat(pid: i32) -> Option<Proc> {
    let m = Msg::new().s("/proc/").u(pid as u64).s("/stat");
    let p = CPath::from_parts(&[m.as_bytes()])?;
    let mut buf = [0u8; 1024];
    let n = ckpt_sys::read_file(p.cstr(), &mut buf).ok()?;
    let b = &buf[..n];
    let open = b.iter().position(|&c| c == b'(')?;
    let close = b.iter().rposition(|&c| c == b')')?;
    let mut comm = [0u8; 16];
    let name = &b[open + 1..close];
    comm[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
    let mut f = b.get(close + 2..)?.split(|&c| c == b' ' || c == b'\n');
    // Fields from 3 on: state ppid pgrp session ... sigcatch (34) ... exit_code (52).
    let mut field = |k: usize| -> Option<&[u8]> { f.nth(k) };
    let state = *field(0)?.first()?;
    let ppid = ckpt_sys::num::signed(field(0)?)? as i32;
    let pgid = ckpt_sys::num::signed(field(0)?)? as i32;
    let sid = ckpt_sys::num::signed(field(0)?)? as i32;
    let exit_code = field(52 - 7).and_then(ckpt_sys::num::signed).unwrap_or(0) as u32;
    // stat's sigcatch leaves out the real-time signals: status has them all.
    let caught = if matches!(state, b'Z' | b'X') { 0 } else { caught(pid).unwrap_or(0) };
    Some(Proc { pid, ppid, pgid, sid, state, caught, exit_code, comm })
}

/// The `SigCgt` mask of /proc/PID/status.
fn caught(pid: i32) -> Option<u64> {
    let m = Msg::new().s("/proc/").u(pid as u64).s("/status");
    let p = CPath::from_parts(&[m.as_bytes()])?;
    let mut buf = [0u8; 4096];
    let n = ckpt_sys::read_file(p.cstr(), &mut buf).ok()?;
    ckpt_sys::num::field(&buf[..n], b"SigCgt:", 16)
}

/// Every descendant of `root` found in /proc that the session does not hold
/// yet, in an order where each parent comes first; calls `f` with each.
fn scan(held: &[i32], root: i32, mut f: impl FnMut(&Proc) -> Result<(), Failure>) -> Result<usize, Failure> {
    let fail = |e| Failure::bare("listing the processes of the tree (/proc) for", e);
    // Every process's (pid, ppid): at most 65536 of them.
    let mut all = Scratch::new(65536 * 8).map_err(fail)?;
    let dir = ckpt_sys::openat(Fd::CWD, c"/proc", c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0).map_err(fail)?;
    let mut listing = Scratch::new(64 << 10).map_err(fail)?;
    let mut n = 0usize;
    {
        let pairs = all.bytes();
        let buf = listing.bytes();
        while let Ok(len) = ckpt_sys::getdents64(dir, buf) {
            if len == 0 {
                break;
            }
            for name in ckpt_sys::dirent_names(&buf[..len]) {
                let Some(pid) = ckpt_sys::num::signed(name).filter(|&p| p > 0) else { continue };
                let Some(p) = stat(pid as i32) else { continue };
                if n < 65536 {
                    pairs[n * 8..n * 8 + 4].copy_from_slice(&p.pid.to_ne_bytes());
                    pairs[n * 8 + 4..n * 8 + 8].copy_from_slice(&p.ppid.to_ne_bytes());
                    n += 1;
                }
            }
        }
    }
    let _ = ckpt_sys::close(dir);
    let pairs = all.bytes();
    let at = |i: usize| {
        let b = &pairs[i * 8..i * 8 + 8];
        (i32::from_ne_bytes([b[0], b[1], b[2], b[3]]), i32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
    };
    // Known: the root, the session's members, and what this scan adds (parents
    // first: each round adds the children of what is known).
    let mut known = [0i32; MAX];
    let mut k = 0usize;
    known[k] = root;
    k += 1;
    for &pid in held {
        known[k] = pid;
        k += 1;
    }
    let mut added = 0usize;
    loop {
        let mut grew = false;
        for i in 0..n {
            let (pid, ppid) = at(i);
            if known[..k].contains(&pid) || !known[..k].contains(&ppid) {
                continue;
            }
            if k == MAX {
                return Err(Failure::bare(
                    "checkpointing the tree: more processes than ckpt handles (256) in",
                    Errno::E2BIG,
                ));
            }
            known[k] = pid;
            k += 1;
            grew = true;
            if let Some(p) = stat(pid) {
                f(&p)?;
                added += 1;
            }
        }
        if !grew {
            return Ok(added);
        }
    }
}

/// The failure that names process `p` of the tree.
fn about(p: &Proc, e: Errno, what: &'static str, why: &[u8]) -> Failure {
    let name = &p.comm[..p.comm.iter().position(|&b| b == 0).unwrap_or(16)];
    let m = Msg::new().s("process ").u(p.pid as u64).s(" (").b(name).s(") ").b(why);
    Failure::bare(what, e).detail(m.as_bytes())
}

/// Freeze the tree: every descendant answers from its handler and waits, or the
/// checkpoint fails (every frozen member goes on).
pub fn freeze(root_proc: i32) -> Result<&'static mut Session, Failure> {
    let s = session();
    s.n = 0;
    s.bytes = 0;
    let me = stat(root_proc).unwrap_or_default();
    s.members[0] = Member {
        pid: root_proc as u32,
        ppid: me.ppid as u32,
        pgid: me.pgid as u32,
        sid: me.sid as u32,
        flags: ROOT,
        ..Default::default()
    };
    s.fds = [-1; MAX];
    s.tids = [0; MAX];
    s.has_file = [false; MAX];
    s.n = 1;
    let r = freeze_rounds(s, root_proc);
    if let Err(f) = r {
        release(s, false);
        return Err(f);
    }
    Ok(s)
}

fn freeze_rounds(s: &mut Session, root: i32) -> Result<(), Failure> {
    for _round in 0..64 {
        let first = s.n;
        let mut held = [0i32; MAX];
        for (h, m) in held.iter_mut().zip(&s.members[1..s.n]) {
            *h = m.pid as i32;
        }
        let mut asked = [false; MAX];
        let mut add = |p: &Proc| -> Result<(), Failure> {
            let zombie = matches!(p.state, b'Z' | b'X');
            // A process in the middle of an exec has no handler yet: its new
            // runtime installs one as it loads (about a millisecond).
            let mut p = *p;
            for _ in 0..50 {
                if matches!(p.state, b'Z' | b'X') || p.caught & (1u64 << (SIGNAL - 1)) != 0 {
                    break;
                }
                nap();
                match stat(p.pid) {
                    Some(q) => p = q,
                    None => return Ok(()), // gone: not in the tree
                }
            }
            let zombie = zombie || matches!(p.state, b'Z' | b'X');
            let p = &p;
            if !zombie && p.caught & (1u64 << (SIGNAL - 1)) == 0 {
                return Err(about(
                    p,
                    Errno::EOPNOTSUPP,
                    "checkpointing the tree for",
                    b"does not run the ckpt runtime (a static program, or one started without its LD_PRELOAD): \
                      ckpt cannot capture it; not writing the tree's image",
                ));
            }
            let i = s.n;
            s.members[i] = Member {
                pid: p.pid as u32,
                ppid: p.ppid as u32,
                pgid: p.pgid as u32,
                sid: p.sid as u32,
                flags: if zombie { ZOMBIE } else { 0 },
                status: if zombie { p.exit_code } else { 0 },
                ..Default::default()
            };
            s.comm[i] = p.comm;
            s.n += 1;
            if !zombie {
                match send(p.pid, 0, Cmd::Freeze, ckpt_sys::gettid() as u32) {
                    Ok(()) => asked[i] = true,
                    Err(Errno::ESRCH) => {} // exited meanwhile: settled below
                    Err(e) => return Err(about(p, e, "asking a process of the tree to stop for", b"")),
                }
            }
            Ok(())
        };
        scan(&held[..first - 1], root, &mut add)?;
        if s.n == first {
            settle(s);
            return Ok(());
        }
        wait_replies(s, first, &asked, Cmd::Frozen, FREEZE_MS, b"did not stop within 2 s (does it block signal 62?)")?;
    }
    Err(Failure::bare("checkpointing the tree: it kept growing while being stopped, in", Errno::EAGAIN))
}

/// Wait until every member `i >= first` with `asked[i]` answered `want`.
fn wait_replies(
    s: &mut Session,
    first: usize,
    asked: &[bool; MAX],
    want: Cmd,
    ms: u64,
    late: &[u8],
) -> Result<(), Failure> {
    let mut done = [false; MAX];
    let mut left = (first..s.n).filter(|&i| asked[i]).count();
    let mut waited = 0u64;
    while left > 0 {
        while let Some((pid, cmd, arg)) = take() {
            let Some(i) = (first..s.n).find(|&i| s.members[i].pid as i32 == pid && asked[i] && !done[i]) else {
                continue;
            };
            if cmd == Cmd::Frozen {
                s.tids[i] = arg as i32;
            }
            if cmd == Cmd::Failed {
                let p = proc_of(s, i);
                return Err(about(
                    &p,
                    Errno::EIO,
                    "checkpointing the tree for",
                    b"could not write its image (see its message)",
                ));
            }
            if cmd == want {
                done[i] = true;
                left -= 1;
            }
        }
        if left == 0 {
            break;
        }
        for i in first..s.n {
            if !asked[i] || done[i] {
                continue;
            }
            let exited = stat(s.members[i].pid as i32).is_none_or(|p| matches!(p.state, b'Z' | b'X'));
            if exited && want == Cmd::Frozen {
                // It ended before it could stop: `settle` records it as a
                // zombie, or leaves it out if its parent reaped it.
                done[i] = true;
                left -= 1;
            } else if exited {
                return Err(about(&proc_of(s, i), Errno::ESRCH, "checkpointing the tree for", b"exited meanwhile"));
            }
        }
        if left == 0 {
            break;
        }
        if waited >= ms {
            let i = (first..s.n).find(|&i| asked[i] && !done[i]).unwrap_or(first);
            return Err(about(&proc_of(s, i), Errno::EAGAIN, "checkpointing the tree for", late));
        }
        nap();
        waited += 1;
    }
    Ok(())
}

/// Once every member is frozen (nothing in the tree runs but what is ending):
/// a member that exited meanwhile is a zombie now (its parent is frozen), or was
/// reaped before its parent froze and is left out, with the members below it
/// (orphans, re-parented outside the tree: they go on).
fn settle(s: &mut Session) {
    let mut keep = [true; MAX];
    for i in 1..s.n {
        let parent_kept = (0..i).any(|j| keep[j] && s.members[j].pid == s.members[i].ppid);
        match stat(s.members[i].pid as i32) {
            Some(p) if parent_kept && p.ppid as u32 == s.members[i].ppid => {
                if matches!(p.state, b'Z' | b'X') && s.members[i].flags & ZOMBIE == 0 {
                    s.members[i].flags = ZOMBIE;
                    s.members[i].status = p.exit_code;
                }
            }
            _ => {
                keep[i] = false;
                if s.members[i].flags & ZOMBIE == 0 {
                    let _ = send(s.members[i].pid as i32, s.tids[i], Cmd::Go, 0);
                }
            }
        }
    }
    let mut n = 1;
    for (i, &k) in keep.iter().enumerate().take(s.n).skip(1) {
        if k {
            s.members[n] = s.members[i];
            s.comm[n] = s.comm[i];
            s.tids[n] = s.tids[i];
            n += 1;
        }
    }
    s.n = n;
}

fn proc_of(s: &Session, i: usize) -> Proc {
    Proc { pid: s.members[i].pid as i32, comm: s.comm[i], ..Default::default() }
}

/// Have every frozen member write its image into a temporary file next to
/// `path`; records each image's place in the tree file.
pub fn capture(s: &mut Session, path: &Path) -> Result<(), Failure> {
    let r = capture_all(s, path);
    if r.is_err() {
        release(s, false);
    }
    r
}

/// `DIR/.BASE.tmp.ROOTPID.N` for member `i` of the image `path`: the pattern of
/// `Job`'s temporary files, which a later checkpoint of that name removes when
/// the root that made them is gone.
fn tmp_name(path: &Path, i: usize) -> Option<CPath> {
    let n = path.as_bytes();
    let (dir, base): (&[u8], &[u8]) = match n.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"", &n[1..]),
        Some(i) => (&n[..i], &n[i + 1..]),
        None => (b".", n),
    };
    let num = Msg::new().u(ckpt_sys::getpid() as u64).s(".").u(1_000_000 + i as u64);
    CPath::from_parts(&[dir, b"/.", base, b".tmp.", num.as_bytes()])
}

/// A regular file of one process of the tree: (device, inode, member, fd).
/// A regular file one member holds: (device, inode, member, descriptor, group:
/// the index of the first entry of its open file description, see below).
type OpenFile = (u64, u64, usize, u32, u32);

/// Find the regular files that processes of the tree share one open file
/// description of (an inherited `> log`, a file opened before a fork) and record
/// them for the TREE section: the restart opens each description once, before
/// the processes are made, so they share one offset again (loader/src/tree.rs).
/// Descriptors of one file are compared with `kcmp(KCMP_FILE)`.
fn shared_files(s: &mut Session) {
    const MAX_FILES: usize = 1 << 14;
    s.nshared = 0;
    let Ok(mut files) = ckpt_sys::scratch::Table::<OpenFile>::with_capacity(MAX_FILES) else { return };
    let mut full = false;
    for i in 0..s.n {
        if s.members[i].flags & ZOMBIE != 0 {
            continue;
        }
        let pid = s.members[i].pid;
        let dir = Msg::new().s("/proc/").u(pid as u64).s("/fd");
        let Some(d) = CPath::from_parts(&[dir.as_bytes()]) else { continue };
        let Ok(h) = ckpt_sys::openat(Fd::CWD, d.cstr(), c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0) else {
            continue;
        };
        let mut buf = [0u8; 4096];
        while let Ok(got) = ckpt_sys::getdents64(h, &mut buf) {
            if got == 0 {
                break;
            }
            for name in ckpt_sys::dirent_names(&buf[..got]) {
                let Some(fd) = ckpt_sys::num::signed(name) else { continue };
                let Some(p) = CPath::from_parts(&[dir.as_bytes(), b"/", name]) else { continue };
                let Ok(st) = ckpt_sys::statx(Fd::CWD, p.cstr(), AtFlags(0)) else { continue };
                if st.kind() == ckpt_sys::s_if::REG && files.push((st.dev(), st.ino, i, fd as u32, 0)).is_err() {
                    full = true;
                }
            }
        }
        let _ = ckpt_sys::close(h);
    }
    let all = files.as_mut_slice();
    all.sort_unstable();
    // Group the descriptors of each file by description: an entry joins the
    // group of the first earlier entry kcmp finds it shares with (a "head": an
    // entry whose group is itself), or heads a group of its own.
    let mut run = 0;
    for k in 0..all.len() {
        if k > 0 && (all[k].0, all[k].1) != (all[k - 1].0, all[k - 1].1) {
            run = k;
        }
        let (pk, fk) = (s.members[all[k].2].pid as i32, all[k].3 as usize);
        let same = |j: usize| {
            all[j].4 == j as u32
                && ckpt_sys::kcmp(s.members[all[j].2].pid as i32, pk, c::KCMP_FILE, all[j].3 as usize, fk) == Ok(0)
        };
        all[k].4 = (run..k).find(|&j| same(j)).unwrap_or(k) as u32;
    }
    // Keep the groups that span two processes or more, numbered from 0.
    let mut groups = 0u32;
    for h in 0..all.len() {
        if all[h].4 != h as u32 {
            continue;
        }
        let of = |e: &OpenFile| e.4 == h as u32;
        let end = all[h..].iter().position(|e| (e.0, e.1) != (all[h].0, all[h].1)).map_or(all.len(), |p| h + p);
        if !all[h..end].iter().any(|e| of(e) && e.2 != all[h].2) {
            continue;
        }
        if s.nshared + all[h..end].iter().filter(|e| of(e)).count() > MAX_SHARED {
            full = true;
            continue;
        }
        for e in all[h..end].iter().filter(|e| of(e)) {
            s.shared[s.nshared] = SharedFd { member: e.2 as u32, fd: e.3, group: groups, reserved: 0 };
            s.nshared += 1;
        }
        groups += 1;
    }
    if full {
        Msg::new()
            .s("ckpt: warning: more regular files open in the tree than ckpt records as shared (")
            .u(MAX_SHARED as u64)
            .s(" descriptors): the others each get their own offset after a restart, even where processes \
                shared one (writes may overwrite each other, reads repeat)")
            .emit();
    }
}

fn capture_all(s: &mut Session, path: &Path) -> Result<(), Failure> {
    shared_files(s);
    let n = path.as_bytes();
    s.path = *path;
    let mut asked = [false; MAX];
    for i in 1..s.n {
        if s.members[i].flags & ZOMBIE != 0 {
            continue;
        }
        let tmp = tmp_name(path, i).ok_or(Failure::new("invalid checkpoint file name", Errno::EINVAL, n))?;
        let flags = c::O_RDWR | c::O_CREAT | c::O_TRUNC | c::O_NOFOLLOW | c::O_CLOEXEC;
        let fd = ckpt_sys::openat(Fd::CWD, tmp.cstr(), flags, 0o600)
            .map_err(|e| Failure::new("creating a member's temporary image", e, tmp.as_bytes()))?;
        s.fds[i] = fd.0;
        s.has_file[i] = true;
        let p = proc_of(s, i);
        send(p.pid, s.tids[i], Cmd::Capture, fd.0 as u32)
            .map_err(|e| about(&p, e, "asking a process of the tree to write its image for", b""))?;
        // One at a time: a pipe's reader saves the queued bytes by taking them
        // out and putting them back, which another reader must not see.
        asked[i] = true;
        wait_replies(s, 1, &asked, Cmd::Captured, CAPTURE_MS, b"did not write its image in time")?;
        asked[i] = false;
    }
    let mut off = 0u64;
    for i in 1..s.n {
        if s.fds[i] < 0 {
            continue;
        }
        let len =
            ckpt_sys::fstat(Fd(s.fds[i])).map_err(|e| Failure::new("reading a member's image size for", e, n))?.size;
        // Closed now: the root's own image must not record them.
        let _ = ckpt_sys::close(Fd(s.fds[i]));
        s.fds[i] = -1;
        if len < PAGE_SIZE {
            return Err(about(&proc_of(s, i), Errno::EIO, "checkpointing the tree for", b"wrote no image"));
        }
        s.members[i].offset = off;
        s.members[i].len = len;
        off += page_up(len);
    }
    s.bytes = off;
    Ok(())
}

/// Copy every member's image after the root's, which ends at `end` in `out`.
pub fn append(s: &Session, out: Fd, end: u64, name: &[u8]) -> Result<(), Failure> {
    let mut buf = Scratch::new(1 << 20).map_err(|e| Failure::new("allocating memory for", e, name))?;
    let b = buf.bytes();
    for i in 1..s.n {
        if !s.has_file[i] {
            continue;
        }
        let m = &s.members[i];
        let tmp = tmp_name(&s.path, i).ok_or(Failure::new("invalid checkpoint file name", Errno::EINVAL, name))?;
        let fd = ckpt_sys::openat(Fd::CWD, tmp.cstr(), c::O_RDONLY | c::O_CLOEXEC, 0)
            .map_err(|e| Failure::new("reading a member's image", e, tmp.as_bytes()))?;
        let r = copy(fd, m.len, out, end + m.offset, b, name);
        let _ = ckpt_sys::close(fd);
        r?;
    }
    // The last member's padding: the file ends on a page.
    if s.bytes != 0 {
        ckpt_sys::ftruncate(out, end + s.bytes).map_err(|e| Failure::new("writing", e, name))?;
    }
    Ok(())
}

fn copy(from: Fd, len: u64, out: Fd, at: u64, b: &mut [u8], name: &[u8]) -> Result<(), Failure> {
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(b.len());
        let got = match ckpt_sys::pread(from, &mut b[..want], done) {
            Ok(0) => return Err(Failure::new("reading a member's image for", Errno::EIO, name)),
            Ok(k) => k,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Failure::new("reading a member's image for", e, name)),
        };
        let mut w = 0;
        while w < got {
            match ckpt_sys::pwrite(out, &b[w..got], at + done + w as u64) {
                Ok(k) if k > 0 => w += k,
                Err(Errno::EINTR) => {}
                Ok(_) => return Err(Failure::new("writing", Errno::EIO, name)),
                Err(e) => return Err(Failure::new("writing", e, name)),
            }
        }
        done += got as u64;
    }
    Ok(())
}

/// The TREE section's records (valid until the session is released).
pub fn members(s: &Session) -> &[Member] {
    &s.members[..s.n]
}

/// The TREE section of the root's image: the member table and the shared
/// descriptors (valid until the session is released).
pub fn section(s: &Session) -> crate::capture::TreeSection {
    let m = members(s);
    let d = &s.shared[..s.nshared];
    crate::capture::TreeSection { members: (m.as_ptr() as usize, m.len()), shared: (d.as_ptr() as usize, d.len()) }
}

/// End the session: every member exits (`exit`: the tree image is durable and
/// the program ends) or goes on; the temporary files go.
pub fn release(s: &mut Session, exit: bool) {
    for i in 1..s.n {
        if s.members[i].flags & ZOMBIE == 0 {
            let _ = send(s.members[i].pid as i32, s.tids[i], if exit { Cmd::Exit } else { Cmd::Go }, 0);
        }
        if s.fds[i] >= 0 {
            let _ = ckpt_sys::close(Fd(s.fds[i]));
            s.fds[i] = -1;
        }
        if s.has_file[i] {
            if let Some(tmp) = tmp_name(&s.path, i) {
                let _ = ckpt_sys::unlinkat(Fd::CWD, tmp.cstr(), AtFlags::EMPTY);
            }
            s.has_file[i] = false;
        }
    }
    s.n = 0;
}

/// After a restart the session is the old process's.
pub fn forget() {
    let s = session();
    s.n = 0;
    s.fds = [-1; MAX];
    s.tids = [0; MAX];
    s.has_file = [false; MAX];
}
