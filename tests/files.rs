//! Open files across a restart (issue 12, docs/files.md): C programs per case, and
//! real tools checked byte for byte against a reference run that was not
//! checkpointed. Each is checkpointed at a moment the test does not choose
//! exactly (a random delay), restarted, and its continuation compared.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `data_at` of tests/c/files_regular.c.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

/// Restart IMAGE through bash with foreign descriptors open (40, 41, 42): the
/// program must not see them.
fn restart_with_foreign_fds(image: &Path, dir: &Path) -> Outcome {
    let mut c = Command::new("bash");
    c.arg("-c").arg("exec 40</etc/passwd 41>/dev/null 42<&0; exec \"$0\"").arg(image);
    c.current_dir(dir).env_clear().env("PATH", "/usr/bin:/bin");
    run(c)
}

fn regular(bits: Bits) {
    let dir = Dir::new(&format!("files_regular{}", bits.tag()));
    dir.compile_bits("files_regular.c", "files_regular", &[], bits);
    fs::write(dir.join("in.bin"), pattern(100_000)).unwrap();
    let image = dir.join("files_regular.ckpt");
    let d = dir.path().to_str().unwrap();
    let first = checkpoint(ckpt(&dir, &["./files_regular", d, "60"]), &image);
    let second = restart_with_foreign_fds(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// Offsets, access modes, O_APPEND, close-on-exec, a dup() sharing one offset, a
/// deleted file with its content, and no descriptor of the restarting shell.
#[test]
fn regular_files_come_back_with_offsets_flags_sharing_and_nothing_foreign() {
    regular(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn regular_files_come_back_32bit() {
    regular(Bits::B32);
}

/// Checkpoint files_regular, then change in.bin with `change`; returns the dir,
/// the image and the first run.
fn changed_setup(name: &str) -> (Dir, std::path::PathBuf, Outcome) {
    let dir = Dir::new(name);
    dir.compile("files_regular.c", "files_regular", &[]);
    fs::write(dir.join("in.bin"), pattern(100_000)).unwrap();
    let image = dir.join("files_regular.ckpt");
    let d = dir.path().to_str().unwrap().to_string();
    let first = checkpoint(ckpt(&dir, &["./files_regular", &d, "60"]), &image);
    (dir, image, first)
}

/// A file gone at restart: one warning line naming the descriptor, the
/// descriptor fails (EBADF: the program says so); with --refuse-changed or
/// CKPT_CHANGED=refuse the restart is refused before the program runs.
#[test]
fn gone_file_warns_and_fails_loudly_or_refuses() {
    let (dir, image, _) = changed_setup("files_gone");
    fs::remove_file(dir.join("in.bin")).unwrap();
    let o = restart(&image, dir.path());
    assert!(o.stderr.contains("in.bin): warning: the file is gone"), "{o}");
    assert!(o.lines.iter().any(|l| l.starts_with("FAIL") && l.contains("Bad file descriptor")), "{o}");
    for refuse in [true, false] {
        let mut c = restart_cmd(&image, dir.path());
        if refuse {
            c.env("CKPT_CHANGED", "refuse");
        } else {
            c.arg("--refuse-changed");
        }
        let o = run(c);
        assert_eq!(o.status.code(), Some(1), "{o}");
        assert!(o.stderr.contains("in.bin): the file is gone"), "{o}");
        assert!(o.stderr.contains("not restarting"), "{o}");
        assert!(o.lines.is_empty(), "the program ran: {o}");
    }
}

/// A file shorter than the saved offset, or another file at the path: a warning
/// by default (and the program sees it: its reads come up short or differ), a
/// refusal with --refuse-changed.
#[test]
fn shorter_or_replaced_file_warns_or_refuses() {
    let (dir, image, _) = changed_setup("files_shorter");
    let f = fs::OpenOptions::new().write(true).open(dir.join("in.bin")).unwrap();
    f.set_len(10).unwrap();
    drop(f);
    let o = restart(&image, dir.path());
    assert!(o.stderr.contains("in.bin): warning: the file is now 10 bytes, shorter than the saved offset"), "{o}");
    assert!(o.has("FAIL"), "{o}");
    let mut c = restart_cmd(&image, dir.path());
    c.arg("--refuse-changed");
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "{o}");
    assert!(o.stderr.contains("shorter than the saved offset") && o.lines.is_empty(), "{o}");

    // Replaced: a new inode with the same content is warned about, and used
    // (written beside and renamed over, so the inode number cannot be reused).
    fs::write(dir.join("in.new"), pattern(100_000)).unwrap();
    fs::rename(dir.join("in.new"), dir.join("in.bin")).unwrap();
    let o = restart(&image, dir.path());
    o.assert_ok("restart with a replaced input");
    assert!(o.stderr.contains("in.bin): warning: another file is at that path now"), "{o}");
    let mut c = restart_cmd(&image, dir.path());
    c.env("CKPT_CHANGED", "refuse");
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "{o}");
    assert!(o.stderr.contains("another file is at that path now"), "{o}");
}

/// `ckpt info` lists every descriptor and how it will come back.
#[test]
fn info_lists_every_descriptor() {
    let (_dir, image, _) = changed_setup("files_info");
    let text = ckpt_info(&image);
    for want in [
        "in.bin: reopened by path at offset",
        "out.txt: reopened by path",
        "shares one open file description with fd",
        "app.txt",
        "deleted.bin (deleted): a new unlinked file with the",
        "fd 1    pipe",
        "the restarting shell's descriptor 1",
    ] {
        assert!(text.contains(want), "ckpt info lacks {want:?}:\n{text}");
    }
    let o = Command::new(ckpt_bin()).args(["info", "--json"]).arg(&image).output().unwrap();
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(
        json.contains("\"files\":[{") && json.contains("\"restart\":\"the restarting shell's descriptor 0\""),
        "{json}"
    );
}

/// Run `tool` under ckpt with its stdin/stdout as given, checkpoint after a
/// random delay, and check the image was written before the tool finished.
fn checkpoint_tool(dir: &Dir, args: &[&str], stdin: Stdio, stdout: Stdio, image: &Path, delay: (u64, u64)) {
    let _ = fs::remove_file(image);
    let mut c = ckpt(dir, args);
    c.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
    let child = c.spawn().expect("start the tool");
    std::thread::sleep(random_delay(delay.0, delay.1));
    let st = Command::new("kill").arg("-TSTP").arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(image.exists(), "{args:?} finished before the checkpoint (make its input larger): {err}");
    assert_eq!(out.status.code(), Some(CHECKPOINT_EXIT), "{args:?}: {}: {err}", out.status);
    assert_image(image);
}

/// Restart IMAGE with the given stdio; returns (status, stdout, stderr).
fn restart_tool(
    image: &Path,
    dir: &Path,
    stdin: Stdio,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, Vec<u8>, String) {
    let mut c = restart_cmd(image, dir);
    c.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (out.status, out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Text a compressor works on for a second or two.
fn big_text(path: &Path, lines: usize) {
    let mut s = String::with_capacity(lines * 24);
    let mut x: u64 = 88172645463325252;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{i} {:x}\n", x % 1_000_003));
    }
    fs::write(path, s).unwrap();
}

/// `ckpt gzip -c big > big.gz`, Ctrl-Z, `./gzip.ckpt`: big.gz is byte-identical
/// to a reference run's (stdout, a regular file, is reopened at its offset);
/// with CKPT_STDIO=shell the rest goes to the restarting shell's stdout instead.
#[test]
fn gzip_to_a_file_is_byte_identical() {
    let dir = Dir::new("files_gzip");
    big_text(&dir.join("big"), 1_500_000);
    let reference = Command::new("gzip").arg("-c").arg(dir.join("big")).output().unwrap().stdout;
    let image = dir.join("gzip.ckpt");
    let out = fs::File::create(dir.join("big.gz")).unwrap();
    checkpoint_tool(&dir, &["gzip", "-c", "big"], Stdio::null(), out.into(), &image, (150, 600));
    let partial = fs::read(dir.join("big.gz")).unwrap();
    assert!(partial.len() < reference.len(), "gzip was done already");
    let (st, stdout, err) = restart_tool(&image, dir.path(), Stdio::null(), &[("CKPT_STDIO", "shell")]);
    assert!(st.success(), "{st}: {err}");
    assert_eq!(fs::read(dir.join("big.gz")).unwrap(), partial, "CKPT_STDIO=shell wrote to big.gz");
    assert!(!stdout.is_empty() && partial.len() + stdout.len() == reference.len(), "{err}");
    assert_eq!([&partial[..], &stdout[..]].concat(), reference, "shell-stdio continuation differs");
    let (st, stdout, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(st.success(), "{st}: {err}");
    assert!(stdout.is_empty(), "gzip wrote to the shell's stdout: {err}");
    assert!(fs::read(dir.join("big.gz")).unwrap() == reference, "big.gz differs from the reference: {err}");
}

/// `ckpt xz -c big > big.xz`, Ctrl-Z, `./xz.ckpt`: big.xz is byte-identical to
/// a reference run's.
#[test]
fn xz_to_a_file_is_byte_identical() {
    let dir = Dir::new("files_xz");
    big_text(&dir.join("big"), 120_000);
    let reference = Command::new("xz").args(["-c", "big"]).current_dir(dir.path()).output().unwrap().stdout;
    let image = dir.join("xz.ckpt");
    let out = fs::File::create(dir.join("big.xz")).unwrap();
    checkpoint_tool(&dir, &["xz", "-c", "big"], Stdio::null(), out.into(), &image, (150, 600));
    let (st, stdout, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(st.success(), "{st}: {err}");
    assert!(stdout.is_empty(), "xz wrote to the shell's stdout: {err}");
    assert!(fs::read(dir.join("big.xz")).unwrap() == reference, "big.xz differs from the reference: {err}");
}

/// `ckpt sort --parallel=1 -S 1M -T tmp big > sorted`: sort spills runs into
/// temporary files in `tmp` and merges them; checkpointed at a moment the test
/// does not choose and restarted, its output is the reference's.
#[test]
fn sort_with_temporary_files_matches() {
    let dir = Dir::new("files_sort");
    big_text(&dir.join("big"), 4_000_000);
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let args = ["sort", "--parallel=1", "-S", "1M", "-T", "tmp", "big"];
    let reference = Command::new(args[0]).args(&args[1..]).current_dir(dir.path()).output().unwrap();
    assert!(reference.status.success());
    let image = dir.join("sort.ckpt");
    let out = fs::File::create(dir.join("sorted")).unwrap();
    checkpoint_tool(&dir, &args, Stdio::null(), out.into(), &image, (100, 500));
    let (st, stdout, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(st.success(), "{st}: {err}");
    assert!(stdout.is_empty(), "sort wrote to the shell's stdout: {err}");
    assert!(fs::read(dir.join("sorted")).unwrap() == reference.stdout, "the sorted output differs: {err}");
    assert!(fs::read_dir(dir.join("tmp")).unwrap().next().is_none(), "sort left temporary files");
}

/// `ckpt tar czf out.tgz big` without `--tree`: tar writes through a gzip child
/// that an image of tar alone leaves out. The checkpoint names the child, `ckpt
/// info` says it is not restored, and the restart says it again before tar
/// fails for want of it (it cannot reap its child), instead of a silent error.
#[test]
fn tar_without_tree_says_its_gzip_child_is_left_out() {
    let dir = Dir::new("files_tar_child");
    big_text(&dir.join("big"), 3_000_000);
    let image = dir.join("tar.ckpt");
    let mut c = ckpt(&dir, &["-n", "tar.ckpt", "tar", "czf", "out.tgz", "big"]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id();
    let has_child =
        || fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|c| !c.trim().is_empty());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !has_child() {
        assert!(std::time::Instant::now() < until, "tar never started its gzip child");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(random_delay(50, 300));
    let st = Command::new("kill").arg("-TSTP").arg(pid.to_string()).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(CHECKPOINT_EXIT), "{}: {err}", out.status);
    assert!(
        err.contains("ckpt: warning: 1 child process is not in the image (") && err.contains("ckpt --tree"),
        "{err}"
    );
    let info = ckpt_info(&image);
    assert!(info.contains("NOT RESTORED: 1 child process the program had at checkpoint time"), "{info}");
    let (st, _, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(err.contains("after restart, 1 child process the program had at checkpoint time is not there"), "{err}");
    assert!(!st.success(), "tar cannot finish without its gzip child: {st}: {err}");
}

/// A large sparse file with data at many places (so that a wrong offset changes
/// the hash).
fn sparse_with_marks(path: &Path, len: u64) {
    let f = fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut at = 0;
    while at < len {
        f.write_all_at(format!("mark at {at}\n").as_bytes(), at).unwrap();
        at += 1 << 22;
    }
}

/// `sha256sum big` (read through descriptor 3, which must come back at its
/// offset) prints the reference hash after a restart.
#[test]
fn sha256sum_of_a_big_file_matches() {
    let dir = Dir::new("files_sha256");
    sparse_with_marks(&dir.join("big"), 192 << 20);
    let reference = Command::new("sha256sum").arg("big").current_dir(dir.path()).output().unwrap().stdout;
    let image = dir.join("sha256sum.ckpt");
    checkpoint_tool(&dir, &["sha256sum", "big"], Stdio::null(), Stdio::piped(), &image, (100, 500));
    // A foreign descriptor 3 must not be hashed instead (the issue's `3< other`).
    let mut c = Command::new("bash");
    c.arg("-c").arg("exec 3</etc/passwd; exec \"$0\"").arg(&image).current_dir(dir.path());
    c.env_clear().env("PATH", "/usr/bin:/bin");
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&reference));
}

/// `dd if=big of=out bs=256`: the copy is complete and identical after a restart.
#[test]
fn dd_copy_is_complete() {
    let dir = Dir::new("files_dd");
    sparse_with_marks(&dir.join("big"), 128 << 20);
    let image = dir.join("dd.ckpt");
    checkpoint_tool(&dir, &["dd", "if=big", "of=out", "bs=256"], Stdio::null(), Stdio::piped(), &image, (100, 400));
    let (st, _, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(st.success(), "{st}: {err}");
    assert!(err.contains("524288+0 records out"), "{err}");
    assert!(fs::read(dir.join("out")).unwrap() == fs::read(dir.join("big")).unwrap(), "the copy differs");
}

/// A bash script (read by bash through a descriptor of its own, at an offset)
/// runs the lines after a long loop once restarted.
#[test]
fn bash_script_runs_the_lines_after_its_loop() {
    let dir = Dir::new("files_bash");
    fs::write(
        dir.join("script.sh"),
        "echo READY\ni=0\nwhile [ $i -lt 400000 ]; do i=$((i+1)); if [ $((i % 2000)) = 0 ]; then echo TICK $((i / 2000)); fi; done\necho after one\necho after two\necho DONE\n",
    )
    .unwrap();
    let image = dir.join("bash.ckpt");
    let first = checkpoint_with(ckpt(&dir, &["bash", "script.sh"]), &image, "TSTP", random_delay(100, 800));
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 200);
    let tail: Vec<&str> = second.lines.iter().map(String::as_str).skip_while(|l| l.starts_with("TICK")).collect();
    assert_eq!(tail, ["after one", "after two", "DONE"], "{second}");
}

/// python3 keeps a log open while it opens one file per step: after the restart
/// the log has every line, and each step file holds only its own content.
#[test]
fn python_log_and_step_files() {
    let dir = Dir::new("files_python");
    fs::write(
        dir.join("steps.py"),
        r#"import os, sys, time
log = open("log.txt", "a", buffering=1)
print("READY", flush=True)
for i in range(1, 61):
    with open("step_%d.txt" % i, "w") as f:
        f.write("content of step %d\n" % i)
    log.write("step %d\n" % i)
    print("TICK %d" % i, flush=True)
    time.sleep(0.02)
print("DONE", flush=True)
"#,
    )
    .unwrap();
    let python = python3();
    let image = dir.join("steps.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "steps.ckpt", &python, "steps.py"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
    let log = fs::read_to_string(dir.join("log.txt")).unwrap();
    let want: String = (1..=60).map(|i| format!("step {i}\n")).collect();
    assert_eq!(log, want);
    for i in 1..=60 {
        let s = fs::read_to_string(dir.join(&format!("step_{i}.txt"))).unwrap();
        assert_eq!(s, format!("content of step {i}\n"), "step_{i}.txt");
    }
}

/// sqlite3 on a database file, in the middle of a long series of transactions
/// read from a script on stdin: afterwards the database is intact and holds
/// every row.
#[test]
fn sqlite3_transactions_survive() {
    let dir = Dir::new("files_sqlite");
    let n = 6000;
    let mut sql = String::from("CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT);\n");
    for i in 1..=n {
        sql.push_str(&format!("BEGIN; INSERT INTO t VALUES({i}, 'value {i}'); COMMIT;\n"));
    }
    fs::write(dir.join("script.sql"), &sql).unwrap();
    let image = dir.join("sqlite3.ckpt");
    let stdin = fs::File::open(dir.join("script.sql")).unwrap();
    checkpoint_tool(&dir, &["sqlite3", "db.sqlite"], stdin.into(), Stdio::piped(), &image, (200, 800));
    let (st, _, err) = restart_tool(&image, dir.path(), Stdio::null(), &[]);
    assert!(st.success(), "{st}: {err}");
    let q = |s: &str| {
        let o = Command::new("sqlite3").arg("db.sqlite").arg(s).current_dir(dir.path()).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(q("PRAGMA integrity_check;"), "ok");
    assert_eq!(q("SELECT count(*), sum(i) FROM t;"), format!("{n}|{}", n * (n + 1) / 2));
    assert_eq!(q("SELECT count(*) FROM t WHERE v = 'value ' || i;"), n.to_string());
}

fn shared_map(bits: Bits) {
    let dir = Dir::new(&format!("files_mmap{}", bits.tag()));
    dir.compile_bits("files_mmap.c", "files_mmap", &[], bits);
    let image = dir.join("files_mmap.ckpt");
    let first = checkpoint(ckpt(&dir, &["./files_mmap", "shared.bin"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
    // The mapping's writes reached the file: the last step's count is there.
    let b = fs::read(dir.join("shared.bin")).unwrap();
    assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()), 60);
    // The file gone: the restart is refused, the program does not run.
    fs::remove_file(dir.join("shared.bin")).unwrap();
    let o = restart(&image, dir.path());
    assert_eq!(o.status.code(), Some(1), "{o}");
    assert!(o.stderr.contains("shared.bin) is gone") && o.lines.is_empty(), "{o}");
}

/// A MAP_SHARED mapping of a file is mapped from the file again: the program's
/// writes through it after the restart reach the file (it checks with pread).
#[test]
fn shared_file_mapping_writes_reach_the_file() {
    shared_map(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn shared_file_mapping_32bit() {
    shared_map(Bits::B32);
}

fn kinds(bits: Bits) {
    let dir = Dir::new(&format!("files_kinds{}", bits.tag()));
    dir.compile_bits("files_kinds.c", "files_kinds", &[], bits);
    fs::create_dir(dir.join("d")).unwrap();
    for k in 0..100 {
        fs::write(dir.join(&format!("d/e{k:03}")), b"").unwrap();
    }
    let image = dir.join("files_kinds.ckpt");
    let first = checkpoint(ckpt(&dir, &["./files_kinds", "d"]), &image);
    assert!(first.stderr.contains("the other end of this pipe is outside the process"), "{first}");
    let partway = "(/proc/self/status): a file the kernel writes as it is read, read partway (offset 64)";
    assert!(first.stderr.contains(partway), "{first}");
    assert!(!first.stderr.contains("/proc/self/stat)"), "{first}");
    let info = ckpt_info(&image);
    assert!(info.contains("NOT THE SAME TEXT: a file the kernel writes as it is read"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.stderr.contains("the other end of this pipe was outside the process"), "{second}");
    assert!(second.stderr.contains("(/proc/self/status): warning: a file the kernel writes as it is read"), "{second}");
    assert!(!second.stderr.contains("/proc/self/stat)"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A pipe with both ends in the process comes back with its queued bytes; one
/// whose other end was outside comes back closed (EOF, with a warning); a /proc
/// file read partway is opened at its offset again, with a warning at
/// checkpoint, at restart and in `ckpt info`; a FIFO by
/// its path, with its queued bytes; /dev/null,
/// /dev/zero, /dev/urandom; a directory continues at its readdir position.
#[test]
fn pipes_devices_and_directories_come_back() {
    kinds(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn pipes_devices_and_directories_come_back_32bit() {
    kinds(Bits::B32);
}

fn anon(bits: Bits) {
    let dir = Dir::new(&format!("files_anon{}", bits.tag()));
    dir.compile_bits("files_anon.c", "files_anon", &[], bits);
    let image = dir.join("files_anon.ckpt");
    let first = checkpoint(ckpt(&dir, &["./files_anon"]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
    let text = ckpt_info(&image);
    assert!(text.contains("a new epoll instance watching 1 descriptors again"), "{text}");
}

/// eventfd (its counter), timerfd (armed, the remaining time; periodic), signalfd
/// (its mask) and epoll (the same interest list with the same data) come back.
#[test]
fn eventfd_timerfd_signalfd_epoll_come_back() {
    anon(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn eventfd_timerfd_signalfd_epoll_come_back_32bit() {
    anon(Bits::B32);
}

/// Checkpoint a program with `n` open files; returns (checkpoint time, restart
/// time to the first step, the dir).
fn many(n: usize, tag: &str) -> (Duration, Duration, Dir) {
    let dir = Dir::new(&format!("files_many_{tag}"));
    dir.compile("files_many.c", "files_many", &[]);
    fs::create_dir(dir.join("d")).unwrap();
    for k in 0..n {
        fs::write(dir.join(&format!("d/f{k}")), format!("file {k}\n")).unwrap();
    }
    let image = dir.join("files_many.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["./files_many", "d", &n.to_string()]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 200));
    let t0 = Instant::now();
    p.signal("TSTP");
    let first = p.finish();
    let ckpt_time = t0.elapsed();
    first.assert_checkpointed("the checkpointed run");
    assert_image(&image);
    let mut r = Proc::spawn(restart_cmd(&image, dir.path()));
    let t1 = Instant::now();
    r.wait_for("RESTARTED");
    let restart_time = t1.elapsed();
    let second = r.finish();
    second.assert_ok("restart");
    assert_continues(&first, &second, 40);
    (ckpt_time, restart_time, dir)
}

/// A thousand open files all come back, each the same file at its own offset;
/// prints the checkpoint and restart times against the same program with none
/// (the cost per descriptor). Timing only reported: the machine is shared.
#[test]
fn a_thousand_open_files_come_back() {
    let (c0, r0, _d0) = many(0, "0");
    let (c1, r1, _d1) = many(1000, "1000");
    eprintln!(
        "open files: checkpoint {c0:.2?} with 0, {c1:.2?} with 1000 ({:.1} us per descriptor); \
         restart to the first step {r0:.2?} with 0, {r1:.2?} with 1000 ({:.1} us per descriptor)",
        (c1.as_secs_f64() - c0.as_secs_f64()) * 1e6 / 1000.0,
        (r1.as_secs_f64() - r0.as_secs_f64()) * 1e6 / 1000.0
    );
}

/// A program whose stdin is a terminal (a pty made by `script`) in raw mode: it
/// is restarted in another terminal (another `script`), which gets the saved
/// settings (no echo, no canonical input), with the program in its foreground.
#[test]
fn terminal_settings_and_foreground_come_back() {
    let dir = Dir::new("files_tty");
    dir.compile("files_tty.c", "files_tty", &[]);
    let image = dir.join("files_tty.ckpt");
    let ckpt = ckpt_bin();
    let mut c = Command::new("script");
    c.args(["-qfec", &format!("{} ./files_tty", ckpt.display()), "/dev/null"]).current_dir(dir.path());
    let mut p = Proc::spawn_with_piped_stdin(c);
    let _keep = p.stdin();
    let pid = p.wait_for("PID ").trim_start_matches("PID ").trim().to_string();
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    assert!(Command::new("kill").args(["-TSTP", &pid]).status().unwrap().success());
    let first = p.finish();
    assert!(!first.has("FAIL"), "{first}");
    assert_image(&image);
    let mut c = Command::new("script");
    c.args(["-qfec", "./files_tty.ckpt", "/dev/null"]).current_dir(dir.path());
    let mut r = Proc::spawn_with_piped_stdin(c);
    let _keep = r.stdin();
    r.wait_for("DONE");
    let second = r.finish();
    assert!(!second.has("FAIL") && second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
}

/// A tmux server of a test's own (its socket in the test's directory), whose
/// windows are 80x24 terminals; killed when dropped.
struct Tmux {
    sock: std::path::PathBuf,
    cwd: std::path::PathBuf,
}

impl Tmux {
    fn new(dir: &Dir) -> Tmux {
        Tmux { sock: dir.join("tmux.sock"), cwd: dir.path().to_path_buf() }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.sock).args(["-f", "/dev/null"]).args(args).current_dir(&self.cwd);
        c.output().unwrap()
    }

    /// A new session `name` running `sh -c command` in the test's directory.
    fn start(&self, name: &str, command: &str) {
        let o = self.cmd(&["new-session", "-d", "-s", name, "-x", "80", "-y", "24", command]);
        assert!(o.status.success(), "tmux new-session: {} {}", o.status, String::from_utf8_lossy(&o.stderr));
    }

    fn keys(&self, name: &str, keys: &str) {
        assert!(self.cmd(&["send-keys", "-t", name, keys]).status.success());
    }

    fn screen(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", name]).stdout).into_owned()
    }

    /// The screen of `name` once `ok` holds for it (10 s at most).
    fn wait(&self, name: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.screen(name);
            if ok(&s) || Instant::now() > until {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The content of `file` in the test's directory once it holds a whole
    /// line (the status files the windows' shells write with `echo ... > f`:
    /// the shell creates the file before it writes, so an empty file is not
    /// yet the status; `secs` seconds at most).
    fn wait_file(&self, file: &str, secs: u64) -> String {
        let path = self.cwd.join(file);
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = std::fs::read_to_string(&path).unwrap_or_default();
            if s.ends_with('\n') || Instant::now() > until {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// less, paging a file in a terminal (a tmux window), checkpointed by signal
/// at a moment the test does not choose and restarted in another terminal: it
/// is in that terminal's foreground with its settings (keys reach it at once,
/// without echo), it redraws the screen it had by itself (the restart's
/// SIGWINCH: the new terminal is blank), and paging and
/// searching go on exactly as in a reference less given the same keys, until
/// `q` ends it with status 0.
#[test]
fn less_under_tmux_comes_back_in_its_terminal() {
    let dir = Dir::new("files_less_tmux");
    let text: String = (1..=500).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.join("file.txt"), text).unwrap();
    let tmux = Tmux::new(&dir);
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    // The reference: one page on, then what the restarted one is given.
    tmux.start("ref", "less file.txt");
    let top = tmux.wait("ref", |s| first_line(s) == "line 1");
    assert_eq!(first_line(&top), "line 1", "less did not start in tmux\n{top}");
    tmux.keys("ref", "Space");
    let paged = tmux.wait("ref", |s| first_line(s) != "line 1");
    assert_eq!(first_line(&paged), "line 24", "{paged}");
    let mut want = Vec::new();
    for k in ["Space", "/line 300", "Enter", "b"] {
        let before = tmux.screen("ref");
        tmux.keys("ref", k);
        if k != "/line 300" {
            let w = tmux.wait("ref", |s| s != before);
            assert_ne!(w, before, "the reference less did not answer {k:?}");
            want.push(w);
        }
    }
    let ckpt = ckpt_bin().display().to_string();
    let run = format!("echo $$ > pid; exec {ckpt} -a USR1 -n less.ckpt less file.txt");
    tmux.start("first", &format!("sh -c '{run}'; echo EXIT=$? > status1; sleep 60"));
    let top = tmux.wait("first", |s| first_line(s) == "line 1");
    assert_eq!(first_line(&top), "line 1", "less did not start under ckpt\n{top}");
    tmux.keys("first", "Space");
    let got = tmux.wait("first", |s| first_line(s) != "line 1");
    assert_eq!(got, paged, "the same key did not page the same way");
    std::thread::sleep(random_delay(50, 300));
    let pid = std::fs::read_to_string(dir.join("pid")).unwrap();
    assert!(Command::new("kill").args(["-USR1", pid.trim()]).status().unwrap().success());
    let status = tmux.wait_file("status1", 20);
    assert_eq!(status.trim(), "EXIT=85", "less did not end with the checkpoint status\n{}", tmux.screen("first"));
    assert_image(&dir.join("less.ckpt"));

    // No key is pressed before the screen is back: less draws it on its own.
    tmux.start("again", "./less.ckpt 2> restart.err; echo EXIT=$? > status2; sleep 60");
    let back = tmux.wait("again", |s| *s == paged);
    let err = std::fs::read_to_string(dir.join("restart.err")).unwrap_or_default();
    assert_eq!(back, paged, "the restarted less did not redraw its screen\n{err}");
    let mut want = want.into_iter();
    for k in ["Space", "/line 300", "Enter", "b"] {
        tmux.keys("again", k);
        if k != "/line 300" {
            let w = want.next().unwrap();
            let got = tmux.wait("again", |s| *s == w);
            assert_eq!(got, w, "after {k:?}, the restarted less shows another screen than the reference");
        }
    }
    tmux.keys("again", "q");
    let status = tmux.wait_file("status2", 10);
    let err = std::fs::read_to_string(dir.join("restart.err")).unwrap_or_default();
    assert_eq!(status.trim(), "EXIT=0", "the restarted less did not end with q\n{err}");
    assert!(!err.contains("warning"), "{err}");
    drop(tmux);
}

/// vim (two threads) editing a file in a terminal (a tmux window): it handles
/// Ctrl-Z, SIGUSR1 and SIGUSR2 itself, so its trigger is a real-time signal
/// (`-a RTMIN+3`, docs/files.md). Checkpointed after some typing, restarted in
/// another terminal, it redraws its screen by itself (the restart's SIGWINCH),
/// and given the rest of the keys it writes the file a reference vim given the
/// same keys writes.
#[test]
fn vim_under_tmux_edits_on_after_a_restart() {
    let dir = Dir::new("files_vim_tmux");
    let tmux = Tmux::new(&dir);
    let vim = "vim -u NONE -N -n -i NONE";
    let first_keys = ["ihello world", "Escape", "oline two", "Escape"];
    let rest = ["ggA, said again", "Escape", "Gothe end", "Escape", ":wq", "Enter"];
    let wait_file = |f: &str| tmux.wait_file(f, 15);
    let typed = |name: &str, keys: &[&str]| {
        for k in keys {
            tmux.keys(name, k);
        }
    };
    // Each window outlives its program (`sleep 60`): the server exits with its
    // last window, and a session started while it does fails.
    tmux.start("ref", &format!("{vim} ref.txt; echo EXIT=$? > status0; sleep 60"));
    tmux.wait("ref", |s| s.starts_with("~") || s.contains("\n~"));
    typed("ref", &first_keys);
    typed("ref", &rest);
    assert_eq!(wait_file("status0").trim(), "EXIT=0");
    let want = fs::read_to_string(dir.join("ref.txt")).unwrap();
    assert_eq!(want, "hello world, said again\nline two\nthe end\n");

    let ckpt = ckpt_bin().display().to_string();
    let run = format!("echo $$ > pid; exec {ckpt} -a RTMIN+3 -n vim.ckpt {vim} out.txt");
    tmux.start("first", &format!("sh -c '{run}' 2> err1; echo EXIT=$? > status1; sleep 60"));
    tmux.wait("first", |s| s.contains("\n~"));
    typed("first", &first_keys);
    tmux.wait("first", |s| s.starts_with("hello world\nline two"));
    std::thread::sleep(random_delay(50, 300));
    let pid = fs::read_to_string(dir.join("pid")).unwrap();
    // SIGRTMIN+3 as the C library numbers it (glibc keeps 32 and 33).
    assert!(Command::new("kill").args(["-s", "RTMIN+3", pid.trim()]).status().unwrap().success());
    let status = wait_file("status1");
    let err1 = fs::read_to_string(dir.join("err1")).unwrap_or_default();
    assert_eq!(status.trim(), "EXIT=85", "vim did not end with the checkpoint status\n{err1}");
    assert_image(&dir.join("vim.ckpt"));

    // The new terminal is blank: vim draws its text again before any key.
    tmux.start("again", "./vim.ckpt 2> err2; echo EXIT=$? > status2; sleep 60");
    let back = tmux.wait("again", |s| s.starts_with("hello world\nline two\n~"));
    let err2 = fs::read_to_string(dir.join("err2")).unwrap_or_default();
    assert!(back.starts_with("hello world\nline two\n~"), "the restarted vim did not redraw\n{back}\n{err2}");
    typed("again", &rest);
    let status = wait_file("status2");
    let err2 = fs::read_to_string(dir.join("err2")).unwrap_or_default();
    assert_eq!(status.trim(), "EXIT=0", "the restarted vim did not end with :wq\n{err2}");
    assert!(!err2.contains("warning"), "{err2}");
    assert_eq!(fs::read_to_string(dir.join("out.txt")).unwrap_or_default(), want, "{err2}");
}

fn sockets(bits: Bits) {
    let dir = Dir::new(&format!("files_sock{}", bits.tag()));
    dir.compile_bits("files_sock.c", "files_sock", &[], bits);
    let image = dir.join("files_sock.ckpt");
    let d = dir.path().to_str().unwrap().to_string();
    let first = checkpoint(ckpt(&dir, &["./files_sock", &d]), &image);
    assert!(first.stderr.contains("a connected socket whose peer is not restored"), "{first}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.stderr.contains("fails like a dropped connection"), "{second}");
    assert_continues(&first, &second, 60);
}

/// Listening TCP and UNIX sockets come back on the same address with their
/// options, a bound UDP socket is bound again, and a connected socket whose peer
/// is outside comes back as a dropped connection (end of file), with a warning.
#[test]
fn listening_and_udp_sockets_come_back() {
    sockets(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn listening_and_udp_sockets_come_back_32bit() {
    sockets(Bits::B32);
}

/// The connections a process made to itself come back connected: a TCP
/// connection through a listening socket without SO_REUSEADDR and one whose
/// listening socket is gone, on the same ports, with the bytes queued each way
/// and TCP_NODELAY; connections waiting in a TCP and a UNIX listening socket's
/// queue wait there again and are accepted after the restart; UNIX seqpacket
/// and datagram pairs keep their queued messages whole. The bytes that a
/// waiting connection had sent are lost: said at checkpoint, at restart and in
/// `ckpt info`. Nothing is a dropped connection.
fn connections(bits: Bits) {
    let dir = Dir::new(&format!("files_tcpself{}", bits.tag()));
    dir.compile_bits("files_tcpself.c", "files_tcpself", &[], bits);
    let image = dir.join("files_tcpself.ckpt");
    let d = dir.path().to_str().unwrap().to_string();
    let first = checkpoint(ckpt(&dir, &["./files_tcpself", &d]), &image);
    let lost = "a connection waiting to be accepted by descriptor ";
    assert!(first.stderr.contains(lost) && first.stderr.contains("the 5 bytes it had sent there are lost"), "{first}");
    assert!(!first.stderr.contains("dropped connection"), "{first}");
    let info = ckpt_info(&image);
    assert!(info.contains("one end of a new TCP connection to fd "), "{info}");
    assert!(info.contains("waiting to be accepted as it was; the 5 bytes it had sent are LOST"), "{info}");
    assert!(!info.contains("NOT RESTORED"), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.stderr.contains("the 5 bytes it had sent are lost"), "{second}");
    assert!(!second.stderr.contains("dropped connection") && !second.stderr.contains("other addresses"), "{second}");
    assert!(second.has("RESTARTED at"), "{second}");
    assert_continues(&first, &second, 60);
}

#[test]
fn connections_to_itself_come_back_connected() {
    connections(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn connections_to_itself_come_back_connected_32bit() {
    connections(Bits::B32);
}

fn locks(bits: Bits) {
    let dir = Dir::new(&format!("files_locks{}", bits.tag()));
    dir.compile_bits("files_locks.c", "files_locks", &[], bits);
    let image = dir.join("files_locks.ckpt");
    let d = dir.path().to_str().unwrap().to_string();
    let first = checkpoint(ckpt(&dir, &["./files_locks", &d]), &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 40);
    // Held by someone else at restart: said, and the program goes on.
    let mut holder = Command::new("flock");
    let mut held = holder.arg(dir.join("a")).args(["sleep", "3"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = restart(&image, dir.path());
    let _ = held.kill();
    let _ = held.wait();
    assert!(o.stderr.contains("a): warning: could not take its flock lock again"), "{o}");
}

/// flock and POSIX record locks are taken again at restart (a child process
/// cannot take them); one that another process holds meanwhile is said.
#[test]
fn file_locks_are_taken_again() {
    locks(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn file_locks_are_taken_again_32bit() {
    locks(Bits::B32);
}

/// io_uring instances and AIO contexts cannot be restored: the checkpoint is
/// refused with a message naming them, no image is written, the program goes on.
#[test]
fn io_uring_and_aio_refuse_the_checkpoint() {
    for (what, msg) in [("uring", "is an io_uring instance"), ("aio", "has an AIO context")] {
        let dir = Dir::new(&format!("files_refuse_{what}"));
        dir.compile("files_refuse.c", "files_refuse", &[]);
        let mut p = Proc::spawn(ckpt(&dir, &["./files_refuse", what]));
        p.wait_for("READY");
        std::thread::sleep(random_delay(50, 300));
        p.signal("TSTP");
        let o = p.finish();
        o.assert_ok(what);
        assert!(o.has("DONE"), "{o}");
        assert!(o.stderr.contains(msg) && o.stderr.contains("not checkpointing"), "{o}");
        assert!(!dir.join("files_refuse.ckpt").exists(), "an image was written for {what}");
    }
}

fn inotify(bits: Bits) {
    require_root("find a watched file that is not open by its file handle (open_by_handle_at)");
    let dir = Dir::new(&format!("files_inotify{}", bits.tag()));
    dir.compile_bits("files_inotify.c", "files_inotify", &[], bits);
    let image = dir.join("files_inotify.ckpt");
    let first = checkpoint(ckpt(&dir, &["./files_inotify"]), &image);
    assert!(
        first.stderr.contains("(anon_inode:inotify): 16 bytes of queued events: they are lost after a restart"),
        "{first}"
    );
    assert_eq!(first.stderr.matches("warning").count(), 1, "only the queued events are lost\n{first}");
    let info = ckpt_info(&image);
    let here = dir.path().canonicalize().unwrap();
    let d = here.display();
    let want = format!("watching 3 path(s) again with the same watch numbers: 1={d}, 2={d}/a, 4={d}/far/c");
    assert!(info.contains(&want), "{want}\n{info}");
    assert!(info.contains(&format!("1={d}/b; 16 bytes of queued events LOST")), "{info}");
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.stderr.contains("warning: 16 bytes of events queued at checkpoint time are lost"), "{second}");
    // The image was written into the watched working directory after the
    // checkpoint: a change the program gets no event for, which is said.
    let changed = format!("warning: watch 1 ({d}): the file changed while the program was not running");
    assert!(second.stderr.contains(&changed), "{second}");
    assert_eq!(second.stderr.matches("warning").count(), 2, "nothing else is lost\n{second}");
    assert_continues(&first, &second, 60);
}

/// An inotify instance comes back with each watch on its path and with its
/// watch number (a removed watch's number stays unused): the program's events
/// carry the numbers it was given before the checkpoint. Paths are found for
/// the working directory, a file held open and (as root) a file found by its
/// handle; events queued at checkpoint time are said to be lost, at checkpoint,
/// in `ckpt info` and at restart.
#[test]
fn inotify_watches_come_back_with_their_numbers() {
    inotify(Bits::B64);
}

/// The same, `cc -m32`.
#[test]
fn inotify_watches_come_back_with_their_numbers_32bit() {
    inotify(Bits::B32);
}

/// `ckpt tail -f log` checkpointed while it waits for the file to grow: after
/// the restart it follows the file again (its inotify watch is back). The lines
/// written while it was gone made no event (the watch did not exist then: the
/// restart says so), so they are printed with the next line written; nothing is
/// lost or repeated.
#[test]
fn tail_f_follows_the_file_after_a_restart() {
    use std::io::Write;
    let dir = Dir::new("files_tail");
    let log = dir.join("log");
    let append = |from: u32, to: u32, pause: u64| {
        for i in from..=to {
            let mut f = fs::OpenOptions::new().append(true).create(true).open(&log).unwrap();
            writeln!(f, "line {i}").unwrap();
            drop(f);
            std::thread::sleep(Duration::from_millis(pause));
        }
    };
    append(1, 5, 0);
    let image = dir.join("tail.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["tail", "-n", "+1", "-f", "log"]));
    p.wait_for("line 5");
    append(6, 8, 30);
    p.wait_for("line 8");
    std::thread::sleep(random_delay(20, 200));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_checkpointed("tail -f");
    assert_image(&image);
    append(9, 11, 0);
    let mut q = Proc::spawn(restart_cmd(&image, dir.path()));
    std::thread::sleep(Duration::from_millis(300));
    append(12, 14, 30);
    q.wait_for("line 14");
    std::thread::sleep(Duration::from_millis(100));
    let second = q.kill();
    let lines = |o: &Outcome| o.lines.iter().filter(|l| l.starts_with("line ")).cloned().collect::<Vec<_>>();
    let want = |a: u32, b: u32| (a..=b).map(|i| format!("line {i}")).collect::<Vec<_>>();
    assert_eq!(lines(&first), want(1, 8), "{first}");
    assert_eq!(lines(&second), want(9, 14), "{second}");
    assert!(!first.stderr.contains("warning"), "{first}");
    let changed = "/files_tail/log): the file changed while the program was not running; that change makes no event";
    assert!(second.stderr.contains(changed), "{second}");
    assert_eq!(second.stderr.matches("warning").count(), 1, "{second}");
}
