//! The writer's side of incremental images (`track` finds what was written; the
//! image crate's `parent` module has the format).
//!
//! After the walk, each run of the full tables is cut into pages stored in this
//! image and pages inherited from the parent. A page is inherited only when all
//! of these hold: it lies in private anonymous memory, heap or stack (shared and
//! file-backed pages can change without a write fault of this process: another
//! process, a file written under a private mapping not yet copied on write); the
//! scan says it was not written since the parent's snapshot; it is not in a range
//! this checkpoint itself changes (`write::volatile_ranges`); and the parent holds
//! it at the same address (one of its runs, or one of its own inherited ranges),
//! which the parent's metadata, read back from its file, says. Everything else is
//! stored, so a fault in tracking can only make an image larger.
//!
//! Naming: in incremental mode every image is written as `NAME` (always the
//! newest, renamed over as before) and, under a second hard link, as `NAME.SEQ`,
//! which is what a child names. When a full image is durable, the previous
//! chain's `NAME.SEQ` files are removed: no image names them any more (the one at
//! `NAME` is the new full image).
//!
//! Runs in the background writer, below the save point.

use ckpt_image::parent::{Inherited, Parent, ParentHead};
use ckpt_image::section::tag;
use ckpt_image::{HEADER_LEN, Header, Meta, PAGE_SIZE, Run, kind};
use ckpt_sys::msg::Msg;
use ckpt_sys::scratch::{Scratch, Table};
use ckpt_sys::{AtFlags, Errno, Fd, c};

use crate::capture::Section;
use crate::capture::maps::Layout;
use crate::track::{Plan, Report};
use crate::write::{CPath, LOADER, sort_and_merge};

/// What the writer knows of the chain.
pub struct Chain<'a> {
    /// This checkpoint's part, decided before the fork.
    pub plan: Plan,
    /// The scan's buffer (`track::written`).
    pub scan: &'a [u8],
    /// What the previous writer reported (the chain to clean up after a full image).
    pub last: Option<Report>,
}

/// The parent as this image names it, and the pages inherited from it.
pub struct Child {
    pub head: ParentHead,
    pub name: CPath,
    pub inherited: Table<Inherited>,
}

impl Child {
    /// Bytes inherited.
    pub fn inherited_len(&self) -> u64 {
        self.inherited.as_slice().iter().map(|r| r.len).sum()
    }
}

/// The PARENT section of an incremental image (none for a full one).
pub struct ParentSection<'a>(pub Option<&'a Child>);

impl Section for ParentSection<'_> {
    fn tag(&self) -> u32 {
        tag::PARENT
    }
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }
    fn len(&self) -> usize {
        self.0.map_or(0, |c| Parent::len_for(c.name.as_bytes().len(), c.inherited.len()))
    }
    fn encode(&self, out: &mut [u8]) {
        if let Some(c) = self.0 {
            Parent::encode(&c.head, c.name.as_bytes(), c.inherited.as_slice(), out)
        }
    }
}

/// `BASE.SEQ`: the chain name of image `seq`.
pub fn seq_name(base: &[u8], seq: u64) -> Option<CPath> {
    let m = Msg::new().u(seq);
    CPath::from_parts(&[base, b".", m.as_bytes()])
}

/// `DIR/BASE.SEQ`.
fn seq_path(dir: &[u8], base: &[u8], seq: u64) -> Option<CPath> {
    let m = Msg::new().u(seq);
    CPath::from_parts(&[dir, b"/", base, b".", m.as_bytes()])
}

/// The parent's metadata, read back from its file and checked against what its
/// writer reported: None (the image is then written full, with a warning) if it
/// is gone or another file.
struct ParentMeta {
    header: Header,
    meta: Scratch,
}

fn read_parent(path: &CPath, r: &Report) -> Result<ParentMeta, (&'static str, Errno)> {
    let fd = ckpt_sys::openat(Fd::CWD, path.cstr(), c::O_RDONLY | c::O_CLOEXEC, 0).map_err(|e| ("opening", e))?;
    let res = (|| {
        let image_offset = ckpt_image::loader::image_offset(LOADER.len() as u64);
        let mut hb = [0u8; HEADER_LEN];
        read_exact(fd, &mut hb, image_offset)?;
        let file_len = ckpt_sys::fstat(fd).map_err(|e| ("reading", e))?.size;
        let header = Header::parse(&hb, file_len, crate::arch::ARCH).map_err(|_| ("reading", Errno::EINVAL))?;
        if (header.meta_hash, header.data_hash, header.file_len) != (r.meta_hash, r.data_hash, r.file_len) {
            return Err(("recognising (it is another image than the one written)", Errno::ESTALE));
        }
        let mut meta = Scratch::new(header.meta_len as usize).map_err(|e| ("allocating memory for", e))?;
        read_exact(fd, &mut meta.bytes()[..header.meta_len as usize], header.meta_offset)?;
        Ok(ParentMeta { header, meta })
    })();
    let _ = ckpt_sys::close(fd);
    res
}

fn read_exact(fd: Fd, buf: &mut [u8], off: u64) -> Result<(), (&'static str, Errno)> {
    let mut done = 0;
    while done < buf.len() {
        match ckpt_sys::pread(fd, &mut buf[done..], off + done as u64) {
            Ok(0) => return Err(("reading", Errno::EIO)),
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(("reading", e)),
        }
    }
    Ok(())
}

/// A cursor over sorted, disjoint `[start, end)` ranges, asked in increasing
/// addresses: is `a` inside one, and where does that answer change.
struct Cursor<'a> {
    v: &'a [(u64, u64)],
    i: usize,
}

impl Cursor<'_> {
    fn at(&mut self, a: u64) -> (bool, u64) {
        while self.i < self.v.len() && self.v[self.i].1 <= a {
            self.i += 1;
        }
        match self.v.get(self.i) {
            Some(&(s, e)) if s <= a => (true, e),
            Some(&(s, _)) => (false, s),
            None => (false, u64::MAX),
        }
    }
}

/// Cut `layout`'s runs into stored and inherited pages (see the module comment),
/// rewriting its run table and data length. None: a full image (no parent, no
/// scan, or the parent is unusable: said).
pub fn split(
    layout: &mut Layout,
    chain: &Chain,
    dir: &[u8],
    base: &[u8],
    volatile: &[(u64, u64)],
) -> Result<Option<Child>, Errno> {
    let Some(r) = chain.plan.parent else { return Ok(None) };
    let Some(scan) = crate::track::written(chain.scan) else { return Ok(None) };
    let path = seq_path(dir, base, r.seq).ok_or(Errno::ENAMETOOLONG)?;
    let pm = match read_parent(&path, &r) {
        Ok(p) => p,
        Err((step, e)) => {
            Msg::new()
                .s("ckpt: warning: ")
                .s(step)
                .s(" the parent image ")
                .b(path.as_bytes())
                .s(": ")
                .errno(e)
                .s("; writing a full image")
                .emit();
            return Ok(None);
        }
    };
    let meta =
        Meta::parse(&pm.header, &pm.meta.as_slice()[..pm.header.meta_len as usize]).map_err(|_| Errno::EINVAL)?;
    // What the parent holds: its runs and its own inherited ranges.
    let inherited = meta.parent();
    let ncover = meta.header.nruns as usize + inherited.map_or(0, |p| p.inherited.len());
    let mut cover = Table::<(u64, u64)>::with_capacity(ncover.max(1))?;
    for i in 0..meta.header.nruns {
        let u = meta.run(i);
        cover.push((u.addr, u.addr + u.len))?;
    }
    for g in inherited.iter().flat_map(|p| p.inherited.iter()) {
        cover.push((g.addr, g.addr + g.len))?;
    }
    sort_and_merge(&mut cover);
    let mut dirty = Table::<(u64, u64)>::with_capacity(crate::track::MAX_RANGES + volatile.len() + 1)?;
    for w in scan {
        dirty.push(w)?;
    }
    for &v in volatile {
        dirty.push(v)?;
    }
    sort_and_merge(&mut dirty);

    let old = layout.runs.as_slice();
    // Every boundary of a stored run or an inherited range is a boundary of an
    // old run, a written range or a range the parent holds.
    let cap = old.len() + 2 * (dirty.len() + cover.len()) + 16;
    let mut runs = Table::<Run>::with_capacity(cap)?;
    let mut kept = Table::<Inherited>::with_capacity(cap)?;
    let (mut dc, mut cc) = (Cursor { v: dirty.as_slice(), i: 0 }, Cursor { v: cover.as_slice(), i: 0 });
    let mut off = 0u64;
    for reg in layout.regions.as_mut_slice() {
        let mine = &old[reg.first_run as usize..(reg.first_run + reg.nruns) as usize];
        let first = runs.len();
        let kept_first = kept.len();
        let tracked = matches!(reg.kind, kind::ANON | kind::HEAP | kind::STACK);
        for u in mine {
            let (mut at, end) = (u.addr, u.addr + u.len);
            while at < end {
                let (stop, inherit) = if tracked {
                    let (d, dn) = dc.at(at);
                    let (k, kn) = cc.at(at);
                    (dn.min(kn).min(end), !d && k)
                } else {
                    (end, false)
                };
                debug_assert!(stop > at && stop % PAGE_SIZE == 0);
                let len = stop - at;
                if inherit {
                    let n = kept.len();
                    match kept.as_mut_slice().last_mut() {
                        Some(g) if n > kept_first && g.addr + g.len == at => g.len += len,
                        _ => kept.push(Inherited { addr: at, len })?,
                    }
                } else {
                    let n = runs.len();
                    match runs.as_mut_slice().last_mut() {
                        Some(p) if n > first && p.addr + p.len == at => p.len += len,
                        _ => runs.push(Run { addr: at, len, file_off: off })?,
                    }
                    off += len;
                }
                at = stop;
            }
        }
        reg.first_run = first as u32;
        reg.nruns = (runs.len() - first) as u32;
    }
    layout.runs = runs;
    layout.data_len = off;
    let name = seq_name(base, r.seq).ok_or(Errno::ENAMETOOLONG)?;
    let head = ParentHead {
        meta_hash: r.meta_hash,
        data_hash: r.data_hash,
        file_len: r.file_len,
        seq: r.seq,
        depth: r.depth + 1,
        name_len: name.as_bytes().len() as u32,
    };
    Ok(Some(Child { head, name, inherited: kept }))
}

/// Once image `seq` is durable and full: remove the previous chain's files
/// (best effort; none of them is named by an image any more).
pub fn remove_old_chain(dir: &[u8], base: &[u8], last: Option<Report>, seq: u64, me: i32) {
    let Some(r) = last.filter(|r| r.owner == me && r.seq < seq) else { return };
    for s in r.chain_first..=r.seq {
        if let Some(p) = seq_path(dir, base, s) {
            let _ = ckpt_sys::unlinkat(Fd::CWD, p.cstr(), AtFlags::EMPTY);
        }
    }
}
