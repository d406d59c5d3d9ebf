//! Restarting an incremental image: its chain of parents (section PARENT, see
//! the image crate's `parent` module).
//!
//! Phase one ([`check`], before anything is changed): each parent is opened by
//! the name its child gives, in the directory of the image being run; its header
//! must be exactly the one the child names (`meta_hash`, `data_hash`,
//! `file_len`: every byte of it), and its header and metadata must be valid; a
//! missing, damaged or different parent is refused naming its path, with status 1.
//! The parents are closed again (the descriptor table is restored next, and
//! closes what the program did not have), then opened once more after it
//! ([`reopen`]) and their headers compared again.
//!
//! Phase two ([`load`], [`fill`]): their metadata is read into the home block,
//! and each inherited range of the image is filled from the first ancestor that
//! holds it: from one of its runs (the whole DATA_HASHES piece around it is
//! read into the home block's buffer and checked against the ancestor's hash,
//! then the part needed is copied into place), or from its own inherited ranges,
//! one level up.

use ckpt_image::parent::MAX_DEPTH;
use ckpt_image::{HEADER_LEN, Header, Meta, Region};
use ckpt_sys::{Errno, Fd, c, msg::Msg};

use crate::{Name, Plan, die, die_image, msg, read_exact};

/// Longest directory + file name of a parent.
const PATH_MAX: usize = 512;

/// One ancestor: its path and the header its child names.
#[derive(Clone, Copy)]
pub struct Level {
    path: [u8; PATH_MAX],
    len: usize,
    /// Its header, as checked in phase one.
    pub header: Header,
    fd: i32,
    /// Where its metadata goes in the home block (an offset in the chain area).
    meta_off: usize,
}

/// The ancestors of the image, parent first (`n == 0`: a full image).
#[derive(Clone, Copy)]
pub struct Chain {
    pub n: usize,
    pub levels: [Level; MAX_DEPTH as usize],
    /// Bytes of home block the chain needs: every ancestor's metadata, then one
    /// piece buffer.
    pub area: usize,
    pub piece: usize,
}

impl Chain {
    /// No parent.
    pub fn none() -> Chain {
        let l = Level { path: [0; PATH_MAX], len: 0, header: Header::default(), fd: -1, meta_off: 0 };
        Chain { n: 0, levels: [l; MAX_DEPTH as usize], area: 0, piece: 0 }
    }
}

impl Level {
    fn path(&self) -> &[u8] {
        &self.path[..self.len]
    }
    fn cpath(&self) -> [u8; PATH_MAX + 1] {
        let mut b = [0u8; PATH_MAX + 1];
        b[..self.len].copy_from_slice(self.path());
        b
    }
}

/// `ckpt restart: NAME: the parent image PATH `.
fn pmsg(name: &Name, l: &Level) -> Msg {
    msg(name).s("the parent image ").b(l.path())
}

fn open(l: &Level) -> Result<Fd, Errno> {
    let b = l.cpath();
    let p = core::ffi::CStr::from_bytes_until_nul(&b).map_err(|_| Errno::EINVAL)?;
    ckpt_sys::openat(Fd::CWD, p, c::O_RDONLY | c::O_CLOEXEC, 0)
}

/// The header of the image in `fd` (`len` bytes), or why not.
fn header_of(name: &Name, l: &Level, fd: Fd) -> Header {
    let len = ckpt_sys::fstat(fd).unwrap_or_else(|e| die(pmsg(name, l).s(": cannot stat it: ").errno(e))).size;
    let image_offset = ckpt_image::loader::image_offset(crate::arch::file_len());
    if len < image_offset + HEADER_LEN as u64 {
        die(pmsg(name, l).s(" is not a checkpoint image of this ckpt (it is too short); not restarting"));
    }
    let mut hb = [0u8; HEADER_LEN];
    read_exact(name, fd, &mut hb, image_offset);
    Header::parse(&hb, len, crate::arch::ARCH).unwrap_or_else(|e| {
        die(pmsg(name, l).s(" is damaged or not a checkpoint image (").s(e.what()).s("); not restarting"))
    })
}

/// Phase one: find and check every ancestor of `meta` (see the module comment).
pub fn check(name: &Name, meta: &Meta) -> Chain {
    let mut ch = Chain::none();
    let Some(first) = meta.parent() else { return ch };
    // The directory of the image being run.
    let mut exe = [0u8; PATH_MAX];
    let n = ckpt_sys::readlinkat(Fd::CWD, c"/proc/self/exe", &mut exe)
        .unwrap_or_else(|e| die(msg(name).s("cannot find the directory of the image (/proc/self/exe): ").errno(e)));
    let dir = &exe[..exe[..n].iter().rposition(|&b| b == b'/').unwrap_or(0)];
    let mut want = first.head;
    let mut cname = [0u8; ckpt_image::parent::NAME_MAX];
    let mut clen = first.name.len();
    cname[..clen].copy_from_slice(first.name);
    let mut off = 0usize;
    loop {
        if ch.n == MAX_DEPTH as usize {
            die(msg(name).s("the chain of parent images is longer than ").u(MAX_DEPTH as u64).s("; not restarting"));
        }
        let l = &mut ch.levels[ch.n];
        let child_name = &cname[..clen];
        if dir.len() + 1 + child_name.len() > PATH_MAX {
            die(msg(name).s("the path of a parent image is too long"));
        }
        l.path[..dir.len()].copy_from_slice(dir);
        l.path[dir.len()] = b'/';
        l.path[dir.len() + 1..dir.len() + 1 + child_name.len()].copy_from_slice(child_name);
        l.len = dir.len() + 1 + child_name.len();
        let fd = open(l).unwrap_or_else(|e| {
            die(pmsg(name, l)
                .s(" cannot be opened (")
                .errno(e)
                .s("): an incremental image needs every image of its chain; not restarting"))
        });
        let h = header_of(name, l, fd);
        if (h.meta_hash, h.data_hash, h.file_len) != (want.meta_hash, want.data_hash, want.file_len) {
            die(pmsg(name, l)
                .s(" is not the one this image was written against (its checksums differ: it was replaced, or \
                    rewritten by a later run); not restarting"));
        }
        let mut tmp = ckpt_sys::scratch::Scratch::new(h.meta_len as usize)
            .unwrap_or_else(|e| crate::die_errno(name, "cannot allocate memory for a parent's metadata", e));
        read_exact(name, fd, &mut tmp.bytes()[..h.meta_len as usize], h.meta_offset);
        let _ = ckpt_sys::close(fd);
        let m = Meta::parse(&h, &tmp.as_slice()[..h.meta_len as usize])
            .unwrap_or_else(|e| die(pmsg(name, l).s(" is damaged (").s(e.what()).s("); not restarting")));
        if m.tree().is_some() || m.compression().is_some() || m.data_hashes().ok().flatten().is_none() {
            die(pmsg(name, l).s(" is a tree or compressed image, or has no piece hashes: not a parent; not restarting"));
        }
        let piece = m.data_hashes().ok().flatten().map_or(0, |d| d.piece as usize);
        l.header = h;
        l.meta_off = off;
        off += ckpt_image::page_up(h.meta_len) as usize;
        ch.piece = ch.piece.max(piece);
        ch.n += 1;
        match m.parent() {
            Some(p) => {
                want = p.head;
                clen = p.name.len();
                cname[..clen].copy_from_slice(p.name);
            }
            None => break,
        }
    }
    // One piece buffer per ancestor: a child's pages come from several levels
    // in turn, and a piece read and checked is kept until the next one of its
    // level is needed.
    ch.area = off + ch.n * ch.piece;
    ch
}

/// After the descriptor table is restored: open every ancestor again and check
/// it is still the file phase one checked.
pub fn reopen(name: &Name, ch: &mut Chain) {
    for i in 0..ch.n {
        let l = ch.levels[i];
        let fd = open(&l).unwrap_or_else(|e| die(pmsg(name, &l).s(" cannot be opened again: ").errno(e)));
        if header_of(name, &l, fd) != l.header {
            die(pmsg(name, &l).s(" changed while the restart was being prepared; not restarting"));
        }
        ch.levels[i].fd = fd.0;
    }
}

/// Close the ancestors' descriptors (the program never had them).
pub fn close(ch: &Chain) {
    for l in &ch.levels[..ch.n] {
        let _ = ckpt_sys::close(Fd(l.fd));
    }
}

/// Phase two: every ancestor's metadata, read into the chain area of the home
/// block (`area`, `ch.area` bytes) and parsed again.
pub fn load<'a>(plan: &Plan, area: &'a mut [u8], out: &mut [Option<Meta<'a>>; MAX_DEPTH as usize]) -> &'a mut [u8] {
    let ch = &plan.chain;
    let (metas, buf) = area.split_at_mut(ch.area - ch.n * ch.piece);
    let mut rest: &'a mut [u8] = metas;
    let mut at = 0usize;
    for (i, l) in ch.levels[..ch.n].iter().enumerate() {
        let len = ckpt_image::page_up(l.header.meta_len) as usize;
        let (mine, next) = rest.split_at_mut(len);
        debug_assert_eq!(at, l.meta_off);
        at += len;
        let mine = &mut mine[..l.header.meta_len as usize];
        read_exact(&plan.name, Fd(l.fd), mine, l.header.meta_offset);
        let mine: &'a [u8] = mine;
        out[i] = Some(Meta::parse(&l.header, mine).unwrap_or_else(|e| die_image(&plan.name, e)));
        rest = next;
    }
    buf
}

/// What `fill` works with.
pub struct Fill<'a, 'b> {
    pub plan: &'b Plan,
    pub metas: &'b [Option<Meta<'a>>; MAX_DEPTH as usize],
    /// One piece buffer per ancestor (`piece` bytes each), and which piece
    /// each holds.
    pub buf: &'b mut [u8],
    pub held: [Option<u64>; MAX_DEPTH as usize],
}

/// Fill the inherited ranges of region `r` of the image (`meta`), which is
/// mapped writable.
pub fn fill(f: &mut Fill, meta: &Meta, r: &Region) {
    let Some(p) = meta.parent() else { return };
    let mut k = p.first_after(r.start);
    while let Some(g) = p.inherited.at(k).filter(|g| g.addr < r.end) {
        resolve(f, 0, g.addr, g.addr + g.len);
        k += 1;
    }
}

/// Does region `r` of `meta` have inherited pages?
pub fn inherits(meta: &Meta, r: &Region) -> bool {
    meta.parent().is_some_and(|p| p.inherited.at(p.first_after(r.start)).is_some_and(|g| g.addr < r.end))
}

/// Fill `[a, b)` from ancestor `lvl` (its runs, or its own ancestors).
fn resolve(f: &mut Fill, lvl: usize, a: u64, b: u64) {
    let plan = f.plan;
    let level = &plan.chain.levels[lvl];
    let Some(m) = f.metas[lvl] else {
        die(msg(&plan.name).s("the chain of parent images ends before every inherited page is found; not restarting"))
    };
    let mut at = a;
    while at < b {
        let lo = m.first_run_after(at);
        let next_run = (lo < m.header.nruns).then(|| m.run(lo));
        if let Some(u) = next_run.filter(|u| u.addr <= at) {
            let stop = b.min(u.addr + u.len);
            copy_run(f, lvl, &m, u.file_off + (at - u.addr), at, stop - at);
            at = stop;
            continue;
        }
        let inh = m.parent().and_then(|p| p.inherited.at(p.first_after(at))).filter(|g| g.addr <= at);
        match inh {
            Some(g) => {
                let stop = b.min(g.addr + g.len);
                resolve(f, lvl + 1, at, stop);
                at = stop;
            }
            None => die(pmsg(&plan.name, level)
                .s(" does not hold the page at ")
                .x(at)
                .s(" that its child inherits from it; not restarting")),
        }
    }
}

/// Copy `len` bytes at file offset `off` of ancestor `lvl` to address `to`,
/// checking each piece they come from.
fn copy_run(f: &mut Fill, lvl: usize, m: &Meta, off: u64, to: u64, len: u64) {
    let Some(h) = m.data_hashes().ok().flatten() else { return };
    // The region whose data holds `off`, and the index of its first piece.
    let mut base = 0u64;
    let mut region = None;
    for r in m.regions() {
        let (s, e) = m.data_range(&r);
        if s <= off && off < e {
            region = Some((s, e));
            break;
        }
        base += ckpt_image::hashes::pieces_of(e - s, h.piece);
    }
    let Some((ds, de)) = region else { return };
    let mut done = 0u64;
    while done < len {
        let o = off + done;
        let idx = (o - ds) / h.piece;
        let (ps, pe) = (ds + idx * h.piece, (ds + (idx + 1) * h.piece).min(de));
        let piece = base + idx;
        let level = &f.plan.chain.levels[lvl];
        let size = f.plan.chain.piece;
        let buf = &mut f.buf[lvl * size..(lvl + 1) * size];
        if f.held[lvl] != Some(piece) {
            let n = (pe - ps) as usize;
            read_exact(&f.plan.name, Fd(level.fd), &mut buf[..n], ps);
            let mut x = h.algo.digest();
            x.update(&buf[..n]);
            let got = x.finish();
            let want = h.hash(piece).unwrap_or(!got);
            if got != want {
                die(pmsg(&f.plan.name, level)
                    .s(" is damaged (piece ")
                    .u(piece)
                    .s(" at offset ")
                    .u(ps)
                    .s(", ")
                    .u(pe - ps)
                    .s(" bytes: XXH64 ")
                    .x(got)
                    .s(", the image says ")
                    .x(want)
                    .s("); not restarting"));
            }
            f.held[lvl] = Some(piece);
        }
        let n = (pe - o).min(len - done);
        let from = (o - ps) as usize;
        crate::remap::copy_into(to + done, &buf[from..from + n as usize]);
        done += n;
    }
}
