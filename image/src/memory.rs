//! Two sections about memory that the region table cannot say:
//!
//! - [`tag::GUARDS`](crate::section::tag::GUARDS): guard pages
//!   (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13). They live inside a region (the
//!   kernel marks page-table entries, not the mapping), every access to them
//!   faults, and they hold no data: the runtime never reads them, and the loader
//!   installs them again after the region is filled. A [`Table`] of [`Guard`].
//! - [`tag::SHARED`](crate::section::tag::SHARED): shared memory objects (a memfd,
//!   a `MAP_SHARED|MAP_ANONYMOUS` region and its `mremap` aliases, a POSIX shm
//!   file...) that more than one region maps. Each such region is a
//!   [`SharedView`]: its object (numbered 0, 1, ... in order of first appearance)
//!   and its offset in it. The loader creates one memfd per object and maps every
//!   view from it, so a write through one view shows in the others again. A
//!   [`Table`] of [`SharedView`], in region order.
//!
//! Each record is checked on its own by [`validate`] (through
//! `section::validate`), and against the region table by [`check_against`]
//! (through `Meta::parse`): the loader refuses an image whose guards or views do
//! not lie in saved regions before it touches its address space.

use crate::section::{Section, Table, tag};
use crate::{ImageError, Meta, PAGE_SIZE, Rd, Wr, kind};

record! {
    /// A range of guard pages, `[start, end)`, page-aligned, inside one region.
    pub struct Guard [GUARD_LEN = 16] {
        /// First address.
        pub start: u64,
        /// One past the last address.
        pub end: u64,
    }
}

record! {
    /// A region that maps a shared memory object other regions map too.
    pub struct SharedView [SHARED_VIEW_LEN = 40] {
        /// Index of the region in the region table (of kind SHARED).
        pub region: u32,
        /// The object: 0, 1, ... numbered in order of first appearance.
        pub object: u32,
        /// Offset of the region's first byte in the object (page-aligned).
        pub offset: u64,
        /// The object's device (major << 32 | minor), as /proc/PID/maps showed it.
        pub dev: u64,
        /// The object's inode, as /proc/PID/maps showed it.
        pub inode: u64,
        /// Zero.
        pub reserved: u64,
    }
}

/// The guard table of a GUARDS section.
pub fn guards<'a>(s: &Section<'a>) -> Result<Table<'a, Guard>, ImageError> {
    Table::parse(s.data, s.tag)
}

/// The view table of a SHARED section.
pub fn views<'a>(s: &Section<'a>) -> Result<Table<'a, SharedView>, ImageError> {
    Table::parse(s.data, s.tag)
}

/// The section's own checks: every record well-formed, in order.
pub fn validate(s: &Section) -> Result<(), ImageError> {
    let bad = ImageError::BadSection { tag: s.tag };
    if s.version != 1 {
        return Err(bad);
    }
    match s.tag {
        tag::GUARDS => {
            let t = Table::<Guard>::parse(s.data, s.tag)?;
            let mut prev = 0u64;
            for g in t.iter() {
                if g.start % PAGE_SIZE != 0
                    || g.end % PAGE_SIZE != 0
                    || g.start < prev.max(PAGE_SIZE)
                    || g.end <= g.start
                {
                    return Err(bad);
                }
                prev = g.end;
            }
            Ok(())
        }
        tag::SHARED => {
            let t = Table::<SharedView>::parse(s.data, s.tag)?;
            let (mut objects, mut next_region) = (0u32, 0u32);
            for v in t.iter() {
                if v.region < next_region || v.object > objects || v.offset % PAGE_SIZE != 0 || v.reserved != 0 {
                    return Err(bad);
                }
                if v.object == objects {
                    objects += 1;
                }
                next_region = v.region + 1;
                if next_region == 0 {
                    return Err(bad);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Number of objects of a validated SHARED table.
pub fn object_count(t: &Table<SharedView>) -> u32 {
    t.iter().map(|v| v.object + 1).max().unwrap_or(0)
}

/// The checks against the region table: every guard range inside one region,
/// every view a SHARED region whose end in the object does not overflow.
pub fn check_against(m: &Meta) -> Result<(), ImageError> {
    if let Some(s) = m.sections.get(tag::GUARDS) {
        let n = m.nregions();
        let mut i = 0u32;
        for g in guards(&s)?.iter() {
            while i < n && m.region(i).end <= g.start {
                i += 1;
            }
            if i == n || m.region(i).start > g.start || m.region(i).end < g.end {
                return Err(ImageError::BadSection { tag: s.tag });
            }
        }
    }
    if let Some(s) = m.sections.get(tag::SHARED) {
        for v in views(&s)?.iter() {
            let ok = v.region < m.nregions() && {
                let r = m.region(v.region);
                r.kind == kind::SHARED && v.offset.checked_add(r.end - r.start).is_some_and(|e| e <= 1 << 52)
            };
            if !ok {
                return Err(ImageError::BadSection { tag: s.tag });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    fn table<R: crate::section::Record>(recs: &[R]) -> std::vec::Vec<u8> {
        let mut b = vec![0u8; Table::<R>::len_for(recs.len())];
        Table::encode(recs, &mut b);
        b
    }

    #[test]
    fn guards_must_be_aligned_sorted_and_disjoint() {
        let ok = [Guard { start: 0x10000, end: 0x12000 }, Guard { start: 0x12000, end: 0x13000 }];
        let b = table(&ok);
        assert_eq!(validate(&Section { tag: tag::GUARDS, version: 1, data: &b }), Ok(()));
        assert_eq!(guards(&Section { tag: tag::GUARDS, version: 1, data: &b }).unwrap().at(1), Some(ok[1]));
        for bad in [
            [Guard { start: 0x10001, end: 0x12000 }, ok[1]],
            [Guard { start: 0x10000, end: 0x10000 }, ok[1]],
            [ok[1], ok[0]],
            [Guard { start: 0, end: 0x1000 }, ok[1]],
        ] {
            let b = table(&bad);
            let s = Section { tag: tag::GUARDS, version: 1, data: &b };
            assert_eq!(validate(&s), Err(ImageError::BadSection { tag: tag::GUARDS }), "{bad:?}");
        }
        assert!(validate(&Section { tag: tag::GUARDS, version: 2, data: &b }).is_err());
    }

    #[test]
    fn views_are_in_region_order_and_objects_numbered_by_first_appearance() {
        let v = |region, object| SharedView { region, object, offset: 0, dev: 1, inode: 2, reserved: 0 };
        let ok = [v(1, 0), v(3, 1), v(4, 0), v(7, 1)];
        let b = table(&ok);
        let s = Section { tag: tag::SHARED, version: 1, data: &b };
        assert_eq!(validate(&s), Ok(()));
        assert_eq!(object_count(&views(&s).unwrap()), 2);
        for bad in [[v(1, 1), v(3, 0)], [v(3, 0), v(1, 0)], [v(1, 0), v(1, 0)], [v(1, 0), v(2, 2)]] {
            let b = table(&bad);
            let s = Section { tag: tag::SHARED, version: 1, data: &b };
            assert!(validate(&s).is_err(), "{bad:?}");
        }
        let mut odd = v(1, 0);
        odd.offset = 12;
        let b = table(&[odd]);
        assert!(validate(&Section { tag: tag::SHARED, version: 1, data: &b }).is_err());
    }
}
