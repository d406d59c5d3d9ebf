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
//! # Safety
//! One `unsafe` use: reading a page of the program's memory to see whether it is
//! all zeros. Only pages the kernel just reported present or swapped, in a mapping
//! that /proc/self/maps shows readable, are read, so the load cannot fault (a
//! swapped page is read back in, as write(2) would). Every signal is blocked and
//! the program has one thread, so nothing changes the page while it is read.
#![allow(unsafe_code)]

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
pub fn walk(exclude: &[(u64, u64)]) -> Result<Layout> {
    let mut regions = Table::<Region>::with_capacity(MAX_REGIONS)?;
    let mut runs = Table::<Run>::with_capacity(MAX_RUNS)?;
    let mut pm_buf = Scratch::new(PAGEMAP_CHUNK * 8)?;
    let (maps_text, maps_len) = ckpt_sys::scratch::read_whole(c"/proc/self/maps")?;
    let mut cut = [(0u64, 0u64); 12];
    let own = [maps_text.range(), regions.range(), runs.range(), pm_buf.range()];
    let ncut = own.len() + exclude.len().min(cut.len() - own.len());
    for (d, s) in cut.iter_mut().zip(own.iter().chain(exclude)) {
        *d = *s;
    }
    let cut = &mut cut[..ncut];
    cut.sort_unstable();

    let pagemap = ckpt_sys::openat(Fd::CWD, c"/proc/self/pagemap", c::O_RDONLY | c::O_CLOEXEC, 0)?;
    let mut scan = Scan { pagemap, has_scan_ioctl: true };
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
                    let piece = MapEntry { start: s, end: t, ..e };
                    let bufs = (pm_buf.bytes(), &mut regions, &mut runs, &mut data_len);
                    result = add_region(&piece, name_off, &mut scan, bufs);
                    if result.is_err() {
                        break 'walk;
                    }
                    mapped_len += t - s;
                }
            }
        }
    }
    let _ = ckpt_sys::close(pagemap);
    result?;
    Ok(Layout { regions, runs, vdso, data_len, mapped_len, maps_text, maps_len })
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

fn add_region(e: &MapEntry, name_off: u32, scan: &mut Scan, t: Tables) -> Result<()> {
    let (pm_buf, regions, runs, data_len) = t;
    let k = kind_of(e);
    let first_run = runs.len() as u32;
    let readable = e.prot & c::PROT_READ != 0;
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
    match k {
        kind::FILE if !readable => {}
        kind::FILE | kind::SHARED => add(e.start, e.end - e.start, runs)?,
        // Unreadable anonymous memory (PROT_NONE with data in it): every used page,
        // as the kernel reports them; looking inside would need a protection change.
        _ if !readable => scan.used(e.start, e.end, pm_buf, |a, l| add(a, l, runs))?,
        _ => scan.used(e.start, e.end, pm_buf, |a, l| nonzero_pages(a, l, |a, l| add(a, l, runs)))?,
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
    // SAFETY: see the module comment: a present (or swapped) page of a readable
    // mapping, read while nothing else runs.
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

/// How the walk asks the kernel which pages of anonymous memory are in use.
struct Scan {
    /// `/proc/self/pagemap`, open.
    pagemap: Fd,
    /// False once `PAGEMAP_SCAN` turned out to be missing (kernel before 6.7).
    has_scan_ioctl: bool,
}

impl Scan {
    /// Call `f(addr, len)` for each run of pages in `[start, end)` that are present
    /// or swapped, leaving out the shared zero page where the kernel can say so.
    fn used(&mut self, start: u64, end: u64, buf: &mut [u8], mut f: impl FnMut(u64, u64) -> Result<()>) -> Result<()> {
        if self.has_scan_ioctl {
            match self.scan_ioctl(start, end, &mut f) {
                Err(Errno::ENOTTY | Errno::EINVAL) => self.has_scan_ioctl = false,
                r => return r,
            }
        }
        scan_present(start, end, self.pagemap, buf, f)
    }

    /// `PAGEMAP_SCAN`: matching pages are (PRESENT or SWAPPED) and not PFNZERO, in
    /// ranges the kernel already merged. It fails before reporting anything if the
    /// kernel lacks it, so the caller can fall back on the same range.
    fn scan_ioctl(&mut self, start: u64, end: u64, f: &mut impl FnMut(u64, u64) -> Result<()>) -> Result<()> {
        let mut out = [PageRegion::default(); 256];
        let mut at = start;
        while at < end {
            let mut arg = PmScanArg {
                start: at,
                end,
                category_inverted: page_is::PFNZERO,
                category_mask: page_is::PFNZERO,
                category_anyof_mask: page_is::PRESENT | page_is::SWAPPED,
                return_mask: page_is::PRESENT | page_is::SWAPPED,
                ..Default::default()
            };
            let n = ckpt_sys::ioctl_pagemap_scan(self.pagemap, &mut arg, &mut out)?;
            for r in &out[..n] {
                f(r.start, r.end - r.start)?;
            }
            if n < out.len() {
                break;
            }
            // The array filled up: go on after the last range (walk_end is not
            // always where the ranges stop, see PLATFORM.md §5).
            at = out[n - 1].end;
        }
        Ok(())
    }
}

/// Call `f(addr, len)` for each maximal run of present-or-swapped pages, from
/// `/proc/self/pagemap` (kernels without `PAGEMAP_SCAN`).
fn scan_present(
    start: u64,
    end: u64,
    pagemap: Fd,
    buf: &mut [u8],
    mut f: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let mut addr = start;
    let mut run_start = None::<u64>;
    while addr < end {
        let pages = (((end - addr) / PAGE_SIZE) as usize).min(PAGEMAP_CHUNK);
        let want = &mut buf[..pages * 8];
        let n = ckpt_sys::pread(pagemap, want, addr / PAGE_SIZE * 8)?;
        if n < 8 {
            return Err(Errno::EIO);
        }
        for ent in want[..n / 8 * 8].chunks_exact(8) {
            let v = u64::from_le_bytes(ent.try_into().unwrap_or_default());
            let used = v & (PRESENT | SWAPPED) != 0;
            match (used, run_start) {
                (true, None) => run_start = Some(addr),
                (false, Some(s)) => {
                    f(s, addr - s)?;
                    run_start = None;
                }
                _ => {}
            }
            addr += PAGE_SIZE;
        }
    }
    if let Some(s) = run_start {
        f(s, end - s)?;
    }
    Ok(())
}
