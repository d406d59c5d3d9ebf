//! What a program file is, to tell whether `LD_PRELOAD` can work for it (read
//! with the `object` crate).
//!
//! The dynamic loader only runs (and so only honours `LD_PRELOAD`) for programs
//! with a `PT_INTERP` program header. A static program would run without the
//! runtime and a checkpoint signal would simply kill or stop it, so we look
//! before we exec.

use std::fs::File;
use std::path::Path;

use object::elf::{ELFCLASS32, ELFCLASS64, ELFMAG, EM_386, ET_DYN, ET_EXEC, FileHeader32, FileHeader64, PT_INTERP};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endian, Endianness, Object, ObjectSection, ReadCache, ReadRef};

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

/// Classifies the program at `path`.
///
/// A file we may execute but not read (mode `--x`) cannot be inspected; it is
/// reported as [`Kind::Other`] so that we still try to run it. Only the headers
/// are read, however large the program.
pub fn classify(path: &Path) -> Kind {
    let Ok(file) = File::open(path) else {
        return Kind::Other;
    };
    let data = ReadCache::new(&file);
    if data.read_bytes_at(0, 2) == Ok(b"#!".as_slice()) {
        return Kind::Script;
    }
    let kind = match data.read_bytes_at(0, 5) {
        Ok([m @ .., c]) if *m == ELFMAG && *c == ELFCLASS64.0 => {
            executable::<FileHeader64<Endianness>>(&data, Class::Elf64)
        }
        Ok([m @ .., c]) if *m == ELFMAG && *c == ELFCLASS32.0 => {
            executable::<FileHeader32<Endianness>>(&data, Class::Elf32)
        }
        _ => None,
    };
    kind.unwrap_or(Kind::Other)
}

/// A little-endian executable (`ET_EXEC` or `ET_DYN`; a 32-bit one for i386):
/// dynamic if it has a `PT_INTERP`. `None` for anything else, malformed included.
fn executable<H: FileHeader<Endian = Endianness>>(data: &ReadCache<&File>, class: Class) -> Option<Kind> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    if !endian.is_little_endian() || (class == Class::Elf32 && header.e_machine(endian) != EM_386) {
        return None;
    }
    if !matches!(header.e_type(endian), ET_EXEC | ET_DYN) {
        return None;
    }
    // The count comes from section header 0 when it does not fit in e_phnum.
    let phdrs = header.program_headers(endian, data).ok()?;
    let has_interp = phdrs.iter().any(|ph| ph.p_type(endian) == PT_INTERP);
    Some(if has_interp { Kind::Dynamic(class) } else { Kind::Static(class) })
}

/// Name of the section the runtime carries (runtime/src/capi.rs).
const RUNTIME_SECTION: &str = ".ckpt_runtime";

/// Does the program at `path` have the checkpoint runtime linked in (libckpt.a)?
/// Section headers survive `strip`, unlike symbols.
pub fn has_runtime(path: &Path) -> bool {
    has_section(path, RUNTIME_SECTION)
}

/// Is the program at `path` built by Go (its `.go.buildinfo` section)?
pub fn is_go(path: &Path) -> bool {
    has_section(path, ".go.buildinfo")
}

fn has_section(path: &Path, name: &str) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let data = ReadCache::new(&file);
    object::File::parse(&data).is_ok_and(|f| f.sections().any(|s| s.name() == Ok(name)))
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
        b[..4].copy_from_slice(&ELFMAG);
        b[4] = ELFCLASS64.0;
        b[5] = ELFDATA2LSB;
        b[6] = 1; // EV_CURRENT
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
        b[..4].copy_from_slice(&ELFMAG);
        b[4] = ELFCLASS32.0;
        b[5] = ELFDATA2LSB;
        b[6] = 1; // EV_CURRENT
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

    const ELFDATA2LSB: u8 = 1;
    const PT_INTERP: u32 = 3;
    const ET_DYN: u16 = 3;
    const ET_EXEC: u16 = 2;
    const EM_386: u16 = 3;
    const EHDR64_SIZE: usize = 64;
    const EHDR32_SIZE: usize = 52;
    const PHDR64_SIZE: usize = 56;
    const PHDR32_SIZE: usize = 32;

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
