//! Incremental images on the command's side: the chain of parents for `ckpt
//! info` and `ckpt verify`, and `ckpt merge CHILD -o FULL`, which writes the full
//! image a chain stands for.
//!
//! A parent is found as the loader finds it: by the file name its child gives,
//! in the child's directory, and recognised by its header's checksums and
//! length. `verify` checks every byte of every image of the chain, then that
//! every inherited page is held by some ancestor.

use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ckpt_image::hashes::{self, DataHashes};
use ckpt_image::parent::Parent;
use ckpt_image::section::tag;
use ckpt_image::{DataHasher, HEADER_LEN, MetaWriter, Region, Run, page_up};

use super::{Image, describe};
use crate::error::{Error, FAILURE};

/// One ancestor as the chain found it.
pub struct Ancestor {
    pub path: PathBuf,
    /// The image, or why it cannot be used.
    pub image: Result<Image<'static>, Error>,
}

/// The image's ancestors, parent first, as far as they can be found (the last
/// one is an error when the chain is broken there).
pub fn ancestors(img: &Image) -> Vec<Ancestor> {
    let mut out = Vec::new();
    let dir = img.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let Some(mut next) = parent_of(img) else { return out };
    loop {
        let (head, name) = next;
        let path = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name));
        // Images of a chain live as long as the command: leak the path.
        let leaked: &'static Path = Box::leak(path.clone().into_boxed_path());
        let image = Image::open(leaked).and_then(|p| {
            let h = &p.header;
            if (h.meta_hash, h.data_hash, h.file_len) != (head.meta_hash, head.data_hash, head.file_len) {
                return Err(Error::new(
                    FAILURE,
                    format!(
                        "{}: not the parent image its child was written against (its checksums differ: it was \
                         replaced, or rewritten by a later run)",
                        path.display()
                    ),
                ));
            }
            if p.meta().compression().is_some() || p.meta().tree().is_some() {
                return Err(Error::new(
                    FAILURE,
                    format!("{}: a compressed or tree image cannot be a parent", path.display()),
                ));
            }
            Ok(p)
        });
        let again = image.as_ref().ok().and_then(parent_of);
        out.push(Ancestor { path, image });
        match again {
            Some(n) if out.len() < ckpt_image::parent::MAX_DEPTH as usize => next = n,
            _ => break,
        }
    }
    out
}

fn parent_of(img: &Image) -> Option<(ckpt_image::parent::ParentHead, Vec<u8>)> {
    img.meta().parent().map(|p| (p.head, p.name.to_vec()))
}

fn broken(a: &Ancestor) -> Error {
    match &a.image {
        Err(e) if e.message.contains("No such file") || e.message.contains("cannot read") => Error::new(
            FAILURE,
            format!(
                "{} (a parent image): {}; an incremental image needs every image of its chain",
                a.path.display(),
                e.message
            ),
        ),
        Err(e) => Error::new(FAILURE, e.message.clone()),
        Ok(_) => Error::new(FAILURE, String::new()),
    }
}

/// `ckpt verify` of an incremental image: every ancestor checked byte by byte,
/// then every inherited page found in one. Returns (images, bytes inherited).
pub fn verify(img: &Image) -> Result<Option<(usize, u64)>, Error> {
    let Some(p) = img.meta().parent() else { return Ok(None) };
    let chain = ancestors(img);
    for a in &chain {
        let i = a.image.as_ref().map_err(|_| broken(a))?;
        i.check_bytes()?;
    }
    let images: Vec<&Image> = chain.iter().filter_map(|a| a.image.as_ref().ok()).collect();
    for g in p.inherited.iter() {
        covered(&images, 0, g.addr, g.addr + g.len)?;
    }
    Ok(Some((chain.len(), p.inherited_len())))
}

/// Every page of `[a, b)` is held by ancestor `lvl` or one above it.
fn covered(images: &[&Image], lvl: usize, a: u64, b: u64) -> Result<(), Error> {
    each_source(images, lvl, a, b, &mut |_, _, _, _| Ok(()))
}

/// Call `f(level, file offset, address, len)` for the pieces of `[a, b)` as the
/// chain from `lvl` holds them.
fn each_source(
    images: &[&Image],
    lvl: usize,
    a: u64,
    b: u64,
    f: &mut dyn FnMut(usize, u64, u64, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(img) = images.get(lvl) else {
        return Err(Error::new(FAILURE, format!("the chain ends before the page at {a:#x} is found")));
    };
    let m = img.meta();
    let inh = m.parent();
    let mut at = a;
    while at < b {
        let lo = m.first_run_after(at);
        if let Some(u) = (lo < m.header.nruns).then(|| m.run(lo)).filter(|u| u.addr <= at) {
            let stop = b.min(u.addr + u.len);
            f(lvl, u.file_off + (at - u.addr), at, stop - at)?;
            at = stop;
            continue;
        }
        match inh.as_ref().and_then(|p| p.inherited.at(p.first_after(at))).filter(|g| g.addr <= at) {
            Some(g) => {
                let stop = b.min(g.addr + g.len);
                each_source(images, lvl + 1, at, stop, f)?;
                at = stop;
            }
            None => {
                return Err(img.damaged(format!(
                    "does not hold the page at {at:#x} that its child inherits from it (a parent image)"
                )));
            }
        }
    }
    Ok(())
}

/// The `chain:` line of `ckpt info` (None for a full image).
pub fn info_line(img: &Image) -> Option<String> {
    let p: Parent = img.meta().parent()?;
    let chain = ancestors(img);
    let names: Vec<String> = chain
        .iter()
        .map(|a| {
            let n = a.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match &a.image {
                Ok(i) if i.meta().parent().is_some() => format!("{n} (incremental)"),
                Ok(_) => format!("{n} (full)"),
                Err(e) => format!("{n} (NOT USABLE: {})", e.message),
            }
        })
        .collect();
    Some(format!(
        "incremental, {} images above it: {}; {} inherited from them, {} stored here",
        p.head.depth,
        names.join(" <- "),
        super::size(p.inherited_len()),
        super::size(img.header.data_len)
    ))
}

/// `ckpt merge CHILD -o FULL`.
pub fn merge(child: &Path, out: &Path) -> Result<(), Error> {
    let img = Image::open(child)?;
    img.check_bytes()?;
    let chain = ancestors(&img);
    for a in &chain {
        a.image.as_ref().map_err(|_| broken(a))?.check_bytes()?;
    }
    let mut images: Vec<&Image> = vec![&img];
    images.extend(chain.iter().filter_map(|a| a.image.as_ref().ok()));
    let meta = img.meta();
    let inh = meta.parent();

    // The full run table: the child's runs and its inherited ranges, merged per
    // region; where each run's bytes come from is looked up when copying.
    let mut regions: Vec<Region> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    for r in meta.regions() {
        let mut segs: Vec<(u64, u64)> = meta.runs_of(&r).map(|u| (u.addr, u.addr + u.len)).collect();
        if let Some(p) = &inh {
            let mut k = p.first_after(r.start);
            while let Some(g) = p.inherited.at(k).filter(|g| g.addr < r.end) {
                segs.push((g.addr, g.addr + g.len));
                k += 1;
            }
        }
        segs.sort_unstable();
        let first = runs.len();
        for (s, e) in segs {
            let n = runs.len();
            match runs.last_mut() {
                Some(u) if n > first && u.addr + u.len == s => u.len += e - s,
                _ => runs.push(Run { addr: s, len: e - s, file_off: 0 }),
            }
        }
        regions.push(Region { first_run: first as u32, nruns: (runs.len() - first) as u32, ..r });
    }
    let data_len: u64 = runs.iter().map(|u| u.len).sum();
    let npieces: usize = regions
        .iter()
        .map(|r| {
            let n: u64 = runs[r.first_run as usize..(r.first_run + r.nruns) as usize].iter().map(|u| u.len).sum();
            hashes::pieces_of(n, hashes::PIECE) as usize
        })
        .sum();

    // Strings again, in the order the runtime writes them.
    let p = meta.process;
    let mut strings: Vec<&[u8]> = p.strings.iter().map(|&s| meta.string(s)).collect();
    strings.extend(regions.iter().map(|r| meta.string((r.name_off, r.name_len))));
    let strings_len: usize = strings.iter().map(|s| s.len() + 1).sum();
    let kept: Vec<_> = meta.sections.iter().filter(|s| s.tag != tag::PARENT && s.tag != tag::DATA_HASHES).collect();
    let sections_len: usize =
        kept.iter().map(|s| ckpt_image::section::SECTION_HEADER_LEN + s.data.len()).sum::<usize>()
            + ckpt_image::section::SECTION_HEADER_LEN
            + DataHashes::len_for(npieces);
    let meta_len = MetaWriter::len_for(regions.len(), runs.len(), strings_len) + sections_len;
    let h0 = img.header;
    let data_offset = page_up(h0.meta_offset + meta_len as u64);
    let mut off = data_offset;
    for u in &mut runs {
        u.file_off = off;
        off += u.len;
    }

    // The page data, piece by piece, each piece hashed as the loader will.
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.merge.{}",
        out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let io = |e: std::io::Error| Error::new(FAILURE, format!("cannot write {}: {}", tmp.display(), describe(&e)));
    let file = fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(&tmp).map_err(io)?;
    let res = (|| {
        let mut piece_hashes = Vec::with_capacity(npieces);
        let mut whole = DataHasher::new();
        let mut at = data_offset;
        for r in &regions {
            let mine = &runs[r.first_run as usize..(r.first_run + r.nruns) as usize];
            let mut piece = hashes::Algo::NEWEST.digest();
            let mut in_piece = 0u64;
            for u in mine {
                let mut done = 0u64;
                while done < u.len {
                    let n = (u.len - done).min(hashes::PIECE - in_piece);
                    let mut buf = vec![0u8; n as usize];
                    fill(&images, u.addr + done, &mut buf)?;
                    file.write_all_at(&buf, at).map_err(io)?;
                    piece.update(&buf);
                    whole.update(&buf);
                    at += n;
                    done += n;
                    in_piece += n;
                    if in_piece == hashes::PIECE {
                        piece_hashes.push(piece.finish());
                        piece = hashes::Algo::NEWEST.digest();
                        in_piece = 0;
                    }
                }
            }
            if in_piece > 0 {
                piece_hashes.push(piece.finish());
            }
        }
        debug_assert_eq!(piece_hashes.len(), npieces);

        let mut mb = vec![0u8; meta_len];
        let mut w = MetaWriter::new(&mut mb, regions.len() as u32, runs.len() as u32)
            .map_err(|_| Error::new(FAILURE, "metadata too large"))?;
        let mut np = p;
        for (i, s) in strings[..4].iter().enumerate() {
            np.strings[i] = w.string(s).map_err(|_| Error::new(FAILURE, "strings"))?;
        }
        w.process(&np);
        for (i, r) in regions.iter().enumerate() {
            let (o, l) = w.string(strings[4 + i]).map_err(|_| Error::new(FAILURE, "strings"))?;
            w.region(i as u32, &Region { name_off: o, name_len: l, ..*r });
        }
        for (i, u) in runs.iter().enumerate() {
            w.run(i as u32, u);
        }
        for s in &kept {
            w.section(s.tag, s.version, s.data.len())
                .map_err(|_| Error::new(FAILURE, "sections"))?
                .copy_from_slice(s.data);
        }
        let dh = w
            .section(tag::DATA_HASHES, hashes::VERSION, DataHashes::len_for(npieces))
            .map_err(|_| Error::new(FAILURE, "sections"))?;
        DataHashes::start(dh, hashes::PIECE, npieces);
        for (i, &x) in piece_hashes.iter().enumerate() {
            DataHashes::put(dh, i, x);
        }
        let meta_bytes = w.finish().to_vec();
        let mut h = h0;
        h.version = ckpt_image::PLAIN_VERSION;
        h.meta_len = meta_len as u64;
        h.nregions = regions.len() as u32;
        h.nruns = runs.len() as u32;
        h.strings_len = strings_len as u64;
        h.sections_len = sections_len as u64;
        h.data_offset = data_offset;
        h.data_len = data_len;
        h.file_len = data_offset + data_len;
        h.meta_hash = ckpt_image::hash64(&meta_bytes);
        h.data_hash = whole.finish();
        let mut hb = [0u8; HEADER_LEN];
        h.seal(&mut hb);
        // The loader and its padding, as they are in the child.
        let mut loader = vec![0u8; h0.image_offset as usize];
        img.file.read_exact_at(&mut loader, 0).map_err(|e| img.damaged(describe(&e)))?;
        file.write_all_at(&loader, 0).map_err(io)?;
        file.write_all_at(&hb, h.image_offset).map_err(io)?;
        file.write_all_at(&meta_bytes, h.meta_offset).map_err(io)?;
        let pad = vec![0u8; (data_offset - h.meta_offset - meta_len as u64) as usize];
        file.write_all_at(&pad, h.meta_offset + meta_len as u64).map_err(io)?;
        file.set_len(h.file_len).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700)).map_err(io)?;
        fs::rename(&tmp, out).map_err(io)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    let v = Image::open(out)?;
    v.check_bytes()?;
    println!(
        "{}: a full image of {} images ({} of page data), from {}",
        out.display(),
        chain.len() + 1,
        super::size(data_len),
        child.display()
    );
    Ok(())
}

/// The bytes of memory at `addr` (`buf.len()`, inside one run of the merged
/// table) as the chain holds them: level 0 is the child itself.
fn fill(images: &[&Image], addr: u64, buf: &mut [u8]) -> Result<(), Error> {
    let end = addr + buf.len() as u64;
    each_source(images, 0, addr, end, &mut |lvl, off, a, n| {
        let at = (a - addr) as usize;
        let img = images[lvl];
        img.file
            .read_exact_at(&mut buf[at..at + n as usize], img.base + off)
            .map_err(|e| img.damaged(format!("cannot read at offset {off}: {}", describe(&e))))
    })
}
