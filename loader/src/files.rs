//! Descriptors at restart, from the image's FILES section (`ckpt_image::files`;
//! the design and the policy are in docs/files.md).
//!
//! Runs in phase one, on the kernel's stack, before the address space is
//! touched: descriptors do not depend on memory, and a restart refused because a
//! file changed (`--refuse-changed`) must leave nothing half done. After
//! [`restore`] the process holds exactly the saved descriptor numbers, each
//! reopened, recreated, shared again, taken from the restarting shell (standard
//! input, output and error that were a terminal, pipe or socket) or a placeholder
//! that fails every operation, plus the loader's own descriptor on the image,
//! moved above them (close-on-exec; closed before the jump). Everything else the
//! restarting shell passed in is closed.
//!
//! The shared file mappings of the section are checked here (the file must still
//! be there, the same inode) and mapped in phase two by `remap::restore_regions`.

use core::ffi::CStr;

use ckpt_image::Meta;
use ckpt_image::files::{FileRec, Files, MapRec, fkind, how, sock, why};
use ckpt_image::section::tag;
use ckpt_sys::{AtFlags, Errno, Fd, OFlags, c};

use crate::{Name, arch, die, msg};

/// Restart options, from the command line of the checkpoint file or the
/// environment of the restarting shell.
#[derive(Clone, Copy, Default)]
pub struct Opts {
    /// `--shell-stdio` / `CKPT_STDIO=shell`: descriptors 0, 1 and 2 are always
    /// the restarting shell's.
    pub shell_stdio: bool,
    /// `--refuse-changed` / `CKPT_CHANGED=refuse`: a file that is gone, replaced
    /// or shorter than its saved offset refuses the restart instead of a warning.
    pub refuse_changed: bool,
}

impl Opts {
    /// Read the options from the initial stack.
    pub fn from_stack(sp: usize) -> Opts {
        let mut o = Opts {
            shell_stdio: arch::env(sp, b"CKPT_STDIO") == Some(b"shell"),
            refuse_changed: arch::env(sp, b"CKPT_CHANGED") == Some(b"refuse"),
        };
        let mut i = 1;
        while let Some(a) = arch::arg(sp, i) {
            match a {
                b"--shell-stdio" => o.shell_stdio = true,
                b"--refuse-changed" => o.refuse_changed = true,
                _ => {}
            }
            i += 1;
        }
        o
    }
}

/// The FILES section of `meta` (validated by `Meta::parse`), if the image has one.
pub fn section<'a>(meta: &Meta<'a>) -> Option<Files<'a>> {
    Files::parse(meta.sections.get(tag::FILES)?.data).ok()
}

/// A path from the image as a C string.
struct CPath {
    buf: [u8; 4096 + 64],
    len: usize,
}

impl CPath {
    fn new(parts: &[&[u8]]) -> Option<CPath> {
        let mut p = CPath { buf: [0; 4096 + 64], len: 0 };
        for s in parts {
            if p.len + s.len() >= p.buf.len() || s.contains(&0) {
                return None;
            }
            p.buf[p.len..p.len + s.len()].copy_from_slice(s);
            p.len += s.len();
        }
        Some(p)
    }
    fn cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// What is wrong with a file to reopen, found before anything changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    Gone(Errno),
    Replaced,
    Shorter(u64),
}

fn change_of(files: &Files, r: &FileRec) -> Change {
    // /proc files have no lasting identity (new inodes, size 0): only reopened.
    if r.how != how::REOPEN || !matches!(r.kind, fkind::REG | fkind::DIR) || files.path(r).starts_with(b"/proc/") {
        return Change::None;
    }
    let Some(p) = CPath::new(&[files.path(r)]) else { return Change::Gone(Errno::ENAMETOOLONG) };
    match ckpt_sys::statx(Fd::CWD, p.cstr(), AtFlags(0)) {
        Err(e) => Change::Gone(e),
        Ok(s) if s.ino != r.ino || s.dev() != r.dev => Change::Replaced,
        Ok(s) if r.kind == fkind::REG && s.size < r.pos => Change::Shorter(s.size),
        Ok(_) => Change::None,
    }
}

/// `ckpt restart: NAME: descriptor N (PATH): `
fn fd_msg(name: &Name, files: &Files, r: &FileRec) -> ckpt_sys::msg::Msg {
    msg(name).s("descriptor ").u(r.fd as u64).s(" (").b(files.path(r)).s("): ")
}

fn say_change(name: &Name, files: &Files, r: &FileRec, ch: Change, refuse: bool) {
    let m = fd_msg(name, files, r);
    let m = if refuse { m } else { m.s("warning: ") };
    let m = match ch {
        Change::Gone(e) => m.s("the file is gone (").errno(e).s(")"),
        Change::Replaced => m.s("another file is at that path now"),
        Change::Shorter(s) => m.s("the file is now ").u(s).s(" bytes, shorter than the saved offset ").u(r.pos),
        Change::None => return,
    };
    let m = match (refuse, ch) {
        (true, _) => m.s("; not restarting (--refuse-changed)"),
        (false, Change::Gone(_)) => m.s("; it is a placeholder that fails every operation (EBADF)"),
        (false, Change::Replaced) => m.s("; reopened that file (--refuse-changed refuses instead)"),
        (false, _) => m.s("; reopened at the saved offset (--refuse-changed refuses instead)"),
    };
    m.emit();
}

/// Check the shared file mappings: each file must still be there, the same inode,
/// or the restart is refused (the program's writes would go elsewhere).
pub fn check_maps(name: &Name, files: &Files) {
    for m in files.maps() {
        let p = CPath::new(&[files.map_path(&m)]);
        let st = p.as_ref().ok_or(Errno::ENAMETOOLONG).and_then(|p| ckpt_sys::statx(Fd::CWD, p.cstr(), AtFlags(0)));
        let why = match st {
            Err(_) => "is gone",
            Ok(s) if s.ino != m.ino || s.dev() != m.dev => "was replaced by another file",
            Ok(_) => continue,
        };
        die(msg(name)
            .s("the file of the shared mapping ")
            .x(m.start)
            .s("-")
            .x(m.end)
            .s(" (")
            .b(files.map_path(&m))
            .s(") ")
            .s(why)
            .s("; its writes would no longer reach it: not restarting"));
    }
}

/// Open the file of shared mapping `m` for phase two: read-write if it can be
/// (an mprotect to writable must keep working), else read-only.
/// The program's descriptor (restored by now) of the deleted file or memfd that
/// MAP_SHARED region `g` maps, if the region is mapped from it again
/// (`ckpt_image::files::maps_content`).
pub fn held_content(files: &Files, meta: &Meta, g: &ckpt_image::Region) -> Option<Fd> {
    let name = meta.string((g.name_off, g.name_len));
    let r = files.files().find(|r| {
        r.how == how::CONTENT
            && files.path(r) == name
            && ckpt_image::files::maps_content(r, g.file_offset, g.end - g.start)
    })?;
    Some(Fd(r.fd as i32))
}

pub fn open_map_file(files: &Files, m: &MapRec) -> Result<Fd, Errno> {
    let p = CPath::new(&[files.map_path(m)]).ok_or(Errno::ENAMETOOLONG)?;
    let fd = ckpt_sys::openat(Fd::CWD, p.cstr(), c::O_RDWR | c::O_CLOEXEC, 0)
        .or_else(|_| ckpt_sys::openat(Fd::CWD, p.cstr(), c::O_RDONLY | c::O_CLOEXEC, 0))?;
    match ckpt_sys::fstat(fd) {
        Ok(s) if s.ino == m.ino && s.dev() == m.dev => Ok(fd),
        _ => {
            let _ = ckpt_sys::close(fd);
            Err(Errno::ESTALE)
        }
    }
}

/// Put `t` at number `fd` with the close-on-exec flag `cloexec`.
fn place(t: Fd, fd: u32, cloexec: u32) -> Result<(), Errno> {
    let target = Fd(fd as i32);
    if t == target {
        return ckpt_sys::fcntl(t, c::F_SETFD, cloexec as usize).map(drop);
    }
    let r = ckpt_sys::dup3(t, target, if cloexec != 0 { c::O_CLOEXEC } else { OFlags(0) });
    let _ = ckpt_sys::close(t);
    r.map(drop)
}

/// The placeholder: an O_PATH descriptor of /dev/null. read, write, ioctl, mmap
/// and the rest fail with EBADF; it is not a directory (fchdir fails) and names
/// no file of the program.
fn placeholder() -> Result<Fd, Errno> {
    ckpt_sys::openat(Fd::CWD, c"/dev/null", c::O_PATH | c::O_CLOEXEC, 0)
}

/// Flags to reopen with: the saved status flags without the ones that create or
/// truncate.
fn open_flags(r: &FileRec) -> OFlags {
    OFlags(r.flags & !(c::O_CREAT | c::O_EXCL | c::O_TRUNC).0) | c::O_NOCTTY | c::O_CLOEXEC
}

pub fn reopen(files: &Files, r: &FileRec) -> Result<Fd, Errno> {
    let path = if r.kind == fkind::TTY { &b"/dev/tty"[..] } else { files.path(r) };
    let p = CPath::new(&[path]).ok_or(Errno::ENAMETOOLONG)?;
    const O_DIRECT: u32 = 0o40000;
    let t = match ckpt_sys::openat(Fd::CWD, p.cstr(), open_flags(r), 0) {
        // A file system that refuses O_DIRECT now: the same file without it.
        Err(Errno::EINVAL) if r.flags & O_DIRECT != 0 => {
            ckpt_sys::openat(Fd::CWD, p.cstr(), OFlags(open_flags(r).0 & !O_DIRECT), 0)?
        }
        x => x?,
    };
    if r.pos != 0
        && r.flags & c::O_PATH.0 == 0
        && matches!(r.kind, fkind::REG | fkind::DIR)
        && let Err(e) = ckpt_sys::lseek(t, r.pos, c::SEEK_SET)
    {
        let _ = ckpt_sys::close(t);
        return Err(e);
    }
    Ok(t)
}

/// A new unlinked file holding the saved content of a deleted file, opened with
/// the saved flags at the saved offset.
pub fn recreate(files: &Files, r: &FileRec) -> Result<Fd, Errno> {
    let path = files.path(r);
    let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
    let dir = match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => &b"/"[..],
        Some(i) => &path[..i],
    };
    let mode = r.mode & 0o7777;
    let mut tmp = Err(Errno::ENOENT);
    // A memfd comes back as a memfd of the same name, with its seals.
    let memfd = files.path(r).strip_prefix(b"/memfd:").map(|n| n.strip_suffix(b" (deleted)").unwrap_or(n));
    if let Some(n) = memfd.and_then(|n| CPath::new(&[n])) {
        const MFD_CLOEXEC: u32 = 1;
        const MFD_ALLOW_SEALING: u32 = 2;
        tmp = ckpt_sys::memfd_create(n.cstr(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    for d in [dir, &b"/tmp"[..], &b"/dev/shm"[..]] {
        if tmp.is_ok() {
            break;
        }
        let Some(p) = CPath::new(&[d]) else { continue };
        tmp = ckpt_sys::openat(Fd::CWD, p.cstr(), c::O_TMPFILE | c::O_RDWR | c::O_CLOEXEC, mode | 0o600);
        if tmp.is_ok() {
            break;
        }
    }
    let tmp = tmp?;
    let fill = (|| {
        ckpt_sys::write_all(tmp, files.content(r))?;
        // The file's size as it was (the content may be cut at the saved length).
        let _ = ckpt_sys::fchmod(tmp, mode);
        // Its own description with the saved flags (O_APPEND, write-only...).
        let mut num = [0u8; 32];
        let m = ckpt_sys::msg::Msg::new().u(tmp.0 as u64);
        let digits = m.as_bytes();
        num[..digits.len()].copy_from_slice(digits);
        let p = CPath::new(&[b"/proc/self/fd/", &num[..digits.len()]]).ok_or(Errno::ENAMETOOLONG)?;
        let t = ckpt_sys::openat(Fd::CWD, p.cstr(), open_flags(r), 0)?;
        if let Err(e) = ckpt_sys::lseek(t, r.pos, c::SEEK_SET) {
            let _ = ckpt_sys::close(t);
            return Err(e);
        }
        let seals = (r.mode >> 16) & 0xff;
        if memfd.is_some() && seals != 0 {
            let _ = ckpt_sys::fcntl(t, c::F_ADD_SEALS, seals as usize);
        }
        Ok(t)
    })();
    let _ = ckpt_sys::close(tmp);
    fill
}

/// Take the saved locks of `r` again (they went with the old process); say each
/// one that cannot be (another process holds it now).
fn relock(name: &Name, files: &Files, r: &FileRec) {
    let fd = Fd(r.fd as i32);
    for k in 0..r.data_len as usize / 24 {
        let (kind, start, end) = (files.word(r, 3 * k), files.word(r, 3 * k + 1), files.word(r, 3 * k + 2));
        let write = kind & 0x100 != 0;
        let res = match kind & 0xff {
            1 => ckpt_sys::flock(fd, (if write { 2 } else { 1 }) | 4), // LOCK_EX / LOCK_SH, LOCK_NB
            k => {
                let len = if end == u64::MAX { 0 } else { end.saturating_sub(start) + 1 };
                ckpt_sys::fcntl_setlk(fd, k == 3, write as u16, start, len)
            }
        };
        if let Err(e) = res {
            fd_msg(name, files, r)
                .s("warning: could not take its ")
                .s(if kind & 0xff == 1 { "flock" } else { "record" })
                .s(" lock again: ")
                .errno(e)
                .s("; the program goes on without it")
                .emit();
        }
    }
}

/// `/proc/self/fd/N`.
fn proc_fd(fd: u32) -> Option<CPath> {
    let m = ckpt_sys::msg::Msg::new().u(fd as u64);
    CPath::new(&[b"/proc/self/fd/", m.as_bytes()])
}

/// A descriptor for pipe record `r`: the first record of a pipe makes a new
/// pipe (with the saved bytes queued in it) and keeps its own end; the others
/// open the pipe again through the first one's descriptor, which is already in
/// place (an anonymous pipe opens like a FIFO through /proc). The saved status
/// flags (O_NONBLOCK...) are set last.
fn pipe_end(files: &Files, r: &FileRec, top: u32) -> Result<Fd, Errno> {
    let acc = r.flags & c::O_ACCMODE.0;
    let t = if r.kind == fkind::FIFO {
        fifo_end(files, r, top)?
    } else if r.share == ckpt_image::files::NO_SHARE {
        let (pr, pw) = ckpt_sys::pipe2(c::O_CLOEXEC | c::O_NONBLOCK)?;
        // Above every saved number, so that placing one end cannot close the other.
        let (pr, pw) = (lift(pr, top)?, lift(pw, top)?);
        let data = files.content(r);
        if data.len() > 65536 {
            let _ = ckpt_sys::fcntl(pw, c::F_SETPIPE_SZ, data.len());
        }
        let queued = ckpt_sys::write_all(pw, data);
        let (mine, other) = if acc == c::O_RDONLY.0 { (pr, pw) } else { (pw, pr) };
        let _ = ckpt_sys::close(other);
        if let Err(e) = queued {
            let _ = ckpt_sys::close(mine);
            return Err(e);
        }
        mine
    } else {
        let first = files.file(r.share as usize).map_or(0, |s| s.fd);
        let p = proc_fd(first).ok_or(Errno::ENAMETOOLONG)?;
        ckpt_sys::openat(Fd::CWD, p.cstr(), OFlags(acc) | c::O_NONBLOCK | c::O_CLOEXEC, 0)?
    };
    if let Err(e) = ckpt_sys::fcntl(t, c::F_SETFL, (r.flags & !c::O_ACCMODE.0) as usize) {
        let _ = ckpt_sys::close(t);
        return Err(e);
    }
    Ok(t)
}

/// An end of a pipe between processes of a tree: the end the root made (see
/// `tree::Pipes`), shared like the inherited end it was; the saved status flags
/// set on it.
fn tree_pipe_end(r: &FileRec, pipes: &crate::tree::Pipes, top: u32) -> Result<Fd, Errno> {
    let [rd, wr] = pipes.find(r.ino).ok_or(Errno::EBADF)?;
    let end = if r.flags & c::O_ACCMODE.0 == c::O_RDONLY.0 { rd } else { wr };
    let t = Fd(ckpt_sys::fcntl(Fd(end), c::F_DUPFD_CLOEXEC, top as usize + 1)? as i32);
    if let Err(e) = ckpt_sys::fcntl(t, c::F_SETFL, (r.flags & !c::O_ACCMODE.0) as usize) {
        let _ = ckpt_sys::close(t);
        return Err(e);
    }
    Ok(t)
}

/// An end of a FIFO, opened by its path without blocking: a write end with no
/// reader yet gets a reader of our own for the moment of the open (the program's
/// reader, if it had one, comes with its own record). The first record of the
/// FIFO puts the saved bytes back through a writer.
fn fifo_end(files: &Files, r: &FileRec, top: u32) -> Result<Fd, Errno> {
    let acc = r.flags & c::O_ACCMODE.0;
    let p = CPath::new(&[files.path(r)]).ok_or(Errno::ENAMETOOLONG)?;
    let open = |a: u32| {
        ckpt_sys::openat(Fd::CWD, p.cstr(), OFlags(a) | c::O_NONBLOCK | c::O_CLOEXEC, 0).and_then(|t| lift(t, top))
    };
    let reader = open(c::O_RDONLY.0)?;
    let t = if acc == c::O_RDONLY.0 { Ok(reader) } else { open(acc) };
    let data = files.content(r);
    if t.is_ok() && !data.is_empty() {
        let w = if acc == c::O_RDONLY.0 { open(c::O_WRONLY.0) } else { t };
        if let Ok(w) = w {
            if data.len() > 65536 {
                let _ = ckpt_sys::fcntl(w, c::F_SETPIPE_SZ, data.len());
            }
            let _ = ckpt_sys::write_all(w, data);
            if acc == c::O_RDONLY.0 {
                let _ = ckpt_sys::close(w);
            }
        }
    }
    if acc != c::O_RDONLY.0 {
        let _ = ckpt_sys::close(reader);
    }
    t
}

/// Move `t` above `top` (so that no saved number is taken meanwhile).
fn lift(t: Fd, top: u32) -> Result<Fd, Errno> {
    if t.0 as u32 > top {
        return Ok(t);
    }
    let n = ckpt_sys::fcntl(t, c::F_DUPFD_CLOEXEC, top as usize + 1);
    let _ = ckpt_sys::close(t);
    n.map(|n| Fd(n as i32))
}

/// Whether `fd` is open in this process.
fn is_open(fd: u32) -> bool {
    ckpt_sys::fcntl(Fd(fd as i32), c::F_GETFD, 0).is_ok()
}

/// Restore the descriptor table. `image` is the loader's descriptor on the
/// checkpoint file; returns its new number (above every saved descriptor).
pub fn restore(name: &Name, files: &Files, opts: Opts, image: Fd, pipes: &crate::tree::Pipes, meta: &Meta) -> Fd {
    // A pipe of a tree whose other end is not in the tree (the restarting
    // shell's pipe at 0, 1 or 2 in `ckpt --tree sh -c 'a | b' | c`) is the
    // restarting shell's descriptor, as in a single process's image.
    let tree_pipe = |r: &FileRec| r.kind == fkind::PIPE && r.how == how::PIPE && pipes.find(r.ino).is_some();
    let outside_stdio = |r: &FileRec| r.how == how::PIPE && r.why == why::OUTSIDE && r.fd <= 2 && !tree_pipe(r);
    let shell =
        |r: &FileRec| r.how == how::SHELL || (opts.shell_stdio && r.fd <= 2) || (pipes.lo != 0 && outside_stdio(r));
    // First every line the user should see, while descriptor 2 is still the
    // restarting shell's; and the refusal, before anything changes.
    let mut refused = false;
    for r in files.files() {
        let ch = change_of(files, &r);
        // A memfd or deleted file that a MAP_SHARED region maps too: the two come
        // back as separate copies (said at checkpoint time too).
        if r.how == how::CONTENT
            && let Some(g) = meta.regions().find(|g| {
                g.kind == ckpt_image::kind::SHARED
                    && meta.string((g.name_off, g.name_len)) == files.path(&r)
                    && !ckpt_image::files::maps_content(&r, g.file_offset, g.end - g.start)
            })
        {
            fd_msg(name, files, &r)
                .s("warning: it is also mapped shared at ")
                .x(g.start)
                .s(": the descriptor and the mapping are separate copies now (a write through one no longer shows \
                    in the other)")
                .emit();
        }
        if shell(&r) {
            if !is_open(r.fd) {
                fd_msg(name, files, &r)
                    .s("warning: the restarting shell has no descriptor ")
                    .u(r.fd as u64)
                    .s(" to give; it is a placeholder that fails every operation (EBADF)")
                    .emit();
            }
        } else if ch != Change::None {
            say_change(name, files, &r, ch, opts.refuse_changed);
            refused |= opts.refuse_changed;
        } else if r.how == how::PIPE && r.why == why::OUTSIDE && !tree_pipe(&r) {
            fd_msg(name, files, &r)
                .s("warning: the other end of this pipe was outside the process: it is closed \
                    (reads see end of file, writes fail with EPIPE)")
                .emit();
        } else if r.how == how::REOPEN && r.why == why::GENERATED {
            fd_msg(name, files, &r)
                .s("warning: a file the kernel writes as it is read, read partway: opened again at offset ")
                .u(r.pos)
                .s(", where the text is this process's and need not continue what was read")
                .emit();
        } else if is_socket(files, &r, sock::DROPPED)
            || (is_socket(files, &r, sock::TREE_PEER) && pipes.socket_end(r.ino).is_none())
        {
            fd_msg(name, files, &r)
                .s("warning: a connected socket whose peer is not restored: it fails like a dropped connection \
                    (reads see end of file, writes fail with EPIPE)")
                .emit();
        } else if is_socket(files, &r, sock::QUEUED) && files.word(&r, sock::LOST) > 0 {
            fd_msg(name, files, &r)
                .s("warning: a connection that was waiting to be accepted is made again, but the ")
                .u(files.word(&r, sock::LOST))
                .s(" bytes it had sent are lost")
                .emit();
        } else if r.how == how::PLACEHOLDER {
            let what = match r.why {
                why::TOO_BIG => "a deleted file too large for the image",
                why::UNREADABLE => "a deleted file that could not be read",
                _ => kind_name(r.kind),
            };
            fd_msg(name, files, &r)
                .s("warning: ")
                .s(what)
                .s(", not restored: it is a placeholder that fails every operation (EBADF)")
                .emit();
        }
    }
    if refused {
        die(msg(name).s("files changed since the checkpoint; not restarting"));
    }
    check_maps(name, files);

    // The image descriptor goes above every saved number.
    let top = files.files().last().map_or(2, |r| r.fd.max(2));
    let img = match ckpt_sys::fcntl(image, c::F_DUPFD_CLOEXEC, top as usize + 1) {
        Ok(n) => Fd(n as i32),
        Err(e) => die(msg(name)
            .s("the program had descriptor ")
            .u(top as u64)
            .s(" open, above this shell's limit of open files (ulimit -n): ")
            .errno(e)),
    };
    let _ = ckpt_sys::close(image);

    // Nothing foreign: close everything but the shell's standard descriptors the
    // program takes over, and the image.
    for fd in 0..=2u32 {
        let keep = opts.shell_stdio || files.files().any(|r| r.fd == fd && shell(&r));
        if !keep {
            let _ = ckpt_sys::close(Fd(fd as i32));
        }
    }
    let _ = ckpt_sys::close_range(3, img.0 as u32 - 1, 0);
    // A tree's pipes and shared files stay until this process has taken its own.
    let (lo, hi) = pipes.held();
    if hi > lo && lo > img.0 {
        let _ = ckpt_sys::close_range(img.0 as u32 + 1, lo as u32 - 1, 0);
        let _ = ckpt_sys::close_range(hi as u32, u32::MAX, 0);
    } else {
        let _ = ckpt_sys::close_range(img.0 as u32 + 1, u32::MAX, 0);
    }

    // Then each descriptor in place. A failure here that the checks above could
    // not foresee is said on the descriptor 2 of the moment (the program's own,
    // once it is back).
    for (i, r) in files.files().enumerate() {
        let tree_socket = (r.how == how::NEW && r.kind == fkind::SOCKET).then(|| pipes.socket_end(r.ino)).flatten();
        // The second end of a socket pair was put in place with the first.
        if is_socket(files, &r, sock::PAIR) && (files.word(&r, sock::OTHER) as usize) < i && tree_socket.is_none() {
            continue;
        }
        let fail = |what: &str, e: Errno| {
            fd_msg(name, files, &r)
                .s("warning: ")
                .s(what)
                .s(": ")
                .errno(e)
                .s("; it is a placeholder that fails every operation (EBADF)")
                .emit();
        };
        let got = if is_socket(files, &r, sock::CONNECTION) || is_socket(files, &r, sock::QUEUED) {
            // Made once every listening socket is back (below); meanwhile its
            // number is held.
            placeholder()
        } else if shell(&r) {
            if is_open(r.fd) {
                let _ = ckpt_sys::fcntl(Fd(r.fd as i32), c::F_SETFD, r.cloexec as usize);
                continue;
            }
            placeholder()
        } else if let Some(end) = tree_socket {
            // An end of a socket pair of the tree (`tree::make_sockets`).
            ckpt_sys::fcntl(end, c::F_DUPFD_CLOEXEC, 0).map(|n| Fd(n as i32)).and_then(|t| {
                ckpt_sys::fcntl(t, c::F_SETFL, (r.flags & c::O_NONBLOCK.0) as usize)?;
                Ok(t)
            })
        } else if let Some(one) = pipes.shared_file(r.fd).filter(|_| matches!(r.how, how::REOPEN | how::CONTENT)) {
            // The description other processes of the tree share (`tree::make_files`).
            ckpt_sys::fcntl(one, c::F_DUPFD_CLOEXEC, 0).map(|n| Fd(n as i32))
        } else {
            match r.how {
                how::REOPEN => match change_of(files, &r) {
                    Change::Gone(_) => placeholder(),
                    _ => reopen(files, &r).or_else(|e| {
                        fail("cannot open it again", e);
                        placeholder()
                    }),
                },
                how::CONTENT => recreate(files, &r).or_else(|e| {
                    fail("cannot recreate the deleted file", e);
                    placeholder()
                }),
                how::NEW => make_new(name, files, &r, top).or_else(|e| {
                    fail("cannot make it again", e);
                    placeholder()
                }),
                how::PIPE if tree_pipe(&r) => tree_pipe_end(&r, pipes, top).or_else(|e| {
                    fail("cannot join the pipe of the tree again", e);
                    placeholder()
                }),
                how::PIPE => pipe_end(files, &r, top).or_else(|e| {
                    fail("cannot make the pipe again", e);
                    placeholder()
                }),
                how::DUP => {
                    let first = files.file(r.share as usize).map_or(0, |s| s.fd);
                    ckpt_sys::fcntl(Fd(first as i32), c::F_DUPFD_CLOEXEC, 0).map(|n| Fd(n as i32))
                }
                _ => placeholder(),
            }
        };
        match got.and_then(|t| place(t, r.fd, r.cloexec)) {
            // (A terminal's data is its settings, not locks.)
            Ok(()) if r.how == how::REOPEN && r.kind != fkind::TTY && r.data_len > 0 => relock(name, files, &r),
            Ok(()) => {}
            Err(e) => die(fd_msg(name, files, &r).s("cannot put the descriptor in place: ").errno(e)),
        }
    }
    if hi > lo && lo > img.0 {
        pipes.close_taken();
    }
    connections(name, files, top);
    terminals(name, files);
    // The interest lists last, once every descriptor they name is in place.
    for r in files.files().filter(|r| r.how == how::NEW && r.kind == fkind::EPOLL) {
        for k in 0..r.data_len as usize / 24 {
            let (tfd, events, data) = (files.word(&r, 3 * k), files.word(&r, 3 * k + 1), files.word(&r, 3 * k + 2));
            let ev = ckpt_sys::EpollEvent { events: events as u32, data };
            const EPOLL_CTL_ADD: u32 = 1;
            if let Err(e) = ckpt_sys::epoll_ctl(Fd(r.fd as i32), EPOLL_CTL_ADD, Fd(tfd as i32), &ev) {
                fd_msg(name, files, &r)
                    .s("warning: cannot watch descriptor ")
                    .u(tfd)
                    .s(" again: ")
                    .errno(e)
                    .s("; this epoll instance no longer reports it")
                    .emit();
            }
        }
    }
    img
}

/// A socket made anew (see `ckpt_image::files::fkind::SOCKET`): a listening one
/// bound to its address again (a UNIX socket's stale file of the same inode is
/// removed first) and listening; a plain or datagram one with its options, bound
/// (and a datagram one connected) again; a connected stream socket whose peer is
/// not restored becomes one end of a socket pair whose other end is closed, so it
/// fails like a dropped connection (reads see end of file, writes EPIPE).
fn socket(files: &Files, r: &FileRec, top: u32) -> Result<Fd, Errno> {
    const SOCK_NONBLOCK: u32 = 0o4000;
    const SOCK_CLOEXEC: u32 = 0o2000000;
    let w = |i| files.word(r, i);
    let d = files.content(r);
    let (addr, peer) = (&d[88..88 + (w(9) as usize).min(128)], &d[216..216 + (w(10) as usize).min(128)]);
    let flags = SOCK_CLOEXEC | if r.flags & c::O_NONBLOCK.0 != 0 { SOCK_NONBLOCK } else { 0 };
    let (domain, ty, proto, state) = (w(0) as u32, w(1) as u32, w(2) as u32, w(sock::STATE));
    if state == sock::PAIR {
        return socket_pair(files, r, ty, top);
    }
    // (A pair with another process of the tree, when no process of the
    // restored tree holds the other end: a dropped connection too.)
    if state == sock::DROPPED || state == sock::TREE_PEER {
        let (a, b) = ckpt_sys::socketpair(1, ty | flags, 0)?;
        let _ = ckpt_sys::close(b);
        return Ok(a);
    }
    let s = ckpt_sys::socket(domain, ty | flags, proto)?;
    let r2 = (|| {
        options(files, r, s)?;
        if bound(domain, addr) {
            if domain == 1 && addr.len() > 2 && addr[2] != 0 {
                // A UNIX socket file left by the checkpointed process.
                let path = &addr[2..];
                let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
                if let Some(p) = CPath::new(&[path])
                    && ckpt_sys::statx(Fd::CWD, p.cstr(), c::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| st.kind() == ckpt_sys::s_if::SOCK)
                {
                    let _ = ckpt_sys::unlinkat(Fd::CWD, p.cstr(), AtFlags(0));
                }
            }
            ckpt_sys::bind(s, addr)?;
        }
        if state == sock::LISTENING {
            ckpt_sys::listen(s, 4096)?;
        } else if !peer.is_empty() {
            ckpt_sys::connect(s, peer)?;
        }
        Ok(())
    })();
    match r2 {
        Ok(()) => Ok(s),
        Err(e) => {
            let _ = ckpt_sys::close(s);
            Err(e)
        }
    }
}

/// Both ends of a UNIX socket pair (state 3; `r` is the first): a new pair, the
/// bytes queued for each end sent from the other, the second end put at its
/// number with its flags now; the first is returned to be put in place.
fn socket_pair(files: &Files, r: &FileRec, ty: u32, top: u32) -> Result<Fd, Errno> {
    const SOCK_CLOEXEC: u32 = 0o2000000;
    let peer = files.file(files.word(r, 10) as usize).ok_or(Errno::EINVAL)?;
    let (a, b) = ckpt_sys::socketpair(1, ty | SOCK_CLOEXEC, 0)?;
    let (a, b) = (lift(a, top)?, lift(b, top)?);
    let queued = |x: &FileRec| files.content(x).get(ckpt_image::files::SOCKET_DATA_LEN as usize..).unwrap_or(&[]);
    let r2 = (|| {
        send_queued(b, ty, queued(r))?;
        send_queued(a, ty, queued(&peer))?;
        for (t, x) in [(a, r), (b, &peer)] {
            ckpt_sys::fcntl(t, c::F_SETFL, (x.flags & c::O_NONBLOCK.0) as usize)?;
        }
        place(b, peer.fd, peer.cloexec)
    })();
    match r2 {
        Ok(()) => Ok(a),
        Err(e) => {
            let _ = ckpt_sys::close(a);
            let _ = ckpt_sys::close(b);
            Err(e)
        }
    }
}

/// Whether `r` is a socket made anew in `state` (`ckpt_image::files::sock`).
fn is_socket(files: &Files, r: &FileRec, state: u64) -> bool {
    r.how == how::NEW && r.kind == fkind::SOCKET && files.word(r, sock::STATE) == state
}

/// A socket's options again: SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE,
/// TCP_NODELAY and SO_RCVBUF as saved.
fn options(files: &Files, r: &FileRec, s: Fd) -> Result<(), Errno> {
    const SOL_SOCKET: u32 = 1;
    let w = |i| files.word(r, i);
    ckpt_sys::setsockopt_int(s, SOL_SOCKET, 2, (w(4) != 0) as i32)?; // SO_REUSEADDR
    for (name, v) in [(15u32, w(5)), (9, w(6))] {
        if v != 0 {
            ckpt_sys::setsockopt_int(s, SOL_SOCKET, name, v as i32)?;
        }
    }
    if w(7) != 0 {
        ckpt_sys::setsockopt_int(s, 6, 1, 1)?; // TCP_NODELAY
    }
    if w(8) != 0 {
        // The kernel reports twice what was asked (socket(7)).
        let _ = ckpt_sys::setsockopt_int(s, SOL_SOCKET, 8, (w(8) / 2) as i32);
    }
    Ok(())
}

/// The connections whose both ends are in the image, once every other
/// descriptor (the listening sockets among them) is in place: each TCP
/// connection the process had made to itself ([`sock::CONNECTION`]), then each
/// connection that was waiting in one of its listening sockets' queues
/// ([`sock::QUEUED`]), which waits there again. One that cannot be made is said
/// and stays a placeholder.
fn connections(name: &Name, files: &Files, top: u32) {
    let fail = |r: &FileRec, e: Errno| {
        fd_msg(name, files, r)
            .s("warning: cannot make the connection again: ")
            .errno(e)
            .s("; it is a placeholder that fails every operation (EBADF)")
            .emit();
    };
    for (i, r) in files.files().enumerate() {
        if !is_socket(files, &r, sock::CONNECTION) || (files.word(&r, sock::OTHER) as usize) < i {
            continue;
        }
        let Some(peer) = files.file(files.word(&r, sock::OTHER) as usize) else { continue };
        if let Err(e) = connection(name, files, &r, &peer, top) {
            fail(&r, e);
            fail(&peer, e);
        }
    }
    for r in files.files().filter(|r| is_socket(files, r, sock::QUEUED)) {
        if let Err(e) = queued(files, &r, top) {
            fail(&r, e);
        }
    }
}

/// A new socket for record `x` (blocking until it is in place), bound to its
/// own address again when `bind` and that address is free, connected to `to`;
/// if the address cannot be had, connected from another one (`Ok((s, false))`).
fn connect_from(files: &Files, x: &FileRec, to: &[u8], bind: bool, top: u32) -> Result<(Fd, bool), Errno> {
    const SOCK_CLOEXEC: u32 = 0o2000000;
    let (domain, ty, proto) = (files.word(x, 0) as u32, files.word(x, 1) as u32, files.word(x, 2) as u32);
    let addr = files.sock_addr(x);
    if bind && bound(domain, addr) {
        let s = lift(ckpt_sys::socket(domain, ty | SOCK_CLOEXEC, proto)?, top)?;
        // SO_REUSEADDR for the bind: the old connection may linger (TIME_WAIT).
        let ok = ckpt_sys::setsockopt_int(s, 1, 2, 1).is_ok()
            && ckpt_sys::bind(s, addr).is_ok()
            && ckpt_sys::connect(s, to).is_ok();
        if ok {
            return Ok((s, true));
        }
        let _ = ckpt_sys::close(s);
    }
    let s = lift(ckpt_sys::socket(domain, ty | SOCK_CLOEXEC, proto)?, top)?;
    match ckpt_sys::connect(s, to) {
        Ok(()) => Ok((s, !bind || !bound(domain, addr))),
        Err(e) => {
            let _ = ckpt_sys::close(s);
            Err(e)
        }
    }
}

/// The connection `l` (listening) accepts from the socket whose address is
/// `from`; one from elsewhere that slips in first is closed, and said.
fn accept_from(name: &Name, files: &Files, l: &FileRec, lfd: Fd, from: &[u8], top: u32) -> Result<Fd, Errno> {
    const SOCK_CLOEXEC: u32 = 0o2000000;
    for _ in 0..16 {
        let s = match ckpt_sys::accept4(lfd, SOCK_CLOEXEC) {
            Ok(s) => lift(s, top)?,
            Err(Errno::EAGAIN | Errno::EINTR) => {
                let mut fds = [ckpt_sys::task::PollFd { fd: lfd.0, events: 1, revents: 0 }];
                if ckpt_sys::task::ppoll(&mut fds, Some(2000))? == 0 {
                    return Err(Errno::ETIMEDOUT);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut got = [0u8; 128];
        let n = ckpt_sys::getpeername(s, &mut got).unwrap_or(0);
        if &got[..n.min(128)] == from {
            return Ok(s);
        }
        let _ = ckpt_sys::close(s);
        fd_msg(name, files, l)
            .s("warning: a connection from elsewhere reached this listening socket while the restart remade its \
                own; it was closed")
            .emit();
    }
    Err(Errno::EAGAIN)
}

/// Both ends of a TCP connection the process had made to itself
/// ([`sock::CONNECTION`]): the end whose address a listening socket of the
/// table serves (else the second) is accepted from it again (else from a
/// listening socket made for this on that address), the other connects to it
/// from its own address where it is free; each end gets the bytes queued for it
/// from the other, its options and flags, and its number.
fn connection(name: &Name, files: &Files, a: &FileRec, b: &FileRec, top: u32) -> Result<(), Errno> {
    const SOCK_CLOEXEC: u32 = 0o2000000;
    let domain = files.word(a, 0);
    let listener = |x: &FileRec| {
        files.files().find(|l| {
            is_socket(files, l, sock::LISTENING)
                && files.word(l, 0) == domain
                && ckpt_image::files::serves(domain, files.sock_addr(l), files.sock_addr(x))
        })
    };
    let (srv, cli, lst) = match (listener(a), listener(b)) {
        (_, Some(l)) => (b, a, Some(l)),
        (Some(l), None) => (a, b, Some(l)),
        (None, None) => (b, a, None),
    };
    // The listening end, and the address to connect to.
    let mut to = [0u8; 128];
    let (lfd, made) = match lst {
        Some(l) => (Fd(l.fd as i32), None),
        None => {
            let t = lift(ckpt_sys::socket(domain as u32, 1 | SOCK_CLOEXEC, 0)?, top)?;
            let _ = ckpt_sys::setsockopt_int(t, 1, 2, 1);
            let mut any = [0u8; 128];
            let own = files.sock_addr(srv);
            any[..own.len()].copy_from_slice(own);
            any[2..4].fill(0); // the same address, any port
            let r = ckpt_sys::bind(t, own)
                .or_else(|_| ckpt_sys::bind(t, &any[..own.len()]))
                .and_then(|()| ckpt_sys::listen(t, 1));
            if let Err(e) = r {
                let _ = ckpt_sys::close(t);
                return Err(e);
            }
            (t, Some(t))
        }
    };
    // The accepted end's own address: the listening socket's that serves it, or
    // what the one made for it could get.
    let to: &[u8] = match made {
        None => files.sock_addr(srv),
        Some(t) => {
            let n = ckpt_sys::getsockname(t, &mut to).unwrap_or(0).min(128);
            &to[..n]
        }
    };
    let same_srv = to == files.sock_addr(srv);
    let r = (|| {
        let (c, same_cli) = connect_from(files, cli, to, true, top)?;
        let mut mine = [0u8; 128];
        let n = ckpt_sys::getsockname(c, &mut mine).unwrap_or(0).min(128);
        let listening = lst.unwrap_or(*srv);
        let s = match accept_from(name, files, &listening, lfd, &mine[..n], top) {
            Ok(s) => s,
            Err(e) => {
                let _ = ckpt_sys::close(c);
                return Err(e);
            }
        };
        let r2 = (|| {
            let queued =
                |x: &FileRec| files.content(x).get(ckpt_image::files::SOCKET_DATA_LEN as usize..).unwrap_or(&[]);
            ckpt_sys::write_all(s, queued(cli))?;
            ckpt_sys::write_all(c, queued(srv))?;
            for (t, x) in [(c, cli), (s, srv)] {
                options(files, x, t)?;
                ckpt_sys::fcntl(t, c::F_SETFL, (x.flags & c::O_NONBLOCK.0) as usize)?;
            }
            Ok(())
        })();
        if let Err(e) = r2 {
            let _ = ckpt_sys::close(c);
            let _ = ckpt_sys::close(s);
            return Err(e);
        }
        place(c, cli.fd, cli.cloexec)?;
        place(s, srv.fd, srv.cloexec)?;
        if !(same_cli && same_srv) {
            fd_msg(name, files, cli)
                .s("warning: this connection to descriptor ")
                .u(srv.fd as u64)
                .s(" of the process comes back connected, but between other addresses (theirs were taken)")
                .emit();
        }
        Ok(())
    })();
    if let Some(t) = made {
        let _ = ckpt_sys::close(t);
    }
    r
}

/// A connection that was waiting in the queue of one of the process's
/// listening sockets ([`sock::QUEUED`]), connected to it again from its own
/// address where it is free: it waits in that queue again.
fn queued(files: &Files, r: &FileRec, top: u32) -> Result<(), Errno> {
    let (s, _) = connect_from(files, r, files.sock_peer(r), files.word(r, 0) != 1, top)?;
    let r2 = options(files, r, s).and_then(|()| ckpt_sys::fcntl(s, c::F_SETFL, (r.flags & c::O_NONBLOCK.0) as usize));
    if let Err(e) = r2 {
        let _ = ckpt_sys::close(s);
        return Err(e);
    }
    place(s, r.fd, r.cloexec)
}

/// Send what was queued for the other end of a socket pair of type `ty` through
/// `t`: a stream's bytes, or each message of a pair of datagram or record
/// sockets as it was queued (saved as a u32 length then its bytes).
pub fn send_queued(t: Fd, ty: u32, q: &[u8]) -> Result<(), Errno> {
    const SOCK_STREAM: u32 = 1;
    if ty == SOCK_STREAM {
        return ckpt_sys::write_all(t, q);
    }
    let mut at = 0;
    while at + 4 <= q.len() {
        let n = u32::from_le_bytes([q[at], q[at + 1], q[at + 2], q[at + 3]]) as usize;
        let m = q.get(at + 4..at + 4 + n).ok_or(Errno::EINVAL)?;
        ckpt_sys::write(t, m)?;
        at += 4 + n;
    }
    Ok(())
}

/// Whether a socket address names something (a port, a path, an abstract name),
/// rather than the unbound wildcard.
fn bound(domain: u32, a: &[u8]) -> bool {
    match domain {
        1 => a.len() > 2,
        2 => a.len() >= 4 && (a[2] != 0 || a[3] != 0),
        _ => a.len() >= 4 && (a[2] != 0 || a[3] != 0),
    }
}

/// The terminal settings (raw mode, echo...) put back on each terminal
/// descriptor that is a terminal again (the restarting one), the process group
/// made the foreground group again if it was (it can then read the terminal, and
/// Ctrl-C and Ctrl-Z reach it), and a SIGWINCH queued if the window size differs
/// or the program is a full-screen one (see below)
/// (delivered once the program's handlers and mask are back).
fn terminals(name: &Name, files: &Files) {
    let mut winch = false;
    for r in files.files().filter(|r| r.kind == fkind::TTY && r.data_len == ckpt_image::files::TTY_DATA_LEN) {
        let fd = Fd(r.fd as i32);
        if ckpt_sys::ioctl_tcgets(fd).is_err() {
            continue;
        }
        let d = files.content(&r);
        let mut t = [0u8; 36];
        t.copy_from_slice(&d[..36]);
        if let Err(e) = ckpt_sys::ioctl_tcsets(fd, &t) {
            fd_msg(name, files, &r).s("warning: cannot restore the terminal settings: ").errno(e).emit();
        }
        let saved = [0, 1, 2, 3].map(|k| u16::from_le_bytes([d[40 + 2 * k], d[41 + 2 * k]]));
        winch |= ckpt_sys::ioctl_tiocgwinsz(fd).is_ok_and(|now| now != saved);
        // A full-screen program (the terminal's foreground, not in canonical
        // mode) is on a screen that is not the one it drew: SIGWINCH tells it to
        // look again, as a resize does (less and vim redraw then, whether or
        // not the size changed: the tmux tests in tests/files.rs).
        const ICANON: u32 = 0o2;
        let lflag = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
        winch |= d[48] != 0 && lflag & ICANON == 0;
        if d[48] != 0
            && let Ok(g) = ckpt_sys::getpgid(0)
            && ckpt_sys::ioctl_tiocgpgrp(fd).ok() != Some(g)
        {
            // Every signal is blocked, so SIGTTOU does not stop us here.
            let _ = ckpt_sys::ioctl_tiocspgrp(fd, g);
        }
    }
    if winch {
        const SIGWINCH: u32 = 28;
        let _ = ckpt_sys::kill(ckpt_sys::getpid(), SIGWINCH);
    }
}

/// An eventfd, timerfd, signalfd or (empty: its interest list comes last) epoll
/// instance made anew from its saved parameters, with its saved flags.
fn make_new(name: &Name, files: &Files, r: &FileRec, top: u32) -> Result<Fd, Errno> {
    let w = |i| files.word(r, i);
    let flags = (c::O_CLOEXEC | c::O_NONBLOCK).0 & (r.flags | c::O_CLOEXEC.0);
    let t = match r.kind {
        fkind::EVENTFD => {
            const EFD_SEMAPHORE: u32 = 1;
            let t = ckpt_sys::eventfd2(0, flags | if w(1) != 0 { EFD_SEMAPHORE } else { 0 })?;
            if w(0) != 0 {
                ckpt_sys::write_all(t, &w(0).to_le_bytes())?;
            }
            t
        }
        fkind::TIMERFD => {
            let t = ckpt_sys::timerfd_create(w(0) as u32, flags)?;
            // The remaining time from now (the time between checkpoint and
            // restart does not count, as for the program's other timers).
            let mut its = [w(2) as i64, w(3) as i64, w(4) as i64, w(5) as i64];
            // A periodic timer whose last expiry is unread is not running (the
            // kernel re-arms it on read) and shows no time left: due again one
            // interval on.
            if its[2] == 0 && its[3] == 0 {
                (its[2], its[3]) = (its[0], its[1]);
            }
            if its[2] != 0 || its[3] != 0 {
                ckpt_sys::timerfd_settime(t, 0, &its)?;
            }
            if w(1) != 0 && ckpt_sys::ioctl_tfd_set_ticks(t, w(1)).is_err() {
                // A 32-bit process cannot set them (no compat ioctl): the
                // expirations come back as one, due at once.
                let _ = ckpt_sys::timerfd_settime(t, 0, &[its[0], its[1], 0, 1]);
                fd_msg(name, files, r)
                    .s("warning: its ")
                    .u(w(1))
                    .s(" unread expirations come back as one (TFD_IOC_SET_TICKS is refused here)")
                    .emit();
            }
            t
        }
        fkind::SIGNALFD => ckpt_sys::signalfd4(Fd(-1), w(0), flags)?,
        fkind::SOCKET => socket(files, r, top)?,
        fkind::INOTIFY => {
            let t = ckpt_sys::inotify_init1(flags)?;
            watch_again(name, files, r, t);
            t
        }
        _ => ckpt_sys::epoll_create1(c::O_CLOEXEC.0)?,
    };
    Ok(t)
}

/// The watches of inotify instance `r`, made again on `t` by path, each with
/// its watch descriptor: the kernel numbers a new watch one above the last it
/// gave, so the numbers in between are taken and given back on a memfd of our
/// own. What does not come back as it was is said: a watch whose path was not
/// found at checkpoint time, a path that names another file now, and the
/// events that were queued (they are lost).
fn watch_again(name: &Name, files: &Files, r: &FileRec, t: Fd) {
    const IN_MASK_CREATE: u32 = 0x1000_0000;
    const IN_MASK_ADD: u32 = 0x2000_0000;
    const IN_ACCESS: u32 = 1;
    // Above this many numbers to skip, the watch takes the next number instead.
    const MAX_SKIP: u64 = 1 << 16;
    let mut next = 1u64;
    let mut spare: Option<(Fd, CPath)> = None;
    for wt in files.watches(r) {
        let path = files.watch_path(&wt);
        let m = || fd_msg(name, files, r).s("warning: watch ").u(wt.wd);
        if path.is_empty() {
            m().s(": the path of its file (inode ")
                .u(wt.ino)
                .s(") was not found at checkpoint time; not watched")
                .emit();
            continue;
        }
        let Some(p) = CPath::new(&[path]) else { continue };
        while next < wt.wd && wt.wd - next <= MAX_SKIP {
            if spare.is_none() {
                let Ok(fd) = ckpt_sys::memfd_create(c"ckpt-inotify", c::MFD_CLOEXEC) else { break };
                let n = ckpt_sys::msg::Msg::new().u(fd.0 as u64);
                match CPath::new(&[b"/proc/self/fd/", n.as_bytes()]) {
                    Some(sp) => spare = Some((fd, sp)),
                    None => break,
                }
            }
            let Some((_, sp)) = &spare else { break };
            match ckpt_sys::inotify_add_watch(t, sp.cstr(), IN_ACCESS) {
                Ok(wd) => {
                    let _ = ckpt_sys::inotify_rm_watch(t, wd);
                    next = wd as u64 + 1;
                }
                Err(_) => break,
            }
        }
        let mask = (wt.mask as u32 & !(IN_MASK_ADD | IN_MASK_CREATE)) | IN_MASK_CREATE;
        match ckpt_sys::inotify_add_watch(t, p.cstr(), mask) {
            Ok(wd) => {
                next = wd as u64 + 1;
                if wd as u64 != wt.wd {
                    m().s(" (").b(path).s(") comes back as watch ").u(wd as u64).emit();
                }
                match ckpt_sys::statx(Fd::CWD, p.cstr(), AtFlags(0)) {
                    Ok(s) if s.ino == wt.ino && s.dev() == wt.dev => {
                        if s.ctime_ns != wt.ctime_ns {
                            m().s(" (")
                                .b(path)
                                .s("): the file changed while the program was not running; that change makes no \
                                   event (the next one does)")
                                .emit();
                        }
                    }
                    _ => m().s(" (").b(path).s("): another file is at that path now; it is the one watched").emit(),
                }
            }
            Err(e) => m().s(" (").b(path).s("): cannot watch it again: ").errno(e).emit(),
        }
    }
    if let Some((fd, _)) = spare {
        let _ = ckpt_sys::close(fd);
        // Each number given back queued an IN_IGNORED event the program must
        // not see: read them out (an event of a real watch that came in these
        // few microseconds goes with them, and is said).
        let mut others = 0u64;
        let mut buf = [0u8; 4096];
        while let Ok(n) = ckpt_sys::ioctl_fionread(t) {
            if n == 0 {
                break;
            }
            let Ok(got) = ckpt_sys::read(t, &mut buf) else { break };
            let mut at = 0;
            while at + 16 <= got {
                let word =
                    |i: usize| u32::from_le_bytes([buf[at + i], buf[at + i + 1], buf[at + i + 2], buf[at + i + 3]]);
                const IN_IGNORED: u32 = 0x8000;
                let real = files.watches(r).any(|w| w.wd == word(0) as u64);
                others += (real || word(4) != IN_IGNORED) as u64;
                at += 16 + word(12) as usize;
            }
        }
        if others > 0 {
            fd_msg(name, files, r)
                .s("warning: ")
                .u(others)
                .s(" events that came in during the restart are lost")
                .emit();
        }
    }
    if files.word(r, 0) > 0 {
        fd_msg(name, files, r)
            .s("warning: ")
            .u(files.word(r, 0))
            .s(" bytes of events queued at checkpoint time are lost")
            .emit();
    }
}

/// What a kind is called in messages.
fn kind_name(k: u32) -> &'static str {
    match k {
        fkind::PIPE => "a pipe",
        fkind::FIFO => "a FIFO",
        fkind::SOCKET => "a socket",
        fkind::ANON => "an anonymous-inode descriptor (fanotify, pidfd, userfaultfd...)",
        fkind::TTY => "a terminal",
        _ => "a special file",
    }
}
