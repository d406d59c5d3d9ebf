//! Batch use: `ckpt run` (one command line that starts and resumes), the exit
//! statuses, the line after each checkpoint, several trigger signals, wrapper
//! scripts that exec the real program, and the names an image keeps after a
//! restart.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// `ckpt run --dir d ARGS... -- ./counter TOTAL` in DIR.
fn run_cmd(dir: &Dir, opts: &[&str], total: u32) -> Command {
    let mut args = vec!["run", "--dir", "d"];
    args.extend_from_slice(opts);
    let total = total.to_string();
    args.extend(["--", "./counter", &total]);
    ckpt(dir, &args)
}

/// Start CMD, let it run a random moment after READY (or RESTARTED), send SIG
/// (twice in a row when `twice`), and collect it: it must have exited with the
/// checkpoint status.
fn interrupt(cmd: Command, ready: &str, sig: &str, twice: bool) -> Outcome {
    let mut p = Proc::spawn(cmd);
    p.wait_for(ready);
    std::thread::sleep(random_delay(50, 300));
    p.signal(sig);
    if twice {
        // Arrives during the checkpoint (or not at all, if the program is
        // already gone: kill may then fail, which is fine).
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(p.pid().to_string()).status();
    }
    let o = p.finish();
    o.assert_checkpointed("a checkpointed run");
    assert!(!o.has("DONE"), "finished before the checkpoint\n{o}");
    o
}

fn images(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    v.sort();
    v
}

fn current(dir: &Path) -> String {
    fs::read_link(dir.join("current")).unwrap().to_string_lossy().into_owned()
}

/// The same command starts the job, resumes it after each checkpoint (SIGTERM,
/// sent twice: one image each time), and lets it finish; the ticks of all runs
/// are 1..=total exactly once; images are numbered, `current` names the newest,
/// only the newest two are kept.
#[test]
fn ckpt_run_starts_and_resumes_with_the_same_command() {
    let dir = Dir::new("batch_run");
    dir.compile("counter.c", "counter", &[]);
    let d = dir.join("d");
    let total = 120;
    let opts = ["-a", "TERM,USR1", "--deadline", "30"];

    let first = interrupt(run_cmd(&dir, &opts, total), "READY", "TERM", true);
    assert!(first.stderr.starts_with("ckpt: no checkpoint in d, starting ./counter\n"), "{first}");
    assert!(first.stderr.contains("/d/1.ckpt written (seq 1, "), "{first}");
    assert_eq!(images(&d), ["1.ckpt"], "{first}");
    assert_eq!(current(&d), "1.ckpt");
    assert_image(&d.join("1.ckpt"));

    let mut runs = vec![first];
    for (seq, sig) in [(2, "USR1"), (3, "TERM")] {
        let o = interrupt(run_cmd(&dir, &opts, total), "RESTARTED", sig, true);
        let prev = seq - 1;
        assert!(o.stderr.starts_with(&format!("ckpt: resumed from d/{prev}.ckpt (seq {prev}, saved ")), "{o}");
        assert!(o.stderr.contains(&format!("/d/{seq}.ckpt written (seq {seq}, ")), "{o}");
        assert!(o.stderr.contains(&format!("after SIG{sig}, deadline 30 s)")), "{o}");
        // One checkpoint per run, whatever the second signal did.
        assert_eq!(o.stderr.matches(" written (").count(), 1, "{o}");
        assert_eq!(current(&d), format!("{seq}.ckpt"));
        runs.push(o);
    }
    assert_eq!(images(&d), ["2.ckpt", "3.ckpt"], "only the newest two are kept");

    let last = run(run_cmd(&dir, &opts, total));
    last.assert_ok("the last run");
    assert!(last.stderr.starts_with("ckpt: resumed from d/3.ckpt (seq 3, "), "{last}");
    runs.push(last);
    let ticks: Vec<u64> = runs.iter().flat_map(Outcome::ticks).collect();
    assert_eq!(ticks, (1..=u64::from(total)).collect::<Vec<_>>(), "{runs:#?}");
    assert!(runs[1..].iter().all(|o| !o.ticks().is_empty()), "a run did nothing\n{runs:#?}");
    assert!(
        dir.leftovers().is_empty()
            && fs::read_dir(&d).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp."))
    );
}

/// A damaged newest image: `ckpt run` says so, sets it aside, resumes from the
/// previous one; temporary files of dead writers are removed, a live one's kept.
#[test]
fn ckpt_run_falls_back_from_a_damaged_image_and_clears_stale_temporaries() {
    let dir = Dir::new("batch_fallback");
    dir.compile("counter.c", "counter", &[]);
    let d = dir.join("d");
    let total = 100;
    let first = interrupt(run_cmd(&dir, &["-q"], total), "READY", "TSTP", false);
    assert!(!first.stderr.contains("written"), "-q: {first}");
    let second = interrupt(run_cmd(&dir, &["-q"], total), "RESTARTED", "TSTP", false);
    assert_eq!(images(&d), ["1.ckpt", "2.ckpt"]);

    // One byte of the newest image's page data, near its end, flipped.
    let two = d.join("2.ckpt");
    let mut bytes = fs::read(&two).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    fs::write(&two, &bytes).unwrap();
    fs::set_permissions(&two, fs::Permissions::from_mode(0o700)).unwrap();
    // Temporaries: two of a process that no longer exists, one of a live one.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let live_pid = std::process::id();
    for name in
        [format!(".3.ckpt.tmp.{dead_pid}.0"), format!(".current.tmp.{dead_pid}"), format!(".3.ckpt.tmp.{live_pid}.0")]
    {
        fs::write(d.join(name), b"partial").unwrap();
    }

    let third = run(run_cmd(&dir, &["-q"], total));
    third.assert_ok("the run resumed from the previous image");
    assert!(
        third.stderr.contains("ckpt: warning: not resuming from d/2.ckpt: ")
            && third.stderr.contains("the page data is damaged")
            && third.stderr.contains("renamed 2.ckpt.damaged"),
        "{third}"
    );
    assert!(third.stderr.contains("ckpt: resumed from d/1.ckpt (seq 1, "), "{third}");
    assert!(d.join("2.ckpt.damaged").exists());
    assert!(!d.join(format!(".3.ckpt.tmp.{dead_pid}.0")).exists());
    assert!(!d.join(format!(".current.tmp.{dead_pid}")).exists());
    assert!(d.join(format!(".3.ckpt.tmp.{live_pid}.0")).exists(), "a live process's temporary file was removed");
    // The third run goes on from the first image: the second run's ticks again.
    let ticks: Vec<u64> = first.ticks().into_iter().chain(third.ticks()).collect();
    assert_eq!(ticks, (1..=u64::from(total)).collect::<Vec<_>>(), "\n{first}\n{second}\n{third}");
}

/// Plain `ckpt PROG`: status 85 after a checkpoint-and-exit, with one line on
/// stderr; `-x` changes the status, `-q` silences the line.
#[test]
fn exit_status_and_message_after_a_checkpoint() {
    let dir = Dir::new("batch_status");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    let o = checkpoint(ckpt(&dir, &["./counter", "200"]), &image);
    let line = o.stderr.lines().next().unwrap_or("");
    let size = fs::metadata(&image).unwrap().len() as f64 / 1048576.0;
    let want = format!("ckpt: counter.ckpt written ({size:.1} MiB in ");
    assert!(line.starts_with(&want) && line.ends_with(" ms after SIGTSTP)"), "{line:?}, want {want:?}\n{o}");
    assert_eq!(o.stderr.lines().count(), 1, "{o}");
    for (args, status) in [(&["-x", "3", "-q"][..], 3), (&["-x", "0", "-q"][..], 0)] {
        let mut a = args.to_vec();
        a.extend(["./counter", "200"]);
        let mut p = Proc::spawn(ckpt(&dir, &a));
        p.wait_for("READY");
        std::thread::sleep(random_delay(50, 300));
        p.signal("TSTP");
        let o = p.finish();
        assert_eq!(o.status.code(), Some(status), "{args:?}\n{o}");
        assert!(o.stderr.is_empty(), "-q: {o}");
        assert_image(&image);
    }
    // The program's own status when it ends by itself; a warning when that is
    // the checkpoint status (for both word sizes: glibc's on_exit is found by a
    // weak reference in each runtime).
    for bits in [Bits::B64, Bits::B32] {
        let prog = format!("exit_with{}", bits.tag());
        dir.compile_bits("exit_with.c", &prog, &[], bits);
        let prog = format!("./{prog}");
        let o = run(ckpt(&dir, &[&prog, "7"]));
        assert_eq!(o.status.code(), Some(7), "{o}");
        assert!(o.stderr.is_empty(), "{o}");
        let o = run(ckpt(&dir, &[&prog, "85"]));
        assert_eq!(o.status.code(), Some(85), "{o}");
        assert!(
            o.stderr.contains("ckpt: warning: the program exited with status 85 by itself, not after a checkpoint"),
            "{o}"
        );
        let o = run(ckpt(&dir, &["-x", "9", &prog, "85"]));
        assert!(o.stderr.is_empty(), "-x 9, exit 85: {o}");
    }
}

/// A wrapper script that execs the real program (a pyenv-style shim): the
/// program is checkpointable, its image is named after it and restarts; a child
/// of the program does not answer the signal, and its own child has no runtime.
#[test]
fn a_program_exec_d_by_a_wrapper_script_is_checkpointable() {
    let dir = Dir::new("batch_shim");
    dir.compile("counter.c", "counter", &[]);
    let shim = dir.join("shim");
    fs::write(&shim, "#!/bin/sh\n# a shim: decide, then exec the real program\nexec ./counter \"$@\"\n").unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./shim", "60"]), &image);
    assert!(first.stderr.starts_with("ckpt: counter.ckpt written ("), "{first}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the shimmed program");
    assert_continues(&first, &second, 60);

    // The program's child (a sh, with the runtime loaded but passive) and that
    // child's child (cat, no runtime at all).
    let o =
        run(ckpt(&dir, &["/bin/sh", "-c", "sh -c 'grep -c libckpt /proc/$$/maps; cat /proc/self/maps; true'; true"]));
    o.assert_ok("sh");
    assert!(o.lines.first().is_some_and(|l| l.trim() != "0"), "the child has no runtime at all?\n{o}");
    assert!(!o.lines.iter().skip(1).any(|l| l.contains("libckpt")), "the grandchild loaded the runtime\n{o}");
}

/// After a restart, an image of the restarted process names the program and its
/// libraries as they were, not after the checkpoint file the kernel sees.
#[test]
fn info_keeps_the_original_names_after_a_restart() {
    let dir = Dir::new("batch_names");
    let exe = dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(ckpt(&dir, &["./counter", "100"]), &image);
    let keep = dir.join("first.ckpt");
    fs::rename(&image, &keep).unwrap();
    let mut p = Proc::spawn(restart_cmd(&keep, dir.path()));
    p.wait_for("RESTARTED");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    p.finish().assert_checkpointed("the restarted run");
    let text = ckpt_info(&image);
    let exe = exe.canonicalize().unwrap();
    assert!(text.contains(&format!("program:      {}\n", exe.display())), "{text}");
    assert!(!text.contains("first.ckpt"), "a region is named after the checkpoint file\n{text}");
    assert!(text.contains("libc.so"), "{text}");
    assert!(text.lines().any(|l| l.ends_with(&exe.display().to_string()) && l.contains(" file ")), "{text}");
    drop(first);
}
