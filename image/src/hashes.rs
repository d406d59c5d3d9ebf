//! The page data's checksums piece by piece (section [`tag::DATA_HASHES`]), so the
//! loader can refuse a damaged image while it reads it, before the program runs.
//! (`Header::data_hash` covers the whole data in one XXH64, for `ckpt verify`.)
//!
//! ```text
//! HashesHead { piece }            piece size in bytes (a multiple of PAGE_SIZE)
//! u64 count, PieceHash { hash }…  one hash per piece: the section's version says
//!                                 which ([`Algo`]): 1 XXH64, 2 XXH3-64 (seed 0)
//! ```
//!
//! Pieces follow the regions: the data of each region (its runs, back to back in
//! the file) is cut into pieces of `piece` bytes from its first byte on, the last
//! one shorter; a region without data has none. So each region's pieces can be
//! checked or skipped on their own (the loader reads anonymous regions piece by
//! piece and hashes each piece while it is in the cache), and the count is fixed
//! by the region and run tables: [`crate::Meta::parse`] checks it.
//!
//! This module owns the choice of hash: the runtime, the loader, its pager and
//! `ckpt verify` each take a [`Digest`] from [`DataHashes::algo`] (or
//! [`Algo::NEWEST`] to write), never a hasher of their own.
//!
//! [`tag::DATA_HASHES`]: crate::section::tag::DATA_HASHES

use crate::section::{Section, Table, tag};
use crate::xxh3::Xxh3;
use crate::{DataHasher, ImageError, PAGE_SIZE, Rd, Wr};

/// The section version this build writes.
pub const VERSION: u32 = Algo::NEWEST.version();

/// The piece hash, named by the section's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Version 1 (images of earlier builds): XXH64, seed 0.
    Xxh64,
    /// Version 2: XXH3-64, seed 0 ([`crate::xxh3`]): twice XXH64's speed on
    /// x86_64, eight times on i386 (docs/process-state.md §1), and the loader
    /// hashes every piece before the program runs.
    Xxh3,
}

impl Algo {
    /// What this build writes.
    pub const NEWEST: Algo = Algo::Xxh3;

    /// The hash of a section of this version, if this build knows it.
    pub const fn of_version(v: u32) -> Option<Algo> {
        match v {
            1 => Some(Algo::Xxh64),
            2 => Some(Algo::Xxh3),
            _ => None,
        }
    }

    /// The section version that says this hash.
    pub const fn version(self) -> u32 {
        match self {
            Algo::Xxh64 => 1,
            Algo::Xxh3 => 2,
        }
    }

    /// Its name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Algo::Xxh64 => "XXH64",
            Algo::Xxh3 => "XXH3-64",
        }
    }

    /// A hasher with nothing fed.
    pub const fn digest(self) -> Digest {
        match self {
            Algo::Xxh64 => Digest::Xxh64(DataHasher::new()),
            Algo::Xxh3 => Digest::Xxh3(Xxh3::new()),
        }
    }
}

/// A piece hash being computed, of either [`Algo`]. (XXH3's state is the larger,
/// about 400 bytes: it holds back the input while it may still be a short one.
/// No allocator here, and one lives at a time, on the stack.)
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Digest {
    /// XXH64.
    Xxh64(DataHasher),
    /// XXH3-64.
    Xxh3(Xxh3),
}

impl Digest {
    /// Feed more bytes.
    #[inline]
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Digest::Xxh64(h) => h.update(b),
            Digest::Xxh3(h) => h.update(b),
        }
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u64 {
        match self {
            Digest::Xxh64(h) => h.finish(),
            Digest::Xxh3(h) => h.finish(),
        }
    }
}

/// The piece size the runtime writes: large enough that the loader's reads cost
/// nothing in system calls, small enough that a piece just read is still in the
/// cache when it is hashed (see the runtime's `write.rs`, which hashes the same
/// way when it writes).
pub const PIECE: u64 = 256 << 10;

/// Largest piece size accepted: a piece must fit one `preadv` of IOV_MAX (1024)
/// pages, so the loader reads and checks it in one call.
pub const MAX_PIECE: u64 = 1024 * PAGE_SIZE;

record! {
    /// The head of the section: how the data is cut.
    pub struct HashesHead [HASHES_HEAD_LEN = 8] {
        /// Piece size in bytes: a non-zero multiple of PAGE_SIZE, at most MAX_PIECE.
        pub piece: u64,
    }
}

record! {
    /// The checksum of one piece.
    pub struct PieceHash [PIECE_HASH_LEN = 8] {
        /// The hash ([`Algo`]) of the piece's bytes.
        pub hash: u64,
    }
}

/// A validated DATA_HASHES section.
#[derive(Clone, Copy, Debug)]
pub struct DataHashes<'a> {
    /// Piece size.
    pub piece: u64,
    /// How each piece is hashed (the section's version).
    pub algo: Algo,
    /// One hash per piece, in file order.
    pub hashes: Table<'a, PieceHash>,
}

impl<'a> DataHashes<'a> {
    /// Decode and check the section (not the count against the regions: that is
    /// [`crate::Meta::parse`]'s).
    pub fn parse(s: &Section<'a>) -> Result<DataHashes<'a>, ImageError> {
        let bad = ImageError::BadSection { tag: tag::DATA_HASHES };
        let algo = Algo::of_version(s.version).ok_or(bad)?;
        let data = s.data;
        let head = HashesHead::decode(data).map_err(|_| bad)?;
        if head.piece == 0 || !head.piece.is_multiple_of(PAGE_SIZE) || head.piece > MAX_PIECE {
            return Err(bad);
        }
        let hashes = Table::parse(&data[HASHES_HEAD_LEN..], tag::DATA_HASHES)?;
        Ok(DataHashes { piece: head.piece, algo, hashes })
    }

    /// The hash of piece `i` (in range once `Meta::parse` has checked the count).
    pub fn hash(&self, i: u64) -> Option<u64> {
        usize::try_from(i).ok().and_then(|i| self.hashes.at(i)).map(|p| p.hash)
    }

    /// Payload bytes for `n` pieces.
    pub const fn len_for(n: usize) -> usize {
        HASHES_HEAD_LEN + Table::<PieceHash>::len_for(n)
    }

    /// Write the head and the count of a payload of `n` pieces into `out`
    /// (`len_for(n)` bytes); the hashes go in with [`DataHashes::put`].
    pub fn start(out: &mut [u8], piece: u64, n: usize) {
        HashesHead { piece }.encode(out);
        Table::<PieceHash>::start(&mut out[HASHES_HEAD_LEN..], n);
    }

    /// Write the hash of piece `i` into a payload started with [`DataHashes::start`].
    pub fn put(out: &mut [u8], i: usize, hash: u64) {
        Table::put(&mut out[HASHES_HEAD_LEN..], i, &PieceHash { hash });
    }
}

/// The section validator (`section::validate`).
pub fn validate(s: &Section) -> Result<(), ImageError> {
    DataHashes::parse(s).map(drop)
}

/// Number of pieces of a region holding `bytes` bytes of data.
pub const fn pieces_of(bytes: u64, piece: u64) -> u64 {
    bytes.div_ceil(piece)
}

/// One piece of the page data.
#[derive(Clone, Copy, Debug)]
pub struct PieceAt {
    /// Its index in the section's table.
    pub index: u64,
    /// The region whose data it is part of.
    pub region: crate::Region,
    /// Its offset in the plain page data's layout (`Run::file_off`).
    pub off: u64,
    /// Its length.
    pub len: u64,
}

/// Every piece of `meta`'s page data cut in pieces of `piece` bytes, in file
/// order: the cut the section's hashes follow (module comment).
pub fn pieces<'m>(meta: &'m crate::Meta<'_>, piece: u64) -> impl Iterator<Item = PieceAt> + 'm {
    let mut first = 0u64;
    meta.regions().flat_map(move |region| {
        let (s, e) = meta.data_range(&region);
        let (base, n) = (first, pieces_of(e - s, piece));
        first += n;
        (0..n).map(move |j| {
            let off = s + j * piece;
            PieceAt { index: base + j, region, off, len: piece.min(e - off) }
        })
    })
}

/// Hashes a stream of page data, fed in any slices, piece by piece: a piece ends
/// every `piece` bytes of a region's data and at each [`PieceHasher::region`].
/// Each finished piece is handed to `sink(index, hash)`. Hashes with
/// [`Algo::NEWEST`]: the section it fills is written with that version.
#[derive(Clone, Copy, Debug)]
pub struct PieceHasher {
    piece: u64,
    h: Digest,
    /// Bytes in the current piece.
    fill: u64,
    /// Index of the current piece.
    index: u64,
}

impl PieceHasher {
    /// Nothing fed yet.
    pub const fn new(piece: u64) -> PieceHasher {
        PieceHasher { piece, h: Algo::NEWEST.digest(), fill: 0, index: 0 }
    }

    /// A new region's data begins: finish the current piece, if any.
    pub fn region(&mut self, sink: &mut impl FnMut(u64, u64)) {
        if self.fill > 0 {
            sink(self.index, self.h.finish());
            self.index += 1;
            self.fill = 0;
            self.h = Algo::NEWEST.digest();
        }
    }

    /// Feed bytes of the current region.
    pub fn update(&mut self, mut b: &[u8], sink: &mut impl FnMut(u64, u64)) {
        while !b.is_empty() {
            let room = (self.piece - self.fill) as usize;
            let n = room.min(b.len());
            self.h.update(&b[..n]);
            self.fill += n as u64;
            b = &b[n..];
            if self.fill == self.piece {
                self.region(sink);
            }
        }
    }

    /// Feed `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: u64, sink: &mut impl FnMut(u64, u64)) {
        const Z: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(Z.len() as u64) as usize;
            self.update(&Z[..k], sink);
            n -= k as u64;
        }
    }

    /// The end of the data: finish the last piece. Returns the number of pieces.
    pub fn finish(&mut self, sink: &mut impl FnMut(u64, u64)) -> u64 {
        self.region(sink);
        self.index
    }
}
