//! End-to-end: real programs checkpointed under `ckpt` at a moment the test does not
//! choose exactly, restarted from their image, their continuation checked.

mod common;

use common::*;

/// The quick example: `ckpt ./counter`, SIGTSTP, `./counter.ckpt` continues.
#[test]
fn counter_continues_without_gap_or_repeat() {
    let dir = Dir::new("counter");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A C++ program (libstdc++: containers, streams, exceptions, virtual calls).
#[test]
fn cxx_program() {
    let dir = Dir::new("cxx");
    dir.compile("cxx.cc", "cxx", &[]);
    let image = dir.join("cxx.ckpt");
    let first = checkpoint(ckpt(&dir, &["./cxx"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("iostream works after restart"), "{second}");
    assert_continues(&first, &second, 60);
}

/// The real `python3` interpreter running a counter with dict state.
#[test]
fn python_interpreter() {
    let dir = Dir::new("python");
    // The interpreter itself, not a wrapper script that would exec it (pyenv shims).
    let exe = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed: cargo xtask setup installs it");
    let python = String::from_utf8(exe.stdout).unwrap().trim().to_string();
    std::fs::copy(root().join("tests/c/counter.py"), dir.join("counter.py")).unwrap();
    let image = dir.join("count.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "count.ckpt", &python, "counter.py"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// 1 GiB of pseudo-random heap: checksum verified after the restart. Prints the
/// checkpoint time, the restart time and the image size.
#[test]
fn one_gib_heap_checksum() {
    let dir = Dir::new("bigheap");
    dir.compile("bigheap.c", "bigheap", &[]);
    let image = dir.join("bigheap.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["./bigheap", "1024"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    let t0 = std::time::Instant::now();
    p.signal("TSTP");
    let first = p.finish();
    let ckpt_time = t0.elapsed();
    first.assert_ok("the checkpointed run");
    assert_image(&image);
    let size = std::fs::metadata(&image).unwrap().len();
    assert!(size > 1 << 30, "image of {size} bytes cannot hold a 1 GiB heap");
    let t1 = std::time::Instant::now();
    let mut p = Proc::spawn(restart_cmd(&image, dir.path()));
    p.wait_for("RESTARTED");
    let restart_time = t1.elapsed();
    let second = p.finish();
    second.assert_ok("restart");
    assert!(second.has("RESTARTED checksum ok"), "{second}");
    assert_continues(&first, &second, 40);
    eprintln!(
        "1 GiB heap: image {size} bytes; checkpoint (signal to exit, incl. fsync) {ckpt_time:.2?}; \
         restart to the verified checksum {restart_time:.2?}"
    );
}

/// 4 GiB reserved, 10 MiB touched: untouched pages cost nothing in the image, and
/// are still there after the restart.
#[test]
fn sparse_reservation_image_stays_small() {
    let dir = Dir::new("sparse");
    dir.compile("sparse.c", "sparse", &[]);
    let image = dir.join("sparse.ckpt");
    let first = checkpoint(ckpt(&dir, &["./sparse"]), &image);
    let size = std::fs::metadata(&image).unwrap().len();
    // 10 MiB of data plus the program, libc and the runtime (about 2.5 MiB).
    assert!(size < 32 << 20, "image of a 4 GiB reservation with 10 MiB touched is {size} bytes");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED sparse ok"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A restarted process checkpoints again; the second image continues from there.
#[test]
fn chained_checkpoint() {
    let dir = Dir::new("chained");
    dir.compile("counter.c", "counter", &["-DCHAINED"]);
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
    second.assert_ok("the restarted, checkpointed again run");
    assert_image(&image);
    let third = restart(&image, dir.path());
    third.assert_ok("second restart");
    let all: Vec<u64> = first.ticks().into_iter().chain(second.ticks()).chain(third.ticks()).collect();
    assert_eq!(all, (1..=100).collect::<Vec<_>>(), "\n{first}\n{second}\n{third}");
    assert!(!second.ticks().is_empty() && !third.ticks().is_empty() && third.has("DONE"));
}

/// The image is self-contained: it restarts after the program and the ckpt
/// distribution it ran with (libckpt.so included) are deleted, from another directory.
#[test]
fn restart_after_binary_and_runtime_deleted() {
    let dir = Dir::new("deleted");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    dir.compile("counter.c", "bin/counter", &[]);
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
    let dir = Dir::new("usr1");
    dir.compile("counter.c", "counter", &[]);
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

/// A checkpoint that cannot be written (its directory does not exist) is reported,
/// leaves nothing behind, and the program goes on to the end.
#[test]
fn failed_checkpoint_keeps_running() {
    let dir = Dir::new("fail");
    dir.compile("counter.c", "counter", &[]);
    let mut p = Proc::spawn(ckpt(&dir, &["-n", "missing/x.ckpt", "./counter"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let o = p.finish();
    o.assert_ok("a program whose checkpoint failed");
    assert!(o.has("DONE"), "{o}");
    assert_eq!(o.ticks(), (1..=60).collect::<Vec<_>>(), "{o}");
    assert!(
        o.stderr.contains("ckpt: checkpoint failed: No such file or directory"),
        "stderr: {}",
        o.stderr
    );
    assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());
}

/// A damaged image is refused with a message and exit status 1: never a crash, a
/// hang, or a half-restored process.
#[test]
fn damaged_image_is_refused() {
    let dir = Dir::new("damaged");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    let good = std::fs::read(&image).unwrap();
    let bad = dir.join("bad.ckpt");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [100, 4096, 5000, 70_000, good.len() / 2, good.len() - 1] {
        cases.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    // The header follows the loader at the first page boundary past it.
    let header = good.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).expect("header") * 4096;
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

/// In continue mode, a checkpoint that fails half-way (the file size limit, as with
/// `ulimit -f`, makes write fail with EFBIG and raise SIGXFSZ) leaves the previous
/// checkpoint byte for byte intact, no temporary file, and the program running; the
/// next checkpoint succeeds and its image restarts.
#[test]
fn failed_write_keeps_previous_image_and_program() {
    let dir = Dir::new("fsize");
    dir.compile("counter.c", "counter", &[]);
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
    assert_eq!(
        o.stderr.matches("ckpt: checkpoint failed: File too large").count(),
        1,
        "stderr: {}",
        o.stderr
    );
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
