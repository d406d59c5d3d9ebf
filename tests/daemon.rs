//! Daemons and forked processes (see "Forked processes and daemons" in README.md):
//! a process that daemonized answers the trigger sent to it and its image
//! restarts; a forked worker that shares the program's process group does not
//! answer a signal meant for the group, and gets the signal's default action
//! exactly as without ckpt (SIGTSTP stops it, SIGUSR1 ends it), unless it
//! installed a handler of its own; a signal queued to the worker alone makes it
//! checkpoint, under a name of its own. Each case for 64- and 32-bit programs.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The state letter of /proc/PID/stat (R, S, T, Z...), or None once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Wait up to 5 s for PID to reach STATE.
fn wait_state(pid: u32, state: char) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if proc_state(pid) == Some(state) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn kill(args: &[&str]) {
    let st = std::process::Command::new("kill").args(args).status().expect("run kill");
    assert!(st.success(), "kill {args:?} failed");
}

/// The `.ckpt` files in DIR.
fn images(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    v.sort();
    v
}

/// The number after `prefix` in the first line that starts with it.
fn number(o: &str, prefix: &str) -> u32 {
    o.strip_prefix(prefix).unwrap().trim().parse().unwrap()
}

/// `ckpt ./daemon MODE`: the parent exits at once, the daemon works; SIGTSTP to
/// the daemon writes `daemon.PID.ckpt` (PID: the daemon's), which restarts and
/// finishes the count with no step lost or repeated.
fn daemon(mode: &str, bits: Bits) {
    let dir = Dir::new(&format!("daemon_{mode}{}", bits.tag()));
    dir.compile_bits("daemon.c", "daemon", &[], bits);
    let mut p = Proc::spawn(ckpt(&dir, &["./daemon", mode]));
    let pid = number(&p.wait_for("DAEMON"), "DAEMON");
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    kill(&["-TSTP", &pid.to_string()]);
    let first = p.finish();
    first.assert_ok("the daemon's parent");
    assert!(!first.has("DONE"), "the daemon finished before the checkpoint\n{first}");
    let name = format!("daemon.{pid}.ckpt");
    assert_eq!(images(dir.path()), vec![name.clone()], "{first}");
    let image = dir.join(&name);
    assert_image_bits(&image, bits);
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

#[test]
fn daemon_after_setsid_checkpoints_and_restarts() {
    daemon("setsid", Bits::B64);
}

#[test]
fn daemon_after_setsid_checkpoints_and_restarts_32bit() {
    daemon("setsid", Bits::B32);
}

/// No setsid: the daemon stays in the process group its exited parent led.
#[test]
fn orphan_without_setsid_checkpoints_and_restarts() {
    daemon("plain", Bits::B64);
}

#[test]
fn orphan_without_setsid_checkpoints_and_restarts_32bit() {
    daemon("plain", Bits::B32);
}

#[test]
fn double_forked_daemon_checkpoints_and_restarts() {
    daemon("double", Bits::B64);
}

#[test]
fn double_forked_daemon_checkpoints_and_restarts_32bit() {
    daemon("double", Bits::B32);
}

/// Start `ckpt [opts] ./worker ARG` in a process group of its own; returns the
/// process and the worker's pid, once both run.
fn worker(dir: &Dir, opts: &[&str], arg: &str) -> (Proc, u32) {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["./worker", arg, "60", "60"]);
    let mut cmd = ckpt(dir, &args);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = Proc::spawn(cmd);
    let pid = number(&p.wait_for("WORKER "), "WORKER");
    p.wait_for("READY");
    p.wait_for("WORK 3");
    (p, pid)
}

/// `kill -TSTP WORKER`: the worker does not checkpoint (its parent, the owner,
/// is alive in its group); it stops, as it would without ckpt, and goes on
/// when continued. Nothing is written.
fn worker_stops(bits: Bits) {
    let dir = Dir::new(&format!("worker_stops{}", bits.tag()));
    dir.compile_bits("worker.c", "worker", &[], bits);
    let (p, w) = worker(&dir, &[], "-");
    std::thread::sleep(random_delay(10, 100));
    kill(&["-TSTP", &w.to_string()]);
    assert!(wait_state(w, 'T'), "the worker did not stop: state {:?}\n{}", proc_state(w), p.stderr_now());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(proc_state(w), Some('T'), "the worker did not stay stopped");
    kill(&["-CONT", &w.to_string()]);
    let o = p.finish();
    o.assert_ok("the program");
    assert!(o.has("WORKER DONE") && o.has("WORKER EXITED 0") && o.has("DONE"), "{o}");
    assert!(images(dir.path()).is_empty(), "{:?}", images(dir.path()));
    assert!(dir.leftovers().is_empty());
}

#[test]
fn forked_worker_stops_on_sigtstp_as_without_ckpt() {
    worker_stops(Bits::B64);
}

#[test]
fn forked_worker_stops_on_sigtstp_as_without_ckpt_32bit() {
    worker_stops(Bits::B32);
}

/// `ckpt -a USR1`: SIGUSR1 to the worker ends it (the default action), as
/// without ckpt; the program sees it killed by signal 10.
fn worker_killed(bits: Bits) {
    let dir = Dir::new(&format!("worker_killed{}", bits.tag()));
    dir.compile_bits("worker.c", "worker", &[], bits);
    let (p, w) = worker(&dir, &["-a", "USR1"], "-");
    std::thread::sleep(random_delay(10, 100));
    kill(&["-USR1", &w.to_string()]);
    let o = p.finish();
    o.assert_ok("the program");
    assert!(o.has("WORKER KILLED 10") && o.has("DONE") && !o.has("WORKER DONE"), "{o}");
    assert!(images(dir.path()).is_empty(), "{:?}", images(dir.path()));
}

#[test]
fn forked_worker_dies_of_sigusr1_trigger_as_without_ckpt() {
    worker_killed(Bits::B64);
}

#[test]
fn forked_worker_dies_of_sigusr1_trigger_as_without_ckpt_32bit() {
    worker_killed(Bits::B32);
}

/// A worker that installed its own SIGTSTP handler gets it called; it neither
/// stops nor checkpoints.
fn worker_handler(bits: Bits) {
    let dir = Dir::new(&format!("worker_handler{}", bits.tag()));
    dir.compile_bits("worker.c", "worker", &[], bits);
    let (p, w) = worker(&dir, &[], "handler");
    std::thread::sleep(random_delay(10, 100));
    kill(&["-TSTP", &w.to_string()]);
    let o = p.finish();
    o.assert_ok("the program");
    assert!(o.has("WORKER GOT 20") && o.has("WORKER DONE") && o.has("WORKER EXITED 0"), "{o}");
    assert!(images(dir.path()).is_empty(), "{:?}", images(dir.path()));
}

#[test]
fn forked_workers_own_handler_wins() {
    worker_handler(Bits::B64);
}

#[test]
fn forked_workers_own_handler_wins_32bit() {
    worker_handler(Bits::B32);
}

/// SIGTSTP queued to the worker alone (`kill -q`, sigqueue): the worker
/// checkpoints into `worker.PID.ckpt` and exits with the checkpoint status (85);
/// the program goes on; the worker's image restarts and finishes its steps.
fn worker_queued(bits: Bits) {
    let dir = Dir::new(&format!("worker_queued{}", bits.tag()));
    dir.compile_bits("worker.c", "worker", &[], bits);
    let (p, w) = worker(&dir, &[], "-");
    std::thread::sleep(random_delay(10, 200));
    kill(&["-q", "0", "-TSTP", &w.to_string()]);
    let o = p.finish();
    o.assert_ok("the program");
    assert!(o.has("WORKER EXITED 85") && o.has("DONE") && !o.has("WORKER DONE"), "{o}");
    let name = format!("worker.{w}.ckpt");
    assert_eq!(images(dir.path()), vec![name.clone()]);
    let image = dir.join(&name);
    assert_image_bits(&image, bits);
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    let steps = |o: &Outcome| -> Vec<u64> {
        o.lines.iter().filter_map(|l| l.strip_prefix("WORK ")?.trim().parse().ok()).collect()
    };
    let all: Vec<u64> = steps(&o).into_iter().chain(steps(&second)).collect();
    assert_eq!(all, (1..=60).collect::<Vec<_>>(), "before:\n{o}\nafter:\n{second}");
    assert!(second.has("WORKER RESTARTED") && second.has("WORKER DONE"), "{second}");
}

#[test]
fn forked_worker_checkpoints_on_a_signal_queued_to_it_alone() {
    worker_queued(Bits::B64);
}

#[test]
fn forked_worker_checkpoints_on_a_signal_queued_to_it_alone_32bit() {
    worker_queued(Bits::B32);
}

/// `ckpt -c -i 1`: the daemon has no timer of its own (timers do not survive
/// fork); once it answered a `kill -TSTP` it takes periodic checkpoints into its
/// own file, which restarts.
fn daemon_periodic(bits: Bits) {
    let dir = Dir::new(&format!("daemon_periodic{}", bits.tag()));
    dir.compile_bits("daemon.c", "daemon", &[], bits);
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "-i", "1", "./daemon", "setsid", "200"]));
    let pid = number(&p.wait_for("DAEMON"), "DAEMON");
    p.wait_for("TICK 2");
    let image = dir.join(&format!("daemon.{pid}.ckpt"));
    kill(&["-TSTP", &pid.to_string()]);
    let until = Instant::now() + Duration::from_secs(10);
    while !image.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(image.exists(), "no image from the daemon\n{}", p.stderr_now());
    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_file(&image).unwrap();
    // The next one comes from the daemon's own timer.
    let until = Instant::now() + Duration::from_secs(5);
    while !image.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(image.exists(), "no periodic image from the daemon\n{}", p.stderr_now());
    // Keep this one: it was taken a second into a five-second run, so its restart
    // has steps left to do. (Images are renamed into place whole: the copy reads
    // one image even if the next periodic one replaces the name meanwhile.)
    let early = dir.join("early.image");
    std::fs::copy(&image, &early).unwrap();
    // Not our child: its end is the end of its output, which `finish` waits
    // for only briefly.
    p.wait_for("DONE");
    let first = p.finish();
    first.assert_ok("the daemon");
    assert!(first.has("DONE"), "{first}");
    assert_eq!(images(dir.path()), vec![format!("daemon.{pid}.ckpt")]);
    assert_image_bits(&image, bits);
    assert_image_bits(&early, bits);
    let second = restart(&early, dir.path());
    second.assert_ok("restart of an early periodic image");
    let b = second.ticks();
    assert!(!b.is_empty() && b[0] > 2 && b == (b[0]..=200).collect::<Vec<_>>() && second.has("DONE"), "{second}");
    // The last image may have been taken anywhere up to the exit, even after
    // DONE (the timer still runs in exit handlers): it restarts into whatever
    // was left, and that must be the rest of the same run.
    let last = restart(&image, dir.path());
    last.assert_ok("restart of the last periodic image");
    let c = last.ticks();
    assert!(c.is_empty() || c == (c[0]..=200).collect::<Vec<_>>(), "{last}");
    assert!(c.is_empty() || last.has("DONE"), "{last}");
}

#[test]
fn daemon_takes_periodic_checkpoints_once_it_answered() {
    daemon_periodic(Bits::B64);
}

#[test]
fn daemon_takes_periodic_checkpoints_once_it_answered_32bit() {
    daemon_periodic(Bits::B32);
}
