//! The on-disk checkpoint image: the one contract between the runtime that writes it,
//! the loader that restores it and the `ckpt` command that inspects it.
//!
//! A checkpoint file is the restart loader (an ELF executable), padded to a page, then:
//!
//! ```text
//! image_offset: Header                      (HEADER_LEN bytes, own checksum)
//! meta_offset:  Process                     (PROCESS_LEN bytes)
//!               Region × nregions           (REGION_LEN bytes each, sorted by address)
//!               Run × nruns                 (RUN_LEN bytes each, sorted by address)
//!               strings                     (NUL-separated, referenced by offset)
//!               sections                    (sections_len bytes, see `section`)
//! data_offset:  page-aligned page data of every Run, in Run order
//! ```
//!
//! Everything is little-endian with fixed-width fields and is encoded and decoded
//! field by field, so the crate needs no `unsafe` and never trusts a length it did not
//! check: every decode takes `&[u8]` and returns `Result<_, ImageError>`. The loader
//! validates the whole metadata (header checksum, metadata checksum, every region and
//! run) before it touches its address space.
//!
//! The register records (`RegsX86_64`, `RegsX86`) are also the in-memory layout used
//! by the assembly in `asm/`: `build.rs` derives the offsets header from them.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

use core::mem::size_of;

pub mod blob;
pub mod loader;

/// First bytes of the image header.
pub const MAGIC: [u8; 8] = *b"CKPTIMG\0";
/// Format version; bumped on any incompatible change (2: `Header::data_hash`;
/// 3: the section table after the strings, `Header::sections_len`; 4: page data
/// may be compressed, see [`compress`]).
pub const VERSION: u32 = 5;
/// The version written for an image whose page data is not compressed: it is
/// exactly a version 3 image, which readers of version 3 still read.
pub const PLAIN_VERSION: u32 = 3;

/// The version of an incremental image (one with a PARENT section): an older
/// reader must refuse it rather than restore its inherited pages as zeros.
pub const INCREMENTAL_VERSION: u32 = 5;

/// The version of a compressed image.
pub const COMPRESSED_VERSION: u32 = 4;
/// Oldest version this build still reads: a version 2 image is a version 3 image
/// without sections (its `sections_len` was a reserved zero field).
pub const MIN_VERSION: u32 = 2;
/// Page size of every supported architecture.
pub const PAGE_SIZE: u64 = 4096;
/// `e_machine` of x86_64 images.
pub const ARCH_X86_64: u32 = 62;
/// `e_machine` of i386 images.
pub const ARCH_X86: u32 = 3;

/// Lowest address a region may start at (PR_SET_MM_MAP and mmap_min_addr agree on
/// nothing lower than one page).
pub const MIN_ADDR: u64 = PAGE_SIZE;

/// Highest user address + 1 for an architecture (`TASK_SIZE`), or 0 if unknown.
pub const fn task_size(arch: u32) -> u64 {
    match arch {
        ARCH_X86_64 => 0x7fff_ffff_f000,
        ARCH_X86 => 0xffff_e000,
        _ => 0,
    }
}

/// Round `x` up to a page boundary (saturating).
pub const fn page_up(x: u64) -> u64 {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => v & !(PAGE_SIZE - 1),
        None => !(PAGE_SIZE - 1),
    }
}

/// 64-bit FNV-1a: small, no tables, good enough to catch corruption of metadata.
pub fn hash64(bytes: &[u8]) -> u64 {
    hash64_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continue an FNV-1a hash over more bytes.
pub fn hash64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Streaming XXH64 (seed 0): the checksum of the page data, [`Header::data_hash`].
///
/// Chosen for speed (four independent multiply lanes, about as fast as memory can
/// be read) and because it is a published algorithm other tools can recompute.
/// Feed it the data in any pieces; the result depends only on the bytes.
#[derive(Clone, Copy, Debug)]
pub struct DataHasher {
    acc: [u64; 4],
    buf: [u8; 32],
    buffered: usize,
    total: u64,
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn xxh_round(acc: u64, w: u64) -> u64 {
    acc.wrapping_add(w.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

#[inline(always)]
fn xxh_merge(h: u64, acc: u64) -> u64 {
    (h ^ xxh_round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

/// The little-endian u32 at byte `i` of `b` (the hashes' and codecs' reads;
/// records decode through `Rd`).
#[inline(always)]
pub(crate) fn rd32(b: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(w)
}

/// The little-endian u64 at byte `i` of `b`.
#[inline(always)]
pub(crate) fn rd64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

impl Default for DataHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl DataHasher {
    /// A hasher with nothing fed.
    pub const fn new() -> Self {
        DataHasher { acc: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)], buf: [0; 32], buffered: 0, total: 0 }
    }

    fn stripes(&mut self, b: &[u8]) {
        let [mut a0, mut a1, mut a2, mut a3] = self.acc;
        for s in b.chunks_exact(32) {
            a0 = xxh_round(a0, rd64(s, 0));
            a1 = xxh_round(a1, rd64(s, 8));
            a2 = xxh_round(a2, rd64(s, 16));
            a3 = xxh_round(a3, rd64(s, 24));
        }
        self.acc = [a0, a1, a2, a3];
    }

    /// Feed more bytes.
    pub fn update(&mut self, mut b: &[u8]) {
        self.total += b.len() as u64;
        if self.buffered > 0 {
            let n = (32 - self.buffered).min(b.len());
            self.buf[self.buffered..self.buffered + n].copy_from_slice(&b[..n]);
            self.buffered += n;
            b = &b[n..];
            if self.buffered < 32 {
                return;
            }
            let stripe = self.buf;
            self.stripes(&stripe);
            self.buffered = 0;
        }
        let whole = b.len() / 32 * 32;
        self.stripes(&b[..whole]);
        let rest = &b[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// Feed `n` zero bytes (pages that could not be read are written as zeros).
    pub fn update_zeros(&mut self, mut n: u64) {
        const Z: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(Z.len() as u64) as usize;
            self.update(&Z[..k]);
            n -= k as u64;
        }
    }

    /// The XXH64 of everything fed.
    pub fn finish(&self) -> u64 {
        let [a0, a1, a2, a3] = self.acc;
        let mut h = if self.total >= 32 {
            let h = a0
                .rotate_left(1)
                .wrapping_add(a1.rotate_left(7))
                .wrapping_add(a2.rotate_left(12))
                .wrapping_add(a3.rotate_left(18));
            xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, a0), a1), a2), a3)
        } else {
            P5
        };
        h = h.wrapping_add(self.total);
        let mut t = &self.buf[..self.buffered];
        while t.len() >= 8 {
            h ^= xxh_round(0, rd64(t, 0));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            t = &t[8..];
        }
        if t.len() >= 4 {
            let w = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
            h ^= w.wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            t = &t[4..];
        }
        for &c in t {
            h ^= (c as u64).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// Why an image was refused. Carries numbers, never formatted strings, so the loader
/// can report it without `core::fmt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file ends before the image does.
    Truncated {
        /// Bytes the image needs.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// No image header where one should be: not a checkpoint file.
    BadMagic,
    /// The image was written by an incompatible version of ckpt.
    BadVersion {
        /// Version found in the file.
        found: u32,
    },
    /// The image is for another architecture.
    WrongArch {
        /// `e_machine` found in the file.
        found: u32,
    },
    /// The header checksum does not match: the header is damaged.
    HeaderChecksum,
    /// The metadata checksum does not match: region table or registers are damaged.
    MetaChecksum,
    /// A length or offset field in the header is inconsistent.
    BadLayout,
    /// Region number `index` is malformed (unaligned, overlapping, out of range).
    BadRegion {
        /// Index of the region in the table.
        index: u32,
    },
    /// Run number `index` is malformed (outside its region or outside the data).
    BadRun {
        /// Index of the run in the table.
        index: u32,
    },
    /// The saved stack pointer is not in writable saved memory, or the saved
    /// instruction pointer not in executable saved memory.
    BadRegisters,
    /// A section (see [`section`]) is malformed: its framing, or the payload of a
    /// known tag (0 when the header itself could not be read).
    BadSection {
        /// The section's tag.
        tag: u32,
    },
    /// A section of a known tag in a format version newer than this build reads:
    /// the image was written by a newer ckpt.
    NewerSection {
        /// The section's tag.
        tag: u32,
        /// Its version in the file.
        version: u32,
    },
}

impl ImageError {
    /// A short human description (the numbers are printed separately by the caller).
    pub fn what(&self) -> &'static str {
        match self {
            ImageError::Truncated { .. } => "truncated image",
            ImageError::BadMagic => "not a ckpt checkpoint image",
            ImageError::BadVersion { .. } => "image written by an incompatible ckpt version",
            ImageError::WrongArch { .. } => "image is for another architecture",
            ImageError::HeaderChecksum => "image header is damaged (checksum mismatch)",
            ImageError::MetaChecksum => "image metadata is damaged (checksum mismatch)",
            ImageError::BadLayout => "image header has inconsistent offsets",
            ImageError::BadRegion { .. } => "image region table is damaged",
            ImageError::BadRun { .. } => "image page table is damaged",
            ImageError::BadRegisters => "image saved registers point outside the saved memory",
            ImageError::BadSection { .. } => "image section is damaged",
            ImageError::NewerSection { .. } => "image section written by a newer ckpt",
        }
    }
}

#[cfg(feature = "std")]
impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ImageError::Truncated { need, have } => {
                write!(f, "truncated image (need {need} bytes, have {have})")
            }
            ImageError::BadVersion { found } => {
                write!(f, "{} (file has version {found}, this ckpt reads {MIN_VERSION} to {VERSION})", self.what())
            }
            ImageError::WrongArch { found } => write!(f, "{} (e_machine {found})", self.what()),
            ImageError::BadRegion { index } => write!(f, "{} (entry {index})", self.what()),
            ImageError::BadRun { index } => write!(f, "{} (entry {index})", self.what()),
            ImageError::BadSection { tag } => write!(f, "{} (tag {tag}, {})", self.what(), section::name(tag)),
            ImageError::NewerSection { tag, version } => write!(
                f,
                "{} (tag {tag}, {}, version {version}; this ckpt reads up to {})",
                self.what(),
                section::name(tag),
                section::newest_version(tag)
            ),
            _ => f.write_str(self.what()),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ImageError {}

/// Little-endian cursor over a byte slice; every read is bounds-checked.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Rd { b, at: 0 }
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        // Callers check the total length first, so a short slice yields zeros
        // rather than a panic; the checksum then refuses the record anyway.
        let mut out = [0u8; N];
        if let Some(s) = self.b.get(self.at..self.at + N) {
            out.copy_from_slice(s);
        }
        self.at += N;
        out
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes::<4>())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes::<8>())
    }
}

/// Little-endian writer into a fixed slice.
struct Wr<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl<'a> Wr<'a> {
    fn new(b: &'a mut [u8]) -> Self {
        Wr { b, at: 0 }
    }
    fn put(&mut self, v: &[u8]) {
        self.b[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes())
    }
}

/// Declares a record of `u64`/`u32` fields with field-by-field LE encode/decode and a
/// compile-time check that the encoded length is what the format says.
macro_rules! record {
    ($(#[$m:meta])* pub struct $name:ident [$len:ident = $n:expr] { $($(#[$fm:meta])* pub $f:ident : $t:ident,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }

        /// Encoded length of the record in bytes.
        pub const $len: usize = $n;
        const _: () = assert!(size_of::<$name>() == $len);

        impl $name {
            /// Encode into the first `LEN` bytes of `out` (panics if `out` is shorter).
            pub fn encode(&self, out: &mut [u8]) {
                let mut w = Wr::new(out);
                $( w.$t(self.$f); )*
                debug_assert_eq!(w.at, $len);
            }
            /// Decode from `b`, refusing a short slice.
            pub fn decode(b: &[u8]) -> Result<Self, ImageError> {
                if b.len() < $len {
                    return Err(ImageError::Truncated { need: $len as u64, have: b.len() as u64 });
                }
                let mut r = Rd::new(b);
                Ok($name { $($f: r.$t(),)* })
            }
        }

        impl $crate::section::Record for $name {
            const LEN: usize = $len;
            fn put(&self, out: &mut [u8]) {
                self.encode(out)
            }
            fn get(b: &[u8]) -> Result<Self, ImageError> {
                Self::decode(b)
            }
        }
    };
}

pub mod compress;
pub mod files;
pub mod hashes;
pub mod memory;
pub mod parent;
pub mod process;
pub mod section;
pub use section::{Section, Sections};
pub mod threads;
pub mod tree;
pub mod xxh3;

record! {
    /// The fixed header at `image_offset`.
    pub struct Header [HEADER_LEN = 128] {
        /// Always [`MAGIC`] (as a little-endian u64).
        pub magic: u64,
        /// [`VERSION`].
        pub version: u32,
        /// [`ARCH_X86_64`] or [`ARCH_X86`].
        pub arch: u32,
        /// Total length of the checkpoint file.
        pub file_len: u64,
        /// File offset of this header (the loader's length rounded up to a page).
        pub image_offset: u64,
        /// File offset of the metadata (right after this header).
        pub meta_offset: u64,
        /// Length of the metadata in bytes.
        pub meta_len: u64,
        /// [`hash64`] of the metadata.
        pub meta_hash: u64,
        /// File offset of the page data (page-aligned).
        pub data_offset: u64,
        /// Length of the page data in bytes.
        pub data_len: u64,
        /// Number of [`Region`] records.
        pub nregions: u32,
        /// Number of [`Run`] records.
        pub nruns: u32,
        /// Length of the string table in bytes.
        pub strings_len: u64,
        /// Bytes of memory the image covers when mapped (sum of region lengths).
        pub mapped_len: u64,
        /// XXH64 (seed 0, see [`DataHasher`]) of the `data_len` bytes of page data
        /// as they are in the file. The loader does not check it (a restart must
        /// not read every page twice); `ckpt verify` does.
        pub data_hash: u64,
        /// XXH64 (seed 0, see [`DataHasher`]) of the `image_offset` bytes before
        /// the header: the restart loader and its zero padding. Checked by
        /// `ckpt verify`, so that every byte of the file is covered by a checksum;
        /// 0 in images written before it was introduced (the field was reserved).
        pub loader_hash: u64,
        /// Length of the section area at the end of the metadata (see [`section`]);
        /// 0 in version 2 images, where the field was reserved.
        pub sections_len: u64,
        /// [`hash64`] of the 120 bytes before this field.
        pub header_hash: u64,
    }
}

record! {
    /// Registers at the save point, x86_64. Also the in-memory layout the assembly
    /// uses: only the callee-saved state of the SysV ABI, because the save point is a
    /// function call (the interrupted state of an asynchronous checkpoint lives in the
    /// kernel's signal frame on the saved stack and comes back through rt_sigreturn).
    pub struct RegsX86_64 [REGS_X86_64_LEN = 88] {
        /// Stack pointer at entry of the save routine (points at the return address).
        pub rsp: u64,
        /// Return address of the save routine.
        pub rip: u64,
        /// Callee-saved.
        pub rbx: u64,
        /// Callee-saved.
        pub rbp: u64,
        /// Callee-saved.
        pub r12: u64,
        /// Callee-saved.
        pub r13: u64,
        /// Callee-saved.
        pub r14: u64,
        /// Callee-saved.
        pub r15: u64,
        /// MXCSR control/status (low 32 bits).
        pub mxcsr: u64,
        /// x87 control word (low 16 bits).
        pub fcw: u64,
        /// fs base (TLS pointer), set by the loader with arch_prctl(ARCH_SET_FS).
        pub fs_base: u64,
    }
}

record! {
    /// Registers at the save point, i386 (same rules as [`RegsX86_64`]).
    pub struct RegsX86 [REGS_X86_LEN = 88] {
        /// Stack pointer at entry of the save routine.
        pub esp: u64,
        /// Return address.
        pub eip: u64,
        /// Callee-saved.
        pub ebx: u64,
        /// Callee-saved.
        pub ebp: u64,
        /// Callee-saved.
        pub esi: u64,
        /// Callee-saved.
        pub edi: u64,
        /// MXCSR (if SSE).
        pub mxcsr: u64,
        /// x87 control word.
        pub fcw: u64,
        /// TLS GDT entry number (`user_desc.entry_number`).
        pub tls_entry: u64,
        /// TLS base address.
        pub tls_base: u64,
        /// `%gs` selector.
        pub gs: u64,
    }
}

/// Length of the architecture-specific register area inside [`Process`].
pub const REGS_WORDS: usize = 11;
const _: () = assert!(REGS_WORDS * 8 == REGS_X86_64_LEN && REGS_WORDS * 8 == REGS_X86_LEN);

/// Process-wide state the loader needs (everything else is restored by the runtime
/// from its own memory once the address space is back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    /// Registers at the save point: [`RegsX86_64`] or [`RegsX86`] encoded as words.
    pub regs: [u64; REGS_WORDS],
    /// XCR0 when the image was taken (0 if XSAVE is unavailable).
    pub xcr0: u64,
    /// CPUID feature words the program's code may rely on: leaf 1 ECX, EDX, leaf 7
    /// EBX, ECX, EDX, leaf 0x80000001 ECX, EDX (as u32 in u64 slots).
    pub cpu_features: [u64; 7],
    /// `[vvar]`, `[vvar_vclock]`, `[vdso]`: (start, len) pairs; len 0 when absent.
    pub vdso: [(u64, u64); 3],
    /// pid of the checkpointed process.
    pub pid: u64,
    /// Wall-clock time of the checkpoint (seconds since the epoch).
    pub time: u64,
    /// String table offsets/lengths: executable path, argv (NUL-separated), cwd,
    /// kernel release.
    pub strings: [(u32, u32); 4],
    /// Address in the restored memory where the loader stores a [`RestartInfo`]
    /// before it jumps back (the runtime's own variable).
    pub restart_info: u64,
}

/// Encoded length of [`Process`].
pub const PROCESS_LEN: usize = REGS_WORDS * 8 + 8 + 7 * 8 + 3 * 16 + 16 + 4 * 8 + 8;

/// Index of each string in [`Process::strings`].
pub mod strs {
    /// Executable path.
    pub const EXE: usize = 0;
    /// Arguments, NUL-separated.
    pub const ARGV: usize = 1;
    /// Working directory at checkpoint time.
    pub const CWD: usize = 2;
    /// `uname -r` of the kernel the image was taken on.
    pub const KERNEL: usize = 3;
}

impl Process {
    /// Encode into `out[..PROCESS_LEN]`.
    pub fn encode(&self, out: &mut [u8]) {
        let mut w = Wr::new(out);
        for r in self.regs {
            w.u64(r);
        }
        w.u64(self.xcr0);
        for f in self.cpu_features {
            w.u64(f);
        }
        for (s, l) in self.vdso {
            w.u64(s);
            w.u64(l);
        }
        w.u64(self.pid);
        w.u64(self.time);
        for (o, l) in self.strings {
            w.u32(o);
            w.u32(l);
        }
        w.u64(self.restart_info);
        debug_assert_eq!(w.at, PROCESS_LEN);
    }

    /// Decode from `b`.
    pub fn decode(b: &[u8]) -> Result<Self, ImageError> {
        if b.len() < PROCESS_LEN {
            return Err(ImageError::Truncated { need: PROCESS_LEN as u64, have: b.len() as u64 });
        }
        let mut r = Rd::new(b);
        let mut p = Process::default();
        for w in p.regs.iter_mut() {
            *w = r.u64();
        }
        p.xcr0 = r.u64();
        for f in p.cpu_features.iter_mut() {
            *f = r.u64();
        }
        for v in p.vdso.iter_mut() {
            *v = (r.u64(), r.u64());
        }
        p.pid = r.u64();
        p.time = r.u64();
        for s in p.strings.iter_mut() {
            *s = (r.u32(), r.u32());
        }
        p.restart_info = r.u64();
        Ok(p)
    }
}

impl RegsX86_64 {
    /// As the words stored in [`Process::regs`].
    pub fn to_words(&self) -> [u64; REGS_WORDS] {
        let mut b = [0u8; REGS_X86_64_LEN];
        self.encode(&mut b);
        words(&b)
    }
    /// From the words stored in [`Process::regs`].
    pub fn from_words(w: &[u64; REGS_WORDS]) -> Self {
        let mut b = [0u8; REGS_X86_64_LEN];
        unwords(w, &mut b);
        // Length is exact, decode cannot fail.
        Self::decode(&b).unwrap_or_default()
    }
}

impl RegsX86 {
    /// As the words stored in [`Process::regs`].
    pub fn to_words(&self) -> [u64; REGS_WORDS] {
        let mut b = [0u8; REGS_X86_LEN];
        self.encode(&mut b);
        words(&b)
    }
    /// From the words stored in [`Process::regs`].
    pub fn from_words(w: &[u64; REGS_WORDS]) -> Self {
        let mut b = [0u8; REGS_X86_LEN];
        unwords(w, &mut b);
        Self::decode(&b).unwrap_or_default()
    }
}

fn words(b: &[u8]) -> [u64; REGS_WORDS] {
    let mut w = [0u64; REGS_WORDS];
    let mut r = Rd::new(b);
    for x in w.iter_mut() {
        *x = r.u64();
    }
    w
}

fn unwords(w: &[u64; REGS_WORDS], b: &mut [u8]) {
    let mut wr = Wr::new(b);
    for x in w {
        wr.u64(*x);
    }
}

/// Protection bits of a region (`PROT_*` values).
pub mod prot {
    /// Readable.
    pub const READ: u32 = 1;
    /// Writable.
    pub const WRITE: u32 = 2;
    /// Executable.
    pub const EXEC: u32 = 4;
    /// All valid bits.
    pub const ALL: u32 = READ | WRITE | EXEC;
}

/// What kind of mapping a region was.
pub mod kind {
    /// Private anonymous memory (also bss, and file mappings whose file is gone).
    pub const ANON: u32 = 0;
    /// Private mapping of a file (text and data of the program and its libraries).
    pub const FILE: u32 = 1;
    /// The brk heap.
    pub const HEAP: u32 = 2;
    /// The main thread's stack (grows down).
    pub const STACK: u32 = 3;
    /// Shared memory (MAP_SHARED); restored as shared anonymous memory.
    pub const SHARED: u32 = 4;
    /// Highest valid kind.
    pub const MAX: u32 = SHARED;
}

record! {
    /// One mapping of the address space.
    pub struct Region [REGION_LEN = 48] {
        /// First address (page-aligned).
        pub start: u64,
        /// One past the last address (page-aligned).
        pub end: u64,
        /// [`prot`] bits.
        pub prot: u32,
        /// [`kind`].
        pub kind: u32,
        /// Index of the first [`Run`] of this region.
        pub first_run: u32,
        /// Number of runs (pages outside every run are zero).
        pub nruns: u32,
        /// Offset of the mapping's path in the string table (informational).
        pub name_off: u32,
        /// Length of the path (0 for none).
        pub name_len: u32,
        /// Offset in the mapped file (informational).
        pub file_offset: u64,
    }
}

record! {
    /// What the loader hands the restarted runtime: where its own memory (code,
    /// stack, buffers) is, so the runtime can unmap it, and where the image's
    /// section area is (inside that block: valid until the runtime unmaps it).
    pub struct RestartInfo [RESTART_INFO_LEN = 64] {
        /// [`RestartInfo::MAGIC`].
        pub magic: u64,
        /// Start of the loader's memory block.
        pub loader_start: u64,
        /// Length of the loader's memory block.
        pub loader_len: u64,
        /// Address of the validated section area (see [`section`]).
        pub sections_addr: u64,
        /// Its length in bytes (0: no sections).
        pub sections_len: u64,
        /// What the restart was asked for ([`RestartInfo::TRACE`]); unknown bits are
        /// ignored (this word was "reserved, zero" before it had a use).
        pub flags: u64,
        /// CLOCK_MONOTONIC when the loader started, in ns (0: unknown; reserved
        /// and zero before): the restarted runtime's `CKPT_TIMING` report.
        pub started_ns: u64,
        /// A lazy restart (`CKPT_LAZY`): the address of the page the loader's
        /// pager and the runtime share ([`LazyStatus`]); 0: every page is in.
        pub lazy_status: u64,
    }
}

impl RestartInfo {
    /// Marks a valid record.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"CKPTRST\0");
    /// [`RestartInfo::flags`]: `CKPT_DEBUG=1` was set for the restart; the runtime
    /// traces its restore steps too.
    pub const TRACE: u64 = 1;
}

/// The page a lazy restart's pager shares with the restarted runtime
/// (`RestartInfo::lazy_status`), as 32-bit words: the pager's state, the
/// runtime's request, the pager's pid. Both sides are of the same build (the
/// loader in the image restores the runtime in the image).
pub mod lazy_status {
    /// Word 0: [`RUNNING`] or [`DONE`] (a futex: the pager wakes it when done).
    pub const STATE: usize = 0;
    /// Word 1: set to 1 by the runtime when it needs every page now (a checkpoint,
    /// a fork); the pager then fetches the rest at once.
    pub const HURRY: usize = 1;
    /// Word 2: the pager's pid.
    pub const PID: usize = 2;
    /// Pages are still missing; the pager runs.
    pub const RUNNING: u32 = 0;
    /// Every saved page is in, the registration is gone and the pager has ended.
    pub const DONE: u32 = 1;
    /// The pager ended without bringing everything in (it reported why).
    pub const FAILED: u32 = 2;
}

record! {
    /// A contiguous run of saved pages.
    pub struct Run [RUN_LEN = 24] {
        /// First address (page-aligned, inside its region).
        pub addr: u64,
        /// Length in bytes (page multiple, non-zero).
        pub len: u64,
        /// Offset of the bytes in the checkpoint file (page-aligned).
        pub file_off: u64,
    }
}

impl Header {
    /// A header for `arch` with the magic and version filled in: [`PLAIN_VERSION`]
    /// (a compressed image sets [`VERSION`]).
    pub fn new(arch: u32) -> Self {
        Header { magic: u64::from_le_bytes(MAGIC), version: PLAIN_VERSION, arch, ..Default::default() }
    }

    /// Encode and seal: computes `header_hash` over the first 120 bytes.
    pub fn seal(&mut self, out: &mut [u8; HEADER_LEN]) {
        self.header_hash = 0;
        self.encode(out);
        self.header_hash = hash64(&out[..HEADER_LEN - 8]);
        self.encode(out);
    }

    /// Decode and check the magic, version, architecture, checksum and layout.
    /// `file_len` is the actual length of the file; `expect_arch` the reader's arch
    /// (0 accepts any).
    pub fn parse(b: &[u8], file_len: u64, expect_arch: u32) -> Result<Header, ImageError> {
        if b.len() < 8 || b[..8] != MAGIC {
            return Err(if b.len() < 8 {
                ImageError::Truncated { need: HEADER_LEN as u64, have: b.len() as u64 }
            } else {
                ImageError::BadMagic
            });
        }
        let h = Header::decode(b)?;
        if hash64(&b[..HEADER_LEN - 8]) != h.header_hash {
            return Err(ImageError::HeaderChecksum);
        }
        if !(MIN_VERSION..=VERSION).contains(&h.version) || (h.version < 3 && h.sections_len != 0) {
            return Err(ImageError::BadVersion { found: h.version });
        }
        if task_size(h.arch) == 0 || (expect_arch != 0 && h.arch != expect_arch) {
            return Err(ImageError::WrongArch { found: h.arch });
        }
        // Layout: header, then metadata, then page-aligned data ending at file_len.
        // Saturating and checked sums: a sealed header may still hold any values.
        let meta_need = (PROCESS_LEN as u64 + h.nregions as u64 * REGION_LEN as u64 + h.nruns as u64 * RUN_LEN as u64)
            .saturating_add(h.strings_len)
            .saturating_add(h.sections_len);
        let ok = h.image_offset % PAGE_SIZE == 0
            && h.image_offset.checked_add(HEADER_LEN as u64) == Some(h.meta_offset)
            && h.meta_len == meta_need
            && h.data_offset % PAGE_SIZE == 0
            && h.data_offset >= h.meta_offset.saturating_add(h.meta_len)
            && h.data_len % PAGE_SIZE == 0
            // Compressed data (version 4) ends before data_offset + data_len;
            // `compress::check_against` checks the exact end against the pieces.
            && h.data_offset.checked_add(h.data_len).is_some_and(|e| {
                if h.version >= 4 { h.data_offset <= h.file_len } else { e == h.file_len }
            })
            && h.nregions <= 1 << 20
            && h.nruns <= 1 << 24
            && h.strings_len <= 1 << 24
            && h.sections_len <= 1 << 30;
        if !ok {
            return Err(ImageError::BadLayout);
        }
        if file_len < h.file_len {
            return Err(ImageError::Truncated { need: h.file_len, have: file_len });
        }
        Ok(h)
    }
}

/// A validated view of the metadata: process record, regions, runs and strings.
#[derive(Clone, Copy, Debug)]
pub struct Meta<'a> {
    /// The header the metadata belongs to.
    pub header: Header,
    /// The process record.
    pub process: Process,
    regions: &'a [u8],
    runs: &'a [u8],
    strings: &'a [u8],
    /// The sections (framing and known payloads validated).
    pub sections: Sections<'a>,
}

impl<'a> Meta<'a> {
    /// Check `meta` (the `meta_len` bytes at `meta_offset`) against `header` and
    /// validate every record. After this, iteration cannot fail and every run lies
    /// inside its region and inside the data section of the file.
    ///
    /// `header` should come from [`Header::parse`], but nothing here relies on it:
    /// any header and any bytes give `Ok` or `Err`, never a panic.
    pub fn parse(header: &Header, meta: &'a [u8]) -> Result<Meta<'a>, ImageError> {
        if (meta.len() as u64) < header.meta_len {
            return Err(ImageError::Truncated { need: header.meta_len, have: meta.len() as u64 });
        }
        let meta = &meta[..header.meta_len as usize];
        if hash64(meta) != header.meta_hash {
            return Err(ImageError::MetaChecksum);
        }
        // The table lengths, in u64 so that no count can overflow (also on i386).
        let r1 = PROCESS_LEN as u64 + header.nregions as u64 * REGION_LEN as u64;
        let u1 = r1 + header.nruns as u64 * RUN_LEN as u64;
        let s1 = u1.checked_add(header.strings_len);
        if s1.and_then(|s| s.checked_add(header.sections_len)) != Some(header.meta_len)
            || header.data_offset.checked_add(header.data_len).is_none()
        {
            return Err(ImageError::BadLayout);
        }
        let process = Process::decode(meta)?;
        let (r0, r1, u1) = (PROCESS_LEN, r1 as usize, u1 as usize);
        let s1 = u1 + header.strings_len as usize;
        let m = Meta {
            header: *header,
            process,
            regions: &meta[r0..r1],
            runs: &meta[r1..u1],
            strings: &meta[u1..s1],
            sections: Sections::parse(&meta[s1..])?,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ImageError> {
        let top = task_size(self.header.arch);
        let data_end = self.header.data_offset + self.header.data_len;
        let mut prev_end = 0u64;
        let mut next_run = 0u32;
        let mut next_off = self.header.data_offset;
        let mut mapped = 0u64;
        // Words 0 and 1 of the register record are the stack and instruction
        // pointers on every architecture (`RegsX86_64`, `RegsX86`).
        let (sp, ip) = (self.process.regs[0], self.process.regs[1]);
        // The stack pointer points at a return address: aligned to a word.
        let word = if self.header.arch == ARCH_X86 { 4 } else { 8 };
        let (mut sp_ok, mut ip_ok) = (false, false);
        // The per-piece hashes, if the image has them: one per piece of each
        // region's data (see `hashes`).
        let hashes = self.data_hashes()?;
        let mut pieces = 0u64;
        for (i, r) in self.regions().enumerate() {
            let bad = Err(ImageError::BadRegion { index: i as u32 });
            if r.start % PAGE_SIZE != 0
                || r.end % PAGE_SIZE != 0
                || r.start < MIN_ADDR.max(prev_end)
                || r.end <= r.start
                || r.end > top
                || r.prot & !prot::ALL != 0
                || r.kind > kind::MAX
                || r.first_run != next_run
                || r.nruns > self.header.nruns - next_run
                || (r.name_off as u64 + r.name_len as u64) > self.strings.len() as u64
            {
                return bad;
            }
            prev_end = r.end;
            mapped += r.end - r.start;
            // The save point's return address (at sp) must be readable and
            // writable memory; the code it returns to, executable.
            sp_ok |= (r.start..r.end).contains(&sp)
                && sp % word == 0
                && r.prot & (prot::READ | prot::WRITE) == prot::READ | prot::WRITE;
            ip_ok |= (r.start..r.end).contains(&ip) && r.prot & prot::EXEC != 0;
            let mut prev_run_end = r.start;
            for j in r.first_run..r.first_run + r.nruns {
                let run = self.run(j);
                let bad = Err(ImageError::BadRun { index: j });
                if !run.addr.is_multiple_of(PAGE_SIZE)
                    || !run.len.is_multiple_of(PAGE_SIZE)
                    || run.len == 0
                    || run.addr < prev_run_end
                    || run.addr.checked_add(run.len).is_none_or(|e| e > r.end)
                    || run.file_off != next_off
                    || run.file_off.checked_add(run.len).is_none_or(|e| e > data_end)
                {
                    return bad;
                }
                prev_run_end = run.addr + run.len;
                next_off = run.file_off + run.len;
            }
            if let Some(h) = hashes.as_ref().filter(|_| r.nruns > 0) {
                let start = self.run(r.first_run).file_off;
                pieces += hashes::pieces_of(next_off - start, h.piece);
            }
            next_run += r.nruns;
        }
        if next_run != self.header.nruns || next_off != data_end || mapped != self.header.mapped_len {
            return Err(ImageError::BadLayout);
        }
        if hashes.is_some_and(|h| h.hashes.len() as u64 != pieces) {
            return Err(ImageError::BadSection { tag: section::tag::DATA_HASHES });
        }
        for (s, l) in self.process.strings {
            if s as u64 + l as u64 > self.strings.len() as u64 {
                return Err(ImageError::BadLayout);
            }
        }
        if !sp_ok || !ip_ok {
            return Err(ImageError::BadRegisters);
        }
        memory::check_against(self)?;
        tree::check_against(self)?;
        compress::check_against(self)?;
        parent::check_against(self)?;
        for (s, l) in self.process.vdso {
            if l != 0 && (s % PAGE_SIZE != 0 || l % PAGE_SIZE != 0 || s.saturating_add(l) > top) {
                return Err(ImageError::BadLayout);
            }
        }
        self.validate_threads(word)
    }

    /// The THREADS section against the rest: one record is the leader and holds
    /// the process record's registers; every thread's save point lies in saved
    /// memory as the process record's must.
    fn validate_threads(&self, word: u64) -> Result<(), ImageError> {
        let Some(t) = self.threads() else { return Ok(()) };
        let bad = Err(ImageError::BadSection { tag: section::tag::THREADS });
        let leaders = t.iter().filter(|th| th.tid == self.process.pid).count();
        if leaders != 1 || t.iter().any(|th| th.tid == self.process.pid && th.regs != self.process.regs) {
            return bad;
        }
        for th in t.iter() {
            let (sp, ip) = (th.regs[0], th.regs[1]);
            let rw = prot::READ | prot::WRITE;
            let sp_ok = sp % word == 0 && self.region_at(sp).is_some_and(|r| r.prot & rw == rw);
            let ip_ok = self.region_at(ip).is_some_and(|r| r.prot & prot::EXEC != 0);
            if !sp_ok || !ip_ok {
                return bad;
            }
        }
        Ok(())
    }

    /// The region holding address `a`, if any (regions are sorted and disjoint).
    pub fn region_at(&self, a: u64) -> Option<Region> {
        let (mut l, mut r) = (0u32, self.nregions());
        while l < r {
            let m = l + (r - l) / 2;
            if self.region(m).end <= a { l = m + 1 } else { r = m }
        }
        (l < self.nregions()).then(|| self.region(l)).filter(|g| g.start <= a)
    }

    /// The index of the first run that ends after address `a` (`nruns` if none):
    /// runs are sorted by address across regions, as regions are.
    pub fn first_run_after(&self, a: u64) -> u32 {
        let (mut lo, mut hi) = (0u32, self.header.nruns);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let u = self.run(mid);
            if u.addr + u.len <= a { lo = mid + 1 } else { hi = mid }
        }
        lo
    }

    /// The thread records, when the image has a THREADS section (validated).
    pub fn threads(&self) -> Option<section::Table<'a, threads::Thread>> {
        self.sections.get(section::tag::THREADS).and_then(|s| threads::parse(s.data).ok())
    }

    /// The processes of a tree image (section TREE, validated), if it is one.
    pub fn tree(&self) -> Option<section::Table<'a, tree::Member>> {
        self.sections.get(section::tag::TREE).and_then(|s| tree::members(&s).ok())
    }

    /// The per-piece hashes of the page data (section DATA_HASHES), if the image
    /// has them (validated, count included, by `parse`).
    pub fn data_hashes(&self) -> Result<Option<hashes::DataHashes<'a>>, ImageError> {
        self.sections.get(section::tag::DATA_HASHES).map(|s| hashes::DataHashes::parse(&s)).transpose()
    }

    /// The PARENT section, if this is an incremental image (validated).
    pub fn parent(&self) -> Option<parent::Parent<'a>> {
        self.sections.get(section::tag::PARENT).and_then(|s| parent::Parent::parse(s.data).ok())
    }

    /// The COMPRESSION section, if the page data is compressed (validated).
    pub fn compression(&self) -> Option<compress::Compression<'a>> {
        self.sections.get(section::tag::COMPRESSION).and_then(|s| compress::Compression::parse(s.data).ok())
    }

    /// Call `f(region index, plain file offset, length)` for every piece of the
    /// page data, in order: each region's data cut every `piece` bytes from its
    /// first byte (see `hashes`).
    pub fn for_each_piece(&self, piece: u64, mut f: impl FnMut(u32, u64, u64)) {
        for (i, r) in self.regions().enumerate() {
            let (mut at, end) = self.data_range(&r);
            while at < end && piece > 0 {
                let n = piece.min(end - at);
                f(i as u32, at, n);
                at += n;
            }
        }
    }

    /// The file range `[start, end)` of region `r`'s data (empty if it has none).
    pub fn data_range(&self, r: &Region) -> (u64, u64) {
        match self.runs_of(r).next() {
            Some(first) => {
                let len: u64 = self.runs_of(r).map(|u| u.len).sum();
                (first.file_off, first.file_off + len)
            }
            None => (0, 0),
        }
    }

    /// Number of regions.
    pub fn nregions(&self) -> u32 {
        self.header.nregions
    }

    /// Region `i` (validated; panics only if `i` is out of range).
    pub fn region(&self, i: u32) -> Region {
        let o = i as usize * REGION_LEN;
        Region::decode(&self.regions[o..o + REGION_LEN]).unwrap_or_default()
    }

    /// Run `i`.
    pub fn run(&self, i: u32) -> Run {
        let o = i as usize * RUN_LEN;
        Run::decode(&self.runs[o..o + RUN_LEN]).unwrap_or_default()
    }

    /// All regions in address order.
    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        (0..self.header.nregions).map(move |i| self.region(i))
    }

    /// The runs of `r`.
    pub fn runs_of(&self, r: &Region) -> impl Iterator<Item = Run> + '_ {
        (r.first_run..r.first_run + r.nruns).map(move |i| self.run(i))
    }

    /// String `(offset, len)` from the string table (empty if out of range).
    pub fn string(&self, (off, len): (u32, u32)) -> &'a [u8] {
        let end = (off as usize).saturating_add(len as usize);
        self.strings.get(off as usize..end).unwrap_or(&[])
    }
}

/// Serialises metadata into a caller-provided buffer (the runtime has no allocator).
///
/// Order: the process record, regions and runs (any order), then every string,
/// then the sections: once a section is written, no string can be added.
pub struct MetaWriter<'a> {
    buf: &'a mut [u8],
    nregions: u32,
    nruns: u32,
    strings: usize,
    sections: usize,
}

/// Room in the [`MetaWriter`] buffer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSpace;

impl<'a> MetaWriter<'a> {
    /// Bytes of metadata needed for the given counts and string bytes.
    pub const fn len_for(nregions: usize, nruns: usize, strings: usize) -> usize {
        PROCESS_LEN + nregions * REGION_LEN + nruns * RUN_LEN + strings
    }

    /// A writer whose region table, run table and strings are laid out in
    /// `buf` for exactly `nregions` and `nruns` records.
    pub fn new(buf: &'a mut [u8], nregions: u32, nruns: u32) -> Result<Self, NoSpace> {
        if buf.len() < Self::len_for(nregions as usize, nruns as usize, 0) {
            return Err(NoSpace);
        }
        Ok(MetaWriter { buf, nregions, nruns, strings: 0, sections: 0 })
    }

    fn strings_base(&self) -> usize {
        Self::len_for(self.nregions as usize, self.nruns as usize, 0)
    }

    /// Store the process record.
    pub fn process(&mut self, p: &Process) {
        p.encode(&mut self.buf[..PROCESS_LEN]);
    }

    /// Store region `i`.
    pub fn region(&mut self, i: u32, r: &Region) {
        let o = PROCESS_LEN + i as usize * REGION_LEN;
        r.encode(&mut self.buf[o..o + REGION_LEN]);
    }

    /// Store run `i`.
    pub fn run(&mut self, i: u32, r: &Run) {
        let o = PROCESS_LEN + self.nregions as usize * REGION_LEN + i as usize * RUN_LEN;
        r.encode(&mut self.buf[o..o + RUN_LEN]);
    }

    /// Append a string (a NUL follows it); returns its (offset, len).
    pub fn string(&mut self, s: &[u8]) -> Result<(u32, u32), NoSpace> {
        if self.sections != 0 {
            return Err(NoSpace);
        }
        let base = self.strings_base() + self.strings;
        let end = base + s.len() + 1;
        if end > self.buf.len() || s.len() > u32::MAX as usize {
            return Err(NoSpace);
        }
        self.buf[base..base + s.len()].copy_from_slice(s);
        self.buf[base + s.len()] = 0;
        let off = self.strings as u32;
        self.strings += s.len() + 1;
        Ok((off, s.len() as u32))
    }

    /// Length of the strings so far.
    pub fn strings_len(&self) -> usize {
        self.strings
    }

    /// Append a section of `len` payload bytes with `tag` and `version`; returns
    /// the payload to fill (fill all of it: the buffer is not promised zeroed).
    pub fn section(&mut self, tag: u32, version: u32, len: usize) -> Result<&mut [u8], NoSpace> {
        let at = self.strings_base() + self.strings + self.sections;
        let end = at.checked_add(section::SECTION_HEADER_LEN + len).ok_or(NoSpace)?;
        if end > self.buf.len() || tag == 0 {
            return Err(NoSpace);
        }
        section::SectionHeader { tag, version, len: len as u64 }.encode(&mut self.buf[at..]);
        self.sections += section::SECTION_HEADER_LEN + len;
        Ok(&mut self.buf[at + section::SECTION_HEADER_LEN..end])
    }

    /// Length of the sections so far (`Header::sections_len`).
    pub fn sections_len(&self) -> usize {
        self.sections
    }

    /// The finished metadata bytes.
    pub fn finish(self) -> &'a [u8] {
        let n = self.strings_base() + self.strings + self.sections;
        &self.buf[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::section::{SECTION_HEADER_LEN, SectionHeader, Table, tag};
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// Build a small valid image (header + meta, data_offset etc.), return bytes and
    /// the file length it claims.
    fn sample() -> (Header, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        let mut w = MetaWriter::new(&mut buf, 2, 3).unwrap();
        let n0 = w.string(b"/bin/x").unwrap();
        let mut p = Process {
            regs: RegsX86_64 { rsp: 0x20ff8, rip: 0x10234, ..Default::default() }.to_words(),
            ..Default::default()
        };
        p.strings[strs::EXE] = n0;
        p.vdso[2] = (0x7fff_f000_0000, 0x2000);
        w.process(&p);
        let image_offset = 8192u64;
        let meta_offset = image_offset + HEADER_LEN as u64;
        let data_offset = page_up(meta_offset + 4096);
        w.region(
            0,
            &Region {
                start: 0x10000,
                end: 0x14000,
                prot: 5,
                kind: kind::FILE,
                first_run: 0,
                nruns: 2,
                name_off: n0.0,
                name_len: n0.1,
                file_offset: 0,
            },
        );
        w.region(
            1,
            &Region {
                start: 0x20000,
                end: 0x21000,
                prot: 3,
                kind: kind::ANON,
                first_run: 2,
                nruns: 1,
                ..Default::default()
            },
        );
        w.run(0, &Run { addr: 0x10000, len: 0x1000, file_off: data_offset });
        w.run(1, &Run { addr: 0x12000, len: 0x2000, file_off: data_offset + 0x1000 });
        w.run(2, &Run { addr: 0x20000, len: 0x1000, file_off: data_offset + 0x3000 });
        let strings_len = w.strings_len() as u64;
        // A section of a tag this build does not know: kept, not validated.
        w.section(40, 1, 5).unwrap().copy_from_slice(b"hello");
        assert_eq!(w.string(b"late"), Err(NoSpace), "no string after a section");
        let sections_len = w.sections_len() as u64;
        let meta = w.finish().to_vec();
        let mut h = Header::new(ARCH_X86_64);
        h.image_offset = image_offset;
        h.meta_offset = meta_offset;
        h.meta_len = meta.len() as u64;
        h.meta_hash = hash64(&meta);
        h.data_offset = data_offset;
        h.data_len = 0x4000;
        h.file_len = data_offset + 0x4000;
        h.nregions = 2;
        h.nruns = 3;
        h.strings_len = strings_len;
        h.sections_len = sections_len;
        h.mapped_len = 0x5000;
        (h, meta)
    }

    /// The regions and runs of `sample`, with DATA_HASHES (two pieces: 0x3000
    /// bytes of region 0, 0x1000 of region 1) and a COMPRESSION section holding
    /// `pieces`; the file ends where the last piece does.
    fn compressed(pieces: &[compress::StoredPiece], version: u32) -> (Header, Vec<u8>) {
        use compress::Compression;
        let (h0, meta0) = sample();
        // Everything up to the strings' end is kept; the sections are new.
        let keep = meta0.len() - h0.sections_len as usize;
        let mut meta = meta0[..keep].to_vec();
        let mut dh = vec![0u8; hashes::DataHashes::len_for(2)];
        hashes::DataHashes::start(&mut dh, hashes::PIECE, 2);
        let mut c = vec![0u8; Compression::len_for(pieces.len())];
        Compression::start(&mut c, h0.data_len, pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            Compression::put(&mut c, i, p);
        }
        for (tag, body) in [(section::tag::COMPRESSION, &c), (section::tag::DATA_HASHES, &dh)] {
            let mut hd = [0u8; SECTION_HEADER_LEN];
            SectionHeader { tag, version: 1, len: body.len() as u64 }.encode(&mut hd);
            meta.extend_from_slice(&hd);
            meta.extend_from_slice(body);
        }
        let mut h = h0;
        h.version = version;
        h.sections_len = (meta.len() - keep) as u64;
        h.meta_len = meta.len() as u64;
        h.meta_hash = hash64(&meta);
        h.file_len = pieces.last().map_or(h.data_offset, |p| p.off + p.len as u64);
        (h, meta)
    }

    /// A compressed image's stored pieces are checked against the plain layout
    /// and the file before anything is read: lengths for their codec, order,
    /// padding, count, the file's end, and the version.
    #[test]
    fn compressed_layouts_are_checked() {
        use compress::{StoredPiece, codec};
        let (h, _) = sample();
        let d = h.data_offset;
        let lz = |off: u64, len: u32| StoredPiece { off, len, codec: codec::LZ4 };
        let raw = |off: u64, len: u32| StoredPiece { off, len, codec: codec::NONE };
        let parse = |pieces: &[StoredPiece], version: u32| {
            let (mut h, meta) = compressed(pieces, version);
            let hb = sealed(&mut h);
            let h2 = Header::parse(&hb, h.file_len, ARCH_X86_64)?;
            Meta::parse(&h2, &meta).map(|m| m.compression().map(|c| c.pieces.len()))
        };
        let bad = Err(ImageError::BadSection { tag: section::tag::COMPRESSION });
        assert_eq!(parse(&[lz(d, 0x100), raw(d + 0x100, 0x1000)], 4), Ok(Some(2)));
        // Padding under a page before a piece is allowed, a page or more is not.
        assert_eq!(parse(&[lz(d, 0x100), raw(d + 0x1000, 0x1000)], 4), Ok(Some(2)));
        assert_eq!(parse(&[lz(d, 0x100), raw(d + 0x1100, 0x1000)], 4), bad);
        // An LZ4 block as long as its piece, a plain piece of the wrong length.
        assert_eq!(parse(&[lz(d, 0x3000), raw(d + 0x3000, 0x1000)], 4), bad);
        assert_eq!(parse(&[lz(d, 0x100), raw(d + 0x100, 0xfff)], 4), bad);
        assert_eq!(parse(&[lz(d, 0), raw(d, 0x1000)], 4), bad);
        // Out of order, before the data, an unknown codec, one piece missing.
        assert_eq!(parse(&[lz(d + 0x1000, 0x100), raw(d, 0x1000)], 4), bad);
        assert_eq!(parse(&[lz(d - 0x10, 0x100), raw(d + 0x100, 0x1000)], 4), bad);
        let odd = StoredPiece { off: d, len: 0x100, codec: 7 };
        assert_eq!(parse(&[odd, raw(d + 0x100, 0x1000)], 4), bad);
        assert_eq!(parse(&[lz(d, 0x100)], 4), bad);
        // A version 3 reader's layout: refused by version, not misread.
        assert_eq!(parse(&[lz(d, 0x100), raw(d + 0x100, 0x1000)], 3), Err(ImageError::BadLayout));
        let all_plain = [raw(d, 0x3000), raw(d + 0x3000, 0x1000)];
        assert_eq!(parse(&all_plain, 4), Ok(Some(2)));
        assert_eq!(parse(&all_plain, 3), Err(ImageError::BadVersion { found: 3 }));
        // A version 4 image without the section must end at data_offset + data_len.
        let (mut h4, meta) = sample();
        h4.version = 4;
        h4.file_len -= 1;
        let hb = sealed(&mut h4);
        let h4 = Header::parse(&hb, h4.file_len, ARCH_X86_64).unwrap();
        assert_eq!(Meta::parse(&h4, &meta).unwrap_err(), ImageError::BadLayout);
    }

    fn sealed(h: &mut Header) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        h.seal(&mut b);
        b
    }

    #[test]
    fn round_trip() {
        let (mut h, meta) = sample();
        let hb = sealed(&mut h);
        let h2 = Header::parse(&hb, h.file_len, ARCH_X86_64).unwrap();
        assert_eq!(h2, h);
        let m = Meta::parse(&h2, &meta).unwrap();
        assert_eq!(m.nregions(), 2);
        let r: Vec<Region> = m.regions().collect();
        assert_eq!(r[0].start, 0x10000);
        assert_eq!(m.runs_of(&r[0]).count(), 2);
        assert_eq!(m.string(m.process.strings[strs::EXE]), b"/bin/x");
        let regs = RegsX86_64::from_words(&m.process.regs);
        assert_eq!(regs.rip, 0x10234);
    }

    #[test]
    fn sections_round_trip_and_unknown_tags_are_kept() {
        let (mut h, meta) = sample();
        let hb = sealed(&mut h);
        let h2 = Header::parse(&hb, h.file_len, ARCH_X86_64).unwrap();
        let m = Meta::parse(&h2, &meta).unwrap();
        let all: Vec<Section> = m.sections.iter().collect();
        assert_eq!(all, [Section { tag: 40, version: 1, data: b"hello" }]);
        assert_eq!(m.sections.get(40).map(|s| s.data), Some(&b"hello"[..]));
        assert_eq!(m.sections.get(section::tag::THREADS), None);
        assert_eq!(m.string(m.process.strings[strs::EXE]), b"/bin/x");
    }

    /// A version 2 image is a version 3 image without sections; a version 2 header
    /// that claims sections is refused.
    #[test]
    fn version_2_images_still_parse() {
        let (mut h, meta) = sample();
        let meta = &meta[..meta.len() - h.sections_len as usize];
        h.version = 2;
        h.meta_len = meta.len() as u64;
        h.meta_hash = hash64(meta);
        h.sections_len = 0;
        let hb = sealed(&mut h);
        let h2 = Header::parse(&hb, h.file_len, ARCH_X86_64).unwrap();
        let m = Meta::parse(&h2, meta).unwrap();
        assert_eq!(m.sections.iter().count(), 0);
        h.sections_len = 8;
        h.meta_len += 8;
        let hb = sealed(&mut h);
        assert!(matches!(Header::parse(&hb, h.file_len, ARCH_X86_64), Err(ImageError::BadVersion { found: 2 })));
    }

    /// Section framing is checked even when the checksum was resealed: a length
    /// past the end, tag 0, a repeated tag, version 0 (tag 40: a tag this build
    /// does not know, so only the framing is checked).
    #[test]
    fn malformed_sections_are_refused() {
        let good = {
            let mut b = vec![0u8; 64];
            SectionHeader { tag: 40, version: 1, len: 3 }.encode(&mut b);
            b.truncate(SECTION_HEADER_LEN + 3);
            b
        };
        assert!(Sections::parse(&good).is_ok());
        let with = |tag: u32, version: u32, len: u64| {
            let mut b = good.clone();
            SectionHeader { tag, version, len }.encode(&mut b);
            Sections::parse(&b).map(drop)
        };
        assert_eq!(with(40, 1, 4).unwrap_err(), ImageError::BadSection { tag: 40 });
        assert_eq!(with(0, 1, 3).unwrap_err(), ImageError::BadSection { tag: 0 });
        assert_eq!(with(64, 1, 3).unwrap_err(), ImageError::BadSection { tag: 64 });
        assert_eq!(with(40, 0, 3).unwrap_err(), ImageError::BadSection { tag: 40 });
        let newer = files::VERSION + 1;
        assert_eq!(
            with(tag::FILES, newer, 3).unwrap_err(),
            ImageError::NewerSection { tag: tag::FILES, version: newer }
        );
        let mut twice = good.clone();
        twice.extend_from_slice(&good);
        assert_eq!(Sections::parse(&twice).unwrap_err(), ImageError::BadSection { tag: 40 });
        for cut in 1..good.len() {
            assert!(Sections::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn tables_hold_exactly_their_count_of_records() {
        let runs = [Run { addr: 0x1000, len: 0x2000, file_off: 0 }, Run { addr: 0x5000, len: 0x1000, file_off: 8 }];
        let mut b = vec![0u8; Table::<Run>::len_for(2)];
        Table::encode(&runs, &mut b);
        let t = Table::<Run>::parse(&b, 9).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.iter().collect::<Vec<_>>(), runs);
        assert!(Table::<Run>::parse(&b[..b.len() - 1], 9).is_err());
        let mut more = b.clone();
        more.push(0);
        assert!(Table::<Run>::parse(&more, 9).is_err());
        more.truncate(b.len());
        more[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Table::<Run>::parse(&more, 9).unwrap_err(), ImageError::BadSection { tag: 9 });
    }

    #[test]
    fn truncated_file_is_refused_with_sizes() {
        let (mut h, _) = sample();
        let hb = sealed(&mut h);
        let e = Header::parse(&hb, h.file_len - 1, ARCH_X86_64).unwrap_err();
        assert_eq!(e, ImageError::Truncated { need: h.file_len, have: h.file_len - 1 });
        for n in 0..HEADER_LEN {
            assert!(Header::parse(&hb[..n], h.file_len, ARCH_X86_64).is_err(), "len {n}");
        }
    }

    #[test]
    fn every_header_bit_flip_is_refused() {
        let (mut h, _) = sample();
        let hb = sealed(&mut h);
        for bit in 0..HEADER_LEN * 8 {
            let mut b = hb;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::parse(&b, h.file_len, ARCH_X86_64).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn every_meta_bit_flip_is_refused() {
        let (mut h, meta) = sample();
        let _ = sealed(&mut h);
        for bit in 0..meta.len() * 8 {
            let mut m = meta.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(Meta::parse(&h, &m).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn wrong_arch_is_refused() {
        let (mut h, _) = sample();
        let hb = sealed(&mut h);
        assert_eq!(Header::parse(&hb, h.file_len, ARCH_X86).unwrap_err(), ImageError::WrongArch { found: ARCH_X86_64 });
    }

    /// Structurally bad tables with a correct checksum are still refused.
    #[test]
    fn overlapping_regions_are_refused_even_with_good_checksum() {
        let (mut h, mut meta) = sample();
        // Make region 1 start inside region 0.
        let o = PROCESS_LEN + REGION_LEN;
        meta[o..o + 8].copy_from_slice(&0x13000u64.to_le_bytes());
        h.meta_hash = hash64(&meta);
        let hb = sealed(&mut h);
        let h2 = Header::parse(&hb, h.file_len, ARCH_X86_64).unwrap();
        assert!(matches!(Meta::parse(&h2, &meta), Err(ImageError::BadRegion { index: 1 })));
    }

    /// Published XXH64 vectors (seed 0), and independence from how the input is cut.
    #[test]
    fn data_hash_is_xxh64() {
        let h = |b: &[u8]| {
            let mut x = DataHasher::new();
            x.update(b);
            x.finish()
        };
        assert_eq!(h(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(h(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(h(b"abc"), 0x44BC_2CF5_AD77_0999);
        let long: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let whole = h(&long);
        for cut in [1usize, 7, 31, 32, 33, 4096, 9999] {
            let mut x = DataHasher::new();
            for piece in long.chunks(cut) {
                x.update(piece);
            }
            assert_eq!(x.finish(), whole, "cut {cut}");
        }
        let mut z = DataHasher::new();
        z.update(&long[..100]);
        z.update_zeros(5000);
        let mut zz = long[..100].to_vec();
        zz.extend(std::iter::repeat_n(0u8, 5000));
        assert_eq!(z.finish(), h(&zz));
    }

    /// A stack or instruction pointer outside saved memory of the right kind is
    /// refused even with a good checksum: the loader would jump into nothing.
    #[test]
    fn registers_outside_saved_memory_are_refused() {
        let (h, meta) = sample();
        for (word, value) in [(0usize, 0x30000u64), (0, 0x10ff8), (0, 0x20ff9), (1, 0x20010), (1, 0)] {
            let mut m = meta.clone();
            m[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
            let mut h2 = h;
            h2.meta_hash = hash64(&m);
            assert_eq!(Meta::parse(&h2, &m).unwrap_err(), ImageError::BadRegisters, "word {word} = {value:#x}");
        }
    }

    /// xorshift64: a deterministic stream, so a failure is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// A value likely to sit on a boundary the parser must handle.
        fn interesting(&mut self, orig: u64) -> u64 {
            match self.below(12) {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                3 => u32::MAX as u64,
                4 => orig.wrapping_add(1),
                5 => orig.wrapping_sub(1),
                6 => orig.wrapping_add(PAGE_SIZE),
                7 => orig.wrapping_sub(PAGE_SIZE),
                8 => orig ^ (1 << self.below(64)),
                9 => (self.next() & 0xffff_ffff) * PAGE_SIZE,
                10 => 1 << self.below(64),
                _ => self.next(),
            }
        }
    }

    /// The properties a successful parse promises its user (the loader maps and
    /// fills memory from exactly these numbers without further checks).
    fn check_promises(h: &Header, file_len: u64, m: &Meta) {
        assert!(h.file_len <= file_len);
        let mut prev_end = 0;
        let mut saved = 0;
        let mut mapped = 0;
        for r in m.regions() {
            assert!(r.start >= MIN_ADDR && r.start >= prev_end && r.start < r.end);
            assert!(r.end <= task_size(h.arch) && r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0);
            prev_end = r.end;
            mapped += r.end - r.start;
            let _ = m.string((r.name_off, r.name_len));
            for run in m.runs_of(&r) {
                assert!(run.addr >= r.start && run.addr + run.len <= r.end && run.len > 0);
                assert!(run.file_off >= h.data_offset && run.file_off + run.len <= h.file_len);
                saved += run.len;
            }
        }
        assert_eq!(mapped, h.mapped_len);
        assert_eq!(saved, h.data_len);
        for s in m.process.strings {
            let _ = m.string(s);
        }
    }

    /// The parser the loader runs before it touches memory, fed tens of thousands
    /// of mutated images: header fields and table entries set to boundary values
    /// and re-sealed (so the structural checks, not just the checksums, are
    /// exercised), random bytes, truncations, wrong file lengths, and headers
    /// that never went through `Header::parse`. No input may panic (debug build:
    /// overflow checks on), and every accepted input keeps the promises above.
    #[test]
    fn mutated_images_never_panic_and_accepted_ones_are_sound() {
        let (h0, meta0) = sample();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        const N: usize = 60_000;
        for _ in 0..N {
            let mut h = h0;
            let mut meta = meta0.clone();
            let mut file_len = h.file_len;
            let mutations = 1 + rng.below(3);
            for _ in 0..mutations {
                match rng.below(6) {
                    // One header field (16 u64-sized slots; u32 pairs share one).
                    0 => {
                        let mut b = [0u8; HEADER_LEN];
                        h.encode(&mut b);
                        let slot = rng.below(HEADER_LEN / 8 - 1) * 8;
                        let v = rng.interesting(rd64(&b, slot));
                        b[slot..slot + 8].copy_from_slice(&v.to_le_bytes());
                        h = Header::decode(&b).unwrap();
                    }
                    // One 8-byte word of the metadata, anywhere.
                    1 if meta.len() >= 8 => {
                        let at = rng.below(meta.len() / 8) * 8;
                        let v = rng.interesting(rd64(&meta, at));
                        meta[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    // One u32 of a region record (prot, kind, first_run, nruns, name).
                    2 => {
                        let at = PROCESS_LEN + rng.below(2) * REGION_LEN + 16 + rng.below(6) * 4;
                        let v = rng.interesting(0) as u32;
                        if let Some(w) = meta.get_mut(at..at + 4) {
                            w.copy_from_slice(&v.to_le_bytes());
                        }
                    }
                    // Random bytes.
                    3 if !meta.is_empty() => {
                        let at = rng.below(meta.len());
                        meta[at] = rng.next() as u8;
                    }
                    // Truncate or extend the metadata.
                    4 => {
                        let n = rng.below(meta.len() + 64);
                        meta.resize(n, rng.next() as u8);
                    }
                    // The file is shorter or longer than the header says.
                    5 => file_len = rng.interesting(file_len),
                    _ => {}
                }
            }
            if rng.below(8) == 0 {
                // A header that was never validated, straight to Meta::parse.
                h.meta_hash = hash64(&meta[..(h.meta_len as usize).min(meta.len())]);
                if let Ok(m) = Meta::parse(&h, &meta) {
                    for r in m.regions() {
                        let _ = m.runs_of(&r).count();
                    }
                }
                continue;
            }
            // Re-seal most of the time, so the checksums let the values through.
            if rng.below(4) != 0 {
                h.meta_hash = hash64(&meta[..(h.meta_len as usize).min(meta.len())]);
            }
            let mut hb = [0u8; HEADER_LEN];
            if rng.below(8) != 0 {
                h.seal(&mut hb);
            } else {
                h.encode(&mut hb);
            }
            let cut = if rng.below(16) == 0 { rng.below(HEADER_LEN) } else { HEADER_LEN };
            let Ok(h2) = Header::parse(&hb[..cut], file_len, 0) else { continue };
            if let Ok(m) = Meta::parse(&h2, &meta) {
                check_promises(&h2, file_len, &m);
                accepted += 1;
            }
        }
        // Some mutations leave the image valid (a string byte, a longer file):
        // the accepting path must have been exercised too.
        std::eprintln!("{accepted} of {N} accepted");
        assert!(accepted > 100 && accepted < N / 2, "{accepted} of {N} accepted");
    }

    #[test]
    fn pseudo_random_metadata_never_panics() {
        let (mut h, meta) = sample();
        let _ = sealed(&mut h);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut m = meta.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len();
                m[i] = (x >> 32) as u8;
            }
            // Re-seal so the structural checks, not the checksum, are exercised.
            let mut h2 = h;
            h2.meta_hash = hash64(&m);
            let _ = Meta::parse(&h2, &m);
        }
    }
}
