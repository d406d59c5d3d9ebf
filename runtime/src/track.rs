//! Write tracking for incremental images (`CKPT_INCREMENTAL`, docs/incremental.md).
//!
//! A userfaultfd of the runtime's own (`UFFD_USER_MODE_ONLY`, which an
//! unprivileged process may create; `UFFD_FEATURE_WP_ASYNC`, so a write to a
//! protected page is resolved by the kernel at once, with no handler thread and
//! no signal) has every mapping of the process registered for write-protection.
//! At each background checkpoint, at the moment of the writer's fork (in the
//! `CLONE_VM` child that forks it, while the program sleeps: `writer::spawn`):
//!
//! 1. `PAGEMAP_SCAN` lists every page `PAGE_IS_WRITTEN` since the previous fork:
//!    pages written in a registered mapping, and every page of a mapping that is
//!    not registered (made, moved by `mremap`, or grown since), so a new mapping
//!    counts as wholly written;
//! 2. every mapping is registered (again: registering is idempotent);
//! 3. a second scan with `PM_SCAN_WP_MATCHING` write-protects every written page,
//!    so the next scan sees only what is written after this fork.
//!
//! The list goes to the writer in a scratch buffer (left out of the image); the
//! writer (`write.rs`) stores a page only if it is written since, or was not in
//! the parent image, or lies in memory that can change without a write fault of
//! this process (shared and file-backed mappings, the stack below the save
//! point). Nothing the program does between the scan and the fork can write: it
//! is suspended in the kernel, its other threads are stopped, and this code
//! writes only its own stack and that buffer (runtime scratch).
//!
//! The process state here (descriptor, owner, epoch) lives in static memory and
//! is written only in the program, before the scan. A forked process has the
//! descriptor but not the registrations (`UFFD_FEATURE_EVENT_FORK` is not asked
//! for): it closes it and starts afresh. A restarted process has neither.
//!
//! Measured costs are in docs/incremental.md.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use ckpt_sys::msg::Msg;
use ckpt_sys::scratch::Scratch;
use ckpt_sys::{Errno, Fd, PageRegion, PmScanArg, c, page_is, uffd};

use crate::arch;
use crate::config::Config;

/// The runtime's userfaultfd (-1: none).
static FD: AtomicI32 = AtomicI32::new(-1);
/// Its device and inode, to tell it from a descriptor the program put there.
static FD_INO: AtomicU64 = AtomicU64::new(0);
/// The process the descriptor and registrations belong to.
static OWNER: AtomicI32 = AtomicI32::new(0);
/// Write-protection was set up at the last writer's fork, and every fork since
/// re-protected what it found written.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Number of the last arming (one per background checkpoint; 0: none yet).
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// Number of the last image written in chain naming (`NAME.SEQ`).
static SEQ: AtomicU64 = AtomicU64::new(0);
/// "Tracking is not available" was said.
static SAID: AtomicBool = AtomicBool::new(false);
/// "-z is ignored" was said.
static SAID_Z: AtomicBool = AtomicBool::new(false);

/// Lowest descriptor number the runtime's userfaultfd moves to, away from the
/// program's.
const FD_MIN: usize = 600;

/// Written ranges one scan may report (16 bytes each, reserved lazily): more
/// means the image is written full.
pub const MAX_RANGES: usize = 1 << 20;

/// What the writer of the previous image says once it is durable (in the
/// writer's shared page, `writer::report`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Report {
    /// The process whose image it is.
    pub owner: i32,
    /// Images in the chain above it (0: a full image).
    pub depth: u32,
    /// The epoch its snapshot was taken at.
    pub epoch: u64,
    /// Its number (`NAME.SEQ`).
    pub seq: u64,
    /// Its header's checksums and length: its identity.
    pub meta_hash: u64,
    pub data_hash: u64,
    pub file_len: u64,
    /// Number of the chain's full image.
    pub chain_first: u64,
    /// Bytes of every image of the chain up to it.
    pub chain_bytes: u64,
    /// Bytes of memory it describes (stored and inherited).
    pub described: u64,
}

/// One checkpoint's part in tracking, decided in the program before the fork.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Its epoch (what the writer reports back).
    pub epoch: u64,
    /// Its number in chain naming.
    pub seq: u64,
    /// The first arming: nothing is known yet, everything gets protected.
    pub first: bool,
    /// The image to write against, or None for a full image.
    pub parent: Option<Report>,
    /// The userfaultfd (the child that runs `at_fork` is another process).
    pub fd: i32,
}

/// The runtime's userfaultfd, to leave out of the descriptor table (None when
/// there is none in this process).
pub fn fd() -> Option<u32> {
    let fd = FD.load(Ordering::Relaxed);
    (fd >= 0 && OWNER.load(Ordering::Relaxed) == ckpt_sys::getpid()).then_some(fd as u32)
}

/// Mappings registered with write-protection are ours (see
/// `capture::maps::unsaveable`).
pub fn active() -> bool {
    fd().is_some() && ARMED.load(Ordering::Relaxed)
}

/// The restarted process has no userfaultfd and no registration; the number the
/// old one had may be one of the program's descriptors now (not closed).
pub fn forget_after_restart() {
    FD.store(-1, Ordering::Relaxed);
    ARMED.store(false, Ordering::Relaxed);
    OWNER.store(0, Ordering::Relaxed);
}

fn unavailable(why: &str, e: Errno) -> Option<Fd> {
    if !SAID.swap(true, Ordering::Relaxed) {
        Msg::new()
            .s("ckpt: warning: incremental checkpoints need write tracking (userfaultfd with WP_ASYNC, PAGEMAP_SCAN): ")
            .s(why)
            .s(": ")
            .errno(e)
            .s("; every image is written full")
            .emit();
    }
    None
}

/// (device, inode) of `fd` in one word.
fn identity(fd: Fd) -> Option<u64> {
    ckpt_sys::fstat(fd).ok().map(|s| (s.dev_major as u64) << 52 ^ (s.dev_minor as u64) << 32 ^ s.ino)
}

/// The runtime's userfaultfd, opened the first time (None: not available, said
/// once).
fn open() -> Option<Fd> {
    let me = ckpt_sys::getpid();
    if OWNER.load(Ordering::Relaxed) != me {
        // A forked process: the descriptor is the runtime's, the registrations
        // are its parent's.
        let old = FD.swap(-1, Ordering::Relaxed);
        if old >= 0 && OWNER.load(Ordering::Relaxed) != 0 {
            let _ = ckpt_sys::close(Fd(old));
        }
        ARMED.store(false, Ordering::Relaxed);
        OWNER.store(me, Ordering::Relaxed);
    }
    let cur = FD.load(Ordering::Relaxed);
    if cur >= 0 {
        if identity(Fd(cur)) == Some(FD_INO.load(Ordering::Relaxed)) {
            return Some(Fd(cur));
        }
        // The program closed it (and the registrations went with it), maybe
        // reused the number: it is not ours any more.
        FD.store(-1, Ordering::Relaxed);
        ARMED.store(false, Ordering::Relaxed);
    }
    let flags = (c::O_CLOEXEC | c::O_NONBLOCK).0 | uffd::USER_MODE_ONLY;
    let fd = match uffd::userfaultfd(flags) {
        Ok(fd) => fd,
        Err(e) => return unavailable("userfaultfd(UFFD_USER_MODE_ONLY)", e),
    };
    let want = uffd::FEATURE_WP_ASYNC | uffd::FEATURE_WP_UNPOPULATED;
    let fd = match uffd::ioctl_uffdio_api(fd, want) {
        Ok(f) if f & want == want => match ckpt_sys::fcntl(fd, c::F_DUPFD_CLOEXEC, FD_MIN) {
            Ok(high) => {
                let _ = ckpt_sys::close(fd);
                Fd(high as i32)
            }
            Err(_) => fd,
        },
        Ok(_) => {
            let _ = ckpt_sys::close(fd);
            return unavailable("the kernel lacks UFFD_FEATURE_WP_ASYNC", Errno::EOPNOTSUPP);
        }
        Err(e) => {
            let _ = ckpt_sys::close(fd);
            return unavailable("UFFDIO_API", e);
        }
    };
    FD_INO.store(identity(fd).unwrap_or(0), Ordering::Relaxed);
    FD.store(fd.0, Ordering::Relaxed);
    Some(fd)
}

/// The next image is full and protects everything again (a checkpoint that
/// could not take part).
pub fn disarm() {
    ARMED.store(false, Ordering::Relaxed);
}

/// Decide this checkpoint's part (None: no tracking, a plain image).
/// `last` is what the previous writer reported, if anything.
pub fn plan(cfg: &Config, last: Option<Report>) -> Option<Plan> {
    if cfg.incremental == 0 || cfg.dir || cfg.tree {
        return None;
    }
    if cfg.compress && !SAID_Z.swap(true, Ordering::Relaxed) {
        Msg::new().s("ckpt: warning: -z (CKPT_COMPRESS) is ignored with -I (CKPT_INCREMENTAL): incremental images are not compressed yet").emit();
    }
    let armed = open().is_some() && ARMED.load(Ordering::Relaxed);
    if FD.load(Ordering::Relaxed) < 0 {
        return None;
    }
    let epoch = EPOCH.load(Ordering::Relaxed);
    let me = ckpt_sys::getpid();
    // A child only of the image taken at the last arming, made durable, by us;
    // a full one every `incremental` images, or once the chain holds more bytes
    // than the memory it describes.
    let parent = last.filter(|r| {
        armed
            && r.owner == me
            && r.epoch == epoch
            && r.depth + 1 < cfg.incremental
            && r.chain_bytes <= r.described.max(1 << 20)
    });
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    EPOCH.store(epoch + 1, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    Some(Plan { epoch: epoch + 1, seq, first: !armed, parent, fd: FD.load(Ordering::Relaxed) })
}

/// The scan's result in its buffer: a status word, a count, then (start, end)
/// pairs, all u64 in native order.
pub mod scan {
    /// Not scanned: the image is written full.
    pub const NONE: u64 = 0;
    /// Scanned: the list is every page written since the previous fork.
    pub const OK: u64 = 1;
}

/// Bytes of the scan buffer.
pub const fn buffer_len() -> usize {
    16 + MAX_RANGES * 16
}

fn put(buf: &mut [u8], i: usize, v: u64) {
    buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get(buf: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or_default())
}

/// The written ranges a scan left in `buf` (None: not scanned).
pub fn written(buf: &[u8]) -> Option<impl Iterator<Item = (u64, u64)> + '_> {
    (get(buf, 0) == scan::OK).then(|| {
        let n = get(buf, 1) as usize;
        (0..n).map(move |i| (get(buf, 2 + 2 * i), get(buf, 3 + 2 * i)))
    })
}

/// At the writer's fork (see the module comment): list what was written since
/// the previous one into `buf` when `p.parent` needs it, then register and
/// write-protect everything. Runs in the `CLONE_VM` child, the program asleep.
pub fn at_fork(p: &Plan, buf: &mut [u8]) {
    put(buf, 0, scan::NONE);
    let fd = Fd(p.fd);
    let Ok(pagemap) = ckpt_sys::openat(Fd::CWD, c"/proc/self/pagemap", c::O_RDONLY | c::O_CLOEXEC, 0) else {
        ARMED.store(false, Ordering::Relaxed);
        return;
    };
    let top = ckpt_image::task_size(arch::ARCH);
    if p.parent.is_some() && !p.first {
        let mut n = 0usize;
        let cap = (buf.len() - 16) / 16;
        let r = each_written(pagemap, top, 0, |s, e| {
            if n == cap {
                return Err(Errno::ENOMEM);
            }
            // The kernel merges neighbouring ranges only within one call.
            if n > 0 && get(buf, 3 + 2 * (n - 1)) == s {
                put(buf, 3 + 2 * (n - 1), e);
            } else {
                put(buf, 2 + 2 * n, s);
                put(buf, 3 + 2 * n, e);
                n += 1;
            }
            Ok(())
        });
        if r.is_ok() {
            put(buf, 1, n as u64);
            put(buf, 0, scan::OK);
        }
    }
    // Register every mapping (new ones, moved ones), then protect every page
    // that counts as written. A mapping that cannot be registered ([vvar]...,
    // one another userfaultfd has) stays unregistered: always written.
    if let Ok((maps, len)) = ckpt_sys::scratch::read_whole(c"/proc/self/maps") {
        for e in ckpt_sys::maps::parse(&maps.as_slice()[..len]).filter(|e| !e.is_kernel_special()) {
            let _ = uffd::ioctl_uffdio_register(fd, e.start as usize, e.len() as usize, uffd::REGISTER_MODE_WP);
        }
    }
    if each_written(pagemap, top, PM_SCAN_WP_MATCHING, |_, _| Ok(())).is_err() {
        // Pages left unprotected only count as written next time; but a scan
        // that failed half-way says nothing reliable about the next one.
        ARMED.store(false, Ordering::Relaxed);
    }
    let _ = ckpt_sys::close(pagemap);
}

/// `PM_SCAN_WP_MATCHING`: write-protect the pages reported.
const PM_SCAN_WP_MATCHING: u64 = 1;

/// Call `f(start, end)` for every range of written pages below `top`.
fn each_written(
    pagemap: Fd,
    top: u64,
    flags: u64,
    mut f: impl FnMut(u64, u64) -> ckpt_sys::Result<()>,
) -> ckpt_sys::Result<()> {
    let mut out = [PageRegion::default(); 512];
    let mut at = ckpt_image::MIN_ADDR;
    while at < top {
        let mut arg = PmScanArg {
            start: at,
            end: top,
            flags,
            category_mask: page_is::WRITTEN,
            return_mask: page_is::WRITTEN,
            ..Default::default()
        };
        let n = ckpt_sys::ioctl_pagemap_scan(pagemap, &mut arg, &mut out)?;
        for r in &out[..n] {
            f(r.start, r.end)?;
        }
        if n < out.len() {
            return Ok(());
        }
        // Full: go on after the last range (walk_end is not always where the
        // ranges stop, docs/kernel.md §5).
        at = out[n - 1].end;
    }
    Ok(())
}

/// A scratch buffer for one scan (runtime scratch: left out of the image).
pub fn buffer() -> ckpt_sys::Result<Scratch> {
    Scratch::new(buffer_len())
}
