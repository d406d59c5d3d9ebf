//! Lazy restart (`CKPT_LAZY=1`, or `faults`): the program runs again before its
//! large anonymous regions are read, and a **pager** brings them in.
//!
//! - Which regions: private anonymous memory and the heap, saved with at least
//!   [`MIN_LAZY`] bytes, neither a stack, nor locked, nor shared, nor with guard
//!   pages. Everything else is restored as in an eager restart (small regions cost
//!   nothing, and the kernel writes signal frames on stacks itself).
//! - How: the loader maps those regions empty (anonymous, so MADV_DONTNEED reads
//!   zeros and fork copies them as memory) and registers them with a userfaultfd
//!   (missing mode, with the REMAP, REMOVE and UNMAP events). A page the program
//!   touches first faults; the pager answers with `UFFDIO_COPY` of the hash piece
//!   (256 KiB) that holds it and the next ones, and meanwhile (mode `1`) reads
//!   the rest in file order, 4 MiB per `pread`. Each piece is checked against its
//!   DATA_HASHES entry before it is copied in.
//! - The pager is a process of its own, forked (twice, so that init or the pid
//!   namespace's init reaps it, never the program) right after the loader has
//!   cleared the address space, while it holds only the home block: it costs a few
//!   pages, is not one of the program's threads or children, and its memory is
//!   freed when it exits. It keeps the userfaultfd and the image descriptor; the
//!   program's descriptor table gets neither. When every piece is in it closes the
//!   userfaultfd (which removes the registration), says DONE in the status page
//!   and exits.
//! - The status page (one shared page in the home block, `ckpt_image::lazy_status`;
//!   the runtime keeps it mapped) is how the loader hands the pager the list of
//!   lazy regions and the go, and how the runtime asks for everything at once
//!   before a checkpoint or a fork (`runtime/src/lazy.rs`).
//! - The program's own changes are followed: `MADV_DONTNEED` (REMOVE) and
//!   `munmap` (UNMAP) mark pages as never to be filled from the image; `mremap`
//!   (REMAP) of memory with missing pages makes the pager fill them at once at
//!   the new address (following later remaps of it too).
//! - An image that cannot be read any more (truncated, an I/O error) or a piece
//!   whose hash differs ends the program with SIGKILL and a message naming the
//!   image and the offset: never zeros in place of data.
//!
//! # Safety
//! The pager writes only into its own fresh memory and, through the kernel's
//! `UFFDIO_COPY`, into missing pages of the program's registered regions; the
//! status page is accessed through atomics only.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use ckpt_image::hashes::{DataHashes, pieces_of};
use ckpt_image::lazy_status as ls;
use ckpt_image::memory;
use ckpt_image::process::vm;
use ckpt_image::section::tag;
use ckpt_image::{Meta, Region, kind};
use ckpt_sys::scratch::Scratch;
use ckpt_sys::uffd::{self, Msg as UMsg};
use ckpt_sys::{Errno, Fd, c};

use crate::{Name, Plan, msg};

/// Regions with fewer saved bytes are read at once.
pub const MIN_LAZY: u64 = 1 << 20;
/// Bytes read by one `pread` of the background fetch.
const BATCH: usize = 4 << 20;
/// Pieces fetched for one fault (the faulting one and the next ones).
const FAULT_PIECES: u64 = 4;
/// The piece size when the image has no DATA_HASHES (nothing to check).
const CHUNK: u64 = 1 << 20;
/// Status-page words only the loader and its pager use (after the runtime's):
/// the go (1: start, 2: nothing is lazy, end), the number of lazy regions, and
/// their indices in the region table.
const GO: usize = 3;
const COUNT: usize = 4;
const LIST: usize = 5;
const CAP: usize = 1024 - LIST;
/// Page faults waiting to be answered (one per waiting thread at most).
const MAX_FAULTS: usize = 4096;
const PAGE: u64 = 4096;
/// Polls of 1 ms that a copy refused for a vanished mapping waits for the
/// program's change to be announced (see `Pager::await_change`).
const SETTLE_POLLS: u32 = 100;

/// What the restart was asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every page before the first instruction (the default).
    Off,
    /// Pages on first touch, the rest fetched in the background.
    Background,
    /// Pages on first touch only; the rest when a checkpoint or fork needs it.
    Faults,
}

/// The lazy restart's state in the plan.
#[derive(Clone, Copy)]
pub struct Setup {
    /// What was asked for and is possible.
    pub mode: Mode,
    /// The userfaultfd (this process's).
    pub uffd: Fd,
    /// A user-mode-only userfaultfd (see `open`).
    pub user_only: bool,
    /// Lazy regions registered so far.
    pub count: u32,
}

impl Setup {
    /// An eager restart.
    pub const OFF: Setup = Setup { mode: Mode::Off, uffd: Fd(-1), user_only: false, count: 0 };
}

/// `CKPT_LAZY` (`1`, `faults`, `0`) or the argument `--lazy[=faults]`.
pub fn mode(name: &Name, sp: usize) -> Mode {
    let mut v = crate::arch::env(sp, b"CKPT_LAZY");
    let mut i = 1;
    while let Some(a) = crate::arch::arg(sp, i) {
        match a {
            b"--lazy" => v = Some(b"1"),
            b"--lazy=faults" => v = Some(b"faults"),
            b"--eager" => v = Some(b"0"),
            _ => {}
        }
        i += 1;
    }
    match v {
        None | Some(b"0") | Some(b"") => Mode::Off,
        Some(b"1") => Mode::Background,
        Some(b"faults") => Mode::Faults,
        Some(other) => {
            msg(name).s("warning: CKPT_LAZY=").b(other).s(" is not 0, 1 or faults; restoring every page now").emit();
            Mode::Off
        }
    }
}

/// Phase one, in the program's process: open the userfaultfd. Anything that
/// prevents a lazy restart is said, and the restart is eager.
pub fn open(name: &Name, mode: Mode, meta: &Meta, in_tree: bool) -> Setup {
    if mode == Mode::Off {
        return Setup::OFF;
    }
    let refuse = |why: &str, e: Option<Errno>| {
        let m = msg(name).s("lazy restart not possible (").s(why);
        let m = match e {
            Some(e) => m.s(": ").errno(e),
            None => m,
        };
        m.s("); restoring every page now").emit();
        Setup::OFF
    };
    // The pager reads plain bytes at the runs' offsets; LZ4 pieces are not yet.
    if meta.compression().is_some() {
        return refuse("the image is compressed (-z)", None);
    }
    // Inherited pages come from the parent images, which the pager does not read.
    if meta.parent().is_some() {
        return refuse("the image is incremental (-I)", None);
    }
    // A tree member's runs are offsets in its own image inside the file, and the
    // pager's pids would be taken from the tree's namespace: not yet.
    if in_tree {
        return refuse("the image holds a tree of processes", None);
    }
    // The pager's two forks take the namespace's pids 2 and 3, which a thread id
    // restored later with clone3 set_tid must not need.
    if let Some(t) = meta.threads()
        && t.iter().any(|t| t.tid < 16)
    {
        return refuse("a thread id below 16 would collide with the pager's pid", None);
    }
    let flags = (c::O_CLOEXEC | c::O_NONBLOCK).0;
    let mut user_only = false;
    let fd = match uffd::userfaultfd(flags) {
        Ok(fd) => fd,
        Err(Errno::EPERM) => {
            let dev = ckpt_sys::openat(Fd::CWD, c"/dev/userfaultfd", c::O_RDWR | c::O_CLOEXEC, 0);
            let got = dev.and_then(|d| {
                let r = uffd::ioctl_userfaultfd_ioc_new(d, flags);
                let _ = ckpt_sys::close(d);
                r
            });
            match got {
                Ok(fd) => fd,
                Err(_) => match uffd::userfaultfd(flags | uffd::USER_MODE_ONLY) {
                    Ok(fd) => {
                        user_only = true;
                        fd
                    }
                    Err(e) => return refuse("userfaultfd", Some(e)),
                },
            }
        }
        Err(e) => return refuse("userfaultfd", Some(e)),
    };
    let want = uffd::FEATURE_EVENT_REMAP | uffd::FEATURE_EVENT_REMOVE | uffd::FEATURE_EVENT_UNMAP;
    if let Err(e) = uffd::ioctl_uffdio_api(fd, want) {
        let _ = ckpt_sys::close(fd);
        return refuse("UFFDIO_API with the remap, remove and unmap events", Some(e));
    }
    if user_only {
        msg(name)
            .s("note: lazy restart with an unprivileged userfaultfd (vm.unprivileged_userfaultfd=0): until every page \
                is in, a system call given memory that has not arrived yet fails with EFAULT instead of waiting")
            .emit();
    }
    Setup { mode, uffd: fd, user_only, count: 0 }
}

/// Is region `r` restored lazily? (`vmf`: its mapping flags; `view`: it is one
/// of several views of a shared object.)
pub fn wanted(set: &Setup, meta: &Meta, r: &Region, vmf: u64, view: bool) -> bool {
    if set.mode == Mode::Off || set.count as usize >= CAP || view {
        return false;
    }
    if !(r.kind == kind::ANON || r.kind == kind::HEAP) || vmf & (vm::LOCKED | vm::GROWSDOWN) != 0 {
        return false;
    }
    let saved: u64 = meta.runs_of(r).map(|u| u.len).sum();
    if saved < MIN_LAZY {
        return false;
    }
    let guards = meta.sections.get(tag::GUARDS).and_then(|s| memory::guards(&s).ok());
    !guards.is_some_and(|t| t.iter().any(|g| g.start < r.end && r.start < g.end))
}

/// The status page's word `i`.
fn word(page: usize, i: usize) -> &'static AtomicU32 {
    // SAFETY: `page` is the status page, mapped for the life of the loader and
    // the pager; every word is 4-byte aligned inside it.
    unsafe { &*((page + 4 * i) as *const AtomicU32) }
}

/// Register a lazy region just mapped (empty) by `restore_regions`; false (the
/// region is then read now) if the kernel refuses.
pub fn register(set: &mut Setup, plan: &Plan, index: u32, r: &Region) -> bool {
    let len = (r.end - r.start) as usize;
    if let Err(e) = uffd::ioctl_uffdio_register(set.uffd, r.start as usize, len, uffd::REGISTER_MODE_MISSING) {
        msg(&plan.name)
            .s("lazy restart: cannot register region ")
            .x(r.start)
            .s(" (")
            .errno(e)
            .s("); reading it now")
            .emit();
        return false;
    }
    let page = plan.home.status();
    word(page, LIST + set.count as usize).store(index, Ordering::Relaxed);
    set.count += 1;
    word(page, COUNT).store(set.count, Ordering::Release);
    true
}

/// Phase two, with the address space cleared: share the status page and start
/// the pager. If it cannot be started, the restart is eager (`set` is off).
pub fn start(set: &mut Setup, plan: &Plan, meta: &Meta) {
    if set.mode == Mode::Off {
        return;
    }
    let page = plan.home.status();
    let rw = c::PROT_READ | c::PROT_WRITE;
    let flags = c::MAP_SHARED | c::MAP_ANONYMOUS | c::MAP_FIXED;
    // SAFETY: the page is the home block's own status page, unused so far.
    if let Err(e) = unsafe { ckpt_sys::mmap(page, 4096, rw, flags, Fd(-1), 0) } {
        msg(&plan.name).s("lazy restart not possible (shared page: ").errno(e).s("); restoring every page now").emit();
        off(set);
        return;
    }
    let prog = ckpt_sys::getpid();
    // SAFETY: the loader holds no lock and runs no other thread; the children
    // only use the home block (their copy) and the status page.
    match unsafe { ckpt_sys::task::clone_fork_nosignal() } {
        Ok(0) => {
            // SAFETY: as above.
            let pager = unsafe { ckpt_sys::task::clone_fork_nosignal() };
            match pager {
                Ok(0) => pager_main(plan, meta, set.uffd, set.mode, prog),
                Ok(p) => word(page, ls::PID).store(p as u32, Ordering::Release),
                Err(_) => {}
            }
            ckpt_sys::exit_group(0)
        }
        Ok(mid) => {
            let _ = ckpt_sys::task::waitid_clone(mid);
            if word(page, ls::PID).load(Ordering::Acquire) == 0 {
                msg(&plan.name)
                    .s("lazy restart not possible (the pager did not start); restoring every page now")
                    .emit();
                off(set);
            }
        }
        Err(e) => {
            msg(&plan.name).s("lazy restart not possible (fork: ").errno(e).s("); restoring every page now").emit();
            off(set);
        }
    }
}

fn off(set: &mut Setup) {
    let _ = ckpt_sys::close(set.uffd);
    *set = Setup::OFF;
}

/// Last step before the jump: tell the pager to go (or that nothing is lazy) and
/// give up this process's userfaultfd.
pub fn go(set: &Setup, plan: &Plan) {
    if set.mode == Mode::Off {
        return;
    }
    let page = plan.home.status();
    let g = if set.count > 0 { 1 } else { 2 };
    crate::trace(if set.count > 0 {
        "lazy restart: regions registered with the userfaultfd; the pager starts"
    } else {
        "lazy restart: no region large enough; every page is in"
    });
    word(page, GO).store(g, Ordering::Release);
    let _ = ckpt_sys::task::futex_wake(word(page, GO));
    let _ = ckpt_sys::close(set.uffd);
}

/// One lazy region, as the pager sees it.
#[derive(Clone, Copy)]
struct Lr {
    start: u64,
    end: u64,
    first_run: u32,
    nruns: u32,
    /// File offset of its first saved byte, and how many (contiguous in the file).
    file0: u64,
    saved: u64,
    /// Index of its first piece in DATA_HASHES.
    hash0: u64,
    /// Its first page in the `resolved` bitmap, its first piece in `done`.
    page0: u64,
    piece0: u64,
    npieces: u64,
}

struct Pager<'a> {
    name: Name,
    meta: &'a Meta<'a>,
    fd: Fd,
    uffd: Fd,
    prog: i32,
    page: usize,
    regs: &'a mut [Lr],
    /// A page is resolved when it must never be filled from the image again:
    /// copied in, given a zero page, or dropped by the program (DONTNEED, munmap).
    resolved: &'a mut [u64],
    /// Pieces read and copied.
    done: &'a mut [u64],
    left: u64,
    buf: &'a mut [u8],
    hashes: Option<DataHashes<'a>>,
    piece: u64,
    /// An mremap being followed: (from, to, len).
    window: Option<(u64, u64, u64)>,
    faults: &'a mut [u64],
    nfaults: usize,
    remaps: [(u64, u64, u64); 64],
    nremaps: usize,
    cursor: (usize, u64),
}

fn bit(b: &[u64], i: u64) -> bool {
    b[(i / 64) as usize] & (1 << (i % 64)) != 0
}

fn set_bit(b: &mut [u64], i: u64) {
    b[(i / 64) as usize] |= 1 << (i % 64);
}

/// The pager process (see the module comment). Never returns.
fn pager_main(plan: &Plan, meta: &Meta, uffd: Fd, mode: Mode, prog: i32) -> ! {
    let name = plan.name;
    let page = plan.home.status();
    let _ = ckpt_sys::task::setsid();
    let _ = ckpt_sys::prctl_set_name(b"ckpt-pager\0\0\0\0\0\0");
    // Only stderr, the userfaultfd and the image stay open: the program's pipes
    // must see their end when the program ends, not when the pager does.
    let mut keep = [2, uffd.0, plan.fd.0];
    keep.sort_unstable();
    let mut from = 0u32;
    for k in keep {
        if (k as u32) > from {
            let _ = ckpt_sys::close_range(from, k as u32 - 1, 0);
        }
        from = k as u32 + 1;
    }
    let _ = ckpt_sys::close_range(from, u32::MAX, 0);

    loop {
        match word(page, GO).load(Ordering::Acquire) {
            0 => {}
            1 => break,
            _ => ckpt_sys::exit_group(0),
        }
        let _ = ckpt_sys::task::futex_wait(word(page, GO), 0, 50);
        if word(page, GO).load(Ordering::Acquire) == 0 && ckpt_sys::kill(prog, 0) == Err(Errno::ESRCH) {
            ckpt_sys::exit_group(0);
        }
    }

    let hashes = meta.data_hashes().ok().flatten();
    let piece = hashes.map_or(CHUNK, |h| h.piece);
    let n = (word(page, COUNT).load(Ordering::Acquire) as usize).min(CAP);
    let alloc = |len: usize| {
        Scratch::new(len).unwrap_or_else(|e| {
            let s = ckpt_sys::msg::Msg::new();
            fatal_at(&name, page, prog, s.s("cannot allocate the pager's memory: ").errno(e))
        })
    };
    // The lazy regions, with their pieces: hash indices count every region's
    // pieces in region order, as the runtime wrote them.
    let mut regs_mem = alloc(n * core::mem::size_of::<Lr>());
    // SAFETY: a fresh private mapping of at least n records, zeroed (all-zero is
    // a valid Lr), used only through this slice.
    let regs: &mut [Lr] = unsafe { core::slice::from_raw_parts_mut(regs_mem.bytes().as_mut_ptr() as *mut Lr, n) };
    let (mut hash_at, mut next_region, mut pages, mut pieces) = (0u64, 0u32, 0u64, 0u64);
    for (k, lr) in regs.iter_mut().enumerate() {
        let idx = word(page, LIST + k).load(Ordering::Relaxed);
        while next_region < idx {
            let r = meta.region(next_region);
            hash_at += pieces_of(meta.runs_of(&r).map(|u| u.len).sum(), piece);
            next_region += 1;
        }
        let r = meta.region(idx);
        let saved: u64 = meta.runs_of(&r).map(|u| u.len).sum();
        let np = pieces_of(saved, piece);
        *lr = Lr {
            start: r.start,
            end: r.end,
            first_run: r.first_run,
            nruns: r.nruns,
            file0: meta.run(r.first_run).file_off,
            saved,
            hash0: hash_at,
            page0: pages,
            piece0: pieces,
            npieces: np,
        };
        pages += (r.end - r.start) / PAGE;
        pieces += np;
    }
    let mut res_mem = alloc((pages.div_ceil(64) * 8) as usize);
    let mut done_mem = alloc((pieces.div_ceil(64) * 8) as usize);
    let mut buf_mem = alloc(BATCH.max(piece as usize * FAULT_PIECES as usize));
    let mut faults_mem = alloc(MAX_FAULTS * 8);
    let words = |s: &mut Scratch| {
        let b = s.bytes();
        // SAFETY: a private page-aligned mapping of ours, reinterpreted as u64s.
        unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut u64, b.len() / 8) }
    };
    let mut p = Pager {
        name,
        meta,
        fd: plan.fd,
        uffd,
        prog,
        page,
        regs,
        resolved: words(&mut res_mem),
        done: words(&mut done_mem),
        left: pieces,
        buf: buf_mem.bytes(),
        hashes,
        piece,
        window: None,
        faults: words(&mut faults_mem),
        nfaults: 0,
        remaps: [(0, 0, 0); 64],
        nremaps: 0,
        cursor: (0, 0),
    };
    p.run(mode)
}

/// Report, end the program, end the pager.
fn fatal_at(name: &Name, page: usize, prog: i32, m: ckpt_sys::msg::Msg) -> ! {
    crate::msg(name).b(m.as_bytes()).emit();
    word(page, ls::STATE).store(ls::FAILED, Ordering::Release);
    let _ = ckpt_sys::task::futex_wake(word(page, ls::STATE));
    let _ = ckpt_sys::kill(prog, c::SIGKILL);
    ckpt_sys::exit_group(1)
}

impl Pager<'_> {
    fn fatal(&self, m: ckpt_sys::msg::Msg) -> ! {
        fatal_at(&self.name, self.page, self.prog, m)
    }

    /// The program is gone (its memory with it): nothing left to do.
    fn quit(&self) -> ! {
        ckpt_sys::exit_group(0)
    }

    fn run(&mut self, mode: Mode) -> ! {
        loop {
            self.drain();
            self.answer();
            if self.nremaps > 0 {
                continue;
            }
            if self.left == 0 {
                break;
            }
            if mode == Mode::Background || word(self.page, ls::HURRY).load(Ordering::Acquire) != 0 {
                self.prefetch();
            } else {
                let mut fds = [ckpt_sys::task::PollFd { fd: self.uffd.0, events: 1, revents: 0 }];
                let _ = ckpt_sys::task::ppoll(&mut fds, Some(20));
                if fds[0].revents == 0 && ckpt_sys::kill(self.prog, 0) == Err(Errno::ESRCH) {
                    self.quit();
                }
            }
        }
        self.drain();
        self.answer();
        // Closing the last userfaultfd of the process removes the registration
        // and wakes any thread still waiting; what never had data is zero.
        let _ = ckpt_sys::close(self.uffd);
        let state = word(self.page, ls::STATE);
        state.store(ls::DONE, Ordering::Release);
        let _ = ckpt_sys::task::futex_wake(state);
        ckpt_sys::exit_group(0)
    }

    /// Follow queued remaps, then answer queued faults; a remap read meanwhile is
    /// followed before the next fault (that fault may be at its new address).
    fn answer(&mut self) {
        loop {
            while self.nremaps > 0 {
                let r = self.remaps[0];
                self.remaps.copy_within(1..self.nremaps, 0);
                self.nremaps -= 1;
                self.follow_remap(r);
            }
            if self.nfaults == 0 {
                return;
            }
            self.nfaults -= 1;
            let a = self.faults[self.nfaults];
            self.fault(a);
        }
    }

    /// Read every waiting message: faults and remaps are queued, removed and
    /// unmapped ranges are marked at once (a copy waits for them: EAGAIN).
    /// True if a change of the program's mappings (remap, remove, unmap) was read.
    fn drain(&mut self) -> bool {
        let mut changed = false;
        loop {
            let mut m = [UMsg::default(); 32];
            // SAFETY: the array is plain data; read(2) fills whole messages.
            let bytes = unsafe { core::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut u8, size_of_val(&m)) };
            let n = match ckpt_sys::read(self.uffd, bytes) {
                Ok(n) => n / core::mem::size_of::<UMsg>(),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return changed,
                Err(e) => {
                    self.fatal(ckpt_sys::msg::Msg::new().s("lazy restart: cannot read the userfaultfd: ").errno(e))
                }
            };
            if n == 0 {
                return changed;
            }
            for u in &m[..n] {
                let [a, b, l] = u.arg;
                match u.event[0] {
                    uffd::EVENT_PAGEFAULT => {
                        if self.nfaults == self.faults.len() {
                            self.fatal(ckpt_sys::msg::Msg::new().s("lazy restart: too many threads waiting for pages"));
                        }
                        self.faults[self.nfaults] = b;
                        self.nfaults += 1;
                    }
                    uffd::EVENT_REMAP => {
                        if self.nremaps == self.remaps.len() {
                            self.fatal(ckpt_sys::msg::Msg::new().s("lazy restart: too many mremap calls at once"));
                        }
                        self.remaps[self.nremaps] = (a, b, l);
                        self.nremaps += 1;
                        changed = true;
                    }
                    uffd::EVENT_REMOVE | uffd::EVENT_UNMAP => {
                        self.mark_current(a, b);
                        changed = true;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Wait (a bounded time) for a change of the program's mappings to be read:
    /// a mapping that vanished under a copy is followed by its event as soon as
    /// the changing thread leaves the kernel's locks. False if none came.
    fn await_change(&mut self) -> bool {
        for _ in 0..SETTLE_POLLS {
            let mut fds = [ckpt_sys::task::PollFd { fd: self.uffd.0, events: 1, revents: 0 }];
            let _ = ckpt_sys::task::ppoll(&mut fds, Some(1));
            if self.drain() {
                return true;
            }
            if ckpt_sys::kill(self.prog, 0) == Err(Errno::ESRCH) {
                self.quit();
            }
        }
        false
    }

    /// The original address of the page now at `c` (None: nothing of the image).
    fn orig_of(&self, c: u64) -> Option<u64> {
        match self.window {
            Some((from, to, len)) if c >= to && c < to + len => Some(from + (c - to)),
            Some((from, _, len)) if c >= from && c < from + len => None,
            _ => Some(c),
        }
    }

    /// Where the page of original address `o` is now: moved by the remap being
    /// followed, then by those queued after it (in their order).
    fn cur_of(&self, o: u64) -> u64 {
        let mut c = match self.window {
            Some((from, to, len)) if o >= from && o < from + len => to + (o - from),
            _ => o,
        };
        for &(from, to, len) in &self.remaps[..self.nremaps] {
            if c >= from && c < from + len {
                c = to + (c - from);
            }
        }
        c
    }

    /// The lazy region holding original address `o`.
    fn find(&self, o: u64) -> Option<usize> {
        let i = self.regs.partition_point(|r| r.end <= o);
        (i < self.regs.len() && self.regs[i].start <= o).then_some(i)
    }

    /// Mark original `[a, b)` resolved.
    fn mark_orig(&mut self, a: u64, b: u64) {
        let mut i = self.regs.partition_point(|r| r.end <= a);
        while i < self.regs.len() && self.regs[i].start < b {
            let r = self.regs[i];
            let (s, e) = (a.max(r.start) & !(PAGE - 1), b.min(r.end));
            let mut x = s;
            while x < e {
                set_bit(self.resolved, r.page0 + (x - r.start) / PAGE);
                x += PAGE;
            }
            i += 1;
        }
    }

    /// Mark current `[s, e)` resolved (a removed or unmapped range). The event
    /// happened after the remaps still queued (mremap's own UNMAP of the old
    /// range follows its REMAP) and after the one being followed: an address is
    /// traced back through them to the original one it holds, if any.
    fn mark_current(&mut self, s: u64, e: u64) {
        if self.nremaps == 0 && self.window.is_none() {
            self.mark_orig(s, e);
            return;
        }
        let mut c = s & !(PAGE - 1);
        while c < e {
            if let Some(o) = self.traced(c)
                && let Some(ri) = self.find(o)
            {
                let r = self.regs[ri];
                set_bit(self.resolved, r.page0 + (o - r.start) / PAGE);
            }
            c += PAGE;
        }
    }

    /// The original address of what is now at `c`, through the queued remaps
    /// (newest first) and the one being followed.
    fn traced(&self, mut c: u64) -> Option<u64> {
        for &(from, to, len) in self.remaps[..self.nremaps].iter().rev() {
            if c >= to && c < to + len {
                c = from + (c - to);
            } else if c >= from && c < from + len {
                return None;
            }
        }
        self.orig_of(c)
    }

    /// File offset of original address `o` in region `ri`, if it was saved.
    fn file_off(&self, ri: usize, o: u64) -> Option<u64> {
        let r = self.regs[ri];
        let (mut l, mut h) = (r.first_run, r.first_run + r.nruns);
        while l < h {
            let m = l + (h - l) / 2;
            if self.meta.run(m).addr + self.meta.run(m).len <= o { l = m + 1 } else { h = m }
        }
        let u = (l < r.first_run + r.nruns).then(|| self.meta.run(l))?;
        (u.addr <= o).then(|| u.file_off + (o - u.addr))
    }

    /// Answer a fault at `a`: the piece that holds it (and the next ones), or a
    /// zero page where the image has nothing.
    fn fault(&mut self, a: u64) {
        let c = a & !(PAGE - 1);
        if let Some(o) = self.orig_of(c)
            && let Some(ri) = self.find(o)
        {
            let r = self.regs[ri];
            let idx = r.page0 + (o - r.start) / PAGE;
            if !bit(self.resolved, idx) {
                match self.file_off(ri, o) {
                    Some(f) => {
                        let lp = (f - r.file0) / self.piece;
                        self.fetch_range(ri, lp, (lp + FAULT_PIECES).min(r.npieces));
                    }
                    None => set_bit(self.resolved, idx),
                }
            }
        }
        // A page just copied is there (EEXIST: only a wake); a resolved page that
        // is missing again was dropped by the program and reads as zeros.
        self.zero(c);
    }

    /// Give the fault at current address `c` a zero page if it is still missing,
    /// and wake its thread. Where the page may no longer be what the fault was
    /// about (a remap read meanwhile may move memory there, its mapping moved or
    /// went), the thread is only woken: it faults again, and that fault is
    /// answered once the change is followed.
    fn zero(&mut self, c: u64) {
        loop {
            if self.nremaps > 0 {
                let _ = uffd::ioctl_uffdio_wake(self.uffd, c as usize, PAGE as usize);
                return;
            }
            match uffd::ioctl_uffdio_zeropage(self.uffd, c as usize, PAGE as usize).1 {
                Ok(()) => return,
                Err(Errno::EEXIST) | Err(Errno::ENOENT) => {
                    let _ = uffd::ioctl_uffdio_wake(self.uffd, c as usize, PAGE as usize);
                    return;
                }
                Err(Errno::EAGAIN) => {
                    self.drain();
                }
                Err(Errno::ESRCH) => self.quit(),
                Err(e) => self.fatal(ckpt_sys::msg::Msg::new().s("lazy restart: UFFDIO_ZEROPAGE: ").errno(e)),
            }
        }
    }

    /// Pieces `[lp, end)` of region `ri`, in reads of at most BATCH bytes.
    fn fetch_range(&mut self, ri: usize, mut lp: u64, end: u64) {
        let per = (self.buf.len() as u64 / self.piece).max(1);
        while lp < end {
            let n = per.min(end - lp);
            self.fetch(ri, lp, lp + n);
            lp += n;
        }
    }

    /// Read, check and copy in the pieces of `[lp0, lp1)` of region `ri` that are
    /// not in yet (each run of them with one read).
    fn fetch(&mut self, ri: usize, lp0: u64, lp1: u64) {
        let r = self.regs[ri];
        let mut lp = lp0;
        while lp < lp1 {
            if bit(self.done, r.piece0 + lp) {
                lp += 1;
                continue;
            }
            let mut end = lp;
            while end < lp1 && !bit(self.done, r.piece0 + end) {
                end += 1;
            }
            self.fetch_run(ri, lp, end);
            lp = end;
        }
    }

    /// Read, check and copy in pieces `[lp, end)` of region `ri`, none of them in.
    fn fetch_run(&mut self, ri: usize, lp: u64, end: u64) {
        let r = self.regs[ri];
        let f0 = r.file0 + lp * self.piece;
        let f1 = (r.file0 + r.saved).min(r.file0 + end * self.piece);
        let len = (f1 - f0) as usize;
        let mut got = 0;
        while got < len {
            match ckpt_sys::pread(self.fd, &mut self.buf[got..len], f0 + got as u64) {
                Ok(0) => self.unreadable(f0 + got as u64, len - got, None),
                Ok(k) => got += k,
                Err(Errno::EINTR) => {}
                Err(e) => self.unreadable(f0 + got as u64, len - got, Some(e)),
            }
        }
        if let Some(h) = self.hashes {
            for k in lp..end {
                let s = ((k - lp) * self.piece) as usize;
                let e = (s + self.piece as usize).min(len);
                let mut x = h.algo.digest();
                x.update(&self.buf[s..e]);
                let got = x.finish();
                if Some(got) != h.hash(r.hash0 + k) {
                    self.fatal(
                        ckpt_sys::msg::Msg::new()
                            .s("the page data is damaged (piece ")
                            .u(r.hash0 + k)
                            .s(" at offset ")
                            .u(f0 + s as u64)
                            .s(", found while the program ran: lazy restart); the program is stopped"),
                    );
                }
            }
        }
        // The region's runs follow each other in the file: copy each part.
        let last = r.first_run + r.nruns;
        let (mut l, mut h) = (r.first_run, last);
        while l < h {
            let m = l + (h - l) / 2;
            let u = self.meta.run(m);
            if u.file_off + u.len <= f0 { l = m + 1 } else { h = m }
        }
        while l < last {
            let u = self.meta.run(l);
            if u.file_off >= f1 {
                break;
            }
            let (a, b) = (f0.max(u.file_off), f1.min(u.file_off + u.len));
            self.copy(u.addr + (a - u.file_off), (a - f0) as usize, (b - f0) as usize);
            l += 1;
        }
        for k in lp..end {
            set_bit(self.done, r.piece0 + k);
        }
        self.left -= end - lp;
    }

    /// Copy `buf[s..e)` to original address `o` and on, page by page where needed:
    /// resolved pages are left alone.
    fn copy(&mut self, o: u64, s: usize, e: usize) {
        let ri = match self.find(o) {
            Some(i) => i,
            None => return,
        };
        let r = self.regs[ri];
        let idx0 = r.page0 + (o - r.start) / PAGE;
        let mut p = s;
        // The most bytes one copy may cover. The kernel copies into one mapping
        // per call and refuses the whole call (ENOENT) when the range crosses
        // into another one, which the program's munmap, mmap or mremap may have
        // just made: the range is then halved until the copy stays in one
        // mapping, and only a single page refused is no longer the program's.
        let mut most = usize::MAX;
        while p < e {
            let page = |p: usize| idx0 + ((p - s) as u64) / PAGE;
            if bit(self.resolved, page(p)) {
                p += PAGE as usize;
                continue;
            }
            let at = o + (p - s) as u64;
            let dst = self.cur_of(at) as usize;
            let mut q = p + PAGE as usize;
            while q < e
                && q - p < most
                && !bit(self.resolved, page(q))
                && self.cur_of(o + (q - s) as u64) as usize == dst + (q - p)
            {
                q += PAGE as usize;
            }
            let (n, res) = uffd::ioctl_uffdio_copy(self.uffd, dst, &self.buf[p..q]);
            let n = n.min(q - p) & !(PAGE as usize - 1);
            for k in 0..n / PAGE as usize {
                set_bit(self.resolved, page(p) + k as u64);
            }
            match res {
                Ok(()) => {
                    for k in n / PAGE as usize..(q - p) / PAGE as usize {
                        set_bit(self.resolved, page(p) + k as u64);
                    }
                    p = q;
                    most = usize::MAX;
                }
                Err(Errno::EAGAIN) => {
                    p += n;
                    self.drain();
                }
                Err(Errno::ENOENT) => {
                    // Nothing was copied (a partial copy is EAGAIN). The kernel
                    // copies into one mapping per call, and looks the mapping up
                    // before it checks for a change in progress: the range may
                    // cross into a mapping the program just made (munmap, mmap,
                    // mremap, mprotect), or its page may have just moved, its
                    // event not read yet. Never a reason to drop a page by itself.
                    if self.drain() {
                        continue; // what changed is known now: compute again
                    }
                    if q - p > PAGE as usize {
                        most = ((q - p) / 2) & !(PAGE as usize - 1);
                        continue;
                    }
                    if self.await_change() {
                        continue;
                    }
                    // One page, not in the program's registered memory, and no
                    // change on its way: it is gone (unmapped without an event
                    // is not possible; say so rather than guess).
                    set_bit(self.resolved, page(p));
                    p += PAGE as usize;
                }
                Err(Errno::EEXIST) => {
                    // The page at `p` (nothing was copied) is already there.
                    let _ = uffd::ioctl_uffdio_wake(self.uffd, dst, PAGE as usize);
                    if !bit(self.resolved, page(p)) {
                        set_bit(self.resolved, page(p));
                        p += PAGE as usize;
                    }
                }
                Err(Errno::ESRCH) => self.quit(),
                Err(e) => self.fatal(ckpt_sys::msg::Msg::new().s("lazy restart: UFFDIO_COPY: ").errno(e)),
            }
        }
    }

    /// The program moved `[from, from+len)` to `to`: the pages of it still
    /// missing are filled at once at their new place.
    fn follow_remap(&mut self, (from, to, len): (u64, u64, u64)) {
        self.window = Some((from, to, len));
        let mut i = self.regs.partition_point(|r| r.end <= from);
        while i < self.regs.len() && self.regs[i].start < from + len {
            let r = self.regs[i];
            let (a, b) = (from.max(r.start), (from + len).min(r.end));
            for j in r.first_run..r.first_run + r.nruns {
                let u = self.meta.run(j);
                if u.addr + u.len <= a || u.addr >= b {
                    continue;
                }
                let fa = u.file_off + (a.max(u.addr) - u.addr);
                let fb = u.file_off + (b.min(u.addr + u.len) - u.addr);
                let (l0, l1) = ((fa - r.file0) / self.piece, (fb - 1 - r.file0) / self.piece + 1);
                self.fetch_range(i, l0, l1);
            }
            self.mark_orig(a, b);
            i += 1;
        }
        self.window = None;
    }

    /// The next BATCH bytes not in yet, in file order.
    fn prefetch(&mut self) {
        while self.cursor.0 < self.regs.len() {
            let (ri, lp) = self.cursor;
            let r = self.regs[ri];
            if lp >= r.npieces {
                self.cursor = (ri + 1, 0);
                continue;
            }
            if bit(self.done, r.piece0 + lp) {
                self.cursor.1 += 1;
                continue;
            }
            let per = (self.buf.len() as u64 / self.piece).max(1);
            let end = (lp + per).min(r.npieces);
            self.fetch(ri, lp, end);
            return;
        }
    }

    fn unreadable(&self, off: u64, len: usize, e: Option<Errno>) -> ! {
        let m = ckpt_sys::msg::Msg::new()
            .s("the image became unreadable while the program's memory was still arriving (lazy restart): cannot read ")
            .u(len as u64)
            .s(" bytes at offset ")
            .u(off)
            .s(": ");
        let m = match e {
            Some(e) => m.errno(e),
            None => m.s("unexpected end of file (was it truncated or rewritten in place?)"),
        };
        self.fatal(m.s("; the program is stopped (SIGKILL)"))
    }
}
