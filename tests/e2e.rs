//! End-to-end: real programs checkpointed under `ckpt` at a moment the test does not
//! choose exactly, restarted from their image, their continuation checked.

mod common;

use std::process::Command;

use common::*;

/// The quick example: `ckpt ./counter`, SIGTSTP, `./counter.ckpt` continues.
#[test]
fn counter_continues_without_gap_or_repeat() {
    counter(Bits::B64);
}

/// The quick example in 32 bits (`cc -m32`: the i386 runtime from lib32/); the
/// checkpoint is a 32-bit ELF executable, restarted by the i386 loader.
#[test]
fn counter_32bit_continues_without_gap_or_repeat() {
    counter(Bits::B32);
}

fn counter(bits: Bits) {
    let dir = Dir::new(&format!("counter{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter"]), &image);
    assert_image_bits(&image, bits);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A C++ program (libstdc++: containers, streams, exceptions, virtual calls).
#[test]
fn cxx_program() {
    cxx(Bits::B64);
}

/// The same, `g++ -m32`.
#[test]
fn cxx_program_32bit() {
    cxx(Bits::B32);
}

fn cxx(bits: Bits) {
    let dir = Dir::new(&format!("cxx{}", bits.tag()));
    dir.compile_bits("cxx.cc", "cxx", &[], bits);
    let image = dir.join("cxx.ckpt");
    let first = checkpoint(ckpt(&dir, &["./cxx"]), &image);
    assert_image_bits(&image, bits);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("iostream works after restart"), "{second}");
    assert_continues(&first, &second, 60);
}

/// 1 GiB of pseudo-random heap: checksum verified after the restart. Prints the
/// checkpoint time, the restart time and the image size.
#[test]
fn one_gib_heap_checksum() {
    big_heap(Bits::B64, 1024);
}

/// 256 MiB in a 32-bit process (its whole address space is 4 GiB).
#[test]
fn heap_256_mib_checksum_32bit() {
    big_heap(Bits::B32, 256);
}

fn big_heap(bits: Bits, mib: u64) {
    let dir = Dir::new(&format!("bigheap{}", bits.tag()));
    dir.compile_bits("bigheap.c", "bigheap", &[], bits);
    let image = dir.join("bigheap.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["./bigheap", &mib.to_string()]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    let t0 = std::time::Instant::now();
    p.signal("TSTP");
    let first = p.finish();
    let ckpt_time = t0.elapsed();
    first.assert_checkpointed("the checkpointed run");
    assert_image(&image);
    assert_image_bits(&image, bits);
    let size = std::fs::metadata(&image).unwrap().len();
    assert!(size > mib << 20, "image of {size} bytes cannot hold a {mib} MiB heap");
    let t1 = std::time::Instant::now();
    let mut p = Proc::spawn(restart_cmd(&image, dir.path()));
    p.wait_for("RESTARTED");
    let restart_time = t1.elapsed();
    let second = p.finish();
    second.assert_ok("restart");
    assert!(second.has("RESTARTED checksum ok"), "{second}");
    assert_continues(&first, &second, 40);
    eprintln!(
        "{mib} MiB heap ({bits:?}): image {size} bytes; checkpoint (signal to exit, incl. fsync) \
         {ckpt_time:.2?}; restart to the verified checksum {restart_time:.2?}"
    );
}

/// 4 GiB reserved, 10 MiB touched: untouched pages cost nothing in the image, and
/// are still there after the restart.
#[test]
fn sparse_reservation_image_stays_small() {
    sparse(Bits::B64);
}

/// 1 GiB reserved in a 32-bit process: the image stays small and the loader still
/// finds room for itself in the 4 GiB address space.
#[test]
fn sparse_reservation_32bit_image_stays_small() {
    sparse(Bits::B32);
}

fn sparse(bits: Bits) {
    let dir = Dir::new(&format!("sparse{}", bits.tag()));
    dir.compile_bits("sparse.c", "sparse", &[], bits);
    let image = dir.join("sparse.ckpt");
    let first = checkpoint(ckpt(&dir, &["./sparse"]), &image);
    let size = std::fs::metadata(&image).unwrap().len();
    // 10 MiB of data plus the program, libc and the runtime (about 2.5 MiB).
    assert!(size < 32 << 20, "image of a large reservation with 10 MiB touched is {size} bytes");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED sparse ok"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A restarted process checkpoints again; the second image continues from there.
#[test]
fn chained_checkpoint() {
    chained(Bits::B64);
}

/// The same for a 32-bit process.
#[test]
fn chained_checkpoint_32bit() {
    chained(Bits::B32);
}

fn chained(bits: Bits) {
    let dir = Dir::new(&format!("chained{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &["-DCHAINED"], bits);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter", "100"]), &image);
    // The restarted process writes counter.ckpt again (same name, same directory).
    let keep = dir.join("first.ckpt");
    std::fs::rename(&image, &keep).unwrap();
    let mut p = Proc::spawn(restart_cmd(&keep, dir.path()));
    p.wait_for("RESTARTED");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let second = p.finish();
    second.assert_checkpointed("the restarted, checkpointed again run");
    assert_image(&image);
    let third = restart(&image, dir.path());
    third.assert_ok("second restart");
    let all: Vec<u64> = first.ticks().into_iter().chain(second.ticks()).chain(third.ticks()).collect();
    assert_eq!(all, (1..=100).collect::<Vec<_>>(), "\n{first}\n{second}\n{third}");
    assert!(!second.ticks().is_empty() && !third.ticks().is_empty() && third.has("DONE"));
}

/// A damaged image is refused with a message and exit status 1: never a crash, a
/// hang, or a half-restored process.
#[test]
fn damaged_image_is_refused() {
    damaged(Bits::B64);
}

/// The i386 loader refuses a damaged 32-bit image as the x86_64 one does.
#[test]
fn damaged_32bit_image_is_refused() {
    damaged(Bits::B32);
}

fn damaged(bits: Bits) {
    let dir = Dir::new(&format!("damaged{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    let good = std::fs::read(&image).unwrap();
    let bad = dir.join("bad.ckpt");
    // The header follows the loader at the first page boundary past it.
    let header = good.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).expect("header") * 4096;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [100, 4096, 5000, 70_000, header + 64, good.len() / 2, good.len() - 1] {
        cases.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    for off in [header, header + 8, header + 40, header + 130, header + 1000] {
        let mut b = good.clone();
        b[off] ^= 0x10;
        cases.push((format!("bit flipped at {off}"), b));
    }
    for (what, bytes) in cases {
        std::fs::write(&bad, &bytes).unwrap();
        std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        // A file cut inside its ELF headers is already refused by the kernel's exec.
        let o = match Proc::try_spawn(restart_cmd(&bad, dir.path())) {
            Ok(p) => p.finish(),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(8), "{what}: {e}");
                continue;
            }
        };
        assert_eq!(o.status.code(), Some(1), "{what}: {}\n{o}", o.status);
        assert!(o.stderr.contains("ckpt restart"), "{what}: no message\n{o}");
        assert!(o.ticks().is_empty(), "{what}: the program ran\n{o}");
    }
}

/// The real `python3` interpreter running a counter with dict state.
#[test]
fn python_interpreter() {
    let dir = Dir::new("python");
    let python = python3();
    std::fs::copy(root().join("tests/c/counter.py"), dir.join("counter.py")).unwrap();
    let image = dir.join("count.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "count.ckpt", &python, "counter.py"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// The image is self-contained: it restarts after the program and the ckpt
/// distribution it ran with (libckpt.so included) are deleted, from another directory.
#[test]
fn restart_after_binary_and_runtime_deleted() {
    deleted(Bits::B64);
}

/// The same for a 32-bit program (its libraries are the 32-bit ones, lib32/).
#[test]
fn restart_after_binary_and_runtime_deleted_32bit() {
    deleted(Bits::B32);
}

fn deleted(bits: Bits) {
    let dir = Dir::new(&format!("deleted{}", bits.tag()));
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    dir.compile_bits("counter.c", "bin/counter", &[], bits);
    let copied = dir.join("dist");
    let copy = std::process::Command::new("cp").arg("-a").arg(dist()).arg(&copied).status().unwrap();
    assert!(copy.success());
    let mut cmd = std::process::Command::new(copied.join("bin/ckpt"));
    cmd.arg("bin/counter").current_dir(dir.path());
    let image = dir.join("counter.ckpt");
    let first = checkpoint(cmd, &image);
    std::fs::remove_dir_all(&bin).unwrap();
    std::fs::remove_dir_all(&copied).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let moved = elsewhere.join("moved.ckpt");
    std::fs::rename(&image, &moved).unwrap();
    let second = restart(&moved, std::path::Path::new("/"));
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}

/// `-a USR1` moves the trigger to SIGUSR1 and `-n` names the file (relative to the
/// program's working directory).
#[test]
fn other_signal_and_name() {
    other_signal(Bits::B64);
}

/// The same for a 32-bit program.
#[test]
fn other_signal_and_name_32bit() {
    other_signal(Bits::B32);
}

fn other_signal(bits: Bits) {
    let dir = Dir::new(&format!("usr1{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    std::fs::create_dir(dir.join("saved")).unwrap();
    let image = dir.join("saved/state.ckpt");
    let first = checkpoint_with(
        ckpt(&dir, &["-a", "USR1", "-n", "saved/state.ckpt", "./counter"]),
        &image,
        "USR1",
        random_delay(50, 300),
    );
    assert!(!dir.join("counter.ckpt").exists());
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}

/// The command and the runtime answer the same about a trigger signal: glibc's
/// reserved 32 and 33 are refused by both (`ckpt -a` as a usage error, the runtime
/// reading `CKPT_ASYNCSIG` by keeping SIGTSTP and saying so), 34 (`RTMIN`) and the
/// `CLD` alias are accepted by both.
#[test]
fn cli_and_runtime_agree_on_signals() {
    let dir = Dir::new("signals-agree");
    dir.compile("counter.c", "counter", &[]);
    for refused in ["32", "33", "SIGRTMAX-31", "KILL"] {
        let o = ckpt(&dir, &["-a", refused, "./counter", "1"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "ckpt -a {refused}: {}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(dir.join("counter"))
            .arg("1")
            .current_dir(dir.path())
            .env("LD_PRELOAD", Bits::B64.lib().join("libckpt.so"))
            .env("CKPT_ASYNCSIG", refused)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "CKPT_ASYNCSIG={refused}: {err}");
        assert!(err.contains(&format!("ckpt: ignoring CKPT_ASYNCSIG='{refused}'")), "CKPT_ASYNCSIG={refused}: {err}");
    }
    for accepted in ["34", "RTMIN", "CLD", "sigpoll"] {
        let o = ckpt(&dir, &["-a", accepted, "./counter", "1"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && !err.contains("ignoring"), "ckpt -a {accepted}: {err}");
        let o = Command::new(dir.join("counter"))
            .arg("1")
            .current_dir(dir.path())
            .env("LD_PRELOAD", Bits::B64.lib().join("libckpt.so"))
            .env("CKPT_ASYNCSIG", accepted)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.is_empty(), "CKPT_ASYNCSIG={accepted}: {err}");
    }
}

/// A checkpoint that cannot be written (its directory does not exist) is reported,
/// leaves nothing behind, and the program goes on to the end.
#[test]
fn failed_checkpoint_keeps_running() {
    failed_checkpoint(Bits::B64);
}

/// The same for a 32-bit program.
#[test]
fn failed_checkpoint_keeps_running_32bit() {
    failed_checkpoint(Bits::B32);
}

fn failed_checkpoint(bits: Bits) {
    let dir = Dir::new(&format!("fail{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let mut p = Proc::spawn(ckpt(&dir, &["-n", "missing/x.ckpt", "./counter"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let o = p.finish();
    o.assert_ok("a program whose checkpoint failed");
    assert!(o.has("DONE"), "{o}");
    assert_eq!(o.ticks(), (1..=60).collect::<Vec<_>>(), "{o}");
    assert!(o.stderr.contains("ckpt: checkpoint failed: No such file or directory"), "stderr: {}", o.stderr);
    assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());
}

/// In continue mode, a checkpoint that fails half-way (the file size limit, as with
/// `ulimit -f`, makes write fail with EFBIG and raise SIGXFSZ) leaves the previous
/// checkpoint byte for byte intact, no temporary file, and the program running; the
/// next checkpoint succeeds and its image restarts.
#[test]
fn failed_write_keeps_previous_image_and_program() {
    failed_write(Bits::B64);
}

/// The same for a 32-bit program (EFBIG and SIGXFSZ through the i386 runtime).
#[test]
fn failed_write_keeps_previous_image_and_program_32bit() {
    failed_write(Bits::B32);
}

fn failed_write(bits: Bits) {
    let dir = Dir::new(&format!("fsize{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let image = dir.join("counter.ckpt");
    let prlimit = |p: &Proc, limit: &str| {
        let st = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", p.pid()))
            .arg(format!("--fsize={limit}"))
            .status()
            .expect("prlimit (util-linux)");
        assert!(st.success(), "prlimit --fsize={limit}");
    };
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./counter", "100"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 200));
    p.signal("TSTP");
    while !image.exists() {
        p.wait_for("TICK");
    }
    let good = std::fs::read(&image).unwrap();

    // Soft limit 500 kB (the image is a few MB), hard limit untouched.
    prlimit(&p, "500000:unlimited");
    p.signal("TSTP");
    let tick = p.wait_for("TICK");
    let n: u64 = tick[5..].parse().unwrap();
    p.wait_for(&format!("TICK {}", n + 3)); // still running, well after the failure
    assert_eq!(std::fs::read(&image).unwrap(), good, "the failed checkpoint touched the previous image");
    assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());

    prlimit(&p, "unlimited:unlimited");
    p.signal("TSTP");
    let o = p.finish();
    o.assert_ok("a program with a failed checkpoint in between");
    assert!(o.has("DONE"), "{o}");
    assert_eq!(o.ticks(), (1..=100).collect::<Vec<_>>(), "{o}");
    assert_eq!(o.stderr.matches("ckpt: checkpoint failed: File too large").count(), 1, "stderr: {}", o.stderr);
    assert_image(&image);
    assert_ne!(std::fs::read(&image).unwrap(), good, "the last checkpoint was not written");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the last image");
    // It continues from the third checkpoint, taken after the failed one.
    let after = second.ticks();
    let from = *after.first().unwrap_or_else(|| panic!("no ticks after restart\n{second}"));
    assert!(from > n + 3, "restarted at tick {from}, before the last checkpoint\n{second}");
    assert_eq!(after, (from..=100).collect::<Vec<_>>(), "{second}");
    assert!(second.has("DONE"), "{second}");
}

/// An image given to the loader of the other architecture (a 32-bit image behind
/// the x86_64 loader, and the reverse) is refused with a clear message before
/// anything is touched.
#[test]
fn image_for_the_other_architecture_is_refused() {
    let dir = Dir::new("wrong_arch");
    dir.compile("counter.c", "counter64", &[]);
    dir.compile32("counter.c", "counter32", &[]);
    let (i64, i32) = (dir.join("counter64.ckpt"), dir.join("counter32.ckpt"));
    checkpoint(ckpt(&dir, &["./counter64"]), &i64);
    checkpoint(ckpt(&dir, &["./counter32"]), &i32);
    let (a, b) = (std::fs::read(&i64).unwrap(), std::fs::read(&i32).unwrap());
    let header_at = |f: &[u8]| f.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).unwrap() * 4096;
    // Loader of one file, image of the other, the image at the offset where that
    // loader looks for it.
    for (what, loader, image) in [("64-bit loader, 32-bit image", &a, &b), ("32-bit loader, 64-bit image", &b, &a)] {
        let mut f = loader[..header_at(loader)].to_vec();
        f.extend_from_slice(&image[header_at(image)..]);
        let mixed = dir.join("mixed.ckpt");
        std::fs::write(&mixed, &f).unwrap();
        std::fs::set_permissions(&mixed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let o = restart(&mixed, dir.path());
        assert_eq!(o.status.code(), Some(1), "{what}: {}\n{o}", o.status);
        assert!(o.stderr.contains("image is for another architecture"), "{what}:\n{o}");
        assert!(o.ticks().is_empty(), "{what}: the program ran\n{o}");
    }
}

/// The header's `data_hash` is the XXH64 of the page data exactly as it is in the
/// file, although the checkpoint's own stack (and the rseq area) change while the
/// data is written: `ckpt verify` relies on it.
#[test]
fn image_data_hash_matches_the_file() {
    let dir = Dir::new("datahash");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    let b = std::fs::read(&image).unwrap();
    let at = (0..b.len())
        .step_by(ckpt_image::PAGE_SIZE as usize)
        .find(|&o| b[o..].starts_with(&ckpt_image::MAGIC))
        .expect("an image header at a page boundary");
    let h = ckpt_image::Header::parse(&b[at..], b.len() as u64, 0).unwrap();
    let mut x = ckpt_image::DataHasher::new();
    x.update(&b[h.data_offset as usize..(h.data_offset + h.data_len) as usize]);
    assert_eq!(x.finish(), h.data_hash, "data_hash differs from the XXH64 of the data in the file");
}

/// 64 MiB of all-zero pages (half written with zeros, half only read) around 4 MiB
/// of data: the image holds the data, not the zeros, and the zeros come back.
#[test]
fn zero_pages_cost_nothing_and_come_back_as_zero() {
    let dir = Dir::new("zero_pages");
    dir.compile("zero_pages.c", "zero_pages", &[]);
    let image = dir.join("zero_pages.ckpt");
    let first = checkpoint(ckpt(&dir, &["./zero_pages"]), &image);
    let size = std::fs::metadata(&image).unwrap().len();
    // 4 MiB of data plus the program, libc and the runtime (about 2.5 MiB).
    assert!(size < 10 << 20, "image of 4 MiB of data among 64 MiB of zero pages is {size} bytes");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED zero pages ok"), "{second}");
    assert_continues(&first, &second, 60);
}

/// An image whose saved [vdso] differs in size from this kernel's (as after a
/// kernel upgrade; forged here, checksums resealed) is refused with a message
/// before the address space is touched: glibc keeps pointers into the vDSO, so a
/// different one cannot be moved into its place.
#[test]
fn image_from_another_kernels_vdso_is_refused() {
    use ckpt_image::{HEADER_LEN, Header, PAGE_SIZE, PROCESS_LEN, Process, hash64};
    let dir = Dir::new("vdso_differs");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    let mut b = std::fs::read(&image).unwrap();
    let at = (0..b.len()).step_by(PAGE_SIZE as usize).find(|&o| b[o..].starts_with(&ckpt_image::MAGIC)).unwrap();
    let mut h = Header::parse(&b[at..], b.len() as u64, 0).unwrap();
    let (m0, m1) = (h.meta_offset as usize, (h.meta_offset + h.meta_len) as usize);
    let mut p = Process::decode(&b[m0..m1]).unwrap();
    assert!(p.vdso[2].1 != 0, "the image records no [vdso]");
    p.vdso[2].1 += PAGE_SIZE;
    p.encode(&mut b[m0..m0 + PROCESS_LEN]);
    h.meta_hash = hash64(&b[m0..m1]);
    let mut hb = [0u8; HEADER_LEN];
    h.seal(&mut hb);
    b[at..at + HEADER_LEN].copy_from_slice(&hb);
    let forged = dir.join("forged.ckpt");
    std::fs::write(&forged, &b).unwrap();
    std::fs::set_permissions(&forged, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let o = restart(&forged, dir.path());
    assert_eq!(o.status.code(), Some(1), "{o}");
    assert!(o.stderr.contains("this kernel's vDSO differs from the one the checkpoint was taken on"), "{o}");
    assert!(o.ticks().is_empty(), "the program ran\n{o}");
    // The untouched image still restarts.
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the original image");
}

/// `CKPT_DEBUG=1` on the restart prints each restore step on stderr, in order,
/// the loader's and then the restored runtime's, and the program continues as
/// without it; without it, a restart prints nothing.
#[test]
fn debug_trace_names_every_restore_step() {
    debug_trace(Bits::B64);
}

/// The same for a 32-bit program.
#[test]
fn debug_trace_names_every_restore_step_32bit() {
    debug_trace(Bits::B32);
}

fn debug_trace(bits: Bits) {
    let dir = Dir::new(&format!("trace{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter"]), &image);
    let mut cmd = restart_cmd(&image, dir.path());
    cmd.env("CKPT_DEBUG", "1");
    let second = run(cmd);
    second.assert_ok("traced restart");
    assert_continues(&first, &second, 60);
    let steps = [
        "ckpt restart: trace: checking the image",
        "ckpt restart: trace: header and metadata valid",
        "ckpt restart: trace: moving to the home block",
        "ckpt restart: trace: address space cleared",
        "ckpt restart: trace: vDSO moved to its saved address",
        "ckpt restart: trace: memory regions mapped and read",
        "ckpt restart: trace: jumping to the program's save point",
        "ckpt: trace: back at the save point in the restarted process",
        "ckpt: trace: restore the memory layout (PR_SET_MM_MAP)",
        "ckpt: trace: restore signal handlers",
        "ckpt: trace: the loader's home block unmapped",
        "ckpt: trace: signal mask restored; the program continues",
    ];
    let lines: Vec<&str> = second.stderr.lines().collect();
    let mut at = 0;
    for step in steps {
        let found = lines[at..].iter().position(|l| *l == step);
        at += found.unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{}", second.stderr)) + 1;
    }
    assert!(lines.iter().all(|l| l.contains(" trace: ")), "not a trace line in:\n{}", second.stderr);

    // The same image, no variable: not a word.
    let third = restart(&image, dir.path());
    third.assert_ok("quiet restart");
    assert!(third.stderr.is_empty(), "a restart without CKPT_DEBUG said:\n{}", third.stderr);
}

/// The distribution ships stripped (`bin/ckpt`, both `libckpt.so`: no debug
/// sections, no symbol table; `libckpt.a`: no debug info, no LLVM bitcode), and
/// each stripped file names its debug info in `dist-debug/` beside the
/// distribution through a `.gnu_debuglink` whose CRC matches that file.
#[test]
fn distribution_is_stripped_with_debug_info_beside() {
    use object::{Object, ObjectSection};
    let dist = dist();
    let debug = dist.parent().unwrap().join("dist-debug");
    for name in ["bin/ckpt", "lib/libckpt.so", "lib32/libckpt.so"] {
        let data = std::fs::read(dist.join(name)).unwrap();
        let file = object::File::parse(&*data).unwrap();
        for s in file.sections() {
            let sname = s.name().unwrap();
            // .debug_gdb_scripts is loaded (a few bytes naming rustc's pretty-printers).
            let debug = sname.starts_with(".debug") && sname != ".debug_gdb_scripts";
            assert!(!debug && sname != ".symtab", "{name} ships {sname}");
        }
        let (link, crc) = file.gnu_debuglink().unwrap().unwrap_or_else(|| panic!("{name}: no .gnu_debuglink"));
        let base = name.rsplit('/').next().unwrap();
        assert_eq!(link, format!("{base}.debug").as_bytes(), "{name}");
        let dbg = std::fs::read(debug.join(format!("{name}.debug"))).unwrap();
        assert_eq!(crc32(&dbg), crc, "{name}: the debug file is not this build's");
        let dbg = object::File::parse(&*dbg).unwrap();
        assert!(dbg.section_by_name(".debug_info").is_some(), "{name}.debug has no .debug_info");
    }
    for name in ["lib/libckpt.a", "lib32/libckpt.a"] {
        let data = std::fs::read(dist.join(name)).unwrap();
        let file = object::File::parse(&*data).unwrap();
        for s in file.sections() {
            let sname = s.name().unwrap();
            assert!(!sname.starts_with(".debug") && sname != ".llvmbc", "{name} ships {sname}");
        }
    }
}

/// CRC-32 (IEEE, reflected), as `.gnu_debuglink` records it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
