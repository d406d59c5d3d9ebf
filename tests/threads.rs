//! Multi-threaded programs (docs/threads.md): every thread stopped wherever it is,
//! checkpointed at a moment the test does not choose exactly, restarted with the
//! same pid and tids, every thread going on.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Compile `tests/c/SRC` with `cc_cmd` (static builds with libckpt.a).
fn build(dir: &Dir, cc_cmd: &str, src: &str, out: &str, extra: &[&str]) -> PathBuf {
    let exe = dir.join(out);
    let res = Command::new(cc_cmd)
        .args(["-O1", "-g", "-Wall", "-pthread", "-o"])
        .arg(&exe)
        .arg(root().join("tests/c").join(src))
        .arg("-I")
        .arg(root().join("tests/c"))
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc_cmd}: {e} (cargo xtask setup installs it)"));
    assert!(res.status.success(), "{cc_cmd} {src} failed:\n{}", String::from_utf8_lossy(&res.stderr));
    exe
}

/// Checkpoint `args` (run under `ckpt` with `opts`) at a random moment, restart
/// the image, and check the ticks continue, with `marker` printed by the restart.
fn round_trip(dir: &Dir, prog: &str, opts: &[&str], args: &[&str], total: u64, marker: &str) -> (Outcome, Outcome) {
    let image = dir.join(&format!("{prog}.ckpt"));
    let mut a: Vec<&str> = opts.to_vec();
    let p = format!("./{prog}");
    a.push(&p);
    a.extend_from_slice(args);
    let first = checkpoint(ckpt(dir, &a), &image);
    // Only the line every checkpoint prints (`ckpt: NAME written (...)`), and
    // what it says about descriptors the test harness hands the program (a pipe
    // whose other end is the harness's): about files, not threads.
    let extra: Vec<&str> = first
        .stderr
        .lines()
        .filter(|l| !(l.starts_with("ckpt: ") && l.contains(" written (")))
        .filter(|l| !l.starts_with("ckpt: warning: descriptor "))
        .collect();
    assert!(extra.is_empty(), "the checkpoint said something: {extra:?}\n{first}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has(marker), "no {marker:?} after the restart\n{second}");
    assert_continues(&first, &second, total);
    (first, second)
}

/// Worker threads counting under an error-checking mutex: after the restart every
/// worker has its old tid (it checks gettid() against what it recorded), getpid()
/// is the old pid, pthread_kill reaches each worker, a new thread can be created
/// and joined, every unlock by the owner succeeds.
#[test]
fn threads_keep_their_ids_and_go_on() {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("threads_basic{}", bits.tag()));
        dir.compile_bits("threads_basic.c", "threads_basic", &["-pthread"], bits);
        round_trip(&dir, "threads_basic", &[], &["60", "6"], 60, "RESTARTED threads ok (6 workers)");
    }
}

/// The main thread blocks the trigger, so a worker (on a 64 KiB stack, too small
/// for the checkpoint path, which runs on the runtime's own stack) takes it and
/// stops the others, the main thread included; the restart resumes each where it
/// was, the main thread as the thread-group leader.
#[test]
fn a_worker_takes_the_checkpoint() {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("threads_worker_coord{}", bits.tag()));
        dir.compile_bits("threads_basic.c", "threads_basic", &["-pthread"], bits);
        let args = ["60", "4", "worker-takes-trigger"];
        round_trip(&dir, "threads_basic", &[], &args, 60, "RESTARTED threads ok (4 workers)");
        let info = ckpt_info(&dir.join("threads_basic.ckpt"));
        let coord = info.lines().find(|l| l.contains("(took the checkpoint")).unwrap_or("").to_string();
        let taken = info.lines().find(|l| l.starts_with("taken:")).unwrap_or("").to_string();
        let pid = taken.rsplit("pid ").next().unwrap_or("").trim_end_matches(')').to_string();
        assert!(!coord.contains(&format!("tid {pid} ")), "the main thread took the checkpoint:\n{info}");
    }
}

/// The same program linked statically with libckpt.a, glibc and musl.
#[test]
fn static_glibc_and_musl_threads() {
    for (name, cc_cmd) in [("threads_static_glibc", "cc"), ("threads_static_musl", "musl-gcc")] {
        let dir = Dir::new(name);
        let lib = dist().join("lib/libckpt.a").display().to_string();
        build(&dir, cc_cmd, "threads_basic.c", "threads_basic", &["-static", &lib]);
        round_trip(&dir, "threads_basic", &[], &["60", "4"], 60, "RESTARTED threads ok (4 workers)");
    }
}

/// Threads caught in a condition-variable wait, a blocking read on a pipe,
/// nanosleep, a signal handler, holding normal, recursive and robust mutexes, and
/// going round a barrier: all stop, all go on after the restart.
#[test]
fn threads_stopped_wherever_they_are() {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("threads_blocking{}", bits.tag()));
        dir.compile_bits("threads_blocking.c", "threads_blocking", &["-pthread"], bits);
        round_trip(&dir, "threads_blocking", &[], &["60"], 60, "RESTARTED blocking threads");
    }
}

/// Nine worker threads, each in a different sleep (nanosleep with and without
/// rem, clock_nanosleep absolute and relative, poll, select, ppoll, epoll_wait,
/// a condition-variable wait with a timeout), stopped in it by the checkpoint:
/// after the restart none returns EINTR or early, every worker is joined. The
/// same in continue mode, in the process that goes on and after its restart.
fn thread_sleeps(bits: Bits) {
    let dir = Dir::new(&format!("threads_sleeps{}", bits.tag()));
    dir.compile_bits("threads_sleeps.c", "threads_sleeps", &["-pthread"], bits);
    let (_, second) = round_trip(&dir, "threads_sleeps", &[], &["60"], 60, "RESTARTED thread sleeps");
    assert!(second.has("DONE thread sleeps"), "{second}");
    let (first, second) = continue_and_restart(&dir, "threads_sleeps", "RESTARTED thread sleeps");
    assert!(first.has("DONE thread sleeps") && second.has("DONE thread sleeps"), "{first}\n{second}");
}

#[test]
fn sleeps_of_stopped_threads_finish_after_restart() {
    thread_sleeps(Bits::B64);
}

/// The same, 32-bit (the calls go through the vDSO's `__kernel_vsyscall`).
#[test]
fn sleeps_of_stopped_threads_finish_after_restart_32bit() {
    thread_sleeps(Bits::B32);
}

/// Signals pending for a worker alone (pthread_kill, two pthread_sigqueue with
/// values) are pending for it again after the restart, in order, with their
/// siginfo; each worker's nice value and timer slack come back; a
/// SIGEV_THREAD_ID timer still signals the worker it signalled. `ckpt info`
/// names that worker as the timer's target. A SIGUSR2 kill()ed to the process is pending for it again, also when a
/// worker took the checkpoint (only the leader may queue it back).
fn thread_state(bits: Bits) {
    let dir = Dir::new(&format!("threads_pending{}", bits.tag()));
    dir.compile_bits("threads_pending.c", "threads_pending", &["-pthread"], bits);
    for args in [&["60"][..], &["60", "worker-takes-trigger"]] {
        let (_, second) = round_trip(&dir, "threads_pending", &[], args, 60, "RESTARTED thread state");
        assert!(second.has("THREAD STATE ok"), "{args:?}: {second}");
        assert!(!second.stderr.contains("warning"), "{args:?}: {second}");
        let info = ckpt_info(&dir.join("threads_pending.ckpt"));
        assert!(info.lines().any(|l| l.contains("POSIX timer") && l.contains("to thread ")), "{info}");
    }
}

#[test]
fn per_thread_pending_signals_slack_and_timer_target_come_back() {
    thread_state(Bits::B64);
}

/// The same, 32-bit.
#[test]
fn per_thread_pending_signals_slack_and_timer_target_come_back_32bit() {
    thread_state(Bits::B32);
}

/// CLOCK_MONOTONIC and CLOCK_BOOTTIME of a restarted multi-threaded process go
/// on from where they were at the checkpoint (a time namespace with offsets):
/// the image waits 1.5 s before its restart, and neither clock of either thread
/// moves by more than 700 ms from one tick to the next, nor goes backwards.
fn clocks_go_on(bits: Bits) {
    let dir = Dir::new(&format!("threads_clock{}", bits.tag()));
    dir.compile_bits("threads_clock.c", "threads_clock", &["-pthread"], bits);
    let image = dir.join("threads_clock.ckpt");
    let first = checkpoint(ckpt(&dir, &["./threads_clock", "60"]), &image);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED clocks went on"), "{second}");
    assert_continues(&first, &second, 60);
    assert!(!second.stderr.contains("warning"), "{second}");
    let info = ckpt_info(&image);
    assert!(info.contains("clocks: CLOCK_MONOTONIC "), "{info}");
}

#[test]
fn clocks_go_on_from_the_checkpoint() {
    clocks_go_on(Bits::B64);
}

/// The same, 32-bit.
#[test]
fn clocks_go_on_from_the_checkpoint_32bit() {
    clocks_go_on(Bits::B32);
}

/// pthread_cancel after a restart: a worker in a 5 s nanosleep (still being
/// finished by the runtime when the cancel comes), one in read() on a pipe, one
/// in a condition-variable wait are cancelled at the first tick after the
/// restart, each joined with PTHREAD_CANCELED, its cleanup run, the waiter's
/// mutex free again.
#[test]
fn threads_cancelled_after_restart() {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("threads_cancel{}", bits.tag()));
        dir.compile_bits("threads_cancel.c", "threads_cancel", &["-pthread"], bits);
        let (_, second) = round_trip(&dir, "threads_cancel", &[], &["60"], 60, "RESTARTED cancelling");
        assert!(second.has("CANCELLED ok"), "{second}");
    }
}

/// Continue mode: the checkpoint is written by the background writer while every
/// thread goes on to the end; the image restarts with all of them.
#[test]
fn continue_mode_with_threads() {
    let dir = Dir::new("threads_continue");
    dir.compile("threads_blocking.c", "threads_blocking", &["-pthread"]);
    continue_and_restart(&dir, "threads_blocking", "RESTARTED blocking threads");
}

/// `ckpt -c ./PROG 60` checkpointed at a random moment: the program goes on to
/// the end with every tick, and its image restarts (printing `marker`) to the
/// end too.
fn continue_and_restart(dir: &Dir, prog: &str, marker: &str) -> (Outcome, Outcome) {
    let image = dir.join(&format!("{prog}.ckpt"));
    let mut p = Proc::spawn(ckpt(dir, &["-c", &format!("./{prog}"), "60"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_ok("the program in continue mode");
    assert_eq!(first.ticks(), (1..=60).collect::<Vec<_>>(), "{first}");
    assert!(first.has("DONE"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has(marker), "{second}");
    assert!(second.has("DONE"), "{second}");
    (first, second)
}

/// A burst of trigger signals (a scheduler sending SIGUSR1 again, Ctrl-Z
/// pressed twice): the first starts the checkpoint in one thread, the next reach
/// other threads while it is written. They ask for what is being done and
/// change nothing: one image, no failure said, the program exits with the
/// checkpoint status and the image restarts. (They used to find the
/// configuration locked, take the default one, in which USR1 is no trigger, and
/// pass the signal on: its default action killed the program mid-checkpoint.)
#[test]
fn a_burst_of_triggers_on_other_threads_makes_one_checkpoint() {
    let dir = Dir::new("threads_burst");
    dir.compile("threads_blocking.c", "threads_blocking", &["-pthread"]);
    let image = dir.join("threads_blocking.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-a", "USR1", "./threads_blocking", "60"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    let burst = format!("for i in $(seq 40); do kill -USR1 {} || exit 0; done", p.pid());
    assert!(Command::new("sh").arg("-c").arg(&burst).status().unwrap().success());
    let first = p.finish();
    assert_eq!(first.status.code(), Some(CHECKPOINT_EXIT), "{first}");
    assert!(!first.stderr.contains("failed"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("DONE"), "{second}");
    assert_continues(&first, &second, 60);
}

/// Periodic checkpoints (`-i 1`) of a multi-threaded program: every thread goes
/// on to the end, and the last image restarts with all of them.
#[test]
fn periodic_checkpoints_with_threads() {
    let dir = Dir::new("threads_periodic");
    dir.compile("threads_blocking.c", "threads_blocking", &["-pthread"]);
    let image = dir.join("threads_blocking.ckpt");
    let first = run(ckpt(&dir, &["-i", "1", "./threads_blocking", "100"]));
    first.assert_ok("the program with periodic checkpoints");
    assert_eq!(first.ticks(), (1..=100).collect::<Vec<_>>(), "{first}");
    assert!(first.has("DONE"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the last periodic image");
    assert!(second.has("RESTARTED blocking threads"), "{second}");
    assert!(second.has("DONE"), "{second}");
}

/// A thread that blocks every signal cannot be stopped: the checkpoint fails with
/// a message naming it, nothing is written, and the program goes on to the end.
#[test]
fn thread_blocking_the_stop_signal_fails_the_checkpoint() {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("threads_blocker{}", bits.tag()));
        dir.compile_bits("threads_blocker.c", "threads_blocker", &["-pthread"], bits);
        let mut p = Proc::spawn(ckpt(&dir, &["./threads_blocker", "120"]));
        p.wait_for("READY");
        std::thread::sleep(random_delay(50, 300));
        p.signal("TSTP");
        let o = p.finish();
        o.assert_ok("the program after a failed checkpoint");
        assert_eq!(o.ticks(), (1..=120).collect::<Vec<_>>(), "{o}");
        assert!(o.has("DONE"), "{o}");
        let want = regex_like(&o.stderr);
        assert!(want, "stderr: {}", o.stderr);
        assert!(!dir.join("threads_blocker.ckpt").exists());
        assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());
    }
}

/// `ckpt: checkpoint failed: ... (cannot stop every thread: thread N (blocker)
/// blocks the stop signals (63 and 33); not writing threads_blocker.ckpt)`.
fn regex_like(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        l.starts_with("ckpt: checkpoint failed: Resource temporarily unavailable (cannot stop every thread: thread ")
            && l.ends_with("(blocker) blocks the stop signals (63 and 33); not writing threads_blocker.ckpt)")
    })
}

/// 500 threads checkpoint and restart, each with its tid.
#[test]
fn five_hundred_threads() {
    let dir = Dir::new("threads_500");
    dir.compile("threads_basic.c", "threads_basic", &["-pthread"]);
    round_trip(&dir, "threads_basic", &[], &["200", "500"], 200, "RESTARTED threads ok (500 workers)");
}

/// A restarted multi-threaded process (in its pid namespace) is checkpointed
/// again, and that image restarts too, with the same ids.
#[test]
fn chained_checkpoint_with_threads() {
    let dir = Dir::new("threads_chained");
    dir.compile("threads_basic.c", "threads_basic", &["-pthread"]);
    let image = dir.join("threads_basic.ckpt");
    let first = checkpoint(ckpt(&dir, &["./threads_basic", "90", "4"]), &image);
    let mut p = Proc::spawn(restart_cmd(&image, dir.path()));
    p.wait_for("RESTARTED threads ok");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let second = p.finish();
    second.assert_checkpointed("the restarted process, checkpointed again");
    assert!(!second.has("DONE"), "{second}");
    assert_image(&image);
    let third = restart(&image, dir.path());
    third.assert_ok("the second restart");
    assert!(third.has("RESTARTED threads ok (4 workers)"), "{third}");
    let all: Vec<u64> = first.ticks().into_iter().chain(second.ticks()).chain(third.ticks()).collect();
    assert_eq!(all, (1..=90).collect::<Vec<_>>(), "ticks of the three runs\n{first}\n{second}\n{third}");
    assert!(third.has("DONE"), "{third}");
}

/// The restarted process is a supervisor the shell sees: `kill -TERM` of it reaches
/// the program, which dies of it, and the supervisor dies of the same signal.
#[test]
fn signals_reach_the_restarted_threads_and_the_status_comes_back() {
    let dir = Dir::new("threads_signal");
    dir.compile("threads_basic.c", "threads_basic", &["-pthread"]);
    let image = dir.join("threads_basic.ckpt");
    checkpoint(ckpt(&dir, &["./threads_basic", "400", "3"]), &image);
    let mut p = Proc::spawn(restart_cmd(&image, dir.path()));
    p.wait_for("RESTARTED threads ok");
    p.signal("TERM");
    let o = p.finish();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(15), "{o}");
    assert!(!o.has("DONE"), "{o}");
}

/// python3 with several `threading.Thread` workers updating shared state under a
/// lock: after the restart the workers go on, the total is right, their native
/// ids are the old ones, and a new thread can be started and joined.
#[test]
fn python_threads() {
    let dir = Dir::new("threads_python");
    std::fs::copy(root().join("tests/c/threads.py"), dir.join("threads.py")).unwrap();
    let py = python3();
    let image = dir.join("threads.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "threads.ckpt", &py, "threads.py", "60"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED python threads"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A C program using OpenMP (gcc -fopenmp, libgomp): parallel reductions by a team
/// of four threads give the known sum before and after the restart.
#[test]
fn openmp_program() {
    let dir = Dir::new("threads_openmp");
    dir.compile("omp.c", "omp", &["-fopenmp"]);
    round_trip(&dir, "omp", &[], &["60"], 60, "RESTARTED omp");
}

/// A Java program (OpenJDK: about 20 JVM threads, its own signal handlers, JIT
/// code) running a fixed thread pool that computes a checksum every tick: the
/// restarted JVM goes on, every checksum right.
#[test]
fn java_thread_pool_checksum() {
    let dir = Dir::new("threads_java");
    let out = Command::new("javac")
        .arg("-d")
        .arg(dir.path())
        .arg(root().join("tests/java/Checksum.java"))
        .output()
        .expect("javac is needed: cargo xtask setup installs openjdk-17-jdk-headless");
    assert!(out.status.success(), "javac: {}", String::from_utf8_lossy(&out.stderr));
    let java = std::fs::canonicalize("/usr/bin/java").unwrap().display().to_string();
    let image = dir.join("java.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-n", "java.ckpt", &java, "-cp", ".", "Checksum", "150"]));
    p.wait_for("READY");
    // Past the JVM's start-up (class loading, the first JIT compilations).
    std::thread::sleep(random_delay(600, 1200));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_checkpointed("the checkpointed JVM");
    assert!(!first.has("DONE"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED java"), "{second}");
    assert_continues(&first, &second, 150);
}

/// node with a worker_threads worker: every thread stops, including node's
/// inspector thread, which blocks every signal the C library lets it block (the
/// runtime falls back on signal 33 for it), and the image lists them all.
#[test]
fn node_worker_threads_checkpoint() {
    let dir = Dir::new("threads_node");
    std::fs::copy(root().join("tests/c/worker.js"), dir.join("worker.js")).unwrap();
    let node = std::fs::canonicalize("/usr/bin/node").expect("node is needed: cargo xtask setup installs nodejs");
    let node = node.display().to_string();
    let image = dir.join("node.ckpt");
    checkpoint(ckpt(&dir, &["-n", "node.ckpt", &node, "worker.js", "200"]), &image);
    let info = Command::new(ckpt_bin()).args(["info", "--json"]).arg(&image).output().unwrap();
    let json = String::from_utf8_lossy(&info.stdout);
    let v: serde_json::Value = serde_json::from_str(&json).expect("ckpt info --json is JSON");
    let sec = v["sections"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "threads")).cloned();
    let n = sec.and_then(|s| s["threads"].as_array().map(|a| a.len())).unwrap_or(0);
    assert!(
        n >= 7,
        "node has a main thread, a worker, a libuv pool and V8 platform threads; the image lists {n}: {json}"
    );
}

/// The same node program restarted: its main thread, worker, libuv pool and V8
/// threads come back with their tids, and its event loop's descriptors (epoll,
/// eventfd, the worker's message pipes) with them; the count goes on.
#[test]
fn node_worker_threads_restart() {
    let dir = Dir::new("threads_node_restart");
    std::fs::copy(root().join("tests/c/worker.js"), dir.join("worker.js")).unwrap();
    let node = std::fs::canonicalize("/usr/bin/node").unwrap().display().to_string();
    let image = dir.join("node.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "node.ckpt", &node, "worker.js", "60"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED node"), "{second}");
    assert_continues(&first, &second, 60);
}

/// Threads that start and end all the time (tests/c/threads_churn.c),
/// checkpointed again and again in continue mode: a thread counted but gone
/// before it could be stopped must leave a whole image (it once left a THREADS
/// section of one thread, which every restart refused as damaged). Each image
/// is verified as soon as it is written; the last one restarts and finishes.
#[test]
fn threads_that_come_and_go_leave_whole_images() {
    let dir = Dir::new("threads_churn");
    dir.compile("threads_churn.c", "threads_churn", &["-pthread"]);
    let image = dir.join("threads_churn.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./threads_churn", "200"]));
    p.wait_for("READY");
    let written = |p: &Proc| p.stderr_now().matches(" written (").count();
    for n in 1..=20 {
        std::thread::sleep(random_delay(20, 80));
        p.signal("TSTP");
        let until = Instant::now() + Duration::from_secs(10);
        while written(&p) < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(written(&p), n, "checkpoint {n} not written\n{}", p.stderr_now());
        let v = Command::new(ckpt_bin()).arg("verify").arg(&image).output().unwrap();
        assert!(v.status.success(), "image {n}: {}", String::from_utf8_lossy(&v.stderr));
    }
    let first = p.finish();
    first.assert_ok("the program in continue mode");
    assert_eq!(first.ticks(), (1..=200).collect::<Vec<_>>(), "{first}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED") && second.has("DONE"), "{second}");
}
