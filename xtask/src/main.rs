//! `cargo xtask <task>`: the project's build tasks, one module each.
//!
//! - `build`: loader → checked and spliced → runtime (embeds the loader), for
//!   x86_64 and i386 → CLI → `target/dist/{bin,lib,lib32,include}`.
//! - `test`: checks the prerequisites, builds, and runs the whole test suite
//!   against the freshly built distribution.
//! - `demo`: the README's quick example, end to end.
//! - `bench`: checkpoint/restart times against the machine's physical limits.
//! - `lint`: rustfmt and clippy (warnings are errors) on every crate and target.
//! - `setup`: install the system packages the above need (Debian) and the i686
//!   Rust target.

mod bench;
mod blob;
mod build;
mod demo;
mod lint;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  setup            install what building and testing need (Debian packages, i686 target)
  build            build target/dist (bin/ckpt, lib/ and lib32/ {libckpt.so, libckpt.a},
                   include/ckpt.h)
  test [ARGS...]   build, then run every test (ARGS go to `cargo test`)
  lint             rustfmt --check, and clippy -D warnings on the std crates and on the
                   runtime and loader for x86_64 and i386 (CI runs it)
  demo             build, then checkpoint and restart a counter program
  bench [--sizes MIB,...] [--only checkpoint|continue|overhead]
                   build, then measure checkpoint, restart, continue mode and overhead
                   (table on stdout, JSON in target/bench/bench.json; a few minutes)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("test" | "demo" | "bench")) {
        close_inherited_descriptors();
    }
    let r = match args.first().map(String::as_str) {
        Some("build") => build::dist().map(drop),
        Some("test") => test(&args[1..]),
        Some("demo") => demo::run(),
        Some("lint") => lint::run_lint(),
        Some("bench") => bench::run(&args[1..]),
        Some("setup") => setup::run_setup(),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Close every descriptor above 2 that this process inherited, except cargo's
/// jobserver (named in CARGO_MAKEFLAGS/MAKEFLAGS, which the nested cargo needs).
///
/// The programs the tests, the demo and the benchmark checkpoint inherit whatever
/// the shell that ran `cargo xtask` left open, and ckpt records every descriptor
/// of a program and says at checkpoint and at restart what it cannot bring back
/// (a pipe whose other end is outside, say). A terminal multiplexer or an editor
/// that leaks a descriptor would then change what the suite sees; the suite runs
/// with exactly 0, 1 and 2, as CI does.
fn close_inherited_descriptors() {
    let keep: Vec<i32> = ["CARGO_MAKEFLAGS", "MAKEFLAGS"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .flat_map(|flags| {
            flags
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("--jobserver-auth=").or_else(|| w.strip_prefix("--jobserver-fds=")))
                .flat_map(|fds| fds.split(',').filter_map(|n| n.parse().ok()).collect::<Vec<i32>>())
                .collect::<Vec<_>>()
        })
        .collect();
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // Still open? (The directory listing's own descriptor is closed by now.)
        if std::fs::read_link(format!("/proc/self/fd/{fd}")).is_err() {
            continue;
        }
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is open and was inherited, not opened by this process: no
        // object of ours owns it, so taking ownership and dropping it closes it
        // without invalidating anything.
        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    }
}

/// The Rust target of the i386 runtime and loader.
pub const I686: &str = "i686-unknown-linux-gnu";

/// Errors are sentences for the user.
pub type Result<T> = std::result::Result<T, String>;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `$CARGO`, or `cargo`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Run a command, echoing it; fail with its name if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let st = cmd.status().map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    if st.success() { Ok(()) } else { Err(format!("`{}` failed ({st})", show(cmd))) }
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Check that a C compiler can build what the tests need.
fn check_prerequisites() -> Result<()> {
    let dir = root().join("target").join("xtask-probe");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    for (cc, flags) in [("cc", &[][..]), ("c++", &["-x", "c++"][..])] {
        let ok =
            Command::new(cc).args(flags).arg(&src).arg("-o").arg(dir.join("probe")).status().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "`{cc}` cannot build a test program: install the toolchain with \
                 `sudo apt-get install build-essential` (see README)"
            ));
        }
    }
    if Command::new("python3").arg("-c").arg("pass").status().is_err() {
        return Err("python3 is needed by the interpreter test: apt-get install python3".into());
    }
    if !Command::new("musl-gcc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Err("musl-gcc is needed by the static musl tests: run `cargo xtask setup` \
                    (apt-get install musl-tools)"
            .into());
    }
    // The i386 half of the suite is not optional: say what is missing, loudly.
    if !setup::has_i686_target() {
        return Err(format!(
            "the Rust target {I686} is not installed (the 32-bit runtime and loader need it): \
             run `cargo xtask setup` (or `rustup target add {I686}`)"
        ));
    }
    for (cc, lang, pkg) in [("cc", "c", "gcc-multilib"), ("c++", "c++", "g++-multilib")] {
        if !setup::links_m32(cc, lang) {
            return Err(format!(
                "`{cc} -m32` cannot build a 32-bit test program: run `cargo xtask setup` \
                 (or `sudo apt-get install {pkg}`)"
            ));
        }
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    check_prerequisites()?;
    let dist = build::dist()?;
    run(cargo().current_dir(root()).arg("test").env("CKPT_DIST", &dist).args(extra))
}
