//! Where the restart loader ends and the image begins: the one definition, used
//! by the `ckpt` command to find the header of a file it is given, by the runtime
//! that writes the file, and checked by `cargo xtask build` on the loader it
//! splices.
//!
//! A checkpoint file starts with the loader, a little-endian ELF executable
//! (ELFCLASS64 or ELFCLASS32); its *file end* is the end of its furthest
//! `PT_LOAD` contents (`p_offset + p_filesz`), which is also the length of the
//! bytes the build splices and the runtime writes. The image header follows at
//! the next page boundary, [`image_offset`]. The loader finds the same place
//! from its own mapped program headers.

use crate::page_up;

/// What the start of a checkpoint file says about its restart loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderElf {
    /// `e_machine` (62 x86_64, 3 i386).
    pub machine: u16,
    /// End of the furthest `PT_LOAD` contents in the file.
    pub file_end: u64,
    /// An ordinary program, not a restart loader: it has a `PT_INTERP` (the
    /// loader is static) or section headers (the loader is built without any).
    /// `ckpt verify` tells such a file from a truncated image with it.
    pub ordinary: bool,
}

/// Why the start of a file is not a restart loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoaderError {
    /// Not a little-endian ELF executable with loadable contents.
    NotLoader,
    /// An ELF file whose headers need `need` bytes, more than were given.
    Truncated {
        /// Bytes the ELF header and program headers need.
        need: u64,
    },
}

/// The image header's offset after a loader whose file contents end at
/// `file_end`.
pub const fn image_offset(file_end: u64) -> u64 {
    page_up(file_end)
}

/// Size of `Elf64_Ehdr` and `Elf32_Ehdr`.
const EHDR64: usize = 64;
const EHDR32: usize = 52;
/// Size of `Elf64_Phdr` and `Elf32_Phdr`.
const PHDR64: usize = 56;
const PHDR32: usize = 32;
/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_INTERP`.
const PT_INTERP: u32 = 3;
/// `e_phnum` meaning "the count is in section header 0": never in a loader.
const PN_XNUM: u16 = 0xffff;

/// Read the ELF header and program headers at the start of `file` (its first
/// bytes; give at least 64, or the whole file if shorter, and more if
/// [`LoaderError::Truncated`] asks for it).
pub fn parse(file: &[u8]) -> Result<LoaderElf, LoaderError> {
    if file.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(LoaderError::NotLoader);
    }
    let wide = match file.get(4) {
        Some(2) => true,
        Some(1) => false,
        Some(_) => return Err(LoaderError::NotLoader),
        None => return Err(LoaderError::Truncated { need: EHDR64 as u64 }),
    };
    let ehdr = if wide { EHDR64 } else { EHDR32 };
    if file.len() < ehdr {
        return Err(LoaderError::Truncated { need: ehdr as u64 });
    }
    if file[5] != 1 {
        return Err(LoaderError::NotLoader);
    }
    // (e_phoff, e_phentsize, e_phnum), then p_offset and p_filesz in a Phdr.
    let (phoff, phentsize, phnum) = if wide {
        (crate::rd64(file, 32), u16_at(file, 54), u16_at(file, 56))
    } else {
        (u64::from(crate::rd32(file, 28)), u16_at(file, 42), u16_at(file, 44))
    };
    let (entry, off_at, size_at) = if wide { (PHDR64, 8, 32) } else { (PHDR32, 4, 16) };
    let phentsize = usize::from(phentsize);
    if phentsize < entry || phnum == 0 || phnum == PN_XNUM {
        return Err(LoaderError::NotLoader);
    }
    let table_len = (phentsize * usize::from(phnum)) as u64;
    let need = phoff.checked_add(table_len).ok_or(LoaderError::NotLoader)?;
    let Some(table) = usize::try_from(phoff).ok().zip(usize::try_from(need).ok()).and_then(|(a, b)| file.get(a..b))
    else {
        return Err(LoaderError::Truncated { need });
    };
    let field = |ph: &[u8], at: usize| if wide { crate::rd64(ph, at) } else { u64::from(crate::rd32(ph, at)) };
    let shoff = if wide { crate::rd64(file, 40) } else { u64::from(crate::rd32(file, 32)) };
    let ordinary = shoff != 0 || table.chunks_exact(phentsize).any(|ph| crate::rd32(ph, 0) == PT_INTERP);
    table
        .chunks_exact(phentsize)
        .filter(|ph| crate::rd32(ph, 0) == PT_LOAD)
        .map(|ph| field(ph, off_at).saturating_add(field(ph, size_at)))
        .max()
        .map(|file_end| LoaderElf { machine: u16_at(file, 18), file_end, ordinary })
        .ok_or(LoaderError::NotLoader)
}

// The callers pass offsets inside slices whose length they checked.
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header and program headers `(p_type, p_offset, p_filesz)`.
    fn elf(wide: bool, machine: u16, phdrs: &[(u32, u64, u64)]) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if wide { 2 } else { 1 };
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        let (ehdr, entry) = if wide { (EHDR64, PHDR64) } else { (EHDR32, PHDR32) };
        if wide {
            b[32..40].copy_from_slice(&(ehdr as u64).to_le_bytes());
            b[54..56].copy_from_slice(&(entry as u16).to_le_bytes());
            b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        } else {
            b[28..32].copy_from_slice(&(ehdr as u32).to_le_bytes());
            b[42..44].copy_from_slice(&(entry as u16).to_le_bytes());
            b[44..46].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        }
        for (i, &(t, off, size)) in phdrs.iter().enumerate() {
            let ph = &mut b[ehdr + i * entry..];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            if wide {
                ph[8..16].copy_from_slice(&off.to_le_bytes());
                ph[32..40].copy_from_slice(&size.to_le_bytes());
            } else {
                ph[4..8].copy_from_slice(&(off as u32).to_le_bytes());
                ph[16..20].copy_from_slice(&(size as u32).to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn furthest_load_of_either_class() {
        let b = elf(true, 62, &[(6, 64, 112), (PT_LOAD, 0, 20000), (PT_LOAD, 24576, 100), (4, 90000, 8)]);
        assert_eq!(parse(&b), Ok(LoaderElf { machine: 62, file_end: 24676, ordinary: false }));
        assert_eq!(image_offset(24676), 28672);
        let b = elf(false, 3, &[(PT_LOAD, 0, 12345)]);
        assert_eq!(parse(&b), Ok(LoaderElf { machine: 3, file_end: 12345, ordinary: false }));
        assert_eq!(image_offset(12288), 12288);
        // An interpreter, or section headers: an ordinary program.
        let b = elf(true, 62, &[(PT_INTERP, 680, 28), (PT_LOAD, 0, 20000)]);
        assert!(parse(&b).unwrap().ordinary);
        let mut b = elf(true, 62, &[(PT_LOAD, 0, 20000)]);
        b[40..48].copy_from_slice(&150000u64.to_le_bytes());
        assert!(parse(&b).unwrap().ordinary);
    }

    #[test]
    fn refused_or_truncated() {
        assert_eq!(parse(b""), Err(LoaderError::NotLoader));
        assert_eq!(parse(b"#!/bin/sh\n"), Err(LoaderError::NotLoader));
        assert_eq!(parse(b"\x7fELF"), Err(LoaderError::Truncated { need: 64 }));
        assert_eq!(parse(b"\x7fELF\x02\x01"), Err(LoaderError::Truncated { need: 64 }));
        assert_eq!(parse(b"\x7fELF\x01\x01"), Err(LoaderError::Truncated { need: 52 }));
        assert_eq!(parse(b"\x7fELF\x03\x01"), Err(LoaderError::NotLoader));
        let b = elf(true, 62, &[(PT_LOAD, 0, 100), (PT_LOAD, 0, 200)]);
        assert_eq!(parse(&b[..100]), Err(LoaderError::Truncated { need: 64 + 2 * 56 }));
        let mut big = b;
        big[5] = 2;
        assert_eq!(parse(&big), Err(LoaderError::NotLoader), "big-endian");
        assert_eq!(parse(&elf(true, 62, &[(6, 0, 1)])), Err(LoaderError::NotLoader), "no PT_LOAD");
        assert_eq!(parse(&elf(true, 62, &[])), Err(LoaderError::NotLoader), "no program headers");
        let mut short = elf(true, 62, &[(PT_LOAD, 0, 1)]);
        short[54] = 40;
        assert_eq!(parse(&short), Err(LoaderError::NotLoader), "e_phentsize too small");
        let mut far = elf(true, 62, &[(PT_LOAD, 0, 1)]);
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&far), Err(LoaderError::NotLoader), "e_phoff overflows");
    }
}
