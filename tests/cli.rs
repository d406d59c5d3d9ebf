//! Integration tests of the `ckpt` command line.
//!
//! They do not need the real runtime: `CKPT_RUNTIME_LIB` points at an empty
//! shared library built for the test, which the dynamic loader preloads
//! harmlessly. Programs are run to completion, so no checkpoint is taken.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::cli::*;
use common::{require_root, require_tool};

#[test]
fn help_describes_options_and_environment() {
    let out = success(run(ckpt().arg("--help")));
    for needle in [
        "CKPT_NAME",
        "CKPT_CONTINUE",
        "CKPT_ASYNCSIG",
        "CKPT_INTERVAL",
        "CKPT_RUNTIME_LIB",
        "CKPT_RUNTIME_LIB32",
        "CKPT_DEBUG",
        "LD_PRELOAD",
        "-n, --name",
        "-c, --continue",
        "-a, --signal",
        "-i, --interval",
        "ckpt ./counter",
        "kill -TSTP",
        "./counter.ckpt",
        "cannot come back",
        "CKPT_EXIT_STATUS",
        "CKPT_DIR",
        "-x, --exit-status",
        "-q, --quiet",
        "--deadline",
        "85",
        "ckpt run",
        "--lazy",
        "--shell-stdio",
        "--refuse-changed",
        "--no-page-check",
        "CKPT_PAGE_CHECK",
        "every thread",
        "open files",
    ] {
        assert!(out.contains(needle), "{needle:?} not in --help:\n{out}");
    }
    // What was once true and is no more.
    assert!(!out.contains("is refused at checkpoint time"), "{out}");
    // The short help is shorter but still lists the options.
    let short = success(run(ckpt().arg("-h")));
    assert!(short.len() < out.len());
    assert!(short.contains("--signal"));
}

#[test]
fn version() {
    let out = success(run(ckpt().arg("--version")));
    assert_eq!(out.trim_end(), format!("ckpt {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn options_become_environment_variables() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib).args(["-n", "foo", "-c", "-a", "USR1", "-i", "30", "-z", "/usr/bin/env"])));
    let lib = lib.canonicalize().expect("canonical lib path");
    assert_eq!(env_value(&out, "CKPT_NAME"), Some("foo"));
    assert_eq!(env_value(&out, "CKPT_CONTINUE"), Some("1"));
    assert_eq!(env_value(&out, "CKPT_ASYNCSIG"), Some("10"));
    assert_eq!(env_value(&out, "CKPT_INTERVAL"), Some("30"));
    assert_eq!(env_value(&out, "CKPT_COMPRESS"), Some("1"));
    assert_eq!(env_value(&out, "LD_PRELOAD"), lib.to_str());
}

#[test]
fn batch_options_become_environment_variables() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out =
        success(run(ckpt_with(&lib).args(["-x", "99", "-q", "--deadline", "30", "-a", "TERM,usr1", "/usr/bin/env"])));
    assert_eq!(env_value(&out, "CKPT_EXIT_STATUS"), Some("99"));
    assert_eq!(env_value(&out, "CKPT_QUIET"), Some("1"));
    assert_eq!(env_value(&out, "CKPT_DEADLINE"), Some("30"));
    assert_eq!(env_value(&out, "CKPT_ASYNCSIG"), Some("15,10"));
    // The pid the program runs in, which is ckpt's own (it execs in place).
    let pid = env_value(&out, "CKPT_PID").expect("CKPT_PID set");
    assert_eq!(pid.len(), 9, "{pid}");
    failure(run(ckpt_with(&lib).args(["-a", "TERM,KILL", "env"])), 2, "SIGKILL cannot be caught");
    failure(run(ckpt_with(&lib).args(["-x", "256", "env"])), 2, "256");
}

#[test]
fn long_options() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib).args([
        "--name=bar.ckpt",
        "--continue",
        "--signal",
        "sigrtmin",
        "--interval=5",
        "env",
    ])));
    assert_eq!(env_value(&out, "CKPT_NAME"), Some("bar.ckpt"));
    assert_eq!(env_value(&out, "CKPT_CONTINUE"), Some("1"));
    assert_eq!(env_value(&out, "CKPT_ASYNCSIG"), Some("34"));
    assert_eq!(env_value(&out, "CKPT_INTERVAL"), Some("5"));
}

#[test]
fn no_options_set_no_variables() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib).arg("env")));
    for var in ["CKPT_NAME", "CKPT_CONTINUE", "CKPT_ASYNCSIG", "CKPT_INTERVAL"] {
        assert_eq!(env_value(&out, var), None, "{var} set:\n{out}");
    }
}

#[test]
fn existing_ld_preload_is_kept_after_ours() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib().canonicalize().expect("canonical lib path");
    // A second real library, so that the loader has nothing to complain about.
    let other = tmp.dummy_lib_named("libother.so");
    let existing = format!("{}", other.display());
    let out = success(run(ckpt_with(&lib).env("LD_PRELOAD", &existing).arg("env")));
    assert_eq!(env_value(&out, "LD_PRELOAD"), Some(format!("{}:{existing}", lib.display()).as_str()));

    // A path that does not exist is kept too (the loader warns and goes on).
    let out = success(run(ckpt_with(&lib).env("LD_PRELOAD", "/x/y.so").arg("env")));
    let preload = env_value(&out, "LD_PRELOAD").expect("LD_PRELOAD set");
    assert_eq!(preload.split(':').collect::<Vec<_>>(), [lib.to_str().expect("UTF-8"), "/x/y.so"]);
}

#[test]
fn inherited_variables_are_kept_unless_overridden() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib)
        .env("CKPT_NAME", "inherited")
        .env("CKPT_ASYNCSIG", "12")
        .args(["-a", "USR1", "env"])));
    assert_eq!(env_value(&out, "CKPT_NAME"), Some("inherited"));
    assert_eq!(env_value(&out, "CKPT_ASYNCSIG"), Some("10"));
}

#[test]
fn signal_names_and_numbers() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    for (arg, number) in [
        ("10", "10"),
        ("usr1", "10"),
        ("SIGUSR1", "10"),
        ("TSTP", "20"),
        ("RTMIN+2", "36"),
        ("RTMAX-1", "63"),
        ("64", "64"),
        ("0", "0"),
    ] {
        let out = success(run(ckpt_with(&lib).args(["-a", arg, "env"])));
        assert_eq!(env_value(&out, "CKPT_ASYNCSIG"), Some(number), "-a {arg}");
    }
}

#[test]
fn bad_signals_are_usage_errors() {
    // No runtime library: the command line is checked before anything else.
    for arg in ["FOO", "65", "-3", "RTMIN+31", "", "SIGSIGUSR1"] {
        let err = failure(run(ckpt().args(["-a", arg, "true"])), 2, "invalid signal");
        assert!(err.contains(&format!("'{arg}'")), "{err}");
        assert!(err.contains("1-64"), "{err}");
    }
    for (arg, name) in [("KILL", "SIGKILL"), ("sigkill", "SIGKILL"), ("9", "SIGKILL"), ("STOP", "SIGSTOP")] {
        let err = failure(run(ckpt().args(["-a", arg, "true"])), 2, "cannot be caught");
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn bad_intervals_and_names_are_usage_errors() {
    for arg in ["0", "-1", "x", "1.5"] {
        failure(run(ckpt().args(["-i", arg, "true"])), 2, "invalid interval");
    }
    failure(run(ckpt().args(["-n", "", "true"])), 2, "must not be empty");
}

#[test]
fn usage_errors() {
    failure(run(&mut ckpt()), 2, "PROG");
    failure(run(ckpt().args(["--bogus", "true"])), 2, "--bogus");
    failure(run(ckpt().args(["-a"])), 2, "--signal");
}

#[test]
fn program_is_found_in_path() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib).env("PATH", "/nonexistent:/usr/bin:/bin").args(["env"])));
    assert!(env_value(&out, "LD_PRELOAD").is_some(), "{out}");
}

#[test]
fn non_executable_files_in_path_are_skipped() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let dir = tmp.join("bin");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("env"), "not a program\n").expect("write");
    let path = format!("{}:/usr/bin:/bin", dir.display());
    let out = success(run(ckpt_with(&lib).env("PATH", &path).arg("env")));
    assert!(env_value(&out, "LD_PRELOAD").is_some(), "{out}");

    // Found only as a non-executable file: say so rather than "not found".
    let path = dir.display().to_string();
    failure(run(ckpt_with(&lib).env("PATH", &path).arg("env")), 126, "Permission denied");
}

#[test]
fn program_not_found() {
    let err = failure(run(ckpt().args(["ckpt-no-such-command", "x"])), 127, "ckpt-no-such-command: command not found");
    assert_eq!(err.lines().count(), 1, "{err}");
    failure(run(ckpt().arg("./ckpt-no-such-file")), 127, "./ckpt-no-such-file: No such file or directory");
}

#[test]
fn program_not_executable() {
    let tmp = TempDir::new();
    let file = tmp.file("plain", b"#!/bin/sh\necho hi\n", 0o644);
    let err = failure(run(ckpt().arg(&file)), 126, "Permission denied");
    assert!(err.contains("not an executable file"), "{err}");
    failure(run(ckpt().arg(&tmp.0)), 126, "Is a directory");
}

#[test]
fn setuid_and_setgid_programs_are_refused() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let prog = tmp.join("true");
    fs::copy("/usr/bin/true", &prog).expect("copy /usr/bin/true");
    for (mode, what) in [(0o4755, "setuid"), (0o2755, "setgid")] {
        fs::set_permissions(&prog, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = failure(run(ckpt_with(&lib).arg(&prog)), 126, what);
        assert!(err.contains("LD_PRELOAD"), "{err}");
    }
    // Set-group-ID without group execute is not secure execution.
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o2745)).expect("chmod");
    success(run(ckpt_with(&lib).arg(&prog)));
}

/// A program with file capabilities runs in secure-execution mode like a setuid
/// one: refused. Needs setcap (libcap2-bin) and the right to use it (root):
/// fails, not skipped, without them.
#[test]
fn programs_with_file_capabilities_are_refused() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let prog = tmp.join("true");
    fs::copy("/usr/bin/true", &prog).expect("copy /usr/bin/true");
    require_tool("setcap", &["-h"], "libcap2-bin");
    require_root("give a file capabilities");
    let set = run(Command::new("setcap").arg("cap_net_raw+ep").arg(&prog));
    assert!(set.status.success(), "setcap: {}", stderr(&set));
    let err = failure(run(ckpt_with(&lib).arg(&prog)), 126, "file capabilities");
    assert!(err.contains("LD_PRELOAD"), "{err}");
}

#[test]
fn static_programs_are_refused() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let src = tmp.file("main.c", b"int main(void) { return 0; }\n", 0o644);
    let prog = tmp.join("static");
    compile(&["-static", "-o"], &prog, &src);
    let err = failure(run(ckpt_with(&lib).arg(&prog)), 126, "libckpt.a");
    assert!(err.contains("statically linked"), "{err}");

    // The same program linked dynamically runs.
    compile(&["-o"], &prog, &src);
    success(run(ckpt_with(&lib).arg(&prog)));
}

#[test]
fn static_pie_programs_are_refused() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let src = tmp.file("main.c", b"int main(void) { return 0; }\n", 0o644);
    let prog = tmp.join("static-pie");
    compile(&["-static-pie", "-o"], &prog, &src);
    failure(run(ckpt_with(&lib).arg(&prog)), 126, "libckpt.a");
}

/// A 32-bit program gets the 32-bit runtime (`CKPT_RUNTIME_LIB32` here, `lib32/`
/// of the distribution otherwise), never the 64-bit one.
#[test]
fn thirty_two_bit_programs_get_the_32_bit_runtime() {
    let tmp = TempDir::new();
    let lib64 = tmp.dummy_lib();
    let src = tmp.file("lib32.c", b"int ckpt_test_dummy;\n", 0o644);
    let lib32 = tmp.join("libdummy32.so");
    compile(&["-m32", "-shared", "-fPIC", "-o"], &lib32, &src);
    let src = tmp.file(
        "main.c",
        b"#include <stdio.h>\n#include <stdlib.h>\nint main(void) { puts(getenv(\"LD_PRELOAD\")); return 0; }\n",
        0o644,
    );
    let prog = tmp.join("prog32");
    compile(&["-m32", "-o"], &prog, &src);
    let out = success(run(ckpt_with(&lib64).env("CKPT_RUNTIME_LIB32", &lib32).arg(&prog)));
    assert!(out.contains("libdummy32.so"), "{out}");
    assert!(!out.contains("libdummy.so"), "{out}");
    assert!(
        !stderr(&run(ckpt_with(&lib64).env("CKPT_RUNTIME_LIB32", &lib32).arg(&prog))).contains("wrong ELF class"),
        "the 64-bit runtime was offered to a 32-bit program"
    );
}

/// A static 32-bit program is refused with the 32-bit archive in the hint.
#[test]
fn static_thirty_two_bit_programs_are_refused() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let src = tmp.file("main.c", b"int main(void) { return 0; }\n", 0o644);
    let prog = tmp.join("static32");
    compile(&["-m32", "-static", "-o"], &prog, &src);
    let err = failure(run(ckpt_with(&lib).arg(&prog)), 126, "statically linked 32-bit program");
    assert!(err.contains("lib32/libckpt.a") && err.contains("-m32"), "{err}");
}

#[test]
fn options_stop_at_the_program() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    // `-n` is echo's: no newline, and no CKPT_NAME.
    let out = success(run(ckpt_with(&lib).args(["-c", "/usr/bin/echo", "-n", "hi"])));
    assert_eq!(out, "hi");
    let out = success(run(ckpt_with(&lib).args(["/usr/bin/echo", "-c", "--help", "-a", "KILL"])));
    assert_eq!(out, "-c --help -a KILL\n");
    // env rejects `-n` itself: it reached env, ckpt did not take it.
    let out = run(ckpt_with(&lib).args(["/usr/bin/env", "-n", "foo"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("env: invalid option"), "{}", stderr(&out));
}

#[test]
fn double_dash_ends_options() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let out = success(run(ckpt_with(&lib).args(["--", "/usr/bin/echo", "-x"])));
    assert_eq!(out, "-x\n");
}

#[test]
fn exec_keeps_the_pid_and_argv0() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let child = ckpt_with(&lib).args(["sh", "-c", "echo $$ $0"]).stdout(Stdio::piped()).spawn().expect("spawn ckpt");
    let pid = child.id();
    let out = success(child.wait_with_output().expect("wait for ckpt"));
    // `sh -c` sets $0 to the first argument after the command string, so
    // check argv[0] separately below.
    assert_eq!(out.split_whitespace().next(), Some(pid.to_string().as_str()));

    let script = tmp.file("argv0", b"#!/bin/sh\necho \"$0\"\n", 0o755);
    let out = success(run(ckpt_with(&lib).arg(&script)));
    assert_eq!(out.trim_end(), script.display().to_string());
}

#[test]
fn scripts_run_with_the_preload() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib().canonicalize().expect("canonical lib path");
    let script = tmp.file("script", b"#!/bin/sh\necho \"$LD_PRELOAD\" \"$@\"\n", 0o755);
    let out = success(run(ckpt_with(&lib).arg(&script).arg("-c")));
    assert_eq!(out, format!("{} -c\n", lib.display()));
}

#[test]
fn exec_failure_is_reported() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    let script = tmp.file("bad-interp", b"#!/nonexistent/interpreter\n", 0o755);
    failure(
        run(ckpt_with(&lib).arg(&script)),
        126,
        &format!("cannot execute {}: No such file or directory", script.display()),
    );
}

#[test]
fn missing_runtime_library_is_named() {
    // The default library, ../lib/libckpt.so next to the test build of ckpt,
    // does not exist in the cargo target directory.
    let exe = Path::new(CKPT).canonicalize().expect("canonical ckpt path");
    let expected = exe.parent().and_then(Path::parent).expect("ckpt is two levels down").join("lib/libckpt.so");
    assert!(!expected.exists(), "{} exists; this test needs it absent", expected.display());
    failure(run(ckpt().arg("/usr/bin/true")), 1, &format!("runtime library {}", expected.display()));

    let missing = Path::new("/nonexistent/libckpt.so");
    let err = failure(
        run(ckpt_with(missing).arg("/usr/bin/true")),
        1,
        "runtime library /nonexistent/libckpt.so (from CKPT_RUNTIME_LIB)",
    );
    assert!(err.contains("No such file or directory"), "{err}");
}

/// `verify` and `info` are commands only as the first argument; a program of
/// that name still runs with `--`, a path, or an option before it.
#[test]
fn verify_and_info_are_commands_only_in_first_place() {
    let tmp = TempDir::new();
    let lib = tmp.dummy_lib();
    for name in ["verify", "info"] {
        tmp.file(name, format!("#!/bin/sh\necho I am {name} \"$@\"\n").as_bytes(), 0o755);
    }
    let path = format!("{}:/usr/bin:/bin", tmp.0.display());
    let runs = |args: &[&str]| {
        let mut cmd = ckpt_with(&lib);
        cmd.args(args).env("PATH", &path).current_dir(&tmp.0);
        success(run(&mut cmd))
    };
    assert_eq!(runs(&["--", "verify", "x"]), "I am verify x\n");
    assert_eq!(runs(&["./info", "--json", "x"]), "I am info --json x\n");
    assert_eq!(runs(&["-c", "verify", "x"]), "I am verify x\n");
    assert_eq!(runs(&["-n", "a.ckpt", "--", "info"]), "I am info\n");

    // As commands they want exactly one FILE.
    failure(run(ckpt().arg("verify")), 2, "FILE");
    failure(run(ckpt().args(["info", "a", "b"])), 2, "unexpected argument");
    // And refuse what is not a checkpoint with status 1.
    let empty = tmp.file("empty", b"", 0o644);
    failure(run(ckpt().arg("verify").arg(&empty)), 1, "empty file, not a checkpoint image");
    failure(run(ckpt().arg("info").arg("/etc/passwd")), 1, "not a checkpoint image");
    // An ordinary program is an ELF file too, shorter than its page-rounded
    // segments plus a header: still not a checkpoint, not a truncated one.
    for prog in ["/bin/ls", "/bin/sh", "/usr/bin/env"] {
        failure(run(ckpt().arg("verify").arg(prog)), 1, "not a checkpoint image");
    }
    failure(run(ckpt().arg("verify").arg(tmp.join("none"))), 1, "No such file or directory");
    let elf = std::env::current_exe().expect("current_exe");
    failure(run(ckpt().arg("verify").arg(&elf)), 1, "not a checkpoint image");

    let help = success(run(ckpt().arg("--help")));
    for needle in ["ckpt verify FILE", "ckpt info [--json] FILE", "ckpt -- verify"] {
        assert!(help.contains(needle), "{needle:?} not in --help:\n{help}");
    }
}
