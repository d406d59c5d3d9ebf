//! `cargo xtask setup`: install what building and testing need on a fresh Debian
//! machine of the project's kind, and nothing that is already there. Idempotent;
//! safe to run every time (CI does).

use std::process::Command;

use crate::{Result, run};

/// (command that must work, Debian package that provides it)
const NEEDS: &[(&str, &[&str], &str)] = &[
    ("cc", &["--version"], "gcc"),
    ("c++", &["--version"], "g++"),
    ("make", &["--version"], "make"),
    ("python3", &["--version"], "python3"),
    // `ld -r` and `objcopy` make the shipped libckpt.a (xtask build).
    ("objcopy", &["--version"], "binutils"),
    // Static musl programs linked with libckpt.a are part of the test suite.
    ("musl-gcc", &["--version"], "musl-tools"),
];

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

pub fn run_setup() -> Result<()> {
    let missing: Vec<&str> = NEEDS.iter().filter(|(c, a, _)| !works(c, a)).map(|n| n.2).collect();
    if missing.is_empty() {
        eprintln!("xtask setup: cc, c++, make, python3, binutils and musl-gcc are present");
        return Ok(());
    }
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
    run(install.args(&missing))
}

fn id_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
