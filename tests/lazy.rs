//! Lazy restarts (`CKPT_LAZY`, docs/memory.md "Lazy restart"): real programs
//! checkpointed at a random moment and restarted with their large memory
//! arriving while they run, 64- and 32-bit. Every word of that memory is checked
//! after the restart (tests/c/lazy.c); the other checks: MADV_DONTNEED reads
//! zeros, a fork while pages are missing gives the child every page, threads
//! fault concurrently, a checkpoint taken while pages are missing restarts
//! right, and an image truncated after the start ends the program with a
//! message naming the image instead of zeros or a hang.

mod common;

use common::*;
use std::process::Command;

/// The trace line the loader prints (CKPT_DEBUG=1) when the pager starts.
const PAGER_STARTS: &str = "lazy restart: regions registered with the userfaultfd; the pager starts";

/// Build lazy.c (`flags`: extra compiler flags), run it with `mib mode`,
/// checkpoint it at a random moment; returns the directory, image and first run.
fn checkpointed(tag: &str, mib: &str, mode: &str, bits: Bits, flags: &[&str]) -> (Dir, std::path::PathBuf, Outcome) {
    let dir = Dir::new(&format!("lazy_{tag}{}", bits.tag()));
    dir.compile_bits("lazy.c", "lazy", &[&["-pthread"], flags].concat(), bits);
    let image = dir.join("lazy.ckpt");
    let first = checkpoint(ckpt(&dir, &["./lazy", mib, mode]), &image);
    assert_image_bits(&image, bits);
    (dir, image, first)
}

/// The restart command with `CKPT_LAZY=lazy` and the loader's trace on.
fn lazy_cmd(image: &std::path::Path, dir: &Dir, lazy: &str) -> Command {
    let mut c = restart_cmd(image, dir.path());
    c.env("CKPT_LAZY", lazy).env("CKPT_DEBUG", "1");
    c
}

/// The restart was lazy (the pager started) and nothing was refused.
fn assert_lazy(o: &Outcome) {
    assert!(o.stderr.contains(PAGER_STARTS), "the restart was not lazy\n{o}");
    assert!(!o.stderr.contains("lazy restart not possible"), "{o}");
}

/// Checkpoint, restart lazily, every word checked at once after the restart.
fn continues(mode: &str, lazy: &str, bits: Bits) {
    let (dir, image, first) = checkpointed(&format!("{mode}_{lazy}"), "32", mode, bits, &[]);
    let second = run(lazy_cmd(&image, &dir, lazy));
    second.assert_ok("lazy restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_lazy(&second);
    assert_continues(&first, &second, 60);
}

#[test]
fn lazy_restart_continues_with_every_word() {
    continues("all", "1", Bits::B64);
}

#[test]
fn lazy_restart_continues_with_every_word_32bit() {
    continues("all", "1", Bits::B32);
}

/// Pages only on first touch: the program touches them in order, one MiB a tick.
#[test]
fn lazy_restart_on_faults_only() {
    continues("slow", "faults", Bits::B64);
}

#[test]
fn lazy_restart_on_faults_only_32bit() {
    continues("slow", "faults", Bits::B32);
}

/// MADV_DONTNEED of memory that has not arrived and of memory that has: zeros
/// both, never the image's data (the pager must not fill them afterwards).
#[test]
fn lazy_restart_dontneed_reads_zeros() {
    continues("dontneed", "faults", Bits::B64);
}

#[test]
fn lazy_restart_dontneed_reads_zeros_32bit() {
    continues("dontneed", "faults", Bits::B32);
}

/// mremap of memory whose pages have not arrived (the pager fills them at the
/// new address), and munmap + mmap of another part (fresh zeros, never the
/// image's words).
#[test]
fn lazy_restart_follows_mremap_and_munmap() {
    continues("remap", "faults", Bits::B64);
}

#[test]
fn lazy_restart_follows_mremap_and_munmap_32bit() {
    continues("remap", "1", Bits::B32);
}

/// One page in every 64 KiB replaced by fresh memory from the top down while
/// a thread reads upwards: where they meet, the ranges the pager copies for
/// that thread's faults cross mappings the program has just made, and every
/// page around them must still arrive.
#[test]
fn lazy_restart_around_new_mappings() {
    continues("holes", "faults", Bits::B64);
}

#[test]
fn lazy_restart_around_new_mappings_32bit() {
    continues("holes", "faults", Bits::B32);
}

#[test]
fn lazy_restart_around_new_mappings_background() {
    continues("holes", "1", Bits::B64);
}

/// A fork while most pages are missing: the child checks every word.
#[test]
fn lazy_restart_fork_gives_the_child_every_page() {
    continues("fork", "faults", Bits::B64);
}

#[test]
fn lazy_restart_fork_gives_the_child_every_page_32bit() {
    continues("fork", "1", Bits::B32);
}

/// Four threads (in the image, restarted with their tids) fault at once.
#[test]
fn lazy_restart_threads_fault_together() {
    continues("threads", "faults", Bits::B64);
}

#[test]
fn lazy_restart_threads_fault_together_background() {
    continues("threads", "1", Bits::B64);
}

/// A second checkpoint while pages are still missing (faults only, checked one
/// MiB a tick): the image is complete, and restarts (eagerly) with every word.
#[test]
fn lazy_restart_then_checkpoint_while_pages_are_missing() {
    let (dir, image, first) = checkpointed("again", "32", "slow", Bits::B64, &[]);
    let mut p = Proc::spawn(lazy_cmd(&image, &dir, "faults"));
    p.wait_for("RESTARTED");
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let second = p.finish();
    second.assert_checkpointed("the lazily restarted run, checkpointed again");
    assert_lazy(&second);
    assert!(!second.has("DONE"), "{second}");
    assert_image(&image);
    let third = restart(&image, dir.path());
    third.assert_ok("the restart of the second image");
    let all: Vec<u64> = first.ticks().into_iter().chain(second.ticks()).chain(third.ticks()).collect();
    assert_eq!(all, (1..=60).collect::<Vec<_>>(), "ticks do not continue\n{first}\n{second}\n{third}");
    assert!(third.has("DONE"), "{third}");
}

/// A piece of the image damaged where only the pager reads it (the large
/// region, restored lazily, so the loader does not check it before the start):
/// the program runs, and when the pager reads the piece it ends the program by
/// SIGKILL with a message naming the image and the piece, before the program
/// could see a wrong word.
fn damaged(bits: Bits) {
    let (dir, image, _) = checkpointed("damaged", "48", "slow", bits, &[]);
    let len = std::fs::metadata(&image).unwrap().len();
    // The middle of the file is the 48 MiB buffer's data (it is most of the file).
    let mut data = std::fs::read(&image).unwrap();
    data[(len / 2) as usize] ^= 0x40;
    std::fs::write(&image, &data).unwrap();
    let o = run(lazy_cmd(&image, &dir, "faults"));
    assert_lazy(&o);
    assert_killed_with(&o, "the page data is damaged (piece ");
    assert!(o.has("RESTARTED"), "the program should have run before the pager met the piece\n{o}");
}

/// Ended by SIGKILL, with `what` in a `ckpt restart:` line naming the image, and
/// no wrong word seen, no end reached.
fn assert_killed_with(o: &Outcome, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "the program must be ended by SIGKILL\n{o}");
    assert!(!o.has("FAIL") && !o.has("DONE"), "{o}");
    let line = o.stderr.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?}\n{o}"));
    assert!(line.starts_with("ckpt restart: ") && line.contains("lazy.ckpt"), "{o}");
    assert!(line.contains("the program is stopped"), "{o}");
}

#[test]
fn lazy_restart_of_a_damaged_piece_says_so() {
    damaged(Bits::B64);
}

#[test]
fn lazy_restart_of_a_damaged_piece_says_so_32bit() {
    damaged(Bits::B32);
}

/// The image truncated after the start, while pages are missing. On a local
/// file system the kernel refuses to write an executable that runs (ETXTBSY,
/// Linux 6.18 here), so the image cannot change under the pager; a kernel or
/// file system that lets it (NFS, FUSE) must get the message naming the image.
#[test]
fn lazy_restart_of_an_image_truncated_after_the_start() {
    let (dir, image, _) = checkpointed("trunc", "48", "slow", Bits::B64, &[]);
    let mut p = Proc::spawn(lazy_cmd(&image, &dir, "faults"));
    p.wait_for("RESTARTED");
    match std::fs::OpenOptions::new().write(true).open(&image) {
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(26), "opening the running image for writing: {e}");
            let o = p.finish();
            o.assert_ok("the lazy restart, its image left alone");
            assert!(o.has("DONE"), "{o}");
        }
        Ok(f) => {
            f.set_len(std::fs::metadata(&image).unwrap().len() / 2).unwrap();
            let o = p.finish();
            assert_killed_with(&o, "the image became unreadable");
            assert!(o.stderr.contains("unexpected end of file"), "{o}");
        }
    }
}

/// Continue mode: a program checkpointed with `ckpt -c` is restarted lazily
/// (faults only) and checkpointed again at once, while most pages are missing:
/// the background writer's image is whole (it restarts with every word), and
/// the lazily restarted program goes on to its end.
#[test]
fn lazy_restart_in_continue_mode_checkpoints_whole_images() {
    let dir = Dir::new("lazy_continue");
    dir.compile("lazy.c", "lazy", &["-pthread"]);
    let image = dir.join("lazy.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./lazy", "32", "slow"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    wait_written(&dir, &image);
    let _ = p.kill();
    assert_image(&image);
    let mut r = Proc::spawn(lazy_cmd(&image, &dir, "faults"));
    r.wait_for("RESTARTED");
    std::fs::remove_file(&image).unwrap();
    r.signal("TSTP");
    wait_written(&dir, &image);
    let second = r.finish();
    second.assert_ok("the lazily restarted program, checkpointed in continue mode");
    assert_lazy(&second);
    assert!(second.has("DONE"), "{second}");
    assert_image(&image);
    let third = restart(&image, dir.path());
    third.assert_ok("the restart of the image written while pages were missing");
    assert!(third.has("RESTARTED") && third.has("DONE"), "{third}");
}

/// Wait until `image` exists and no temporary file is left in `dir`.
fn wait_written(dir: &Dir, image: &std::path::Path) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (!image.exists() || !dir.leftovers().is_empty()) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(image.exists(), "{} was not written", image.display());
}

/// The unprivileged kind of userfaultfd (UFFD_USER_MODE_ONLY), which is what a
/// user without CAP_SYS_PTRACE gets here: as `nobody` when the test runs as
/// root. The restart says what that kind cannot do, and every word arrives.
#[test]
fn lazy_restart_unprivileged() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap();
    let dir = if root { Dir::new_public("lazy_nobody") } else { Dir::new("lazy_nobody") };
    dir.compile("lazy.c", "lazy", &["-pthread"]);
    let image = dir.join("lazy.ckpt");
    let as_user = |prog: &std::path::Path, args: &[&str]| {
        let mut c = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(prog);
            c
        } else {
            Command::new(prog)
        };
        c.args(args).current_dir(dir.path());
        c
    };
    let ckpt_bin = if root { dir.copy_dist().join("bin/ckpt") } else { ckpt_bin() };
    let first = checkpoint(as_user(&ckpt_bin, &["./lazy", "32", "all"]), &image);
    let mut c = as_user(&image, &[]);
    c.env_clear().env("PATH", "/usr/bin:/bin").env("CKPT_TEST_RESTART_SHELL", "1");
    c.env("CKPT_LAZY", "1").env("CKPT_DEBUG", "1");
    let second = run(c);
    second.assert_ok("the unprivileged lazy restart");
    assert_lazy(&second);
    if root {
        assert!(second.stderr.contains("note: lazy restart with an unprivileged userfaultfd"), "{second}");
    }
    assert_continues(&first, &second, 60);
}

/// A python3 interpreter (tests/c/pyheap.py: records and a 24 MiB pattern, in
/// malloc's mmap regions) restarted lazily: its memory arrives while it runs,
/// and it ends with the digest of a run that was not checkpointed.
#[test]
fn lazy_restart_of_python3() {
    let dir = Dir::new("lazy_python");
    let (python, want) = pyheap_reference(&dir, &[]);
    let image = dir.join("py.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "py.ckpt", &python, "pyheap.py"]), &image);
    let second = run(lazy_cmd(&image, &dir, "1"));
    second.assert_ok("lazy restart of python3");
    assert_lazy(&second);
    assert_continues(&first, &second, 60);
    assert!(second.has(&want), "the digest differs from the reference run's {want:?}\n{second}");
}
