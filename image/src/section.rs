//! Sections: the kernel state of a checkpoint that is not memory (threads, open
//! files, process settings, guard pages, shared objects...), one typed section per
//! kind, after the string table of the metadata (image version 3).
//!
//! ```text
//! SectionHeader { tag, version, len }   (SECTION_HEADER_LEN bytes)
//! payload                               (len bytes)
//! SectionHeader ...                     (the next one follows directly; no padding)
//! ```
//!
//! Rules every section follows, so that one parser serves the loader, the runtime
//! and `ckpt info`/`ckpt verify`:
//! - a tag appears at most once; the sections are covered by the metadata checksum
//!   like the rest of the metadata;
//! - a payload is made of fixed-width little-endian records (the `record!` macro),
//!   usually a [`Table`] of one record type, decoded with bounds checks;
//! - each known tag has its validator in [`validate`], run by [`Sections::parse`]
//!   (so by `Meta::parse`): the loader refuses a damaged section before it touches
//!   its address space, exactly as it refuses a damaged region table;
//! - a tag this build does not know is kept and shown as unknown by `ckpt info`,
//!   never an error: the loader that restores an image is always the one embedded in
//!   it, written by the same build as the runtime that wrote the sections;
//! - `version` belongs to the section, so one kind of state can evolve without
//!   bumping the image version.
//!
//! Who reads what: the loader reads the sections it needs to rebuild the process
//! (threads, guard pages, shared objects) from the metadata copy in its home block,
//! and hands the whole section area to the restarted runtime through
//! [`crate::RestartInfo`]; the runtime restores the rest from there, before it unmaps
//! the home block.

use crate::{ImageError, Rd, Wr};

/// Known section tags. A new kind of state gets the next free number here, and a
/// name in [`name`].
pub mod tag {
    /// Every thread of the process: ids, save-point registers, per-thread kernel
    /// state.
    pub const THREADS: u32 = 1;
    /// Open file descriptors and what each one refers to.
    pub const FILES: u32 = 2;
    /// Process-wide kernel state: rlimits, umask, pending signals, POSIX timers,
    /// clocks and the other per-process settings.
    pub const PROCESS: u32 = 3;
    /// The ids namespace the process was restarted into (pid namespace, user
    /// namespace), for a chained checkpoint.
    pub const IDS: u32 = 4;
    /// Guard pages (`MADV_GUARD_INSTALL`) inside saved regions.
    pub const GUARDS: u32 = 5;
    /// Shared memory objects mapped by more than one region.
    pub const SHARED: u32 = 6;
    /// The other processes of a process tree.
    pub const TREE: u32 = 7;
    /// The parent image of an incremental image.
    pub const PARENT: u32 = 8;
    /// Checksums of the page data piece by piece, checked by the loader as it
    /// reads (the header's `data_hash` covers the whole data for `ckpt verify`).
    pub const DATA_HASHES: u32 = 9;
    /// Where each piece of the page data is stored and how (compressed images,
    /// version 4; see `compress`).
    pub const COMPRESSION: u32 = 10;
}

/// A human name for a section tag (`ckpt info`).
pub fn name(t: u32) -> &'static str {
    match t {
        tag::THREADS => "threads",
        tag::FILES => "files",
        tag::PROCESS => "process",
        tag::IDS => "ids",
        tag::GUARDS => "guards",
        tag::SHARED => "shared",
        tag::TREE => "tree",
        tag::PARENT => "parent",
        tag::DATA_HASHES => "data hashes",
        tag::COMPRESSION => "compression",
        _ => "unknown",
    }
}

record! {
    /// The header of one section.
    pub struct SectionHeader [SECTION_HEADER_LEN = 16] {
        /// One of [`tag`]; never 0.
        pub tag: u32,
        /// The section's own format version (starts at 1).
        pub version: u32,
        /// Payload bytes that follow this header.
        pub len: u64,
    }
}

/// Highest tag a section may carry (tags index a 64-bit "seen" set).
const MAX_TAG: u32 = 63;

/// One section of a validated [`Sections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// Its tag.
    pub tag: u32,
    /// Its format version.
    pub version: u32,
    /// Its payload.
    pub data: &'a [u8],
}

/// The section area of the metadata, its framing checked.
#[derive(Clone, Copy, Debug)]
pub struct Sections<'a> {
    b: &'a [u8],
}

impl<'a> Sections<'a> {
    /// No sections (images of version 2, or a process with nothing beyond memory).
    pub const EMPTY: Sections<'static> = Sections { b: &[] };

    /// Check the framing of every section (each header and payload inside `b`,
    /// tags in range and unique) and the payload of every known tag.
    pub fn parse(b: &'a [u8]) -> Result<Sections<'a>, ImageError> {
        let s = Sections { b };
        let mut seen = 0u64;
        let mut at = 0usize;
        while at < b.len() {
            let rest = &b[at..];
            let h = SectionHeader::decode(rest).map_err(|_| ImageError::BadSection { tag: 0 })?;
            let bad = ImageError::BadSection { tag: h.tag };
            if h.tag == 0 || h.tag > MAX_TAG || seen & (1 << h.tag) != 0 || h.version == 0 {
                return Err(bad);
            }
            if h.version > newest_version(h.tag) {
                return Err(ImageError::NewerSection { tag: h.tag, version: h.version });
            }
            seen |= 1 << h.tag;
            let body = (rest.len() - SECTION_HEADER_LEN) as u64;
            if h.len > body {
                return Err(bad);
            }
            let end = SECTION_HEADER_LEN + h.len as usize;
            validate(&Section { tag: h.tag, version: h.version, data: &rest[SECTION_HEADER_LEN..end] })?;
            at += end;
        }
        Ok(s)
    }

    /// Every section, in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = Section<'a>> + 'a {
        let b = self.b;
        let mut at = 0usize;
        core::iter::from_fn(move || {
            let rest = b.get(at..)?;
            let h = SectionHeader::decode(rest).ok()?;
            let data = rest.get(SECTION_HEADER_LEN..SECTION_HEADER_LEN + h.len as usize)?;
            at += SECTION_HEADER_LEN + data.len();
            Some(Section { tag: h.tag, version: h.version, data })
        })
    }

    /// The section with tag `t`, if the image has one.
    pub fn get(&self, t: u32) -> Option<Section<'a>> {
        self.iter().find(|s| s.tag == t)
    }

    /// The raw bytes (what the loader hands the runtime).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.b
    }
}

/// The newest format version of each section this build reads (a section of a
/// known tag written in a newer version is refused as made by a newer ckpt, not
/// misread; an unknown tag is kept and shown, as it is not needed to restart).
pub fn newest_version(t: u32) -> u32 {
    match t {
        tag::FILES => crate::files::VERSION,
        tag::TREE => crate::tree::VERSION,
        tag::PROCESS => crate::process::VERSION,
        tag::DATA_HASHES => crate::hashes::VERSION,
        tag::THREADS | tag::GUARDS | tag::SHARED | tag::PARENT | tag::COMPRESSION => 1,
        _ => u32::MAX,
    }
}

/// Check the payload of a section whose tag this build knows. Each kind of state
/// adds its arm here, calling its own module's validator (bounds of every record,
/// counts, values the restore relies on).
pub fn validate(s: &Section) -> Result<(), ImageError> {
    match s.tag {
        tag::THREADS => crate::threads::parse(s.data).map(drop),
        tag::FILES => crate::files::Files::parse(s.data).map(drop),
        tag::DATA_HASHES => crate::hashes::validate(s),
        tag::COMPRESSION => crate::compress::validate(s),
        tag::PROCESS => crate::process::validate(s),
        tag::GUARDS | tag::SHARED => crate::memory::validate(s),
        tag::TREE => crate::tree::validate(s),
        tag::PARENT => crate::parent::validate(s),
        _ => Ok(()),
    }
}

/// A fixed-width record that can live in a [`Table`]: every `record!` is one.
pub trait Record: Sized + Copy {
    /// Encoded length in bytes.
    const LEN: usize;
    /// Encode into the first `LEN` bytes of `out`.
    fn put(&self, out: &mut [u8]);
    /// Decode from the first `LEN` bytes of `b`.
    fn get(b: &[u8]) -> Result<Self, ImageError>;
}

/// A payload made of a record count (u64) and that many records of type `R`.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a, R> {
    b: &'a [u8],
    n: usize,
    _r: core::marker::PhantomData<R>,
}

impl<'a, R: Record + 'a> Table<'a, R> {
    /// Check that `data` is exactly a count and that many records.
    pub fn parse(data: &'a [u8], tag: u32) -> Result<Table<'a, R>, ImageError> {
        let bad = ImageError::BadSection { tag };
        if data.len() < 8 {
            return Err(bad);
        }
        let n = Rd::new(data).u64();
        let body = (data.len() - 8) as u64;
        if n.checked_mul(R::LEN as u64) != Some(body) {
            return Err(bad);
        }
        Ok(Table { b: &data[8..], n: n as usize, _r: core::marker::PhantomData })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Record `i` (in range after `parse`; a default-like zero record otherwise is
    /// impossible, so out of range yields `None`).
    pub fn at(&self, i: usize) -> Option<R> {
        let o = i.checked_mul(R::LEN)?;
        R::get(self.b.get(o..o + R::LEN)?).ok()
    }

    /// Every record in order.
    pub fn iter(&self) -> impl Iterator<Item = R> + 'a {
        let t = *self;
        (0..t.n).filter_map(move |i| t.at(i))
    }

    /// Bytes a table of `n` records takes.
    pub const fn len_for(n: usize) -> usize {
        8 + n * R::LEN
    }

    /// Write the count of a table of `n` records into `out` (the records then go
    /// in with [`Table::put`]).
    pub fn start(out: &mut [u8], n: usize) {
        Wr::new(out).u64(n as u64);
    }

    /// Write record `i` of a table into `out` (the whole payload).
    pub fn put(out: &mut [u8], i: usize, r: &R) {
        let o = 8 + i * R::LEN;
        r.put(&mut out[o..o + R::LEN]);
    }

    /// Encode `records` as a table into `out` (exactly `len_for(records.len())`
    /// bytes; panics if shorter).
    pub fn encode(records: &[R], out: &mut [u8]) {
        Wr::new(out).u64(records.len() as u64);
        for (i, r) in records.iter().enumerate() {
            let o = 8 + i * R::LEN;
            r.put(&mut out[o..o + R::LEN]);
        }
    }
}
