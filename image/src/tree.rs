//! The TREE section ([`tag::TREE`](crate::section::tag::TREE)): a checkpoint of a
//! process tree (`ckpt --tree`, docs/trees.md) is one file holding one complete
//! image per process.
//!
//! ```text
//! offset 0           the root's image, exactly as a single process's (loader,
//!                    header, metadata with this section, page data); its header's
//!                    file_len is the root image's own end, E
//! E + member.offset  each other process's image: a complete checkpoint file of its
//!                    own (loader, header, metadata, page data), whose offsets are
//!                    relative to its own first byte
//! ...                members in table order, each padded to a page
//! ```
//!
//! The section is a [`Table`] of [`Member`]: record 0 is the root (the process
//! whose image carries the section; offset and length 0: "this image"), then every
//! other process, each after its parent (the loader forks them in that order).
//! A zombie (exited, not yet reaped by its parent) has no image: its record holds
//! its wait status, and the restart makes a child that exits with it at once.
//!
//! Version 2 adds, after the member table, a [`Table`] of [`SharedFd`]: the
//! descriptors of different processes that share one open file description of a
//! regular file (an inherited `> log`, a file opened before a fork). The restart
//! opens each such description once, before the processes are made, so they
//! share one file offset again (`loader/src/tree.rs`). Version 1 (no such table)
//! is still read.
//!
//! [`validate`] checks the table on its own (through `section::validate`);
//! [`check_against`] checks it against the root's process record (through
//! `Meta::parse`); [`end`] says how long the whole file must be, which `ckpt
//! verify` and the loader check (a member image cut off is a truncated image).

use crate::section::{Section, Table, tag};
use crate::{ImageError, Meta, PAGE_SIZE, Rd, Wr, page_up};

/// Most processes a tree image holds.
pub const MAX_MEMBERS: usize = 1024;

/// `Member::flags`: the root (record 0, and only it).
pub const ROOT: u32 = 1;
/// `Member::flags`: a zombie: no image, `status` is its wait status.
pub const ZOMBIE: u32 = 2;

record! {
    /// One process of the tree.
    pub struct Member [MEMBER_LEN = 48] {
        /// Its pid (in the pid namespace the tree ran in; kept at restart).
        pub pid: u32,
        /// Its parent's pid (a member's; for the root, its parent outside the tree,
        /// shown by `ckpt info` and not restored).
        pub ppid: u32,
        /// Its process group id.
        pub pgid: u32,
        /// Its session id.
        pub sid: u32,
        /// [`ROOT`], [`ZOMBIE`].
        pub flags: u32,
        /// A zombie's wait status (as `waitpid` reports it); 0 otherwise.
        pub status: u32,
        /// Offset of its image after the root image's end (page-aligned); 0 for the
        /// root and for zombies.
        pub offset: u64,
        /// Length of its image in bytes; 0 for the root and for zombies.
        pub len: u64,
        /// Zero.
        pub reserved: u64,
    }
}

/// The version this build writes (and the newest it reads).
pub const VERSION: u32 = 2;

/// Most shared descriptors a tree image records.
pub const MAX_SHARED: usize = 4096;

record! {
    /// A descriptor of one process of the tree whose open file description other
    /// processes of the tree hold too (version 2).
    pub struct SharedFd [SHARED_FD_LEN = 16] {
        /// Index of the process in the member table.
        pub member: u32,
        /// Its descriptor number.
        pub fd: u32,
        /// The description: records with the same group share one.
        pub group: u32,
        /// Zero.
        pub reserved: u32,
    }
}

/// The member table and the shared-descriptor table's bytes of a TREE section.
fn split<'a>(s: &Section<'a>) -> Result<(&'a [u8], &'a [u8]), ImageError> {
    let bad = ImageError::BadSection { tag: tag::TREE };
    match s.version {
        1 => Ok((s.data, &[0u8; 8])),
        2 => {
            let n = s.data.get(..8).map(|b| crate::Rd::new(b).u64()).ok_or(bad)?;
            let len = (n as usize).checked_mul(MEMBER_LEN).and_then(|l| l.checked_add(8)).ok_or(bad)?;
            if n > MAX_MEMBERS as u64 || len > s.data.len() {
                return Err(bad);
            }
            Ok(s.data.split_at(len))
        }
        _ => Err(bad),
    }
}

/// The member table of a TREE section.
pub fn members<'a>(s: &Section<'a>) -> Result<Table<'a, Member>, ImageError> {
    Table::parse(split(s)?.0, s.tag)
}

/// The shared-descriptor table of a TREE section (empty in version 1).
pub fn shared<'a>(s: &Section<'a>) -> Result<Table<'a, SharedFd>, ImageError> {
    Table::parse(split(s)?.1, s.tag)
}

/// Bytes a version-2 payload of `members` and `shared` records takes.
pub const fn len_for(members: usize, shared: usize) -> usize {
    Table::<Member>::len_for(members) + Table::<SharedFd>::len_for(shared)
}

/// Encode a version-2 payload into `out` (exactly `len_for` bytes).
pub fn encode(members: &[Member], shared: &[SharedFd], out: &mut [u8]) {
    let (a, b) = out.split_at_mut(Table::<Member>::len_for(members.len()));
    Table::encode(members, a);
    Table::encode(shared, b);
}

/// Check a TREE section on its own: a root first, unique pids, every other
/// member after its parent, member images page-aligned, in order and disjoint.
pub fn validate(s: &Section) -> Result<(), ImageError> {
    let bad = Err(ImageError::BadSection { tag: tag::TREE });
    let t = members(s)?;
    if t.is_empty() || t.len() > MAX_MEMBERS {
        return bad;
    }
    let mut next = 0u64;
    for (i, m) in t.iter().enumerate() {
        let known = |pid: u32, upto: usize| t.iter().take(upto).any(|p| p.pid == pid);
        let zombie = m.flags & ZOMBIE != 0;
        let ok = m.pid >= 1
            && m.pid <= i32::MAX as u32
            && m.reserved == 0
            && m.flags & !(ROOT | ZOMBIE) == 0
            && !known(m.pid, i)
            && if i == 0 {
                m.flags == ROOT && m.offset == 0 && m.len == 0 && m.status == 0
            } else if zombie {
                m.flags == ZOMBIE && m.offset == 0 && m.len == 0 && known(m.ppid, i)
            } else {
                m.flags == 0
                    && m.status == 0
                    && known(m.ppid, i)
                    && m.offset == next
                    && m.len >= PAGE_SIZE
                    && m.len <= 1 << 52
            };
        if !ok {
            return bad;
        }
        if !zombie && i != 0 {
            next = m.offset + page_up(m.len);
        }
    }
    // Shared descriptors: of live members, each (member, descriptor) once, each
    // group naming descriptors of at least two processes.
    let sh = shared(s)?;
    if sh.len() > MAX_SHARED {
        return bad;
    }
    for (i, d) in sh.iter().enumerate() {
        let live = t.at(d.member as usize).is_some_and(|m| m.flags & ZOMBIE == 0);
        let repeated = sh.iter().take(i).any(|e| (e.member, e.fd) == (d.member, d.fd));
        let others = sh.iter().any(|e| e.group == d.group && e.member != d.member);
        if !live || repeated || !others || d.reserved != 0 || d.fd > i32::MAX as u32 || d.group as usize >= sh.len() {
            return bad;
        }
    }
    Ok(())
}

/// The TREE section against the root's metadata: record 0 is the process whose
/// image this is.
pub fn check_against(m: &Meta) -> Result<(), ImageError> {
    let Some(s) = m.sections.get(tag::TREE) else { return Ok(()) };
    let t = members(&s)?;
    match t.at(0) {
        Some(root) if root.pid as i64 == m.process.pid as i64 => Ok(()),
        _ => Err(ImageError::BadSection { tag: tag::TREE }),
    }
}

/// The length the whole file must have: the root image's end plus every member
/// image (each padded to a page, the last one too).
pub fn end(m: &Meta) -> u64 {
    let root_end = m.header.file_len;
    let Some(t) = m.sections.get(tag::TREE).and_then(|s| members(&s).ok()) else { return root_end };
    t.iter().filter(|r| r.len != 0).map(|r| root_end + r.offset + page_up(r.len)).max().unwrap_or(root_end)
}

/// The file range `[start, end)` of member `r`'s image (empty for the root and
/// for zombies), given the root image's end.
pub fn range(root_end: u64, r: &Member) -> (u64, u64) {
    if r.len == 0 { (0, 0) } else { (root_end + r.offset, root_end + r.offset + r.len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ms: &[Member]) -> [u8; 8 + 4 * MEMBER_LEN] {
        let mut b = [0u8; 8 + 4 * MEMBER_LEN];
        Table::encode(ms, &mut b[..Table::<Member>::len_for(ms.len())]);
        b
    }

    fn check(ms: &[Member]) -> Result<(), ImageError> {
        let b = encode(ms);
        validate(&Section { tag: tag::TREE, version: 1, data: &b[..Table::<Member>::len_for(ms.len())] })
    }

    fn root() -> Member {
        Member { pid: 100, ppid: 1, pgid: 100, sid: 50, flags: ROOT, ..Default::default() }
    }

    #[test]
    fn a_root_a_child_a_zombie_and_a_grandchild() {
        let child = Member { pid: 101, ppid: 100, pgid: 100, sid: 50, offset: 0, len: 8192, ..Default::default() };
        let zombie =
            Member { pid: 102, ppid: 100, pgid: 100, sid: 50, flags: ZOMBIE, status: 7 << 8, ..Default::default() };
        let grand = Member { pid: 103, ppid: 101, pgid: 103, sid: 103, offset: 8192, len: 5000, ..Default::default() };
        assert_eq!(check(&[root(), child, zombie, grand]), Ok(()));
        assert_eq!(check(&[root()]), Ok(()));
    }

    #[test]
    fn forged_tables_are_refused() {
        let bad = Err(ImageError::BadSection { tag: tag::TREE });
        let child = Member { pid: 101, ppid: 100, pgid: 100, sid: 50, offset: 0, len: 8192, ..Default::default() };
        // No root, a root not first, two roots.
        assert_eq!(check(&[]), bad);
        assert_eq!(check(&[child, root()]), bad);
        assert_eq!(check(&[root(), Member { flags: ROOT, pid: 5, ..root() }]), bad);
        // A parent after its child, an unknown parent, a repeated pid.
        let grand = Member { pid: 103, ppid: 101, offset: 8192, ..child };
        assert_eq!(check(&[root(), grand, child]), bad);
        assert_eq!(check(&[root(), Member { ppid: 77, ..child }]), bad);
        assert_eq!(check(&[root(), child, Member { offset: 8192, ..child }]), bad);
        // Images out of order, overlapping, unaligned, empty; a zombie with an image.
        assert_eq!(check(&[root(), Member { offset: 4096, ..child }]), bad);
        assert_eq!(check(&[root(), child, Member { offset: 4096, ..grand }]), bad);
        assert_eq!(check(&[root(), Member { len: 0, ..child }]), bad);
        assert_eq!(check(&[root(), Member { flags: ZOMBIE, ..child }]), bad);
        // The root with an image range, unknown flags, reserved bits, pid 0.
        assert_eq!(check(&[Member { len: 4096, ..root() }]), bad);
        assert_eq!(check(&[root(), Member { flags: 8, ..child }]), bad);
        assert_eq!(check(&[root(), Member { reserved: 1, ..child }]), bad);
        assert_eq!(check(&[Member { pid: 0, ..root() }]), bad);
        // Another section version.
        let b = encode(&[root()]);
        let s = Section { tag: tag::TREE, version: 3, data: &b[..Table::<Member>::len_for(1)] };
        assert_eq!(validate(&s), bad);
    }

    fn check2(ms: &[Member], sh: &[SharedFd]) -> Result<(), ImageError> {
        let mut b = [0u8; 512];
        let n = len_for(ms.len(), sh.len());
        super::encode(ms, sh, &mut b[..n]);
        validate(&Section { tag: tag::TREE, version: 2, data: &b[..n] })
    }

    #[test]
    fn shared_descriptors_round_trip_and_forgeries_are_refused() {
        let bad = Err(ImageError::BadSection { tag: tag::TREE });
        let child = Member { pid: 101, ppid: 100, pgid: 100, sid: 50, offset: 0, len: 8192, ..Default::default() };
        let zombie =
            Member { pid: 102, ppid: 100, pgid: 100, sid: 50, flags: ZOMBIE, status: 7 << 8, ..Default::default() };
        let ms = [root(), child, zombie];
        let d = |member, fd, group| SharedFd { member, fd, group, reserved: 0 };
        let good = [d(0, 1, 0), d(1, 1, 0), d(0, 2, 1), d(1, 2, 1), d(1, 5, 1)];
        assert_eq!(check2(&ms, &good), Ok(()));
        assert_eq!(check2(&ms, &[]), Ok(()));
        let mut b = [0u8; 512];
        let n = len_for(ms.len(), good.len());
        super::encode(&ms, &good, &mut b[..n]);
        let s = Section { tag: tag::TREE, version: 2, data: &b[..n] };
        assert_eq!(members(&s).map(|t| t.len()), Ok(3));
        assert!(shared(&s).is_ok_and(|t| t.iter().eq(good.iter().copied())));
        // A group of one process, a zombie's or an unknown process's descriptor, a
        // repeated one, a group number out of range, reserved bits.
        assert_eq!(check2(&ms, &[d(0, 1, 0), d(0, 2, 0)]), bad);
        assert_eq!(check2(&ms, &[d(0, 1, 0), d(2, 1, 0)]), bad);
        assert_eq!(check2(&ms, &[d(0, 1, 0), d(3, 1, 0)]), bad);
        assert_eq!(check2(&ms, &[d(0, 1, 0), d(1, 1, 0), d(1, 1, 0)]), bad);
        assert_eq!(check2(&ms, &[d(0, 1, 5), d(1, 1, 5)]), bad);
        assert_eq!(check2(&ms, &[d(0, 1, 0), SharedFd { reserved: 1, ..d(1, 1, 0) }]), bad);
        // Cut short.
        assert_eq!(validate(&Section { tag: tag::TREE, version: 2, data: &b[..n - 1] }), bad);
        assert_eq!(validate(&Section { tag: tag::TREE, version: 2, data: &b[..20] }), bad);
    }
}
