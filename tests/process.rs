//! The rest of a process's state (issue 13): pending signals, the per-process
//! settings and limits, the flags of each mapping. Each C program records its
//! state before the checkpoint and checks it at every step after the restart;
//! the test checkpoints it at a moment it does not choose exactly. Each for the
//! 64-bit program and the same source built with `-m32`.

mod common;

use common::*;

/// Checkpoint `name` (from `src`) under `ckpt`, restart it, check the continuation.
fn cycle_bits(name: &str, src: &str, bits: Bits) -> (Outcome, Outcome) {
    let dir = Dir::new(&format!("proc-{name}{}", bits.tag()));
    dir.compile_bits(src, name, &[], bits);
    let image = dir.join(&format!("{name}.ckpt"));
    let first = checkpoint(ckpt(&dir, &[&format!("./{name}")]), &image);
    assert_image_bits(&image, bits);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
    (first, second)
}

fn pending(bits: Bits) {
    let (first, second) = cycle_bits("pending_signals", "pending_signals.c", bits);
    assert!(!first.stderr.contains("warning"), "{first}");
    assert!(second.has("PENDING ok") && second.has("DONE pending"), "{second}");
    assert!(!second.stderr.contains("warning"), "{second}");
}

/// A blocked SIGUSR2 (kill), two SIGRTMIN+1 with sigqueue values in order and a
/// SIGRTMIN+2, process-wide; a SIGWINCH (tgkill) and a SIGRTMIN+3 queued for the
/// thread: all pending again after the restart, each in its queue, with its
/// siginfo (code, sender pid and uid, value).
#[test]
fn pending_signals_come_back_with_their_siginfo() {
    pending(Bits::B64);
}

/// The same, 32-bit.
#[test]
fn pending_signals_come_back_with_their_siginfo_32bit() {
    pending(Bits::B32);
}

fn settings(bits: Bits) {
    let (first, second) = cycle_bits("proc_settings", "proc_settings.c", bits);
    assert!(first.has("SETTINGS"), "{first}");
    assert!(second.has("DONE settings"), "{second}");
    assert!(!second.stderr.contains("warning"), "{second}");
}

/// umask, nice, every rlimit (soft and hard, lowered), personality,
/// no_new_privs, the parent-death signal, dumpable, timer slack, the
/// child-subreaper flag, oom_score_adj, THP_DISABLE, a membarrier registration,
/// supplementary groups, and the flags of six mappings (mlock, MADV_DONTFORK,
/// MADV_WIPEONFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_GROWSDOWN) are as they
/// were after the restart, and a plain mapping has not gained MAP_NORESERVE.
#[test]
fn process_settings_and_mapping_flags_come_back() {
    settings(Bits::B64);
}

/// The same, 32-bit.
#[test]
fn process_settings_and_mapping_flags_come_back_32bit() {
    settings(Bits::B32);
}

fn timers(bits: Bits) {
    let (_, second) = cycle_bits("posix_timers", "posix_timers.c", bits);
    assert!(second.has("TIMER a fired") && second.has("DONE timers"), "{second}");
    assert!(!second.stderr.contains("warning"), "{second}");
}

/// Five POSIX timers (MONOTONIC periodic with a signal and a value, REALTIME to
/// the thread, BOOTTIME and the process CPU clock without a signal, one never
/// armed) keep their ids, clocks, intervals and remaining time across the
/// restart, and the periodic one keeps sending its signal with its siginfo.
#[test]
fn posix_timers_come_back_with_their_ids() {
    timers(Bits::B64);
}

/// The same, 32-bit.
#[test]
fn posix_timers_come_back_with_their_ids_32bit() {
    timers(Bits::B32);
}

/// A sleep of each kind (nanosleep with and without rem, clock_nanosleep
/// absolute and relative, poll, select, ppoll) that the checkpoint
/// interrupts neither returns EINTR nor returns early in the restarted process.
/// Four checkpoints at random moments; the kinds they fell into are printed.
#[test]
fn interrupted_sleeps_finish_after_restart() {
    let mut across = Vec::new();
    for _ in 0..4 {
        let (_, second) = cycle_bits("sleeps", "sleeps.c", Bits::B64);
        assert!(second.has("DONE sleeps"), "{second}");
        across.push(second.line("RESTARTED").unwrap_or("").to_string());
    }
    eprintln!("checkpoints fell: {across:?}");
}
