//! Tree mode (`ckpt --tree`, docs/trees.md): the program and every process it
//! starts are checkpointed into one image at a moment the test does not choose,
//! and the restart brings the whole tree back: pids, parent and child (waitpid
//! and exit statuses), a zombie not yet reaped, the pipe between two processes
//! with its unread bytes. A descendant without the runtime (a static program)
//! makes the checkpoint fail, naming it, and the tree goes on.

mod common;

use common::*;

/// The numbers after `prefix` ("W 12", "P 3") in both runs, in order.
fn steps(first: &Outcome, second: &Outcome, prefix: &str) -> Vec<u64> {
    first.lines.iter().chain(&second.lines).filter_map(|l| l.strip_prefix(prefix)?.trim().parse().ok()).collect()
}

/// A program, its forked worker and an unreaped child: checkpoint the tree at a
/// random moment, restart it, and the parent reaps both with the statuses they
/// exit with, every step of both processes done exactly once.
fn forked_worker(bits: Bits) {
    let dir = Dir::new(&format!("tree_worker{}", bits.tag()));
    dir.compile_bits("tree_worker.c", "tree_worker", &[], bits);
    let image = dir.join("tree_worker.ckpt");
    let first = checkpoint_with(ckpt(&dir, &["--tree", "./tree_worker"]), &image, "TSTP", random_delay(30, 380));
    assert_image_bits(&image, bits);
    let info = ckpt_info(&image);
    assert!(info.contains("processes:    3 "), "the image should hold the program, its worker and the zombie:\n{info}");
    assert!(info.contains("a zombie (exit status 7)"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the tree");
    let want: Vec<u64> = (1..=40).collect();
    assert_eq!(steps(&first, &second, "W "), want, "the worker's steps\nfirst:\n{first}\nrestart:\n{second}");
    assert_eq!(steps(&first, &second, "P "), want, "the parent's steps\nfirst:\n{first}\nrestart:\n{second}");
    assert!(second.has("DONE worker"), "the parent did not reap its children after the restart\n{second}");
    assert!(!second.stderr.contains("warning"), "{second}");
}

#[test]
fn tree_forked_worker_and_zombie() {
    forked_worker(Bits::B64);
}

#[test]
fn tree_forked_worker_and_zombie_32bit() {
    forked_worker(Bits::B32);
}

/// `ckpt --tree sh -c 'producer | consumer'`: one image of the shell and both
/// ends of the pipeline; after the restart the consumer reads every line once,
/// in order (the pipe's queued lines came back), to the end.
#[test]
fn tree_shell_pipeline() {
    let dir = Dir::new("tree_pipeline");
    dir.compile("tree_pipe.c", "tree_pipe", &[]);
    let image = dir.join("sh.ckpt");
    let script = "./tree_pipe produce 500 | ./tree_pipe consume 500";
    let first = checkpoint_with(ckpt(&dir, &["--tree", "sh", "-c", script]), &image, "TSTP", random_delay(30, 400));
    let info = ckpt_info(&image);
    assert!(info.contains("processes:    2 ") || info.contains("processes:    3 "), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the pipeline");
    assert_continues(&first, &second, 500);
}

/// A static program in the tree cannot take part: the checkpoint fails with a
/// message naming it, nothing is written, and every process goes on to the end.
#[test]
fn tree_with_a_static_program_is_refused() {
    let dir = Dir::new("tree_static");
    dir.compile("tree_pipe.c", "tree_pipe", &[]);
    dir.compile("tree_pipe.c", "tree_pipe_static", &["-static"]);
    let image = dir.join("sh.ckpt");
    let script = "./tree_pipe produce 300 | ./tree_pipe_static consume 300";
    let mut p = Proc::spawn(ckpt(&dir, &["--tree", "sh", "-c", script]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let o = p.finish();
    o.assert_ok("the tree after a refused checkpoint");
    assert!(o.has("DONE"), "{o}");
    assert_eq!(o.ticks(), (1..=300).collect::<Vec<u64>>(), "{o}");
    assert!(
        o.stderr.contains("(tree_pipe_stati") && o.stderr.contains("does not run the ckpt runtime"),
        "the refusal should name the static program:\n{o}"
    );
    assert!(!image.exists(), "no image may be written");
    assert!(dir.leftovers().is_empty(), "temporary files left: {:?}", dir.leftovers());
}

/// A small C project: six sources, a link, a pause before each compile so that
/// the build lasts long enough to be interrupted anywhere (in make, in a
/// compiler, in a pause).
fn write_project(dir: &std::path::Path) {
    for i in 1..=6 {
        let src = format!("int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; return s; }}\n");
        std::fs::write(dir.join(format!("f{i}.c")), src).unwrap();
    }
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint f1(int), f2(int), f3(int), f4(int), f5(int), f6(int);\n\
         int main(void) { printf(\"%d\\n\", f1(10) + f2(10) + f3(10) + f4(10) + f5(10) + f6(10)); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "OBJS = main.o f1.o f2.o f3.o f4.o f5.o f6.o\nprog: $(OBJS)\n\tcc -o $@ $(OBJS)\n\
         %.o: %.c\n\tsleep 0.1\n\tcc -O2 -c -o $@ $<\n",
    )
    .unwrap();
}

/// `ckpt --tree make -j2`, checkpointed at a random moment of the build and
/// restarted: the build finishes, and every object file and the program are
/// byte for byte those of an uninterrupted build.
#[test]
fn tree_make_j2() {
    require_tool("make", &["--version"], "make");
    let reference = Dir::new("tree_make_reference");
    write_project(reference.path());
    let st = std::process::Command::new("make").arg("-j2").current_dir(reference.path()).output().unwrap();
    assert!(st.status.success(), "the reference build failed: {st:?}");
    let dir = Dir::new("tree_make");
    write_project(dir.path());
    let image = dir.join("make.ckpt");
    let p = Proc::spawn(ckpt(&dir, &["--tree", "make", "-j2"]));
    p.wait_catching(20);
    std::thread::sleep(random_delay(60, 500));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_checkpointed("the checkpointed build");
    assert!(!dir.join("prog").exists(), "the build finished before the checkpoint\n{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("the restarted build");
    for f in ["main.o", "f1.o", "f2.o", "f3.o", "f4.o", "f5.o", "f6.o", "prog"] {
        let (a, b) = (std::fs::read(reference.join(f)).unwrap(), std::fs::read(dir.join(f)));
        assert!(b.as_ref().is_ok_and(|b| *b == a), "{f} differs from the reference build\n{first}\n{second}");
    }
    let out = std::process::Command::new(dir.join("prog")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "945\n");
}

/// A shell script with two background jobs and `wait` (each job a program with
/// a forked worker, a zombie and shared memory: 7 processes): after the restart
/// the shell's `wait` returns once both jobs are done, each job reaps its own
/// children, and every step of the four workers and parents ran exactly once.
#[test]
fn tree_shell_background_jobs_and_wait() {
    let dir = Dir::new("tree_jobs");
    dir.compile("tree_worker.c", "tree_worker", &[]);
    let image = dir.join("sh.ckpt");
    let script = "./tree_worker & ./tree_worker & wait; echo ALLDONE";
    let first = checkpoint_with(ckpt(&dir, &["--tree", "sh", "-c", script]), &image, "TSTP", random_delay(30, 380));
    let info = ckpt_info(&image);
    assert!(info.contains("processes:    7 "), "the shell, two jobs, their workers and zombies:\n{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the script");
    for prefix in ["W ", "P "] {
        let mut all = steps(&first, &second, prefix);
        all.sort_unstable();
        let want: Vec<u64> = (1..=40).flat_map(|i| [i, i]).collect();
        assert_eq!(all, want, "{prefix}steps of both jobs\nfirst:\n{first}\nrestart:\n{second}");
    }
    let done = second.lines.iter().filter(|l| l.starts_with("DONE worker")).count();
    assert_eq!(done, 2, "both jobs reap their children\n{second}");
    assert_eq!(second.lines.last().map(String::as_str), Some("ALLDONE"), "{second}");
}

/// Continue mode (`-c`) for a tree: the tree goes on after the checkpoint and
/// finishes as if nothing happened; the image restarts the tree from the moment
/// of the checkpoint and finishes it too.
#[test]
fn tree_continue_mode() {
    let dir = Dir::new("tree_continue");
    dir.compile("tree_worker.c", "tree_worker", &[]);
    let image = dir.join("tree_worker.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["--tree", "-c", "./tree_worker"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(30, 350));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_ok("the tree in continue mode");
    let want: Vec<u64> = (1..=40).collect();
    let none = Outcome { status: first.status, lines: Vec::new(), stderr: String::new() };
    assert_eq!(steps(&first, &none, "W "), want, "{first}");
    assert_eq!(steps(&first, &none, "P "), want, "{first}");
    assert!(first.has("DONE worker") && first.stderr.contains("tree_worker.ckpt written"), "{first}");
    assert_image(&image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the tree");
    assert!(second.has("DONE worker"), "{second}");
    for prefix in ["W ", "P "] {
        let after = steps(&none, &second, prefix);
        let from = after.first().copied().unwrap_or(41);
        assert_eq!(after, (from..=40).collect::<Vec<u64>>(), "{prefix}steps after the restart\n{second}");
    }
    assert!(!steps(&none, &second, "W ").is_empty(), "the worker had finished before the checkpoint\n{second}");
}

/// A regular file whose open file description processes of the tree share (a
/// shell's `> log`, inherited by its background job and by every command it
/// runs) is shared again after a restart: one offset, so the lines both write
/// after the restart follow each other instead of overwriting each other. The
/// log ends with every line of both writers exactly once, whole; `ckpt info`
/// names the shared descriptors; neither side warns.
#[test]
fn tree_shared_log_file_keeps_one_offset() {
    use std::process::Stdio;
    let dir = Dir::new("tree_shared_file");
    let image = dir.join("sh.ckpt");
    let log_path = dir.join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let script = "(i=0; while [ $i -lt 50 ]; do echo \"job line $i\"; i=$((i+1)); sleep 0.02; done) & \
                  j=0; while [ $j -lt 50 ]; do echo \"main line $j\"; j=$((j+1)); sleep 0.02; done; wait; echo END";
    let mut c = ckpt(&dir, &["--tree", "sh", "-c", script]);
    c.stdout(Stdio::from(log)).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(random_delay(300, 800));
    let st = std::process::Command::new("kill").arg("-TSTP").arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(CHECKPOINT_EXIT), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_image(&image);
    let before = std::fs::read_to_string(&log_path).unwrap();
    let info = ckpt_info(&image);
    assert!(info.contains("one open file description (one offset) shared by"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the script");
    assert!(!second.stderr.contains("warning"), "{second}");
    let after = std::fs::read_to_string(&log_path).unwrap();
    assert!(after.starts_with(&before), "the lines written before the checkpoint were overwritten:\n{after}");
    let mut got: Vec<&str> = after.lines().collect();
    assert_eq!(got.last(), Some(&"END"), "{after}");
    got.sort_unstable();
    let mut want: Vec<String> = (0..50).flat_map(|i| [format!("job line {i}"), format!("main line {i}")]).collect();
    want.push("END".into());
    want.sort_unstable();
    assert_eq!(
        got, want,
        "every line of both writers once, whole\nbefore the checkpoint:\n{before}\nat the end:\n{after}"
    );
}

/// python3's `multiprocessing.Pipe()` between a parent and its forked worker
/// (a UNIX socket pair whose both ends both processes hold), checkpointed at a
/// random moment: after the restart the two processes share one pair again
/// (each used to get a private pair of its own, and both waited forever), the
/// values in flight arrive, and the worker's sum is the reference one.
#[test]
fn tree_python_multiprocessing_pipe() {
    let dir = Dir::new("tree_mp_pipe");
    let python = python3();
    std::fs::copy(root().join("tests/c/mp_pipe.py"), dir.join("mp_pipe.py")).unwrap();
    let image = dir.join("mp.ckpt");
    let first = checkpoint_with(
        ckpt(&dir, &["--tree", "-n", "mp.ckpt", &python, "mp_pipe.py"]),
        &image,
        "TSTP",
        random_delay(100, 700),
    );
    let info = ckpt_info(&image);
    assert!(info.contains("one end of a socket pair of the tree"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the parent and its worker");
    assert!(!second.stderr.contains("warning"), "{second}");
    let sent = steps(&first, &second, "sent ");
    assert_eq!(sent, (0..80).collect::<Vec<u64>>(), "every value sent once\nfirst:\n{first}\nrestart:\n{second}");
    let want = (0..80u64).map(|i| i * i).sum::<u64>();
    assert!(second.has(&format!("result {want}")), "{second}");
    assert!(second.has("worker exit 0"), "{second}");
}

/// python3's `multiprocessing.Pool(2)`: a multi-threaded root (its handler
/// threads) and two forked workers joined by pipes, checkpointed by SIGTSTP to
/// the whole process group (as Ctrl-Z does) at a random moment: one image, no
/// failure said (the workers pass the signal to the root, which is already
/// checkpointing), and after the restart the map finishes with the digest of a
/// run without ckpt. (The root's threads used to take the workers' replies,
/// which went to the whole process: the root died of signal 62.)
#[test]
fn tree_python_multiprocessing_pool() {
    let dir = Dir::new("tree_mp_pool");
    let python = python3();
    std::fs::copy(root().join("tests/c/mp_pool.py"), dir.join("mp_pool.py")).unwrap();
    let reference = std::process::Command::new(&python).arg("mp_pool.py").current_dir(dir.path()).output().unwrap();
    assert!(reference.status.success());
    let reference = String::from_utf8_lossy(&reference.stdout).into_owned();
    let digest = reference.lines().find(|l| l.starts_with("digest ")).expect("the reference run's digest").to_string();
    let image = dir.join("pool.ckpt");
    let mut cmd = ckpt(&dir, &["--tree", "-n", "pool.ckpt", &python, "mp_pool.py"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    std::thread::sleep(random_delay(100, 1200));
    let st = std::process::Command::new("kill").args(["-TSTP", "--"]).arg(format!("-{}", p.pid())).status().unwrap();
    assert!(st.success());
    let first = p.finish();
    first.assert_checkpointed("the pool");
    assert!(!first.stderr.contains("failed"), "{first}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the pool");
    let got = steps(&first, &second, "got ");
    assert_eq!(got, (0..120).collect::<Vec<u64>>(), "every result once, in order\nfirst:\n{first}\nrestart:\n{second}");
    assert!(second.has(&digest), "the reference {digest:?}\n{second}");
}

/// `CKPT_LAZY=1` on a tree's image: said, and every process restored eagerly
/// (the pager does not serve the members of a tree yet); the tree goes on.
#[test]
fn tree_lazy_restart_falls_back_to_eager() {
    let dir = Dir::new("tree_lazy");
    dir.compile("tree_worker.c", "tree_worker", &[]);
    let image = dir.join("tree_worker.ckpt");
    let first = checkpoint_with(ckpt(&dir, &["--tree", "./tree_worker"]), &image, "TSTP", random_delay(30, 380));
    let mut cmd = restart_cmd(&image, dir.path());
    cmd.env("CKPT_LAZY", "1");
    let second = run(cmd);
    second.assert_ok("lazy restart of the tree");
    assert!(
        second
            .stderr
            .contains("lazy restart not possible (the image holds a tree of processes); restoring every page now"),
        "{second}"
    );
    let want: Vec<u64> = (1..=40).collect();
    assert_eq!(steps(&first, &second, "W "), want, "the worker's steps\nfirst:\n{first}\nrestart:\n{second}");
    assert_eq!(steps(&first, &second, "P "), want, "the parent's steps\nfirst:\n{first}\nrestart:\n{second}");
}

/// A pipe whose ends two processes of the tree hold (a parent reading what its
/// forked child writes): `ckpt info` says it is made again and joined, naming
/// both holders (not "its other end is closed"), and after the restart the
/// parent reads every number in order, then reaps the child.
#[test]
fn tree_pipe_between_parent_and_child() {
    let dir = Dir::new("tree_feed");
    dir.compile("tree_feed.c", "tree_feed", &[]);
    let image = dir.join("tree_feed.ckpt");
    let first = checkpoint_with(ckpt(&dir, &["--tree", "./tree_feed"]), &image, "TSTP", random_delay(50, 800));
    let info = ckpt_info(&image);
    let line = info.lines().find(|l| l.contains("fd 3 ") && l.contains("pipe")).unwrap_or("");
    assert!(line.contains("a pipe of the tree, made again before the processes are and held again by pid "), "{info}");
    assert_eq!(line.matches(" fd ").count(), 3, "both holders named: {line}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the tree");
    assert!(second.has("DONE feed"), "{second}");
    assert_continues(&first, &second, 60);
}
