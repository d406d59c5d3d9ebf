//! The runtime blob (`dist/lib/ckpt-runtime.blob`, x86_64 only), the runtime as
//! `ckpt hijack` writes it into a running process: cargo's static runtime, the
//! loader's mem.S and asm/x86_64/blob.S linked as a static PIE with
//! `linker-scripts/blob-x86_64.ld`, checked (two PT_LOADs at 0, code then data;
//! only RELATIVE relocations; the entry is `ckpt_hijack_start`) and flattened to
//! the format of `ckpt_image::blob`.

use std::fs;
use std::path::Path;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Object, ObjectSymbol};

use crate::{Result, root, run};

/// Build the blob from the runtime archive `archive` into `out`.
pub fn build(archive: &Path, out: &Path) -> Result<()> {
    let root = root();
    let dir = root.join("target").join("blob");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut objs = Vec::new();
    for f in ["blob", "mem"] {
        let o = dir.join(format!("{f}.o"));
        run(std::process::Command::new("cc")
            .args(["-c", "-o"])
            .arg(&o)
            .arg(root.join("asm/x86_64").join(format!("{f}.S"))))?;
        objs.push(o);
    }
    let elf_out = dir.join("blob.elf");
    let script = root.join("linker-scripts/blob-x86_64.ld");
    // A static PIE at 0 with no dynamic linker: weak undefined references become
    // null, every other reference resolves inside; -u roots --gc-sections.
    run(std::process::Command::new("ld")
        .args(["-m", "elf_x86_64", "-static", "-pie", "--no-dynamic-linker", "--gc-sections", "-z", "noexecstack"])
        .args(["--build-id=none", "-u", "ckpt_hijack_entry", "-T"])
        .arg(&script)
        .arg("-o")
        .arg(&elf_out)
        .args(&objs)
        .arg(archive))?;
    let data = fs::read(&elf_out).map_err(|e| format!("reading {}: {e}", elf_out.display()))?;
    let bytes = flatten(&data).map_err(|e| format!("runtime blob {}: {e}", elf_out.display()))?;
    let tmp = out.with_extension("blob.tmp");
    fs::write(&tmp, &bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| format!("renaming {}: {e}", out.display()))?;
    eprintln!("xtask: runtime blob (x86_64) {} bytes", bytes.len());
    Ok(())
}

fn flatten(data: &[u8]) -> Result<Vec<u8>> {
    let file = ElfFile64::<object::Endianness>::parse(data).map_err(|e| e.to_string())?;
    let endian = file.endian();
    let hdr = file.elf_header();
    if hdr.e_type(endian) != elf::ET_DYN {
        return Err("not a position-independent executable".into());
    }
    let phdrs = hdr.program_headers(endian, data).map_err(|e| e.to_string())?;
    if phdrs.iter().any(|p| p.p_type(endian) == elf::PT_INTERP) {
        return Err("has a PT_INTERP".into());
    }
    let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type(endian) == elf::PT_LOAD).collect();
    let [text, rw] = loads.as_slice() else { return Err("must have exactly two PT_LOADs (code, data)".into()) };
    if text.p_vaddr(endian) != 0 || text.p_offset(endian) != 0 || text.p_flags(endian) != elf::PF_R | elf::PF_X {
        return Err("the first PT_LOAD must be R X at offset 0 and address 0".into());
    }
    let exec_len = rw.p_vaddr(endian);
    if exec_len % 4096 != 0 || exec_len < text.p_memsz(endian) || rw.p_flags(endian) != elf::PF_R | elf::PF_W {
        return Err("the second PT_LOAD must be R W and start at a page after the first".into());
    }
    let file_len = rw.p_vaddr(endian) + rw.p_filesz(endian);
    let mem_len = (rw.p_vaddr(endian) + rw.p_memsz(endian)).next_multiple_of(4096);
    let mut mem = vec![0u8; file_len as usize];
    for p in [text, rw] {
        let (o, v, n) = (p.p_offset(endian) as usize, p.p_vaddr(endian) as usize, p.p_filesz(endian) as usize);
        mem[v..v + n].copy_from_slice(data.get(o..o + n).ok_or("a segment beyond the file")?);
    }
    let mut rels = Vec::new();
    for (off, r) in file.dynamic_relocations().into_iter().flatten() {
        if r.flags() != (object::RelocationFlags::Elf { r_type: elf::R_X86_64_RELATIVE }) {
            return Err(format!("a dynamic relocation other than RELATIVE at {off:#x} ({:?})", r.flags()));
        }
        rels.push((off, r.addend() as u64));
    }
    let entry = hdr.e_entry(endian);
    match file.symbols().find(|s| s.name() == Ok("ckpt_hijack_start")) {
        Some(s) if s.address() == entry => {}
        _ => return Err("the entry is not ckpt_hijack_start".into()),
    }
    Ok(ckpt_image::blob::encode(entry, exec_len, mem_len, &rels, &mem))
}
