//! End-to-end tests of the ways to link the runtime (preload by `ckpt`, plain
//! LD_PRELOAD, -lckpt, static libckpt.a with glibc and musl), the C API of ckpt.h,
//! continue mode's background writer and periodic checkpoints.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Compile `tests/c/SRC` with `cc_cmd` and extra arguments (ckpt.h on the path).
fn build(dir: &Dir, cc_cmd: &str, src: &str, out: &str, extra: &[&str]) -> PathBuf {
    let exe = dir.join(out);
    let res = Command::new(cc_cmd)
        .args(["-O1", "-g", "-Wall", "-o"])
        .arg(&exe)
        .arg(root().join("tests/c").join(src))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg("-I")
        .arg(dist().join("include"))
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc_cmd}: {e} (cargo xtask setup installs it)"));
    assert!(res.status.success(), "{cc_cmd} {src} failed:\n{}", String::from_utf8_lossy(&res.stderr));
    exe
}

fn lib_dir() -> String {
    dist().join("lib").display().to_string()
}

fn archive() -> String {
    dist().join("lib/libckpt.a").display().to_string()
}

fn archive32() -> String {
    dist().join("lib32/libckpt.a").display().to_string()
}

fn lib32_dir() -> String {
    dist().join("lib32").display().to_string()
}

/// Run `cmd` in DIR with the CKPT_* environment given.
fn direct(dir: &Dir, prog: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(dir.join(prog));
    c.args(args).current_dir(dir.path()).envs(env.iter().copied());
    c
}

/// The API program: config round trip, hook order, return values; then each of
/// its two images restarts and reports its own view.
fn api_cycle(dir: &Dir, run: Command) {
    let first = run_to_end(run);
    first.assert_ok("the API program");
    assert!(first.has("WRITTEN hooks abc123"), "{first}");
    assert!(first.has("CKPT_CKPT returned hooks abc123"), "{first}");
    assert_eq!(first.ticks(), (1..=30).collect::<Vec<_>>(), "{first}");
    assert!(first.stderr.contains("ckpt: checkpoint failed: No such file or directory"), "{}", first.stderr);

    let sync = restart(&dir.join("api-sync.ckpt"), dir.path());
    sync.assert_ok("restart from ckpt_checkpoint");
    assert!(sync.has("RESTARTED-CALL hooks abczyx"), "{sync}");
    assert_eq!(sync.ticks(), (10..=30).collect::<Vec<_>>(), "{sync}");
    assert!(sync.has("DONE"), "{sync}");

    let old = restart(&dir.join("api-old.ckpt"), dir.path());
    old.assert_ok("restart from ckpt_ckpt");
    assert!(old.has("CKPT_CKPT returned hooks abczyx"), "{old}");
    assert_eq!(old.ticks(), (20..=30).collect::<Vec<_>>(), "{old}");
}

fn run_to_end(cmd: Command) -> Outcome {
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    p.finish()
}

/// -lckpt (libckpt.so by its SONAME), run directly: the runtime reads CKPT_* from
/// the program's own environment.
#[test]
fn api_hooks_config_and_return_values_with_lckpt() {
    let dir = Dir::new("api_dyn");
    build(&dir, "cc", "api.c", "api", &["-L", &lib_dir(), "-lckpt", &format!("-Wl,-rpath,{}", lib_dir())]);
    api_cycle(&dir, direct(&dir, "api", &[], &[]));
}

/// The same program linked statically with libckpt.a (glibc).
#[test]
fn api_with_static_glibc() {
    let dir = Dir::new("api_static");
    build(&dir, "cc", "api.c", "api", &["-static", &archive()]);
    api_cycle(&dir, direct(&dir, "api", &[], &[]));
}

/// A program linked with the runtime and started by `ckpt` has one runtime: the
/// hooks it registered run, once (they would not with a second, preloaded copy
/// handling the checkpoints).
#[test]
fn api_under_ckpt_has_one_runtime() {
    let m32 = || "-m32".to_string();
    for (name, flags) in [
        ("api_one_dyn", vec![archive()]),
        ("api_one_static", vec!["-static".into(), archive()]),
        ("api_one_dyn_32", vec![m32(), archive32()]),
        ("api_one_static_32", vec![m32(), "-static".into(), archive32()]),
    ] {
        let dir = Dir::new(name);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        build(&dir, "cc", "api.c", "api", &flags);
        api_cycle(&dir, ckpt(&dir, &["./api"]));
    }
}

/// Asynchronous checkpoints of statically linked programs: `cc -static` with glibc
/// and `musl-gcc -static`, libckpt.a given by path, the program calling nothing of
/// the runtime. The configuration comes from CKPT_* in the environment.
#[test]
fn static_glibc_and_musl_programs_checkpoint_on_the_signal() {
    for (name, cc_cmd) in [("static_glibc", "cc"), ("static_musl", "musl-gcc")] {
        let dir = Dir::new(name);
        build(&dir, cc_cmd, "counter.c", "counter", &["-static", &archive()]);
        let image = dir.join("counter.ckpt");
        let first = checkpoint(direct(&dir, "counter", &[], &[]), &image);
        let second = restart(&image, dir.path());
        second.assert_ok(&format!("restart ({name})"));
        assert_continues(&first, &second, 60);
        // `ckpt` runs a static program that has the runtime, with its options.
        let named = dir.join("named.ckpt");
        let first = checkpoint(ckpt(&dir, &["-n", "named.ckpt", "./counter"]), &named);
        let second = restart(&named, dir.path());
        second.assert_ok(&format!("restart under ckpt ({name})"));
        assert_continues(&first, &second, 60);
    }
}

/// The API program in 32 bits: -lckpt from lib32 (dynamic), and statically linked
/// with lib32/libckpt.a.
#[test]
fn api_hooks_config_and_return_values_32bit() {
    let dir = Dir::new("api_dyn_32");
    let rpath = format!("-Wl,-rpath,{}", lib32_dir());
    build(&dir, "cc", "api.c", "api", &["-m32", "-L", &lib32_dir(), "-lckpt", &rpath]);
    api_cycle(&dir, direct(&dir, "api", &[], &[]));
    let dir = Dir::new("api_static_32");
    build(&dir, "cc", "api.c", "api", &["-m32", "-static", &archive32()]);
    api_cycle(&dir, direct(&dir, "api", &[], &[]));
}

/// A static 32-bit program (`cc -m32 -static ... lib32/libckpt.a`) checkpoints on
/// the signal, directly and under `ckpt`; the image restarts.
#[test]
fn static_32bit_program_checkpoints_on_the_signal() {
    let dir = Dir::new("static_glibc_32");
    build(&dir, "cc", "counter.c", "counter", &["-m32", "-static", &archive32()]);
    let image = dir.join("counter.ckpt");
    let first = checkpoint(direct(&dir, "counter", &[], &[]), &image);
    assert_image_bits(&image, Bits::B32);
    let second = restart(&image, dir.path());
    second.assert_ok("restart (static, 32-bit)");
    assert_continues(&first, &second, 60);
    let named = dir.join("named.ckpt");
    let first = checkpoint(ckpt(&dir, &["-n", "named.ckpt", "./counter"]), &named);
    let second = restart(&named, dir.path());
    second.assert_ok("restart under ckpt (static, 32-bit)");
    assert_continues(&first, &second, 60);
}

/// Plain `LD_PRELOAD=/abs/libckpt.so prog` with CKPT_NAME in the environment.
#[test]
fn ld_preload_without_the_ckpt_command() {
    ld_preload(Bits::B64);
}

/// The same with lib32/libckpt.so and a 32-bit program.
#[test]
fn ld_preload_without_the_ckpt_command_32bit() {
    ld_preload(Bits::B32);
}

fn ld_preload(bits: Bits) {
    let dir = Dir::new(&format!("ld_preload{}", bits.tag()));
    dir.compile_bits("counter.c", "counter", &[], bits);
    let image = dir.join("by-env.ckpt");
    let so = bits.lib().join("libckpt.so").display().to_string();
    let cmd = direct(&dir, "counter", &[], &[("LD_PRELOAD", &so), ("CKPT_NAME", "by-env.ckpt")]);
    let first = checkpoint(cmd, &image);
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}

/// The runtime takes itself out of LD_PRELOAD for the program's children, unless
/// asked to stay (--inherit); other preloaded libraries stay either way.
#[test]
fn children_do_not_inherit_the_preload_unless_asked() {
    let dir = Dir::new("inherit");
    // printenv is a child of sh (`; true` keeps sh from exec'ing it in place):
    // its environment is what a child of the program gets.
    let script = "printenv LD_PRELOAD | sed 's/^/CHILD[/; s/$/]/'; true";
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["/bin/sh", "-c", script]);
        let mut c = ckpt(&dir, &args);
        c.env("LD_PRELOAD", "/lib/x86_64-linux-gnu/libm.so.6");
        let o = run(c);
        o.assert_ok("sh");
        o.line("CHILD[").unwrap_or_else(|| panic!("{o}")).to_string()
    };
    // sh itself has the runtime (active, and left in its LD_PRELOAD so that an
    // exec in its process keeps it); a child's environment no longer names it.
    let plain = run(&[]);
    assert!(!plain.contains("libckpt.so"), "{plain}");
    assert!(plain.contains("/lib/x86_64-linux-gnu/libm.so.6"), "{plain}");
    let kept = run(&["--inherit"]);
    assert!(kept.contains("libckpt.so"), "{kept}");
}

/// The inode of `p`: a new one each time an image is renamed into place.
fn inode(p: &Path) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).ok()?).into()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Children of `pid` (zombies included).
fn children(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// 200 checkpoints in a row in continue mode, at random moments: the program never
/// notices (no SIGCHLD, no child to reap, no EINTR, memory intact), no descriptor
/// or memory leaks, and every image restarts and continues.
#[test]
fn two_hundred_continue_mode_checkpoints() {
    continue_mode_checkpoints(200, Bits::B64);
}

/// The same in a 32-bit program (the background writer's clone, futex and the
/// interrupted sleeps finished through the vDSO's int 0x80 landing pad), 60 times.
#[test]
fn sixty_continue_mode_checkpoints_32bit() {
    continue_mode_checkpoints(60, Bits::B32);
}

fn continue_mode_checkpoints(count: u32, bits: Bits) {
    let dir = Dir::new(&format!("cont{count}{}", bits.tag()));
    dir.compile_bits("cont_loop.c", "cont_loop", &[], bits);
    let image = dir.join("cont_loop.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./cont_loop", "100000"]));
    p.wait_for("READY");
    p.wait_for("TICK 5");
    let pid = p.pid();
    let (fds0, rss0) = (fd_count(pid), rss_kib(pid));
    let this = dir.join("this.ckpt");
    for n in 1..=count {
        std::thread::sleep(random_delay(1, 15));
        let before = inode(&image);
        p.signal("TSTP");
        // Wait for the new image to be renamed into place.
        let t = Instant::now();
        while inode(&image) == before {
            assert!(t.elapsed() < Duration::from_secs(30), "checkpoint {n} never appeared");
            std::thread::sleep(Duration::from_millis(2));
        }
        // The writer's short-lived parent (step 1 in runtime/src/writer.rs) is
        // reaped by the checkpoint itself before the program runs again, but on a
        // loaded machine the writer can rename the image first: a zombie for a
        // moment is expected, a child that stays is not.
        let t = Instant::now();
        while !children(pid).is_empty() && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(children(pid).is_empty(), "after checkpoint {n} the program has children {:?}", children(pid));
        // Every image restarts and continues from where it was taken (kept under
        // its own name while it runs, then dropped: disk use stays constant).
        std::fs::hard_link(&image, &this).unwrap();
        let mut r = Proc::spawn(restart_cmd(&this, dir.path()));
        r.wait_for("RESTARTED");
        r.wait_for("TICK");
        r.signal("KILL");
        let o = r.finish();
        assert!(!o.has("FAIL"), "image {n}: {o}");
        let t = o.ticks();
        assert!(t.windows(2).all(|w| w[1] == w[0] + 1), "image {n}: ticks {t:?}");
        std::fs::remove_file(&this).unwrap();
    }
    let (fds1, rss1) = (fd_count(pid), rss_kib(pid));
    p.signal("KILL");
    let o = p.finish();
    assert!(!o.has("FAIL"), "{o}");
    // Nothing on stderr but the line each checkpoint's writer prints once its
    // image is durable, one per checkpoint.
    let written = o.stderr.lines().filter(|l| l.starts_with("ckpt: cont_loop.ckpt written (")).count();
    assert!(
        written == count as usize && o.stderr.lines().count() == written,
        "stderr: want {count} 'written' lines and nothing else:\n{}",
        o.stderr
    );
    assert_eq!(fds0, fds1, "descriptors leaked over {count} checkpoints");
    assert!(rss1 < rss0 + 4096, "RSS grew from {rss0} KiB to {rss1} KiB over {count} checkpoints");
    eprintln!("{count} checkpoints ({bits:?}), every image restarted: fds {fds0} -> {fds1}, RSS {rss0} -> {rss1} KiB");
}

/// `ckpt -i 1`: an image appears every second and is replaced in place while the
/// program's own 20 ms ITIMER_REAL keeps firing; an early image restarts, its
/// itimer still fires, and it goes on taking periodic checkpoints.
#[test]
fn periodic_checkpoints_leave_the_programs_timers_alone() {
    periodic_checkpoints(Bits::B64);
}

/// The same in a 32-bit program (POSIX timer, 32-bit itimerspec and siginfo).
#[test]
fn periodic_checkpoints_leave_the_programs_timers_alone_32bit() {
    periodic_checkpoints(Bits::B32);
}

fn periodic_checkpoints(bits: Bits) {
    let dir = Dir::new(&format!("periodic{}", bits.tag()));
    dir.compile_bits("periodic.c", "periodic", &[], bits);
    let image = dir.join("periodic.ckpt");
    let early = dir.join("early.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-i", "1", "./periodic", "70"]));
    p.wait_for("READY");
    let mut seen = Vec::new();
    let t = Instant::now();
    while seen.len() < 3 && t.elapsed() < Duration::from_secs(20) {
        if let Some(i) = inode(&image)
            && seen.last() != Some(&i)
        {
            if seen.is_empty() {
                std::fs::hard_link(&image, &early).unwrap();
            }
            seen.push(i);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.len() >= 3, "fewer than 3 periodic images in 20 s: {seen:?}");
    let first = p.finish();
    first.assert_ok("the periodically checkpointed run");
    assert_eq!(first.ticks(), (1..=70).collect::<Vec<_>>(), "{first}");
    assert_image(&image);
    // The early image has a couple of seconds left to run: long enough for the
    // restarted process to take periodic checkpoints of its own. (Compared by
    // content: after two renames the file may have the inode number the last
    // image had, freed by the first rename and given out again.)
    let last = std::fs::read(&image).unwrap();
    let second = restart(&early, dir.path());
    second.assert_ok("restart of an early periodic image");
    assert!(second.has("DONE"), "{second}");
    let from = second.ticks()[0];
    assert_eq!(second.ticks(), (from..=70).collect::<Vec<_>>(), "{second}");
    assert!(from < 50, "the early image was taken late (step {from})");
    assert!(
        std::fs::read(&image).unwrap() != last,
        "the restarted process (from step {from}) took no periodic checkpoint\n{second}"
    );
}

/// ckpt.h compiles without a warning as strict C99 and as C++, and declares what
/// the runtime defines (a program using every function links against both
/// libraries).
#[test]
fn header_is_clean_c99_and_cxx() {
    let dir = Dir::new("header");
    let src = dir.join("use.c");
    std::fs::write(
        &src,
        "#include <ckpt.h>\n#include <stddef.h>\nstatic void h(void *a) { (void)a; }\n\
         int main(void) {\n  struct ckptconfig c, o;\n  c.flags = CKPT_SET_NAME | CKPT_SET_ASYNCSIG | \
         CKPT_SET_CONTINUE | CKPT_SET_INTERVAL;\n  c.name[0] = 0; c.asyncsig = 0; c.continues = 0; \
         c.interval = 0;\n  ckpt_on_preckpt(h, NULL); ckpt_on_postckpt(h, NULL); ckpt_on_restart(h, NULL);\n  \
         if (ckpt_config(NULL, &o) != 0) return 1;\n  (void)c;\n  if (o.asyncsig == 12345) { ckpt_ckpt(NULL); \
         return ckpt_checkpoint(NULL) == CKPT_WRITTEN || CKPT_RESTARTED == 1; }\n  return 0;\n}\n",
    )
    .unwrap();
    let inc = dist().join("include").display().to_string();
    let (lib, a) = (lib_dir(), archive());
    for (cc_cmd, lang) in [("cc", &["-std=c99", "-x", "c"][..]), ("c++", &["-std=c++11", "-x", "c++"][..])] {
        for link in [vec!["-L", lib.as_str(), "-lckpt"], vec![a.as_str()]] {
            let out = Command::new(cc_cmd)
                .args(lang)
                .args(["-Wall", "-Wextra", "-pedantic", "-Werror", "-I", &inc])
                .arg(&src)
                .args(["-x", "none"])
                .args(&link)
                .arg("-o")
                .arg(dir.join("use"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{cc_cmd} {lang:?} {link:?}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
