//! The incremental part of `cargo xtask bench` (`--only incremental`):
//! tests/c/bench_incr.c, a heap of random data of which 1% of the pages are
//! written between checkpoints, in continue mode with `-I`:
//!
//! - the full image, then three incremental ones: size, and signal → image
//!   durable (the runtime's own `written (... in N ms` line), against writing the
//!   incremental image's page data to a file and syncing it;
//! - the cost of tracking to the program: a first write to each page after a
//!   checkpoint, with `-I` (a write-protect fault resolved in the kernel) and
//!   without (the copy-on-write fault after the writer's fork alone);
//! - restart of the chain (four images) against the same state merged into one
//!   flat image (`ckpt merge`): spawn → the program's line after the restart,
//!   which comes once it has read and summed its whole memory (both must agree).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Prog, Result, SIGTSTP, SIGUSR1, median, mono_ns, ms, signal, write_reference};

const SIGUSR2: i32 = 12;
const CHILDREN: usize = 3;

/// The results, in ms and bytes.
pub struct IncrRow {
    pub mib: u64,
    pub full_bytes: u64,
    pub full_ms: f64,
    pub child_bytes: u64,
    pub child_ms: f64,
    /// Writing and syncing the incremental image's page data as a plain file.
    pub child_ref_ms: f64,
    pub write_ns_tracked: f64,
    pub write_ns_plain: f64,
    pub restart_chain_ms: f64,
    pub restart_flat_ms: f64,
}

/// Wait until `err` holds `n` lines `written (`; the last one's `in N ms`.
fn written(err: &Path, n: usize) -> Result<f64> {
    for _ in 0..3000 {
        let text = fs::read_to_string(err).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(" written (")).collect();
        if lines.len() >= n {
            let l = lines[n - 1];
            let t = l.split(" in ").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse::<f64>().ok());
            let unit = l.split(" in ").nth(1).and_then(|r| r.split(' ').nth(1)).unwrap_or("ms");
            let t = t.ok_or_else(|| format!("no time in {l:?}"))?;
            return Ok(if unit.starts_with("ms") { t } else { t * 1000.0 });
        }
        if text.contains("FAIL") || text.contains("ckpt: error") {
            return Err(format!("the checkpoint failed: {text}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("no image written; stderr: {}", fs::read_to_string(err).unwrap_or_default()))
}

fn write_ns(p: &mut Prog) -> Result<f64> {
    signal(p.pid(), SIGUSR2)?;
    let l = p.expect("WRITE")?;
    let ns: f64 = super::field(&l, "ns")? as f64;
    let pages: f64 = super::field(&l, "pages")? as f64;
    Ok(ns / pages)
}

fn restart_ms(image: &Path, dir: &Path) -> Result<(f64, String)> {
    let t0 = mono_ns();
    let mut r = Prog::spawn(Command::new(image).arg("--shell-stdio").current_dir(dir))?;
    let l = r.expect("RESTARTED")?;
    let t = ms(mono_ns() - t0);
    r.wait()?;
    Ok((t, l))
}

pub fn run(ckpt: &Path, dir: &Path, noise: &[u8], mib: u64) -> Result<IncrRow> {
    let prog = dir.join("bench_incr");
    crate::run(
        Command::new("cc").args(["-O2", "-Wall", "-o"]).arg(&prog).arg(crate::root().join("tests/c/bench_incr.c")),
    )?;
    let image = dir.join("incr.ckpt");
    let err = dir.join("incr.err");
    let spawn = |inc: bool, err: &Path| -> Result<Prog> {
        let mut c = Command::new(ckpt);
        c.arg("-c");
        if inc {
            c.args(["-I", "--full-every", "16"]);
        }
        c.arg("-n").arg(&image).arg(&prog).args([mib.to_string(), "10".into()]).current_dir(dir);
        c.stderr(Stdio::from(fs::File::create(err).map_err(|e| e.to_string())?));
        Prog::spawn_keep_stderr(&mut c)
    };

    // Without tracking: the first write after a checkpoint.
    let _ = fs::remove_file(&image);
    let mut p = spawn(false, &err)?;
    p.expect("READY")?;
    signal(p.pid(), SIGTSTP)?;
    written(&err, 1)?;
    let write_ns_plain = write_ns(&mut p)?;
    p.kill();

    let _ = fs::remove_file(&image);
    let mut p = spawn(true, &err)?;
    p.expect("READY")?;
    signal(p.pid(), SIGTSTP)?;
    let full_ms = written(&err, 1)?;
    let full_bytes = fs::metadata(&image).map_err(|e| e.to_string())?.len();
    let (mut sizes, mut times) = (Vec::new(), Vec::new());
    for i in 0..CHILDREN {
        signal(p.pid(), SIGUSR1)?;
        p.expect("DIRTY")?;
        signal(p.pid(), SIGTSTP)?;
        times.push(written(&err, i + 2)?);
        sizes.push(fs::metadata(&image).map_err(|e| e.to_string())?.len() as f64);
    }
    let write_ns_tracked = write_ns(&mut p)?;
    p.kill();
    let child_bytes = median(sizes) as u64;
    let mut refs = Vec::new();
    for _ in 0..3 {
        refs.push(write_reference(dir, child_bytes, noise, false)?.1);
    }

    // The chain against the same state flat.
    let flat = dir.join("flat.ckpt");
    crate::run(Command::new(ckpt).arg("merge").arg(&image).arg("-o").arg(&flat))?;
    let (mut chain, mut flat_t) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (a, la) = restart_ms(&image, dir)?;
        let (b, lb) = restart_ms(&flat, dir)?;
        if la != lb {
            return Err(format!("the chain restarts to {la:?}, the merged image to {lb:?}"));
        }
        chain.push(a);
        flat_t.push(b);
    }
    let row = IncrRow {
        mib,
        full_bytes,
        full_ms,
        child_bytes,
        child_ms: median(times),
        child_ref_ms: median(refs),
        write_ns_tracked,
        write_ns_plain,
        restart_chain_ms: median(chain),
        restart_flat_ms: median(flat_t),
    };
    for f in fs::read_dir(dir).map_err(|e| e.to_string())?.filter_map(|e| e.ok()) {
        if f.file_name().to_string_lossy().contains(".ckpt") {
            let _ = fs::remove_file(f.path());
        }
    }
    Ok(row)
}

pub fn table(r: &IncrRow) -> String {
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    format!(
        "\n| incremental (`-c -I`), {} MiB heap, 1% of pages written | size | signal → durable |\n|---|---|---|\n\
         | full image | {:.1} MiB | {:.0} ms |\n\
         | incremental image (median of {CHILDREN}) | {:.1} MiB | {:.0} ms |\n\
         | writing + syncing those bytes (reference) | | {:.0} ms |\n\n\
         | first write to a page after a checkpoint | ns per page |\n|---|---|\n\
         | with tracking (`-I`) | {:.0} |\n| without | {:.0} |\n\n\
         | restart | spawn → whole memory read back (ms) |\n|---|---|\n\
         | chain of {} images | {:.0} |\n| merged into one (`ckpt merge`) | {:.0} |\n",
        r.mib,
        mb(r.full_bytes),
        r.full_ms,
        mb(r.child_bytes),
        r.child_ms,
        r.child_ref_ms,
        r.write_ns_tracked,
        r.write_ns_plain,
        CHILDREN + 1,
        r.restart_chain_ms,
        r.restart_flat_ms
    )
}

pub fn json(r: &IncrRow) -> String {
    format!(
        "{{\"mib\":{},\"full_bytes\":{},\"full_ms\":{:.2},\"child_bytes\":{},\"child_ms\":{:.2},\"child_ref_ms\":{:.2},\
         \"write_ns_tracked\":{:.1},\"write_ns_plain\":{:.1},\"restart_chain_ms\":{:.2},\"restart_flat_ms\":{:.2}}}\n",
        r.mib,
        r.full_bytes,
        r.full_ms,
        r.child_bytes,
        r.child_ms,
        r.child_ref_ms,
        r.write_ns_tracked,
        r.write_ns_plain,
        r.restart_chain_ms,
        r.restart_flat_ms
    )
}
