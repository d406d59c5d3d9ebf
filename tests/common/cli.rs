//! The harness of the command-line tests (tests/cli.rs): the `ckpt` command as
//! cargo built it for the tests, not the distribution, preloading an empty
//! library instead of the runtime; programs run to completion, so no checkpoint
//! is taken. Scratch directories live in the system temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const CKPT: &str = env!("CARGO_BIN_EXE_ckpt");

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TempDir {
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ckpt-cli-{}-{n}", std::process::id()));
        // A leftover from an earlier run with a recycled PID.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` with the given mode and returns its path.
    pub fn file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, contents).expect("write temp file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// Builds an empty shared library to stand in for the runtime.
    pub fn dummy_lib(&self) -> PathBuf {
        self.dummy_lib_named("libdummy.so")
    }

    pub fn dummy_lib_named(&self, name: &str) -> PathBuf {
        let src = self.file(&format!("{name}.c"), b"int ckpt_test_dummy;\n", 0o644);
        let lib = self.join(name);
        compile(&["-shared", "-fPIC", "-o"], &lib, &src);
        lib
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cc FLAGS OUT SRC`, failing the test with the compiler's output if it fails.
pub fn compile(flags: &[&str], out: &Path, src: &Path) {
    let output = Command::new("cc").args(flags).arg(out).arg(src).output().expect("run cc");
    assert!(output.status.success(), "cc {flags:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// `ckpt` with a clean environment as far as ckpt is concerned.
pub fn ckpt() -> Command {
    let mut cmd = Command::new(CKPT);
    for var in [
        "CKPT_NAME",
        "CKPT_CONTINUE",
        "CKPT_ASYNCSIG",
        "CKPT_INTERVAL",
        "CKPT_RUNTIME_LIB",
        "CKPT_RUNTIME_LIB32",
        "LD_PRELOAD",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `ckpt` preloading `lib` instead of the real runtime.
pub fn ckpt_with(lib: &Path) -> Command {
    let mut cmd = ckpt();
    cmd.env("CKPT_RUNTIME_LIB", lib);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run ckpt")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn success(output: Output) -> String {
    assert!(output.status.success(), "ckpt failed with {}:\n{}", output.status, stderr(&output));
    stdout(&output)
}

/// Asserts exit status `code`, a `ckpt: ` message containing `needle`, and
/// returns stderr.
pub fn failure(output: Output, code: i32, needle: &str) -> String {
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "stderr:\n{err}");
    assert!(err.starts_with("ckpt: "), "stderr:\n{err}");
    assert!(err.contains(needle), "expected {needle:?} in stderr:\n{err}");
    err
}

/// The value of `name` in the output of `env`.
pub fn env_value<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
}
