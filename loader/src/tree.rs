//! Restarting a tree image (`ckpt_image::tree`, docs/trees.md): every process of
//! the tree again, each forked by its parent with its old pid, in the pid
//! namespace `ids::enter` made for the root.
//!
//! The root's loader (already the root's process, with the root's pid) forks the
//! root's children, each with clone3 `set_tid = [pid]`; each child, still running
//! the loader, forks its own children the same way, then puts itself in its
//! session and process group, and goes on to restore its own image (a complete
//! image of its own inside the file). A zombie's process exits at once with its
//! saved wait status, for its parent to reap. Parents come before their children
//! in the table (validated), so a process forks only members that follow it.
//!
//! # Safety
//! Forks (clone3 without CLONE_VM) of a loader that holds no lock and runs no
//! other thread, as in `ids`.
#![allow(unsafe_code)]

use ckpt_image::section::Table;
use ckpt_image::tree::{Member, ZOMBIE};
use ckpt_sys::task::{self, CloneArgs};
use ckpt_sys::{Errno, c};

use crate::{Name, die, msg};

/// Fork every process of the tree (see the module comment). Returns the index
/// of the member this process is (0: the root).
pub fn spawn(name: &Name, t: &Table<Member>) -> usize {
    let Some(root) = t.at(0) else { return 0 };
    let mut me = 0usize;
    'member: loop {
        let Some(my) = t.at(me) else { return me };
        for j in me + 1..t.len() {
            let Some(m) = t.at(j) else { continue };
            if m.ppid != my.pid {
                continue;
            }
            let tid = [m.pid as i32];
            let args = CloneArgs {
                exit_signal: task::SIGCHLD,
                set_tid: tid.as_ptr() as usize as u64,
                set_tid_size: 1,
                ..Default::default()
            };
            // SAFETY: see the module comment; `tid` lives across the call.
            match unsafe { task::clone3_fork(&args) } {
                Ok(0) => {
                    me = j;
                    settle(name, &root, &m);
                    if m.flags & ZOMBIE != 0 {
                        ckpt_sys::exit_like(m.status);
                    }
                    continue 'member;
                }
                Ok(_) => {}
                Err(Errno::EEXIST) => die(msg(name)
                    .s("cannot restore pid ")
                    .u(m.pid as u64)
                    .s(" of the tree: taken in the new pid namespace")),
                Err(e) => die(msg(name)
                    .s("cannot create the process of pid ")
                    .u(m.pid as u64)
                    .s(" of the tree (clone3): ")
                    .errno(e)),
            }
        }
        return me;
    }
}

/// Put the new process of member `m` in its session and process group. The
/// root's own group and session are the restarting shell's: a member that was
/// in the root's stays in the root's; one that led its own leads its own again;
/// one that was in another member's group joins it (once that member made it).
fn settle(name: &Name, root: &Member, m: &Member) {
    let warn = |what: &str, e: Errno| {
        msg(name)
            .s("warning: process ")
            .u(m.pid as u64)
            .s(" of the tree: cannot ")
            .s(what)
            .s(" (")
            .errno(e)
            .s("); it stays in its parent's")
            .emit()
    };
    if m.sid == m.pid {
        if let Err(e) = ckpt_sys::setsid() {
            warn("start its own session again (setsid)", e);
        }
        return;
    }
    let now = ckpt_sys::getpgid(0).unwrap_or(0);
    let want = if m.pgid == root.pgid { ckpt_sys::getpgid(root.pid as i32).unwrap_or(now) } else { m.pgid as i32 };
    if want == now {
        return;
    }
    let target = if want == m.pid as i32 { 0 } else { want };
    // The group's leader may not have made it yet (a sibling forked just before).
    let mut tries = 0;
    loop {
        match ckpt_sys::setpgid(0, target) {
            Ok(()) => return,
            Err(Errno::EPERM) if tries < 200 => {
                tries += 1;
                let w = core::sync::atomic::AtomicU32::new(0);
                let _ = task::futex_wait(&w, 0, 1);
            }
            Err(e) => return warn("join its process group again (setpgid)", e),
        }
    }
}

/// Most pipes between the processes of a tree the restart joins again.
pub const MAX_PIPES: usize = 64;

/// The pipes that join processes of the tree: made once, in the root's process
/// before the others are forked (so every process inherits both ends), with
/// their saved bytes queued again; each process's `files::restore` takes its
/// ends from here and closes the rest.
#[derive(Clone, Copy)]
pub struct Pipes {
    n: usize,
    ino: [u64; MAX_PIPES],
    /// Read end, write end.
    fds: [[i32; 2]; MAX_PIPES],
    /// The descriptors `fds` occupies: `[lo, lo + 2 * n)`.
    pub lo: i32,
    /// Shared memory objects more than one process maps (a `MAP_SHARED |
    /// MAP_ANONYMOUS` region mapped before a fork, a POSIX shm file): one memfd
    /// each, filled with the saved content before the forks, at `lo +
    /// 2 * MAX_PIPES + k`; each process maps its views from it (`remap`).
    shm_n: usize,
    shm_id: [(u64, u64); MAX_SHM],
    /// Open file descriptions of regular files several processes share (the
    /// TREE section's shared descriptors): each opened once before the forks,
    /// at `files_lo() + group` (`open[group]`); `shared` lists (member,
    /// descriptor, group).
    shared: [(u32, u32, u32); MAX_SHARED_FDS],
    nshared: usize,
    open: [bool; MAX_FILE_GROUPS],
    /// UNIX socket pairs whose ends processes of the tree hold (the inodes of
    /// both ends): one new pair each, made before the forks, at `socks_lo() +
    /// 2k` and `+ 2k + 1`.
    socks: [(u64, u64); MAX_SOCK_PAIRS],
    nsocks: usize,
    /// The member this process restores (set after `spawn`).
    pub me: usize,
}

/// Most shared memory objects between the processes of a tree.
pub const MAX_SHM: usize = 32;
/// Most shared open file descriptions, and descriptors naming them, the restart
/// joins again.
pub const MAX_FILE_GROUPS: usize = 64;
const MAX_SHARED_FDS: usize = 256;
/// Most socket pairs between the processes of a tree the restart joins again.
pub const MAX_SOCK_PAIRS: usize = 32;

impl Pipes {
    /// No pipes (a single process, or a tree without pipes between processes).
    pub const NONE: Pipes = Pipes {
        n: 0,
        ino: [0; MAX_PIPES],
        fds: [[-1; 2]; MAX_PIPES],
        lo: 0,
        shm_n: 0,
        shm_id: [(0, 0); MAX_SHM],
        shared: [(0, 0, 0); MAX_SHARED_FDS],
        nshared: 0,
        open: [false; MAX_FILE_GROUPS],
        socks: [(0, 0); MAX_SOCK_PAIRS],
        nsocks: 0,
        me: 0,
    };

    /// The memfd of shared object (dev, inode), if the tree's processes share it.
    pub fn shm_fd(&self, dev: u64, inode: u64) -> Option<ckpt_sys::Fd> {
        (0..self.shm_n).find(|&k| self.shm_id[k] == (dev, inode)).map(|k| ckpt_sys::Fd(self.shm_lo() + k as i32))
    }

    fn shm_lo(&self) -> i32 {
        self.lo + 2 * MAX_PIPES as i32
    }

    /// The descriptors the shared memory objects hold, `[lo, hi)`, until `remap`
    /// has mapped them.
    pub fn shm_range(&self) -> (i32, i32) {
        (self.shm_lo(), self.shm_lo() + self.shm_n as i32)
    }

    /// The (read, write) ends of the tree's pipe `ino`, if it is one.
    pub fn find(&self, ino: u64) -> Option<[i32; 2]> {
        (0..self.n).find(|&i| self.ino[i] == ino).map(|i| self.fds[i])
    }

    /// The descriptor range the pipes hold, `[lo, hi)` (empty: none).
    pub fn range(&self) -> (i32, i32) {
        (self.lo, self.lo + 2 * self.n as i32)
    }

    fn files_lo(&self) -> i32 {
        self.shm_lo() + MAX_SHM as i32
    }

    /// The description this process's descriptor `fd` shares with other
    /// processes of the tree, if it was opened once for them all.
    pub fn shared_file(&self, fd: u32) -> Option<ckpt_sys::Fd> {
        let me = self.me as u32;
        let &(_, _, g) = self.shared[..self.nshared].iter().find(|d| (d.0, d.1) == (me, fd))?;
        self.open[g as usize].then(|| ckpt_sys::Fd(self.files_lo() + g as i32))
    }

    fn socks_lo(&self) -> i32 {
        self.files_lo() + MAX_FILE_GROUPS as i32
    }

    /// The end of a socket pair of the tree that is socket `ino`, if it is one.
    pub fn socket_end(&self, ino: u64) -> Option<ckpt_sys::Fd> {
        let k = self.socks[..self.nsocks].iter().position(|p| p.0 == ino || p.1 == ino)?;
        let second = self.socks[k].1 == ino;
        Some(ckpt_sys::Fd(self.socks_lo() + 2 * k as i32 + second as i32))
    }

    /// Every descriptor this holds, `[lo, hi)` (empty: none).
    pub fn held(&self) -> (i32, i32) {
        let socks = (self.nsocks > 0).then(|| self.socks_lo() + 2 * self.nsocks as i32);
        let files = self.open.iter().rposition(|&o| o).map(|g| self.files_lo() + g as i32 + 1);
        let shm = (self.shm_n > 0).then(|| self.shm_range().1);
        let hi = socks.or(files).or(shm).unwrap_or(self.range().1);
        (self.lo, hi)
    }

    /// Close what each process takes as its own descriptors once they are in
    /// place (the pipes and shared files); the shared memory objects stay for
    /// `remap`.
    pub fn close_taken(&self) {
        let (lo, hi) = self.range();
        if hi > lo {
            let _ = ckpt_sys::close_range(lo as u32, hi as u32 - 1, 0);
        }
        if let Some(g) = self.open.iter().rposition(|&o| o) {
            let _ = ckpt_sys::close_range(self.files_lo() as u32, (self.files_lo() + g as i32) as u32, 0);
        }
        if self.nsocks > 0 {
            let lo = self.socks_lo() as u32;
            let _ = ckpt_sys::close_range(lo, lo + 2 * self.nsocks as u32 - 1, 0);
        }
    }
}

/// What the tree's processes hold of one pipe.
#[derive(Clone, Copy, Default)]
struct Seen {
    ino: u64,
    read: bool,
    write: bool,
    /// In how many processes, and the last one that was counted.
    procs: u32,
    last: usize,
    /// Some process has it at 0, 1 or 2; the root has it there.
    stdio: bool,
    root_stdio: bool,
}

/// Every process's FILES section in turn: `f(process index, files)`.
fn each_files(
    name: &crate::Name,
    fd: ckpt_sys::Fd,
    root: &ckpt_image::Meta,
    t: &Table<Member>,
    mut f: impl FnMut(usize, &ckpt_image::files::Files),
) {
    each_meta(name, fd, root, t, |p, meta, _| {
        if let Some(files) = crate::files::section(meta) {
            f(p, &files);
        }
    })
}

/// Every process's metadata in turn: `f(process index, meta, base of its image)`.
fn each_meta(
    name: &crate::Name,
    fd: ckpt_sys::Fd,
    root: &ckpt_image::Meta,
    t: &Table<Member>,
    mut f: impl FnMut(usize, &ckpt_image::Meta, u64),
) {
    f(0, root, 0);
    for (i, m) in t.iter().enumerate().skip(1) {
        if m.flags & ZOMBIE != 0 {
            continue;
        }
        let (start, end) = ckpt_image::tree::range(root.header.file_len, &m);
        let (h, mut tmp) = crate::load(name, fd, start, end - start);
        let mb: &[u8] = &tmp.bytes()[..h.meta_len as usize];
        let meta = ckpt_image::Meta::parse(&h, mb).unwrap_or_else(|e| crate::die_image(name, e));
        f(i, &meta, start);
    }
}

/// The shared memory objects that more than one process of the tree maps: one
/// memfd each, sized and filled from the first process that maps it (every
/// process saved the same content: they were all stopped), at the descriptors
/// `shm_fd` names.
fn make_shm(name: &crate::Name, fd: ckpt_sys::Fd, root: &ckpt_image::Meta, t: &Table<Member>, pipes: &mut Pipes) {
    let mut seen = [((0u64, 0u64), 0usize, usize::MAX, 0u64); MAX_SHM];
    let mut n = 0usize;
    each_meta(name, fd, root, t, |p, meta, _| {
        let Some(views) = meta.sections.get(ckpt_image::section::tag::SHARED) else { return };
        let Ok(views) = ckpt_image::memory::views(&views) else { return };
        for v in views.iter() {
            let r = meta.region(v.region);
            let end = v.offset + (r.end - r.start);
            match seen[..n].iter_mut().find(|s| s.0 == (v.dev, v.inode)) {
                Some(s) => {
                    if s.2 != p {
                        s.2 = p;
                        s.1 += 1;
                    }
                    s.3 = s.3.max(end);
                }
                None if n < MAX_SHM => {
                    seen[n] = ((v.dev, v.inode), 1, p, end);
                    n += 1;
                }
                None => {}
            }
        }
    });
    let lo = pipes.shm_lo();
    for s in seen[..n].iter().filter(|s| s.1 > 1) {
        let k = pipes.shm_n;
        let m = ckpt_sys::memfd_create(c"ckpt-tree-shared", c::MFD_CLOEXEC)
            .unwrap_or_else(|e| crate::die_errno(name, "cannot create a memfd for memory the tree shares", e));
        if let Err(e) = ckpt_sys::ftruncate(m, s.3) {
            crate::die_errno(name, "cannot size the memfd for memory the tree shares", e);
        }
        if let Err(e) = ckpt_sys::dup3(m, ckpt_sys::Fd(lo + k as i32), c::O_CLOEXEC) {
            crate::die_errno(name, "cannot place the memfd for memory the tree shares (dup3)", e);
        }
        let _ = ckpt_sys::close(m);
        pipes.shm_id[k] = s.0;
        pipes.shm_n += 1;
    }
    if pipes.shm_n == 0 {
        return;
    }
    // The content, from the first process that maps each object.
    let mut filled = [false; MAX_SHM];
    let mut buf = ckpt_sys::scratch::Scratch::new(1 << 20)
        .unwrap_or_else(|e| crate::die_errno(name, "cannot allocate memory", e));
    let b = buf.bytes();
    each_meta(name, fd, root, t, |_, meta, base| {
        let Some(views) = meta.sections.get(ckpt_image::section::tag::SHARED) else { return };
        let Ok(views) = ckpt_image::memory::views(&views) else { return };
        let mut done_here = [false; MAX_SHM];
        for v in views.iter() {
            let Some(k) = (0..pipes.shm_n).find(|&k| pipes.shm_id[k] == (v.dev, v.inode)) else { continue };
            if filled[k] {
                continue;
            }
            done_here[k] = true;
            let r = meta.region(v.region);
            let to = ckpt_sys::Fd(lo + k as i32);
            for u in meta.runs_of(&r) {
                let mut at = 0u64;
                while at < u.len {
                    let want = ((u.len - at) as usize).min(b.len());
                    crate::read_exact(name, fd, &mut b[..want], base + u.file_off + at);
                    let dst = v.offset + (u.addr - r.start) + at;
                    let w = ckpt_sys::pwrite(to, &b[..want], dst)
                        .and_then(|k| if k == want { Ok(()) } else { Err(Errno::EIO) });
                    if let Err(e) = w {
                        crate::die_errno(name, "cannot fill the memory the tree shares", e);
                    }
                    at += want as u64;
                }
            }
        }
        for k in 0..MAX_SHM {
            filled[k] |= done_here[k];
        }
    });
}

/// The open file descriptions of regular files that several processes of the
/// tree shared (the TREE section's shared descriptors): each opened once here,
/// as the first process that held it would open it (by path at the saved
/// offset, or a deleted file recreated), at `files_lo() + group`, so every
/// process inherits it and `files::restore` puts it at each descriptor that
/// shared it: one offset again. One that cannot be opened here is left to each
/// process, which opens its own (and says why).
fn make_files(name: &crate::Name, fd: ckpt_sys::Fd, root: &ckpt_image::Meta, t: &Table<Member>, pipes: &mut Pipes) {
    use ckpt_image::files::{fkind, how};
    let Some(sh) = root.sections.get(ckpt_image::section::tag::TREE).and_then(|s| ckpt_image::tree::shared(&s).ok())
    else {
        return;
    };
    let mut over = false;
    for d in sh.iter() {
        if pipes.nshared < MAX_SHARED_FDS && (d.group as usize) < MAX_FILE_GROUPS {
            pipes.shared[pipes.nshared] = (d.member, d.fd, d.group);
            pipes.nshared += 1;
        } else {
            over = true;
        }
    }
    if over {
        msg(name)
            .s("warning: more open files shared between processes of the tree than the restart joins (")
            .u(MAX_FILE_GROUPS as u64)
            .s("): the others come back with an offset of each process's own")
            .emit();
    }
    if pipes.nshared == 0 {
        return;
    }
    let mut tried = [false; MAX_FILE_GROUPS];
    let lo = pipes.files_lo();
    each_files(name, fd, root, t, |p, files| {
        for k in 0..pipes.nshared {
            let (m, f, g) = pipes.shared[k];
            if m as usize != p || tried[g as usize] {
                continue;
            }
            tried[g as usize] = true;
            let Some(r) = files.files().find(|r| r.fd == f) else { continue };
            let got = match r.how {
                how::REOPEN if r.kind == fkind::REG => crate::files::reopen(files, &r),
                how::CONTENT => crate::files::recreate(files, &r),
                _ => continue,
            };
            // (A file that is gone or cannot be opened: each process says so.)
            let Ok(one) = got else { continue };
            match ckpt_sys::dup3(one, ckpt_sys::Fd(lo + g as i32), c::O_CLOEXEC) {
                Ok(_) => pipes.open[g as usize] = true,
                Err(e) => msg(name)
                    .s("warning: cannot keep descriptor ")
                    .u(f as u64)
                    .s(" of process ")
                    .u(t.at(p).map_or(0, |m| m.pid as u64))
                    .s(" open for the processes that share it (")
                    .errno(e)
                    .s("): each opens its own, with an offset of its own")
                    .emit(),
            }
            let _ = ckpt_sys::close(one);
        }
    });
}

/// One end of a UNIX socket pair as the tree's processes hold it.
#[derive(Clone, Copy, Default)]
struct SockEnd {
    ino: u64,
    peer: u64,
    ty: u32,
    /// In how many processes, the last one counted; some process recorded it
    /// as connected to a peer outside itself (state 4).
    procs: u32,
    last: usize,
    outside: bool,
}

/// The UNIX socket pairs whose ends processes of the tree hold (a socketpair
/// made before a fork, python's `multiprocessing.Pipe()`): each made once here,
/// with the bytes queued for each end, so that every process takes its ends
/// from one pair, as fork had left them. Recorded by each process as a pair
/// within itself (state 3) or as connected to a peer outside itself (state 4,
/// tree mode: the peer's inode); a pair only one process holds is left to it.
/// An end whose peer no process of the tree holds comes back as a dropped
/// connection (`files::restore` says so).
fn make_sockets(name: &crate::Name, fd: ckpt_sys::Fd, root: &ckpt_image::Meta, t: &Table<Member>, pipes: &mut Pipes) {
    use ckpt_image::files::{SOCKET_DATA_LEN, fkind, how, sock};
    const MAX_ENDS: usize = 2 * MAX_SOCK_PAIRS;
    let mut ends = [SockEnd::default(); MAX_ENDS];
    let mut n = 0usize;
    let mut full = false;
    each_files(name, fd, root, t, |p, files| {
        for r in files.files().filter(|r| r.how == how::NEW && r.kind == fkind::SOCKET && files.word(r, 0) == 1) {
            let state = files.word(&r, sock::STATE);
            let peer = match state {
                sock::PAIR => files.file(files.word(&r, sock::OTHER) as usize).map_or(0, |o| o.ino),
                sock::TREE_PEER => files.word(&r, sock::OTHER),
                _ => continue,
            };
            let e = match ends[..n].iter().position(|e| e.ino == r.ino) {
                Some(i) => &mut ends[i],
                None if n < MAX_ENDS => {
                    n += 1;
                    ends[n - 1] = SockEnd {
                        ino: r.ino,
                        peer,
                        ty: files.word(&r, 1) as u32,
                        last: usize::MAX,
                        ..Default::default()
                    };
                    &mut ends[n - 1]
                }
                None => {
                    full = true;
                    continue;
                }
            };
            if e.last != p {
                e.last = p;
                e.procs += 1;
            }
            e.outside |= state == sock::TREE_PEER;
        }
    });
    if full {
        msg(name)
            .s("warning: more than ")
            .u(MAX_SOCK_PAIRS as u64)
            .s(" socket pairs in the tree: the others come back as dropped connections where processes shared them")
            .emit();
    }
    let lo = pipes.socks_lo();
    for i in 0..n {
        let a = ends[i];
        let Some(b) = ends[..n].iter().find(|b| b.ino == a.peer && b.peer == a.ino) else { continue };
        let joined = a.outside || b.outside || a.procs > 1 || b.procs > 1;
        if !joined || a.ino > b.ino || pipes.nsocks == MAX_SOCK_PAIRS {
            continue;
        }
        const SOCK_CLOEXEC: u32 = 0o2000000;
        let Ok((x, y)) = ckpt_sys::socketpair(1, a.ty | SOCK_CLOEXEC, 0) else {
            msg(name).s("warning: cannot make a socket pair of the tree again; its ends come back dropped").emit();
            continue;
        };
        let k = pipes.nsocks as i32;
        let placed = ckpt_sys::dup3(x, ckpt_sys::Fd(lo + 2 * k), c::O_CLOEXEC)
            .and_then(|_| ckpt_sys::dup3(y, ckpt_sys::Fd(lo + 2 * k + 1), c::O_CLOEXEC));
        let _ = (ckpt_sys::close(x), ckpt_sys::close(y));
        if let Err(e) = placed {
            crate::die_errno(name, "cannot make a socket pair of the tree again (dup3)", e);
        }
        pipes.socks[pipes.nsocks] = (a.ino, b.ino);
        pipes.nsocks += 1;
    }
    if pipes.nsocks == 0 {
        return;
    }
    // The bytes queued for each end (every holder saved the same: they were all
    // stopped), sent from the other end so that this one reads them.
    let mut filled = [0u64; MAX_ENDS];
    let mut nfilled = 0usize;
    each_files(name, fd, root, t, |_, files| {
        for r in files.files().filter(|r| r.how == how::NEW && r.kind == fkind::SOCKET) {
            let Some(end) = pipes.socket_end(r.ino) else { continue };
            if filled[..nfilled].contains(&r.ino) || nfilled == MAX_ENDS {
                continue;
            }
            filled[nfilled] = r.ino;
            nfilled += 1;
            let queued = files.content(&r).get(SOCKET_DATA_LEN as usize..).unwrap_or(&[]);
            let other = if (end.0 - lo) % 2 == 0 { ckpt_sys::Fd(end.0 + 1) } else { ckpt_sys::Fd(end.0 - 1) };
            if let Err(e) = crate::files::send_queued(other, files.word(&r, 1) as u32, queued) {
                msg(name).s("warning: cannot queue the saved bytes of a socket of the tree again: ").errno(e).emit();
            }
        }
    });
}

/// Make the tree's pipes (see [`Pipes`]): every pipe held by more than one
/// process of the tree, or at 0, 1 or 2 of a process, except the root's own
/// standard descriptors (they came from outside the tree: they are the
/// restarting shell's, in every process that inherited them). Its queued
/// bytes are the ones a process holding its read end saved (each such process
/// saved the same). An end that no process of the tree held is closed (the
/// writers had exited, or were outside the tree), with a warning.
pub fn make_pipes(name: &crate::Name, fd: ckpt_sys::Fd, root: &ckpt_image::Meta, t: &Table<Member>) -> Pipes {
    use ckpt_image::files::{fkind, how};
    let mut seen = [Seen::default(); MAX_PIPES];
    let mut nseen = 0usize;
    let mut top = 2u32;
    let mut full = false;
    each_files(name, fd, root, t, |p, files| {
        for r in files.files() {
            top = top.max(r.fd);
            if r.kind != fkind::PIPE || r.how != how::PIPE {
                continue;
            }
            let i = match seen[..nseen].iter().position(|s| s.ino == r.ino) {
                Some(i) => i,
                None if nseen < MAX_PIPES => {
                    seen[nseen] = Seen { ino: r.ino, last: usize::MAX, ..Default::default() };
                    nseen += 1;
                    nseen - 1
                }
                None => {
                    full = true;
                    continue;
                }
            };
            let s = &mut seen[i];
            let acc = r.flags & c::O_ACCMODE.0;
            s.read |= acc == c::O_RDONLY.0 || acc == c::O_RDWR.0;
            s.write |= acc == c::O_WRONLY.0 || acc == c::O_RDWR.0;
            if s.last != p {
                s.last = p;
                s.procs += 1;
            }
            s.stdio |= r.fd <= 2;
            s.root_stdio |= r.fd <= 2 && p == 0;
        }
    });
    if full {
        msg(name)
            .s("warning: more than ")
            .u(MAX_PIPES as u64)
            .s(" pipes in the tree: the others come back with one end closed")
            .emit();
    }
    let mut pipes = Pipes::NONE;
    pipes.lo = top as i32 + 16;
    make_shm(name, fd, root, t, &mut pipes);
    make_files(name, fd, root, t, &mut pipes);
    make_sockets(name, fd, root, t, &mut pipes);
    for s in &seen[..nseen] {
        if s.root_stdio || !(s.procs > 1 || s.stdio) {
            continue;
        }
        let (r, w) =
            task::pipe2().unwrap_or_else(|e| crate::die_errno(name, "cannot make a pipe of the tree again", e));
        let k = pipes.n;
        for (end, at) in [(r, pipes.lo + 2 * k as i32), (w, pipes.lo + 2 * k as i32 + 1)] {
            if let Err(e) = ckpt_sys::dup3(end, ckpt_sys::Fd(at), c::O_CLOEXEC) {
                crate::die_errno(name, "cannot make a pipe of the tree again (dup3)", e);
            }
            let _ = ckpt_sys::close(end);
        }
        pipes.ino[k] = s.ino;
        pipes.fds[k] = [pipes.lo + 2 * k as i32, pipes.lo + 2 * k as i32 + 1];
        pipes.n += 1;
        if !s.read || !s.write {
            msg(name)
                .s("warning: no process of the tree had the ")
                .s(if s.read { "write" } else { "read" })
                .s(" end of pipe:[")
                .u(s.ino)
                .s("] (it had exited, or is outside the tree): that end is closed (")
                .s(if s.read { "its saved bytes are read, then end of file" } else { "writes fail with EPIPE" })
                .s(")")
                .emit();
        }
    }
    if pipes.n == 0 {
        return pipes;
    }
    // The queued bytes: the first saved copy of each (every reader saved them).
    let mut filled = [false; MAX_PIPES];
    each_files(name, fd, root, t, |_, files| {
        for r in files.files() {
            let data = files.content(&r);
            let Some(k) = (0..pipes.n).find(|&k| pipes.ino[k] == r.ino) else { continue };
            if r.kind != fkind::PIPE || r.how != how::PIPE || data.is_empty() || filled[k] {
                continue;
            }
            filled[k] = true;
            let w = ckpt_sys::Fd(pipes.fds[k][1]);
            if data.len() > 65536 {
                let _ = ckpt_sys::fcntl(w, c::F_SETPIPE_SZ, data.len());
            }
            let _ = ckpt_sys::fcntl(w, c::F_SETFL, c::O_NONBLOCK.0 as usize);
            if let Err(e) = ckpt_sys::write_all(w, data) {
                msg(name).s("warning: cannot queue the saved bytes of a pipe of the tree again: ").errno(e).emit();
            }
            let _ = ckpt_sys::fcntl(w, c::F_SETFL, 0);
        }
    });
    // The ends nobody takes.
    for k in 0..pipes.n {
        let s = seen[..nseen].iter().find(|s| s.ino == pipes.ino[k]);
        let (read, write) = s.map_or((true, true), |s| (s.read, s.write));
        if !read {
            let _ = ckpt_sys::close(ckpt_sys::Fd(pipes.fds[k][0]));
        }
        if !write {
            let _ = ckpt_sys::close(ckpt_sys::Fd(pipes.fds[k][1]));
        }
    }
    pipes
}
