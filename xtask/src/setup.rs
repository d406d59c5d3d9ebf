//! `cargo xtask setup`: install what building and testing need on a fresh Debian
//! machine of the project's kind, and nothing that is already there. Idempotent;
//! safe to run every time (CI does).
//!
//! Besides the native toolchain, the i386 port needs the i686 Rust target (the
//! 32-bit runtime and loader) and gcc-multilib/g++-multilib (32-bit crt files and
//! libraries for the assembly, the link, and the tests' `cc -m32` programs).

use std::path::Path;
use std::process::Command;

use crate::{I686, Result, run};

/// (command that must work, its arguments, Debian package that provides it)
const NEEDS: &[(&str, &[&str], &str)] = &[
    ("cc", &["--version"], "gcc"),
    ("c++", &["--version"], "g++"),
    ("make", &["--version"], "make"),
    ("python3", &["--version"], "python3"),
    // `ld -r` and `objcopy` make the shipped libckpt.a (xtask build).
    ("objcopy", &["--version"], "binutils"),
    // Static musl programs linked with libckpt.a are part of the test suite.
    ("musl-gcc", &["--version"], "musl-tools"),
    // Multi-threaded real programs of tests/threads.rs: a JVM (the test compiles
    // its Java program) and node with worker_threads. OpenMP's libgomp comes with gcc.
    ("javac", &["-version"], "openjdk-17-jdk-headless"),
    ("node", &["--version"], "nodejs"),
    // The durability test reads the checkpoint's system calls with strace.
    ("strace", &["-V"], "strace"),
    // The file-capabilities test gives a program capabilities with setcap.
    ("setcap", &["-h"], "libcap2-bin"),
    // The privileges test runs an image as another user with setpriv.
    ("setpriv", &["--version"], "util-linux"),
    // tests/slurm.rs starts a single-node Slurm cluster (slurmctld, slurmd and the
    // client commands) with its own munged.
    ("/usr/sbin/slurmctld", &["-V"], "slurm-wlm"),
    ("/usr/sbin/munged", &["--version"], "munge"),
    // Real tools the open-files tests checkpoint (tests/files.rs).
    ("sqlite3", &["--version"], "sqlite3"),
    ("gzip", &["--version"], "gzip"),
    ("script", &["--version"], "bsdutils"),
    // less restarted in a terminal that tmux makes and reads back.
    ("less", &["--version"], "less"),
    ("tmux", &["-V"], "tmux"),
    // The LZ4 codec's unit test checks our blocks against the reference tool.
    ("lz4", &["-V"], "lz4"),
    // A static program with no dynamic loader that tests/hijack.rs puts the
    // runtime into (ckpt hijack).
    ("/bin/busybox", &["true"], "busybox-static"),
    // A static, multi-threaded Go program is hijacked too.
    ("go", &["version"], "golang-go"),
];

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

/// Can `compiler -m32` link a program (`-x c` or `-x c++`)? Needs the multilib
/// packages, whose absence `--version` cannot show.
pub fn links_m32(compiler: &str, lang: &str) -> bool {
    let dir = crate::root().join("target").join("xtask-probe");
    if std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    let src = dir.join(format!("probe32.{}", if lang == "c++" { "cc" } else { "c" }));
    let body = if lang == "c++" {
        "#include <string>\nint main() { return std::string(\"x\").size() - 1; }\n"
    } else {
        "#include <stdio.h>\nint main(void) { return puts(\"\") < 0; }\n"
    };
    if std::fs::write(&src, body).is_err() {
        return false;
    }
    Command::new(compiler)
        .args(["-m32", "-o"])
        .arg(dir.join("probe32"))
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Is the i686 target's standard library installed for the active toolchain?
pub fn has_i686_target() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else { return false };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(I686).join("lib").is_dir()
}

pub fn run_setup() -> Result<()> {
    let mut missing: Vec<&str> = NEEDS.iter().filter(|(c, a, _)| !works(c, a)).map(|n| n.2).collect();
    if !links_m32("cc", "c") {
        missing.push("gcc-multilib");
    }
    if !links_m32("c++", "c++") {
        missing.push("g++-multilib");
    }
    if missing.is_empty() {
        eprintln!(
            "xtask setup: cc, c++ (both with -m32), make, python3, binutils, musl-gcc, strace, setcap, \
             setpriv, slurm-wlm, munge, javac, node, sqlite3, gzip, script, less, tmux, lz4, busybox-static and go \
             are present"
        );
    } else {
        let sudo: &[&str] = if works("id", &["-u"]) && id_is_root() { &[] } else { &["sudo"] };
        let apt = |args: &[&str]| {
            let mut c = Command::new(sudo.first().copied().unwrap_or("apt-get"));
            if !sudo.is_empty() {
                c.arg("apt-get");
            }
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        run(&mut apt(&["update", "-q"]))?;
        let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
        run(install.args(&missing))?;
    }
    if has_i686_target() {
        eprintln!("xtask setup: the Rust target {I686} is installed");
        Ok(())
    } else {
        run(Command::new("rustup").args(["target", "add", I686]))
    }
}

fn id_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
