//! The runtime blob: the checkpoint runtime as one position-independent piece
//! of memory, which `ckpt hijack` writes into a running process that has no
//! runtime (`target/dist/lib/ckpt-runtime.blob`, made by `cargo xtask build` from
//! the static runtime and `linker-scripts/blob-x86_64.ld`). Not part of any
//! image: the format between xtask, which writes it, and `ckpt`, which reads it.
//!
//! All numbers little-endian u64:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `CKPTBLOB` |
//! | 8 | entry: offset of the entry stub (`ckpt_hijack_start`) |
//! | 16 | exec_len: `[0, exec_len)` is code and constants (mapped R X), page aligned |
//! | 24 | mem_len: the whole blob in memory, page aligned (the rest R W) |
//! | 32 | nrel: relocations that follow |
//! | 40 | file_len: bytes of memory that follow the relocations (the rest is zero) |
//! | 48 | nrel pairs (offset, addend): the word at `base + offset` gets `base + addend` |
//! | 48 + 16 nrel | file_len bytes: memory `[0, file_len)` |

/// The first 8 bytes.
pub const MAGIC: [u8; 8] = *b"CKPTBLOB";
const HEAD: usize = 48;

/// A parsed blob, borrowing the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    /// Offset of the entry stub.
    pub entry: u64,
    /// Length of the code part (mapped R X), page aligned.
    pub exec_len: u64,
    /// Length of the whole mapping, page aligned.
    pub mem_len: u64,
    rels: &'a [u8],
    /// Memory from offset 0; the rest up to `mem_len` is zero.
    pub bytes: &'a [u8],
}

fn word(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

impl<'a> Blob<'a> {
    /// Read a blob; `Err` says what is wrong.
    pub fn parse(b: &'a [u8]) -> Result<Blob<'a>, &'static str> {
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err("not a ckpt runtime blob");
        }
        let w = |i: usize| word(b, 8 * i).ok_or("truncated header");
        let (entry, exec_len, mem_len, nrel, file_len) = (w(1)?, w(2)?, w(3)?, w(4)?, w(5)?);
        let rel_end = nrel.checked_mul(16).and_then(|n| n.checked_add(HEAD as u64)).ok_or("bad relocation count")?;
        let end = rel_end.checked_add(file_len).ok_or("bad length")?;
        if end != b.len() as u64 {
            return Err("length does not match its header");
        }
        if exec_len % 4096 != 0 || mem_len % 4096 != 0 || exec_len > mem_len || file_len > mem_len || entry >= exec_len
        {
            return Err("inconsistent layout");
        }
        let blob = Blob { entry, exec_len, mem_len, rels: &b[HEAD..rel_end as usize], bytes: &b[rel_end as usize..] };
        if blob.relocations().any(|(off, _)| off.checked_add(8).is_none_or(|e| e > file_len)) {
            return Err("a relocation outside the blob's bytes");
        }
        Ok(blob)
    }

    /// The relocations: (offset, addend).
    pub fn relocations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.rels.chunks_exact(16).filter_map(|c| Some((word(c, 0)?, word(c, 8)?)))
    }

    /// The memory for a mapping at `base`: the bytes with every relocation applied.
    #[cfg(feature = "std")]
    pub fn relocated(&self, base: u64) -> std::vec::Vec<u8> {
        let mut m = self.bytes.to_vec();
        for (off, addend) in self.relocations() {
            let o = off as usize;
            m[o..o + 8].copy_from_slice(&base.wrapping_add(addend).to_le_bytes());
        }
        m
    }
}

/// Write a blob (xtask): the header, `rels`, then `bytes`.
#[cfg(feature = "std")]
pub fn encode(entry: u64, exec_len: u64, mem_len: u64, rels: &[(u64, u64)], bytes: &[u8]) -> std::vec::Vec<u8> {
    let mut out = std::vec::Vec::with_capacity(HEAD + 16 * rels.len() + bytes.len());
    out.extend_from_slice(&MAGIC);
    for v in [entry, exec_len, mem_len, rels.len() as u64, bytes.len() as u64] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (o, a) in rels {
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
    }
    out.extend_from_slice(bytes);
    out
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_relocation() {
        let mut bytes = std::vec![0u8; 64];
        bytes[0] = 0xcc;
        let b = encode(0, 4096, 8192, &[(8, 0x40)], &bytes);
        let blob = Blob::parse(&b).unwrap();
        assert_eq!((blob.entry, blob.exec_len, blob.mem_len), (0, 4096, 8192));
        let m = blob.relocated(0x7000_0000);
        assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), 0x7000_0040);
        assert!(Blob::parse(&b[..b.len() - 1]).is_err());
        assert!(Blob::parse(&encode(0, 4096, 8192, &[(60, 0)], &bytes)).is_err());
        assert!(Blob::parse(&encode(5000, 4096, 8192, &[], &bytes)).is_err());
    }
}
