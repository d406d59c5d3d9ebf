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
