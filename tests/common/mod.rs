//! The end-to-end harness: compile a C program from `tests/c`, run it under the
//! built `ckpt`, checkpoint it at a moment the test does not choose exactly, restart
//! the image and collect what the continuation printed.
//!
//! Test programs speak a small line protocol on stdout (see `tests/c/tick.h`):
//! `READY` once set up, `TICK n` for each step of work (each step re-verifies the
//! program's state), `RESTARTED ...` when a step finds itself in a new process,
//! `FAIL: ...` (and a non-zero exit) when a check fails, `DONE` at the end. Lines
//! starting with `#` are padding (to make writes large) and are not kept.
//!
//! The distribution comes from `$CKPT_DIST` (set by `cargo xtask test`) or
//! `target/dist`; build it with `cargo xtask build`.
//!
//! Every scenario that makes sense in 32 bits also runs for `cc -m32` programs
//! ([`Bits::B32`]): the same C source, the i386 runtime from `lib32/`, a 32-bit
//! checkpoint. There is no skipping: a machine without gcc-multilib or the i686
//! Rust target fails those tests (`cargo xtask setup` installs both).

#![allow(dead_code)] // each test binary uses its own subset

pub mod cli;

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The documented exit status of a program that was checkpointed and exited.
pub const CHECKPOINT_EXIT: i32 = 85;

/// How long any one program may run before the test calls it hung.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The distribution directory (`bin/ckpt`, `lib/libckpt.so`, `lib32/libckpt.so`...).
pub fn dist() -> PathBuf {
    let dist = std::env::var_os("CKPT_DIST").map_or_else(|| root().join("target/dist"), PathBuf::from);
    assert!(
        dist.join("lib/libckpt.so").is_file() && dist.join("bin/ckpt").is_file(),
        "no ckpt distribution in {}: run `cargo xtask build` (or `cargo xtask test`)",
        dist.display()
    );
    assert!(
        dist.join("lib32/libckpt.so").is_file() && dist.join("lib32/libckpt.a").is_file(),
        "no i386 runtime in {}/lib32: run `cargo xtask setup` (i686 Rust target, \
         gcc-multilib), then `cargo xtask build`",
        dist.display()
    );
    dist
}

/// Fail the test unless `cmd args` runs and succeeds: a tool the test needs,
/// which `cargo xtask setup` installs from the Debian package `package`.
pub fn require_tool(cmd: &str, args: &[&str], package: &str) {
    let ok = Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
    assert!(ok, "this test needs `{cmd}`: run `cargo xtask setup` (apt-get install {package})");
}

/// Fail the test unless it runs as root, which it needs for `what` (CI runs the
/// suite as root). Not a skip: a test that did not run must not pass.
pub fn require_root(what: &str) {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
    assert_eq!(
        uid,
        Some("0"),
        "this test needs root to {what}: run the suite as root (as CI does), or leave it out with \
         `cargo xtask test -- --skip NAME`"
    );
}

/// Word size of a test program: the same C source is built for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bits {
    /// x86_64 (`cc`'s default).
    B64,
    /// i386 (`cc -m32`).
    B32,
}

impl Bits {
    /// The compiler flag.
    pub fn flag(self) -> &'static str {
        match self {
            Bits::B64 => "-m64",
            Bits::B32 => "-m32",
        }
    }

    /// The distribution's runtime directory for programs of this size.
    pub fn lib(self) -> PathBuf {
        dist().join(match self {
            Bits::B64 => "lib",
            Bits::B32 => "lib32",
        })
    }

    /// A suffix for scratch directory names.
    pub fn tag(self) -> &'static str {
        match self {
            Bits::B64 => "",
            Bits::B32 => "_32",
        }
    }

    /// `EI_CLASS` of its executables (and checkpoints).
    pub fn elf_class(self) -> u8 {
        match self {
            Bits::B64 => 2,
            Bits::B32 => 1,
        }
    }
}

/// IMAGE is a checkpoint of the given word size (ELF class of the loader).
pub fn assert_image_bits(image: &Path, bits: Bits) {
    let mut ident = [0u8; 5];
    fs::File::open(image).unwrap().read_exact(&mut ident).unwrap();
    assert_eq!(ident[4], bits.elf_class(), "{} is not a {bits:?} ELF executable", image.display());
}

pub fn ckpt_bin() -> PathBuf {
    dist().join("bin/ckpt")
}

/// The python3 interpreter itself, not a wrapper script that would exec it
/// (pyenv shims): the program ckpt must see.
pub fn python3() -> String {
    let exe = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed: cargo xtask setup installs it");
    String::from_utf8(exe.stdout).unwrap().trim().to_string()
}

/// tests/c/pyheap.py copied into `dir` and run once with `args` without ckpt:
/// the python3 to run it with, and the reference run's `DONE ...` line (its
/// digest), which a checkpointed and restarted run must end with.
pub fn pyheap_reference(dir: &Dir, args: &[&str]) -> (String, String) {
    fs::copy(root().join("tests/c/pyheap.py"), dir.join("pyheap.py")).unwrap();
    let python = python3();
    let mut reference = Command::new(&python);
    reference.arg("pyheap.py").args(args).current_dir(dir.path());
    let reference = run(reference);
    reference.assert_ok("the reference run");
    let want = reference.line("DONE").expect("the reference run's digest").to_string();
    (python, want)
}

/// What `ckpt info IMAGE` prints; it must succeed.
pub fn ckpt_info(image: &Path) -> String {
    let o = Command::new(ckpt_bin()).arg("info").arg(image).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "ckpt info {} failed:\n{text}{}", image.display(), String::from_utf8_lossy(&o.stderr));
    text
}

/// A random delay in [lo, hi) milliseconds: the test does not pick the instruction
/// the checkpoint lands on.
pub fn random_delay(lo: u64, hi: u64) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    Duration::from_millis(lo + h.finish() % (hi - lo))
}

/// A scratch directory `target/e2e/NAME`, emptied when created and removed when the
/// test passes (kept for inspection when it fails).
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(name: &str) -> Self {
        let path = root().join("target/e2e").join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create scratch dir");
        Dir(path)
    }

    /// A scratch directory that any user can reach and write, for a test that
    /// runs a program as another user (`nobody`): under the system's temporary
    /// directory, since the checkout's own parents may be private (CI's, or a
    /// `mktemp -d` clone, are 0700).
    pub fn new_public(name: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let top = std::env::temp_dir().join("ckpt-e2e-public");
        fs::create_dir_all(&top).expect("create public scratch root");
        fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).unwrap();
        let path = top.join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create public scratch dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        Dir(path)
    }

    /// A copy of the distribution inside this directory (`DIR/dist`), which
    /// another user can run: `bin/ckpt` finds its runtimes next to itself.
    pub fn copy_dist(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let to = self.0.join("dist");
        for f in ["bin/ckpt", "lib/libckpt.so", "lib32/libckpt.so"] {
            let dst = to.join(f);
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::copy(dist().join(f), &dst).expect("copy the distribution");
            fs::set_permissions(dst.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
        to
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// Compile `tests/c/SRC` (C or C++ by extension) into this directory as OUT.
    pub fn compile(&self, src: &str, out: &str, flags: &[&str]) -> PathBuf {
        self.compile_bits(src, out, flags, Bits::B64)
    }

    /// The same with `-m32`.
    pub fn compile32(&self, src: &str, out: &str, flags: &[&str]) -> PathBuf {
        self.compile_bits(src, out, flags, Bits::B32)
    }

    /// Compile for BITS (`-m64` or `-m32`: gcc-multilib and g++-multilib for the latter).
    pub fn compile_bits(&self, src: &str, out: &str, flags: &[&str], bits: Bits) -> PathBuf {
        let cxx = src.ends_with(".cc") || src.ends_with(".cpp");
        let exe = self.join(out);
        let res = Command::new(if cxx { "c++" } else { "cc" })
            .args([bits.flag(), "-O1", "-g", "-Wall", "-o"])
            .arg(&exe)
            .arg(root().join("tests/c").join(src))
            .arg("-I")
            .arg(root().join("tests/c"))
            .args(flags)
            .output()
            .expect("run the C compiler");
        assert!(
            res.status.success(),
            "compiling {src} ({}) failed (for -m32: cargo xtask setup installs gcc-multilib \
             and g++-multilib):\n{}",
            bits.flag(),
            String::from_utf8_lossy(&res.stderr)
        );
        exe
    }

    /// Files in the directory whose name starts with `.` and contains `.tmp.`: a
    /// checkpoint's temporary file left behind.
    pub fn leftovers(&self) -> Vec<String> {
        fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('.') && n.contains(".tmp."))
            .collect()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `ckpt ARGS...` in DIR, stdout and stderr captured.
pub fn ckpt(dir: &Dir, args: &[&str]) -> Command {
    let mut c = Command::new(ckpt_bin());
    c.args(args).current_dir(dir.path());
    c
}

/// What a finished process printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Outcome {
    /// The numbers of the `TICK n` lines, in order.
    pub fn ticks(&self) -> Vec<u64> {
        self.lines.iter().filter_map(|l| l.strip_prefix("TICK ")?.trim().parse().ok()).collect()
    }

    pub fn has(&self, prefix: &str) -> bool {
        self.lines.iter().any(|l| l.starts_with(prefix))
    }

    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.lines.iter().find(|l| l.starts_with(prefix)).map(String::as_str)
    }

    /// Panic with the transcript unless the process exited 0 with no FAIL line.
    pub fn assert_ok(&self, what: &str) {
        assert!(self.status.success() && !self.has("FAIL"), "{what}: {}\n{self}", self.status);
    }

    /// Panic with the transcript unless the process exited with the checkpoint
    /// exit status (it was checkpointed and exited) with no FAIL line.
    pub fn assert_checkpointed(&self, what: &str) {
        assert!(
            self.status.code() == Some(CHECKPOINT_EXIT) && !self.has("FAIL"),
            "{what}: {} (want exit status {CHECKPOINT_EXIT}, the checkpoint-and-exit status)\n{self}",
            self.status
        );
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- stdout ---")?;
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// A running process whose stdout is read line by line.
pub struct Proc {
    child: Child,
    rx: Receiver<String>,
    lines: Vec<String>,
    stderr: Option<JoinHandle<()>>,
    /// Everything read from stderr so far (the program's and its writers').
    err_text: std::sync::Arc<std::sync::Mutex<String>>,
    started: Instant,
}

impl Proc {
    pub fn spawn(cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        Self::try_spawn(cmd).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
    }

    pub fn try_spawn(cmd: Command) -> std::io::Result<Proc> {
        Self::try_spawn_with_stdin(cmd, Stdio::null())
    }

    /// Like `spawn`, with stdin a pipe the test writes to: take it with `stdin()`.
    pub fn spawn_with_piped_stdin(cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        Self::try_spawn_with_stdin(cmd, Stdio::piped()).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
    }

    /// The write end of the program's stdin, if it was spawned with a pipe.
    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    fn try_spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> std::io::Result<Proc> {
        cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        // A file this test just wrote can be open for writing in a child another
        // test thread forked at that moment (until it execs): exec then fails
        // with ETXTBSY for a few milliseconds. Not the program's doing: retry.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => break r?,
            }
        };
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with('#') {
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = err_text.clone();
        let stderr = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Ok(Proc { child, rx, lines: Vec::new(), stderr: Some(stderr), err_text, started: Instant::now() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (up to 20 s) until the process has a handler for signal `sig`
    /// (`SigCgt` of /proc/PID/status): the runtime has loaded, or a restarted
    /// process has its dispositions back. A trigger sent before would meet the
    /// default action (and a SIGTSTP in an orphaned process group, as under CI,
    /// is discarded by the kernel).
    pub fn wait_catching(&self, sig: u32) {
        let until = Instant::now() + Duration::from_secs(20);
        let caught = || {
            let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
            let line = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).unwrap_or("0");
            u64::from_str_radix(line.trim(), 16).is_ok_and(|m| m & (1 << (sig - 1)) != 0)
        };
        while !caught() {
            assert!(Instant::now() < until, "process {} never caught signal {sig}", self.pid());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// What the process (and any background checkpoint writer) wrote to stderr so far.
    pub fn stderr_now(&self) -> String {
        self.err_text.lock().unwrap().clone()
    }

    /// Take every line printed so far and return the last `TICK n` among them
    /// (or among earlier ones): where the program is now, not where it was when
    /// the test last looked.
    pub fn current_tick(&mut self) -> u64 {
        while let Ok(l) = self.rx.try_recv() {
            if l.starts_with("FAIL") {
                let o = self.collect();
                panic!("program failed\n{o}");
            }
            self.lines.push(l);
        }
        self.lines.iter().rev().find_map(|l| l.strip_prefix("TICK ")?.trim().parse().ok()).unwrap_or(0)
    }

    /// Wait for a line starting with `prefix`; return it. Panics (with everything
    /// seen so far) on a FAIL line, end of output or the timeout.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = self.started + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line.starts_with("FAIL") {
                        let o = self.collect();
                        panic!("program failed while waiting for {prefix:?}\n{o}");
                    }
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "output ended",
                    };
                    let _ = self.child.kill();
                    let o = self.collect();
                    panic!("{why} waiting for {prefix:?}\n{o}");
                }
            }
        }
    }

    /// Send a signal by name (`TSTP`, `USR1`, ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// The lines seen so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Kill the process (SIGKILL) and collect what it printed.
    pub fn kill(mut self) -> Outcome {
        let _ = self.child.kill();
        self.collect()
    }

    /// Wait for the exit (killing the process at the timeout) and collect everything.
    pub fn finish(mut self) -> Outcome {
        self.collect()
    }

    fn collect(&mut self) -> Outcome {
        let deadline = self.started + TIMEOUT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let st = self.child.wait().expect("wait");
                self.lines.push(format!("[killed by the test harness after {TIMEOUT:?}]"));
                break st;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader thread ends at EOF; grandchildren holding the pipe are not waited for.
        let until = Instant::now() + Duration::from_secs(5);
        while let Ok(l) = self.rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            self.lines.push(l);
        }
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
        let stderr = self.stderr_now();
        Outcome { status, lines: std::mem::take(&mut self.lines), stderr }
    }
}

/// Run CMD to completion.
pub fn run(cmd: Command) -> Outcome {
    Proc::spawn(cmd).finish()
}

/// Start CMD, wait for `READY`, let it run a random 50..300 ms, send SIGTSTP and
/// collect the outcome. Checks that it exited with the checkpoint exit status
/// (85) and that IMAGE is a complete,
/// owner-only executable with no temporary file left next to it.
pub fn checkpoint(cmd: Command, image: &Path) -> Outcome {
    checkpoint_with(cmd, image, "TSTP", random_delay(50, 300))
}

pub fn checkpoint_with(cmd: Command, image: &Path, sig: &str, delay: Duration) -> Outcome {
    let _ = fs::remove_file(image);
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    std::thread::sleep(delay);
    p.signal(sig);
    let o = p.finish();
    o.assert_checkpointed("the checkpointed run");
    assert!(!o.has("DONE"), "the program finished before the checkpoint (make it run longer)\n{o}");
    assert_image(image);
    o
}

/// IMAGE exists, is an ELF file of mode 0700, no temporary file sits beside it,
/// and `ckpt verify` finds every byte as its checksums say.
pub fn assert_image(image: &Path) {
    let meta = fs::metadata(image).unwrap_or_else(|e| panic!("no checkpoint {}: {e}", image.display()));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700, "{} must be mode 0700", image.display());
    let mut magic = [0u8; 4];
    fs::File::open(image).unwrap().read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"\x7fELF", "{} is not an ELF file", image.display());
    let dir = image.parent().unwrap();
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left in {}: {left:?}", dir.display());
    let v = Command::new(ckpt_bin()).arg("verify").arg(image).output().expect("run ckpt verify");
    assert!(
        v.status.success(),
        "ckpt verify {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Run IMAGE from DIR with a scrubbed, different environment (the image must bring
/// its own back).
pub fn restart_cmd(image: &Path, dir: &Path) -> Command {
    restart_cmd_under(&[], image, dir)
}

/// The same, run by WRAPPER (a command and its arguments, such as `setarch -X`)
/// with the image as its last argument.
pub fn restart_cmd_under(wrapper: &[&str], image: &Path, dir: &Path) -> Command {
    let mut c = match wrapper.split_first() {
        None => Command::new(image),
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(image);
            c
        }
    };
    c.current_dir(dir).env_clear().env("PATH", "/usr/bin:/bin").env("CKPT_TEST_RESTART_SHELL", "1");
    c
}

pub fn restart(image: &Path, dir: &Path) -> Outcome {
    run(restart_cmd(image, dir))
}

/// One checkpoint-and-restart cycle of a scenario program: compile `src` into
/// DIR as `name` for `bits`, run it under `ckpt` with `args` and `env`, checkpoint
/// it at a random moment, check the image, restart it from a scrubbed
/// environment, and check it went on from exactly where it was (60 ticks, a
/// RESTARTED line). Returns both transcripts for the scenario's own checks.
pub fn cycle_in(
    dir: &str,
    name: &str,
    src: &str,
    args: &[&str],
    env: &[(&str, &str)],
    bits: Bits,
) -> (Outcome, Outcome) {
    let dir = Dir::new(dir);
    dir.compile_bits(src, name, &[], bits);
    let image = dir.join(&format!("{name}.ckpt"));
    let prog = format!("./{name}");
    let mut all = vec![prog.as_str()];
    all.extend(args);
    let mut cmd = ckpt(&dir, &all);
    cmd.envs(env.iter().copied());
    let first = checkpoint(cmd, &image);
    assert_image_bits(&image, bits);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert!(second.has("RESTARTED"), "{second}");
    assert_continues(&first, &second, 60);
    (first, second)
}

/// The ticks of FIRST then SECOND are exactly 1..=total: nothing lost, nothing
/// repeated, and the checkpoint fell strictly inside the run.
pub fn assert_continues(first: &Outcome, second: &Outcome, total: u64) {
    let a = first.ticks();
    let b = second.ticks();
    let all: Vec<u64> = a.iter().chain(&b).copied().collect();
    let want: Vec<u64> = (1..=total).collect();
    assert!(all == want, "ticks do not continue: before {a:?}, after {b:?}\nfirst run:\n{first}\nrestart:\n{second}");
    assert!(!b.is_empty(), "nothing ran after the restart\n{second}");
    assert!(second.has("DONE"), "the restarted program did not finish\n{second}");
}
