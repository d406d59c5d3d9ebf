//! `cargo xtask bench`: how fast checkpoint and restart are, next to the physical
//! limits of this machine, as a table on stdout and `target/bench/bench.json`.
//!
//! The target program is `tests/c/bench.c` (its header documents the line
//! protocol). For each memory size and content (pseudo-random, or half the pages
//! zero) a fresh program is started under `ckpt`, and on the same run:
//!
//! - **checkpoint**: SIGTSTP sent → the process is gone (it exits only after the
//!   image is written, fsynced, renamed and the directory fsynced);
//! - **write reference**: the same number of bytes written to a file in the same
//!   directory with plain write(2) calls of 8 MiB, then fsync, rename and directory
//!   fsync (the durability work the checkpoint does). Measured twice per run, just
//!   before the signal (the program alive and asleep, with the byte count of the
//!   previous run's image) and just after the exit, because on this VM the cost of
//!   fresh page-cache pages depends on what memory was freed just before (docs/kernel.md
//!   §10): the reference is the median of all those samples. The checkpoint
//!   starts the disk while it still copies (sync_file_range), which plain
//!   write+fsync does not; so a second reference does the same with plain write(2)
//!   calls (`sync_file_range(SYNC_FILE_RANGE_WRITE)` every 32 MiB, then fsync):
//!   the best this disk does, the limit the checkpoint is really up against;
//! - **read reference**: the image file read from the page cache into fresh
//!   anonymous memory (what a new process must fill) with reads of 64 MiB;
//! - **restart**: `./bench.ckpt` spawned → the restored program's first loop
//!   iteration (`FIRST`), and → its heartbeat after it summed its whole memory again
//!   and found the checksum it had before (`HEARTBEAT`). Both times come from
//!   CLOCK_MONOTONIC, which is system-wide, read by the harness and the program.
//!   The same image is also restarted with `--no-page-check` (before or after,
//!   alternating): what the page-data checks cost, on the same run.
//!
//! Continue mode (`ckpt -c`): the program's loop records the largest gap between
//! two iterations; the harness asks for it (SIGUSR1) before the checkpoint and
//! after the new image was renamed into place, so the pause is measured the same
//! way whatever continue mode does internally. Running overhead: a CPU-bound loop
//! under `ckpt` and without it, and the start-up of `ckpt PROG` against `PROG`.
//!
//! Every figure is the median of several runs: the machine is shared and its
//! timings are noisy (docs/kernel.md §10). The whole benchmark runs in a few minutes.

mod incr;
mod tree;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Result, build, root};

/// How long any single step may take before the benchmark gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// Chunk of the reference write(2) calls.
const WRITE_CHUNK: usize = 8 << 20;
/// Chunk of the reference read(2) calls.
const READ_CHUNK: usize = 64 << 20;

/// One memory size of the checkpoint/restart table, with its number of runs.
struct Size {
    mib: u64,
    runs: usize,
}

const SIZES: [Size; 4] =
    [Size { mib: 0, runs: 5 }, Size { mib: 64, runs: 5 }, Size { mib: 512, runs: 5 }, Size { mib: 2048, runs: 5 }];

/// Sizes (MiB) of the lazy-restart benchmark, and runs of each restart kind.
const LAZY_SIZES: [u64; 2] = [64, 2048];
const LAZY_RUNS: usize = 3;

/// One size of the lazy-restart benchmark (medians, ms from the spawn).
struct LazyRow {
    mib: u64,
    eager_first: f64,
    eager_full: f64,
    lazy_first: f64,
    lazy_full: f64,
    /// The program's sum of its whole memory: resident, or while pages arrive.
    eager_sum: f64,
    lazy_sum: f64,
}

/// Iterations of `bench work` (about half a second on this machine).
const WORK_ITERS: &str = "250000";

// The C library std already links: what std does not expose (a signal other than
// SIGKILL, the raw CLOCK_MONOTONIC the target program also reads).
unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
    fn sync_file_range(fd: i32, offset: i64, nbytes: i64, flags: u32) -> i32;
}
const SYNC_FILE_RANGE_WRITE: u32 = 2;
/// What the runtime uses too (runtime/src/write.rs, `SYNC_EVERY`).
const SYNC_EVERY: usize = 32 << 20;
const CLOCK_MONOTONIC: i32 = 1;
const SIGUSR1: i32 = 10;
const SIGTSTP: i32 = 20;

/// CLOCK_MONOTONIC in ns (comparable with the program's `t=` values).
fn mono_ns() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one `struct timespec` (two longs on x86_64)
    // into the array we own.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

fn signal(pid: u32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) touches no memory of ours.
    if unsafe { kill(pid as i32, sig) } != 0 {
        return Err(format!("kill({pid}, {sig}): {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A running target program whose stdout lines arrive on a channel.
struct Prog {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Prog {
    fn spawn(cmd: &mut Command) -> Result<Prog> {
        Prog::spawn_keep_stderr(cmd.stderr(Stdio::inherit()))
    }

    /// As `spawn`, with the stderr the command already has.
    fn spawn_keep_stderr(cmd: &mut Command) -> Result<Prog> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Prog { child, lines: rx, seen: Vec::new() })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line starting with `prefix` (lines before it are kept for errors).
    fn expect(&mut self, prefix: &str) -> Result<String> {
        loop {
            match self.lines.recv_timeout(STEP_TIMEOUT) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(l) if l.starts_with("FAIL") => {
                    return Err(format!("the bench program failed: {l}"));
                }
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("no {prefix:?} line from the bench program; saw {:?}", self.seen));
                }
            }
        }
    }

    /// Wait for the exit; `Ok(true)` if it exited with status 0, or 85 (the
    /// status of a checkpoint-and-exit).
    fn wait(&mut self) -> Result<bool> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(matches!(st.code(), Some(0 | 85)));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("the bench program did not exit".into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Thread counts of the threads benchmark (the main thread included) and runs each.
const THREAD_COUNTS: [usize; 4] = [1, 8, 64, 500];
const THREAD_RUNS: usize = 5;

/// The number of µs in the runtime's `CKPT_TIMING` line containing `key`
/// (`ckpt: timing: N other threads stopped in X us`, `... restart: N threads
/// running X us after the loader started`); a single thread stops nothing: 0.
fn timing(stderr: &str, key: &str) -> Result<f64> {
    let Some(line) = stderr.lines().find(|l| l.starts_with("ckpt: timing:") && l.contains(key)) else {
        return if key.contains("stopped") { Ok(0.0) } else { Err(format!("no timing line {key:?} in {stderr:?}")) };
    };
    let after = line.split(key).nth(1).unwrap_or("");
    let num = after.split_whitespace().find(|w| w.parse::<f64>().is_ok()).unwrap_or("");
    num.parse().map_err(|_| format!("no number in {line:?}"))
}

/// `key=VALUE` from a protocol line.
fn field(line: &str, key: &str) -> Result<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in {line:?}"))
}

/// One checkpoint/restart run.
struct Sample {
    image: u64,
    ckpt: f64,
    /// (write only, write + durability) samples: after, and before when known.
    refs: Vec<(f64, f64)>,
    /// The same with write-out started as the data is written.
    best: Vec<f64>,
    first: f64,
    /// The same image restarted with `--no-page-check`.
    first_unchecked: f64,
    heartbeat: f64,
    ref_read: f64,
}

/// Pseudo-random bytes for the reference writes (the program's data are
/// incompressible too; nothing here compresses, but neither side gets a bonus),
/// as many as the largest image: written from a smaller buffer, the reference
/// would copy from the CPU cache while the checkpoint copies from memory.
fn noise(len: usize) -> Vec<u8> {
    const BLOCK: usize = 64 << 20;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut v = Vec::with_capacity(len.max(BLOCK));
    while v.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    // The rest repeats the block (xtask runs unoptimised; memcpy is fast anyway):
    // what matters is that every byte written comes from its own place in memory.
    while v.len() < len {
        let n = (len - v.len()).min(BLOCK);
        v.extend_from_within(..n);
    }
    v
}

/// Write `len` bytes to DIR/ref.tmp with 8 MiB write(2) calls, fsync, rename,
/// fsync the directory: (write time, total with the durability work) in ms.
/// With `overlap`, write-out is started every 32 MiB as the checkpoint does.
fn write_reference(dir: &Path, len: u64, src: &[u8], overlap: bool) -> Result<(f64, f64)> {
    use std::os::fd::AsRawFd;
    let tmp = dir.join(".ref.tmp");
    let io = |e: std::io::Error| format!("reference write in {}: {e}", dir.display());
    let t0 = mono_ns();
    let mut f = fs::File::create(&tmp).map_err(io)?;
    let (mut done, mut synced) = (0usize, 0usize);
    while done < len as usize {
        let n = (len as usize - done).min(WRITE_CHUNK);
        let from = done % (src.len() - WRITE_CHUNK);
        f.write_all(&src[from..from + n]).map_err(io)?;
        done += n;
        if overlap && done - synced >= SYNC_EVERY {
            // SAFETY: no memory involved; the descriptor is open for writing.
            unsafe { sync_file_range(f.as_raw_fd(), synced as i64, (done - synced) as i64, SYNC_FILE_RANGE_WRITE) };
            synced = done;
        }
    }
    let t1 = mono_ns();
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, dir.join("ref.out")).map_err(io)?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    let t2 = mono_ns();
    let _ = fs::remove_file(dir.join("ref.out"));
    Ok((ms(t1 - t0), ms(t2 - t0)))
}

/// Read FILE (warm in the page cache) into fresh anonymous memory; ms.
fn read_reference(file: &Path) -> Result<f64> {
    let io = |e: std::io::Error| format!("reference read of {}: {e}", file.display());
    let len = fs::metadata(file).map_err(io)?.len() as usize;
    let t0 = mono_ns();
    // A zeroed Vec this large comes straight from mmap: untouched pages, as in a
    // process that restores its memory.
    let mut buf = vec![0u8; len];
    let mut f = fs::File::open(file).map_err(io)?;
    let mut at = 0;
    while at < len {
        let n = f.read(&mut buf[at..(at + READ_CHUNK).min(len)]).map_err(io)?;
        if n == 0 {
            return Err(format!("{} shrank while being read", file.display()));
        }
        at += n;
    }
    let t = mono_ns() - t0;
    drop(buf);
    Ok(ms(t))
}

struct Env {
    ckpt: PathBuf,
    prog: PathBuf,
    dir: PathBuf,
    noise: Vec<u8>,
}

impl Env {
    fn image(&self) -> PathBuf {
        self.dir.join("bench.ckpt")
    }

    fn heap_cmd(&self, mib: u64, mode: &str, cont: bool) -> Command {
        let mut c = Command::new(&self.ckpt);
        if cont {
            c.arg("-c");
        }
        c.arg(&self.prog).args(["heap", &mib.to_string(), mode]).current_dir(&self.dir);
        c
    }

    /// Restart the image; spawn → the program's first iteration and → its
    /// heartbeat, in ms. `args`: the restart's own options.
    fn restart_run(&self, args: &[&str], mib: u64, mode: &str) -> Result<(f64, f64)> {
        let mut c = Command::new(self.image());
        c.args(args).current_dir(&self.dir);
        // The unchecked restart's warning is expected: not shown.
        if !args.is_empty() {
            c.stderr(Stdio::null());
        }
        let t0 = mono_ns();
        let mut r = Prog::spawn_keep_stderr(&mut c)?;
        let first = field(&r.expect("FIRST")?, "t")?;
        let beat = field(&r.expect("HEARTBEAT ok")?, "t")?;
        if !r.wait()? {
            return Err(format!("the restarted {mib} MiB {mode} program failed ({args:?})"));
        }
        Ok((ms(first.saturating_sub(t0)), ms(beat.saturating_sub(t0))))
    }

    /// `unchecked_first`: restart with `--no-page-check` before the checked
    /// restart rather than after (runs alternate, so that neither order favours
    /// one).
    fn checkpoint_run(&self, mib: u64, mode: &str, prev_size: Option<u64>, unchecked_first: bool) -> Result<Sample> {
        let image = self.image();
        let _ = fs::remove_file(&image);
        let mut p = Prog::spawn(&mut self.heap_cmd(mib, mode, false))?;
        p.expect("READY")?;
        // Let the program settle into its loop (and the fill's page faults end).
        std::thread::sleep(Duration::from_millis(100));
        let (mut refs, mut best) = (Vec::new(), Vec::new());
        if let Some(len) = prev_size {
            refs.push(write_reference(&self.dir, len, &self.noise, false)?);
            best.push(write_reference(&self.dir, len, &self.noise, true)?.1);
        }
        let t0 = mono_ns();
        signal(p.pid(), SIGTSTP)?;
        let ok = p.wait()?;
        let ckpt = ms(mono_ns() - t0);
        if !ok || !image.exists() {
            return Err(format!("checkpoint of the {mib} MiB {mode} program failed (see stderr)"));
        }
        let size = fs::metadata(&image).map_err(|e| e.to_string())?.len();
        best.push(write_reference(&self.dir, size, &self.noise, true)?.1);
        refs.push(write_reference(&self.dir, size, &self.noise, false)?);
        let ref_read = read_reference(&image)?;

        let mut unchecked = None;
        if unchecked_first {
            unchecked = Some(self.restart_run(&["--no-page-check"], mib, mode)?.0);
        }
        let (first, heartbeat) = self.restart_run(&[], mib, mode)?;
        let first_unchecked = match unchecked {
            Some(u) => u,
            None => self.restart_run(&["--no-page-check"], mib, mode)?.0,
        };
        let _ = fs::remove_file(&image);
        Ok(Sample { image: size, ckpt, refs, best, first, first_unchecked, heartbeat, ref_read })
    }

    /// Lazy restart (`CKPT_LAZY=1`) against the eager one, from one image of a
    /// `mib` MiB program: per run, for each (eager, lazy), spawn → first
    /// instruction (`FIRST`) and spawn → the whole memory summed and matched
    /// (`HEARTBEAT`: every page in, the program having read all of it meanwhile).
    fn lazy_run(&self, mib: u64) -> Result<LazyRow> {
        let image = self.image();
        let _ = fs::remove_file(&image);
        let mut p = Prog::spawn(&mut self.heap_cmd(mib, "rand", false))?;
        p.expect("READY")?;
        std::thread::sleep(Duration::from_millis(100));
        signal(p.pid(), SIGTSTP)?;
        if !p.wait()? || !image.exists() {
            return Err(format!("checkpoint of the {mib} MiB program failed (see stderr)"));
        }
        let mut s: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..LAZY_RUNS {
            for (k, lazy) in ["0", "1"].into_iter().enumerate() {
                let t0 = mono_ns();
                let mut r = Prog::spawn(Command::new(&image).env("CKPT_LAZY", lazy).current_dir(&self.dir))?;
                let first = field(&r.expect("FIRST")?, "t")?;
                let beat = field(&r.expect("HEARTBEAT ok")?, "t")?;
                if !r.wait()? {
                    return Err(format!("the restarted {mib} MiB program failed (CKPT_LAZY={lazy})"));
                }
                s[k].push((ms(first.saturating_sub(t0)), ms(beat.saturating_sub(t0))));
            }
        }
        let _ = fs::remove_file(&image);
        let med = |k: usize, f: fn(&(f64, f64)) -> f64| median(s[k].iter().map(f).collect());
        Ok(LazyRow {
            mib,
            eager_first: med(0, |x| x.0),
            eager_full: med(0, |x| x.1),
            lazy_first: med(1, |x| x.0),
            lazy_full: med(1, |x| x.1),
            eager_sum: med(0, |x| x.1 - x.0),
            lazy_sum: med(1, |x| x.1 - x.0),
        })
    }

    /// Continue mode: (pause, signal → image renamed into place) in ms.
    fn continue_run(&self, mib: u64) -> Result<(f64, f64)> {
        let image = self.image();
        let _ = fs::remove_file(&image);
        let mut p = Prog::spawn(self.heap_cmd(mib, "rand", true).arg("spin"))?;
        p.expect("READY")?;
        std::thread::sleep(Duration::from_millis(100));
        // Start a fresh gap window just before the checkpoint.
        signal(p.pid(), SIGUSR1)?;
        p.expect("GAP")?;
        // The program resets its gap record just after printing: a signal that
        // came before that reset would be forgotten with it.
        std::thread::sleep(Duration::from_millis(20));
        let t0 = mono_ns();
        signal(p.pid(), SIGTSTP)?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !image.exists() {
            if Instant::now() > deadline {
                p.kill();
                return Err("continue mode: no image appeared".into());
            }
            std::thread::sleep(Duration::from_micros(250));
        }
        let full = ms(mono_ns() - t0);
        signal(p.pid(), SIGUSR1)?;
        let gap = p.expect("GAP")?;
        let pause = ms(field(&gap, "max")?);
        eprintln!("bench: {mib} MiB continue mode: {gap} (ns), image renamed after {full:.1} ms");
        p.kill();
        let _ = fs::remove_file(&image);
        Ok((pause, full))
    }

    /// Wall time of spawn → exit, in ms, and the program's `WORK ns=` if any.
    /// `n` threads (the main one included) under `ckpt` with `CKPT_TIMING=1`:
    /// SIGTSTP, then the runtime's report of the stop (ms); the image restarted:
    /// the runtime's report of all threads running after the loader's start, and
    /// spawn -> the program's RUNNING line (ms). The restarted program is ended
    /// through its supervisor (SIGTERM, forwarded).
    fn threads_run(&self, prog: &Path, n: usize) -> Result<(f64, f64, f64)> {
        let image = self.dir.join("bench_threads.ckpt");
        let _ = fs::remove_file(&image);
        let err = |name: &str| -> Result<(PathBuf, fs::File)> {
            let p = self.dir.join(name);
            let f = fs::File::create(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
            Ok((p, f))
        };
        let (e1, f1) = err("threads1.err")?;
        let mut c = Command::new(&self.ckpt);
        c.arg(prog).arg(n.to_string()).current_dir(&self.dir).env("CKPT_TIMING", "1").stderr(f1);
        let mut p = Prog::spawn_keep_stderr(&mut c)?;
        p.expect("READY")?;
        std::thread::sleep(Duration::from_millis(200));
        signal(p.pid(), SIGTSTP)?;
        if !p.wait()? {
            return Err("the threads bench program failed to checkpoint".into());
        }
        let text = fs::read_to_string(&e1).unwrap_or_default();
        let stop = timing(&text, " other threads stopped in ")?;
        let (e2, f2) = err("threads2.err")?;
        let mut c = Command::new(&image);
        c.current_dir(&self.dir).stderr(f2);
        let t0 = mono_ns();
        let mut r = Prog::spawn_keep_stderr(&mut c)?;
        r.expect("RUNNING")?;
        let spawn = ms(mono_ns() - t0);
        signal(r.pid(), 15)?;
        let _ = r.wait();
        // The restarted program's stderr is the file it had (descriptors come
        // back, docs/files.md): its report is in the first run's file, at the
        // offset it had reached; the restart's own stderr is read too.
        let text = fs::read_to_string(&e2).unwrap_or_default() + &fs::read_to_string(&e1).unwrap_or_default();
        let running = timing(&text, " threads running ")?;
        Ok((stop / 1000.0, running / 1000.0, spawn))
    }

    fn timed(&self, cmd: &mut Command) -> Result<(f64, Option<f64>)> {
        let t0 = mono_ns();
        let mut p = Prog::spawn(cmd.current_dir(&self.dir))?;
        let mut work = None;
        if cmd.get_args().any(|a| a == "work") {
            work = Some(ms(field(&p.expect("WORK")?, "ns")?));
        }
        let ok = p.wait()?;
        let t = ms(mono_ns() - t0);
        if !ok {
            return Err(format!("{cmd:?} failed"));
        }
        Ok((t, work))
    }
}

struct Row {
    mib: u64,
    mode: &'static str,
    nonzero_mib: u64,
    image_mib: f64,
    ckpt: f64,
    ref_fsync: f64,
    ref_write: f64,
    ref_best: f64,
    first: f64,
    heartbeat: f64,
    ref_read: f64,
    best_samples: Vec<f64>,
    ckpt_samples: Vec<f64>,
    ref_samples: Vec<f64>,
    first_samples: Vec<f64>,
    unchecked_samples: Vec<f64>,
    read_samples: Vec<f64>,
}

impl Row {
    /// The workload, as the tables name it.
    fn content(&self) -> &'static str {
        match self.mode {
            "half" => "half zero pages",
            _ if self.mib == 0 => "(program only)",
            _ => "random",
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask bench [--sizes MIB,MIB,...] [--only checkpoint|continue|overhead|threads|files|compress|lazy|incremental|hijack|tree]";
    let (mut only, mut part) = (None::<Vec<u64>>, None::<String>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--sizes", Some(list)) => {
                only = Some(
                    list.split(',').map(|s| s.parse().map_err(|_| format!("bad size {s:?}"))).collect::<Result<_>>()?,
                )
            }
            ("--only", Some(p))
                if [
                    "checkpoint",
                    "continue",
                    "overhead",
                    "threads",
                    "files",
                    "compress",
                    "lazy",
                    "incremental",
                    "hijack",
                    "tree",
                ]
                .contains(&p.as_str()) =>
            {
                part = Some(p.clone())
            }
            _ => return Err(usage.into()),
        }
    }
    let doing = |p: &str| part.as_deref().is_none_or(|x| x == p);
    let dist = build::dist()?;
    let out = root().join("target").join("bench");
    let dir = out.join("run");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let prog = dir.join("bench");
    crate::run(Command::new("cc").args(["-O2", "-Wall", "-o"]).arg(&prog).arg(root().join("tests/c/bench.c")))?;
    let largest = SIZES.iter().filter(|s| only.as_ref().is_none_or(|o| o.contains(&s.mib))).map(|s| s.mib).max();
    let noise = noise(((largest.unwrap_or(0) + 64) << 20) as usize);
    let env = Env { ckpt: dist.join("bin").join("ckpt"), prog, dir: dir.clone(), noise };
    let started = Instant::now();

    let mut rows = Vec::new();
    for size in SIZES.iter().filter(|s| doing("checkpoint") && only.as_ref().is_none_or(|o| o.contains(&s.mib))) {
        for mode in ["rand", "half"] {
            if size.mib == 0 && mode == "half" {
                continue;
            }
            let mut s: Vec<Sample> = Vec::new();
            for _ in 0..size.runs {
                let x = env.checkpoint_run(size.mib, mode, s.last().map(|x| x.image), s.len() % 2 == 1)?;
                eprintln!(
                    "bench: {} MiB {mode}: image {} B, checkpoint {:.1} ms, references {:?} ms, \
                     overlapped {:?} ms, restart first {:.1} ms, heartbeat {:.1} ms, read reference {:.1} ms",
                    size.mib, x.image, x.ckpt, x.refs, x.best, x.first, x.heartbeat, x.ref_read
                );
                s.push(x);
            }
            let med = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
            let refs = |f: fn(&(f64, f64)) -> f64| median(s.iter().flat_map(|x| x.refs.iter().map(f)).collect());
            let row = Row {
                mib: size.mib,
                mode,
                nonzero_mib: if mode == "half" { size.mib / 2 } else { size.mib },
                image_mib: med(|x| x.image as f64) / (1 << 20) as f64,
                ckpt: med(|x| x.ckpt),
                ref_fsync: refs(|r| r.1),
                ref_write: refs(|r| r.0),
                ref_best: median(s.iter().flat_map(|x| x.best.iter().copied()).collect()),
                best_samples: s.iter().flat_map(|x| x.best.iter().copied()).collect(),
                ckpt_samples: s.iter().map(|x| x.ckpt).collect(),
                ref_samples: s.iter().flat_map(|x| x.refs.iter().map(|r| r.1)).collect(),
                first_samples: s.iter().map(|x| x.first).collect(),
                unchecked_samples: s.iter().map(|x| x.first_unchecked).collect(),
                read_samples: s.iter().map(|x| x.ref_read).collect(),
                first: med(|x| x.first),
                heartbeat: med(|x| x.heartbeat),
                ref_read: med(|x| x.ref_read),
            };
            eprintln!(
                "bench: {} MiB {mode}: checkpoint {:.0} ms (reference {:.0}), restart {:.1} ms (reference {:.1})",
                row.mib, row.ckpt, row.ref_fsync, row.first, row.ref_read
            );
            rows.push(row);
        }
    }

    let mut cont = Vec::new();
    for size in
        SIZES.iter().filter(|s| doing("continue") && s.mib >= 512 && only.as_ref().is_none_or(|o| o.contains(&s.mib)))
    {
        let (mut pause, mut full) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (p, f) = env.continue_run(size.mib)?;
            pause.push(p);
            full.push(f);
        }
        cont.push((size.mib, median(pause), median(full)));
    }

    // Overhead: alternate with and without, so drifts of the machine hit both.
    let (mut work_with, mut work_without, mut start_with, mut start_without, mut start_preload) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let runtime_lib = dist.join("lib").join("libckpt.so");
    let (overhead_runs, startup_runs) = if doing("overhead") { (9, 21) } else { (0, 0) };
    for _ in 0..overhead_runs {
        let mut w = Command::new(&env.ckpt);
        w.arg(&env.prog).args(["work", WORK_ITERS]);
        work_with.push(env.timed(&mut w)?.1.unwrap_or(f64::NAN));
        let mut wo = Command::new(&env.prog);
        wo.args(["work", WORK_ITERS]);
        work_without.push(env.timed(&mut wo)?.1.unwrap_or(f64::NAN));
    }
    for _ in 0..startup_runs {
        start_with.push(env.timed(Command::new(&env.ckpt).arg(&env.prog).arg("true"))?.0);
        start_without.push(env.timed(Command::new(&env.prog).arg("true"))?.0);
        // The runtime's own share: preloaded without the `ckpt` command's exec.
        start_preload.push(env.timed(Command::new(&env.prog).arg("true").env("LD_PRELOAD", &runtime_lib))?.0);
    }
    let overhead = Overhead {
        work_with: median(work_with),
        work_without: median(work_without),
        start_with: median(start_with),
        start_without: median(start_without),
        start_preload: median(start_preload),
    };

    let mut threads = Vec::new();
    if doing("threads") {
        let tprog = dir.join("bench_threads");
        crate::run(
            Command::new("cc")
                .args(["-O2", "-Wall", "-pthread", "-I"])
                .arg(root().join("tests/c"))
                .arg("-o")
                .arg(&tprog)
                .arg(root().join("tests/c/bench_threads.c")),
        )?;
        for n in THREAD_COUNTS {
            let mut s = Vec::new();
            for _ in 0..THREAD_RUNS {
                s.push(env.threads_run(&tprog, n)?);
            }
            let row = (
                n,
                median(s.iter().map(|x| x.0).collect()),
                median(s.iter().map(|x| x.1).collect()),
                median(s.iter().map(|x| x.2).collect()),
            );
            eprintln!(
                "bench: {n} threads: stop {:.2} ms, restart: all running {:.1} ms after the loader started, \
                 {:.1} ms after the spawn",
                row.1, row.2, row.3
            );
            threads.push(row);
        }
    }
    let files = if doing("files") { Some(files_bench(&env.ckpt, &dir)?) } else { None };
    let hijack = if doing("hijack") { hijack_bench(&env.ckpt, &dir)? } else { Vec::new() };
    let compress = if doing("compress") { compress_bench(&env)? } else { Vec::new() };
    let mut lazy = Vec::new();
    for &mib in LAZY_SIZES.iter().filter(|&&m| doing("lazy") && only.as_ref().is_none_or(|o| o.contains(&m))) {
        let row = env.lazy_run(mib)?;
        eprintln!(
            "bench: lazy {mib} MiB: first instruction {:.1} ms (eager {:.1}), all in and summed {:.0} ms (eager {:.0})",
            row.lazy_first, row.eager_first, row.lazy_full, row.eager_full
        );
        lazy.push(row);
    }

    let machine = machine();
    let mut table = table(&machine, &rows, &cont, &overhead);
    if !threads.is_empty() {
        table.push_str("\n| threads | trigger -> all stopped | restart: loader start -> all running | restart: spawn -> all running |\n");
        table.push_str("|---:|---:|---:|---:|\n");
        for (n, stop, run, spawn) in &threads {
            table.push_str(&format!("| {n} | {stop:.2} ms | {run:.1} ms | {spawn:.1} ms |\n"));
        }
        let j: Vec<String> = threads
            .iter()
            .map(|(n, a, b, c)| {
                format!(
                    "{{\"threads\":{n},\"stop_ms\":{a:.3},\"restart_running_ms\":{b:.3},\"restart_spawn_ms\":{c:.3}}}"
                )
            })
            .collect();
        fs::write(out.join("threads.json"), format!("[{}]\n", j.join(",")))
            .map_err(|e| format!("writing threads.json: {e}"))?;
    }
    print!("{table}");
    if let Some(f) = &files {
        print!("{}", files_table(f));
        fs::write(out.join("files.json"), files_json(f)).map_err(|e| format!("writing files.json: {e}"))?;
    }
    if !hijack.is_empty() {
        print!("{}", hijack_table(&hijack));
        fs::write(out.join("hijack.json"), hijack_json(&hijack)).map_err(|e| format!("writing hijack.json: {e}"))?;
    }
    if !lazy.is_empty() {
        print!("{}", lazy_table(&lazy));
        fs::write(out.join("lazy.json"), lazy_json(&lazy)).map_err(|e| format!("writing lazy.json: {e}"))?;
    }
    if !compress.is_empty() {
        print!("{}", compress_table(&compress));
        fs::write(out.join("compress.json"), compress_json(&compress))
            .map_err(|e| format!("writing compress.json: {e}"))?;
    }
    if doing("incremental") {
        // CKPT_BENCH_INCR_MIB: the heap (default 1024 MiB; the goal is
        // stated for 4096).
        let mib = std::env::var("CKPT_BENCH_INCR_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
        let r = incr::run(&env.ckpt, &dir, &env.noise, mib)?;
        print!("{}", incr::table(&r));
        fs::write(out.join("incremental.json"), incr::json(&r))
            .map_err(|e| format!("writing incremental.json: {e}"))?;
    }
    if doing("tree") {
        let rows = tree::run(&env.ckpt, &dir)?;
        print!("{}", tree::table(&rows));
        fs::write(out.join("tree.json"), tree::json(&rows)).map_err(|e| format!("writing tree.json: {e}"))?;
    }
    let json = json(&machine, &rows, &cont, &overhead);
    fs::write(out.join("bench.json"), json).map_err(|e| format!("writing bench.json: {e}"))?;
    let _ = fs::remove_dir_all(&dir);
    eprintln!("bench: done in {:.0?}; {}", started.elapsed(), out.join("bench.json").display());
    Ok(())
}

/// One workload of the compression benchmark, medians of `COMPRESS_RUNS` runs of
/// each: without and with `-z`.
struct CompressRow {
    name: &'static str,
    /// The images' sizes.
    image: u64,
    image_z: u64,
    /// Plain bytes per stored byte of the page data (`ckpt info`).
    ratio: f64,
    /// Signal → exit (ms), without and with compression.
    ckpt: f64,
    ckpt_z: f64,
    /// Restart spawn → the program's first line after the restart (ms).
    restart: f64,
    restart_z: f64,
}

const COMPRESS_RUNS: usize = 3;

/// A python3 interpreter's heap: a list of small dicts (ints, floats, strings)
/// and a JSON text of part of it, about 190 MiB in all.
const PY_HEAP: &str = "import json, random, sys, time
random.seed(1)
data = [{'id': i, 'name': f'user{i}', 'email': f'user{i}@example.com', 'score': random.random(),
         'tags': ['a', 'b', str(i % 17)]} for i in range(300000)]
blob = json.dumps(data[:50000])
print('READY', flush=True)
while True:
    time.sleep(0.005)
    print('TICK', len(data), len(blob), flush=True)
";

/// Compression speed and ratio on real memory: the bench's own random heap, a
/// heap of text records (tests/c/zheap.c: 88% text, 12% random words) and a
/// python3 heap. The writer is one thread, so plain bytes / checkpoint time is
/// the speed per core (disk included: the image is fsynced).
fn compress_bench(env: &Env) -> Result<Vec<CompressRow>> {
    let zheap = env.dir.join("zheap");
    crate::run(
        Command::new("cc")
            .args(["-O2", "-Wall", "-I"])
            .arg(root().join("tests/c"))
            .arg("-o")
            .arg(&zheap)
            .arg(root().join("tests/c/zheap.c")),
    )?;
    let py = env.dir.join("heap.py");
    fs::write(&py, PY_HEAP).map_err(|e| e.to_string())?;
    let workloads: [(&'static str, Vec<String>, &str, &str); 3] = [
        (
            "bench heap 512 MiB, random",
            vec![env.prog.display().to_string(), "heap".into(), "512".into(), "rand".into()],
            "bench.ckpt",
            "FIRST",
        ),
        (
            "text records 512 MiB (zheap)",
            vec![zheap.display().to_string(), "512".into(), "12".into(), "100000".into()],
            "zheap.ckpt",
            "RESTARTED",
        ),
        ("python3 heap (list of dicts)", vec!["python3".into(), py.display().to_string()], "python3.ckpt", "TICK"),
    ];
    let mut rows = Vec::new();
    for (name, cmd, image, after) in workloads {
        let image = env.dir.join(image);
        let mut samples: [Vec<(u64, f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..COMPRESS_RUNS {
            for (z, out) in samples.iter_mut().enumerate() {
                let _ = fs::remove_file(&image);
                let mut c = Command::new(&env.ckpt);
                if z == 1 {
                    c.arg("-z");
                }
                c.args(&cmd).current_dir(&env.dir);
                let mut p = Prog::spawn(&mut c)?;
                p.expect("READY")?;
                std::thread::sleep(Duration::from_millis(300));
                let t0 = mono_ns();
                signal(p.pid(), SIGTSTP)?;
                if !p.wait()? || !image.exists() {
                    return Err(format!("{name}: the checkpoint failed"));
                }
                let ckpt = ms(mono_ns() - t0);
                let size = fs::metadata(&image).map_err(|e| e.to_string())?.len();
                let info =
                    Command::new(&env.ckpt).args(["info", "--json"]).arg(&image).output().map_err(|e| e.to_string())?;
                let info = String::from_utf8_lossy(&info.stdout).into_owned();
                let data = json_number(&info, "saved_bytes").unwrap_or(0.0);
                let stored = json_number(&info, "stored_bytes").unwrap_or(data);
                let t1 = mono_ns();
                let mut r = Prog::spawn(Command::new(&image).current_dir(&env.dir))?;
                r.expect(after)?;
                let restart = ms(mono_ns() - t1);
                r.kill();
                eprintln!(
                    "bench: compress: {name}{}: image {size} B ({:.2}x of {data} B data), checkpoint {ckpt:.0} ms, restart {restart:.1} ms",
                    if z == 1 { " -z" } else { "" },
                    data / stored.max(1.0)
                );
                out.push((size, ckpt, restart, data / stored.max(1.0)));
            }
        }
        let med = |z: usize, f: fn(&(u64, f64, f64, f64)) -> f64| median(samples[z].iter().map(f).collect());
        rows.push(CompressRow {
            name,
            image: med(0, |s| s.0 as f64) as u64,
            image_z: med(1, |s| s.0 as f64) as u64,
            ratio: med(1, |s| s.3),
            ckpt: med(0, |s| s.1),
            ckpt_z: med(1, |s| s.1),
            restart: med(0, |s| s.2),
            restart_z: med(1, |s| s.2),
        });
        let _ = fs::remove_file(&image);
    }
    Ok(rows)
}

/// The number after `"key":` in a flat JSON text (the first one).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn compress_table(rows: &[CompressRow]) -> String {
    let mut t = String::from(
        "\n| compression (`-z`) | image | image -z | ratio (page data) | checkpoint | checkpoint -z | -z MB/s (plain image / checkpoint -z) | restart | restart -z |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.2} | {:.0} ms | {:.0} ms | {:.0} | {:.1} ms | {:.1} ms |\n",
            r.name,
            r.image as f64 / (1 << 20) as f64,
            r.image_z as f64 / (1 << 20) as f64,
            r.ratio,
            r.ckpt,
            r.ckpt_z,
            r.image as f64 / 1e6 / (r.ckpt_z / 1e3),
            r.restart,
            r.restart_z
        ));
    }
    t
}

fn compress_json(rows: &[CompressRow]) -> String {
    let j: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"workload\":{:?},\"image_bytes\":{},\"image_z_bytes\":{},\"ratio\":{:.3},\"ckpt_ms\":{:.1},\"ckpt_z_ms\":{:.1},\"restart_ms\":{:.2},\"restart_z_ms\":{:.2}}}",
                r.name, r.image, r.image_z, r.ratio, r.ckpt, r.ckpt_z, r.restart, r.restart_z
            )
        })
        .collect();
    format!("[{}]\n", j.join(","))
}

fn lazy_table(rows: &[LazyRow]) -> String {
    let mut t = String::from(
        "\n| lazy restart (CKPT_LAZY=1) | first instruction: eager | lazy | all in and summed: eager | lazy | \
         lazy / eager | the program's sum of its memory: resident | while pages arrive |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} MiB | {:.1} ms | {:.1} ms | {:.0} ms | {:.0} ms | {:.2}x | {:.0} ms | {:.0} ms |\n",
            r.mib,
            r.eager_first,
            r.lazy_first,
            r.eager_full,
            r.lazy_full,
            r.lazy_full / r.eager_full,
            r.eager_sum,
            r.lazy_sum
        ));
    }
    t
}

fn lazy_json(rows: &[LazyRow]) -> String {
    let j: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"mib\":{},\"eager_first_ms\":{:.3},\"lazy_first_ms\":{:.3},\"eager_full_ms\":{:.3},\
                 \"lazy_full_ms\":{:.3},\"eager_sum_ms\":{:.3},\"lazy_sum_ms\":{:.3}}}",
                r.mib, r.eager_first, r.lazy_first, r.eager_full, r.lazy_full, r.eager_sum, r.lazy_sum
            )
        })
        .collect();
    format!("[{}]\n", j.join(","))
}

/// Open descriptors: checkpoint and restart of `tests/c/files_many.c` with no
/// open file and with `FILES_N`, medians of `FILES_RUNS` runs (ms).
struct FilesBench {
    ckpt0: f64,
    ckpt_n: f64,
    restart0: f64,
    restart_n: f64,
}

const FILES_N: usize = 1000;
const FILES_RUNS: usize = 5;

/// `cc -O2` one of the test programs (`tests/c/SRC`, with its headers) into `out`.
fn compile_test_program(src: &str, out: &Path) -> Result<()> {
    crate::run(
        Command::new("cc")
            .args(["-O2", "-Wall", "-I"])
            .arg(root().join("tests/c"))
            .arg("-o")
            .arg(out)
            .arg(root().join("tests/c").join(src)),
    )
}

/// Checkpoint → exit, and restart → the restored program's first step
/// (`RESTARTED ... t=`, CLOCK_MONOTONIC), for 0 and `FILES_N` open files.
fn files_bench(ckpt: &Path, dir: &Path) -> Result<FilesBench> {
    let prog = dir.join("files_many");
    compile_test_program("files_many.c", &prog)?;
    let d = dir.join("files");
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    for k in 0..FILES_N {
        fs::write(d.join(format!("f{k}")), format!("file {k}\n")).map_err(|e| e.to_string())?;
    }
    let image = dir.join("files_many.ckpt");
    let one = |n: usize| -> Result<(f64, f64)> {
        let _ = fs::remove_file(&image);
        let mut p =
            Prog::spawn(Command::new(ckpt).arg(&prog).arg(&d).arg(n.to_string()).arg("100000").current_dir(dir))?;
        p.expect("READY")?;
        std::thread::sleep(Duration::from_millis(100));
        let t0 = mono_ns();
        signal(p.pid(), SIGTSTP)?;
        if !p.wait()? {
            return Err("the files benchmark program failed its checkpoint".into());
        }
        let c = ms(mono_ns() - t0);
        let t1 = mono_ns();
        let mut r = Prog::spawn(Command::new(&image).current_dir(dir))?;
        let line = r.expect("RESTARTED")?;
        let first = ms(field(&line, "t")?.saturating_sub(t1));
        r.kill();
        Ok((c, first))
    };
    let (mut c0, mut cn, mut r0, mut rn) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..FILES_RUNS {
        let (c, r) = one(0)?;
        c0.push(c);
        r0.push(r);
        let (c, r) = one(FILES_N)?;
        cn.push(c);
        rn.push(r);
        eprintln!(
            "bench: files: checkpoint {:.1} / {:.1} ms, restart {:.1} / {:.1} ms (0 / {FILES_N} files)",
            c0[c0.len() - 1],
            c,
            r0[r0.len() - 1],
            r
        );
    }
    Ok(FilesBench { ckpt0: median(c0), ckpt_n: median(cn), restart0: median(r0), restart_n: median(rn) })
}

/// Runs of each program of the hijack benchmark.
const HIJACK_RUNS: usize = 7;

/// One program of the hijack benchmark (medians and worst of `HIJACK_RUNS`).
struct HijackRow {
    name: &'static str,
    /// How long ckpt held the main thread (its own measure, PTRACE_INTERRUPT
    /// to PTRACE_DETACH), median and worst.
    held: (f64, f64),
    /// `ckpt hijack` spawned → exited.
    wall: f64,
    /// `ckpt checkpoint -c PID` spawned → exited (the image durable).
    checkpoint: f64,
}

/// `ckpt hijack`: how long the target's main thread is held and the whole
/// command takes, for a dynamic C program (tests/c/counter.c) and python3; then
/// `ckpt checkpoint -c` on the hijacked process, to the durable image.
fn hijack_bench(ckpt: &Path, dir: &Path) -> Result<Vec<HijackRow>> {
    let counter = dir.join("hjcounter");
    compile_test_program("counter.c", &counter)?;
    let programs: [(&'static str, Command); 2] = [
        ("C counter (dynamic, glibc)", {
            let mut c = Command::new(&counter);
            c.arg("100000");
            c
        }),
        ("python3", {
            let mut c = Command::new("python3");
            c.arg(root().join("tests/c/counter.py")).arg("100000");
            c
        }),
    ];
    let mut rows = Vec::new();
    for (name, mut cmd) in programs {
        let (mut held, mut wall, mut asked) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..HIJACK_RUNS {
            let mut p = Prog::spawn(cmd.current_dir(dir))?;
            p.expect("READY")?;
            std::thread::sleep(Duration::from_millis(50));
            let pid = p.pid().to_string();
            let t0 = mono_ns();
            let o = Command::new(ckpt).args(["hijack", "-q", "-c", &pid]).output().map_err(|e| e.to_string())?;
            wall.push(ms(mono_ns() - t0));
            let err = String::from_utf8_lossy(&o.stderr);
            let h = err
                .split_once("(stopped ")
                .and_then(|(_, r)| r.split_once(" ms"))
                .and_then(|(v, _)| v.parse::<f64>().ok())
                .ok_or_else(|| format!("ckpt hijack {name}: {err}"))?;
            held.push(h);
            let t1 = mono_ns();
            let o = Command::new(ckpt).args(["checkpoint", "-c", &pid]).current_dir(dir).output();
            if !o.is_ok_and(|o| o.status.success()) {
                return Err(format!("ckpt checkpoint of the hijacked {name} failed"));
            }
            asked.push(ms(mono_ns() - t1));
            p.kill();
        }
        let worst = held.iter().copied().fold(0.0, f64::max);
        let row = HijackRow { name, held: (median(held), worst), wall: median(wall), checkpoint: median(asked) };
        eprintln!(
            "bench: hijack {name}: held {:.2} ms (worst {:.2}), ckpt hijack {:.1} ms, ckpt checkpoint {:.1} ms",
            row.held.0, row.held.1, row.wall, row.checkpoint
        );
        rows.push(row);
    }
    Ok(rows)
}

fn hijack_table(rows: &[HijackRow]) -> String {
    let mut t = format!(
        "\nckpt hijack (median of {HIJACK_RUNS} runs; held: the main thread, as ckpt measures it)\n\
         | program | held (ms) | worst held (ms) | ckpt hijack (ms) | ckpt checkpoint -c (ms) |\n\
         |---|---|---|---|---|\n"
    );
    for r in rows {
        t += &format!("| {} | {:.2} | {:.2} | {:.1} | {:.1} |\n", r.name, r.held.0, r.held.1, r.wall, r.checkpoint);
    }
    t
}

fn hijack_json(rows: &[HijackRow]) -> String {
    let v: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({"program": r.name, "held_ms": r.held.0, "worst_held_ms": r.held.1,
                "hijack_ms": r.wall, "checkpoint_ms": r.checkpoint})
        })
        .collect();
    serde_json::Value::Array(v).to_string() + "\n"
}

fn files_table(f: &FilesBench) -> String {
    let per = |a: f64, b: f64| (b - a) * 1000.0 / FILES_N as f64;
    format!(
        "\nOpen files (tests/c/files_many.c, median of {FILES_RUNS} runs)\n\
         | open files | checkpoint (ms) | restart to first step (ms) |\n\
         |---|---|---|\n\
         | 0 | {:.1} | {:.1} |\n\
         | {FILES_N} | {:.1} | {:.1} |\n\
         | per descriptor | {:.1} us | {:.1} us |\n",
        f.ckpt0,
        f.restart0,
        f.ckpt_n,
        f.restart_n,
        per(f.ckpt0, f.ckpt_n),
        per(f.restart0, f.restart_n)
    )
}

fn files_json(f: &FilesBench) -> String {
    serde_json::json!({
        "files": FILES_N,
        "runs": FILES_RUNS,
        "checkpoint_ms": [f.ckpt0, f.ckpt_n],
        "restart_first_step_ms": [f.restart0, f.restart_n],
    })
    .to_string()
}

struct Overhead {
    work_with: f64,
    work_without: f64,
    start_with: f64,
    start_without: f64,
    start_preload: f64,
}

/// One line describing the machine: CPU, cores, kernel, filesystem of target/.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_kib: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0);
    let fs_type = filesystem_of(&root().join("target")).unwrap_or_else(|| "?".into());
    format!("{cpus} vCPU {model}, {:.0} GiB RAM, Linux {}, {fs_type}", mem_kib as f64 / (1 << 20) as f64, kernel.trim())
}

/// "ext4 on /dev/vda": the mount of `path` from /proc/self/mounts (longest prefix).
fn filesystem_of(path: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1])).then(|| (f[1].len(), format!("{} on {}", f[2], f[0])))
        })
        .max()
        .map(|(_, s)| s)
}

fn table(machine: &str, rows: &[Row], cont: &[(u64, f64, f64)], o: &Overhead) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "\nckpt benchmark on {machine}; medians, page cache warm.\n");
    let _ = writeln!(
        t,
        "| memory | content | image | checkpoint | write+fsync ref | ratio | overlapped ref | ratio | restart: first instr. | restart: heartbeat | read ref | ratio |"
    );
    let _ = writeln!(t, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let content = r.content();
        let _ = writeln!(
            t,
            "| {} MiB | {content} | {:.1} MiB (non-zero data {} MiB) | {:.0} ms | {:.0} ms | {:.2} | {:.0} ms | {:.2} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} |",
            r.mib,
            r.image_mib,
            r.nonzero_mib,
            r.ckpt,
            r.ref_fsync,
            r.ckpt / r.ref_fsync,
            r.ref_best,
            r.ckpt / r.ref_best,
            r.first,
            r.heartbeat,
            r.ref_read,
            r.first / r.ref_read,
        );
    }
    let _ = writeln!(t, "\nThe same, best run of each (minimum: the noise of this VM only ever adds time).\n");
    let _ = writeln!(
        t,
        "| memory | content | checkpoint | write+fsync ref | ratio | overlapped ref | ratio | restart: first instr. | read ref | ratio |"
    );
    let _ = writeln!(t, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let content = r.content();
        let (c, p, b) = (min(&r.ckpt_samples), min(&r.ref_samples), min(&r.best_samples));
        let (f, rd) = (min(&r.first_samples), min(&r.read_samples));
        let _ = writeln!(
            t,
            "| {} MiB | {content} | {c:.0} ms | {p:.0} ms | {:.2} | {b:.0} ms | {:.2} | {f:.1} ms | {rd:.1} ms | {:.2} |",
            r.mib,
            c / p,
            c / b,
            f / rd
        );
    }
    let _ = writeln!(
        t,
        "\nThe page-data checks at restart (issue 13): the same image restarted with and without \
         `--no-page-check`, in alternating order, medians / bests.\n"
    );
    let _ = writeln!(t, "| memory | content | restart: first instr. | unchecked | ratio median / best |");
    let _ = writeln!(t, "|---:|---|---:|---:|---:|");
    for r in rows {
        let content = r.content();
        let (f, fb) = (median(r.first_samples.clone()), min(&r.first_samples));
        let (u, ub) = (median(r.unchecked_samples.clone()), min(&r.unchecked_samples));
        let _ = writeln!(
            t,
            "| {} MiB | {content} | {f:.1} / {fb:.1} ms | {u:.1} / {ub:.1} ms | {:.2} / {:.2} |",
            r.mib,
            f / u,
            fb / ub
        );
    }
    if !cont.is_empty() {
        let _ = writeln!(t, "\n| continue mode (`ckpt -c`) | program paused | signal → image renamed | pause / full |");
        let _ = writeln!(t, "|---:|---:|---:|---:|");
        for (mib, pause, full) in cont {
            let _ = writeln!(t, "| {mib} MiB random | {pause:.1} ms | {full:.0} ms | {:.1} % |", 100.0 * pause / full);
        }
    }
    if o.work_with.is_nan() {
        return t; // not measured (--only)
    }
    let _ = writeln!(t, "\n| running overhead | under `ckpt` | without | difference |");
    let _ = writeln!(t, "|---|---:|---:|---:|");
    let pct = |a: f64, b: f64| 100.0 * (a - b) / b;
    let _ = writeln!(
        t,
        "| CPU-bound loop (`bench work {WORK_ITERS}`) | {:.1} ms | {:.1} ms | {:+.1} % |",
        o.work_with,
        o.work_without,
        pct(o.work_with, o.work_without)
    );
    let _ = writeln!(
        t,
        "| start-up to exit (`bench true`) | {:.2} ms | {:.2} ms | {:+.2} ms |",
        o.start_with,
        o.start_without,
        o.start_with - o.start_without
    );
    let _ = writeln!(
        t,
        "| start-up, runtime only (`LD_PRELOAD=libckpt.so bench true`) | {:.2} ms | {:.2} ms | {:+.2} ms |",
        o.start_preload,
        o.start_without,
        o.start_preload - o.start_without
    );
    t
}

/// `bench.json`: the fields in this order; milliseconds to the microsecond and
/// ratios to 4 places, as the table shows them; the samples as measured. A value
/// not measured (NaN) is null.
fn json(machine: &str, rows: &[Row], cont: &[(u64, f64, f64)], o: &Overhead) -> String {
    #[derive(Serialize)]
    struct Bench<'a> {
        machine: &'a str,
        unit: &'a str,
        checkpoint_restart: Vec<CheckpointRestart>,
        continue_mode: Vec<ContinueMode>,
        overhead: Option<OverheadJson>,
    }
    #[derive(Serialize)]
    struct CheckpointRestart {
        memory_mib: u64,
        content: &'static str,
        nonzero_mib: u64,
        image_mib: f64,
        checkpoint_ms: f64,
        ref_write_fsync_ms: f64,
        checkpoint_ratio: f64,
        ref_write_ms: f64,
        ref_overlapped_fsync_ms: f64,
        checkpoint_ratio_overlapped: f64,
        restart_first_instruction_ms: f64,
        restart_heartbeat_ms: f64,
        ref_read_ms: f64,
        restart_ratio: f64,
        samples: Samples,
    }
    #[derive(Serialize)]
    struct Samples {
        checkpoint_ms: Vec<f64>,
        ref_write_fsync_ms: Vec<f64>,
        ref_overlapped_fsync_ms: Vec<f64>,
        restart_first_instruction_ms: Vec<f64>,
        restart_unchecked_ms: Vec<f64>,
        ref_read_ms: Vec<f64>,
    }
    #[derive(Serialize)]
    struct ContinueMode {
        memory_mib: u64,
        pause_ms: f64,
        full_ms: f64,
        pause_fraction: f64,
    }
    #[derive(Serialize)]
    struct OverheadJson {
        work_with_ms: f64,
        work_without_ms: f64,
        startup_with_ms: f64,
        startup_without_ms: f64,
        startup_preload_only_ms: f64,
    }
    let ms = |v: f64| (v * 1e3).round() / 1e3;
    let ratio = |v: f64| (v * 1e4).round() / 1e4;
    let bench = Bench {
        machine,
        unit: "ms, MiB; medians",
        checkpoint_restart: rows
            .iter()
            .map(|r| CheckpointRestart {
                memory_mib: r.mib,
                content: r.mode,
                nonzero_mib: r.nonzero_mib,
                image_mib: ms(r.image_mib),
                checkpoint_ms: ms(r.ckpt),
                ref_write_fsync_ms: ms(r.ref_fsync),
                checkpoint_ratio: ratio(r.ckpt / r.ref_fsync),
                ref_write_ms: ms(r.ref_write),
                ref_overlapped_fsync_ms: ms(r.ref_best),
                checkpoint_ratio_overlapped: ratio(r.ckpt / r.ref_best),
                restart_first_instruction_ms: ms(r.first),
                restart_heartbeat_ms: ms(r.heartbeat),
                ref_read_ms: ms(r.ref_read),
                restart_ratio: ratio(r.first / r.ref_read),
                samples: Samples {
                    checkpoint_ms: r.ckpt_samples.clone(),
                    ref_write_fsync_ms: r.ref_samples.clone(),
                    ref_overlapped_fsync_ms: r.best_samples.clone(),
                    restart_first_instruction_ms: r.first_samples.clone(),
                    restart_unchecked_ms: r.unchecked_samples.clone(),
                    ref_read_ms: r.read_samples.clone(),
                },
            })
            .collect(),
        continue_mode: cont
            .iter()
            .map(|&(mib, pause, full)| ContinueMode {
                memory_mib: mib,
                pause_ms: ms(pause),
                full_ms: ms(full),
                pause_fraction: ratio(pause / full),
            })
            .collect(),
        overhead: (!o.work_with.is_nan()).then(|| OverheadJson {
            work_with_ms: ms(o.work_with),
            work_without_ms: ms(o.work_without),
            startup_with_ms: ms(o.start_with),
            startup_without_ms: ms(o.start_without),
            startup_preload_only_ms: ms(o.start_preload),
        }),
    };
    let mut j = serde_json::to_string_pretty(&bench).expect("plain data serializes");
    j.push('\n');
    j
}
