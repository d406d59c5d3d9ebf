//! Parser for `/proc/self/maps` lines (see proc(5)), shared by the runtime (which
//! records the address space) and the loader (which clears its own before restoring).
//!
//! Pure byte parsing over a buffer the caller has read; no allocation, no syscalls.

/// One line of `/proc/self/maps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry<'a> {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PROT_*` bits from the `rwx` letters.
    pub prot: u32,
    /// `s` (shared) rather than `p` (private).
    pub shared: bool,
    /// File offset.
    pub offset: u64,
    /// Device major.
    pub dev_major: u32,
    /// Device minor.
    pub dev_minor: u32,
    /// Inode (0 for anonymous memory).
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[stack]`, `[vdso]`...), possibly empty;
    /// a deleted file ends in ` (deleted)`.
    pub name: &'a [u8],
}

impl MapEntry<'_> {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// True for an empty range (never produced by the kernel).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Whether this is one of the kernel's special mappings that are not memory
    /// of the program: `[vvar]`, `[vvar_vclock]`, `[vdso]`, `[vsyscall]`.
    pub fn is_kernel_special(&self) -> bool {
        matches!(self.name, b"[vvar]" | b"[vvar_vclock]" | b"[vdso]" | b"[vsyscall]")
    }
}

/// Iterator over the entries of a maps buffer; malformed lines are skipped.
pub struct Maps<'a> {
    rest: &'a [u8],
}

/// Iterate over the lines of `buf` (the contents of `/proc/self/maps`).
pub fn parse(buf: &[u8]) -> Maps<'_> {
    Maps { rest: buf }
}

impl<'a> Iterator for Maps<'a> {
    type Item = MapEntry<'a>;
    fn next(&mut self) -> Option<MapEntry<'a>> {
        while !self.rest.is_empty() {
            let n = self.rest.iter().position(|&b| b == b'\n').unwrap_or(self.rest.len());
            let text = &self.rest[..n];
            self.rest = if n < self.rest.len() { &self.rest[n + 1..] } else { &[] };
            if let Some(e) = line(text) {
                return Some(e);
            }
        }
        None
    }
}

/// Split off the next space-separated field.
fn field<'a>(s: &mut &'a [u8]) -> &'a [u8] {
    while let [b' ', rest @ ..] = *s {
        *s = rest;
    }
    let n = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    let (f, r) = s.split_at(n);
    *s = r;
    f
}

/// One line of /proc/PID/maps, or the header line of a mapping in smaps (None
/// for smaps' field lines and anything else).
pub fn line(text: &[u8]) -> Option<MapEntry<'_>> {
    let mut s = text;
    let range = field(&mut s);
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = crate::num::parse(&range[..dash], 16)?;
    let end = crate::num::parse(&range[dash + 1..], 16)?;
    let perms = field(&mut s);
    if perms.len() != 4 || end <= start {
        return None;
    }
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= 1;
    }
    if perms[1] == b'w' {
        prot |= 2;
    }
    if perms[2] == b'x' {
        prot |= 4;
    }
    let shared = perms[3] == b's';
    let offset = crate::num::parse(field(&mut s), 16)?;
    let dev = field(&mut s);
    let colon = dev.iter().position(|&b| b == b':')?;
    let dev_major = crate::num::parse(&dev[..colon], 16)? as u32;
    let dev_minor = crate::num::parse(&dev[colon + 1..], 16)? as u32;
    let inode = crate::num::parse(field(&mut s), 10)?;
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    Some(MapEntry { start, end, prot, shared, offset, dev_major, dev_minor, inode, name: s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical_lines() {
        let buf = b"55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 1234   /usr/bin/cat\n\
7ffc1a2b3000-7ffc1a2d4000 rw-p 00000000 00:00 0                          [stack]\n\
7f0000000000-7f0000001000 rw-s 00000000 00:01 99 /dev/zero (deleted)\n\
garbage\n\
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]";
        let v: [MapEntry; 4] = {
            let mut it = parse(buf);
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(v[0].start, 0x55d0c0a00000);
        assert_eq!(v[0].prot, 1);
        assert_eq!(v[0].inode, 1234);
        assert_eq!(v[0].name, b"/usr/bin/cat");
        assert_eq!(v[1].name, b"[stack]");
        assert_eq!(v[1].prot, 3);
        assert!(v[2].shared);
        assert_eq!(v[2].name, b"/dev/zero (deleted)");
        assert!(v[3].is_kernel_special());
        assert_eq!(v[3].prot, 4);
    }
}
