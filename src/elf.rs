//! Just enough ELF reading to tell whether `LD_PRELOAD` can work for a program.
//!
//! The dynamic loader only runs (and so only honours `LD_PRELOAD`) for programs
//! with a `PT_INTERP` program header. A static program would run without the
//! runtime and a checkpoint signal would simply kill or stop it, so we look
//! before we exec.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What the first bytes of a program file say about it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    /// `#!` script: the interpreter is what gets the preload.
    Script,
    /// Little-endian executable with an interpreter: preloading works (with the
    /// runtime of its class).
    Dynamic(Class),
    /// Executable without `PT_INTERP` (static or static-pie).
    Static(Class),
    /// Anything else (other ELF types, big-endian, malformed, other machines,
    /// unknown formats): the kernel decides, and a failure is reported from exec.
    Other,
}

/// The ELF class, which decides the runtime: `lib/` (x86_64) or `lib32/` (i386).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Class {
    /// ELFCLASS64 (x86_64).
    Elf64,
    /// ELFCLASS32 for EM_386 (i386).
    Elf32,
}

const ELFMAG: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
/// `e_phnum` value meaning "the real count is in section header 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;
/// `e_machine` of i386.
const EM_386: u16 = 3;
/// Size of `Elf64_Ehdr`.
const EHDR64_SIZE: usize = 64;
/// Size of `Elf32_Ehdr`.
const EHDR32_SIZE: usize = 52;
/// Size of `Elf64_Phdr`; a smaller `e_phentsize` is malformed.
const PHDR64_SIZE: usize = 56;
/// Size of `Elf32_Phdr`.
const PHDR32_SIZE: usize = 32;
/// Offset of `sh_info` in `Elf64_Shdr`.
const SH_INFO_OFFSET64: u64 = 44;
/// Offset of `sh_info` in `Elf32_Shdr`.
const SH_INFO_OFFSET32: u64 = 28;

/// Classifies the program at `path`.
///
/// A file we may execute but not read (mode `--x`) cannot be inspected; it is
/// reported as [`Kind::Other`] so that we still try to run it.
pub fn classify(path: &Path) -> Kind {
    let Ok(file) = File::open(path) else {
        return Kind::Other;
    };
    classify_file(&file).unwrap_or(Kind::Other)
}

fn classify_file(file: &File) -> io::Result<Kind> {
    let mut ehdr = Vec::with_capacity(EHDR64_SIZE);
    file.take(EHDR64_SIZE as u64).read_to_end(&mut ehdr)?;

    if ehdr.starts_with(b"#!") {
        return Ok(Kind::Script);
    }
    if !ehdr.starts_with(ELFMAG) || ehdr.len() < 6 {
        return Ok(Kind::Other);
    }
    // The two headers are laid out differently past e_ident (addresses and
    // offsets are 4 or 8 bytes): (class, e_phoff, e_shoff, e_phentsize, e_phnum).
    let (class, phoff, shoff, phentsize, phnum_raw) = match (ehdr[4], ehdr[5]) {
        (ELFCLASS64, ELFDATA2LSB) if ehdr.len() == EHDR64_SIZE => {
            (Class::Elf64, u64_at(&ehdr, 32), u64_at(&ehdr, 40), u16_at(&ehdr, 54), u16_at(&ehdr, 56))
        }
        (ELFCLASS32, ELFDATA2LSB) if ehdr.len() >= EHDR32_SIZE && u16_at(&ehdr, 18) == EM_386 => (
            Class::Elf32,
            u64::from(u32_at(&ehdr, 28)),
            u64::from(u32_at(&ehdr, 32)),
            u16_at(&ehdr, 42),
            u16_at(&ehdr, 44),
        ),
        _ => return Ok(Kind::Other),
    };

    let e_type = u16_at(&ehdr, 16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Ok(Kind::Other);
    }
    let phentsize = usize::from(phentsize);
    let phnum = match phnum_raw {
        PN_XNUM => section0_info(file, shoff, class)?,
        n => usize::from(n),
    };
    let min_phentsize = if class == Class::Elf64 { PHDR64_SIZE } else { PHDR32_SIZE };
    if phentsize < min_phentsize {
        return Ok(Kind::Other);
    }

    let mut table = vec![0; phentsize * phnum];
    file.read_exact_at(&mut table, phoff)?;
    let has_interp = table.chunks_exact(phentsize).any(|phdr| u32_at(phdr, 0) == PT_INTERP);
    Ok(if has_interp { Kind::Dynamic(class) } else { Kind::Static(class) })
}

/// Name of the section the runtime carries (runtime/src/capi.rs).
const RUNTIME_SECTION: &str = ".ckpt_runtime";

/// Does the program at `path` have the checkpoint runtime linked in (libckpt.a)?
/// Section headers survive `strip`, unlike symbols.
pub fn has_runtime(path: &Path) -> bool {
    use object::{Object, ObjectSection};
    let Ok(data) = std::fs::read(path) else { return false };
    object::File::parse(&*data).is_ok_and(|f| f.sections().any(|s| s.name() == Ok(RUNTIME_SECTION)))
}

/// The ELF executable at the start of a checkpoint file: its `e_machine` and the
/// end of its furthest `PT_LOAD` contents, which is where the restart loader ends
/// (the image header follows at the next page, as the loader itself computes).
#[derive(Debug, PartialEq, Eq)]
pub struct Loader {
    pub machine: u16,
    pub file_end: u64,
    /// An ordinary program, not a restart loader: it has a `PT_INTERP` (the
    /// loader is static) or section headers (the loader is built without any).
    pub ordinary: bool,
}

/// Reads the loader's ELF header and program headers (32- or 64-bit,
/// little-endian); `None` if the file does not start with one, an
/// `UnexpectedEof` error if it ends inside them.
pub fn loader(file: &File) -> io::Result<Option<Loader>> {
    let mut ehdr = Vec::with_capacity(EHDR64_SIZE);
    file.read_at_most(&mut ehdr, EHDR64_SIZE)?;
    if !ehdr.starts_with(ELFMAG) {
        return Ok(None);
    }
    let need = if ehdr.get(4) == Some(&ELFCLASS32) { 52 } else { EHDR64_SIZE };
    if ehdr.len() < need {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if ehdr[5] != ELFDATA2LSB {
        return Ok(None);
    }
    // (phoff, phentsize, phnum, p_offset at, p_filesz at, field size)
    let (phoff, phentsize, phnum, off_at, size_at, wide) = match ehdr[4] {
        ELFCLASS64 if ehdr.len() == EHDR64_SIZE => {
            (u64_at(&ehdr, 32), usize::from(u16_at(&ehdr, 54)), usize::from(u16_at(&ehdr, 56)), 8, 32, true)
        }
        ELFCLASS32 => {
            (u64::from(u32_at(&ehdr, 28)), usize::from(u16_at(&ehdr, 42)), usize::from(u16_at(&ehdr, 44)), 4, 16, false)
        }
        _ => return Ok(None),
    };
    let entry_len = if wide { PHDR64_SIZE } else { 32 };
    if phentsize < entry_len || phnum == 0 || phnum == usize::from(PN_XNUM) {
        return Ok(None);
    }
    let mut table = vec![0; phentsize * phnum];
    file.read_exact_at(&mut table, phoff)?;
    let field = |ph: &[u8], at: usize| {
        if wide { u64_at(ph, at) } else { u64::from(u32_at(ph, at)) }
    };
    let file_end = table
        .chunks_exact(phentsize)
        .filter(|ph| u32_at(ph, 0) == PT_LOAD)
        .map(|ph| field(ph, off_at).saturating_add(field(ph, size_at)))
        .max();
    let shoff = if wide { u64_at(&ehdr, 40) } else { u64::from(u32_at(&ehdr, 32)) };
    let ordinary = shoff != 0 || table.chunks_exact(phentsize).any(|ph| u32_at(ph, 0) == PT_INTERP);
    Ok(file_end.map(|file_end| Loader { machine: u16_at(&ehdr, 18), file_end, ordinary }))
}

/// Reading the first bytes of a file, from offset 0 whatever its position.
trait ReadAtMost {
    fn read_at_most(&self, buf: &mut Vec<u8>, n: usize) -> io::Result<()>;
}

impl ReadAtMost for File {
    fn read_at_most(&self, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
        buf.resize(n, 0);
        let mut got = 0;
        while got < n {
            match self.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(())
    }
}

/// `sh_info` of section header 0, where the program header count lives when it
/// does not fit in `e_phnum`.
fn section0_info(file: &File, shoff: u64, class: Class) -> io::Result<usize> {
    let mut buf = [0; 4];
    let at = if class == Class::Elf64 { SH_INFO_OFFSET64 } else { SH_INFO_OFFSET32 };
    let offset = shoff.checked_add(at).ok_or(io::ErrorKind::InvalidData)?;
    file.read_exact_at(&mut buf, offset)?;
    usize::try_from(u32::from_le_bytes(buf)).map_err(|_| io::ErrorKind::InvalidData.into())
}

// The callers only pass offsets inside buffers whose length they checked.
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_bytes(name: &str, bytes: &[u8]) -> Kind {
        let path = std::env::temp_dir().join(format!("ckpt-elf-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        let kind = classify(&path);
        let _ = std::fs::remove_file(&path);
        kind
    }

    /// A 64-bit header followed by program headers of the given types.
    fn elf64(e_type: u16, phdr_types: &[u32]) -> Vec<u8> {
        let mut b = vec![0; EHDR64_SIZE];
        b[..4].copy_from_slice(ELFMAG);
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR64_SIZE as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR64_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phdr_types.len() as u16).to_le_bytes());
        for &p_type in phdr_types {
            let mut phdr = vec![0; PHDR64_SIZE];
            phdr[..4].copy_from_slice(&p_type.to_le_bytes());
            b.extend(phdr);
        }
        b
    }

    /// A 32-bit header followed by program headers of the given types.
    fn elf32(e_type: u16, machine: u16, phdr_types: &[u32]) -> Vec<u8> {
        let mut b = vec![0; EHDR32_SIZE];
        b[..4].copy_from_slice(ELFMAG);
        b[4] = ELFCLASS32;
        b[5] = ELFDATA2LSB;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[28..32].copy_from_slice(&(EHDR32_SIZE as u32).to_le_bytes());
        b[42..44].copy_from_slice(&(PHDR32_SIZE as u16).to_le_bytes());
        b[44..46].copy_from_slice(&(phdr_types.len() as u16).to_le_bytes());
        for &p_type in phdr_types {
            let mut phdr = vec![0; PHDR32_SIZE];
            phdr[..4].copy_from_slice(&p_type.to_le_bytes());
            b.extend(phdr);
        }
        b
    }

    #[test]
    fn kinds() {
        assert_eq!(classify_bytes("dyn", &elf64(ET_DYN, &[6, PT_INTERP, 1])), Kind::Dynamic(Class::Elf64));
        assert_eq!(classify_bytes("exec", &elf64(ET_EXEC, &[1, 1])), Kind::Static(Class::Elf64));
        assert_eq!(classify_bytes("dyn32", &elf32(ET_DYN, EM_386, &[6, PT_INTERP, 1])), Kind::Dynamic(Class::Elf32));
        assert_eq!(classify_bytes("exec32", &elf32(ET_EXEC, EM_386, &[1, 1])), Kind::Static(Class::Elf32));
        // 32-bit ARM is not ours to judge.
        assert_eq!(classify_bytes("arm32", &elf32(ET_EXEC, 40, &[1])), Kind::Other);
        assert_eq!(classify_bytes("rel", &elf64(1, &[])), Kind::Other);
        assert_eq!(classify_bytes("script", b"#!/bin/sh\n"), Kind::Script);
        assert_eq!(classify_bytes("text", b"hello"), Kind::Other);
        assert_eq!(classify_bytes("empty", b""), Kind::Other);
        assert_eq!(classify_bytes("elf32-short", b"\x7fELF\x01\x01\x01"), Kind::Other);
    }

    #[test]
    fn truncated_program_headers() {
        let mut b = elf64(ET_DYN, &[PT_INTERP]);
        b.truncate(EHDR64_SIZE + 10);
        assert_eq!(classify_bytes("trunc", &b), Kind::Other);
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        let exe = std::env::current_exe().expect("current_exe");
        assert_eq!(classify(&exe), Kind::Dynamic(Class::Elf64));
    }
}
