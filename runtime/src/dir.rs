//! Directory mode (`CKPT_DIR`, what `ckpt run` uses): each checkpoint is a new
//! image `DIR/SEQ.ckpt`, SEQ counting up from 1. Once an image is durable,
//! `DIR/current`, a symbolic link, is pointed at it by an atomic rename (a link
//! made under a temporary name, then renamed over the old one, the directory
//! synced), and the images older than the newest `CKPT_KEEP` (default 2) are
//! removed. A damaged newest image then still leaves the previous one to resume
//! from (`ckpt run` falls back to it).
//!
//! The next number is one more than both the last one this process used (kept in
//! the runtime's memory, so a restarted process goes on counting) and the largest
//! one in DIR (so that a job started afresh next to old images never reuses a
//! number). The image itself is written like any other (`write::Job`: temporary
//! file, fsync, rename, directory fsync); this module only names it and, after,
//! publishes it.

use ckpt_sys::scratch::Scratch;
use ckpt_sys::{AtFlags, Errno, Fd, RenameFlags, c};

use crate::config::{NAME_MAX, Path};
use crate::failure::Failure;
use crate::write::CPath;

/// The pointer's name in DIR.
pub const CURRENT: &[u8] = b"current";

/// `N` if `name` is exactly `N.ckpt` (decimal, no sign, no leading zero).
pub fn image_seq(name: &[u8]) -> Option<u64> {
    let d = name.strip_suffix(b".ckpt")?;
    if d.len() > 18 || d.first() == Some(&b'0') {
        return None;
    }
    ckpt_sys::num::parse(d, 10)
}

fn open_dir(dir: &Path) -> Result<Fd, Failure> {
    let p = CPath::from_parts(&[dir.as_bytes()]).ok_or(Failure::new(
        "invalid checkpoint directory name",
        Errno::EINVAL,
        dir.as_bytes(),
    ))?;
    ckpt_sys::openat(Fd::CWD, p.cstr(), c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0)
        .map_err(|e| Failure::new("opening the checkpoint directory", e, dir.as_bytes()))
}

/// Call `f` with every image number in DIR (open as `fd`).
fn each_seq(fd: Fd, mut f: impl FnMut(u64)) -> Result<(), Errno> {
    let mut buf = Scratch::new(64 << 10)?;
    let buf = buf.bytes();
    loop {
        let n = ckpt_sys::getdents64(fd, buf)?;
        if n == 0 {
            return Ok(());
        }
        for name in ckpt_sys::dirent_names(&buf[..n]) {
            if let Some(s) = image_seq(name) {
                f(s);
            }
        }
    }
}

/// `m` + `DIR/SEQ.ckpt`.
fn image_name(dir: &Path, seq: u64) -> Option<Path> {
    let m = ckpt_sys::msg::Msg::new().b(dir.as_bytes()).s("/").u(seq).s(".ckpt");
    (m.as_bytes().len() < NAME_MAX - 64).then(|| Path::new(m.as_bytes())).flatten()
}

/// The next image: its path and number (see the module comment for which).
pub fn next(dir: &Path, last: u64) -> Result<(Path, u64), Failure> {
    let fd = open_dir(dir)?;
    let mut max = last;
    let r = each_seq(fd, |s| max = max.max(s));
    let _ = ckpt_sys::close(fd);
    r.map_err(|e| Failure::new("listing the checkpoint directory", e, dir.as_bytes()))?;
    let seq = max + 1;
    let path =
        image_name(dir, seq).ok_or(Failure::new("invalid checkpoint directory name", Errno::EINVAL, dir.as_bytes()))?;
    Ok((path, seq))
}

/// Image `seq` is durable in DIR: point `current` at it, then remove the images
/// older than the newest `keep`. The image is complete whatever happens here, so
/// failures are warnings.
pub fn publish(dir: &Path, seq: u64, keep: u32) {
    let warn = |step: &str, e: Errno| {
        ckpt_sys::msg::Msg::new()
            .s("ckpt: warning: ")
            .s(step)
            .s(" in ")
            .b(dir.as_bytes())
            .s(" after writing image ")
            .u(seq)
            .s(": ")
            .errno(e)
            .emit()
    };
    let Ok(fd) = open_dir(dir) else { return warn("opening the directory", Errno::EBADF) };
    let target = ckpt_sys::msg::Msg::new().u(seq).s(".ckpt");
    let tmp = ckpt_sys::msg::Msg::new().s(".current.tmp.").u(ckpt_sys::getpid() as u64);
    match (CPath::from_parts(&[target.as_bytes()]), CPath::from_parts(&[tmp.as_bytes()]), CPath::from_parts(&[CURRENT]))
    {
        (Some(target), Some(tmp), Some(cur)) => {
            let _ = ckpt_sys::unlinkat(fd, tmp.cstr(), AtFlags::EMPTY);
            let r = ckpt_sys::symlinkat(target.cstr(), fd, tmp.cstr())
                .and_then(|()| ckpt_sys::renameat2(fd, tmp.cstr(), fd, cur.cstr(), RenameFlags::EMPTY));
            if let Err(e) = r {
                let _ = ckpt_sys::unlinkat(fd, tmp.cstr(), AtFlags::EMPTY);
                warn("pointing current at the new image", e);
            } else if let Err(e) = ckpt_sys::fsync(fd)
                && e != Errno::EINVAL
            {
                warn("syncing the directory", e);
            }
        }
        _ => warn("naming the pointer", Errno::ENAMETOOLONG),
    }
    let _ = ckpt_sys::close(fd);
    prune(dir, seq, keep);
}

/// Remove every image older than the `keep` newest at or below `seq`.
fn prune(dir: &Path, seq: u64, keep: u32) {
    // The keep-th largest number <= seq, found by `keep` scans (keep is small).
    let mut bound = seq + 1;
    for _ in 0..keep.max(1) {
        let Ok(fd) = open_dir(dir) else { return };
        let mut below = 0u64;
        let r = each_seq(fd, |s| {
            if s < bound && s > below {
                below = s;
            }
        });
        let _ = ckpt_sys::close(fd);
        if r.is_err() || below == 0 {
            return; // fewer than `keep` images: nothing to remove
        }
        bound = below;
    }
    let Ok(fd) = open_dir(dir) else { return };
    let mut old = [0u64; 64];
    let mut n = 0;
    // Names are collected first: removing entries while listing may skip some.
    let _ = each_seq(fd, |s| {
        if s < bound && n < old.len() {
            old[n] = s;
            n += 1;
        }
    });
    for &s in &old[..n] {
        let name = ckpt_sys::msg::Msg::new().u(s).s(".ckpt");
        if let Some(p) = CPath::from_parts(&[name.as_bytes()]) {
            let _ = ckpt_sys::unlinkat(fd, p.cstr(), AtFlags::EMPTY);
        }
    }
    let _ = ckpt_sys::close(fd);
}
