//! `cargo xtask build`: the stages, in order.
//!
//! 1. The loader (`ckpt-loader`), a static PIE linked with
//!    `linker-scripts/loader-<arch>.ld`.
//! 2. Checked with `object`: one loadable segment that starts at file offset 0
//!    (with the ELF header in it), no PT_INTERP, `_start` is the entry, only
//!    RELATIVE relocations (which the loader applies to itself), and within the
//!    size budget. Then spliced: cut to exactly its loaded bytes (section headers
//!    and debug info dropped), so the image can start at the next page boundary —
//!    the rule both the runtime (writing) and the loader (reading) follow.
//! 3. The runtime, which embeds the spliced loader via `CKPT_LOADER_PATH`.
//! 4. The `ckpt` command.
//! 5. `target/dist/{bin,lib,include}`. `libckpt.a` is not the archive cargo makes
//!    but one prelinked relocatable object (see `prelink_static`).

use std::fs;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::{Result, cargo, root, run};

/// The budget the linker script also asserts.
const LOADER_BUDGET: u64 = 256 << 10;

struct Arch {
    triple: &'static str,
    name: &'static str,
}

const X86_64: Arch = Arch { triple: "x86_64-unknown-linux-gnu", name: "x86_64" };

/// Build everything; returns the distribution directory.
pub fn dist() -> Result<PathBuf> {
    let root = root();
    let target = root.join("target");
    let arch = X86_64;

    run(cargo().current_dir(&root).args(["build", "--release", "-p", "ckpt-loader", "--target", arch.triple]))?;
    let raw = target.join(arch.triple).join("release").join("ckpt-loader");
    let spliced = target.join("loader").join(format!("loader-{}.bin", arch.name));
    splice_loader(&raw, &spliced)?;

    run(cargo()
        .current_dir(&root)
        .args(["build", "--release", "-p", "ckpt-runtime", "--target", arch.triple])
        .env("CKPT_LOADER_PATH", &spliced))?;
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "ckpt", "--bin", "ckpt"]))?;

    let dist = target.join("dist");
    let rel = target.join(arch.triple).join("release");
    for d in ["bin", "lib", "include"] {
        fs::create_dir_all(dist.join(d)).map_err(|e| format!("creating {}: {e}", dist.join(d).display()))?;
    }
    copy(&target.join("release").join("ckpt"), &dist.join("bin").join("ckpt"))?;
    copy(&rel.join("libckpt.so"), &dist.join("lib").join("libckpt.so"))?;
    prelink_static(&rel.join("libckpt.a"), &dist.join("lib").join("libckpt.a"))?;
    copy(&root.join("runtime").join("include").join("ckpt.h"), &dist.join("include").join("ckpt.h"))?;
    eprintln!("xtask: distribution in {}", dist.display());
    Ok(dist)
}

/// The C API: the only global symbols of `libckpt.a` (all in runtime/src/capi.rs
/// and declared in ckpt.h).
const CAPI: &[&str] = &[
    "ckpt_checkpoint",
    "ckpt_ckpt",
    "ckpt_config",
    "ckpt_on_preckpt",
    "ckpt_on_postckpt",
    "ckpt_on_restart",
];

/// Turn cargo's static archive into the `libckpt.a` we ship: one relocatable
/// object (`ld -r`) holding what the C API and the runtime's constructor need.
///
/// Why not the archive itself: the linker takes an archive member only to resolve
/// a symbol the program already uses, and a program that relies on the signal
/// alone uses none, so `cc -static prog.o libckpt.a` would link no runtime at all
/// and SIGTSTP would simply stop the program. An object file is always linked
/// whole, with its `.init_array` constructor; GNU ld takes it by path and through
/// `-lckpt` alike. Every symbol but the C API is made local, so the runtime's copy
/// of Rust's `core` cannot clash with another in the same program, and debug info
/// is dropped (it is most of the size).
fn prelink_static(archive: &Path, out: &Path) -> Result<()> {
    let header = fs::read_to_string(root().join("runtime/include/ckpt.h")).map_err(|e| e.to_string())?;
    if let Some(missing) = CAPI.iter().find(|s| !header.contains(&format!(" {s}("))) {
        return Err(format!("ckpt.h does not declare {missing}: update CAPI in xtask/src/build.rs"));
    }
    let tmp = out.with_extension("o.tmp");
    let mut ld = std::process::Command::new("ld");
    // -r: a relocatable object; --gc-sections with the API as roots (-u) keeps
    // what is reachable from it, plus .init_array/.fini_array, which ld keeps.
    ld.args(["-r", "--gc-sections", "-o"]).arg(&tmp);
    for s in CAPI {
        ld.args(["-u", s]);
    }
    run(ld.arg(archive))?;
    let mut objcopy = std::process::Command::new("objcopy");
    objcopy.arg("--strip-debug");
    for s in CAPI {
        objcopy.arg(format!("--keep-global-symbol={s}"));
    }
    run(objcopy.arg(&tmp).arg(out.with_extension("a.tmp")))?;
    let _ = fs::remove_file(&tmp);
    check_static_object(&out.with_extension("a.tmp"))?;
    fs::rename(out.with_extension("a.tmp"), out).map_err(|e| format!("renaming {}: {e}", out.display()))
}

/// The shipped `libckpt.a` defines exactly the C API and a constructor.
fn check_static_object(path: &Path) -> Result<()> {
    use object::read::elf::ElfFile64;
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let file = ElfFile64::<object::Endianness>::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut defined: Vec<String> = file
        .symbols()
        .filter(|s| s.is_global() && s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    defined.sort();
    let mut want: Vec<String> = CAPI.iter().map(|s| s.to_string()).collect();
    want.sort();
    if defined != want {
        return Err(format!("{}: global symbols {defined:?}, expected exactly {want:?}", path.display()));
    }
    if !file.sections().any(|s| s.name() == Ok(".init_array")) {
        return Err(format!("{}: no .init_array: the runtime would never start", path.display()));
    }
    Ok(())
}

/// Copy through a temporary name and rename, so that a running program that has
/// the old file mapped (a test, a preloaded runtime) never sees it change.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).map_err(|e| format!("copying {} to {}: {e}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("renaming {}: {e}", to.display()))
}

/// Check the loader ELF and write its loaded bytes to `out`.
fn splice_loader(raw: &Path, out: &Path) -> Result<()> {
    let data = fs::read(raw).map_err(|e| format!("reading {}: {e}", raw.display()))?;
    let file = ElfFile64::<object::Endianness>::parse(&*data)
        .map_err(|e| format!("{}: not a 64-bit ELF: {e}", raw.display()))?;
    let endian = file.endian();
    let hdr = file.elf_header();
    let bad = |why: &str| Err(format!("loader {}: {why}", raw.display()));

    if hdr.e_type(endian) != elf::ET_DYN {
        return bad("not a position-independent executable (ET_DYN)");
    }
    let phdrs = hdr.program_headers(endian, &*data).map_err(|e| e.to_string())?;
    if phdrs.iter().any(|p| p.p_type(endian) == elf::PT_INTERP) {
        return bad("has a PT_INTERP (it must not need a dynamic linker)");
    }
    let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type(endian) == elf::PT_LOAD).collect();
    if loads.len() != 1 || loads[0].p_offset(endian) != 0 || loads[0].p_vaddr(endian) != 0 {
        return bad("must have exactly one PT_LOAD, at offset 0 and address 0 (see the linker script)");
    }
    let file_len = loads[0].p_offset(endian) + loads[0].p_filesz(endian);
    if loads[0].p_memsz(endian) > LOADER_BUDGET {
        return bad(&format!("is {} bytes in memory, over the {LOADER_BUDGET}-byte budget", loads[0].p_memsz(endian)));
    }
    let start = file.symbols().find(|s| s.name() == Ok("_start"));
    match start {
        Some(s) if s.address() == hdr.e_entry(endian) => {}
        Some(_) => return bad("the entry point is not _start"),
        None => return bad("has no _start symbol"),
    }
    // _start compares the file size with __file_end before anything else runs.
    match file.symbols().find(|s| s.name() == Ok("__file_end")) {
        Some(s) if s.address() == file_len => {}
        _ => return bad("__file_end must mark the end of the loaded bytes (see the linker script)"),
    }
    if let Some(relocs) = file.dynamic_relocations() {
        for (off, r) in relocs {
            if r.flags() != (object::RelocationFlags::Elf { r_type: elf::R_X86_64_RELATIVE }) {
                return bad(&format!(
                    "has a dynamic relocation other than R_X86_64_RELATIVE at {off:#x} ({:?}); \
                     the loader applies only RELATIVE ones to itself",
                    r.flags()
                ));
            }
        }
    }

    let mut bytes = data[..file_len as usize].to_vec();
    // Move the program headers after the entry stub (see the linker script): the
    // kernel refuses a file too short to hold them, so no cut before their end
    // can run a partial _start.
    let sym = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address());
    let (Some(copy), Some(copy_end), Some(entry_end)) =
        (sym("__phdrs_copy"), sym("__phdrs_copy_end"), sym("__entry_end"))
    else {
        return bad("has no __phdrs_copy, __phdrs_copy_end or __entry_end (see the linker script)");
    };
    let phoff = hdr.e_phoff(endian) as usize;
    let table = usize::from(hdr.e_phnum(endian)) * usize::from(hdr.e_phentsize(endian));
    if copy < entry_end || copy_end - copy < table as u64 || copy_end > file_len {
        return bad("the room for the program headers is missing, too small or before the entry stub");
    }
    let (copy, phdrs) = (copy as usize, data[phoff..phoff + table].to_vec());
    bytes[copy..copy + table].copy_from_slice(&phdrs);
    // e_phoff (32..40) in the ELF64 header.
    bytes[32..40].copy_from_slice(&(copy as u64).to_le_bytes());
    // No section headers: they lie beyond the loaded bytes, which is all we keep.
    // e_shoff (40..48), e_shnum (60..62), e_shstrndx (62..64) in the ELF64 header.
    bytes[40..48].fill(0);
    bytes[60..64].fill(0);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    fs::write(out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    eprintln!("xtask: loader {} bytes ({} relocations, all RELATIVE)", bytes.len(),
        file.dynamic_relocations().map_or(0, |r| r.count()));
    Ok(())
}
