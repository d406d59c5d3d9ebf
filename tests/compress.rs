//! Compressed images (`-z`, `CKPT_COMPRESS=1`): real C programs checkpointed at a
//! random moment with their page data in LZ4 blocks, restarted and compared, 64-
//! and 32-bit; memory that does not compress; memory that cannot be read (guard
//! pages, a file truncated under its mappings); continue mode's background
//! writer; and damaged compressed data, refused by the loader and by `ckpt
//! verify` with a message naming the piece and its offset.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use ckpt_image::compress::{Compression, StoredPiece, codec};
use ckpt_image::{HEADER_LEN, Header, MAGIC, Meta, PAGE_SIZE};

/// `ckpt info --json` of IMAGE: (ratio, compressed pieces) of its COMPRESSION
/// section, which it must have.
fn ratio(image: &Path) -> (f64, u64) {
    let o = Command::new(ckpt_bin()).args(["info", "--json"]).arg(image).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ckpt info --json");
    assert_eq!(v["compression"], "lz4", "{v}");
    assert_eq!(v["version"], 4, "{v}");
    let s = v["sections"].as_array().unwrap().iter().find(|s| s["name"] == "compression").expect("compression");
    let plain = v["saved_bytes"].as_u64().unwrap();
    let stored = v["stored_bytes"].as_u64().unwrap();
    assert!(stored < plain + plain / 100 + (1 << 20), "{stored} bytes stored for {plain}");
    (s["ratio"].as_f64().unwrap(), s["compressed_pieces"].as_u64().unwrap())
}

/// Checkpoint `ckpt OPTS ./zheap ARGS` at a random moment, restart it, check
/// that it went on where it was with every byte of its heap; returns the image's
/// (ratio, compressed pieces). DIR is kept by the caller (the image with it).
fn zheap_cycle(dir: &Dir, opts: &[&str], env: &[(&str, &str)], args: &[&str], bits: Bits) -> (f64, u64) {
    dir.compile_bits("zheap.c", "zheap", &[], bits);
    let image = dir.join("zheap.ckpt");
    let mut all: Vec<&str> = opts.to_vec();
    all.push("./zheap");
    all.extend(args);
    let mut cmd = ckpt(dir, &all);
    cmd.envs(env.iter().copied());
    let first = checkpoint(cmd, &image);
    assert_image_bits(&image, bits);
    let z = ratio(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED checksum ok"), "{second}");
    assert_continues(&first, &second, 60);
    z
}

/// A heap of text records (88%) and random words (12%): compressed at least 2x
/// (program and library text, stored plain, included), every byte back.
fn compressed_heap(bits: Bits) {
    let dir = Dir::new(&format!("zheap{}", bits.tag()));
    let (r, packed) = zheap_cycle(&dir, &["-z"], &[], &["24", "12"], bits);
    assert!(r >= 2.0 && packed > 0, "ratio {r:.2}, {packed} pieces compressed");
}

#[test]
fn compressed_heap_restarts() {
    compressed_heap(Bits::B64);
}

#[test]
fn compressed_heap_restarts_32bit() {
    compressed_heap(Bits::B32);
}

/// Random words do not compress: every piece of the heap is stored plain (in a
/// compressed image, through the same writer and loader path), and comes back.
#[test]
fn incompressible_heap_still_restarts() {
    let dir = Dir::new("zheap_random");
    // Asked for through the environment this time (what `-z` sets).
    let (r, _) = zheap_cycle(&dir, &[], &[("CKPT_COMPRESS", "1")], &["8", "100"], Bits::B64);
    assert!(r < 1.3, "random data compressed {r:.2}x?");
}

/// Guard pages and a file truncated under its mappings (pages that raise SIGBUS
/// when read): the compressing writer copies memory through the kernel, so the
/// unreadable pages are zeros with the usual warning, and everything comes back.
fn guards(bits: Bits) {
    let (first, _) =
        cycle_in(&format!("zguard{}", bits.tag()), "guard", "guard.c", &[], &[("CKPT_COMPRESS", "1")], bits);
    assert!(
        first.stderr.contains("ckpt: warning: 49152 bytes of memory could not be read, first at 0x")
            && first.stderr.contains("saved as zeros in guard.ckpt"),
        "{first}"
    );
}

#[test]
fn guard_pages_and_truncated_files_compressed() {
    guards(Bits::B64);
}

#[test]
fn guard_pages_and_truncated_files_compressed_32bit() {
    guards(Bits::B32);
}

/// Continue mode: the background writer compresses while the program runs on to
/// its end; the image then restarts from the moment it was taken.
#[test]
fn continue_mode_compresses_in_the_background() {
    let dir = Dir::new("zheap_cont");
    dir.compile("zheap.c", "zheap", &[]);
    let image = dir.join("zheap.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "-z", "./zheap", "24", "12"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_ok("the running program");
    assert!(first.has("DONE") && first.stderr.contains("ckpt: zheap.ckpt written ("), "{first}");
    assert_image(&image);
    let (r, _) = ratio(&image);
    assert!(r >= 2.0, "ratio {r:.2}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED checksum ok") && second.has("DONE"), "{second}");
    let after = second.ticks();
    let want: Vec<u64> = (after[0]..=60).collect();
    assert!(after[0] > 1 && after == want, "ticks after the restart: {after:?}\n{second}");
}

/// The header and metadata of IMAGE, and its compressed pieces.
fn stored_pieces(image: &Path) -> Vec<StoredPiece> {
    let b = fs::read(image).unwrap();
    let at = (0..b.len()).step_by(PAGE_SIZE as usize).find(|&o| b[o..].starts_with(&MAGIC)).expect("header");
    let h = Header::parse(&b[at..at + HEADER_LEN], b.len() as u64, 0).unwrap();
    let meta = &b[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    let m = Meta::parse(&h, meta).unwrap();
    let c: Compression = m.compression().expect("a compressed image");
    c.pieces.iter().filter(|p| p.codec == codec::LZ4 && p.len > 4096).collect()
}

/// Damage inside compressed data: bits flipped in a block's middle, and a block
/// overwritten with bytes that do not decode. The restart is refused before the
/// program runs, naming the damaged piece's offset; `ckpt verify` says the same.
#[test]
fn damaged_compressed_data_is_refused() {
    let dir = Dir::new("zheap_damaged");
    dir.compile("zheap.c", "zheap", &[]);
    let image = dir.join("zheap.ckpt");
    checkpoint(ckpt(&dir, &["-z", "./zheap", "8", "12"]), &image);
    let good = fs::read(&image).unwrap();
    let pieces = stored_pieces(&image);
    assert!(pieces.len() >= 2, "{pieces:?}");
    let flip = |p: &StoredPiece, bytes: &[u8], at: u64| {
        fs::write(&image, &good).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&image).unwrap();
        f.write_all_at(bytes, p.off + at).unwrap();
    };
    let p = pieces[pieces.len() / 2];
    let mid = p.len as u64 / 2;
    let cases: [(&str, Vec<u8>, u64); 2] = [
        (
            "flipped bits",
            good[(p.off + mid) as usize..(p.off + mid + 3) as usize].iter().map(|b| b ^ 0x5a).collect(),
            mid,
        ),
        ("garbage", vec![0xff; 64], 0),
    ];
    for (what, bytes, at) in cases {
        flip(&p, &bytes, at);
        let o = restart(&image, dir.path());
        assert_eq!(o.status.code(), Some(1), "{what}: {o}");
        assert!(o.ticks().is_empty() && !o.has("RESTARTED"), "{what}: the program ran\n{o}");
        let piece_at = "the page data is damaged (piece ";
        let off = format!(" at offset {}", p.off);
        assert!(
            o.stderr.contains("ckpt restart:") && o.stderr.contains(piece_at) && o.stderr.contains(&off),
            "{what}: {o}"
        );
        assert!(o.stderr.contains("not restarting"), "{what}: {o}");
        let v = Command::new(ckpt_bin()).arg("verify").arg(&image).output().unwrap();
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(!v.status.success() && err.contains(piece_at) && err.contains(&off), "{what}: verify: {err}");
    }
    // And the undamaged image still restarts.
    fs::write(&image, &good).unwrap();
    let o = restart(&image, dir.path());
    o.assert_ok("the undamaged image");
    assert!(o.has("RESTARTED checksum ok"), "{o}");
}

/// Threads stopped in waits, reads, sleeps, handlers and locks: their stacks
/// (which change while the image is written, and are copied for it) compressed
/// with the rest; every thread goes on after the restart.
fn threads(bits: Bits) {
    let dir = Dir::new(&format!("zthreads{}", bits.tag()));
    dir.compile_bits("threads_blocking.c", "threads_blocking", &["-pthread"], bits);
    let image = dir.join("threads_blocking.ckpt");
    let first = checkpoint(ckpt(&dir, &["-z", "./threads_blocking", "60"]), &image);
    let (r, packed) = ratio(&image);
    assert!(packed > 0 && r > 1.0, "ratio {r:.2}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED blocking threads"), "{second}");
    assert_continues(&first, &second, 60);
}

#[test]
fn threads_compressed() {
    threads(Bits::B64);
}

#[test]
fn threads_compressed_32bit() {
    threads(Bits::B32);
}

/// A python3 interpreter's heap (120 000 records and a 24 MiB pattern,
/// tests/c/pyheap.py) checkpointed with `-z` at a random moment: the image is
/// compressed over 2x, and the restarted interpreter ends with the digest of a
/// run that was not checkpointed.
#[test]
fn python3_heap_compressed() {
    let dir = Dir::new("compress_python");
    let (python, want) = pyheap_reference(&dir, &[]);
    let image = dir.join("py.ckpt");
    let first = checkpoint(ckpt(&dir, &["-z", "-n", "py.ckpt", &python, "pyheap.py"]), &image);
    let (r, _) = ratio(&image);
    assert!(r > 2.0, "a python heap of records compresses: ratio {r:.2}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the compressed image");
    assert_continues(&first, &second, 60);
    assert!(second.has(&want), "the digest differs from the reference run's {want:?}\n{second}");
}
