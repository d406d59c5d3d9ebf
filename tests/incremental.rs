//! Incremental images (`-I`, `CKPT_INCREMENTAL`, docs/incremental.md): a real C
//! program doing every kind of change write tracking must see (tests/c/incr.c:
//! scattered writes, a thread's writes, read(2) into memory, mmap, munmap,
//! mremap, mprotect, MADV_DONTNEED, brk up and down, MAP_SHARED) between
//! periodic checkpoints it does not time, restarted from the newest image of its
//! chain and compared, checksum by checksum, with a run never checkpointed; the
//! same chain merged into a full image; parents missing, damaged or swapped,
//! refused with a message naming them; a python3 heap in continue mode.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Ticks of incr.c and its pause between them (ms): long enough for several
/// periodic checkpoints (one a second) before the test stops it.
const TICKS: &str = "300";
const PAUSE: &str = "15";

/// The `TICK n SUM` lines of a run of incr.c that was never checkpointed.
fn reference(dir: &Dir, prog: &str) -> Vec<String> {
    let mut c = Command::new(dir.join(prog));
    c.args([TICKS, PAUSE]).current_dir(dir.path());
    let o = run(c);
    o.assert_ok("the reference run");
    o.lines.iter().filter(|l| l.starts_with("TICK ")).cloned().collect()
}

/// Run incr.c under `ckpt -I -i 1` until at least `images` images of one
/// chain exist (the newest incremental), then kill it; returns the image.
fn chain(dir: &Dir, prog: &str, images: usize) -> PathBuf {
    let image = dir.join(&format!("{prog}.ckpt"));
    let mut p =
        Proc::spawn(ckpt(dir, &["-q", "-I", "--full-every", "16", "-i", "1", &format!("./{prog}"), TICKS, PAUSE]));
    p.wait_for("READY");
    // One checkpoint a second; stop at a moment the test does not choose.
    std::thread::sleep(Duration::from_millis(1000 * images as u64 + 300) + random_delay(0, 600));
    let seqs = |d: &Dir| {
        fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.strip_prefix(&format!("{prog}.ckpt.")).is_some_and(|s| s.parse::<u64>().is_ok()))
            .count()
    };
    for _ in 0..50 {
        if seqs(dir) >= images {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = p.kill();
    assert!(!o.has("FAIL"), "{o}");
    // A writer still running finishes its image (renamed whole into place).
    std::thread::sleep(Duration::from_millis(500));
    assert!(seqs(dir) >= images, "fewer than {images} images of the chain\n{o}");
    image
}

fn info(image: &Path) -> serde_json::Value {
    let out = Command::new(ckpt_bin()).args(["info", "--json"]).arg(image).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The PARENT record of IMAGE (`ckpt info --json`), which it must have.
fn parent(image: &Path) -> serde_json::Value {
    let j = info(image);
    let s = j["sections"].as_array().unwrap().iter().find(|s| s["tag"] == 8).cloned();
    s.unwrap_or_else(|| panic!("{} is not incremental: {j}", image.display()))["parent"].clone()
}

/// The restarted run's TICK lines are the reference's from where it resumed.
fn assert_like_reference(o: &Outcome, want: &[String]) {
    o.assert_ok("restart");
    assert!(o.has("RESTARTED") && o.has("DONE"), "{o}");
    let got: Vec<&String> = o.lines.iter().filter(|l| l.starts_with("TICK ")).collect();
    let first = want.iter().position(|l| l.split(' ').nth(1) == got[0].split(' ').nth(1)).expect("first tick");
    assert!(first > 0, "the restart began at the first tick\n{o}");
    let want: Vec<&String> = want[first..].iter().collect();
    assert!(got == want, "the restarted run's checksums differ from the reference run's\n{o}");
}

fn chain_restarts(bits: Bits, dirname: &str) {
    let dir = Dir::new(dirname);
    dir.compile_bits("incr.c", "incr", &["-pthread"], bits);
    let want = reference(&dir, "incr");
    let image = chain(&dir, "incr", 3);
    assert_image(&image);
    let p = parent(&image);
    assert!(p["depth"].as_u64().unwrap() >= 2 && p["inherited_bytes"].as_u64().unwrap() > 12 << 20, "{p}");
    let text = Command::new(ckpt_bin()).arg("info").arg(&image).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("chain:        incremental, ") && text.contains("(full)"), "{text}");
    // Much smaller than the full image it stands for.
    let full = dir.join("incr.ckpt.1");
    assert!(fs::metadata(&image).unwrap().len() * 3 < fs::metadata(&full).unwrap().len());

    // The chain merged into one full image (before any restart: a restarted
    // process goes on taking its periodic checkpoints, a new chain).
    let merged = dir.join("merged.ckpt");
    let m = Command::new(ckpt_bin()).arg("merge").arg(&image).arg("-o").arg(&merged).output().unwrap();
    assert!(m.status.success(), "merge: {}", String::from_utf8_lossy(&m.stderr));
    assert_image(&merged);
    assert!(info(&merged)["sections"].as_array().unwrap().iter().all(|s| s["tag"] != 8));

    let second = restart(&image, dir.path());
    assert_like_reference(&second, &want);
    // The merged image restarts exactly as the chain did.
    let third = restart(&merged, dir.path());
    assert_like_reference(&third, &want);
    assert_eq!(second.lines, third.lines, "the merged image restarts otherwise than the chain");
}

#[test]
fn periodic_incremental_chain_restarts_like_a_reference_run() {
    chain_restarts(Bits::B64, "incr_chain");
}

#[test]
fn periodic_incremental_chain_restarts_like_a_reference_run_32bit() {
    chain_restarts(Bits::B32, "incr_chain32");
}

/// Restart IMAGE expecting a refusal whose message contains `want`, before the
/// program runs.
fn refused(image: &Path, dir: &Dir, want: &str) {
    let o = restart(image, dir.path());
    assert_eq!(o.status.code(), Some(1), "{o}");
    assert!(o.stderr.contains(want), "want {want:?}\n{o}");
    assert!(!o.has("TICK") && !o.has("RESTARTED"), "{o}");
}

#[test]
fn missing_damaged_or_swapped_parents_are_refused_by_name() {
    let dir = Dir::new("incr_refuse");
    dir.compile("incr.c", "incr", &["-pthread"]);
    let image = chain(&dir, "incr", 3);
    let seq = parent(&image)["seq"].as_u64().unwrap();
    let par = dir.join(&format!("incr.ckpt.{seq}"));
    let full = dir.join("incr.ckpt.1");
    let keep = dir.join("keep");
    let verify = |want: &str| {
        let v = Command::new(ckpt_bin()).arg("verify").arg(&image).output().unwrap();
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(!v.status.success() && err.contains(want), "verify: want {want:?}: {err}");
    };

    // Missing.
    fs::rename(&par, &keep).unwrap();
    refused(&image, &dir, &format!("the parent image {} cannot be opened", par.display()));
    verify(&par.display().to_string());
    fs::rename(&keep, &par).unwrap();

    // Swapped: another image of the chain in its place.
    fs::copy(&par, &keep).unwrap();
    fs::copy(&full, &par).unwrap();
    refused(&image, &dir, &format!("the parent image {} is not the one this image was written against", par.display()));
    verify("not the parent image its child was written against");
    fs::copy(&keep, &par).unwrap();

    // Damaged: one byte of the heap the full image holds and every later image
    // inherits.
    fs::copy(&full, &keep).unwrap();
    let h = {
        let b = fs::read(&full).unwrap();
        let at = (0..b.len()).step_by(4096).find(|&o| b[o..].starts_with(&ckpt_image::MAGIC)).unwrap();
        ckpt_image::Header::parse(&b[at..at + ckpt_image::HEADER_LEN], b.len() as u64, 0).unwrap()
    };
    let f = fs::OpenOptions::new().write(true).read(true).open(&full).unwrap();
    let at = h.data_offset + h.data_len / 2;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at).unwrap();
    f.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    drop(f);
    refused(&image, &dir, &format!("the parent image {} is damaged (piece ", full.display()));
    verify(&format!("{}: the page data is damaged", full.display()));
    fs::copy(&keep, &full).unwrap();

    // Put back whole, the chain restarts.
    let o = restart(&image, dir.path());
    o.assert_ok("restart of the repaired chain");
    assert!(o.has("RESTARTED") && o.has("DONE"), "{o}");
}

/// A python3 interpreter's heap (tests/c/pyheap.py), checkpointed in continue
/// mode at three moments the test does not control exactly: the third image is
/// incremental, and the interpreter restarted from it ends with the digest of a
/// run that was not checkpointed.
#[test]
fn python3_heap_incremental_in_continue_mode() {
    let dir = Dir::new("incr_python");
    let (python, want) = pyheap_reference(&dir, &["120"]);
    let image = dir.join("py.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "-I", "-n", "py.ckpt", &python, "pyheap.py", "120"]));
    p.wait_for("READY");
    for _ in 0..3 {
        std::thread::sleep(random_delay(300, 600));
        p.signal("TSTP");
    }
    let first = p.finish();
    first.assert_ok("the running program");
    assert!(first.stderr.matches("ckpt: py.ckpt written (").count() >= 3, "{first}");
    assert_image(&image);
    let pr = parent(&image);
    assert!(pr["depth"].as_u64().unwrap() >= 2, "{pr}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the incremental image");
    assert!(second.has("RESTARTED") && second.has(&want), "the digest differs from {want:?}\n{second}");
}
