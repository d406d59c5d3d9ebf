//! `ckpt run [--dir DIR] [--keep N] [OPTIONS] PROG ARGS`: one command line that
//! starts a job and, run again, resumes it. This is what batch schedulers need:
//! HTCondor, Slurm (after a requeue) and Kubernetes all rerun the same command.
//!
//! The runtime does the writing (directory mode, `CKPT_DIR`; see
//! runtime/src/dir.rs): every checkpoint is a new `DIR/SEQ.ckpt`, written under a
//! temporary name, synced and renamed; then `DIR/current` is pointed at it and
//! the images older than the newest N are removed. Here, before anything runs:
//!
//! 1. DIR is created if missing; temporary files (`.SEQ.ckpt.tmp.PID.K`,
//!    `.current.tmp.PID`) of processes that no longer exist are removed.
//! 2. The images are tried newest first, each with every check `ckpt verify`
//!    makes (`inspect::check`: loader, header, metadata, page data, length). The
//!    first that passes is executed: the restarted program continues, with the
//!    configuration it had. One that fails is renamed `SEQ.ckpt.damaged` (kept
//!    for a look, never tried again) with a warning, and the next older one is
//!    tried.
//! 3. No usable image: PROG is started under the runtime, as by `ckpt PROG`, with
//!    `CKPT_DIR` and `CKPT_KEEP` set.
//!
//! Verifying reads the whole image once (a restart then reads it again, mostly
//! from the page cache): measured on a 1 GiB image here, 0.43-0.58 s from the
//! page cache, 1.2 s just after it was written (partly evicted). That
//! is the price of never resuming from an image whose page data is damaged,
//! which a restart alone would not notice.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CANNOT_EXECUTE, Error, FAILURE};
use crate::{RuntimeOpts, exec_program, inspect, program};

/// `N` if `name` is exactly `N.ckpt` (as the runtime names images).
fn image_seq(name: &[u8]) -> Option<u64> {
    let d = name.strip_suffix(b".ckpt")?;
    if d.is_empty() || d.len() > 18 || !d.iter().all(u8::is_ascii_digit) || d[0] == b'0' {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

/// The pid in a temporary file's name of ours: `.SEQ.ckpt.tmp.PID.K` or
/// `.current.tmp.PID`.
fn temp_pid(name: &[u8]) -> Option<u32> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix('.')?;
    let after = if let Some(r) = rest.strip_prefix("current.tmp.") {
        r
    } else {
        let (seq, r) = rest.split_once(".tmp.")?;
        image_seq(seq.as_bytes())?;
        r.split_once('.').filter(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))?.0
    };
    if after.is_empty() || !after.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    after.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Start or resume the job (see the module comment); only returns on failure.
pub fn run(dir: Option<&Path>, keep: u32, opts: &RuntimeOpts, command: &[OsString]) -> Result<Infallible, Error> {
    let prog = command.first().ok_or_else(|| Error::usage("no program given"))?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let base = Path::new(prog).file_name().map(|b| b.as_bytes()).unwrap_or(b"a.out");
            let mut name = base.to_vec();
            name.extend_from_slice(b".ckpt.d");
            PathBuf::from(OsString::from(String::from_utf8_lossy(&name).into_owned()))
        }
    };
    let shown = dir.display().to_string();
    let io = |what: &str, e: std::io::Error| Error::new(FAILURE, format!("{what} {shown}: {}", program::describe(&e)));
    fs::create_dir_all(&dir).map_err(|e| io("cannot create the checkpoint directory", e))?;
    // Absolute: the program may change directory before its first checkpoint.
    let abs = dir.canonicalize().map_err(|e| io("cannot open the checkpoint directory", e))?;

    let mut seqs = Vec::new();
    for entry in fs::read_dir(&abs).map_err(|e| io("cannot list the checkpoint directory", e))? {
        let entry = entry.map_err(|e| io("cannot list the checkpoint directory", e))?;
        let name = entry.file_name();
        if let Some(pid) = temp_pid(name.as_bytes())
            && !alive(pid)
        {
            // A writer killed before it could clean up (the job was killed
            // mid-checkpoint): the image it wrote is incomplete by construction.
            let _ = fs::remove_file(entry.path());
        } else if let Some(seq) = image_seq(name.as_bytes()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable_by(|a, b| b.cmp(a));

    for &seq in &seqs {
        let image = dir.join(format!("{seq}.ckpt"));
        let path = abs.join(format!("{seq}.ckpt"));
        match inspect::check(&path) {
            Ok(v) => {
                eprintln!(
                    "ckpt: resumed from {} (seq {seq}, saved {}, {})",
                    image.display(),
                    inspect::utc(v.time),
                    inspect::size(v.file_len)
                );
                let err = Command::new(&path).exec();
                return Err(Error::new(
                    CANNOT_EXECUTE,
                    format!("cannot execute {}: {}", image.display(), program::describe(&err)),
                ));
            }
            Err(e) => {
                let damaged = abs.join(format!("{seq}.ckpt.damaged"));
                let kept = fs::rename(&path, &damaged).is_ok();
                eprintln!(
                    "ckpt: warning: not resuming from {}: {}{}",
                    image.display(),
                    e.message,
                    if kept {
                        format!("; renamed {seq}.ckpt.damaged, trying the previous image")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if seqs.is_empty() {
        eprintln!("ckpt: no checkpoint in {shown}, starting {}", prog.to_string_lossy());
    } else {
        eprintln!(
            "ckpt: warning: no usable checkpoint in {shown} ({} damaged), starting {} from the beginning",
            seqs.len(),
            prog.to_string_lossy()
        );
    }
    let vars = vec![("CKPT_DIR", abs.into_os_string()), ("CKPT_KEEP", keep.to_string().into())];
    exec_program(opts, command, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(image_seq(b"12.ckpt"), Some(12));
        for bad in [&b"0.ckpt"[..], b"012.ckpt", b"x.ckpt", b".ckpt", b"12.ckpt.damaged", b"current"] {
            assert_eq!(image_seq(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(temp_pid(b".12.ckpt.tmp.345.0"), Some(345));
        assert_eq!(temp_pid(b".current.tmp.77"), Some(77));
        for bad in [&b".12.ckpt.tmp.345"[..], b"12.ckpt", b".x.ckpt.tmp.3.0", b".current.tmp.", b".current.tmp.1x"] {
            assert_eq!(temp_pid(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
