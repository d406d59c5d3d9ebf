//! The loader's address-space surgery: placing its "home" block where the saved
//! program will not be, moving into it, unmapping everything else and mapping the
//! saved regions back.
//!
//! # Safety
//! This module writes through raw addresses: into the home block it mapped itself,
//! and into regions it has just mapped from the validated metadata. After
//! `clear_address_space` the only memory left is the home block, the kernel's
//! special mappings and what `restore_regions` maps; the loader's code and stack
//! are in the home block, so nothing it uses disappears.
#![allow(unsafe_code)]

use ckpt_image::compress::{self, Compression, StoredPiece, codec};
use ckpt_image::hashes::DataHashes;
use ckpt_image::memory::{self, Guard, SharedView};
use ckpt_image::process::{ProcessState, vm};
use ckpt_image::section::{Table, tag};
use ckpt_image::{Meta, Process, RESTART_INFO_LEN, Region, RestartInfo, kind, page_up, prot, task_size};
use ckpt_sys::{Errno, Fd, IoVec, ProtFlags, c};

use crate::{Name, Plan, arch, die, die_errno, msg};

/// Room for the loader's stack in the home block.
const STACK_LEN: usize = 256 << 10;
/// Room for `/proc/self/maps` of the loader process (a dozen lines).
const MAPS_LEN: usize = 64 << 10;
/// Distance kept from saved regions (a saved stack's guard gap is 1 MiB).
const GAP: u64 = 1 << 20;

/// The home block: `[base, base+len)`, laid out as loader copy | plan | metadata |
/// maps buffer | vDSO parking | stack.
#[derive(Clone, Copy)]
pub struct Home {
    base: usize,
    len: usize,
    loader_len: usize,
    plan_off: usize,
    meta_off: usize,
    meta_len: usize,
    maps_off: usize,
    park_off: usize,
    park_len: usize,
    /// One memfd per shared object (see `restore_regions`): `nobjs` descriptors.
    objs_off: usize,
    nobjs: usize,
    /// The page a lazy restart shares with its pager and the runtime (`lazy`).
    status_off: usize,
    /// Compressed images: a stored piece as read, then a piece decoded (one piece
    /// size each), `z_len` bytes in all (0 without compression).
    z_off: usize,
    z_len: usize,
    /// An incremental image's parents' metadata and a piece buffer (`chain`).
    chain_off: usize,
    chain_len: usize,
    /// Where the kernel put [vvar], [vvar_vclock], [vdso] for this process.
    pub cur_vdso: [(u64, u64); 3],
}

impl Home {
    /// Reserve the home block somewhere no saved region (nor saved vDSO) lies and
    /// no current mapping is.
    pub fn place(name: &Name, meta: &Meta, cur_vdso: [(u64, u64); 3], chain_len: usize) -> Home {
        let (ls, le) = arch::loader_range();
        let loader_len = page_up((le - ls) as u64) as usize;
        let plan_off = loader_len;
        let meta_off = plan_off + page_up(core::mem::size_of::<Plan>() as u64) as usize;
        let meta_len = meta.header.meta_len as usize;
        let maps_off = meta_off + page_up(meta_len as u64) as usize;
        let lo = cur_vdso.iter().filter(|v| v.1 != 0).map(|v| v.0).min().unwrap_or(0);
        let hi = cur_vdso.iter().filter(|v| v.1 != 0).map(|v| v.0 + v.1).max().unwrap_or(0);
        let park_off = maps_off + MAPS_LEN;
        let park_len = page_up(hi - lo) as usize;
        let nobjs = shared_views(meta).map_or(0, |t| memory::object_count(&t) as usize);
        let objs_off = park_off + park_len;
        let status_off = objs_off + page_up(nobjs as u64 * 4) as usize;
        let z_off = status_off + 4096;
        let piece = meta.data_hashes().ok().flatten().map_or(0, |h| h.piece as usize);
        let z_len = if meta.compression().is_some() { 2 * piece } else { 0 };
        let chain_off = z_off + z_len;
        let chain_len = page_up(chain_len as u64) as usize;
        let len = chain_off + chain_len + STACK_LEN;
        let mut home = Home {
            base: 0,
            len,
            loader_len,
            plan_off,
            meta_off,
            meta_len,
            maps_off,
            park_off,
            park_len,
            objs_off,
            nobjs,
            status_off,
            z_off,
            z_len,
            chain_off,
            chain_len,
            cur_vdso,
        };
        home.base = find_free(name, meta, len as u64) as usize;
        home
    }

    /// The metadata copy.
    pub fn meta(&self) -> &'static [u8] {
        // SAFETY: [meta_off, meta_off+meta_len) of the home block was filled by
        // `enter` and the home block stays mapped for the rest of the loader's life.
        unsafe { core::slice::from_raw_parts((self.base + self.meta_off) as *const u8, self.meta_len) }
    }

    fn maps_buf(&self) -> &'static mut [u8] {
        // SAFETY: the maps buffer is part of the home block, used only by
        // `clear_address_space`, once.
        unsafe { core::slice::from_raw_parts_mut((self.base + self.maps_off) as *mut u8, MAPS_LEN) }
    }

    /// The memfd of each shared object (-1: not created yet).
    fn objs(&self) -> &'static mut [i32] {
        // SAFETY: the descriptor table is part of the home block, used only by
        // `restore_regions`, once.
        unsafe { core::slice::from_raw_parts_mut((self.base + self.objs_off) as *mut i32, self.nobjs) }
    }

    /// The lazy restart's status page.
    pub fn status(&self) -> usize {
        self.base + self.status_off
    }

    /// The buffers for compressed pieces: (stored, decoded), half of `z_len` each.
    fn z_bufs(&self) -> (&'static mut [u8], &'static mut [u8]) {
        let half = self.z_len / 2;
        // SAFETY: two disjoint halves of the part of the home block reserved for
        // them, used only by `restore_regions`, once.
        unsafe {
            (
                core::slice::from_raw_parts_mut((self.base + self.z_off) as *mut u8, half),
                core::slice::from_raw_parts_mut((self.base + self.z_off + half) as *mut u8, half),
            )
        }
    }

    /// The chain area (`chain::load`).
    pub fn chain_area(&self) -> &'static mut [u8] {
        // SAFETY: part of the home block reserved for it, used only by
        // `chain::load` and `chain::fill`, once.
        unsafe { core::slice::from_raw_parts_mut((self.base + self.chain_off) as *mut u8, self.chain_len) }
    }

    /// The parking area for the vDSO block while it moves.
    pub fn park(&self) -> (usize, usize) {
        (self.base + self.park_off, self.park_len)
    }

    fn contains(&self, a: u64) -> bool {
        a >= self.base as u64 && a < (self.base + self.len) as u64
    }
}

/// True if `[a, a+len)` (with GAP on both sides) meets a saved region or the
/// saved vDSO block.
fn collides(meta: &Meta, a: u64, len: u64) -> bool {
    let (lo, hi) = (a.saturating_sub(GAP), a + len + GAP);
    let meets = |s: u64, e: u64| s < hi && lo < e;
    if meta.process.vdso.iter().any(|&(s, l)| l != 0 && meets(s, s + l)) {
        return true;
    }
    // Regions are sorted and disjoint: find the first one ending above `lo`.
    let n = meta.nregions();
    let (mut l, mut r) = (0u32, n);
    while l < r {
        let m = l + (r - l) / 2;
        if meta.region(m).end <= lo { l = m + 1 } else { r = m }
    }
    l < n && meets(meta.region(l).start, meta.region(l).end)
}

/// Find and map (RW) a free block of `len` bytes; candidates sit next to saved
/// regions, so the search is short even with tens of thousands of regions.
fn find_free(name: &Name, meta: &Meta, len: u64) -> u64 {
    let top = task_size(meta.header.arch);
    let flags = c::MAP_PRIVATE | c::MAP_ANONYMOUS | c::MAP_FIXED_NOREPLACE;
    let rw = c::PROT_READ | c::PROT_WRITE;
    let candidates = meta.regions().flat_map(|r| [r.end + GAP, r.start.saturating_sub(len + GAP)]).chain([
        1 << 24,
        top / 3,
        top / 2,
    ]);
    for a in candidates {
        let a = a & !(ckpt_image::PAGE_SIZE - 1);
        if a < 1 << 16 || a + len > top || collides(meta, a, len) {
            continue;
        }
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        match unsafe { ckpt_sys::mmap(a as usize, len as usize, rw, flags, Fd(-1), 0) } {
            Ok(got) if got as u64 == a => return a,
            Ok(got) => {
                // Old kernels ignore NOREPLACE and return another address.
                // SAFETY: the mapping was just made and is not used.
                let _ = unsafe { ckpt_sys::munmap(got, len as usize) };
            }
            Err(Errno::EEXIST) => {}
            Err(e) => die_errno(name, "cannot reserve memory for the loader", e),
        }
    }
    die(msg(name).s("no room for the loader outside the saved address space"))
}

/// Move into the home block: copy the loader, the metadata and the plan, then call
/// `phase_two` (the address of the function in *this* copy) on the home stack.
pub fn enter(plan: &Plan, meta: &[u8], phase_two: usize) -> ! {
    let h = &plan.home;
    let (ls, _) = arch::loader_range();
    // SAFETY: [base, base+len) is the RW block `find_free` mapped for us alone.
    unsafe {
        arch::copy_self(h.base);
        core::ptr::copy_nonoverlapping(meta.as_ptr(), (h.base + h.meta_off) as *mut u8, meta.len());
        ((h.base + h.plan_off) as *mut Plan).write(*plan);
    }
    let rwx = c::PROT_READ | c::PROT_WRITE | c::PROT_EXEC;
    // SAFETY: only the loader copy's protection changes (it gains exec).
    if let Err(e) = unsafe { ckpt_sys::mprotect(h.base, h.loader_len, rwx) } {
        die_errno(&plan.name, "cannot make the loader copy executable", e);
    }
    let f = phase_two - ls + h.base;
    // SAFETY: the stack top is the end of the home block; `f` is phase_two in the
    // copy, which is position independent and has no relocations (xtask checks).
    unsafe { arch::call_on_stack(h.base + h.plan_off, h.base + h.len, f) }
}

/// The plan `enter` stored at `addr`.
pub fn plan_at(addr: usize) -> Plan {
    // SAFETY: `enter` wrote a Plan at exactly this address of the home block.
    unsafe { (addr as *const Plan).read() }
}

/// Unmap everything but the home block and the kernel's special mappings.
pub fn clear_address_space(plan: &Plan) {
    let h = &plan.home;
    let buf = h.maps_buf();
    let n = ckpt_sys::read_file(c"/proc/self/maps", buf)
        .unwrap_or_else(|e| die_errno(&plan.name, "cannot read /proc/self/maps", e));
    let (hs, he) = (h.base as u64, (h.base + h.len) as u64);
    for e in ckpt_sys::maps::parse(&buf[..n]) {
        if e.is_kernel_special() {
            continue;
        }
        // The kernel may have merged the home block with a neighbour: cut around it.
        for (s, t) in [(e.start, e.end.min(hs)), (e.start.max(he), e.end)] {
            if s < t {
                // SAFETY: nothing the loader still uses lies outside the home block.
                if let Err(err) = unsafe { ckpt_sys::munmap(s as usize, (t - s) as usize) } {
                    die_errno(&plan.name, "cannot unmap the loader's old memory", err);
                }
            }
        }
        debug_assert!(!h.contains(e.start) || e.end <= he || e.start >= hs);
    }
}

/// The file offset of `r`'s data if it is a private file mapping saved whole (one
/// run covering it): such a region is mapped straight from the checkpoint file.
/// In a compressed image its pieces are stored plain, page-aligned and back to
/// back (checked by `compress::check_against`), from its first piece's offset.
fn mapped_from_image(meta: &Meta, r: &Region, check: &Check) -> Option<u64> {
    let run = meta.runs_of(r).next()?;
    if !compress::mapped_from_image(r, Some(&run)) {
        return None;
    }
    match &check.stored {
        Some(c) => c.piece(check.next).map(|p| p.off),
        None => Some(run.file_off),
    }
}

/// Check mapped-from-image regions against their piece hashes too (reading them
/// through the new mapping), not only the regions that are read. See
/// docs/process-state.md for the measured cost.
const CHECK_MAPPED: bool = true;

/// The page data's per-piece checks: which piece comes next, and the hashes.
struct Check<'a> {
    hashes: Option<DataHashes<'a>>,
    next: u64,
    /// Where each piece is stored, in a compressed image.
    stored: Option<Compression<'a>>,
    /// The checker process does them (`start_checker`): pieces are only counted.
    deferred: bool,
}

/// End the restart on a damaged piece: `k`, at file offset `off`, `len` bytes.
fn damaged(plan: &Plan, h: &DataHashes, k: u64, off: u64, len: u64, got: u64) -> ! {
    die(msg(&plan.name)
        .s("the page data is damaged (piece ")
        .u(k)
        .s(" at offset ")
        .u(off)
        .s(", ")
        .u(len)
        .s(" bytes: ")
        .s(h.algo.name())
        .s(" ")
        .x(got)
        .s(", the image says ")
        .x(h.hash(k).unwrap_or(!got))
        .s("); not restarting"))
}

impl Check<'_> {
    /// Compare the hash of the piece just read or mapped (`parts`, at file offset
    /// `off`, `len` bytes in all) with the image's; refuse the image if it differs.
    fn piece(&mut self, plan: &Plan, off: u64, parts: &[IoVec]) {
        let Some(h) = &self.hashes else { return };
        if self.deferred {
            self.next += 1;
            return;
        }
        let mut x = h.algo.digest();
        let mut len = 0u64;
        for v in parts {
            // SAFETY: `v` lies in a saved region just mapped readable and filled
            // (read by preadv, or mapped from the file); nothing else refers to it.
            x.update(unsafe { core::slice::from_raw_parts(v.base as *const u8, v.len) });
            len += v.len as u64;
        }
        let got = x.finish();
        if Some(got) != h.hash(self.next) {
            damaged(plan, h, self.next, off, len, got);
        }
        self.next += 1;
    }

    /// Bytes to read before a hash check (a piece), or unlimited without hashes.
    fn limit(&self) -> u64 {
        self.hashes.map_or(u64::MAX, |h| h.piece)
    }
}

/// Map every saved region and fill its runs from the file.
///
/// - A MAP_SHARED mapping of a file listed in the FILES section is mapped from
///   that file again (see `files`).
/// - A private file mapping saved whole (program and library text and data) is
///   mapped from the checkpoint file itself, MAP_PRIVATE at its data's offset,
///   with its own protection: no copy, pages only read stay shared with the page
///   cache, written ones are copied on write, as in the original process. The
///   image is page-aligned for this, and never rewritten in place (a new
///   checkpoint is a new file renamed over the name), so the mapping stays valid.
/// - Everything else (anonymous memory, heap, stack, shared memory) is mapped
///   anonymous, so that it stays anonymous memory: MADV_DONTNEED must zero-fill it,
///   not bring back the image's content. Its runs are contiguous in the file, so
///   they are read with one `preadv` per piece of the DATA_HASHES section
///   (256 KiB), straight into place, and each piece is hashed right after it is
///   read, while it is in the cache; pages outside every run stay zero. Nothing is
///   populated first: on this kernel, 1 GiB filled by pread into fresh memory took
///   425 ms, against 445-455 ms with MAP_POPULATE or MADV_POPULATE_WRITE before the
///   read (each page is zeroed at the fault either way).
///
/// - The regions that map one shared object (the SHARED section) are mapped
///   MAP_SHARED from one memfd per object, each at its offset, so that they
///   share again; the object is filled through them like anonymous memory.
/// - Last, the guard pages (the GUARDS section) are installed again.
///
/// A piece whose hash differs ends the restart (exit status 1) before the program
/// runs, naming the piece's file offset. With `deferred` a checker process
/// checks the pieces (`start_checker`): here they are only counted, and the
/// mapped-from-image regions are not read.
pub fn restore_regions(
    plan: &Plan,
    meta: &Meta,
    lazy: &mut crate::lazy::Setup,
    fill: &mut crate::chain::Fill,
    deferred: bool,
) {
    let mut iov = [IoVec::default(); ckpt_sys::IOV_MAX];
    let files = crate::files::section(meta);
    let mut orig = [IoVec::default(); ckpt_sys::IOV_MAX];
    // Validated by Meta::parse, count included.
    let mut check = Check { hashes: meta.data_hashes().ok().flatten(), next: 0, stored: meta.compression(), deferred };
    let (zin, zout) = plan.home.z_bufs();
    // The mapping flags (validated by Meta::parse); images without them get the
    // flags this loader always gave.
    let pstate = meta.sections.get(tag::PROCESS).and_then(|s| ProcessState::parse(s.data).ok());
    let views = shared_views(meta);
    let objs = plan.home.objs();
    objs.fill(-1);
    let mut next_view = 0usize;
    for (i, r) in meta.regions().enumerate() {
        let view = views.and_then(|t| t.at(next_view)).filter(|v| v.region == i as u32);
        next_view += view.is_some() as usize;
        let len = (r.end - r.start) as usize;
        let vmf = pstate.map_or(vm::NORESERVE, |p| p.map_flags(r.start));
        // A MAP_SHARED mapping of a file that is still there (checked in phase
        // one): mapped from that file again, so the program's writes reach it;
        // its content is the file's (the saved copy is not read).
        let shared_file = files.and_then(|f| Some((f, f.map_at(r.start).filter(|m| m.end == r.end)?)));
        if let (kind::SHARED, Some((f, m))) = (r.kind, shared_file) {
            let fd = crate::files::open_map_file(&f, &m).unwrap_or_else(|e| {
                die(msg(&plan.name).s("cannot open the file of shared mapping ").x(r.start).s(" again: ").errno(e))
            });
            let flags = c::MAP_FIXED_NOREPLACE | c::MAP_SHARED;
            // SAFETY: NOREPLACE, and the range is cleared and not the home block,
            // as below.
            let res =
                unsafe { ckpt_sys::mmap(r.start as usize, len, ckpt_sys::ProtFlags(r.prot), flags, fd, m.offset) };
            let _ = ckpt_sys::close(fd);
            if let Err(e) = res {
                die(msg(&plan.name).s("cannot map the shared file mapping ").x(r.start).s(": ").errno(e));
            }
            // Its saved pages are not read: their piece checks are passed over.
            if check.hashes.is_some() {
                let saved: u64 = meta.runs_of(&r).map(|u| u.len).sum();
                check.next += ckpt_image::hashes::pieces_of(saved, check.limit());
            }
            apply_flags(plan, &r, vmf);
            continue;
        }
        if let Some(off) = mapped_from_image(meta, &r, &check) {
            let flags = c::MAP_FIXED_NOREPLACE | c::MAP_PRIVATE;
            let verify = CHECK_MAPPED && check.hashes.is_some() && !deferred;
            let first = if verify { r.prot | prot::READ } else { r.prot };
            let at = plan.base + off;
            // SAFETY: NOREPLACE, and the range is cleared and not the home block,
            // as below; the run was validated to lie in the file's data.
            if let Err(e) = unsafe { ckpt_sys::mmap(r.start as usize, len, ProtFlags(first), flags, plan.fd, at) } {
                die(msg(&plan.name)
                    .s("cannot map saved region ")
                    .x(r.start)
                    .s("-")
                    .x(r.end)
                    .s(" from the image: ")
                    .errno(e));
            }
            if verify {
                let piece = check.limit() as usize;
                let mut at = 0usize;
                while at < len {
                    let n = piece.min(len - at);
                    check.piece(plan, off + at as u64, &[IoVec { base: r.start as usize + at, len: n }]);
                    at += n;
                }
                if first != r.prot {
                    // SAFETY: the region is the program's, not the loader's.
                    if let Err(e) = unsafe { ckpt_sys::mprotect(r.start as usize, len, ProtFlags(r.prot)) } {
                        die(msg(&plan.name).s("cannot protect region ").x(r.start).s(": ").errno(e));
                    }
                }
            } else if check.hashes.is_some() {
                check.next += ckpt_image::hashes::pieces_of(len as u64, check.limit());
            }
            apply_flags(plan, &r, vmf);
            continue;
        }
        // Memory a tree's processes share: mapped from the memfd the root made
        // and filled before the forks (`tree::Pipes`), not read again here.
        if let Some((v, tfd)) = view.and_then(|v| Some((v, plan.tree.shm_fd(v.dev, v.inode)?))) {
            let flags = c::MAP_FIXED_NOREPLACE | c::MAP_SHARED;
            // SAFETY: NOREPLACE, and the range is cleared and not the home block.
            if let Err(e) = unsafe { ckpt_sys::mmap(r.start as usize, len, ProtFlags(r.prot), flags, tfd, v.offset) } {
                die(msg(&plan.name).s("cannot map the memory the tree shares at ").x(r.start).s(": ").errno(e));
            }
            if check.hashes.is_some() {
                let saved: u64 = meta.runs_of(&r).map(|u| u.len).sum();
                check.next += ckpt_image::hashes::pieces_of(saved, check.limit());
            }
            apply_flags(plan, &r, vmf);
            continue;
        }
        let mut flags = c::MAP_FIXED_NOREPLACE | c::MAP_ANONYMOUS;
        flags |= if r.kind == kind::SHARED { c::MAP_SHARED } else { c::MAP_PRIVATE };
        // Only where the program had it: a mapping without it is charged against
        // the commit limit, as it was.
        if vmf & vm::NORESERVE != 0 && r.kind != kind::SHARED {
            flags |= c::MAP_NORESERVE;
        }
        if r.kind == kind::STACK || vmf & vm::GROWSDOWN != 0 {
            flags |= c::MAP_GROWSDOWN;
        }
        let (mut fd, mut off) = (Fd(-1), 0);
        // A memfd or deleted file the program holds a descriptor of too: mapped
        // from that descriptor (restored before), so that both share its pages
        // again; the saved pages are read into it through the mapping.
        let held =
            (r.kind == kind::SHARED).then(|| files.and_then(|f| crate::files::held_content(&f, meta, &r))).flatten();
        if let Some(h) = held {
            (fd, off) = (h, r.file_offset);
            flags = c::MAP_FIXED_NOREPLACE | c::MAP_SHARED;
        } else if let Some(v) = view {
            fd = object_fd(plan, objs, &v, len as u64);
            off = v.offset;
            flags = c::MAP_FIXED_NOREPLACE | c::MAP_SHARED;
        }
        let rw = prot::READ | prot::WRITE;
        let lazily = crate::lazy::wanted(lazy, meta, &r, vmf, view.is_some());
        let inherits = crate::chain::inherits(meta, &r);
        let first = if (r.nruns > 0 || inherits) && !lazily { rw } else { r.prot };
        // SAFETY: NOREPLACE: the range was cleared and is not the home block (it
        // was placed away from every region), so nothing in use is replaced.
        if let Err(e) = unsafe { ckpt_sys::mmap(r.start as usize, len, ProtFlags(first), flags, fd, off) } {
            die(msg(&plan.name).s("cannot map saved region ").x(r.start).s("-").x(r.end).s(": ").errno(e));
        }
        if lazily && crate::lazy::register(lazy, plan, i as u32, &r) {
            // Its pages come on first touch and from the pager, which checks
            // their pieces itself.
            if check.hashes.is_some() {
                let saved: u64 = meta.runs_of(&r).map(|u| u.len).sum();
                check.next += ckpt_image::hashes::pieces_of(saved, check.limit());
            }
            apply_flags(plan, &r, vmf);
            continue;
        }
        if lazily && r.prot != rw {
            // Registration refused: read it now, which needs it writable.
            // SAFETY: the region is the program's, just mapped, not the loader's.
            if let Err(e) = unsafe { ckpt_sys::mprotect(r.start as usize, len, ProtFlags(rw)) } {
                die(msg(&plan.name).s("cannot protect region ").x(r.start).s(": ").errno(e));
            }
        }
        let first = if lazily { rw } else { first };
        let limit = check.limit();
        let mut runs = meta.runs_of(&r);
        // The run being read and how much of it is done.
        let mut cur = None;
        loop {
            let (mut n, mut bytes, mut off) = (0, 0u64, None);
            while n < iov.len() && bytes < limit {
                if cur.is_none() {
                    cur = runs.next().map(|u| (u, 0u64));
                }
                let Some((u, done)) = cur else { break };
                let take = (u.len - done).min(limit - bytes);
                off.get_or_insert(u.file_off + done);
                iov[n] = IoVec { base: (u.addr + done) as usize, len: take as usize };
                n += 1;
                bytes += take;
                cur = if done + take == u.len { None } else { Some((u, done + take)) };
            }
            let Some(off) = off else { break };
            let at = iov[0].base as u64;
            if let Some(c) = &check.stored {
                let p = c.piece(check.next).unwrap_or_default();
                orig[..n].copy_from_slice(&iov[..n]);
                unpack(plan, &p, &mut iov[..n], bytes, check.next, zin, zout);
                check.piece(plan, p.off, &orig[..n]);
                continue;
            }
            // preadv_exact trims the entries it has read: hash from a copy.
            if check.hashes.is_some() {
                orig[..n].copy_from_slice(&iov[..n]);
            }
            // SAFETY: every run lies inside the region just mapped read-write
            // (validated by Meta::parse), which nothing references; the runs of a
            // region follow each other in the file (also validated), so they are
            // read from the first one's offset on.
            if let Err(e) = unsafe { ckpt_sys::preadv_exact(plan.fd, &mut iov[..n], plan.base + off) } {
                die(msg(&plan.name).s("cannot read saved memory at ").x(at).s(": ").errno(e));
            }
            check.piece(plan, off, &orig[..n]);
        }
        if inherits {
            crate::chain::fill(fill, meta, &r);
        }
        if first != r.prot {
            // SAFETY: the region is the program's, not the loader's.
            if let Err(e) = unsafe { ckpt_sys::mprotect(r.start as usize, len, ProtFlags(r.prot)) } {
                die(msg(&plan.name).s("cannot protect region ").x(r.start).s(": ").errno(e));
            }
        }
        apply_flags(plan, &r, vmf);
    }
    for &fd in objs.iter().filter(|&&fd| fd >= 0) {
        let _ = ckpt_sys::close(Fd(fd));
    }
    let (lo, hi) = plan.tree.shm_range();
    if hi > lo {
        let _ = ckpt_sys::close_range(lo as u32, hi as u32 - 1, 0);
    }
    for g in guard_ranges(meta).iter().flat_map(|t| t.iter()) {
        let (at, len) = (g.start as usize, (g.end - g.start) as usize);
        // SAFETY: validated to lie inside a restored region (`memory::check_against`);
        // guard pages only make that memory fault, and nothing references it.
        let r = unsafe { ckpt_sys::madvise(at, len, c::MADV_GUARD_INSTALL) };
        if let Err(e) = r {
            die(msg(&plan.name).s("cannot install guard pages at ").x(g.start).s("-").x(g.end).s(": ").errno(e));
        }
    }
}

/// `./prog.ckpt --no-page-check` or `CKPT_PAGE_CHECK=0`: do not check the pieces
/// the loader reads or maps from the image (the lazy pager and an incremental
/// image's parents still check theirs). For measuring what the checks cost
/// (`cargo xtask bench`), or to try an image `ckpt verify` found damaged,
/// knowingly: said on stderr at every such restart.
pub fn page_checks(name: &Name, sp: usize) -> bool {
    let mut on = arch::env(sp, b"CKPT_PAGE_CHECK") != Some(b"0");
    let mut i = 1;
    while let Some(a) = arch::arg(sp, i) {
        if a == b"--no-page-check" {
            on = false;
        }
        i += 1;
    }
    if !on {
        msg(name).s("warning: the page data is not checked (--no-page-check or CKPT_PAGE_CHECK=0)").emit();
    }
    on
}

/// With at least this much page data to check, the checks run in a fork of the
/// loader (`start_checker`); below it they are done inline, as each piece is
/// read. Measured (docs/process-state.md §1): for a small C program (2.3 MiB,
/// nearly all of it libraries mapped from the image) the fork, the checker's
/// copy of the pieces and the wait cost more than inline hashing does.
const PARALLEL_MIN: u64 = 8 << 20;

/// Phase two, with the address space cleared (the fork copies only the home
/// block): start a process that checks every piece this restart reads or maps
/// from the image against DATA_HASHES, reading the pieces from the file itself
/// (the same immutable bytes the restore reads: an image is never rewritten in
/// place), so the hashing runs on the other CPU while this process fills its
/// memory. Returns its pid, or None: the checks are then inline
/// (`restore_regions`), as for compressed images (pieces would be decoded
/// twice), lazy restarts (the pager checks what it copies, when it does) and
/// trees (a fork would take a pid of the tree's namespace).
///
/// The pieces it checks are those `restore_regions` checks: every region's
/// data but that of MAP_SHARED file mappings mapped from their file again.
pub fn start_checker(plan: &Plan, meta: &Meta, lazy: &crate::lazy::Setup) -> Option<i32> {
    let h = meta.data_hashes().ok().flatten().filter(|_| plan.page_check)?;
    if meta.compression().is_some() || lazy.mode != crate::lazy::Mode::Off || plan.in_tree {
        return None;
    }
    if meta.regions().map(|r| meta.data_range(&r)).map(|(s, e)| e - s).sum::<u64>() < PARALLEL_MIN {
        return None;
    }
    // SAFETY: the loader holds no lock and runs no other thread; the child only
    // reads the file and its copy of the home block, then exits.
    match unsafe { ckpt_sys::task::clone_fork_nosignal() } {
        Ok(0) => check_all(plan, meta, &h),
        Ok(pid) => Some(pid),
        // The inline checks do it.
        Err(_) => None,
    }
}

/// The checker: each piece read from the file into a buffer and hashed. Exits
/// 0, or says which piece is damaged and exits with the loader's failure status.
fn check_all(plan: &Plan, meta: &Meta, h: &DataHashes) -> ! {
    let mut buf = ckpt_sys::scratch::Scratch::new(h.piece as usize)
        .unwrap_or_else(|e| die(msg(&plan.name).s("cannot check the page data (its buffer: ").errno(e).s(")")));
    let buf = buf.bytes();
    let files = crate::files::section(meta);
    for p in ckpt_image::hashes::pieces(meta, h.piece) {
        let r = &p.region;
        if r.kind == kind::SHARED && files.and_then(|f| f.map_at(r.start)).is_some_and(|m| m.end == r.end) {
            continue;
        }
        let b = &mut buf[..p.len as usize];
        crate::read_exact(&plan.name, plan.fd, b, plan.base + p.off);
        let mut x = h.algo.digest();
        x.update(b);
        let got = x.finish();
        if Some(got) != h.hash(p.index) {
            damaged(plan, h, p.index, p.off, p.len, got);
        }
    }
    ckpt_sys::exit_group(0)
}

/// Wait for the checker (if one runs): the program runs only once every piece
/// was found whole. A damaged piece was said by the checker; this process ends
/// with the same status.
pub fn finish_checker(plan: &Plan, pid: Option<i32>) {
    use ckpt_sys::task::Ended;
    let Some(pid) = pid else { return };
    match ckpt_sys::task::waitid_clone_status(pid) {
        Ok(Ended::Exited(0)) => {}
        Ok(Ended::Exited(status)) => ckpt_sys::exit_group(status),
        Ok(Ended::Killed(sig)) => die(msg(&plan.name)
            .s("the check of the page data did not finish (its process was killed by signal ")
            .u(sig as u64)
            .s("); not restarting")),
        Err(e) => die(msg(&plan.name).s("cannot wait for the check of the page data: ").errno(e).s("; not restarting")),
    }
}

/// Copy `bytes` to `to` in a saved region (an incremental image's inherited
/// pages, `chain::fill`).
pub fn copy_into(to: u64, bytes: &[u8]) {
    // SAFETY: `chain::fill` runs from `restore_regions` on a region it has just
    // mapped read-write, and the range is an inherited range inside it
    // (validated by `Meta::parse`); nothing references that memory.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to as usize as *mut u8, bytes.len()) }
}

/// Fill the destination `iov` (`len` bytes, the whole piece number `index`) from
/// its stored form `p` (validated by `Meta::parse` to lie in the file, plain ones
/// as long as the piece): plain, read in place; LZ4, read into `zin` and decoded
/// in place when the piece is one stretch of memory, else into `zout` and copied.
/// A block that does not decode ends the restart, naming the piece and offset.
fn unpack(plan: &Plan, p: &StoredPiece, iov: &mut [IoVec], len: u64, index: u64, zin: &mut [u8], zout: &mut [u8]) {
    let at = iov.first().map_or(0, |v| v.base as u64);
    let read_fail = |e| -> ! { die(msg(&plan.name).s("cannot read saved memory at ").x(at).s(": ").errno(e)) };
    if p.codec == codec::NONE {
        // SAFETY: the pieces lie inside a region just mapped read-write that
        // nothing references (validated runs, as for an uncompressed image).
        if let Err(e) = unsafe { ckpt_sys::preadv_exact(plan.fd, iov, plan.base + p.off) } {
            read_fail(e)
        }
        return;
    }
    let clen = p.len as usize;
    if clen > zin.len() || len as usize > zout.len() {
        die(msg(&plan.name)
            .s("the page data is damaged (piece ")
            .u(index)
            .s(" at offset ")
            .u(p.off)
            .s(" is longer than a piece)"));
    }
    let mut v = [IoVec { base: zin.as_mut_ptr() as usize, len: clen }];
    // SAFETY: `zin` is the loader's own buffer in its home block.
    if let Err(e) = unsafe { ckpt_sys::preadv_exact(plan.fd, &mut v, plan.base + p.off) } {
        read_fail(e)
    }
    let one = iov.len() == 1;
    let dst: &mut [u8] = if one {
        // SAFETY: one stretch of a region just mapped read-write, which no
        // reference covers (as for preadv above); `len` is its length.
        unsafe { core::slice::from_raw_parts_mut(iov[0].base as *mut u8, len as usize) }
    } else {
        &mut zout[..len as usize]
    };
    if let Err(e) = compress::decode(&zin[..clen], dst) {
        die(msg(&plan.name)
            .s("the page data is damaged (piece ")
            .u(index)
            .s(" at offset ")
            .u(p.off)
            .s(": its LZ4 block does not decode, at offset ")
            .u(p.off + e.at as u64)
            .s("); not restarting"));
    }
    if !one {
        let mut from = 0usize;
        for v in iov.iter() {
            // SAFETY: as above, each piece of the destination is ours to fill.
            let d = unsafe { core::slice::from_raw_parts_mut(v.base as *mut u8, v.len) };
            d.copy_from_slice(&zout[from..from + v.len]);
            from += v.len;
        }
    }
}

/// Make PROT_READ mean only that while the regions are mapped: a restarting
/// shell run with READ_IMPLIES_EXEC (`setarch -X`, or an old i386 binary without
/// PT_GNU_STACK up the chain) hands the flag down through exec, and every region
/// would come back executable. The program's own personality, flag included if
/// it had it, is set again by the runtime after the jump.
pub fn exact_protections(name: &Name) {
    match ckpt_sys::settings::personality(0xffff_ffff) {
        Ok(p) if p & c::READ_IMPLIES_EXEC != 0 => {
            if let Err(e) = ckpt_sys::settings::personality(p & !c::READ_IMPLIES_EXEC) {
                msg(name)
                    .s("warning: cannot clear READ_IMPLIES_EXEC; readable regions come back executable: ")
                    .errno(e)
                    .emit();
            }
        }
        _ => {}
    }
}

use ckpt_sys::c::{MADV_DONTFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WIPEONFORK};

/// Give a restored region the flags the program had set on it (VmFlags of
/// smaps): MADV_DONTFORK, MADV_WIPEONFORK, MADV_HUGEPAGE / NOHUGEPAGE, mlock.
/// A failure is a warning (the memory is right; a property of it is not).
fn apply_flags(plan: &Plan, r: &Region, vmf: u64) {
    let len = (r.end - r.start) as usize;
    let advice = [
        (vm::DONTFORK, MADV_DONTFORK, "MADV_DONTFORK"),
        (vm::WIPEONFORK, MADV_WIPEONFORK, "MADV_WIPEONFORK"),
        (vm::HUGEPAGE, MADV_HUGEPAGE, "MADV_HUGEPAGE"),
        (vm::NOHUGEPAGE, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"),
    ];
    for (bit, adv, name) in advice {
        if vmf & bit != 0 {
            // SAFETY: these advices change how the region is inherited or backed,
            // never its content.
            if let Err(e) = unsafe { ckpt_sys::madvise(r.start as usize, len, adv) } {
                msg(&plan.name).s("warning: could not restore ").s(name).s(" on ").x(r.start).s(": ").errno(e).emit();
            }
        }
    }
    if vmf & vm::LOCKED != 0
        && let Err(e) = ckpt_sys::settings::mlock2(r.start as usize, len, 0)
    {
        msg(&plan.name)
            .s("warning: could not lock region ")
            .x(r.start)
            .s(" in memory again (mlock, RLIMIT_MEMLOCK of the restarting shell): ")
            .errno(e)
            .emit();
    }
}

/// The SHARED section's views, if the image has any.
fn shared_views<'a>(meta: &Meta<'a>) -> Option<Table<'a, SharedView>> {
    meta.sections.get(tag::SHARED).and_then(|s| memory::views(&s).ok())
}

/// The GUARDS section's ranges, if the image has any.
fn guard_ranges<'a>(meta: &Meta<'a>) -> Option<Table<'a, Guard>> {
    meta.sections.get(tag::GUARDS).and_then(|s| memory::guards(&s).ok())
}

/// The memfd of view `v`'s object, created at its first view, and long enough
/// for this view's `len` bytes at its offset.
fn object_fd(plan: &Plan, objs: &mut [i32], v: &SharedView, len: u64) -> Fd {
    let slot = &mut objs[v.object as usize];
    if *slot < 0 {
        match ckpt_sys::memfd_create(c"ckpt-shared", c::MFD_CLOEXEC) {
            Ok(fd) => *slot = fd.0,
            Err(e) => die_errno(&plan.name, "cannot create a memfd for shared memory", e),
        }
    }
    let fd = Fd(*slot);
    let size = ckpt_sys::fstat(fd).map_or(0, |st| st.size);
    if size < v.offset + len
        && let Err(e) = ckpt_sys::ftruncate(fd, v.offset + len)
    {
        die_errno(&plan.name, "cannot size the memfd for shared memory", e);
    }
    fd
}

/// Check in phase one that this kernel can put back what the image needs beyond
/// plain mappings: guard pages need `MADV_GUARD_INSTALL` (Linux 6.13).
pub fn check_kernel_support(name: &Name, meta: &Meta) {
    let Some(g) = guard_ranges(meta).and_then(|t| t.at(0)) else { return };
    let rw = c::PROT_READ | c::PROT_WRITE;
    // SAFETY: a fresh page of our own, given back at once.
    let probe = unsafe { ckpt_sys::mmap(0, 4096, rw, c::MAP_PRIVATE | c::MAP_ANONYMOUS, Fd(-1), 0) };
    let r = probe.and_then(|p| {
        // SAFETY: the page is ours and unused.
        let r = unsafe { ckpt_sys::madvise(p, 4096, c::MADV_GUARD_INSTALL) };
        // SAFETY: as above.
        let _ = unsafe { ckpt_sys::munmap(p, 4096) };
        r
    });
    if let Err(e) = r {
        die(msg(name)
            .s("this kernel cannot install guard pages (MADV_GUARD_INSTALL, Linux 6.13 and later: ")
            .errno(e)
            .s("), which the program had, first at ")
            .x(g.start)
            .s("; restart it on a newer kernel"));
    }
}

/// Check in phase one that the runtime's restart-info slot lies in a saved writable
/// region, so `store_restart_info` cannot fault after the point of no return.
pub fn check_restart_info(name: &Name, meta: &Meta) {
    let a = meta.process.restart_info;
    let ok = a.is_multiple_of(8)
        && meta.regions().any(|r| r.prot & prot::WRITE != 0 && a >= r.start && a + RESTART_INFO_LEN as u64 <= r.end);
    if !ok {
        die(msg(name).s(ckpt_image::ImageError::BadLayout.what()).s(" (restart slot ").x(a).s(")"));
    }
}

/// Tell the restarted runtime where the home block is, so it can unmap it.
pub fn store_restart_info(plan: &Plan, meta: &Meta, lazy_status: u64) {
    let info = RestartInfo {
        magic: RestartInfo::MAGIC,
        loader_start: plan.home.base as u64,
        loader_len: plan.home.len as u64,
        sections_addr: meta.sections.as_bytes().as_ptr() as u64,
        sections_len: meta.sections.as_bytes().len() as u64,
        flags: if ckpt_sys::trace::on() { RestartInfo::TRACE } else { 0 },
        started_ns: plan.started_ns,
        lazy_status,
    };
    let mut b = [0u8; RESTART_INFO_LEN];
    info.encode(&mut b);
    // SAFETY: checked by `check_restart_info`: the slot lies inside a restored writable
    // region (the runtime's own static), which only the runtime reads.
    unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), meta.process.restart_info as *mut u8, b.len()) };
}

/// Final jump; returns only the error of setting the thread pointer.
pub fn jump(p: &Process) -> Errno {
    // SAFETY: every region is restored; the runtime resumes at its save point.
    match unsafe { arch::jump(&p.regs, 1) } {
        Err(e) => e,
        Ok(()) => Errno::EINVAL,
    }
}

/// Create every thread of the image but the leader (which is this thread), each
/// with its old tid (we are in the pid namespace `ids` made) and starting at its
/// own save point, with the clone flags of a pthread. They run loader code (the
/// assembly of `ckpt_start_thread`) only until their first jump, and the restarted
/// runtime waits for all of them to check in before it unmaps the home block.
pub fn start_threads(plan: &Plan, meta: &Meta) {
    use ckpt_image::threads::{THREAD_LEN, Thread};
    use ckpt_sys::task::*;
    let (Some(table), Some(sec)) = (meta.threads(), meta.sections.get(ckpt_image::section::tag::THREADS)) else {
        return;
    };
    let pid = meta.process.pid;
    let flags = CLONE_VM as u64 | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS;
    for (i, t) in table.iter().enumerate() {
        if t.tid == pid {
            continue;
        }
        let tid = [t.tid as i32];
        let mut args =
            CloneArgs { flags, set_tid: tid.as_ptr() as usize as u64, set_tid_size: 1, ..Default::default() };
        // The record's registers, in place in the metadata copy (home block).
        let ctx = sec.data[8 + i * THREAD_LEN + Thread::REGS_OFFSET..].as_ptr();
        // SAFETY: the address space is restored; the metadata copy stays mapped
        // until the runtime has seen every thread check in; signals are blocked.
        if let Err(e) = unsafe { arch::start_thread(&mut args, &t.regs, ctx) } {
            die(msg(&plan.name).s("cannot recreate thread ").u(t.tid).s(" (clone3 with its tid): ").errno(e));
        }
    }
}
