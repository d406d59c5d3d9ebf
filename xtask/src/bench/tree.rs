//! The process-tree part of `cargo xtask bench` (`--only tree`): `ckpt --tree`
//! on a tree of 1, 10 and 100 processes (`sleep` alone; a shell and its
//! background `sleep`s), idle, every process running the runtime:
//!
//! - **checkpoint**: SIGTSTP to the root → the root has exited with the
//!   checkpoint status (every member has written its image into the root's
//!   file, which is durable and renamed into place: the root exits only then);
//! - **restart**: the image spawned → every process of the tree is back (its
//!   own command line in /proc again: its memory is restored).
//!
//! Medians of `RUNS` runs. The sleeps are told apart from anything else on the
//! machine by their argument ([`NAP`]).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Result, SIGTSTP, median, signal};

/// Tree sizes (processes).
const SIZES: [usize; 3] = [1, 10, 100];
const RUNS: usize = 3;
/// The sleeps' argument: no other process of the machine runs `sleep 7919`.
const NAP: &str = "7919";

/// One size's medians.
pub struct TreeRow {
    pub procs: usize,
    pub checkpoint_ms: f64,
    pub restart_ms: f64,
    pub image_bytes: u64,
}

/// Pids of the processes whose command line is `sleep NAP`.
fn naps() -> Vec<i32> {
    let want = format!("sleep\0{NAP}\0");
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// Wait (up to 30 s) until `f` holds.
fn until(what: &str, f: impl Fn() -> bool) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    while !f() {
        if Instant::now() > end {
            return Err(format!("bench tree: timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Kill every sleep of ours and what holds them (a run's leftovers).
fn clean(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    for pid in naps() {
        let _ = signal(pid as u32, 9);
    }
    let _ = until("the sleeps to go", || naps().is_empty());
}

fn one(ckpt: &Path, dir: &Path, procs: usize) -> Result<(f64, f64, u64)> {
    let image = dir.join("tree.ckpt");
    let _ = fs::remove_file(&image);
    let mut cmd = Command::new(ckpt);
    cmd.current_dir(dir).args(["--tree", "-q", "-n", "tree.ckpt"]);
    if procs == 1 {
        cmd.args(["sleep", NAP]);
    } else {
        cmd.args(["sh", "-c", &format!("for i in $(seq {}); do sleep {NAP} & done; wait", procs - 1)]);
    }
    let mut root = cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn().map_err(|e| format!("ckpt: {e}"))?;
    let sleeps = if procs == 1 { 1 } else { procs - 1 };
    until("the tree to start", || naps().len() == sleeps)?;
    // Every process past its exec, the runtime loaded and armed.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    signal(root.id(), SIGTSTP)?;
    let st = root.wait().map_err(|e| format!("wait: {e}"))?;
    let checkpoint = t.elapsed().as_secs_f64() * 1e3;
    if st.code() != Some(85) {
        return Err(format!("bench tree: the root ended with {st}, not the checkpoint status"));
    }
    until("the tree to be gone", || naps().is_empty())?;
    let bytes = fs::metadata(&image).map_err(|e| format!("{}: {e}", image.display()))?.len();
    let t = Instant::now();
    let restarted = Command::new(&image)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let mut held = [restarted];
    let back = until("the restarted tree", || naps().len() == sleeps);
    let restart = t.elapsed().as_secs_f64() * 1e3;
    clean(&mut held);
    back?;
    Ok((checkpoint, restart, bytes))
}

/// Every size, `RUNS` times.
pub fn run(ckpt: &Path, dir: &Path) -> Result<Vec<TreeRow>> {
    clean(&mut []);
    let mut rows = Vec::new();
    for procs in SIZES {
        let (mut c, mut r, mut b) = (Vec::new(), Vec::new(), 0);
        for _ in 0..RUNS {
            let (ci, ri, bi) = one(ckpt, dir, procs)?;
            c.push(ci);
            r.push(ri);
            b = bi;
        }
        let row = TreeRow { procs, checkpoint_ms: median(c), restart_ms: median(r), image_bytes: b };
        eprintln!(
            "bench: tree of {procs}: checkpoint {:.0} ms, restart {:.0} ms, image {:.1} MiB",
            row.checkpoint_ms,
            row.restart_ms,
            row.image_bytes as f64 / (1 << 20) as f64
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The Markdown table.
pub fn table(rows: &[TreeRow]) -> String {
    let mut t = String::from(
        "\n| processes (`ckpt --tree`) | checkpoint: SIGTSTP -> root exited, image durable | restart: spawn -> every process back | image |\n|---:|---:|---:|---:|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {:.0} ms | {:.0} ms | {:.1} MiB |\n",
            r.procs,
            r.checkpoint_ms,
            r.restart_ms,
            r.image_bytes as f64 / (1 << 20) as f64
        ));
    }
    t
}

/// The same as JSON.
pub fn json(rows: &[TreeRow]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"processes\":{},\"checkpoint_ms\":{:.1},\"restart_ms\":{:.1},\"image_bytes\":{}}}",
                r.procs, r.checkpoint_ms, r.restart_ms, r.image_bytes
            )
        })
        .collect();
    format!("[{}]\n", items.join(","))
}
