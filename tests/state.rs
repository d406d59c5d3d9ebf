//! End-to-end, one kernel behaviour each: a small C program (tests/c) checks its
//! own state at every step before and after the restart; the test checkpoints it
//! at a moment it does not choose exactly and checks the run continued whole.
//! Each behaviour is checked for the 64-bit program and for the same source built
//! with `-m32` (the tests whose names end in `_32bit`).

mod common;

use common::*;

/// Checkpoint `prog` (compiled from `src`) under `ckpt`, restart it from a
/// scrubbed environment, and check the continuation. Returns both transcripts.
fn cycle(name: &str, src: &str, env: &[(&str, &str)]) -> (Outcome, Outcome) {
    cycle_bits(name, src, env, Bits::B64)
}

/// The same for a program of BITS.
fn cycle_bits(name: &str, src: &str, env: &[(&str, &str)], bits: Bits) -> (Outcome, Outcome) {
    cycle_in(&format!("{name}{}", bits.tag()), name, src, &[], env, bits)
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

/// The registers of the interrupted instruction come back from the signal frame:
/// xmm0-7, the x87 stack and the MXCSR rounding mode, live in a busy loop the
/// checkpoint lands in.
#[test]
fn restart_preserves_sse_and_x87_registers() {
    cycle("fpu_sse", "fpu_sse.c", &[]);
}

/// Running the same image twice gives the same continuation, whole each time.
#[test]
fn restart_twice_gives_the_same_continuation() {
    twice(Bits::B64);
}

/// The same for a 32-bit image.
#[test]
fn restart_twice_gives_the_same_continuation_32bit() {
    twice(Bits::B32);
}

fn twice(bits: Bits) {
    let dir = Dir::new(&format!("twice{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
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
/// the child it forked: the child writes no image and stops, as it would without
/// ckpt. The program then exits, which leaves the stopped child alone in an
/// orphaned process group: the kernel sends it SIGHUP and SIGCONT (POSIX job
/// control), and it ends instead of staying stopped forever. (That the child does
/// stop, stays stopped and goes on when continued is checked in continue mode,
/// below, where the program stays.)
#[test]
fn process_group_signal_checkpoints_only_the_program() {
    process_group_signal(Bits::B64, false);
}

#[test]
fn process_group_signal_checkpoints_only_the_program_32bit() {
    process_group_signal(Bits::B32, false);
}

/// The same in continue mode: the program checkpoints and goes on; the child is
/// stopped, stays stopped, and runs to its end once continued.
#[test]
fn process_group_signal_stops_the_forked_child_in_continue_mode() {
    process_group_signal(Bits::B64, true);
}

#[test]
fn process_group_signal_stops_the_forked_child_in_continue_mode_32bit() {
    process_group_signal(Bits::B32, true);
}

/// The state letter of /proc/PID/stat, None once the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Poll up to 5 s for `f` to hold.
fn within_5s(f: impl Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !f() {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

fn process_group_signal(bits: Bits, cont: bool) {
    let dir = Dir::new(&format!("fork_tstp{}{}", if cont { "_c" } else { "" }, bits.tag()));
    dir.compile_bits("fork_tstp.c", "fork_tstp", &[], bits);
    let image = dir.join("fork_tstp.ckpt");
    let mut cmd = ckpt(&dir, if cont { &["-c", "./fork_tstp"][..] } else { &["./fork_tstp"][..] });
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = Proc::spawn(cmd);
    // The two processes print in either order.
    p.wait_for("CHILD 3");
    if !p.lines().iter().any(|l| l == "READY") {
        p.wait_for("READY");
    }
    let line = p.lines().iter().find(|l| l.starts_with("CHILD PID")).unwrap().clone();
    let child: u32 = line.strip_prefix("CHILD PID").unwrap().trim().parse().unwrap();
    std::thread::sleep(random_delay(20, 200));
    let st = std::process::Command::new("kill").args(["-TSTP", "--"]).arg(format!("-{}", p.pid())).status().unwrap();
    assert!(st.success());
    if cont {
        assert!(within_5s(|| proc_state(child) == Some('T')), "the child did not stop\n{}", p.stderr_now());
        assert!(within_5s(|| image.exists()), "no image\n{}", p.stderr_now());
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(proc_state(child), Some('T'), "the child did not stay stopped");
        let st = std::process::Command::new("kill").args(["-CONT", &child.to_string()]).status().unwrap();
        assert!(st.success());
    }
    let first = p.finish();
    if cont {
        first.assert_ok("the program");
    } else {
        first.assert_checkpointed("the program");
    }
    if cont {
        assert!(first.has("CHILD DONE") && first.has("DONE"), "the child did not go on after SIGCONT\n{first}");
    } else {
        // Stopped, then hung up when the program's exit orphaned its group; or,
        // if it took the signal only after that (a loaded machine), not stopped
        // at all: the kernel discards SIGTSTP in an orphaned group, as it would
        // without ckpt. Either way it is not left stopped.
        assert!(within_5s(|| proc_state(child).is_none()), "the child was left behind: {:?}", proc_state(child));
    }
    // Nothing from ckpt but the program's line after its checkpoint, and the
    // warning that its child (alive: it ticks for a second) is not in the image,
    // which the restart and `ckpt info` say again.
    let ours = first.stderr.lines().filter(|l| l.starts_with("ckpt:")).collect::<Vec<_>>();
    let left_out = format!("ckpt: warning: 1 child process is not in the image ({child} fork_tstp)");
    assert!(ours.len() == 2 && ours[0].starts_with(&left_out), "{first}");
    assert!(ours[1].starts_with("ckpt: fork_tstp.ckpt written ("), "{first}");
    assert_image_bits(&image, bits);
    assert_image(&image);
    let info = ckpt_info(&image);
    assert!(info.contains("NOT RESTORED: 1 child process the program had at checkpoint time"), "{info}");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".ckpt")).count(), 1, "{names:?}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(
        second.stderr.contains("after restart, 1 child process the program had at checkpoint time is not there"),
        "{second}"
    );
    if cont {
        // The restart goes on from the moment of the checkpoint.
        let (a, b) = (first.ticks(), second.ticks());
        assert!(
            !b.is_empty() && b[0] > 1 && b == (b[0]..=60).collect::<Vec<_>>() && a.contains(&(b[0] - 1)),
            "{second}"
        );
    } else {
        assert_continues(&first, &second, 60);
    }
}

// The same behaviours for 32-bit programs (`cc -m32`, the lib32 runtime, an i386
// checkpoint restarted by the i386 loader under this 64-bit kernel).

/// Handlers (which return through the vDSO's sigreturn trampoline on i386, since
/// glibc sets no SA_RESTORER there), mask and alternate stack.
#[test]
fn restart_preserves_handlers_mask_and_sigaltstack_32bit() {
    let (_, second) = cycle_bits("signals", "signals.c", &[], Bits::B32);
    assert!(second.has("DONE handlers 60"), "{second}");
}

/// The 32-bit vDSO moved back: glibc's clock_gettime and every system call glibc
/// makes through `__kernel_vsyscall` (`call *%gs:0x10`) work.
#[test]
fn restart_keeps_vdso_clocks_working_32bit() {
    cycle_bits("vdso_time", "vdso_time.c", &[], Bits::B32);
}

/// rseq at the %gs base + __rseq_offset is registered again.
#[test]
fn restart_reregisters_rseq_32bit() {
    cycle_bits("rseq_cpu", "rseq_cpu.c", &[], Bits::B32);
}

/// The original environment of a 32-bit program comes back.
#[test]
fn restart_brings_back_the_original_environment_32bit() {
    cycle_bits("environ", "environ.c", &[("CKPT_TEST_ORIGINAL", "from the first shell")], Bits::B32);
}

/// PR_SET_MM_MAP from a compat process: brk and [heap] as in 64 bits.
#[test]
fn heap_grows_after_restart_32bit() {
    let (_, second) = cycle_bits("brk_heap", "brk_heap.c", &[], Bits::B32);
    assert!(second.has("DONE blocks 12000"), "{second}");
}

/// Restored anonymous memory is anonymous in a 32-bit process too.
#[test]
fn restored_anonymous_memory_zero_fills_after_dontneed_32bit() {
    cycle_bits("anon_dontneed", "anon_dontneed.c", &[], Bits::B32);
}

/// The i386 signal frame (its FXSAVE/XSAVE area) brings the SSE, x87 and MXCSR
/// state back.
#[test]
fn restart_preserves_sse_and_x87_registers_32bit() {
    cycle_bits("fpu_sse", "fpu_sse.c", &[], Bits::B32);
}

/// fork, pipe and waitpid in a restarted 32-bit process.
#[test]
fn fork_after_restart_32bit() {
    cycle_bits("fork_after", "fork_after.c", &[], Bits::B32);
}
