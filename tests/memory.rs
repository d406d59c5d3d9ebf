//! Memory a checkpoint must read with care (see docs/memory.md), each for 64- and
//! 32-bit programs: guard pages and truncated file mappings checkpoint and come
//! back (also from continue mode's background writer); two views of one shared
//! object share again after the restart; memory registered with userfaultfd is
//! refused with a message instead of hanging the program; and refusals for a
//! non-dumpable process or a deleted working directory say what and why, the
//! program going on and checkpointing once it has put things right.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Checkpoint `./NAME ARGS` (built from SRC) with SIGTSTP, restart it, check the
/// count continues.
fn cycle(name: &str, src: &str, args: &[&str], bits: Bits) -> (Outcome, Outcome) {
    cycle_in(&format!("{name}{}", bits.tag()), name, src, args, &[], bits)
}

/// Guard pages in anonymous, PROT_NONE, shared and file memory, and mappings of
/// a file truncated under them: the checkpoint neither kills the program (it
/// used to: SIGSEGV reading a guard page) nor reads the guards, and the restart
/// installs them again (the program checks pagemap bit 58 and EFAULT at every
/// step) with the data around them intact.
#[test]
fn guard_pages_and_truncated_files_checkpoint_and_come_back() {
    let (first, _) = cycle("guard", "guard.c", &[], Bits::B64);
    assert_truncation_warned(&first);
}

#[test]
fn guard_pages_and_truncated_files_checkpoint_and_come_back_32bit() {
    let (first, _) = cycle("guard", "guard.c", &[], Bits::B32);
    assert_truncation_warned(&first);
}

/// The only thing said at checkpoint time, besides the line that the image was
/// written, is the warning about the truncated file's pages: what cannot be read
/// comes back as zeros (of the 8 pages of each of its two mappings, the 6 wholly
/// past the end of the 1.5-page file: 12 pages).
fn assert_truncation_warned(o: &Outcome) {
    let written = o.stderr.lines().filter(|l| l.starts_with("ckpt: guard.ckpt written (")).count();
    assert_eq!(written, 1, "{o}");
    let lines: Vec<_> =
        o.stderr.lines().filter(|l| l.contains("ckpt") && !l.starts_with("ckpt: guard.ckpt written (")).collect();
    assert_eq!(lines.len(), 1, "{o}");
    assert!(
        lines[0].starts_with("ckpt: warning: 49152 bytes of memory could not be read, first at 0x")
            && lines[0].contains("guard-file-1.")
            && lines[0].contains("saved as zeros in guard.ckpt"),
        "{o}"
    );
}

/// The same, written by continue mode's background writer (a fork of the
/// program: it must see the guards too).
fn guard_continue(bits: Bits) {
    let dir = Dir::new(&format!("guard_c{}", bits.tag()));
    dir.compile_bits("guard.c", "guard", &[], bits);
    let image = dir.join("guard.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./guard"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let until = Instant::now() + Duration::from_secs(20);
    while (!image.exists() || !dir.leftovers().is_empty()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let first = p.finish();
    first.assert_ok("the program");
    assert!(first.has("DONE"), "{first}");
    assert_truncation_warned(&first);
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    let b = second.ticks();
    assert!(!b.is_empty() && b == (b[0]..=60).collect::<Vec<_>>() && second.has("DONE"), "{second}");
}

#[test]
fn guard_pages_checkpoint_in_continue_mode() {
    guard_continue(Bits::B64);
}

#[test]
fn guard_pages_checkpoint_in_continue_mode_32bit() {
    guard_continue(Bits::B32);
}

/// A memfd mapped twice (the second view at an offset), a MAP_SHARED|
/// MAP_ANONYMOUS region and its mremap alias, a POSIX shm object mapped twice:
/// after the restart a write through one view shows in the other (it used to
/// Continue mode: the image holds shared memory (a `MAP_SHARED|MAP_ANONYMOUS`
/// region and a memfd mapping) as it was at the checkpoint's moment, like the
/// rest of the process, although the program goes on changing it every tick
/// while the background writer writes it. After the restart both regions hold
/// the byte of the tick the program's private memory says (the writer, a fork,
/// used to read them live: the image then had shared bytes of a later tick).
fn shared_moment(bits: Bits) {
    let dir = Dir::new(&format!("shared_moment{}", bits.tag()));
    dir.compile_bits("shared_moment.c", "shared_moment", &[], bits);
    let image = dir.join("shared_moment.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./shared_moment", "100"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 400));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_ok("the program in continue mode");
    assert!(first.has("DONE"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED shared memory of tick"), "{second}");
    assert!(second.has("DONE"), "{second}");
}

#[test]
fn continue_mode_image_holds_shared_memory_of_its_moment() {
    shared_moment(Bits::B64);
}

#[test]
fn continue_mode_image_holds_shared_memory_of_its_moment_32bit() {
    shared_moment(Bits::B32);
}

/// come back as independent copies, silently), and `ckpt info` lists the views.
fn shared(bits: Bits) {
    let (_, second) = cycle("shared_views", "shared_views.c", &[], bits);
    assert!(!second.stderr.contains("ckpt"), "{second}");
}

#[test]
fn shared_views_share_again_after_restart() {
    shared(Bits::B64);
    let dir = Dir::new("shared_views_info");
    dir.compile("shared_views.c", "shared_views", &[]);
    let image = dir.join("shared_views.ckpt");
    checkpoint(ckpt(&dir, &["./shared_views"]), &image);
    let text = ckpt_info(&image);
    // Three objects, two views each (the memfd's second one at offset 0x1000).
    assert_eq!(text.matches("shared object ").count(), 6, "{text}");
    assert_eq!(text.matches("shared object 2 ").count(), 2, "{text}");
    assert!(text.contains("at offset 0x1000"), "{text}");
    let json = Command::new(ckpt_bin()).args(["info", "--json"]).arg(&image).output().unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    assert_eq!(json.matches("\"object\":").count(), 6, "{json}");
}

#[test]
fn shared_views_share_again_after_restart_32bit() {
    shared(Bits::B32);
}

/// Memory registered with userfaultfd (missing mode): SIGTSTP is refused with a
/// message naming the mapping, the program neither hangs nor dies, nothing is
/// written; once the program unregistered the range, a checkpoint works and
/// restarts.
fn uffd(bits: Bits) {
    let dir = Dir::new(&format!("uffd{}", bits.tag()));
    dir.compile_bits("uffd.c", "uffd", &[], bits);
    let image = dir.join("uffd.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["./uffd", "25"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let until = Instant::now() + Duration::from_secs(10);
    while !p.stderr_now().contains("checkpoint failed") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = p.stderr_now();
    assert!(
        err.contains("ckpt: checkpoint failed: Operation not supported (not writing uffd.ckpt): the mapping at 0x")
            && err.contains("is registered with userfaultfd"),
        "{err}"
    );
    assert!(!image.exists() && dir.leftovers().is_empty());
    checkpoint_once_fixed(p, "UNREGISTERED", &image, &dir);
}

#[test]
fn userfaultfd_memory_is_refused_not_hung() {
    uffd(Bits::B64);
}

#[test]
fn userfaultfd_memory_is_refused_not_hung_32bit() {
    uffd(Bits::B32);
}

fn real_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `./refusals MODE 25 [ARG]`: SIGTSTP before step 25 is refused with `reason`
/// (the program goes on, nothing is written); after it, the checkpoint works.
/// The dumpable case runs as `nobody` when the test runs as root (root may read
/// a non-dumpable process's /proc files).
fn refused(mode: &str, reason: &[&str], image_name: &str, bits: Bits) {
    let as_nobody = mode == "dumpable" && real_uid() == 0;
    let name = format!("refusals_{mode}{}", bits.tag());
    let dir = if as_nobody { Dir::new_public(&name) } else { Dir::new(&name) };
    dir.compile_bits("refusals.c", "refusals", &[], bits);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let image = dir.join(image_name);
    let dpath = dir.path().to_str().unwrap().to_string();
    let mut cmd = if as_nobody {
        // nobody must reach the program and ckpt: both live in a public directory.
        let ckpt_copy = dir.copy_dist().join("bin/ckpt");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "exec \"$0\" \"$@\""])
            .arg(ckpt_copy)
            .args(["./refusals", mode, "25"])
            .current_dir(dir.path());
        c
    } else {
        ckpt(&dir, &["./refusals", mode, "25", &dpath])
    };
    if mode == "cwd" {
        cmd.env("CKPT_NAME", &image);
    }
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let until = Instant::now() + Duration::from_secs(10);
    while !p.stderr_now().contains("checkpoint failed") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = p.stderr_now();
    for r in reason {
        assert!(err.contains(r), "expected {r:?} in:\n{err}");
    }
    assert!(!image.exists() && dir.leftovers().is_empty());
    checkpoint_once_fixed(p, "FIXED", &image, &dir);
}

const NOT_DUMPABLE: &[&str] = &[
    "ckpt: checkpoint failed: Permission denied (reading /proc/self/",
    " for refusals.ckpt): the process is not dumpable",
    "prctl(PR_SET_DUMPABLE, 1)",
];

const CWD_GONE: &[&str] = &[
    "ckpt: checkpoint failed: No such file or directory (reading the working directory (getcwd) for /",
    "the program's working directory was deleted",
    "have it chdir to a directory that exists",
];

#[test]
fn non_dumpable_process_is_refused_with_the_reason() {
    refused("dumpable", NOT_DUMPABLE, "refusals.ckpt", Bits::B64);
}

#[test]
fn non_dumpable_process_is_refused_with_the_reason_32bit() {
    refused("dumpable", NOT_DUMPABLE, "refusals.ckpt", Bits::B32);
}

#[test]
fn deleted_working_directory_is_refused_with_the_reason() {
    refused("cwd", CWD_GONE, "cwd.ckpt", Bits::B64);
}

#[test]
fn deleted_working_directory_is_refused_with_the_reason_32bit() {
    refused("cwd", CWD_GONE, "cwd.ckpt", Bits::B32);
}

/// Where section TAG's payload starts in IMAGE (after its 16-byte header).
fn section_payload(image: &[u8], tag: u32) -> usize {
    use ckpt_image::{HEADER_LEN, Header};
    let at = image.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).unwrap() * 4096;
    let h = Header::decode(&image[at..at + HEADER_LEN]).unwrap();
    let mut o = (h.meta_offset + h.meta_len - h.sections_len) as usize;
    let end = (h.meta_offset + h.meta_len) as usize;
    while o < end {
        let t = u32::from_le_bytes(image[o..o + 4].try_into().unwrap());
        let len = u64::from_le_bytes(image[o + 8..o + 16].try_into().unwrap()) as usize;
        if t == tag {
            return o + 16;
        }
        o += 16 + len;
    }
    panic!("no section {tag}");
}

/// Seal the metadata and header checksums again after an edit.
fn reseal(image: &mut [u8]) {
    use ckpt_image::{HEADER_LEN, Header, hash64};
    let at = image.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).unwrap() * 4096;
    let mut h = Header::decode(&image[at..at + HEADER_LEN]).unwrap();
    let m = h.meta_offset as usize;
    h.meta_hash = hash64(&image[m..m + h.meta_len as usize]);
    let mut b = [0u8; HEADER_LEN];
    h.seal(&mut b);
    image[at..at + HEADER_LEN].copy_from_slice(&b);
}

/// A guard range moved outside every saved region, or a shared view pointed at a
/// region that is not shared memory (checksums sealed again, so only the
/// validation can tell): the loader refuses before it touches anything, `ckpt
/// verify` names the section.
#[test]
fn forged_guard_and_view_records_are_refused() {
    let dir = Dir::new("forged_memory_sections");
    dir.compile("guard.c", "guard", &[]);
    dir.compile("shared_views.c", "shared_views", &[]);
    for (prog, tag, name) in [("guard", 5u32, "guards"), ("shared_views", 6, "shared")] {
        let image = dir.join(&format!("{prog}.ckpt"));
        checkpoint(ckpt(&dir, &[&format!("./{prog}")]), &image);
        let mut b = std::fs::read(&image).unwrap();
        let p = section_payload(&b, tag) + 8; // the first record
        if tag == 5 {
            b[p..p + 8].copy_from_slice(&0x10000u64.to_le_bytes());
            b[p + 8..p + 16].copy_from_slice(&0x11000u64.to_le_bytes());
        } else {
            b[p..p + 4].copy_from_slice(&0u32.to_le_bytes()); // region 0: the program's text
        }
        reseal(&mut b);
        let bad = dir.join(&format!("{prog}-forged.ckpt"));
        std::fs::write(&bad, &b).unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o700)).unwrap();
        let o = restart(&bad, dir.path());
        let want = format!("image section is damaged (tag {tag}, {name})");
        assert_eq!(o.status.code(), Some(1), "{o}");
        assert!(o.stderr.contains(&want) && o.lines.is_empty(), "{o}");
        let v = Command::new(ckpt_bin()).arg("verify").arg(&bad).output().unwrap();
        assert!(!v.status.success() && String::from_utf8_lossy(&v.stderr).contains(&want), "{v:?}");
    }
}

/// After a refused checkpoint: once the program says `fixed` (it removed the
/// cause), a checkpoint at a random moment works, and the restart continues it.
fn checkpoint_once_fixed(mut p: Proc, fixed: &str, image: &std::path::Path, dir: &Dir) {
    p.wait_for(fixed);
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_checkpointed("the program");
    assert!(!first.has("DONE"), "{first}");
    assert_image(image);
    let second = restart(image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}

/// A memfd that a descriptor holds and a MAP_SHARED mapping maps: the mapping
/// comes back mapped from the restored descriptor, so that a write through one
/// shows in the other as before (tests/c/memfd_fd_and_map.c checks both ways at
/// every step); nothing says "separate copies".
#[test]
fn memfd_held_and_mapped_share_pages_after_restart() {
    let dir = Dir::new("memfd_fd_and_map");
    dir.compile("memfd_fd_and_map.c", "memfd_fd_and_map", &[]);
    let image = dir.join("memfd_fd_and_map.ckpt");
    let first = checkpoint(ckpt(&dir, &["./memfd_fd_and_map"]), &image);
    assert!(!first.stderr.contains("separate copies"), "{first}");
    let info = ckpt_info(&image);
    let line = info.lines().find(|l| l.contains("fd 3 ")).unwrap_or("");
    assert!(line.contains("also mapped shared at 0x") && line.contains("mapped from it again"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(!second.stderr.contains("separate copies"), "{second}");
    assert!(second.has("RESTARTED at"), "{second}");
    assert_continues(&first, &second, 100);
}
