//! `ckpt verify FILE` and `ckpt info FILE`: look at a checkpoint file without
//! running it.
//!
//! Both go through the `ckpt-image` parser the loader uses (`Header::parse`,
//! `Meta::parse`), so they accept exactly the metadata a restart would accept.
//! `verify` then reads every other byte: the loader against
//! `Header::loader_hash`, the padding before the page data (zeros), the page
//! data against `Header::data_hash` (which the loader does not check: a restart
//! must not read every page twice), and the exact file length. The file is read
//! in pieces, never whole: images are often several GiB.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ckpt_image::hashes::Algo;
use ckpt_image::loader::{self, LoaderElf, LoaderError};
use ckpt_image::{ARCH_X86, ARCH_X86_64, HEADER_LEN, Header, ImageError, Meta, Region, kind, prot, strs};

use serde::Serialize;

use crate::error::{Error, FAILURE};

mod chain;
pub use chain::merge;

/// The architectures whose images this build of ckpt restarts.
const RESTARTABLE: &[u32] = &[ARCH_X86_64, ARCH_X86];

/// Pieces in which the page data is read and hashed.
const PIECE: usize = 1 << 20;

/// An open checkpoint file whose loader, header and metadata have been checked.
struct Image<'p> {
    path: &'p Path,
    file: File,
    len: u64,
    loader: LoaderElf,
    header: Header,
    meta: Vec<u8>,
    /// Where this image starts in the file: 0, or a member image of a tree
    /// (`ckpt_image::tree`), which is a whole checkpoint file of its own there.
    base: u64,
    /// " (process PID of the tree)" for a member image, for messages.
    who: String,
}

/// `ckpt verify FILE`: exit 0 with a one-line summary if every byte checks out,
/// otherwise an error naming the damaged part.
pub fn verify(path: &Path) -> Result<(), Error> {
    let img = Image::open(path)?;
    img.check_bytes()?;
    let meta = img.meta();
    let saved: u64 = img.header.data_len;
    let unchecked = if img.header.loader_hash == 0 {
        " (the loader's bytes are not: this image predates their checksum)"
    } else {
        ""
    };
    let tree = match meta.tree() {
        Some(t) => format!(", a tree of {} processes (every member image checked)", t.len()),
        None => String::new(),
    };
    let tree = match chain::verify(&img)? {
        Some((n, inherited)) => {
            format!("{tree}, incremental: {} inherited from {n} parent images (each checked)", size(inherited))
        }
        None => tree,
    };
    println!(
        "{}: ok: {} image of {}, {} regions ({} mapped, {} saved){tree}, {} bytes checked{unchecked}",
        path.display(),
        arch_name(img.header.arch),
        text(meta.string(meta.process.strings[strs::EXE])),
        img.header.nregions,
        size(img.header.mapped_len),
        size(saved),
        img.len,
    );
    Ok(())
}

/// What `ckpt run` needs to know of an image that passed every check of `verify`.
pub struct Verified {
    /// When it was taken (seconds since the epoch, UTC).
    pub time: u64,
    /// Its length in bytes.
    pub file_len: u64,
}

/// Every check of `ckpt verify`, without the summary line.
pub fn check(path: &Path) -> Result<Verified, Error> {
    let img = Image::open(path)?;
    img.check_bytes()?;
    Ok(Verified { time: img.meta().process.time, file_len: img.len })
}

/// `ckpt info [--json] FILE`: what the image holds, from its checked metadata.
pub fn info(path: &Path, json: bool) -> Result<(), Error> {
    let img = Image::open(path)?;
    let out = if json { img.json() } else { img.human() };
    print!("{out}");
    Ok(())
}

impl<'p> Image<'p> {
    /// Open `path` and check what a restart checks before touching memory: the
    /// loader's ELF headers, the image header and the metadata.
    fn open(path: &'p Path) -> Result<Image<'p>, Error> {
        let io_err = |e: io::Error| Error::new(FAILURE, format!("cannot read {}: {}", path.display(), describe(&e)));
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        Image::open_in(path, file, 0, len, String::new())
    }

    /// The image of `len` bytes at `base` in `file` (a whole file, or a member
    /// image of a tree).
    fn open_in(path: &'p Path, file: File, base: u64, len: u64, who: String) -> Result<Image<'p>, Error> {
        let damaged = |what: String| Error::new(FAILURE, format!("{}{who}: {what}", path.display()));
        let io_err = |e: io::Error| Error::new(FAILURE, format!("cannot read {}: {}", path.display(), describe(&e)));
        if len == 0 {
            return Err(damaged("empty file, not a checkpoint image".into()));
        }
        let loader = read_loader(&file, base, len).map_err(io_err)?.map_err(|e| match e {
            LoaderError::Truncated { .. } => {
                damaged("truncated image (the file ends inside the restart loader's ELF headers)".into())
            }
            LoaderError::NotLoader => {
                damaged("not a checkpoint image (it does not start with an ELF restart loader)".into())
            }
        })?;
        let image_offset = loader::image_offset(loader.file_end);
        let header_end = image_offset.saturating_add(HEADER_LEN as u64);
        if len < header_end {
            if loader.ordinary {
                return Err(damaged(
                    "not a checkpoint image (an ordinary ELF program: it has an interpreter or section \
                     headers, which the restart loader does not)"
                        .into(),
                ));
            }
            return Err(damaged(ImageError::Truncated { need: header_end, have: len }.to_string()));
        }
        let mut hb = [0u8; HEADER_LEN];
        file.read_exact_at(&mut hb, base + image_offset).map_err(io_err)?;
        let header = match Header::parse(&hb, len, 0) {
            Ok(h) => h,
            Err(ImageError::BadMagic) => {
                return Err(damaged(format!(
                    "not a checkpoint image (an ELF file, but no image header at offset \
                     {image_offset} after its {} bytes)",
                    loader.file_end
                )));
            }
            Err(e) => return Err(damaged(e.to_string())),
        };
        if !RESTARTABLE.contains(&header.arch) {
            return Err(damaged(format!(
                "image is for another architecture ({}, e_machine {}); this ckpt restarts {} images",
                arch_name(header.arch),
                header.arch,
                RESTARTABLE.iter().map(|&a| arch_name(a)).collect::<Vec<_>>().join(", ")
            )));
        }
        if u32::from(loader.machine) != header.arch {
            return Err(damaged(format!(
                "the restart loader is damaged or foreign (ELF e_machine {}, but the image is {})",
                loader.machine,
                arch_name(header.arch)
            )));
        }
        if header.image_offset != image_offset {
            return Err(damaged(format!(
                "{} (the loader ends at {}, so the image must start at {image_offset}; the \
                 header says {})",
                ImageError::BadLayout.what(),
                loader.file_end,
                header.image_offset
            )));
        }
        // Header::parse checked meta_offset + meta_len <= data_offset <= file_len <= len.
        let mut meta = vec![0u8; header.meta_len as usize];
        file.read_exact_at(&mut meta, base + header.meta_offset).map_err(io_err)?;
        Meta::parse(&header, &meta).map_err(|e| damaged(e.to_string()))?;
        Ok(Image { path, file, len, loader, header, meta, base, who })
    }

    /// The metadata view (validated in `open`).
    fn meta(&self) -> Meta<'_> {
        Meta::parse(&self.header, &self.meta).expect("metadata validated when the file was opened")
    }

    fn damaged(&self, what: String) -> Error {
        Error::new(FAILURE, format!("{}{}: {what}", self.path.display(), self.who))
    }

    /// Every byte `open` did not check: the loader, the padding, the page data,
    /// and nothing after the end.
    fn check_bytes(&self) -> Result<(), Error> {
        let h = &self.header;
        let end = ckpt_image::tree::end(&self.meta());
        if self.len < end {
            return Err(self.damaged(ImageError::Truncated { need: end, have: self.len }.to_string()));
        }
        if self.len != end {
            return Err(self.damaged(format!(
                "{} bytes after the end of the image (the file is {} bytes, the image {})",
                self.len - end,
                self.len,
                end
            )));
        }
        let (loader_hash, _) = self.hash(0, h.image_offset, Algo::Xxh64)?;
        if h.loader_hash != 0 && loader_hash != h.loader_hash {
            return Err(self.damaged(format!(
                "the restart loader is damaged (XXH64 of bytes 0..{} is {loader_hash:016x}, the \
                 header says {:016x})",
                h.image_offset, h.loader_hash
            )));
        }
        let pad = h.meta_offset + h.meta_len;
        if let (_, Some(at)) = self.hash(pad, h.data_offset - pad, Algo::Xxh64)? {
            return Err(
                self.damaged(format!("the padding before the page data is damaged (non-zero byte at offset {at})"))
            );
        }
        self.check_pieces()?;
        // What is in the file: the plain data, or the stored (compressed) pieces.
        let stored = h.file_len - h.data_offset;
        let (data_hash, _) = self.hash(h.data_offset, stored, Algo::Xxh64)?;
        if data_hash != h.data_hash {
            return Err(self.damaged(format!(
                "the page data is damaged (XXH64 of its {} bytes at offset {} is {data_hash:016x}, \
                 the header says {:016x})",
                stored, h.data_offset, h.data_hash
            )));
        }
        self.check_members()
    }

    /// A tree image: every member image, checked as a file of its own, and the
    /// zero padding after each.
    fn check_members(&self) -> Result<(), Error> {
        for (m, base, len) in self.members() {
            let who = format!(" (process {} of the tree)", m.pid);
            let file = self.file.try_clone().map_err(|e| self.damaged(describe(&e)))?;
            let img = Image::open_in(self.path, file, self.base + base, len, who)?;
            if img.header.arch != self.header.arch {
                return Err(img.damaged("a member image of another architecture than the tree's root".into()));
            }
            img.check_bytes()?;
            if let (_, Some(at)) = self.hash(base + len, ckpt_image::page_up(len) - len, Algo::Xxh64)? {
                return Err(
                    img.damaged(format!("the padding after the image is damaged (non-zero byte at offset {at})"))
                );
            }
        }
        Ok(())
    }

    /// The member images of a tree: (record, offset in this image, length).
    fn members(&self) -> Vec<(ckpt_image::tree::Member, u64, u64)> {
        let meta = self.meta();
        let Some(t) = meta.tree() else { return Vec::new() };
        t.iter()
            .filter(|m| m.len != 0)
            .map(|m| {
                let (start, end) = ckpt_image::tree::range(self.header.file_len, &m);
                (m, start, end - start)
            })
            .collect()
    }

    /// Each piece of the page data against its hash in the DATA_HASHES section
    /// (what the loader checks as it reads), naming the first damaged piece.
    fn check_pieces(&self) -> Result<(), Error> {
        let meta = self.meta();
        let Some(dh) = meta.data_hashes().map_err(|e| self.damaged(e.to_string()))? else { return Ok(()) };
        let stored = meta.compression();
        for p in ckpt_image::hashes::pieces(&meta, dh.piece) {
            let (k, n) = (p.index, p.len);
            let (got, at) = match &stored {
                // Validated by Meta::parse: one stored piece per piece.
                Some(c) => {
                    let s = c.piece(k).unwrap_or_default();
                    (self.unpacked_hash(k, &s, n, dh.algo)?, s.off)
                }
                None => (self.hash(p.off, n, dh.algo)?.0, p.off),
            };
            let want = dh.hash(k).unwrap_or(!got);
            if got != want {
                return Err(self.damaged(format!(
                    "the page data is damaged (piece {k} at offset {at}, {n} bytes, of region \
                     {:x}-{:x}: {} {got:016x}, the image says {want:016x})",
                    p.region.start,
                    p.region.end,
                    dh.algo.name()
                )));
            }
        }
        Ok(())
    }

    /// The `algo` hash of piece `k` of `n` plain bytes, stored as `p`: decoded as
    /// the loader does, naming the offset where a damaged block stops decoding.
    fn unpacked_hash(&self, k: u64, p: &ckpt_image::compress::StoredPiece, n: u64, algo: Algo) -> Result<u64, Error> {
        use ckpt_image::compress::{codec, decode};
        if p.codec == codec::NONE {
            return Ok(self.hash(p.off, n, algo)?.0);
        }
        let mut packed = vec![0u8; p.len as usize];
        self.file.read_exact_at(&mut packed, p.off).map_err(|e| {
            self.damaged(format!("cannot read the stored piece {k} at offset {}: {}", p.off, describe(&e)))
        })?;
        let mut plain = vec![0u8; n as usize];
        decode(&packed, &mut plain).map_err(|e| {
            self.damaged(format!(
                "the page data is damaged (piece {k} at offset {}, {} bytes stored: its {} block does not \
                 decode, at offset {})",
                p.off,
                p.len,
                codec::name(p.codec),
                p.off + e.at as u64
            ))
        })?;
        let mut x = algo.digest();
        x.update(&plain);
        Ok(x.finish())
    }

    /// The `algo` hash of `len` bytes at `off`, read in pieces, and the offset of
    /// the first non-zero byte among them, if any.
    fn hash(&self, off: u64, len: u64, algo: Algo) -> Result<(u64, Option<u64>), Error> {
        let mut buf = vec![0u8; PIECE.min(len as usize)];
        let mut hasher = algo.digest();
        let mut nonzero = None;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(PIECE as u64) as usize;
            let at = off + done;
            self.file.read_exact_at(&mut buf[..n], self.base + at).map_err(|e| {
                let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                    // The file shrank while we read it.
                    ImageError::Truncated { need: off + len, have: at }.to_string()
                } else {
                    format!("cannot read at offset {at}: {}", describe(&e))
                };
                self.damaged(why)
            })?;
            hasher.update(&buf[..n]);
            if nonzero.is_none() {
                nonzero = buf[..n].iter().position(|&b| b != 0).map(|i| at + i as u64);
            }
            done += n as u64;
        }
        Ok((hasher.finish(), nonzero))
    }

    /// The process's strings: executable, argv, cwd, kernel release.
    fn strings(&self) -> (String, Vec<String>, String, String) {
        let meta = self.meta();
        let s = |i: usize| meta.string(meta.process.strings[i]);
        let argv = s(strs::ARGV);
        let args = if argv.is_empty() { Vec::new() } else { argv.split(|&b| b == 0).map(text).collect() };
        (text(s(strs::EXE)), args, text(s(strs::CWD)), text(s(strs::KERNEL)))
    }

    fn human(&self) -> String {
        let h = &self.header;
        let meta = self.meta();
        let (exe, args, cwd, kernel) = self.strings();
        let mut o = String::new();
        let _ = writeln!(o, "file:         {} ({} bytes)", self.path.display(), self.len);
        let _ = writeln!(
            o,
            "image:        version {}, {}, loader {} bytes",
            h.version,
            arch_name(h.arch),
            self.loader.file_end
        );
        let _ = writeln!(o, "program:      {exe}");
        let _ = writeln!(o, "arguments:    {}", args.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
        let _ = writeln!(o, "directory:    {cwd}");
        let _ = writeln!(o, "taken:        {} (pid {})", utc(meta.process.time), meta.process.pid);
        let _ = writeln!(o, "kernel:       Linux {kernel}");
        let _ = writeln!(
            o,
            "memory:       {} mapped in {} regions, {} saved in {} runs",
            size(h.mapped_len),
            h.nregions,
            size(h.data_len),
            h.nruns
        );
        let _ = writeln!(o, "compression:  {}", compression_text(&meta));
        if let Some(line) = chain::info_line(self) {
            let _ = writeln!(o, "chain:        {line}");
        }
        let _ = writeln!(o, "checksums:    header and metadata ok; page data not read (ckpt verify checks it)");
        let sections: Vec<_> = meta.sections.iter().collect();
        let ctx = self.context();
        if sections.is_empty() {
            let _ = writeln!(o, "sections:     none (memory, registers and the runtime's own record only)");
        } else {
            let _ = writeln!(o, "sections:");
            for sec in &sections {
                let _ = writeln!(o, "  {}", crate::sections::title(sec));
                for line in crate::sections::describe(sec, &ctx) {
                    let _ = writeln!(o, "    {line}");
                }
            }
        }
        if let Some(t) = meta.tree() {
            let _ = writeln!(o, "processes:    {} (this image is the root's; each other process has its own)", t.len());
            for m in t.iter() {
                let _ = writeln!(o, "  {}", self.member_line(&m));
            }
        }
        let _ = writeln!(o, "regions:");
        let w = if h.arch == ARCH_X86 { 8 } else { 12 };
        for r in meta.regions() {
            let saved: u64 = meta.runs_of(&r).map(|run| run.len).sum();
            let _ = writeln!(
                o,
                "  {:0w$x}-{:0w$x} {} {:<6} {:>10} saved of {:>10}  {}",
                r.start,
                r.end,
                prot_text(&r),
                kind_name(r.kind),
                size(saved),
                size(r.end - r.start),
                text(meta.string((r.name_off, r.name_len))),
            );
        }
        o
    }

    /// What the sections' words need beyond each section: the pipes of a tree,
    /// the MAP_SHARED regions.
    fn context(&self) -> crate::sections::Context {
        let meta = self.meta();
        let shared_maps = meta
            .regions()
            .filter(|r| r.kind == ckpt_image::kind::SHARED)
            .map(|r| (meta.string((r.name_off, r.name_len)).to_vec(), r.start, r.file_offset, r.end - r.start))
            .collect();
        let (tree_pipes, tree_sockets) = self.tree_held();
        crate::sections::Context { tree_pipes, shared_maps, tree_sockets }
    }

    /// The pipes, and the UNIX sockets that are ends of socket pairs, of a
    /// tree's processes, the root's and every member's: who holds each (empty
    /// for an image of one process).
    fn tree_held(&self) -> (Holders, Holders) {
        use ckpt_image::files::{Files, fkind, how, sock};
        let mut pipes = Holders::new();
        let mut sockets = Holders::new();
        let mut add = |pid: u64, meta: &ckpt_image::Meta| {
            let Some(f) = meta.sections.get(ckpt_image::section::tag::FILES).and_then(|s| Files::parse(s.data).ok())
            else {
                return;
            };
            for r in f.files().filter(|r| r.kind == fkind::PIPE && r.how == how::PIPE) {
                pipes.entry(r.ino).or_default().push((pid, r.fd));
            }
            for r in f.files().filter(|r| {
                r.kind == fkind::SOCKET
                    && r.how == how::NEW
                    && matches!(f.word(r, sock::STATE), sock::PAIR | sock::TREE_PEER)
            }) {
                sockets.entry(r.ino).or_default().push((pid, r.fd));
            }
        };
        let meta = self.meta();
        if meta.tree().is_none() {
            return (pipes, sockets);
        }
        add(meta.process.pid, &meta);
        for (m, start, len) in self.members() {
            let Ok(file) = self.file.try_clone() else { continue };
            if let Ok(img) = Image::open_in(self.path, file, self.base + start, len, String::new()) {
                add(m.pid as u64, &img.meta());
            }
        }
        (pipes, sockets)
    }

    /// One line about a process of a tree: its ids and what its image holds.
    fn member_line(&self, m: &ckpt_image::tree::Member) -> String {
        let ids = format!("pid {:<7} parent {:<7} group {:<7} session {:<7}", m.pid, m.ppid, m.pgid, m.sid);
        if m.flags & ckpt_image::tree::ROOT != 0 {
            return format!("{ids} the root (this image)");
        }
        if m.flags & ckpt_image::tree::ZOMBIE != 0 {
            return format!("{ids} a zombie ({}); made again at restart for its parent to reap", wait_text(m.status));
        }
        let (start, end) = ckpt_image::tree::range(self.header.file_len, m);
        let Ok(file) = self.file.try_clone() else { return format!("{ids} (cannot read)") };
        match Image::open_in(self.path, file, self.base + start, end - start, String::new()) {
            Ok(img) => {
                let meta = img.meta();
                let threads = meta.threads().map_or(1, |t| t.len());
                format!(
                    "{ids} {} ({} at offset {start}, {} regions, {} saved, {} thread{})",
                    text(meta.string(meta.process.strings[strs::EXE])),
                    size(end - start),
                    img.header.nregions,
                    size(img.header.data_len),
                    threads,
                    if threads == 1 { "" } else { "s" }
                )
            }
            Err(e) => format!("{ids} damaged: {e}"),
        }
    }

    fn json(&self) -> String {
        let h = &self.header;
        let meta = self.meta();
        let ctx = self.context();
        let (exe, args, cwd, kernel) = self.strings();
        let regions = meta
            .regions()
            .map(|r| RegionJson {
                start: r.start,
                end: r.end,
                prot: prot_text(&r),
                kind: kind_name(r.kind),
                saved_bytes: meta.runs_of(&r).map(|run| run.len).sum(),
                runs: r.nruns,
                name: text(meta.string((r.name_off, r.name_len))),
            })
            .collect();
        let info = InfoJson {
            file: text(self.path.as_os_str().as_bytes()),
            file_len: self.len,
            version: h.version,
            arch: arch_name(h.arch),
            e_machine: h.arch,
            program: exe,
            arguments: args,
            directory: cwd,
            kernel,
            time: meta.process.time,
            time_utc: utc(meta.process.time),
            pid: meta.process.pid,
            mapped_bytes: h.mapped_len,
            saved_bytes: h.data_len,
            compression: meta.compression().map_or("none", |c| ckpt_image::compress::codec::name(c.head.codec)),
            stored_bytes: h.file_len - h.data_offset,
            data_verified: false,
            sections: meta
                .sections
                .iter()
                .map(|sec| SectionJson {
                    tag: sec.tag,
                    name: ckpt_image::section::name(sec.tag),
                    version: sec.version,
                    bytes: sec.data.len(),
                    records: crate::sections::json_records(&sec, &ctx),
                })
                .collect(),
            regions,
        };
        let mut o = serde_json::to_string(&info).expect("plain data serializes");
        o.push('\n');
        o
    }
}

/// `ckpt info --json`: one object, its fields in this order. A new kind of saved
/// state adds its own field (a section's records as an array of objects).
#[derive(Serialize)]
struct InfoJson {
    file: String,
    file_len: u64,
    version: u32,
    arch: &'static str,
    e_machine: u32,
    program: String,
    arguments: Vec<String>,
    directory: String,
    kernel: String,
    /// Seconds since the epoch, and the same as text.
    time: u64,
    time_utc: String,
    pid: u64,
    /// "none" or the codec of the page data.
    compression: &'static str,
    /// Bytes of page data in the file (`saved_bytes` when not compressed).
    stored_bytes: u64,
    mapped_bytes: u64,
    saved_bytes: u64,
    /// Always false: `info` does not read the page data (`ckpt verify` does).
    data_verified: bool,
    sections: Vec<SectionJson>,
    regions: Vec<RegionJson>,
}

/// One section of `ckpt info --json`: its tag, name, version and size.
#[derive(Serialize)]
struct SectionJson {
    tag: u32,
    name: &'static str,
    version: u32,
    bytes: usize,
    /// A known section's records, under its own key (`guards`, `views`).
    #[serde(flatten)]
    records: serde_json::Map<String, serde_json::Value>,
}

/// One memory region of `ckpt info --json`.
#[derive(Serialize)]
struct RegionJson {
    start: u64,
    end: u64,
    /// `rwxp`/`rwxs`, as /proc/PID/maps writes it.
    prot: String,
    kind: &'static str,
    saved_bytes: u64,
    runs: u32,
    name: String,
}

/// Is `path` a checkpoint image (a restart loader followed by an image header)?
/// A restarted process's /proc/PID/exe is its image.
pub fn is_image(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let len = file.metadata().map_or(0, |m| m.len());
    let Ok(Ok(elf)) = read_loader(&file, 0, len) else { return false };
    let mut magic = [0u8; 8];
    !elf.ordinary
        && file.read_exact_at(&mut magic, loader::image_offset(elf.file_end)).is_ok()
        && magic == ckpt_image::MAGIC
}

/// The restart loader's ELF headers at the start of `file` (`len` bytes long),
/// read in one go in the usual case, in two when its program headers lie further.
fn read_loader(file: &File, base: u64, len: u64) -> io::Result<Result<LoaderElf, LoaderError>> {
    /// Enough for the headers of the loader ckpt builds (they are in its first page).
    const FIRST: u64 = 4096;
    /// More is not a loader's: `e_phoff` + 65535 entries of 56 bytes stays far below.
    const MOST: u64 = 16 << 20;
    let mut buf = vec![0u8; len.min(FIRST) as usize];
    file.read_exact_at(&mut buf, base)?;
    match loader::parse(&buf) {
        Err(LoaderError::Truncated { need }) if need <= len.min(MOST) && need > buf.len() as u64 => {
            buf.resize(need as usize, 0);
            file.read_exact_at(&mut buf, base)?;
            Ok(loader::parse(&buf))
        }
        r => Ok(r),
    }
}

/// A wait status as `waitpid` reports it, in words.
fn wait_text(st: u32) -> String {
    if st & 0x7f == 0 { format!("exit status {}", (st >> 8) & 0xff) } else { format!("killed by signal {}", st & 0x7f) }
}

/// Who holds each pipe or socket of a tree, by inode: (pid, descriptor).
type Holders = std::collections::BTreeMap<u64, Vec<(u64, u32)>>;

fn describe(e: &io::Error) -> String {
    crate::program::describe(e)
}

fn arch_name(arch: u32) -> &'static str {
    match arch {
        ARCH_X86_64 => "x86_64",
        ARCH_X86 => "i386",
        _ => "unknown",
    }
}

fn kind_name(k: u32) -> &'static str {
    match k {
        kind::ANON => "anon",
        kind::FILE => "file",
        kind::HEAP => "heap",
        kind::STACK => "stack",
        kind::SHARED => "shared",
        _ => "?",
    }
}

/// `rwxp`/`rwxs`, as /proc/PID/maps writes it.
fn prot_text(r: &Region) -> String {
    let bit = |b, c| if r.prot & b != 0 { c } else { '-' };
    let share = if r.kind == kind::SHARED { 's' } else { 'p' };
    [bit(prot::READ, 'r'), bit(prot::WRITE, 'w'), bit(prot::EXEC, 'x'), share].iter().collect()
}

/// Bytes as text; invalid UTF-8 shown with replacement characters.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A size in the largest binary unit that keeps it at least 1.
/// The `compression:` line of `ckpt info`.
fn compression_text(meta: &Meta) -> String {
    match meta.compression() {
        None => "none".into(),
        Some(c) => {
            let z = crate::sections::compression_counts(&c);
            format!(
                "{}, {} of page data stored in {} (ratio {:.2})",
                ckpt_image::compress::codec::name(c.head.codec),
                size(z.plain),
                size(z.stored),
                z.ratio()
            )
        }
    }
}

pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// An argument as a shell would need it quoted to mean the same.
fn shell_word(a: &str) -> String {
    let plain = !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain { a.to_string() } else { format!("'{}'", a.replace('\'', "'\\''")) }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian
/// calendar; days counted in 400-year eras of 146097 days).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn sizes_and_words() {
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(4095), "4.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(shell_word("./a.out"), "./a.out");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
        // Strings in `info --json` are escaped as they were before serde_json did it.
        assert_eq!(serde_json::to_string("a\"b\\\n\u{1}").unwrap(), "\"a\\\"b\\\\\\n\\u0001\"");
    }
}
