//! `ckpt checkpoint PID`: a checkpoint asked for from outside the process, at a
//! moment the test does not control exactly, waited for until durable, then the
//! process killed and its image restarted; and the refusals, which must leave
//! the process untouched.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// `ckpt checkpoint ARGS...` run in DIR.
fn ask(dir: &Path, args: &[&str]) -> Output {
    Command::new(ckpt_bin()).arg("checkpoint").args(args).current_dir(dir).output().expect("run ckpt checkpoint")
}

/// The `PATH SIZE` line of a successful `ckpt checkpoint`.
fn answered(o: &Output) -> (String, u64) {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "ckpt checkpoint failed ({}): {out}{err}", o.status);
    let line = out.trim_end();
    let (path, size) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not 'PATH SIZE': {line:?}"));
    (path.to_owned(), size.parse().unwrap_or_else(|_| panic!("no size in {line:?}")))
}

/// The process state letter of /proc/PID/stat (R, S, T, Z...).
fn state(pid: u32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()).unwrap_or('?')
}

/// The restart's ticks go on from where the image was taken: a contiguous run
/// from k+1 to `total`, k being one of the ticks the first run printed.
fn assert_resumes(first: &[u64], second: &Outcome, total: u64) {
    let b = second.ticks();
    let start = *b.first().unwrap_or_else(|| panic!("nothing ran after the restart\n{second}"));
    assert!(
        start >= 1 && first.contains(&(start - 1)),
        "the restart began at tick {start}, first run {first:?}\n{second}"
    );
    assert_eq!(b, (start..=total).collect::<Vec<_>>(), "ticks do not continue\n{second}");
    assert!(second.has("DONE") && second.has("RESTARTED"), "{second}");
}

#[test]
fn checkpoint_command_in_continue_mode_waits_for_the_durable_image() {
    let dir = Dir::new("hijack_cmd_continue");
    dir.compile("counter.c", "counter", &[]);
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./counter", "120"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(100, 400));
    let o = ask(dir.path(), &[&p.pid().to_string()]);
    let (path, size) = answered(&o);
    let image = dir.join("counter.ckpt");
    // The answer comes once the file is in place, with its real size.
    assert_eq!(Path::new(&path), image, "the answer names the process's own file, absolute");
    assert_eq!(fs::metadata(&image).unwrap().len(), size);
    assert_image(&image);
    // The program went on meanwhile and was not stopped.
    let before = p.current_tick();
    p.wait_for(&format!("TICK {}", before + 2));
    let first = p.kill();
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_resumes(&first.ticks(), &second, 120);
}

#[test]
fn checkpoint_command_name_and_continue_apply_to_one_checkpoint() {
    let dir = Dir::new("hijack_cmd_name");
    let elsewhere = Dir::new("hijack_cmd_name_caller");
    dir.compile("counter.c", "counter", &[]);
    // Started without -c: a plain request makes it exit with 85 once written.
    let mut p = Proc::spawn(ckpt(&dir, &["./counter", "120"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 250));
    let pid = p.pid().to_string();
    // -n relative to the caller's directory; -c: it goes on this once.
    let (path, _) = answered(&ask(elsewhere.path(), &["-c", "-n", "sub.ckpt", &pid]));
    assert_eq!(Path::new(&path), elsewhere.join("sub.ckpt"));
    assert_image(&elsewhere.join("sub.ckpt"));
    assert!(!dir.join("counter.ckpt").exists(), "-n writes only the file named");
    let t = p.current_tick();
    p.wait_for(&format!("TICK {}", t + 2));
    // Without options: its own settings again (its own name; exit after).
    let (path, size) = answered(&ask(elsewhere.path(), &[&pid]));
    assert_eq!(Path::new(&path), dir.join("counter.ckpt"));
    let first = p.finish();
    first.assert_checkpointed("the second request, without -c");
    assert_image(&dir.join("counter.ckpt"));
    assert_eq!(fs::metadata(dir.join("counter.ckpt")).unwrap().len(), size);
    let ticks = first.ticks();
    let second = restart(&dir.join("counter.ckpt"), dir.path());
    second.assert_ok("restart");
    assert_eq!(second.ticks().first().copied(), ticks.last().map(|t| t + 1), "{first}\n{second}");
    assert_resumes(&ticks, &second, 120);
}

#[test]
fn checkpoint_command_failures_and_refusals_leave_the_process_running() {
    let dir = Dir::new("hijack_cmd_refusals");
    dir.compile("counter.c", "counter", &[]);
    let mut p = Proc::spawn(ckpt(&dir, &["./counter", "200"]));
    p.wait_for("READY");
    let pid = p.pid().to_string();
    // A checkpoint that fails: the reason, status 1, the program goes on.
    let o = ask(dir.path(), &["-n", "no/such/dir/x.ckpt", &pid]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint failed: No such file or directory"), "{err}");
    let t = p.current_tick();
    p.wait_for(&format!("TICK {}", t + 2));

    // Not a ckpt process: refused before anything is sent (SIGTSTP would stop it).
    let mut plain = Proc::spawn(Command::new(dir.join("counter")));
    plain.wait_for("READY");
    let o = ask(dir.path(), &[&plain.pid().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("does not run the ckpt runtime"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_ne!(state(plain.pid()), 'T', "the plain process was stopped");
    let t = plain.current_tick();
    plain.wait_for(&format!("TICK {}", t + 1));
    drop(plain.kill());

    // No trigger at all (-a 0): nothing to ask with.
    let mut silent = Proc::spawn(ckpt(&dir, &["-a", "0", "./counter"]));
    silent.wait_for("READY");
    let o = ask(dir.path(), &[&silent.pid().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("has no checkpoint trigger"), "{err}");
    drop(silent.kill());

    // A stopped process does not take the request: the timeout says so.
    p.signal("STOP");
    let o = ask(dir.path(), &["--timeout", "1", &pid]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("did not take the request within 1 s"), "{err}");
    // SIGCONT discards the queued SIGTSTP (a stop signal): it runs on.
    p.signal("CONT");
    let t = p.current_tick();
    p.wait_for(&format!("TICK {}", t + 2));

    let o = ask(dir.path(), &["999999999"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no such process"), "{err}");
    let first = p.kill();
    assert!(!first.has("FAIL") && !dir.join("counter.ckpt").exists(), "{first}");
}

/// `ckpt hijack ARGS...`: it must succeed and say so.
fn hijack(dir: &Path, args: &[&str]) {
    let o = Command::new(ckpt_bin()).arg("hijack").args(args).current_dir(dir).output().expect("run ckpt hijack");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("runtime installed in process"), "ckpt hijack {args:?}: {err}");
}

/// The descriptors of PID (the targets of /proc/PID/fd/*).
fn fds(pid: u32) -> Vec<(String, String)> {
    let mut v: Vec<_> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().into_string().ok()?, fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect();
    v.sort();
    v
}

/// A program started plainly, `wait` line seen: hijack it with `opts` (the
/// program sees no descriptor more, is not stopped, and goes on), let it run a
/// moment the test does not choose, checkpoint it with its trigger signal
/// (`ckpt checkpoint` when `ask`), and restart the image. Returns both runs.
fn hijacked_cycle(dir: &Dir, cmd: Command, wait: &str, opts: &[&str], image: &Path, ask: bool) -> (Outcome, Outcome) {
    let _ = fs::remove_file(image);
    let mut p = Proc::spawn(cmd);
    p.wait_for(wait);
    let pid = p.pid();
    let before = fds(pid);
    let mut args = opts.to_vec();
    let pid_s = pid.to_string();
    args.push(&pid_s);
    hijack(dir.path(), &args);
    assert_eq!(fds(pid), before, "ckpt hijack left a descriptor in the program");
    assert_ne!(state(pid), 'T', "the program was left stopped");
    std::thread::sleep(random_delay(100, 400));
    if ask {
        let (path, size) = answered(&ask_in(dir.path(), pid));
        assert_eq!(Path::new(&path), image);
        assert_eq!(fs::metadata(image).unwrap().len(), size);
    } else {
        p.signal("TSTP");
    }
    let first = p.finish();
    first.assert_checkpointed("the hijacked run");
    assert!(!first.has("DONE"), "it finished before the checkpoint\n{first}");
    assert_image(image);
    let second = restart(image, dir.path());
    second.assert_ok("restart of a hijacked process");
    (first, second)
}

fn ask_in(dir: &Path, pid: u32) -> Output {
    ask(dir, &[&pid.to_string()])
}

/// A dynamically linked C counter started without ckpt: hijacked, checkpointed
/// by `ckpt checkpoint`, restarted where no ckpt is (a scrubbed environment);
/// the restarted process is checkpointed by `ckpt checkpoint` again (its runtime
/// came back with its memory), and the three runs count with no gap and no repeat.
#[test]
fn hijack_dynamic_counter() {
    let dir = Dir::new("hijack_counter");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    let mut cmd = Command::new(dir.join("counter"));
    cmd.arg("120").current_dir(dir.path());
    let _ = fs::remove_file(&image);
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    hijack(dir.path(), &[&p.pid().to_string()]);
    std::thread::sleep(random_delay(100, 400));
    let (path, _) = answered(&ask_in(dir.path(), p.pid()));
    assert_eq!(Path::new(&path), image);
    let first = p.finish();
    first.assert_checkpointed("the hijacked run");
    assert_image(&image);

    let mut again = Proc::spawn(restart_cmd(&image, dir.path()));
    again.wait_for("RESTARTED");
    std::thread::sleep(random_delay(50, 300));
    let (path, _) = answered(&ask(dir.path(), &["-n", "again.ckpt", &again.pid().to_string()]));
    assert_eq!(Path::new(&path), dir.join("again.ckpt"));
    let second = again.finish();
    second.assert_checkpointed("the restarted hijacked process, checkpointed again");
    assert_image(&dir.join("again.ckpt"));
    let third = restart(&dir.join("again.ckpt"), dir.path());
    third.assert_ok("the second restart");
    let all: Vec<u64> = first.ticks().into_iter().chain(second.ticks()).chain(third.ticks()).collect();
    assert_eq!(all, (1..=120).collect::<Vec<_>>(), "{first}\n{second}\n{third}");
    assert!(third.has("DONE"), "{third}");
}

/// busybox-static (no dynamic loader at all) running a shell loop that computes
/// a checksum: hijacked with -n, checkpointed by SIGTSTP; the two runs together
/// print exactly what an undisturbed run prints.
#[test]
fn hijack_busybox_static_shell_loop() {
    require_tool("/bin/busybox", &["true"], "busybox-static");
    let script = "s=0; i=0; while [ $i -lt 150 ]; do i=$((i+1)); j=0; \
                  while [ $j -lt 1500 ]; do j=$((j+1)); s=$(( (s * 31 + j + i) % 1000003 )); done; \
                  echo TICK $i $s; done; echo DONE $s";
    let dir = Dir::new("hijack_busybox");
    let sh = || {
        let mut c = Command::new("/bin/busybox");
        c.args(["sh", "-c", script]).current_dir(dir.path());
        c
    };
    as_undisturbed(&dir, sh, "TICK 3", &["-n", "shell.ckpt"], &dir.join("shell.ckpt"), false);
}

/// A reference run of `cmd()`, then a hijacked cycle of another (see
/// `hijacked_cycle`): the two runs together print exactly what it printed.
fn as_undisturbed(dir: &Dir, cmd: impl Fn() -> Command, wait: &str, opts: &[&str], image: &Path, ask: bool) {
    let reference = run(cmd());
    reference.assert_ok("the reference run");
    let (first, second) = hijacked_cycle(dir, cmd(), wait, opts, image, ask);
    let all: Vec<&String> = first.lines.iter().chain(&second.lines).collect();
    let want: Vec<&String> = reference.lines.iter().collect();
    assert_eq!(all, want, "first run:\n{first}\nrestart:\n{second}");
}

/// python3 (its interpreter state, heap and bytecode position): hijacked,
/// checkpointed by SIGTSTP, restarted.
#[test]
fn hijack_python3() {
    let dir = Dir::new("hijack_python");
    let mut cmd = Command::new(python3());
    cmd.arg(root().join("tests/c/counter.py")).arg("120").current_dir(dir.path());
    let (first, second) = hijacked_cycle(&dir, cmd, "READY", &["-n", "py.ckpt"], &dir.join("py.ckpt"), false);
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 120);
}

/// A Go program (static, no C library, four threads or more, the Go runtime's
/// own signal handlers, preemption by SIGURG, timers): hijacked, checkpointed by
/// `ckpt checkpoint`, restarted; the two runs together print what an
/// undisturbed run prints, checksums included.
#[test]
fn hijack_go_program() {
    require_tool("go", &["version"], "golang-go");
    let dir = Dir::new("hijack_go");
    let exe = dir.join("gosum");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(root().join("tests/go/checksum.go"))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", root().join("target/go-cache"))
        .output()
        .expect("run go build");
    assert!(built.status.success(), "go build: {}", String::from_utf8_lossy(&built.stderr));
    let go = || {
        let mut c = Command::new(&exe);
        c.arg("150").current_dir(dir.path());
        c
    };
    as_undisturbed(&dir, go, "TICK 2", &[], &dir.join("gosum.ckpt"), true);
}

/// A program that already has threads when the runtime comes in: every thread
/// is found (/proc/self/task) and stopped at the checkpoint, and after the
/// restart each keeps its tid and goes on.
#[test]
fn hijack_multithreaded_program() {
    let dir = Dir::new("hijack_threads");
    dir.compile("threads_basic.c", "threads_basic", &["-pthread"]);
    let mut cmd = Command::new(dir.join("threads_basic"));
    cmd.args(["60", "6"]).current_dir(dir.path());
    let (first, second) = hijacked_cycle(&dir, cmd, "READY", &[], &dir.join("threads_basic.ckpt"), true);
    assert!(second.has("RESTARTED threads ok (6 workers)"), "{second}");
    assert_continues(&first, &second, 60);
}

/// What ckpt hijack refuses, each with its reason, the process left as it was.
#[test]
fn hijack_refusals() {
    let dir = Dir::new("hijack_refusals");
    dir.compile("counter.c", "counter", &[]);
    dir.compile32("counter.c", "counter32", &[]);
    let refused = |args: &[&str], needle: &str| {
        let o = Command::new(ckpt_bin()).arg("hijack").args(args).output().expect("run ckpt hijack");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: want {needle:?} in {err}");
    };
    refused(&["999999999"], "no such process");

    // Started under ckpt: it has the runtime already.
    let mut under = Proc::spawn(ckpt(&dir, &["./counter", "200"]));
    under.wait_for("READY");
    refused(&[&under.pid().to_string()], "already has the ckpt runtime (started under ckpt)");
    drop(under.kill());

    // Hijacked once: not twice.
    let mut plain = Proc::spawn(Command::new(dir.join("counter")));
    plain.wait_for("READY");
    let pid = plain.pid().to_string();
    hijack(dir.path(), &["-c", &pid]);
    refused(&[&pid], "already has the ckpt runtime (put in by ckpt hijack)");
    let t = plain.current_tick();
    plain.wait_for(&format!("TICK {}", t + 2));
    drop(plain.kill());

    // Already traced (here by strace).
    require_tool("strace", &["-V"], "strace");
    let mut traced = Proc::spawn({
        let mut c = Command::new("strace");
        c.args(["-o", "/dev/null"]).arg(dir.join("counter")).arg("200");
        c
    });
    traced.wait_for("READY");
    let child = fs::read_to_string(format!("/proc/{}/task/{}/children", traced.pid(), traced.pid())).unwrap();
    let child = child.split_whitespace().next().expect("strace's child").to_owned();
    refused(&[&child], "is already traced");
    drop(traced.kill());

    // A 32-bit program.
    let mut p32 = Proc::spawn(Command::new(dir.join("counter32")));
    p32.wait_for("READY");
    refused(&[&p32.pid().to_string()], "32-bit (i386)");
    let t = p32.current_tick();
    p32.wait_for(&format!("TICK {}", t + 1));
    drop(p32.kill());
}

/// The thread ckpt hijack interrupts is most likely blocked in epoll_wait or
/// sigtimedwait, which fail with EINTR after a plain stop and continue: the
/// program must see no EINTR (and no short sleep), here in five processes
/// hijacked at moments the test does not choose. (A checkpoint's signal itself
/// makes sigtimedwait fail with EINTR, as any handled signal does: not tested here.)
#[test]
fn hijack_causes_no_eintr() {
    let dir = Dir::new("hijack_eintr");
    dir.compile("hijack_eintr.c", "hijack_eintr", &[]);
    for k in 0..5 {
        let mut p = Proc::spawn({
            let mut c = Command::new(dir.join("hijack_eintr"));
            c.arg("40").current_dir(dir.path());
            c
        });
        p.wait_for("READY");
        std::thread::sleep(random_delay(20, 200));
        hijack(dir.path(), &["-c", "-n", &format!("e{k}.ckpt"), &p.pid().to_string()]);
        let o = p.finish();
        o.assert_ok("a hijacked program that blocks in epoll_wait and sigtimedwait");
        assert!(o.has("DONE"), "{o}");
    }
}

/// glibc registered an rseq area for the thread before the runtime came in (the
/// blob cannot see glibc's `__rseq_offset`; ckpt reads the registration with
/// ptrace and tells it): after the restart the kernel keeps its cpu_id current
/// again, and sched_getcpu() agrees with getcpu(2).
#[test]
fn hijack_keeps_glibc_rseq() {
    let dir = Dir::new("hijack_rseq");
    dir.compile("rseq_cpu.c", "rseq_cpu", &[]);
    let mut cmd = Command::new(dir.join("rseq_cpu"));
    cmd.current_dir(dir.path());
    let (first, second) = hijacked_cycle(&dir, cmd, "READY", &[], &dir.join("rseq_cpu.ckpt"), false);
    assert_continues(&first, &second, 60);
}
