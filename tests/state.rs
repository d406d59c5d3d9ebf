//! End-to-end, one kernel behaviour each: a small C program (tests/c) checks its
//! own state at every step before and after the restart; the test checkpoints it
//! at a moment it does not choose exactly and checks the run continued whole.

mod common;

use common::*;

/// Checkpoint `prog` (compiled from `src`) under `ckpt`, restart it from a
/// scrubbed environment, and check the continuation. Returns both transcripts.
fn cycle(name: &str, src: &str, env: &[(&str, &str)]) -> (Outcome, Outcome) {
    let dir = Dir::new(name);
    dir.compile(src, name, &[]);
    let image = dir.join(&format!("{name}.ckpt"));
    let mut cmd = ckpt(&dir, &[&format!("./{name}")]);
    cmd.envs(env.iter().copied());
    let first = checkpoint(cmd, &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
    (first, second)
}

/// An SA_SIGINFO handler on the alternate stack still fires with its siginfo, its
/// sa_mask and flags are intact, SIGPIPE stays ignored and SIGUSR2 stays blocked.
#[test]
fn restart_preserves_handlers_mask_and_sigaltstack() {
    let (_, second) = cycle("signals", "signals.c", &[]);
    assert!(second.has("DONE handlers 60"), "{second}");
}

/// clock_gettime (REALTIME, MONOTONIC) through the moved vDSO agrees with the
/// system call, gettimeofday with time(2), and [vdso] is at AT_SYSINFO_EHDR.
#[test]
fn restart_keeps_vdso_clocks_working() {
    cycle("vdso_time", "vdso_time.c", &[]);
}

/// glibc's rseq area is registered again: cpu_id follows sched_setaffinity and
/// sched_getcpu() agrees with getcpu(2).
#[test]
fn restart_reregisters_rseq() {
    cycle("rseq_cpu", "rseq_cpu.c", &[]);
}

/// The original environment comes back (getenv and /proc/self/environ); the
/// restarting shell's variables do not leak in.
#[test]
fn restart_brings_back_the_original_environment() {
    cycle("environ", "environ.c", &[("CKPT_TEST_ORIGINAL", "from the first shell")]);
}

/// malloc and sbrk grow the heap after a restart, [heap] ends at the break, and
/// every block allocated before the checkpoint keeps its contents.
#[test]
fn heap_grows_after_restart() {
    let (_, second) = cycle("brk_heap", "brk_heap.c", &[]);
    assert!(second.has("DONE blocks 12000"), "{second}");
}

/// Restored anonymous memory is anonymous: MADV_DONTNEED reads back zeros.
#[test]
fn restored_anonymous_memory_zero_fills_after_dontneed() {
    cycle("anon_dontneed", "anon_dontneed.c", &[]);
}

/// fork, pipe and waitpid work in the restarted process.
#[test]
fn fork_after_restart() {
    cycle("fork_after", "fork_after.c", &[]);
}

/// Running the same image twice gives the same continuation, whole each time.
#[test]
fn restart_twice_gives_the_same_continuation() {
    let dir = Dir::new("twice");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter"]), &image);
    let before = std::fs::read(&image).unwrap();
    let a = restart(&image, dir.path());
    let b = restart(&image, dir.path());
    a.assert_ok("first restart");
    b.assert_ok("second restart");
    assert_continues(&first, &a, 60);
    assert_continues(&first, &b, 60);
    assert_eq!(a.ticks(), b.ticks());
    assert_eq!(std::fs::read(&image).unwrap(), before, "restarting changed the image file");
}

/// SIGTSTP sent to the process group (as Ctrl-Z does) checkpoints the program, not
/// the child it forked: the child neither stops nor writes an image, and runs to
/// its end.
#[test]
fn process_group_signal_checkpoints_only_the_program() {
    let dir = Dir::new("fork_tstp");
    dir.compile("fork_tstp.c", "fork_tstp", &[]);
    let image = dir.join("fork_tstp.ckpt");
    let mut cmd = ckpt(&dir, &["./fork_tstp"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    p.wait_for("CHILD 3");
    std::thread::sleep(random_delay(20, 200));
    let st = std::process::Command::new("kill").args(["-TSTP", "--"]).arg(format!("-{}", p.pid())).status().unwrap();
    assert!(st.success());
    let first = p.finish();
    first.assert_ok("the program");
    assert!(first.has("CHILD DONE"), "the child stopped or died\n{first}");
    assert_image(&image);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".ckpt")).count(), 1, "{names:?}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}
