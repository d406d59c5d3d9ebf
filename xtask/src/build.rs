//! `cargo xtask build`: the stages, in order, for each architecture (x86_64, then
//! i386 as i686):
//!
//! 1. The loader (`ckpt-loader`), a static PIE linked with
//!    `linker-scripts/loader-<arch>.ld`.
//! 2. Checked with `object`: one loadable segment that starts at file offset 0
//!    (with the ELF header in it), no PT_INTERP, `_start` is the entry, only
//!    RELATIVE relocations (which the loader applies to itself), and within the
//!    size budget. Then spliced: cut to exactly its loaded bytes (section headers
//!    and debug info dropped), so the image can start at the next page boundary —
//!    the rule both the runtime (writing) and the loader (reading) follow.
//! 3. The runtime, which embeds the spliced loader of its own architecture via
//!    `CKPT_LOADER_PATH`.
//! 4. The `ckpt` command (64-bit; it runs programs of both classes).
//! 5. `target/dist/{bin,lib,lib32,include}`: `lib` holds the x86_64 runtime,
//!    `lib32` the i386 one. `bin/ckpt` and the `libckpt.so` files are stripped;
//!    their debug info goes to `target/dist-debug/` (see `ship`). `libckpt.a` is not the archive cargo makes but one
//!    prelinked relocatable object (see `prelink_static`). `lib` also holds
//!    `ckpt-runtime.blob`, the runtime `ckpt hijack` puts into a running process
//!    (see `blob`).

use std::fs;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile, ElfFile32, ElfFile64, FileHeader, ProgramHeader};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::{Result, cargo, root, run};

/// The budget the linker script also asserts.
const LOADER_BUDGET: u64 = 256 << 10;

/// One architecture the runtime and the loader are built for.
pub struct Arch {
    /// Rust target triple.
    pub triple: &'static str,
    /// `target_arch`, as in file names (`loader-x86.ld`, `asm/x86/`).
    pub name: &'static str,
    /// The dist directory of its runtime (`lib`, `lib32`).
    pub lib: &'static str,
    /// `ld -m` emulation for the prelinked libckpt.a.
    ld_emulation: &'static str,
    /// The one dynamic relocation type the loader may have.
    relative: elf::RelocationType,
}

/// The architectures, 64-bit first.
pub const ARCHES: [Arch; 2] = [
    Arch {
        triple: "x86_64-unknown-linux-gnu",
        name: "x86_64",
        lib: "lib",
        ld_emulation: "elf_x86_64",
        relative: elf::R_X86_64_RELATIVE,
    },
    Arch {
        triple: "i686-unknown-linux-gnu",
        name: "x86",
        lib: "lib32",
        ld_emulation: "elf_i386",
        relative: elf::R_386_RELATIVE,
    },
];

/// Build everything; returns the distribution directory.
pub fn dist() -> Result<PathBuf> {
    let root = root();
    let target = root.join("target");
    let dist = target.join("dist");

    for arch in &ARCHES {
        let spliced = loader(arch)?;
        run(cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "ckpt-runtime", "--target", arch.triple])
            .env("CKPT_LOADER_PATH", &spliced))?;
    }
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "ckpt", "--bin", "ckpt"]))?;

    for d in ["bin", "include"].iter().chain(ARCHES.iter().map(|a| &a.lib)) {
        fs::create_dir_all(dist.join(d)).map_err(|e| format!("creating {}: {e}", dist.join(d).display()))?;
    }
    let debug = target.join("dist-debug");
    ship(&target.join("release").join("ckpt"), &dist, &debug, "bin/ckpt")?;
    for arch in &ARCHES {
        let rel = target.join(arch.triple).join("release");
        let lib = dist.join(arch.lib);
        ship(&rel.join("libckpt.so"), &dist, &debug, &format!("{}/libckpt.so", arch.lib))?;
        prelink_static(&rel.join("libckpt.a"), &lib.join("libckpt.a"), arch)?;
        if arch.name == "x86_64" {
            crate::blob::build(&rel.join("libckpt.a"), &lib.join("ckpt-runtime.blob"))?;
        }
    }
    copy(&root.join("runtime").join("include").join("ckpt.h"), &dist.join("include").join("ckpt.h"))?;
    eprintln!("xtask: distribution in {}", dist.display());
    Ok(dist)
}

/// Stages 1 and 2 for `arch`: build the loader, check it, splice it; returns the
/// spliced file the runtime embeds.
pub fn loader(arch: &Arch) -> Result<PathBuf> {
    let root = root();
    let target = root.join("target");
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "ckpt-loader", "--target", arch.triple]))?;
    let raw = target.join(arch.triple).join("release").join("ckpt-loader");
    let spliced = target.join("loader").join(format!("loader-{}.bin", arch.name));
    splice_loader(&raw, &spliced, arch)?;
    Ok(spliced)
}

/// The C API: the only global symbols of `libckpt.a` (all in runtime/src/capi.rs
/// and declared in ckpt.h).
const CAPI: &[&str] =
    &["ckpt_checkpoint", "ckpt_ckpt", "ckpt_config", "ckpt_on_preckpt", "ckpt_on_postckpt", "ckpt_on_restart"];

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
/// and the embedded LLVM bitcode are dropped (they are most of the size).
fn prelink_static(archive: &Path, out: &Path, arch: &Arch) -> Result<()> {
    let header = fs::read_to_string(root().join("runtime/include/ckpt.h")).map_err(|e| e.to_string())?;
    if let Some(missing) = CAPI.iter().find(|s| !header.contains(&format!(" {s}("))) {
        return Err(format!("ckpt.h does not declare {missing}: update CAPI in xtask/src/build.rs"));
    }
    let tmp = out.with_extension("o.tmp");
    let mut ld = std::process::Command::new("ld");
    // -r: a relocatable object; --gc-sections with the API as roots (-u) keeps
    // what is reachable from it, plus .init_array/.fini_array, which ld keeps.
    // -m: the archive's machine (ld defaults to x86_64 and refuses i386 objects).
    ld.args(["-m", arch.ld_emulation, "-r", "--gc-sections", "-o"]).arg(&tmp);
    for s in CAPI {
        ld.args(["-u", s]);
    }
    run(ld.arg(archive))?;
    let mut objcopy = std::process::Command::new("objcopy");
    // rustc embeds LLVM bitcode in a staticlib's objects (for cross-language LTO):
    // 1.3 of its 1.5 MB, and of no use to a C linker.
    objcopy.args(["--strip-debug", "--remove-section=.llvmbc", "--remove-section=.llvmcmd"]);
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
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// Put the file `from` into the distribution as `dist/name`, stripped, and its
/// debug info into `debug/name.debug`, which the shipped file names in its
/// `.gnu_debuglink` (with a CRC, so a debugger never pairs it with another
/// build). Debug info is most of the size: libckpt.so is about 1 MB with it, a
/// few hundred KB without. Through temporary names and renames, as `copy`.
fn ship(from: &Path, dist: &Path, debug: &Path, name: &str) -> Result<()> {
    let to = dist.join(name);
    let dbg = debug.join(format!("{name}.debug"));
    if let Some(dir) = dbg.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let dbg_tmp = dbg.with_extension("debug.tmp");
    run(std::process::Command::new("objcopy").arg("--only-keep-debug").arg(from).arg(&dbg_tmp))?;
    fs::rename(&dbg_tmp, &dbg).map_err(|e| format!("renaming {}: {e}", dbg.display()))?;
    // And as `.build-id/xx/rest.debug`, where a debugger told
    // `set debug-file-directory target/dist-debug` looks, wherever the
    // distribution was copied to.
    let data = fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", from.display()))?;
    let id = file.build_id().map_err(|e| e.to_string())?.ok_or(format!("{}: no build id", from.display()))?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let link = debug.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
    fs::create_dir_all(link.parent().unwrap()).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(Path::new("../..").join(format!("{name}.debug")), &link)
        .map_err(|e| format!("linking {}: {e}", link.display()))?;
    let tmp = to.with_extension("strip.tmp");
    // --strip-all keeps what the dynamic loader needs (.dynsym, .init_array) and
    // the section headers (ckpt looks for .ckpt_runtime), drops .symtab and debug.
    run(std::process::Command::new("objcopy")
        .arg("--strip-all")
        .arg(format!("--add-gnu-debuglink={}", dbg.display()))
        .arg(from)
        .arg(&tmp))?;
    fs::rename(&tmp, &to).map_err(|e| format!("renaming {}: {e}", to.display()))
}

/// Copy through a temporary name and rename, so that a running program that has
/// the old file mapped (a test, a preloaded runtime) never sees it change.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).map_err(|e| format!("copying {} to {}: {e}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("renaming {}: {e}", to.display()))
}

/// Check the loader ELF and write its loaded bytes to `out`.
fn splice_loader(raw: &Path, out: &Path, arch: &Arch) -> Result<()> {
    let data = fs::read(raw).map_err(|e| format!("reading {}: {e}", raw.display()))?;
    // Checked per class; the byte ranges are e_shoff and (e_shnum, e_shstrndx) in
    // the ELF32/ELF64 header, cleared below.
    let (loader, sh_fields) = if arch.name == "x86" {
        let file = ElfFile32::<object::Endianness>::parse(&*data)
            .map_err(|e| format!("{}: not a 32-bit ELF: {e}", raw.display()))?;
        (check_loader(&file, &data, raw, arch)?, [32..36, 48..52])
    } else {
        let file = ElfFile64::<object::Endianness>::parse(&*data)
            .map_err(|e| format!("{}: not a 64-bit ELF: {e}", raw.display()))?;
        (check_loader(&file, &data, raw, arch)?, [40..48, 60..64])
    };
    let Checked { file_len, nrel, phoff, phdrs_len, phdrs_copy } = loader;
    let mut bytes = data[..file_len as usize].to_vec();
    // Move the program headers after the entry stub (see the linker script): the
    // kernel refuses a file too short to hold them, so no cut before their end
    // can run a partial _start. e_phoff is at 28 (ELF32, 4 bytes) or 32 (ELF64, 8).
    let table = data[phoff..phoff + phdrs_len].to_vec();
    bytes[phdrs_copy..phdrs_copy + phdrs_len].copy_from_slice(&table);
    if arch.name == "x86" {
        bytes[28..32].copy_from_slice(&(phdrs_copy as u32).to_le_bytes());
    } else {
        bytes[32..40].copy_from_slice(&(phdrs_copy as u64).to_le_bytes());
    }
    // No section headers: they lie beyond the loaded bytes, which is all we keep.
    for r in sh_fields {
        bytes[r].fill(0);
    }
    // What the CLI and the runtime take for the loader's end (ckpt_image::loader)
    // must be these bytes' end.
    match ckpt_image::loader::parse(&bytes) {
        Ok(l) if l.file_end == bytes.len() as u64 => {}
        r => return Err(format!("loader {}: spliced to {} bytes, but it reads as {r:?}", raw.display(), bytes.len())),
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    fs::write(out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    eprintln!("xtask: loader ({}) {} bytes ({nrel} relocations, all RELATIVE)", arch.name, bytes.len());
    Ok(())
}

/// What `check_loader` found: the loaded length, the number of relocations, and
/// where the program headers are and must be copied to.
struct Checked {
    file_len: u64,
    nrel: usize,
    phoff: usize,
    phdrs_len: usize,
    phdrs_copy: usize,
}

/// The checks of stage 2, for either ELF class.
fn check_loader<'d, E: FileHeader<Endian = object::Endianness>>(
    file: &ElfFile<'d, E>,
    data: &'d [u8],
    raw: &Path,
    arch: &Arch,
) -> Result<Checked> {
    let endian = file.endian();
    let hdr = file.elf_header();
    let bad = |why: &str| Err(format!("loader {}: {why}", raw.display()));

    if hdr.e_type(endian) != elf::ET_DYN {
        return bad("not a position-independent executable (ET_DYN)");
    }
    let phdrs = hdr.program_headers(endian, data).map_err(|e| e.to_string())?;
    if phdrs.iter().any(|p| p.p_type(endian) == elf::PT_INTERP) {
        return bad("has a PT_INTERP (it must not need a dynamic linker)");
    }
    let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type(endian) == elf::PT_LOAD).collect();
    let (off, vaddr): (u64, u64) = match loads.as_slice() {
        [l] => (l.p_offset(endian).into(), l.p_vaddr(endian).into()),
        _ => (1, 1),
    };
    if off != 0 || vaddr != 0 {
        return bad("must have exactly one PT_LOAD, at offset 0 and address 0 (see the linker script)");
    }
    let file_len: u64 = loads[0].p_filesz(endian).into();
    let memsz: u64 = loads[0].p_memsz(endian).into();
    if memsz > LOADER_BUDGET {
        return bad(&format!("is {memsz} bytes in memory, over the {LOADER_BUDGET}-byte budget"));
    }
    let entry: u64 = hdr.e_entry(endian).into();
    match file.symbols().find(|s| s.name() == Ok("_start")) {
        Some(s) if s.address() == entry => {}
        Some(_) => return bad("the entry point is not _start"),
        None => return bad("has no _start symbol"),
    }
    // _start compares the file size with __file_end before anything else runs.
    match file.symbols().find(|s| s.name() == Ok("__file_end")) {
        Some(s) if s.address() == file_len => {}
        _ => return bad("__file_end must mark the end of the loaded bytes (see the linker script)"),
    }
    let mut n = 0;
    if let Some(relocs) = file.dynamic_relocations() {
        for (off, r) in relocs {
            if r.flags() != (object::RelocationFlags::Elf { r_type: arch.relative }) {
                return bad(&format!(
                    "has a dynamic relocation other than RELATIVE at {off:#x} ({:?}); \
                     the loader applies only RELATIVE ones to itself",
                    r.flags()
                ));
            }
            n += 1;
        }
    }
    let sym = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address());
    let (Some(copy), Some(copy_end), Some(entry_end)) =
        (sym("__phdrs_copy"), sym("__phdrs_copy_end"), sym("__entry_end"))
    else {
        return bad("has no __phdrs_copy, __phdrs_copy_end or __entry_end (see the linker script)");
    };
    let phoff: u64 = hdr.e_phoff(endian).into();
    let table = usize::from(hdr.e_phnum(endian)) * usize::from(hdr.e_phentsize(endian));
    if copy < entry_end || copy_end - copy < table as u64 || copy_end > file_len {
        return bad("the room for the program headers is missing, too small or before the entry stub");
    }
    Ok(Checked { file_len, nrel: n, phoff: phoff as usize, phdrs_len: table, phdrs_copy: copy as usize })
}
