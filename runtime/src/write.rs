//! Writing a checkpoint file: `loader | header | metadata | page data`.
//!
//! The file is created under a temporary name (`.NAME.tmp.PID.N`, O_EXCL,
//! O_NOFOLLOW, mode 0700) in the target directory, written, fsynced, renamed over
//! the final name, and the directory fsynced: a crash or a full disk at any moment
//! leaves the previous checkpoint file as it was, and a completed one is on disk
//! when the program is told so. On failure the temporary file is removed; a
//! writer killed outright (SIGKILL, power loss) cannot do that, so after each
//! successful checkpoint the temporary files of the same name left by dead
//! processes (`.NAME.tmp.PID.N` whose PID no longer exists) are removed.
//!
//! Memory is written straight from where it lives with `writev(2)`: no copy, and a
//! page that cannot be read (a file mapping past the end of its file) comes back
//! as `EFAULT` from the kernel instead of a SIGBUS, and is written as zeros. The
//! runs of a region (many, once all-zero pages are left out) are gathered into
//! one call per piece of about `PIECE` bytes, never one call per page. Each piece
//! is hashed (XXH64, `Header::data_hash`) right after the kernel copied it, while
//! it is still in the cache, and only once the kernel has shown that it is
//! readable.
//!
//! The disk works while the memory is copied: every `SYNC_EVERY` bytes the file's
//! new pages are handed to write-out (`sync_file_range`, which does not wait), so
//! the final fsync waits only for the tail instead of the whole image; the
//! checkpoint then takes about as long as the slower of the copy and the disk,
//! not their sum.
//!
//! Two places change while the image is written, and are written from a copy
//! taken first, so that the hash describes exactly the bytes in the file: the
//! stack below the save point, where this code runs (its frames, the hasher
//! itself), and the page of glibc's rseq area, which the kernel rewrites when the
//! process moves to another CPU. What the copy holds there does not matter for
//! the restart (dead frames below the save point; cpu fields the restarted
//! runtime registers afresh), only that file and hash agree.
//!
//! With compression (`CKPT_COMPRESS`, the image crate's `compress` module) each
//! piece is instead copied out of memory by the kernel (`process_vm_readv` on
//! ourselves: an unreadable page is EFAULT there too), hashed plain, encoded as
//! one LZ4 block and written encoded, or plain when that does not save 1/32;
//! the copy stands in for the snapshot of the volatile ranges (memory that does
//! not compress is detected on a sample and written as without compression, see
//! `Out::packed`). Private file
//! mappings saved whole stay plain and page-aligned: the loader maps them from
//! the file.
//!
//! Runs below the save point (see `arch`), with every signal blocked.
//!
//! # Safety
//! Three `unsafe` uses: temporarily adding read permission to a saved region that
//! has none (PROT_NONE or write-only memory with data in it) while it is written,
//! then putting its protection back; hashing program memory that `writev(2)` has
//! just read successfully (so it is mapped and readable), through a short-lived
//! slice; and copying pages of a run inside a volatile range (present pages of
//! the stack or of the thread's TLS block, readable) into the snapshot buffer.
//! Every signal is blocked and the program has one thread, so nothing but this
//! code and the kernel's rseq updates changes that memory meanwhile.
#![allow(unsafe_code)]

use core::ffi::CStr;

use ckpt_image::compress::{self, Compression, Encoder, StoredPiece, codec};
use ckpt_image::hashes::{self, DataHashes, PieceHasher};
use ckpt_image::section::{SECTION_HEADER_LEN, tag};
use ckpt_image::{DataHasher, HEADER_LEN, Header, MetaWriter, PAGE_SIZE, Process, Run, kind, page_up, prot, strs};
use ckpt_sys::msg::Msg;
use ckpt_sys::scratch::{Scratch, Table};
use ckpt_sys::{AtFlags, Errno, Fd, IoVec, ProtFlags, RenameFlags, c};

use crate::capture::maps::{self, Layout};
use crate::capture::{Kernel, Section};
use crate::config::{NAME_MAX, Path};
use crate::incremental::{self, Chain, Child};
use crate::names::Names;
use crate::{arch, failure::Failure};

/// The restart loader, built for this architecture by `cargo xtask build`.
pub static LOADER: &[u8] = include_bytes!(env!("CKPT_LOADER_PATH", "build with: cargo xtask build"));

static ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// A NUL-terminated path in a fixed buffer.
pub struct CPath {
    buf: [u8; NAME_MAX + 64],
    len: usize,
}

impl CPath {
    pub fn from_parts(parts: &[&[u8]]) -> Option<CPath> {
        let mut p = CPath { buf: [0; NAME_MAX + 64], len: 0 };
        for s in parts {
            if p.len + s.len() + 1 > p.buf.len() || s.contains(&0) {
                return None;
            }
            p.buf[p.len..p.len + s.len()].copy_from_slice(s);
            p.len += s.len();
        }
        Some(p)
    }
    pub fn cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
    /// The path without NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// One checkpoint being written.
pub struct Job {
    fd: Fd,
    tmp: CPath,
    dst: CPath,
    dir: CPath,
    /// The final name's last component (`NAME` of `.NAME.tmp.PID.N`).
    base: CPath,
    meta: Scratch,
    /// Set when `write` fails, for the report.
    pub failed: Option<Failure>,
    /// Bytes written.
    pub bytes: u64,
    /// Writing into a file someone else made and names (a tree member's image,
    /// see `tree`): no temporary name, no rename, no sync here.
    direct: bool,
    /// Compress the page data (`CKPT_COMPRESS`, see `compress` in the image crate).
    pub compress: bool,
    /// Bytes of plain page data (what `bytes` holds compressed, when it is).
    pub plain: u64,
    /// A second name the image gets when it is durable (`NAME.SEQ` in
    /// incremental mode, see `incremental`).
    pub also: Option<CPath>,
    /// The header written (its checksums name the image).
    pub header: Header,
    /// Incremental: bytes inherited from the parent, and the chain's depth.
    pub inherited: u64,
    pub depth: u32,
}

/// Room reserved for the metadata (reserved lazily; only what is used is touched).
const META_RESERVE: usize = 64 << 20;

impl Job {
    /// Create the temporary file next to `name`.
    pub fn create(name: &Path) -> Result<Job, Failure> {
        let n = name.as_bytes();
        let (dir, base) = match n.iter().rposition(|&b| b == b'/') {
            Some(0) => (&b"/"[..], &n[1..]),
            Some(i) => (&n[..i], &n[i + 1..]),
            None => (&b"."[..], n),
        };
        let bad = || Failure::new("invalid checkpoint file name", Errno::EINVAL, n);
        if base.is_empty() {
            return Err(bad());
        }
        let dst = CPath::from_parts(&[n]).ok_or_else(bad)?;
        let dir_c = CPath::from_parts(&[dir]).ok_or_else(bad)?;
        let base_c = CPath::from_parts(&[base]).ok_or_else(bad)?;
        let meta = Scratch::new(META_RESERVE).map_err(|e| Failure::new("allocating memory", e, n))?;
        let pid = ckpt_sys::getpid() as u64;
        let flags = c::O_WRONLY | c::O_CREAT | c::O_EXCL | c::O_NOFOLLOW | c::O_CLOEXEC;
        let mut attempt = 0u64;
        loop {
            let mut num = [0u8; 48];
            let digits = decimal2(&mut num, pid, attempt);
            let sep: &[u8] = if dir == b"/" { b"" } else { b"/" };
            let tmp = CPath::from_parts(&[dir, sep, b".", base, b".tmp.", digits]).ok_or_else(bad)?;
            match ckpt_sys::openat(Fd::CWD, tmp.cstr(), flags, 0o700) {
                Ok(fd) => {
                    let mut job = Job {
                        fd,
                        tmp,
                        dst,
                        dir: dir_c,
                        base: base_c,
                        meta,
                        failed: None,
                        bytes: 0,
                        direct: false,
                        compress: false,
                        plain: 0,
                        also: None,
                        header: Header::default(),
                        inherited: 0,
                        depth: 0,
                    };
                    // The mode given to open is filtered by the umask; the image
                    // holds the program's memory, so force owner-only.
                    if let Err(e) = ckpt_sys::fchmod(fd, 0o700) {
                        return Err(job.abort_with("setting permissions on", e));
                    }
                    return Ok(job);
                }
                Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
                Err(e) => return Err(Failure::new("creating", e, tmp.as_bytes())),
            }
        }
    }

    /// Write into the existing file `path` (a tree member writing its image into
    /// the root's temporary file, `/proc/ROOT/fd/N`), which the root syncs and
    /// names as part of the tree image.
    pub fn on_file(path: &Path) -> Result<Job, Failure> {
        let n = path.as_bytes();
        let bad = || Failure::new("invalid checkpoint file name", Errno::EINVAL, n);
        let dst = CPath::from_parts(&[n]).ok_or_else(bad)?;
        let meta = Scratch::new(META_RESERVE).map_err(|e| Failure::new("allocating memory", e, n))?;
        let fd = ckpt_sys::openat(Fd::CWD, dst.cstr(), c::O_WRONLY | c::O_TRUNC | c::O_CLOEXEC, 0)
            .map_err(|e| Failure::new("opening the tree's temporary image", e, n))?;
        let empty = || CPath::from_parts(&[]).ok_or_else(bad);
        Ok(Job {
            fd,
            tmp: empty()?,
            dst,
            dir: empty()?,
            base: empty()?,
            meta,
            failed: None,
            bytes: 0,
            direct: true,
            compress: false,
            plain: 0,
            also: None,
            header: Header::default(),
            inherited: 0,
            depth: 0,
        })
    }

    /// A tree image: the members' images after this one (the root's), before
    /// `commit` makes the whole file durable.
    pub fn append_tree(&mut self, s: &crate::tree::Session) -> Result<(), Failure> {
        crate::tree::append(s, self.fd, self.bytes, self.dst.as_bytes())?;
        self.bytes += s.bytes;
        Ok(())
    }

    fn fail(&self, step: &'static str, e: Errno) -> Failure {
        Failure::new(step, e, self.dst.as_bytes())
    }

    fn abort_with(&mut self, step: &'static str, e: Errno) -> Failure {
        let f = Failure::new(step, e, self.dst.as_bytes());
        self.abort();
        f
    }

    /// Remove the temporary file after a failure.
    pub fn abort(&mut self) {
        let _ = ckpt_sys::close(self.fd);
        if self.direct {
            return;
        }
        let _ = ckpt_sys::unlinkat(Fd::CWD, self.tmp.cstr(), AtFlags::EMPTY);
    }

    /// Make the file durable and give it its final name.
    pub fn commit(&mut self) -> Result<u64, Failure> {
        if self.direct {
            return match ckpt_sys::close(self.fd) {
                Ok(()) => Ok(self.bytes),
                Err(e) => Err(Failure::new("closing", e, self.dst.as_bytes())),
            };
        }
        if let Err(e) = ckpt_sys::fsync(self.fd) {
            return Err(self.abort_with("syncing", e));
        }
        if let Err(e) = ckpt_sys::close(self.fd) {
            let f = Failure::new("closing", e, self.dst.as_bytes());
            let _ = ckpt_sys::unlinkat(Fd::CWD, self.tmp.cstr(), AtFlags::EMPTY);
            return Err(f);
        }
        if let Some(also) = &self.also {
            // The chain name first (a stale file of that name from an earlier
            // run is replaced): the file is complete under both or neither.
            let mut r = ckpt_sys::linkat(Fd::CWD, self.tmp.cstr(), Fd::CWD, also.cstr(), AtFlags::EMPTY);
            if r == Err(Errno::EEXIST) {
                let _ = ckpt_sys::unlinkat(Fd::CWD, also.cstr(), AtFlags::EMPTY);
                r = ckpt_sys::linkat(Fd::CWD, self.tmp.cstr(), Fd::CWD, also.cstr(), AtFlags::EMPTY);
            }
            if let Err(e) = r {
                let _ = ckpt_sys::unlinkat(Fd::CWD, self.tmp.cstr(), AtFlags::EMPTY);
                return Err(Failure::new("linking the new image to", e, also.as_bytes()));
            }
        }
        if let Err(e) = ckpt_sys::renameat2(Fd::CWD, self.tmp.cstr(), Fd::CWD, self.dst.cstr(), RenameFlags::EMPTY) {
            let _ = ckpt_sys::unlinkat(Fd::CWD, self.tmp.cstr(), AtFlags::EMPTY);
            return Err(Failure::new("renaming the new image to", e, self.dst.as_bytes()));
        }
        // The rename is durable once the directory is. A directory we may write
        // but not read cannot be opened to sync it: the rename is then as durable
        // as the file system makes it. A file system that cannot sync directories
        // says EINVAL. Any other error is reported, so the program (which would
        // otherwise exit) goes on: the new name may not survive a crash, but the
        // file under either name is complete.
        if let Ok(d) = ckpt_sys::openat(Fd::CWD, self.dir.cstr(), c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0) {
            let synced = ckpt_sys::fsync(d);
            self.remove_stale(d);
            let _ = ckpt_sys::close(d);
            match synced {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(e) => return Err(Failure::new("syncing the directory of", e, self.dst.as_bytes())),
            }
        }
        Ok(self.bytes)
    }

    /// `DIR/NAME.SEQ`, the name image `seq` of a chain also gets.
    pub fn sibling(&self, seq: u64) -> Result<CPath, Failure> {
        let m = Msg::new().u(seq);
        CPath::from_parts(&[self.dir.as_bytes(), b"/", self.base.as_bytes(), b".", m.as_bytes()])
            .ok_or_else(|| self.fail("naming the chain image of", Errno::ENAMETOOLONG))
    }

    /// In incremental mode, once the image is durable: tell the next checkpoint
    /// what it is (`writer::set_report`), and after a full image remove the
    /// previous chain.
    pub fn report(&self, ch: &Chain, owner: i32) {
        let h = &self.header;
        let parent = ch.plan.parent.filter(|_| self.depth > 0);
        let r = crate::track::Report {
            owner,
            depth: self.depth,
            epoch: ch.plan.epoch,
            seq: ch.plan.seq,
            meta_hash: h.meta_hash,
            data_hash: h.data_hash,
            file_len: h.file_len,
            chain_first: parent.map_or(ch.plan.seq, |p| p.chain_first),
            chain_bytes: parent.map_or(0, |p| p.chain_bytes + self.bytes),
            described: self.plain.saturating_sub(h.data_offset) + self.inherited,
        };
        crate::writer::set_report(&r);
        if parent.is_none() {
            incremental::remove_old_chain(self.dir.as_bytes(), self.base.as_bytes(), ch.last, ch.plan.seq, owner);
        }
    }

    /// Remove `.NAME.tmp.PID.N` files in `dir` left by writers that were killed
    /// before they could clean up: only our exact pattern, only PIDs that no
    /// longer exist (kill(pid, 0) says ESRCH), never our own. Best effort.
    fn remove_stale(&mut self, dir: Fd) {
        let me = ckpt_sys::getpid() as u64;
        // The metadata buffer is free now; its first 64 KiB hold the listing.
        let buf = &mut self.meta.bytes()[..64 << 10];
        while let Ok(n) = ckpt_sys::getdents64(dir, buf) {
            if n == 0 {
                break;
            }
            for name in ckpt_sys::dirent_names(&buf[..n]) {
                let Some(pid) = stale_pid(name, self.base.as_bytes()) else { continue };
                if pid != me
                    && pid <= i32::MAX as u64
                    && ckpt_sys::kill(pid as i32, 0) == Err(Errno::ESRCH)
                    && let Some(p) = CPath::from_parts(&[name])
                {
                    let _ = ckpt_sys::unlinkat(dir, p.cstr(), AtFlags::EMPTY);
                }
            }
        }
    }

    /// Walk the address space and write the whole image. Runs below the save
    /// point: the registers are already in `arch::saved_regs()`. `exclude` lists
    /// runtime scratch (the background writer's) to leave out.
    pub fn write(
        &mut self,
        kernel: &Kernel,
        names: &Names,
        exclude: &[(u64, u64)],
        chain: Option<&Chain>,
        shared: Option<&crate::writer::Snapshot>,
    ) -> Result<(), Failure> {
        let mut volatile = Table::<(u64, u64)>::with_capacity(2 + 2 * kernel.threads.others().len())
            .map_err(|e| self.fail("allocating memory for", e))?;
        volatile_ranges(kernel, &mut volatile).map_err(|e| self.fail("allocating memory for", e))?;
        let volatile_table = volatile.range();
        let volatile = volatile.as_slice();
        let snap_len = volatile.iter().map(|v| (v.1 - v.0) as usize).max().unwrap_or(0);
        let mut snap = Scratch::new(snap_len).map_err(|e| self.fail("allocating memory for", e))?;
        let mut cut = [(0u64, 0u64); 9];
        cut[0] = self.meta.range();
        cut[1] = snap.range();
        cut[2] = volatile_table;
        cut[3] = kernel.files.range();
        for (d, s) in cut[4..].iter_mut().zip(exclude) {
            *d = *s;
        }
        let mut layout = maps::walk(&cut[..4 + exclude.len().min(5)])
            .map_err(|(step, e)| crate::failure::explained(self.fail(step, e)))?;
        // Incremental: the pages the parent holds are left out of the runs.
        let child = match chain {
            Some(ch) => incremental::split(&mut layout, ch, self.dir.as_bytes(), self.base.as_bytes(), volatile)
                .map_err(|e| self.fail("comparing with the parent image of", e))?,
            None => None,
        };
        let (header, meta_len, npieces) = self
            .compose(&layout, kernel, names, child.as_ref())
            .map_err(|e| self.fail("describing the address space for", e))?;
        // A background writer: the shared memory it writes is the copy taken at
        // its fork (see `writer::Snapshot`), put in place now that the walk has
        // recorded the regions.
        if let Some(s) = shared {
            s.swap_in().map_err(|e| self.fail("putting in place the copy of shared memory for", e))?;
        }
        // Made after the walk, so it is not part of the image.
        let hashes = Scratch::new(npieces * 8).map_err(|e| self.fail("allocating memory for", e))?;
        let pack = if self.compress {
            Some(Pack::new(npieces).map_err(|e| self.fail("allocating memory for", e))?)
        } else {
            None
        };
        let mut w = Out {
            fd: self.fd,
            at: 0,
            hash: DataHasher::new(),
            synced: 0,
            unreadable: (0, 0),
            pieces: PieceHasher::new(hashes::PIECE),
            hashes,
            npieces: 0,
            pack,
            pid: ckpt_sys::getpid(),
        };
        // The per-piece hashes (the last section of the metadata) and the header,
        // which carries the checksums, go in last, at their places.
        let r = (|| {
            w.bytes(LOADER)?;
            w.zeros_to(header.meta_offset)?;
            w.bytes(&self.meta.as_slice()[..meta_len])?;
            w.zeros_to(header.data_offset)?;
            w.hash = DataHasher::new();
            write_data(&mut w, &layout, volatile, snap.bytes())?;
            w.end_pieces();
            if w.npieces != npieces as u64 {
                return Err(Errno::EIO);
            }
            let meta = &mut self.meta.bytes()[..meta_len];
            let at = meta_len - DataHashes::len_for(npieces);
            for i in 0..npieces {
                let b = &w.hashes.as_slice()[i * 8..i * 8 + 8];
                DataHashes::put(&mut meta[at..], i, u64::from_le_bytes(b.try_into().unwrap_or_default()));
            }
            let mut h = header;
            // Compressed: where each piece went (the section before DATA_HASHES),
            // and the file ends where the data does.
            let tail = match &w.pack {
                Some(pk) => {
                    let stored = pk.stored.as_slice();
                    if stored.len() != npieces {
                        return Err(Errno::EIO);
                    }
                    let c = at - SECTION_HEADER_LEN - Compression::len_for(npieces);
                    for (i, p) in stored.iter().enumerate() {
                        Compression::put(&mut meta[c..], i, p);
                    }
                    h.file_len = w.at;
                    c
                }
                None => at,
            };
            pwrite_all(self.fd, &meta[tail..], header.meta_offset + tail as u64)?;
            let mut hb = [0u8; HEADER_LEN];
            h.meta_hash = ckpt_image::hash64(meta);
            h.data_hash = w.hash.finish();
            h.seal(&mut hb);
            self.header = h;
            pwrite_all(self.fd, &hb, header.image_offset)
        })();
        r.map_err(|e| self.fail("writing", e))?;
        self.bytes = w.at;
        self.plain = header.data_offset + layout.data_len;
        self.inherited = child.as_ref().map_or(0, |c| c.inherited_len());
        self.depth = child.as_ref().map_or(0, |c| c.head.depth);
        if w.unreadable.1 != 0 {
            // Said once, at checkpoint time: the restart cannot tell.
            let (at, n) = w.unreadable;
            let r = layout.regions.as_slice().iter().find(|r| r.start <= at && at < r.end);
            let m = Msg::new().s("ckpt: warning: ").u(n).s(" bytes of memory could not be read, first at ").x(at);
            let m = match r {
                Some(r) if !layout.name(r).is_empty() => m.s(" (").b(layout.name(r)).s(")"),
                _ => m,
            };
            m.s(", and are saved as zeros in ")
                .b(self.dst.as_bytes())
                .s(" (typically pages of a file mapping past the end of its file: they raise SIGBUS now, and read as zeros after a restart)")
                .emit();
        }
        Ok(())
    }

    /// Fill the metadata buffer; returns the header (without the checksums of
    /// the metadata and the data), the metadata length and the number of data
    /// pieces (whose hashes, the last section, are filled in after the data).
    fn compose(
        &mut self,
        layout: &Layout,
        kernel: &Kernel,
        names: &Names,
        child: Option<&Child>,
    ) -> Result<(Header, usize, usize), Errno> {
        // The executable the program was started as (after a restart,
        // /proc/self/exe is the checkpoint file; see `names`).
        let mut exe = [0u8; NAME_MAX];
        let exe_len = if names.exe.is_empty() {
            ckpt_sys::readlinkat(Fd::CWD, c"/proc/self/exe", &mut exe).unwrap_or(0)
        } else {
            let n = names.exe.as_bytes();
            exe[..n.len()].copy_from_slice(n);
            n.len()
        };
        let mut argv = [0u8; 4096];
        let argv_len = ckpt_sys::read_file(c"/proc/self/cmdline", &mut argv).unwrap_or(argv.len());
        let uts = ckpt_sys::uname()?;
        let strings: [&[u8]; 4] = [
            &exe[..exe_len],
            argv[..argv_len].strip_suffix(b"\0").unwrap_or(&argv[..argv_len]),
            kernel.cwd.as_bytes(),
            uts.release(),
        ];

        let regions = layout.regions.as_slice();
        let runs = layout.runs.as_slice();
        let strings_len: usize = strings.iter().map(|s| s.len() + 1).sum::<usize>()
            + regions.iter().map(|r| names.original(r.start, layout.name(r)).len() + 1).sum::<usize>();
        let npieces: usize = regions
            .iter()
            .map(|r| {
                let mine = &runs[r.first_run as usize..(r.first_run + r.nruns) as usize];
                hashes::pieces_of(mine.iter().map(|u| u.len).sum(), hashes::PIECE) as usize
            })
            .sum();
        let (guards, views) =
            (maps::GuardsSection(layout.guards.as_slice()), maps::ViewsSection(layout.views.as_slice()));
        let parent = incremental::ParentSection(child);
        let memory: [&dyn Section; 3] = [&guards, &views, &parent];
        let sections = || kernel.sections().chain(memory.into_iter().filter(|s| !s.is_empty()));
        let packed = if self.compress { SECTION_HEADER_LEN + Compression::len_for(npieces) } else { 0 };
        let sections_len: usize = sections().map(|s| SECTION_HEADER_LEN + s.len()).sum::<usize>()
            + packed
            + SECTION_HEADER_LEN
            + DataHashes::len_for(npieces);
        let meta_len = MetaWriter::len_for(regions.len(), runs.len(), strings_len) + sections_len;
        // The loader is spliced to its loaded bytes (xtask checks it), so they end
        // where its program headers say.
        let image_offset = ckpt_image::loader::image_offset(LOADER.len() as u64);
        let meta_offset = image_offset + HEADER_LEN as u64;
        let data_offset = page_up(meta_offset + meta_len as u64);

        let buf = self.meta.bytes();
        if meta_len > buf.len() {
            return Err(Errno::ENOMEM);
        }
        let mut w = MetaWriter::new(&mut buf[..meta_len], regions.len() as u32, runs.len() as u32)
            .map_err(|_| Errno::ENOMEM)?;
        let mut p = Process {
            regs: kernel.threads.leader_regs(kernel.pid),
            xcr0: ckpt_sys::cpu::xcr0(),
            cpu_features: ckpt_sys::cpu::features(),
            vdso: layout.vdso,
            pid: kernel.pid as u64,
            time: ckpt_sys::clock_gettime(c::CLOCK_REALTIME).map_or(0, |t| t.0 as u64),
            strings: [(0, 0); 4],
            restart_info: arch::restart_info_addr(),
        };
        for (i, s) in strings.iter().enumerate() {
            p.strings[i] = w.string(s).map_err(|_| Errno::ENOMEM)?;
        }
        debug_assert_eq!(strs::KERNEL, 3);
        w.process(&p);
        for (i, r) in regions.iter().enumerate() {
            let (off, len) = w.string(names.original(r.start, layout.name(r))).map_err(|_| Errno::ENOMEM)?;
            w.region(i as u32, &ckpt_image::Region { name_off: off, name_len: len, ..*r });
        }
        for (i, r) in runs.iter().enumerate() {
            w.run(i as u32, &ckpt_image::Run { file_off: r.file_off + data_offset, ..*r });
        }
        // Last: no string may follow a section.
        for sec in sections() {
            sec.encode(w.section(sec.tag(), sec.version(), sec.len()).map_err(|_| Errno::ENOMEM)?);
        }
        // Then where each piece is stored (filled in once the data is written),
        // right before the hashes, so that both are rewritten in one piece.
        if self.compress {
            let c = w.section(tag::COMPRESSION, 1, Compression::len_for(npieces)).map_err(|_| Errno::ENOMEM)?;
            Compression::start(c, layout.data_len, npieces);
        }
        // The very last, so that its payload ends the metadata: zero hashes for
        // now, the real ones once the data is written.
        let dh =
            w.section(tag::DATA_HASHES, hashes::VERSION, DataHashes::len_for(npieces)).map_err(|_| Errno::ENOMEM)?;
        DataHashes::start(dh, hashes::PIECE, npieces);
        debug_assert_eq!(w.sections_len(), sections_len);
        let meta = w.finish();
        let mut h = Header::new(arch::ARCH);
        h.image_offset = image_offset;
        h.meta_offset = meta_offset;
        h.meta_len = meta.len() as u64;
        h.data_offset = data_offset;
        h.data_len = layout.data_len;
        h.file_len = data_offset + layout.data_len;
        h.nregions = regions.len() as u32;
        h.nruns = runs.len() as u32;
        h.strings_len = strings_len as u64;
        h.sections_len = sections_len as u64;
        h.mapped_len = layout.mapped_len;
        if self.compress {
            h.version = ckpt_image::COMPRESSED_VERSION;
        }
        if child.is_some() {
            h.version = ckpt_image::INCREMENTAL_VERSION;
        }
        // The loader and its padding, as they go into the file (`ckpt verify`).
        let mut loader = DataHasher::new();
        loader.update(LOADER);
        loader.update_zeros(image_offset - LOADER.len() as u64);
        h.loader_hash = loader.finish();
        Ok((h, meta_len, npieces))
    }
}

/// Memory is written (and hashed) in pieces of this size: small enough that the
/// piece the kernel just copied is still in the cache when it is hashed, large
/// enough that the system calls cost nothing next to the copy. Measured here:
/// XXH64 runs at about 14.5 GB/s over a piece just copied (37 ms per 512 MiB),
/// against 4.7 GB/s over data read cold from memory; 1 MiB pieces were slower.
const PIECE: usize = 256 << 10;

/// Write-out is started each time this many bytes were written since the last
/// start: large enough that the filesystem gets long extents and few calls, small
/// enough that the disk starts early (measured: 8 MiB is slower, 128 MiB too).
const SYNC_EVERY: u64 = 32 << 20;

/// Sequential writer that tracks the file offset and hashes the page data.
struct Out {
    fd: Fd,
    at: u64,
    hash: DataHasher,
    /// Write-out was started for `[0, synced)`.
    synced: u64,
    /// Memory `writev` could not read (EFAULT), saved as zeros: the first
    /// address and the byte count.
    unreadable: (u64, u64),
    /// The per-piece hashes (section DATA_HASHES), `npieces` so far, 8 bytes LE
    /// each into `hashes`.
    pieces: PieceHasher,
    hashes: Scratch,
    npieces: u64,
    /// Compression's buffers and the stored-piece records, when compressing.
    pack: Option<Pack>,
    /// Our pid, for `process_vm_readv`.
    pid: i32,
}

/// What compressing the page data needs (made after the walk, not in the image):
/// a piece's plain bytes, copied out of the program's memory by the kernel (a
/// page that cannot be read comes back as EFAULT, not SIGBUS), the encoded piece,
/// the encoder's table, and where each piece went.
struct Pack {
    plain: Scratch,
    packed: Scratch,
    table: Table<u32>,
    stored: Table<StoredPiece>,
}

impl Pack {
    fn new(npieces: usize) -> Result<Pack, Errno> {
        let mut table = Table::with_capacity(Encoder::TABLE)?;
        for _ in 0..Encoder::TABLE {
            table.push(0)?;
        }
        Ok(Pack {
            plain: Scratch::new(PIECE)?,
            packed: Scratch::new(PIECE)?,
            table,
            stored: Table::with_capacity(npieces.max(1))?,
        })
    }
}

fn pwrite_all(fd: Fd, mut b: &[u8], mut off: u64) -> Result<(), Errno> {
    while !b.is_empty() {
        match ckpt_sys::pwrite(fd, b, off) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => {
                b = &b[n..];
                off += n as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Out {
    /// Hash page data just written: the whole-data hash and the current piece.
    fn hash_data(&mut self, b: &[u8]) {
        self.hash.update(b);
        self.hash_plain(b);
    }

    /// Hash plain page data into the current piece only.
    fn hash_plain(&mut self, b: &[u8]) {
        let (out, n) = (self.hashes.bytes(), &mut self.npieces);
        self.pieces.update(b, &mut |i, h| {
            let o = i as usize * 8;
            if let Some(d) = out.get_mut(o..o + 8) {
                d.copy_from_slice(&h.to_le_bytes());
            }
            *n = i + 1;
        });
    }

    /// A region's data starts (pieces never straddle two regions).
    fn region(&mut self) {
        let (out, n) = (self.hashes.bytes(), &mut self.npieces);
        self.pieces.region(&mut |i, h| {
            let o = i as usize * 8;
            if let Some(d) = out.get_mut(o..o + 8) {
                d.copy_from_slice(&h.to_le_bytes());
            }
            *n = i + 1;
        });
    }

    /// The data is written: finish the last piece.
    fn end_pieces(&mut self) {
        self.region();
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), Errno> {
        ckpt_sys::write_all(self.fd, b)?;
        self.at += b.len() as u64;
        Ok(())
    }

    fn zeros_to(&mut self, off: u64) -> Result<(), Errno> {
        while self.at < off {
            let n = ((off - self.at) as usize).min(ZEROS.len());
            self.bytes(&ZEROS[..n])?;
        }
        Ok(())
    }

    /// Count `n` bytes of page data written; start write-out every SYNC_EVERY.
    fn advance(&mut self, n: usize) {
        self.at += n as u64;
        if self.at - self.synced >= SYNC_EVERY {
            // Only a head start: errors, if any, come back from fsync.
            let len = self.at - self.synced;
            let _ = ckpt_sys::sync_file_range(self.fd, self.synced, len, ckpt_sys::SYNC_FILE_RANGE_WRITE);
            self.synced = self.at;
        }
    }

    /// Write `len` bytes at `addr` from a copy taken into `snap` first (memory that
    /// changes while the checkpoint runs; see the module comment).
    fn snapshot(&mut self, addr: u64, len: usize, snap: &mut [u8]) -> Result<(), Errno> {
        let copy = &mut snap[..len];
        // SAFETY: present pages of a readable region (see the module comment);
        // `snap` is a scratch mapping of our own, disjoint from program memory.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, copy.as_mut_ptr(), len) };
        ckpt_sys::write_all(self.fd, copy)?;
        self.hash_data(copy);
        self.advance(len);
        Ok(())
    }

    /// Write the memory of `runs` (in order, back to back in the file). Unreadable
    /// pages (EFAULT) are written as zeros, one page at a time, so the file stays
    /// in step with the run table.
    fn memory(&mut self, runs: &[Run]) -> Result<(), Errno> {
        // Where the next byte comes from: run `i`, `off` bytes into it.
        let (mut i, mut off) = (0usize, 0u64);
        // A piece holds at most PIECE bytes, so at most this many (page-sized or
        // larger) pieces of runs.
        let mut iov = [IoVec::default(); PIECE / PAGE_SIZE as usize];
        while i < runs.len() {
            let (n, _, _) = gather(runs, (i, off), &mut iov);
            let done = match ckpt_sys::writev(self.fd, &iov[..n]) {
                Ok(0) => return Err(Errno::EIO),
                Ok(k) => {
                    let mut left = k;
                    for v in &iov[..n] {
                        let m = v.len.min(left);
                        // SAFETY: writev(2) just read these bytes, so they are
                        // mapped and readable; see the module comment.
                        self.hash_data(unsafe { core::slice::from_raw_parts(v.base as *const u8, m) });
                        left -= m;
                        if left == 0 {
                            break;
                        }
                    }
                    self.advance(k);
                    k as u64
                }
                Err(Errno::EINTR) => 0,
                Err(Errno::EFAULT) => {
                    // The first page of the piece cannot be read: zeros for it.
                    let addr = runs[i].addr + off;
                    let page = PAGE_SIZE - addr % PAGE_SIZE;
                    let m = page.min(runs[i].len - off) as usize;
                    if self.unreadable.1 == 0 {
                        self.unreadable.0 = addr;
                    }
                    self.unreadable.1 += m as u64;
                    self.bytes(&ZEROS[..m])?;
                    self.hash_data(&ZEROS[..m]);
                    m as u64
                }
                Err(e) => return Err(e),
            };
            // Step over what was written.
            step_over(|k| runs[k].len, (&mut i, &mut off), done);
        }
        Ok(())
    }
}

impl Out {
    /// Compressing: pad the data with zeros up to a page boundary (a region the
    /// loader maps straight from the file starts on one). The padding is part of
    /// the data area, so `Header::data_hash` covers it.
    fn align_data(&mut self) -> Result<(), Errno> {
        let pad = (page_up(self.at) - self.at) as usize;
        if pad > 0 {
            ckpt_sys::write_all(self.fd, &ZEROS[..pad])?;
            self.hash.update(&ZEROS[..pad]);
            self.advance(pad);
        }
        Ok(())
    }

    /// Compressing: a region's `len` bytes were just written plain from file
    /// offset `start` on: one stored record per piece.
    fn stored_plain(&mut self, start: u64, len: u64) -> Result<(), Errno> {
        let Some(pk) = self.pack.as_mut() else { return Ok(()) };
        let mut at = 0;
        while at < len {
            let n = (PIECE as u64).min(len - at);
            pk.stored.push(StoredPiece { off: start + at, len: n as u32, codec: codec::NONE })?;
            at += n;
        }
        Ok(())
    }

    /// Compressing: write the runs of one region (all of its data), piece by
    /// piece: each piece copied out by the kernel, hashed plain, encoded, and
    /// written encoded if that saves at least 1/32, else plain.
    ///
    /// Memory that does not compress (random data, already compressed data)
    /// would pay for the copy and the encoding for nothing: after a piece stored
    /// plain, the next one is first tried on its first `PROBE` bytes, and if
    /// those do not compress either it is written plain straight from memory as
    /// without compression (`memory`), unless it touches a `volatile` range
    /// (which must be written from a copy).
    fn packed(&mut self, runs: &[Run], volatile: &[(u64, u64)]) -> Result<(), Errno> {
        let Some(mut pk) = self.pack.take() else { return Err(Errno::EINVAL) };
        let r = self.packed_with(&mut pk, runs, volatile);
        self.pack = Some(pk);
        r
    }

    fn packed_with(&mut self, pk: &mut Pack, runs: &[Run], volatile: &[(u64, u64)]) -> Result<(), Errno> {
        /// Bytes a piece is tried on after a piece that did not compress.
        const PROBE: usize = 16 << 10;
        let (mut i, mut off) = (0usize, 0u64);
        let mut iov = [IoVec::default(); PIECE / PAGE_SIZE as usize];
        let mut last_plain = false;
        while i < runs.len() {
            let (n, bytes, next) = gather(runs, (i, off), &mut iov);
            (i, off) = next;
            let touches = |v: &IoVec| {
                let (a, e) = (v.base as u64, (v.base + v.len) as u64);
                volatile.get(volatile.partition_point(|r| r.1 <= a)).is_some_and(|r| r.0 < e)
            };
            if last_plain && bytes > PROBE && !iov[..n].iter().any(touches) {
                let probe = &mut pk.plain.bytes()[..PROBE];
                // The probe's first pages: the first entries, cut at PROBE.
                let (mut pn, mut left) = (0usize, PROBE);
                let mut piov = [IoVec::default(); PROBE / PAGE_SIZE as usize];
                while left > 0 && pn < n {
                    piov[pn] = IoVec { base: iov[pn].base, len: iov[pn].len.min(left) };
                    left -= piov[pn].len;
                    pn += 1;
                }
                self.copy_in(&piov[..pn], probe)?;
                let mut enc = Encoder::new(pk.table.as_mut_slice()).ok_or(Errno::EINVAL)?;
                if enc.encode(probe, &mut pk.packed.bytes()[..PROBE - PROBE / 32]).is_none() {
                    let mut direct = [Run::default(); PIECE / PAGE_SIZE as usize];
                    for (d, v) in direct.iter_mut().zip(&iov[..n]) {
                        *d = Run { addr: v.base as u64, len: v.len as u64, file_off: 0 };
                    }
                    let at = self.at;
                    self.memory(&direct[..n])?;
                    pk.stored.push(StoredPiece { off: at, len: (self.at - at) as u32, codec: codec::NONE })?;
                    continue;
                }
            }
            let plain = &mut pk.plain.bytes()[..bytes];
            self.copy_in(&iov[..n], plain)?;
            self.hash_plain(plain);
            let mut enc = Encoder::new(pk.table.as_mut_slice()).ok_or(Errno::EINVAL)?;
            let packed = pk.packed.bytes();
            let (out, how): (&[u8], u32) = match enc.encode(plain, &mut packed[..bytes - bytes / 32]) {
                Some(k) => (&packed[..k], codec::LZ4),
                None => (plain, codec::NONE),
            };
            last_plain = how == codec::NONE;
            ckpt_sys::write_all(self.fd, out)?;
            self.hash.update(out);
            pk.stored.push(StoredPiece { off: self.at, len: out.len() as u32, codec: how })?;
            self.advance(out.len());
        }
        Ok(())
    }

    /// Copy the memory `iov` names (page-aligned pieces) into `dst`, exactly as
    /// long, through the kernel (`process_vm_readv` on ourselves): a page that
    /// cannot be read is zeros, counted as for `writev`.
    fn copy_in(&mut self, iov: &[IoVec], dst: &mut [u8]) -> Result<(), Errno> {
        let (mut k, mut o, mut got) = (0usize, 0u64, 0usize);
        let mut rem = [IoVec::default(); PIECE / PAGE_SIZE as usize];
        while k < iov.len() {
            let m = iov.len() - k;
            rem[..m].copy_from_slice(&iov[k..]);
            rem[0].base += o as usize;
            rem[0].len -= o as usize;
            let step = match ckpt_sys::process_vm_readv(self.pid, &mut dst[got..], &rem[..m]) {
                Ok(0) | Err(Errno::EFAULT) => {
                    let addr = rem[0].base as u64;
                    let z = ((PAGE_SIZE - addr % PAGE_SIZE) as usize).min(rem[0].len);
                    dst[got..got + z].fill(0);
                    if self.unreadable.1 == 0 {
                        self.unreadable.0 = addr;
                    }
                    self.unreadable.1 += z as u64;
                    z
                }
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => return Err(e),
            };
            got += step;
            step_over(|j| iov[j].len as u64, (&mut k, &mut o), step as u64);
        }
        Ok(())
    }
}

/// The next piece of `runs` from the cursor `at` (run, offset in it): up to
/// PIECE bytes, at most one iovec per run, in `iov`. Returns the iovecs used,
/// their bytes, and the cursor after them.
fn gather(runs: &[Run], at: (usize, u64), iov: &mut [IoVec]) -> (usize, usize, (usize, u64)) {
    let ((mut j, mut o), mut n, mut bytes) = (at, 0usize, 0usize);
    while n < iov.len() && j < runs.len() && bytes < PIECE {
        let take = ((runs[j].len - o) as usize).min(PIECE - bytes);
        iov[n] = IoVec { base: (runs[j].addr + o) as usize, len: take };
        n += 1;
        bytes += take;
        o += take as u64;
        if o == runs[j].len {
            (j, o) = (j + 1, 0);
        }
    }
    (n, bytes, (j, o))
}

/// Move a cursor (entry, offset in it) `n` bytes on through entries whose
/// lengths `len` gives (the runs or pieces a write or copy went through).
fn step_over(len: impl Fn(usize) -> u64, at: (&mut usize, &mut u64), mut n: u64) {
    let (i, off) = at;
    while n > 0 {
        let m = (len(*i) - *off).min(n);
        n -= m;
        *off += m;
        if *off == len(*i) {
            (*i, *off) = (*i + 1, 0);
        }
    }
}

/// The address ranges this checkpoint itself changes while it writes: the stack
/// from a margin below the current frame up to the page of the save point, and
/// the page of the rseq area; for every stopped thread, its stack below its save
/// point (where it waits for the release) and its rseq page. Each as
/// `[start, end)`, page-aligned; `out` ends sorted and disjoint.
fn volatile_ranges(kernel: &Kernel, out: &mut Table<(u64, u64)>) -> Result<(), Errno> {
    // Deeper than anything the writing code below this frame uses (a few KiB).
    const MARGIN: u64 = 64 << 10;
    // Deeper than a stopped thread's wait below its save point (a few hundred bytes).
    const THREAD_MARGIN: u64 = 16 << 10;
    // A local of this frame: `&0u8` would be the address of a promoted constant
    // in .rodata, not of the stack.
    let local = core::hint::black_box(0u8);
    let here = core::ptr::addr_of!(local) as u64;
    let save_point = arch::saved_regs()[0];
    let page_down = |a: u64| a & !(PAGE_SIZE - 1);
    let page = |a: u64| (page_down(a), page_down(a) + PAGE_SIZE);
    // Continue mode's background writer runs on a stack of its own, far from the
    // save point: there the program's frames are a frozen copy, nothing on its
    // stack changes, and the span between the two stacks (other mappings: a
    // file truncated under a mapping would raise SIGBUS on a plain copy) must
    // not be taken for stack.
    const SAME_STACK: u64 = 1 << 20;
    if here <= save_point && save_point - here < SAME_STACK {
        out.push((page_down(here.saturating_sub(MARGIN)), page_down(save_point) + PAGE_SIZE))?;
    }
    if let Some(a) = kernel.rseq {
        out.push(page(a as u64))?;
    }
    for t in kernel.threads.others() {
        let sp = t.regs[0];
        out.push((page_down(sp.saturating_sub(THREAD_MARGIN)), page_down(sp) + PAGE_SIZE))?;
        if t.rseq != 0 {
            out.push(page(t.rseq))?;
        }
    }
    sort_and_merge(out);
    Ok(())
}

/// Sort `[start, end)` ranges and merge the overlapping and adjacent ones, in place.
pub fn sort_and_merge(t: &mut Table<(u64, u64)>) {
    let v = t.as_mut_slice();
    v.sort_unstable();
    let mut n = 0;
    for i in 0..v.len() {
        if n > 0 && v[i].0 <= v[n - 1].1 {
            v[n - 1].1 = v[n - 1].1.max(v[i].1);
        } else {
            v[n] = v[i];
            n += 1;
        }
    }
    t.truncate(n);
}

/// Split `run` at the volatile ranges (sorted, disjoint): calls
/// `f(addr, len, volatile)` in order.
fn split(
    run: &Run,
    volatile: &[(u64, u64)],
    mut f: impl FnMut(u64, u64, bool) -> Result<(), Errno>,
) -> Result<(), Errno> {
    let (mut at, end) = (run.addr, run.addr + run.len);
    let mut i = volatile.partition_point(|v| v.1 <= at);
    while at < end {
        match volatile.get(i) {
            Some(&(s, e)) if s <= at => {
                let stop = e.min(end);
                f(at, stop - at, true)?;
                at = stop;
                i += 1;
            }
            Some(&(s, _)) if s < end => {
                f(at, s - at, false)?;
                at = s;
            }
            _ => {
                f(at, end - at, false)?;
                at = end;
            }
        }
    }
    Ok(())
}

fn write_data(w: &mut Out, layout: &Layout, volatile: &[(u64, u64)], snap: &mut [u8]) -> Result<(), Errno> {
    let runs = layout.runs.as_slice();
    for r in layout.regions.as_slice() {
        if r.nruns == 0 {
            continue;
        }
        w.region();
        let (start, len) = (r.start as usize, (r.end - r.start) as usize);
        let unreadable = r.prot & prot::READ == 0;
        if unreadable {
            // SAFETY: adding read access to program memory cannot invalidate
            // anything; no Rust reference points into it.
            unsafe { ckpt_sys::mprotect(start, len, ProtFlags(r.prot | prot::READ)) }?;
        }
        let mine = &runs[r.first_run as usize..(r.first_run + r.nruns) as usize];
        // File mappings are left alone: a page past the end of the file cannot be
        // copied (SIGBUS), and neither the stack nor the TLS block lives there.
        let touches = |run: &Run| {
            r.kind != kind::FILE
                && volatile.get(volatile.partition_point(|v| v.1 <= run.addr)).is_some_and(|v| v.0 < run.addr + run.len)
        };
        // Compressing: every region but those the loader maps from the file is
        // encoded, from a copy (so the volatile ranges need no care here); those
        // are written plain, page-aligned, as without compression.
        let whole = compress::mapped_from_image(r, mine.first());
        if w.pack.is_some() && !whole {
            let res = w.packed(mine, volatile);
            if unreadable {
                // SAFETY: puts back the protection the program had set.
                let _ = unsafe { ckpt_sys::mprotect(start, len, ProtFlags(r.prot)) };
            }
            res?;
            continue;
        }
        if w.pack.is_some() {
            w.align_data()?;
        }
        let plain_at = w.at;
        let res = (|| {
            let mut from = 0;
            for (i, run) in mine.iter().enumerate() {
                if !touches(run) {
                    continue;
                }
                w.memory(&mine[from..i])?;
                split(run, volatile, |addr, len, vol| {
                    if vol { w.snapshot(addr, len as usize, snap) } else { w.memory(&[Run { addr, len, file_off: 0 }]) }
                })?;
                from = i + 1;
            }
            w.memory(&mine[from..])
        })();
        if unreadable {
            // SAFETY: puts back the protection the program had set.
            let _ = unsafe { ckpt_sys::mprotect(start, len, ProtFlags(r.prot)) };
        }
        res?;
        w.stored_plain(plain_at, w.at - plain_at)?;
    }
    Ok(())
}

/// Write "PID.N" into `buf` and return it.
fn decimal2(buf: &mut [u8; 48], a: u64, b: u64) -> &[u8] {
    let m = ckpt_sys::msg::Msg::new().u(a).s(".").u(b);
    let s = m.as_bytes();
    buf[..s.len()].copy_from_slice(s);
    &buf[..s.len()]
}

/// The PID in `name` if it is exactly `.BASE.tmp.PID.N` (decimal PID and N).
fn stale_pid(name: &[u8], base: &[u8]) -> Option<u64> {
    let rest = name.strip_prefix(b".")?.strip_prefix(base)?.strip_prefix(b".tmp.")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (pid, n) = (&rest[..dot], &rest[dot + 1..]);
    let digits = |d: &[u8]| (d.len() <= 10).then(|| ckpt_sys::num::parse(d, 10)).flatten();
    digits(n)?;
    digits(pid)
}
