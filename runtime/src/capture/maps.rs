//! The address space as it goes into the image: one region per mapping of
//! /proc/self/maps, and for each region the runs of pages worth saving.
//!
//! Which pages are saved:
//! - private file mappings (program and library text and data), readable: every
//!   page, because a page never touched *is* the file's content, and the file may
//!   be gone at restart;
//! - shared mappings: every page (another process may have filled them);
//! - anonymous memory, heap and stack: only pages that are present or swapped and
//!   hold something other than zeros. The kernel says which pages are present
//!   (`PAGEMAP_SCAN`, which also tells the shared zero page apart: read but never
//!   written; `/proc/self/pagemap` on kernels before 6.7); each readable page it
//!   names is then looked at, and one that holds only zeros is left out too. That
//!   look is cheap where it matters: a page of real data ends it at its first
//!   word. A page left out of anonymous memory comes back as zero, because the
//!   loader maps anonymous memory fresh. (Never for a private *file* mapping: a
//!   page missing there would come back as the file's content.)
//! - unreadable private file mappings (the gaps ld.so reserves between a library's
//!   segments): nothing, they are restored as inaccessible anonymous memory;
//! - [vvar], [vvar_vclock], [vdso]: recorded by address only, never as data (the
//!   loader moves the running kernel's pages there); [vsyscall] not at all.
//!
//! The runtime's own scratch buffers are cut out of the regions: they are not part
//! of the program and the restarted runtime never uses them.
//!
//! Guard pages (`MADV_GUARD_INSTALL`) are found in every region, recorded (the
//! GUARDS section, installed again by the loader) and left out of the runs: they
//! have no data and any access to them faults.
//!
//! Shared regions that map the same object (same device and inode in
//! /proc/self/maps: a memfd mapped twice, a `MAP_SHARED|MAP_ANONYMOUS` region and
//! its `mremap` alias, a POSIX shm file) are listed as views of one object (the
//! SHARED section), so that the loader maps them from one memfd again.
//!
//! # Safety
//! One `unsafe` use: reading a page of the program's memory to see whether it is
//! all zeros. Only pages the kernel just reported *present* (not swapped, not a
//! guard, not the zero page), in a mapping that /proc/self/maps shows readable,
//! are read, so the load cannot fault: a present page of a readable mapping is
//! there to be read. Every signal is blocked and the program has one thread, so
//! nothing changes the page while it is read.
#![allow(unsafe_code)]

use ckpt_image::memory::{Guard, SharedView};
use ckpt_image::{PAGE_SIZE, Region, Run, kind};
use ckpt_sys::maps::{self, MapEntry};
use ckpt_sys::scratch::{Scratch, Table};
use ckpt_sys::{Errno, Fd, PageRegion, PmScanArg, Result, c, page_is};

/// Most regions an image may have (the kernel's default vm.max_map_count is 65530).
const MAX_REGIONS: usize = 1 << 17;
/// Most runs (24 bytes each, reserved lazily).
const MAX_RUNS: usize = 1 << 21;
/// Pagemap entries read per call (512 KiB of entries, 256 MiB of address space).
const PAGEMAP_CHUNK: usize = 1 << 16;

/// The walk's result. Run file offsets are relative to the start of the data.
pub struct Layout {
    /// Regions in address order; `name_off`/`name_len` point into `maps_text`.
    pub regions: Table<Region>,
    /// Runs in address order.
    pub runs: Table<Run>,
    /// [vvar], [vvar_vclock], [vdso] as (start, len).
    pub vdso: [(u64, u64); 3],
    /// Sum of run lengths.
    pub data_len: u64,
    /// Sum of region lengths.
    pub mapped_len: u64,
    /// Guard page ranges, in address order (never read, never in a run).
    pub guards: Table<Guard>,
    /// The regions that share a memory object with another region, in region order.
    pub views: Table<SharedView>,
    /// The text of /proc/self/maps the names refer to.
    maps_text: Scratch,
    maps_len: usize,
}

impl Layout {
    /// Name of region `r` (its path in /proc/self/maps).
    pub fn name(&self, r: &Region) -> &[u8] {
        let o = r.name_off as usize;
        self.maps_text.as_slice()[..self.maps_len].get(o..o + r.name_len as usize).unwrap_or(&[])
    }
}

/// Walk /proc/self/maps. `exclude` lists address ranges (the caller's scratch
/// buffers) to leave out; this function's own buffers are left out too.
pub fn walk(exclude: &[(u64, u64)]) -> core::result::Result<Layout, (&'static str, Errno)> {
    let mem = |e| ("allocating memory to record the address space for", e);
    let mut regions = Table::<Region>::with_capacity(MAX_REGIONS).map_err(mem)?;
    let mut runs = Table::<Run>::with_capacity(MAX_RUNS).map_err(mem)?;
    let mut guards = Table::<Guard>::with_capacity(MAX_REGIONS).map_err(mem)?;
    let mut shared = Table::<SharedView>::with_capacity(MAX_REGIONS).map_err(mem)?;
    let mut views = Table::<SharedView>::with_capacity(MAX_REGIONS).map_err(mem)?;
    let mut pm_buf = Scratch::new(PAGEMAP_CHUNK * 8).map_err(mem)?;
    let (maps_text, maps_len) =
        ckpt_sys::scratch::read_whole(c"/proc/self/maps").map_err(|e| ("reading /proc/self/maps for", e))?;
    let mut cut = [(0u64, 0u64); 16];
    let own = [
        maps_text.range(),
        regions.range(),
        runs.range(),
        pm_buf.range(),
        guards.range(),
        shared.range(),
        views.range(),
    ];
    let ncut = own.len() + exclude.len().min(cut.len() - own.len());
    for (d, s) in cut.iter_mut().zip(own.iter().chain(exclude)) {
        *d = *s;
    }
    let cut = &mut cut[..ncut];
    cut.sort_unstable();

    let pagemap = ckpt_sys::openat(Fd::CWD, c"/proc/self/pagemap", c::O_RDONLY | c::O_CLOEXEC, 0)
        .map_err(|e| ("opening /proc/self/pagemap for", e))?;
    let mut scan = Scan { pagemap, has_scan_ioctl: true, has_guard_bit: true };
    let (mut vdso, mut data_len, mut mapped_len) = ([(0u64, 0u64); 3], 0u64, 0u64);
    let text = &maps_text.as_slice()[..maps_len];
    let base = text.as_ptr() as usize;
    let mut result = Ok(());
    'walk: for e in maps::parse(text) {
        match e.name {
            b"[vvar]" => vdso[0] = (e.start, e.len()),
            b"[vvar_vclock]" => vdso[1] = (e.start, e.len()),
            b"[vdso]" => vdso[2] = (e.start, e.len()),
            b"[vsyscall]" => {}
            _ => {
                let name_off = (e.name.as_ptr() as usize - base) as u32;
                for (s, t) in pieces(e.start, e.end, cut) {
                    // A piece's offset in its file or object moves with its start.
                    let piece = MapEntry { start: s, end: t, offset: e.offset + (s - e.start), ..e };
                    if piece.shared && piece.inode != 0 {
                        let dev = (piece.dev_major as u64) << 32 | piece.dev_minor as u64;
                        let v = SharedView {
                            region: regions.len() as u32,
                            object: 0,
                            offset: piece.offset,
                            dev,
                            inode: piece.inode,
                            reserved: 0,
                        };
                        if let Err(e) = shared.push(v) {
                            result = Err(e);
                            break 'walk;
                        }
                    }
                    let bufs = (pm_buf.bytes(), &mut regions, &mut runs, &mut data_len);
                    result = add_region(&piece, name_off, &mut scan, bufs, &mut guards);
                    if result.is_err() {
                        break 'walk;
                    }
                    mapped_len += t - s;
                }
            }
        }
    }
    let _ = ckpt_sys::close(pagemap);
    result.map_err(|e| ("recording the address space (/proc/self/maps, /proc/self/pagemap) for", e))?;
    group_views(shared.as_mut_slice(), &mut views).map_err(mem)?;
    Ok(Layout { regions, runs, vdso, data_len, mapped_len, guards, views, maps_text, maps_len })
}

/// From every shared region (`all`, in region order, object unset), the views of
/// objects that more than one region maps, numbered by first appearance, in
/// region order, into `out`. Sorting keeps this linear-logarithmic however many
/// shared regions there are.
fn group_views(all: &mut [SharedView], out: &mut Table<SharedView>) -> Result<()> {
    // Group by object; within one, by region.
    all.sort_unstable_by_key(|v| (v.dev, v.inode, v.region));
    // Mark each view of an object seen more than once with the object's first
    // region + 1 (0: alone).
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && (all[j].dev, all[j].inode) == (all[i].dev, all[i].inode) {
            j += 1;
        }
        // In a tree every shared region is listed: another process of the tree
        // may map the same object (`MAP_SHARED|MAP_ANONYMOUS` before a fork).
        let tree = super::files::TREE.load(core::sync::atomic::Ordering::Relaxed);
        let first = if j - i > 1 || tree { all[i].region + 1 } else { 0 };
        for v in &mut all[i..j] {
            v.object = first;
        }
        i = j;
    }
    for v in all.iter().filter(|v| v.object != 0) {
        out.push(*v)?;
    }
    // Number the objects in order of their first region.
    let views = out.as_mut_slice();
    views.sort_unstable_by_key(|v| (v.object, v.region));
    let (mut n, mut last) = (0u32, 0u32);
    for v in views.iter_mut() {
        if v.object != last {
            last = v.object;
            n += 1;
        }
        v.object = n - 1;
    }
    views.sort_unstable_by_key(|v| v.region);
    Ok(())
}

/// The GUARDS section: the guard ranges of the walk.
pub struct GuardsSection<'a>(pub &'a [Guard]);

impl super::Section for GuardsSection<'_> {
    fn tag(&self) -> u32 {
        ckpt_image::section::tag::GUARDS
    }
    fn len(&self) -> usize {
        ckpt_image::section::Table::<Guard>::len_for(self.0.len())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn encode(&self, out: &mut [u8]) {
        ckpt_image::section::Table::encode(self.0, out)
    }
}

/// The SHARED section: the regions that share an object with another one.
pub struct ViewsSection<'a>(pub &'a [SharedView]);

impl super::Section for ViewsSection<'_> {
    fn tag(&self) -> u32 {
        ckpt_image::section::tag::SHARED
    }
    fn len(&self) -> usize {
        ckpt_image::section::Table::<SharedView>::len_for(self.0.len())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn encode(&self, out: &mut [u8]) {
        ckpt_image::section::Table::encode(self.0, out)
    }
}

/// Memory ckpt can neither read safely nor restore, from the `VmFlags` of
/// /proc/self/smaps (proc(5)); the checkpoint is refused with the first such
/// mapping named. None: nothing of the kind (or smaps unreadable, which the walk
/// reports itself).
///
/// - `um`, `ui`, `uw`: registered with userfaultfd. A missing page there is
///   supplied by the program's own fault handler: reading one from inside the
///   checkpoint (where that handler cannot run) blocks forever, or fails with
///   `EFAULT` for a `UFFD_USER_MODE_ONLY` registration; and a restarted process
///   has neither the registration nor the userfaultfd descriptor. Write-protect
///   tracking (`uw`) would silently stop tracking after a restart; while the
///   runtime's own tracking is on (`track`, incremental images), `uw` is its own.
/// - `io`, `pf`: device memory (`VM_IO`, `VM_PFNMAP`: a driver's registers or
///   frame buffer, `/dev/mem`): reading it can have side effects, and a restart
///   cannot map the device again.
///
/// The kernel's own special mappings ([vvar] has `pf io`) are not the program's.
pub fn unsaveable() -> Option<crate::failure::Failure> {
    let (text, len) = ckpt_sys::scratch::read_whole(c"/proc/self/smaps").ok()?;
    let text = &text.as_slice()[..len];
    let mut cur: Option<MapEntry> = None;
    for line in text.split(|&b| b == b'\n') {
        let Some(flags) = line.strip_prefix(b"VmFlags:") else {
            if let Some(e) = maps::parse(line).next() {
                cur = Some(e);
            }
            continue;
        };
        let Some(e) = cur.filter(|e| !e.is_kernel_special()) else { continue };
        let has = |f: &[u8]| flags.split(|&b| b == b' ').any(|w| w == f);
        let ours = crate::track::active();
        let why: &str = if has(b"um") || has(b"ui") || (has(b"uw") && !ours) {
            "is registered with userfaultfd: its missing pages are supplied by the program's own fault handler, \
             which cannot run during the checkpoint, and a restarted process would have neither the registration nor \
             the userfaultfd descriptor; checkpoint before registering, or after unregistering (UFFDIO_UNREGISTER)"
        } else if has(b"io") || has(b"pf") {
            "is device memory (VM_IO/VM_PFNMAP): reading it can have side effects and a restart cannot map the \
             device again; unmap it before the checkpoint"
        } else {
            continue;
        };
        let m = ckpt_sys::msg::Msg::new().s("the mapping at ").x(e.start).s("-").x(e.end);
        let m = if e.name.is_empty() { m } else { m.s(" (").b(e.name).s(")") };
        let m = m.s(" ").s(why);
        return Some(crate::failure::Failure::bare("not writing", Errno::EOPNOTSUPP).detail(m.as_bytes()));
    }
    None
}

/// `[start, end)` minus the sorted `cut` ranges.
fn pieces(start: u64, end: u64, cut: &[(u64, u64)]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut at = start;
    let mut i = 0;
    core::iter::from_fn(move || {
        while at < end {
            // Skip cuts entirely below `at`.
            while i < cut.len() && cut[i].1 <= at {
                i += 1;
            }
            match cut.get(i) {
                Some(&(cs, ce)) if cs <= at => at = ce.min(end).max(at),
                Some(&(cs, _)) if cs < end => {
                    let p = (at, cs);
                    at = cs;
                    return Some(p);
                }
                _ => {
                    let p = (at, end);
                    at = end;
                    return Some(p);
                }
            }
        }
        None
    })
}

fn kind_of(e: &MapEntry) -> u32 {
    match e.name {
        b"[heap]" => kind::HEAP,
        b"[stack]" => kind::STACK,
        _ if e.shared => kind::SHARED,
        _ if e.inode != 0 => kind::FILE,
        _ => kind::ANON,
    }
}

/// The walk's output tables: pagemap buffer, regions, runs, data length so far.
type Tables<'a> = (&'a mut [u8], &'a mut Table<Region>, &'a mut Table<Run>, &'a mut u64);

fn add_region(e: &MapEntry, name_off: u32, scan: &mut Scan, t: Tables, guards: &mut Table<Guard>) -> Result<()> {
    let (pm_buf, regions, runs, data_len) = t;
    let k = kind_of(e);
    let first_run = runs.len() as u32;
    let readable = e.prot & c::PROT_READ.0 != 0;
    let mut add = |addr: u64, len: u64, runs: &mut Table<Run>| -> Result<()> {
        // Extend the previous run when contiguous (same region).
        if runs.len() as u32 > first_run
            && let Some(last) = runs.as_mut_slice().last_mut()
            && last.addr + last.len == addr
        {
            last.len += len;
        } else {
            runs.push(Run { addr, len, file_off: *data_len })?;
        }
        *data_len += len;
        Ok(())
    };
    let mut guard = |start: u64, len: u64| -> Result<()> {
        match guards.as_mut_slice().last_mut() {
            Some(g) if g.end == start => g.end += len,
            _ => guards.push(Guard { start, end: start + len })?,
        }
        Ok(())
    };
    match k {
        // Saved whole, guard pages aside (a page writev cannot read is written as
        // zeros, so only the guards need finding).
        kind::FILE | kind::SHARED => {
            let mut at = e.start;
            scan.guards(e.start, e.end, |g, l| {
                if readable && g > at {
                    add(at, g - at, runs)?;
                }
                at = g + l;
                guard(g, l)
            })?;
            if readable && e.end > at {
                add(at, e.end - at, runs)?;
            }
        }
        // Anonymous memory: the used pages. A present page of readable memory is
        // looked at (all zeros: left out); a swapped one is saved as it is, never
        // read here (a page-table entry that is not present might be anything the
        // kernel can put there: reading it is for writev(2), which answers EFAULT
        // rather than a signal); unreadable memory (PROT_NONE with data in it) is
        // saved page by page as the kernel reports it.
        _ => scan.used(e.start, e.end, pm_buf, |a, l, what| match what {
            Used::Guard => guard(a, l),
            Used::Present if readable => nonzero_pages(a, l, |a, l| add(a, l, runs)),
            Used::Present | Used::Swapped => add(a, l, runs),
        })?,
    }
    regions.push(Region {
        start: e.start,
        end: e.end,
        prot: e.prot,
        kind: k,
        first_run,
        nruns: runs.len() as u32 - first_run,
        name_off,
        name_len: e.name.len() as u32,
        file_offset: e.offset,
    })
}

/// Whether the readable, present page at `addr` holds only zeros.
fn page_is_zero(addr: u64) -> bool {
    // SAFETY: see the module comment: a present page of a readable mapping, read
    // while nothing else runs.
    let words = unsafe { core::slice::from_raw_parts(addr as *const u64, PAGE_SIZE as usize / 8) };
    // The first word decides for almost every page of real data; the rest goes a
    // cache line at a time, which the compiler turns into vector ORs.
    words[0] == 0 && words.chunks_exact(8).all(|l| l.iter().fold(0, |a, &w| a | w) == 0)
}

/// Call `f(addr, len)` for each maximal run of pages in `[start, start+len)` that
/// are not all zeros.
fn nonzero_pages(start: u64, len: u64, mut f: impl FnMut(u64, u64) -> Result<()>) -> Result<()> {
    let mut run = None::<u64>;
    let end = start + len;
    let mut a = start;
    while a < end {
        match (page_is_zero(a), run) {
            (false, None) => run = Some(a),
            (true, Some(s)) => {
                f(s, a - s)?;
                run = None;
            }
            _ => {}
        }
        a += PAGE_SIZE;
    }
    if let Some(s) = run {
        f(s, end - s)?;
    }
    Ok(())
}

/// What a page in use is, as the kernel reports it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Used {
    /// In memory (and not the shared zero page).
    Present,
    /// Swapped out, or another non-present entry the kernel did not name.
    Swapped,
    /// A guard page (`MADV_GUARD_INSTALL`): no data, any access faults.
    Guard,
}

/// How the walk asks the kernel which pages are in use.
///
/// Guard pages are page-table markers the kernel reports as swapped entries
/// with one more bit (measured on 6.18, see docs/memory.md): `PAGE_IS_GUARD`
/// (1 << 8) with `PAGE_IS_SWAPPED` in `PAGEMAP_SCAN`, bit 58 with bit 62 in
/// /proc/self/pagemap (Linux 6.14 and later).
struct Scan {
    /// `/proc/self/pagemap`, open.
    pagemap: Fd,
    /// False once `PAGEMAP_SCAN` turned out to be missing (kernel before 6.7).
    has_scan_ioctl: bool,
    /// False once `PAGEMAP_SCAN` refused `PAGE_IS_GUARD` (kernel before 6.14).
    has_guard_bit: bool,
}

impl Scan {
    /// Call `f(addr, len, what)` for each run of pages in `[start, end)` that are
    /// present, swapped or guards, leaving out the shared zero page where the
    /// kernel can say so.
    fn used(
        &mut self,
        start: u64,
        end: u64,
        buf: &mut [u8],
        mut f: impl FnMut(u64, u64, Used) -> Result<()>,
    ) -> Result<()> {
        while self.has_scan_ioctl {
            match self.scan_ioctl(start, end, page_is::PRESENT | page_is::SWAPPED, &mut f) {
                // 6.7 to 6.13: PAGEMAP_SCAN without the GUARD category.
                Err(Errno::EINVAL) if self.has_guard_bit => self.has_guard_bit = false,
                Err(Errno::ENOTTY | Errno::EINVAL) => self.has_scan_ioctl = false,
                r => return r,
            }
        }
        scan_present(start, end, self.pagemap, buf, f)
    }

    /// Call `f(addr, len)` for each run of guard pages in `[start, end)`.
    fn guards(&mut self, start: u64, end: u64, mut f: impl FnMut(u64, u64) -> Result<()>) -> Result<()> {
        if !self.has_scan_ioctl || !self.has_guard_bit {
            // No kernel without PAGE_IS_GUARD reports guard pages at all; where
            // guards exist unreported (6.13), writev(2) still answers EFAULT.
            return Ok(());
        }
        match self.scan_ioctl(start, end, page_is::GUARD, &mut |a, l, _| f(a, l)) {
            Err(Errno::ENOTTY) => {
                self.has_scan_ioctl = false;
                Ok(())
            }
            Err(Errno::EINVAL) => {
                self.has_guard_bit = false;
                Ok(())
            }
            r => r,
        }
    }

    /// `PAGEMAP_SCAN`: matching pages are any of `anyof` and not PFNZERO, in ranges
    /// the kernel already merged, split by PRESENT/SWAPPED/GUARD. It fails before
    /// reporting anything if the kernel lacks it (or the GUARD category), so the
    /// caller can fall back on the same range.
    fn scan_ioctl(
        &mut self,
        start: u64,
        end: u64,
        anyof: u64,
        f: &mut impl FnMut(u64, u64, Used) -> Result<()>,
    ) -> Result<()> {
        let guard = if self.has_guard_bit { page_is::GUARD } else { 0 };
        let mut out = [PageRegion::default(); 256];
        let mut at = start;
        while at < end {
            let mut arg = PmScanArg {
                start: at,
                end,
                category_inverted: page_is::PFNZERO,
                category_mask: page_is::PFNZERO,
                category_anyof_mask: anyof,
                return_mask: page_is::PRESENT | page_is::SWAPPED | guard,
                ..Default::default()
            };
            let n = ckpt_sys::ioctl_pagemap_scan(self.pagemap, &mut arg, &mut out)?;
            for r in &out[..n] {
                let what = if r.categories & guard != 0 {
                    Used::Guard
                } else if r.categories & page_is::PRESENT != 0 {
                    Used::Present
                } else {
                    Used::Swapped
                };
                f(r.start, r.end - r.start, what)?;
            }
            if n < out.len() {
                break;
            }
            // The array filled up: go on after the last range (walk_end is not
            // always where the ranges stop, see docs/kernel.md §5).
            at = out[n - 1].end;
        }
        Ok(())
    }
}

/// Call `f(addr, len, what)` for each maximal run of present, swapped or guard
/// pages, from `/proc/self/pagemap` (kernels without `PAGEMAP_SCAN`).
fn scan_present(
    start: u64,
    end: u64,
    pagemap: Fd,
    buf: &mut [u8],
    mut f: impl FnMut(u64, u64, Used) -> Result<()>,
) -> Result<()> {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const GUARD: u64 = 1 << 58;
    let mut addr = start;
    let mut run_start = None::<(u64, Used)>;
    while addr < end {
        let pages = (((end - addr) / PAGE_SIZE) as usize).min(PAGEMAP_CHUNK);
        let want = &mut buf[..pages * 8];
        let n = ckpt_sys::pread(pagemap, want, addr / PAGE_SIZE * 8)?;
        if n < 8 {
            return Err(Errno::EIO);
        }
        for ent in want[..n / 8 * 8].chunks_exact(8) {
            let v = u64::from_le_bytes(ent.try_into().unwrap_or_default());
            let used = if v & PRESENT != 0 {
                Some(Used::Present)
            } else if v & SWAPPED != 0 {
                Some(if v & GUARD != 0 { Used::Guard } else { Used::Swapped })
            } else {
                None
            };
            match (used, run_start) {
                (Some(u), None) => run_start = Some((addr, u)),
                (Some(u), Some((s, w))) if u != w => {
                    f(s, addr - s, w)?;
                    run_start = Some((addr, u));
                }
                (None, Some((s, w))) => {
                    f(s, addr - s, w)?;
                    run_start = None;
                }
                _ => {}
            }
            addr += PAGE_SIZE;
        }
    }
    if let Some((s, w)) = run_start {
        f(s, end - s, w)?;
    }
    Ok(())
}
