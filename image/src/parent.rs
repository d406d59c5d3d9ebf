//! The parent of an incremental image (section [`tag::PARENT`], image version 5).
//!
//! An incremental image keeps the full tables of a full image: every region, and
//! for every page worth saving either a run (its bytes are in this file) or an
//! inherited range (its bytes are unchanged since the parent image was taken, and
//! the parent, or one of its own ancestors, holds them at the same address). A
//! page in neither is zero, exactly as in a full image, so a page zeroed since the
//! parent (`MADV_DONTNEED`, `munmap` then `mmap`) never comes back from it.
//!
//! ```text
//! ParentHead { meta_hash, data_hash, file_len, seq, depth, name_len }
//! name                      the parent's file name, name_len bytes, zero-padded to 8
//! u64 count, Inherited…     address ranges whose bytes come from the parent
//! ```
//!
//! The parent is named by its file name (resolved in the directory of the image
//! being restarted) and by content: its header's `meta_hash` and `data_hash`
//! cover every byte of its metadata and page data, and `file_len` its length, so
//! a parent replaced by another image, damaged or cut is refused by name before
//! anything is restored. Inherited bytes are checked against the parent's own
//! DATA_HASHES pieces as they are read.
//!
//! [`check_against`] (from `Meta::parse`) checks that every inherited range lies in
//! one private anonymous, heap or stack region, is page-aligned, sorted, and
//! overlaps no run; that only a version 5 image has the section, and that it is not
//! compressed nor a tree.
//!
//! [`tag::PARENT`]: crate::section::tag::PARENT

use crate::section::{Section, Table, tag};
use crate::{ImageError, Meta, PAGE_SIZE, Rd, Wr, kind};

/// Longest parent file name (a file name, not a path: no `/`).
pub const NAME_MAX: usize = 255;

/// Longest chain an image may end (the loader keeps one descriptor and one
/// header per ancestor).
pub const MAX_DEPTH: u32 = 64;

record! {
    /// The head of the section: who the parent is.
    pub struct ParentHead [PARENT_HEAD_LEN = 40] {
        /// The parent header's `meta_hash`.
        pub meta_hash: u64,
        /// The parent header's `data_hash`.
        pub data_hash: u64,
        /// The parent's `file_len`.
        pub file_len: u64,
        /// The parent's sequence number (the number in its file name).
        pub seq: u64,
        /// Images in the chain above this one: 1 when the parent is a full image.
        pub depth: u32,
        /// Length of the parent's file name that follows.
        pub name_len: u32,
    }
}

record! {
    /// Pages `[addr, addr + len)` whose bytes come from the parent.
    pub struct Inherited [INHERITED_LEN = 16] {
        /// First address (page-aligned).
        pub addr: u64,
        /// Length in bytes (a non-zero page multiple).
        pub len: u64,
    }
}

/// A validated PARENT section.
#[derive(Clone, Copy, Debug)]
pub struct Parent<'a> {
    /// Who the parent is.
    pub head: ParentHead,
    /// Its file name.
    pub name: &'a [u8],
    /// The inherited ranges, sorted by address.
    pub inherited: Table<'a, Inherited>,
}

const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

impl<'a> Parent<'a> {
    /// Decode and check the payload on its own (not against the tables).
    pub fn parse(data: &'a [u8]) -> Result<Parent<'a>, ImageError> {
        let bad = ImageError::BadSection { tag: tag::PARENT };
        let head = ParentHead::decode(data).map_err(|_| bad)?;
        let n = head.name_len as usize;
        if n == 0 || n > NAME_MAX || head.depth == 0 || head.depth > MAX_DEPTH {
            return Err(bad);
        }
        let name = data.get(PARENT_HEAD_LEN..PARENT_HEAD_LEN + n).ok_or(bad)?;
        if name.iter().any(|&b| b == b'/' || b == 0) || name == b"." || name == b".." {
            return Err(bad);
        }
        let rest = data.get(PARENT_HEAD_LEN + pad8(n)..).ok_or(bad)?;
        let inherited: Table<Inherited> = Table::parse(rest, tag::PARENT)?;
        let mut prev = 0u64;
        for r in inherited.iter() {
            if !r.addr.is_multiple_of(PAGE_SIZE)
                || !r.len.is_multiple_of(PAGE_SIZE)
                || r.len == 0
                || r.addr < prev
                || r.addr.checked_add(r.len).is_none()
            {
                return Err(bad);
            }
            prev = r.addr + r.len;
        }
        Ok(Parent { head, name, inherited })
    }

    /// Payload bytes for a name of `name_len` bytes and `n` inherited ranges.
    pub const fn len_for(name_len: usize, n: usize) -> usize {
        PARENT_HEAD_LEN + pad8(name_len) + Table::<Inherited>::len_for(n)
    }

    /// Encode a payload into `out` (exactly `len_for(name.len(), ranges.len())`).
    pub fn encode(head: &ParentHead, name: &[u8], ranges: &[Inherited], out: &mut [u8]) {
        head.encode(out);
        let n = name.len();
        out[PARENT_HEAD_LEN..PARENT_HEAD_LEN + n].copy_from_slice(name);
        out[PARENT_HEAD_LEN + n..PARENT_HEAD_LEN + pad8(n)].fill(0);
        Table::encode(ranges, &mut out[PARENT_HEAD_LEN + pad8(n)..]);
    }

    /// Bytes inherited in all.
    pub fn inherited_len(&self) -> u64 {
        self.inherited.iter().map(|r| r.len).sum()
    }

    /// The index of the first inherited range that ends after `a`.
    pub fn first_after(&self, a: u64) -> usize {
        let (mut l, mut r) = (0usize, self.inherited.len());
        while l < r {
            let m = l + (r - l) / 2;
            match self.inherited.at(m) {
                Some(x) if x.addr + x.len <= a => l = m + 1,
                _ => r = m,
            }
        }
        l
    }
}

/// The section's validator (`section::validate`).
pub fn validate(s: &Section) -> Result<(), ImageError> {
    Parent::parse(s.data).map(drop)
}

/// The PARENT section against the rest of the metadata (see the module comment).
pub fn check_against(m: &Meta) -> Result<(), ImageError> {
    let bad = Err(ImageError::BadSection { tag: tag::PARENT });
    let Some(p) = m.parent() else {
        return Ok(());
    };
    if m.header.version < crate::INCREMENTAL_VERSION
        || m.sections.get(tag::COMPRESSION).is_some()
        || m.sections.get(tag::TREE).is_some()
    {
        return bad;
    }
    // Ranges and runs are both sorted by address (runs across regions too, as
    // regions are): one merged pass, the region of each range by binary search.
    let mut j = 0u32;
    for r in p.inherited.iter() {
        let Some(g) = m.region_at(r.addr) else { return bad };
        let end = r.addr + r.len;
        if end > g.end || !matches!(g.kind, kind::ANON | kind::HEAP | kind::STACK) {
            return bad;
        }
        while j < m.header.nruns && m.run(j).addr + m.run(j).len <= r.addr {
            j += 1;
        }
        if j < m.header.nruns && m.run(j).addr < end {
            return bad;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn payload(name: &[u8], depth: u32, ranges: &[Inherited]) -> std::vec::Vec<u8> {
        let head = ParentHead { meta_hash: 1, data_hash: 2, file_len: 3, seq: 4, depth, name_len: name.len() as u32 };
        let mut out = std::vec![0u8; Parent::len_for(name.len(), ranges.len())];
        Parent::encode(&head, name, ranges, &mut out);
        out
    }

    #[test]
    fn a_parent_round_trips_and_bad_ones_are_refused() {
        let r = [Inherited { addr: 0x1000, len: 0x2000 }, Inherited { addr: 0x8000, len: 0x1000 }];
        let b = payload(b"prog.ckpt.3", 2, &r);
        let p = Parent::parse(&b).unwrap();
        assert_eq!((p.name, p.head.seq, p.inherited.len(), p.inherited_len()), (&b"prog.ckpt.3"[..], 4, 2, 0x3000));
        assert_eq!(
            (p.first_after(0), p.first_after(0x2fff), p.first_after(0x3000), p.first_after(0x9000)),
            (0, 0, 1, 2)
        );
        let bad = ImageError::BadSection { tag: tag::PARENT };
        assert_eq!(Parent::parse(&payload(b"dir/prog", 2, &r)).err(), Some(bad));
        assert_eq!(Parent::parse(&payload(b"..", 2, &r)).err(), Some(bad));
        assert_eq!(Parent::parse(&payload(b"p", 0, &r)).err(), Some(bad));
        assert_eq!(Parent::parse(&payload(b"p", MAX_DEPTH + 1, &r)).err(), Some(bad));
        let unsorted = [r[1], r[0]];
        assert_eq!(Parent::parse(&payload(b"p", 1, &unsorted)).err(), Some(bad));
        let odd = [Inherited { addr: 0x1000, len: 0x800 }];
        assert_eq!(Parent::parse(&payload(b"p", 1, &odd)).err(), Some(bad));
        let b = payload(b"p", 1, &r);
        assert!(Parent::parse(&b[..b.len() - 1]).is_err());
    }
}
