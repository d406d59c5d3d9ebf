//! The descriptor table and the shared file mappings, captured into the FILES
//! section (`ckpt_image::files`; the design is in docs/files.md). The loader
//! restores them before it replaces the address space.
//!
//! Runs in `Kernel::capture`, with every signal blocked, on the checkpointing
//! thread, *before* the image file is created and before a continue-mode writer
//! is forked: the only descriptor of the runtime's own open meanwhile is the one
//! on /proc/self/fd that lists them, and it is left out. Memory comes from one
//! scratch mapping, kept until the next capture and left out of the image.
//!
//! For each descriptor: its name (`readlink /proc/self/fd/N`), its offset and
//! status flags (`/proc/self/fdinfo/N`), close-on-exec (`F_GETFD`), what it is
//! (`fstat`), and whether it shares its open file description with an earlier
//! one (`kcmp(KCMP_FILE)` for descriptors of the same inode). A file deleted while
//! open has its content copied into the section (at most
//! `ckpt_image::files::MAX_CONTENT` bytes in all).

use core::ffi::CStr;

use ckpt_image::files::{self as f, FileRec, Files as FilesView, FilesWriter, MapRec, fkind, how, sock, why};
use ckpt_image::section::tag;
use ckpt_sys::num::leading as num;
use ckpt_sys::scratch::{Scratch, Table};
use ckpt_sys::{Errno, Fd, Result, c, msg::Msg, s_if};

/// Longest path kept (PATH_MAX).
const PATH_MAX: usize = 4096;
/// Most descriptors recorded (above RLIMIT_NOFILE's usual hard limits).
const MAX_FDS: usize = 1 << 20;

/// The captured section payload.
pub struct Files {
    buf: Option<Scratch>,
    len: usize,
}

impl Files {
    /// Before the first capture.
    pub const EMPTY: Files = Files { buf: None, len: 0 };

    /// The scratch memory holding the payload (left out of the image).
    pub fn range(&self) -> (u64, u64) {
        self.buf.as_ref().map_or((0, 0), |b| b.range())
    }

    /// After a restart the payload's memory is not there any more (it was left
    /// out of the image): forget it without unmapping what might be there now.
    pub fn forget_after_restart(&mut self) {
        if let Some(b) = self.buf.take() {
            core::mem::forget(b);
        }
        self.len = 0;
    }

    /// The process ends after its checkpoint: close each TCP connection it had
    /// made to itself with a reset (SO_LINGER 0) rather than the usual close,
    /// which would leave the end that closes first in TIME_WAIT on its port for
    /// a minute, so that the restart (on this machine, just after) cannot bind
    /// it again and the connection comes back between other ports.
    pub fn abort_connections(&self) {
        let Some(b) = &self.buf else { return };
        let Ok(view) = FilesView::parse(&b.as_slice()[..self.len]) else { return };
        for r in view.files() {
            if r.how == how::NEW && r.kind == fkind::SOCKET && view.word(&r, sock::STATE) == sock::CONNECTION {
                let _ = ckpt_sys::setsockopt_linger(Fd(r.fd as i32), Some(0));
            }
        }
    }

    /// Capture the descriptor table and the shared file mappings.
    pub fn capture(&mut self) -> Result<()> {
        self.buf = None;
        self.len = 0;
        let (maps_text, maps_len) = ckpt_sys::scratch::read_whole(c"/proc/self/maps")?;
        let maps = &maps_text.as_slice()[..maps_len];
        let mut nmaps = 0;
        for e in ckpt_sys::maps::parse(maps) {
            if e.name.starts_with(b"/[aio]") {
                Msg::new()
                    .s("ckpt: the program has an AIO context (io_setup); ckpt cannot restore it: not checkpointing")
                    .emit();
                return Err(Errno::EOPNOTSUPP);
            }
            nmaps += (e.shared && e.inode != 0) as usize;
        }
        let fds = list_fds()?;
        let n = fds.len();
        let room = FilesView::len_for(n, nmaps, 0) + (n + nmaps) * PATH_MAX + f::MAX_CONTENT as usize;
        let mut buf = Scratch::new(room)?;
        let pid = ckpt_sys::getpid();
        let mut w = FilesWriter::new(buf.bytes(), n, nmaps).ok_or(Errno::ENOMEM)?;
        // The records so far, for dup detection (the writer's copy is write-only).
        let mut recs = Table::<FileRec>::with_capacity(n.max(1))?;
        let mut content_left = f::MAX_CONTENT;
        // fdinfo texts (an epoll instance lists every target: up to ~12000 in 1 MiB).
        let mut info = Scratch::new(1 << 20)?;
        for &fd in fds.as_slice() {
            let Some(r) = describe(fd, &mut w, &recs, pid, &mut content_left, info.bytes())? else { continue };
            recs.push(r)?;
        }
        pipes(recs.as_mut_slice(), &mut w, &mut content_left);
        connections(recs.as_mut_slice(), &mut w, &mut content_left);
        for (i, r) in recs.as_slice().iter().enumerate() {
            w.file(i, r);
        }
        let mut m = 0;
        for e in ckpt_sys::maps::parse(maps) {
            if !(e.shared && e.inode != 0) || m == nmaps {
                continue;
            }
            // Only a file that is still the one mapped can be mapped again; a
            // deleted file, a memfd, /dev/zero or SysV memory stay what they were:
            // shared anonymous memory with the saved content.
            let dev = (e.dev_major as u64) << 32 | e.dev_minor as u64;
            let same = path_cstr(e.name, |p| ckpt_sys::statx(Fd::CWD, p, ckpt_sys::AtFlags(0)))
                .and_then(|s| s.ok())
                .is_some_and(|s| s.ino == e.inode && s.dev() == dev && s.kind() == s_if::REG);
            if !same || e.name.ends_with(b" (deleted)") {
                // A deleted file or memfd that a descriptor also holds: the
                // mapping comes back mapped from the restored descriptor where
                // it lies within the saved content; beyond, the two would be
                // separate copies that no longer see each other's writes. Say
                // so now rather than let it pass silently.
                if let Some(r) = recs.as_slice().iter().find(|r| {
                    r.ino == e.inode
                        && r.dev == dev
                        && r.how == how::CONTENT
                        && !f::maps_content(r, e.offset, e.end - e.start)
                }) {
                    Msg::new()
                        .s("ckpt: warning: descriptor ")
                        .u(r.fd as u64)
                        .s(" (")
                        .b(e.name)
                        .s(") is also mapped shared at ")
                        .x(e.start)
                        .s(": after a restart the descriptor and the mapping are separate copies \
                            (a write through one no longer shows in the other)")
                        .emit();
                }
                continue;
            }
            let Some(off) = w.blob(e.name) else { continue };
            let rec = MapRec {
                start: e.start,
                end: e.end,
                offset: e.offset,
                dev,
                ino: e.inode,
                path_off: off as u32,
                path_len: e.name.len() as u32,
            };
            w.map(m, &rec);
            m += 1;
        }
        self.len = w.finish(recs.len(), m);
        // The loader would refuse a section its own image crate finds damaged:
        // better no image than one that cannot restart.
        let Ok(view) = FilesView::parse(&buf.as_slice()[..self.len]) else {
            Msg::new().s("ckpt: internal error: the descriptor table does not encode; not checkpointing").emit();
            return Err(Errno::EINVAL);
        };
        view.files().for_each(|r| warn_placeholder(&r, &view));
        self.buf = Some(buf);
        Ok(())
    }
}

impl super::Section for Files {
    fn tag(&self) -> u32 {
        tag::FILES
    }
    fn version(&self) -> u32 {
        f::VERSION
    }
    fn len(&self) -> usize {
        self.len
    }
    fn encode(&self, out: &mut [u8]) {
        if let Some(b) = &self.buf {
            out.copy_from_slice(&b.as_slice()[..self.len]);
        }
    }
}

/// The open descriptors, ascending, without the one that lists them.
fn list_fds() -> Result<Table<u32>> {
    let mut fds = Table::<u32>::with_capacity(MAX_FDS)?;
    let dir = ckpt_sys::openat(Fd::CWD, c"/proc/self/fd", c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0)?;
    // The runtime's write tracking (`track`) is not the program's.
    let tracker = crate::track::fd().map_or(u64::MAX, |f| f as u64);
    let mut buf = [0u8; 4096];
    let r = (|| {
        loop {
            let n = ckpt_sys::getdents64(dir, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            for name in ckpt_sys::dirent_names(&buf[..n]) {
                if let Some(fd) = ckpt_sys::num::parse(name, 10)
                    && fd != dir.0 as u64
                    && fd != tracker
                    && fd < u32::MAX as u64
                {
                    fds.push(fd as u32)?;
                }
            }
        }
    })();
    let _ = ckpt_sys::close(dir);
    r?;
    fds.as_mut_slice().sort_unstable();
    Ok(fds)
}

/// `/proc/self/<dir>/<fd>` as a C string in `buf`.
fn proc_path<'b>(buf: &'b mut [u8; 48], dir: &str, fd: u32) -> &'b CStr {
    let m = Msg::new().s("/proc/self/").s(dir).s("/").u(fd as u64);
    let s = m.as_bytes();
    buf[..s.len()].copy_from_slice(s);
    buf[s.len()] = 0;
    CStr::from_bytes_until_nul(&buf[..=s.len()]).unwrap_or(c"")
}

/// Call `f` with `p` as a C string (None if it does not fit or holds a NUL).
fn path_cstr<T>(p: &[u8], f: impl FnOnce(&CStr) -> T) -> Option<T> {
    let mut b = [0u8; PATH_MAX + 1];
    if p.len() >= b.len() || p.contains(&0) {
        return None;
    }
    b[..p.len()].copy_from_slice(p);
    Some(f(CStr::from_bytes_until_nul(&b[..=p.len()]).ok()?))
}

/// The text of `/proc/self/fdinfo/FD` (proc(5)) in `buf` (cut at its size).
fn fdinfo(fd: u32, buf: &mut [u8]) -> Result<usize> {
    let mut pb = [0u8; 48];
    let p = proc_path(&mut pb, "fdinfo", fd);
    let h = ckpt_sys::openat(Fd::CWD, p, c::O_RDONLY | c::O_CLOEXEC, 0)?;
    let mut n = 0;
    let r = loop {
        if n == buf.len() {
            break Ok(n);
        }
        match ckpt_sys::read(h, &mut buf[n..]) {
            Ok(0) => break Ok(n),
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    let _ = ckpt_sys::close(h);
    r
}

/// The value of the `key` line of an fdinfo text (after the key, trimmed).
fn field<'t>(text: &'t [u8], key: &[u8]) -> Option<&'t [u8]> {
    text.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(key)).map(|v| v.trim_ascii())
}

/// `(a, b)` of a timerfd `it_value:` / `it_interval:` line.
fn pair(v: &[u8]) -> (u64, u64) {
    let v = v.strip_prefix(b"(").unwrap_or(v);
    let mut it = v.split(|&b| b == b',');
    let a = it.next().map_or(0, |x| num(x.trim_ascii(), 10));
    let b = it.next().map_or(0, |x| num(x.trim_ascii(), 10));
    (a, b)
}

/// The parameters of an eventfd, timerfd, signalfd or epoll (see
/// `ckpt_image::files::fkind`), from its fdinfo text, into the blob.
fn params(kind: u32, text: &[u8], w: &mut FilesWriter) -> Option<(u64, u64)> {
    let mut words = [0u64; 6];
    let n = match kind {
        fkind::EVENTFD => {
            words[0] = num(field(text, b"eventfd-count:")?, 16);
            words[1] = field(text, b"eventfd-semaphore:").map_or(0, |v| num(v, 10));
            2
        }
        fkind::TIMERFD => {
            words[0] = num(field(text, b"clockid:")?, 10);
            words[1] = num(field(text, b"ticks:")?, 10);
            (words[2], words[3]) = pair(field(text, b"it_interval:")?);
            (words[4], words[5]) = pair(field(text, b"it_value:")?);
            6
        }
        fkind::SIGNALFD => {
            words[0] = num(field(text, b"sigmask:")?, 16);
            1
        }
        _ => {
            // epoll: one `tfd: N events: X data: D ...` line per target.
            let start = w.blob(&[])?;
            for l in text.split(|&b| b == b'\n') {
                let Some(rest) = l.strip_prefix(b"tfd:") else { continue };
                let mut t = rest.split(|&b| b == b' ' || b == b'\t').filter(|x| !x.is_empty());
                let tfd = num(t.next()?, 10);
                let (_, ev) = (t.next()?, num(t.next()?, 16));
                let (_, data) = (t.next()?, num(t.next()?, 16));
                for v in [tfd, ev, data] {
                    w.blob(&v.to_le_bytes())?;
                }
            }
            let end = w.blob(&[])?;
            return Some((start, end - start));
        }
    };
    let mut b = [0u8; 48];
    for (i, v) in words[..n].iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    let off = w.blob(&b[..n * 8])?;
    Some((off, n as u64 * 8))
}

/// Most watches of one inotify instance kept (the paths of more would not fit
/// the scratch space reserved for them).
const MAX_WATCHES: usize = 8192;

/// The parameters of an inotify instance (see `ckpt_image::files::fkind::INOTIFY`):
/// its queued bytes and its watches (`inotify wd:%x ino:%x sdev:%x mask:%x ...
/// f_handle:HEX` lines of fdinfo), each with the path of the watched inode.
fn inotify_params(fd: u32, text: &[u8], w: &mut FilesWriter) -> Option<(u64, u64)> {
    let queued = ckpt_sys::ioctl_fionread(Fd(fd as i32)).unwrap_or(0) as u64;
    let mut watches = Table::<f::Watch>::with_capacity(MAX_WATCHES).ok()?;
    let mut paths = WatchPaths::new(fd);
    for l in text.split(|&b| b == b'\n') {
        let Some(rest) = l.strip_prefix(b"inotify ") else { continue };
        let kv = |key: &[u8]| {
            rest.split(|&b| b == b' ').find_map(|t| t.strip_prefix(key)?.strip_prefix(b":")).unwrap_or(&[])
        };
        let sdev = num(kv(b"sdev"), 16);
        // The kernel's dev_t: 12 bits of major above 20 of minor.
        let dev = (sdev >> 20) << 32 | (sdev & 0xf_ffff);
        let (ino, bytes, ty) = (num(kv(b"ino"), 16), num(kv(b"fhandle-bytes"), 16), num(kv(b"fhandle-type"), 16));
        let mut handle = [0u8; 8 + 128];
        let hex = kv(b"f_handle");
        let n = (bytes as usize).min(128).min(hex.len() / 2);
        handle[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        handle[4..8].copy_from_slice(&(ty as u32).to_le_bytes());
        for (i, b) in handle[8..8 + n].iter_mut().enumerate() {
            *b = num(&hex[2 * i..2 * i + 2], 16) as u8;
        }
        let (wd, mask) = (num(kv(b"wd"), 16), num(kv(b"mask"), 16));
        let mut wt = f::Watch { wd, mask, ino, dev, path_off: 0, path_len: 0, ctime_ns: 0 };
        if let Some((p, ctime_ns)) = paths.find(dev, ino, &handle[..8 + n]) {
            wt.path_off = w.blob(p)?;
            wt.path_len = p.len() as u64;
            wt.ctime_ns = ctime_ns;
        }
        watches.push(wt).ok()?;
    }
    // fdinfo lists the newest watch first: ascending watch descriptors, as the
    // loader makes them again.
    let ws = watches.as_mut_slice();
    ws.sort_unstable_by_key(|x| x.wd);
    let start = w.blob(&queued.to_le_bytes())?;
    for x in ws.iter() {
        for v in x.words() {
            w.blob(&v.to_le_bytes())?;
        }
    }
    Some((start, 8 + ws.len() as u64 * f::INOTIFY_WATCH_LEN))
}

/// Finds the path of a watched inode: by its file handle (open_by_handle_at,
/// which needs CAP_DAC_READ_SEARCH, on a mount of its device from mountinfo),
/// else among the files the process has open, their directories and the
/// working directory (what programs watch: tail -f, an editor, a config
/// reloader).
struct WatchPaths {
    /// The inotify descriptor itself (not a candidate).
    own: u32,
    /// The last path found.
    buf: [u8; PATH_MAX],
    /// /proc/self/mountinfo and the descriptor list, read at the first watch
    /// that needs them (once per instance, not once per watch).
    mounts: Option<(Scratch, usize)>,
    fds: Option<Table<u32>>,
}

impl WatchPaths {
    fn new(own: u32) -> Self {
        WatchPaths { own, buf: [0; PATH_MAX], mounts: None, fds: None }
    }

    /// The path and ctime (ns) of inode (`dev`, `ino`).
    fn find(&mut self, dev: u64, ino: u64, handle: &[u8]) -> Option<(&[u8], u64)> {
        let n = self.by_handle(dev, handle).or_else(|| self.by_candidates(dev, ino))?;
        let st = Self::stat(&self.buf[..n]).filter(|s| s.ino == ino && s.dev() == dev)?;
        Some((&self.buf[..n], st.ctime_ns))
    }

    fn stat(p: &[u8]) -> Option<ckpt_sys::Stat> {
        path_cstr(p, |c| ckpt_sys::statx(Fd::CWD, c, ckpt_sys::AtFlags(0))).and_then(|s| s.ok())
    }

    /// Whether `p` names the inode (`dev`, `ino`).
    fn names(p: &[u8], dev: u64, ino: u64) -> bool {
        Self::stat(p).is_some_and(|s| s.ino == ino && s.dev() == dev)
    }

    fn by_handle(&mut self, dev: u64, handle: &[u8]) -> Option<usize> {
        if self.mounts.is_none() {
            self.mounts = ckpt_sys::scratch::read_whole(c"/proc/self/mountinfo").ok();
        }
        let (text, len) = self.mounts.as_ref()?;
        let mut majmin = Msg::new();
        majmin = majmin.u(dev >> 32).s(":").u(dev & 0xffff_ffff);
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT ...`; a mount of the whole
        // filesystem (root "/") first.
        let mut best: Option<&[u8]> = None;
        for l in text.as_slice()[..*len].split(|&b| b == b'\n') {
            let mut t = l.split(|&b| b == b' ');
            let (Some(_), Some(_), Some(mm), Some(root), Some(at)) = (t.next(), t.next(), t.next(), t.next(), t.next())
            else {
                continue;
            };
            if mm == majmin.as_bytes() && !at.contains(&b'\\') && (best.is_none() || root == b"/") {
                best = Some(at);
            }
        }
        // (open_by_handle_at wants a real descriptor there, not an O_PATH one.)
        let m = path_cstr(best?, |c| ckpt_sys::openat(Fd::CWD, c, c::O_RDONLY | c::O_CLOEXEC, 0))?.ok()?;
        let f = ckpt_sys::open_by_handle_at(m, handle, c::O_PATH | c::O_CLOEXEC);
        let _ = ckpt_sys::close(m);
        let f = f.ok()?;
        let mut pb = [0u8; 48];
        let n = ckpt_sys::readlinkat(Fd::CWD, proc_path(&mut pb, "fd", f.0 as u32), &mut self.buf);
        let _ = ckpt_sys::close(f);
        let n = n.ok()?;
        (self.buf[0] == b'/' && !self.buf[..n].ends_with(b" (deleted)")).then_some(n)
    }

    fn by_candidates(&mut self, dev: u64, ino: u64) -> Option<usize> {
        if let Ok(n) = ckpt_sys::getcwd(&mut self.buf) {
            let n = n.saturating_sub(1); // getcwd counts the NUL
            if Self::names(&self.buf[..n], dev, ino) {
                return Some(n);
            }
        }
        if Self::names(b"/", dev, ino) {
            self.buf[0] = b'/';
            return Some(1);
        }
        if self.fds.is_none() {
            self.fds = list_fds().ok();
        }
        let fds = self.fds.as_ref()?;
        for &fd in fds.as_slice().iter().filter(|&&fd| fd != self.own) {
            let mut pb = [0u8; 48];
            let Ok(n) = ckpt_sys::readlinkat(Fd::CWD, proc_path(&mut pb, "fd", fd), &mut self.buf) else { continue };
            if self.buf[0] != b'/' || self.buf[..n].ends_with(b" (deleted)") {
                continue;
            }
            // The file itself, then each directory above it.
            let mut end = n;
            while end > 0 {
                if Self::names(&self.buf[..end], dev, ino) {
                    return Some(end);
                }
                end = self.buf[..end].iter().rposition(|&b| b == b'/').unwrap_or(0);
            }
        }
        None
    }
}

/// The locks of an fdinfo text (`lock:\t1: FLOCK  ADVISORY  WRITE pid dev:ino
/// start end` lines, proc(5)) as (kind, start, end) triples in the blob (see
/// `ckpt_image::files::how::REOPEN`); None if there are none.
fn locks(text: &[u8], w: &mut FilesWriter) -> Option<(u64, u64)> {
    let start = w.blob(&[])?;
    for l in text.split(|&b| b == b'\n') {
        let Some(rest) = l.strip_prefix(b"lock:") else { continue };
        let mut t = rest.split(|&b| b == b' ' || b == b'\t').filter(|x| !x.is_empty()).skip(1);
        let kind = match t.next()? {
            b"FLOCK" => 1u64,
            b"POSIX" => 2,
            b"OFDLCK" => 3,
            _ => continue,
        };
        let _advisory = t.next()?;
        let write = if t.next()? == b"WRITE" { 0x100 } else { 0 };
        let (_pid, _id) = (t.next()?, t.next()?);
        let from = num(t.next()?, 10);
        let to = match t.next()? {
            b"EOF" => u64::MAX,
            v => num(v, 10),
        };
        for v in [kind | write, from, to] {
            w.blob(&v.to_le_bytes())?;
        }
    }
    let end = w.blob(&[])?;
    (end > start).then_some((start, end - start))
}

/// The parameters of a socket (see `ckpt_image::files::fkind::SOCKET`): IPv4,
/// IPv6 and UNIX sockets, stream, datagram or seqpacket. A connected stream
/// socket's peer is not restored (state 2): it comes back as a dropped
/// connection.
fn socket_params(fd: u32, w: &mut FilesWriter) -> Option<(u64, u64)> {
    const SOL_SOCKET: u32 = 1;
    const SO_REUSEADDR: u32 = 2;
    const SO_TYPE: u32 = 3;
    const SO_KEEPALIVE: u32 = 9;
    const SO_RCVBUF: u32 = 8;
    const SO_REUSEPORT: u32 = 15;
    const SO_ACCEPTCONN: u32 = 30;
    const SO_PROTOCOL: u32 = 38;
    const SO_DOMAIN: u32 = 39;
    const IPPROTO_TCP: u32 = 6;
    const TCP_NODELAY: u32 = 1;
    const SOCK_DGRAM: u64 = 2;
    let s = Fd(fd as i32);
    let opt = |l, n| ckpt_sys::getsockopt_int(s, l, n).map(|v| v as u64);
    let domain = opt(SOL_SOCKET, SO_DOMAIN).ok()?;
    if !matches!(domain, 1 | 2 | 10) {
        return None; // AF_UNIX, AF_INET, AF_INET6 only (no netlink, packet...)
    }
    let ty = opt(SOL_SOCKET, SO_TYPE).ok()?;
    let proto = opt(SOL_SOCKET, SO_PROTOCOL).unwrap_or(0);
    let mut addr = [0u8; 128];
    let mut peer = [0u8; 128];
    let alen = ckpt_sys::getsockname(s, &mut addr).ok()?.min(128);
    let plen = ckpt_sys::getpeername(s, &mut peer).map_or(0, |n| n.min(128));
    let listening = opt(SOL_SOCKET, SO_ACCEPTCONN).unwrap_or(0) != 0;
    let state = match () {
        _ if listening => 1,
        _ if plen > 0 && ty != SOCK_DGRAM => 2,
        _ => 0,
    };
    let nodelay =
        if domain != 1 && proto == IPPROTO_TCP as u64 { opt(IPPROTO_TCP, TCP_NODELAY).unwrap_or(0) } else { 0 };
    let words = [
        domain,
        ty,
        proto,
        state,
        opt(SOL_SOCKET, SO_REUSEADDR).unwrap_or(0),
        opt(SOL_SOCKET, SO_REUSEPORT).unwrap_or(0),
        opt(SOL_SOCKET, SO_KEEPALIVE).unwrap_or(0),
        nodelay,
        opt(SOL_SOCKET, SO_RCVBUF).unwrap_or(0),
        alen as u64,
        plen as u64,
    ];
    let off = w.blob(&[])?;
    for v in words {
        w.blob(&v.to_le_bytes())?;
    }
    w.blob(&addr)?;
    w.blob(&peer)?;
    Some((off, f::SOCKET_DATA_LEN))
}

/// Whether a character device is a terminal (devices.txt: 4 = tty and ttyS, 5/0
/// /dev/tty, 5/1 the console, 136-143 pseudo-terminals).
fn is_tty(major: u32, minor: u32) -> bool {
    major == 4 || (major == 5 && minor <= 1) || (136..=143).contains(&major)
}

/// Build the record of `fd` (None if it was closed meanwhile).
fn describe(
    fd: u32,
    w: &mut FilesWriter,
    recs: &Table<FileRec>,
    pid: i32,
    content_left: &mut u64,
    info: &mut [u8],
) -> Result<Option<FileRec>> {
    let mut pb = [0u8; 48];
    let link = proc_path(&mut pb, "fd", fd);
    let mut name = [0u8; PATH_MAX];
    let name_len = match ckpt_sys::readlinkat(Fd::CWD, link, &mut name) {
        Ok(n) => n,
        Err(Errno::ENOENT | Errno::EBADF) => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = &name[..name_len];
    let st = match ckpt_sys::fstat(Fd(fd as i32)) {
        Ok(s) => s,
        Err(Errno::EBADF) => return Ok(None),
        Err(e) => return Err(e),
    };
    let info_len = fdinfo(fd, info)?;
    let text = &info[..info_len];
    let pos = field(text, b"pos:").map_or(0, |v| num(v, 10));
    let flags = field(text, b"flags:").map_or(0, |v| num(v, 8)) as u32;
    let cloexec = ckpt_sys::fcntl(Fd(fd as i32), c::F_GETFD, 0)? as u32 & c::FD_CLOEXEC;
    let deleted = name.ends_with(b" (deleted)");
    let kind = if name.starts_with(b"anon_inode:") {
        if name == b"anon_inode:[io_uring]" {
            Msg::new()
                .s("ckpt: descriptor ")
                .u(fd as u64)
                .s(" is an io_uring instance; ckpt cannot restore it: not checkpointing")
                .emit();
            return Err(Errno::EOPNOTSUPP);
        }
        match name {
            b"anon_inode:[eventfd]" => fkind::EVENTFD,
            b"anon_inode:[timerfd]" => fkind::TIMERFD,
            b"anon_inode:[signalfd]" => fkind::SIGNALFD,
            b"anon_inode:[eventpoll]" => fkind::EPOLL,
            b"anon_inode:inotify" => fkind::INOTIFY,
            _ => fkind::ANON,
        }
    } else {
        match st.kind() {
            s_if::REG if deleted || st.nlink == 0 => fkind::DELETED,
            s_if::REG => fkind::REG,
            s_if::DIR => fkind::DIR,
            s_if::CHR if is_tty(st.rdev_major, st.rdev_minor) => fkind::TTY,
            s_if::CHR => fkind::CHR,
            s_if::FIFO if name.starts_with(b"pipe:") => fkind::PIPE,
            s_if::FIFO => fkind::FIFO,
            s_if::SOCK => fkind::SOCKET,
            _ => fkind::OTHER,
        }
    };
    // A file of the process's own /proc directory is the restarted process's
    // own there: /proc/PID/x is recorded as /proc/self/x.
    let mut own = [0u8; PATH_MAX];
    let mine = Msg::new().s("/proc/").u(pid as u64).s("/");
    let name: &[u8] = match name.strip_prefix(mine.as_bytes()) {
        Some(rest) if rest.len() + 11 <= own.len() => {
            own[..11].copy_from_slice(b"/proc/self/");
            own[11..11 + rest.len()].copy_from_slice(rest);
            &own[..11 + rest.len()]
        }
        _ => name,
    };
    let path_off = w.blob(name).ok_or(Errno::ENOMEM)?;
    let mut r = FileRec {
        fd,
        kind,
        how: how::PLACEHOLDER,
        flags: flags & !c::O_CLOEXEC.0,
        cloexec,
        share: f::NO_SHARE,
        pos,
        dev: st.dev(),
        ino: st.ino,
        size: st.size,
        mode: st.mode,
        why: why::KIND,
        path_off: path_off as u32,
        path_len: name.len() as u32,
        data_off: 0,
        data_len: 0,
    };
    let stdio_like = matches!(kind, fkind::TTY | fkind::PIPE | fkind::SOCKET | fkind::CHR | fkind::FIFO);
    // A descriptor sharing its open file description with an earlier one: one
    // description again at restart (one offset, one set of status flags).
    let shared = recs.as_slice().iter().enumerate().find(|(_, o)| {
        o.dev == r.dev
            && o.ino == r.ino
            && o.how != how::DUP
            && !(o.how == how::SHELL && fd <= 2)
            && match ckpt_sys::kcmp(pid, pid, c::KCMP_FILE, o.fd as usize, fd as usize) {
                Ok(v) => v == 0,
                // No kcmp here: the same inode, offset and flags is the best guess.
                Err(_) => o.pos == r.pos && o.flags == r.flags,
            }
    });
    // A terminal's settings, window size and whether we are its foreground.
    if kind == fkind::TTY
        && let Ok(t) = ckpt_sys::ioctl_tcgets(Fd(fd as i32))
    {
        let mut b = [0u8; f::TTY_DATA_LEN as usize];
        b[..36].copy_from_slice(&t);
        if let Ok(ws) = ckpt_sys::ioctl_tiocgwinsz(Fd(fd as i32)) {
            for (k, v) in ws.iter().enumerate() {
                b[40 + 2 * k..42 + 2 * k].copy_from_slice(&v.to_le_bytes());
            }
        }
        let fg = ckpt_sys::ioctl_tiocgpgrp(Fd(fd as i32)).ok() == ckpt_sys::getpgid(0).ok();
        b[48] = fg as u8;
        if let Some(off) = w.blob(&b) {
            (r.data_off, r.data_len) = (off, f::TTY_DATA_LEN);
        }
    }
    if let Some((i, _)) = shared {
        r.how = how::DUP;
        r.share = i as u32;
        r.why = why::NONE;
        return Ok(Some(r));
    }
    let path_ok = r.flags & c::O_PATH.0 != 0 && !deleted && kind != fkind::ANON;
    if kind == fkind::REG
        && !deleted
        && let Some((off, len)) = locks(text, w)
    {
        (r.data_off, r.data_len) = (off, len);
    }
    (r.how, r.why) = match kind {
        // In a tree, a pipe at 0, 1 or 2 may join two processes of the tree
        // (`a | b`): it is recorded as a pipe, and the restart decides (a pipe
        // whose both ends are in the tree is made again, any other is the
        // restarting shell's, as without a tree).
        fkind::PIPE if fd <= 2 && TREE.load(core::sync::atomic::Ordering::Relaxed) => (how::PIPE, why::NONE),
        _ if fd <= 2 && (stdio_like || kind == fkind::ANON || kind == fkind::OTHER) => (how::SHELL, why::NONE),
        fkind::REG | fkind::DIR | fkind::CHR | fkind::TTY if !deleted => (how::REOPEN, why::NONE),
        fkind::PIPE => (how::PIPE, why::NONE),
        // A FIFO is a pipe with a name: its ends are linked like a pipe's (and
        // its queued bytes kept when both are here); it is opened by path again.
        fkind::FIFO if !deleted && r.flags & c::O_PATH.0 == 0 => (how::PIPE, why::NONE),
        fkind::SOCKET => match socket_params(fd, w) {
            Some((off, len)) => {
                (r.data_off, r.data_len) = (off, len);
                (how::NEW, why::NONE)
            }
            None => (how::PLACEHOLDER, why::KIND),
        },
        fkind::INOTIFY => match inotify_params(fd, text, w) {
            Some((off, len)) => {
                (r.data_off, r.data_len) = (off, len);
                (how::NEW, why::NONE)
            }
            None => (how::PLACEHOLDER, why::KIND),
        },
        fkind::EVENTFD | fkind::TIMERFD | fkind::SIGNALFD | fkind::EPOLL => match params(kind, text, w) {
            Some((off, len)) => {
                (r.data_off, r.data_len) = (off, len);
                *content_left = content_left.saturating_sub(len);
                (how::NEW, why::NONE)
            }
            None => (how::PLACEHOLDER, why::KIND),
        },
        fkind::DELETED if r.flags & c::O_PATH.0 == 0 => match save_content(fd, &st, w, content_left) {
            Ok((off, len)) => {
                if name.starts_with(b"/memfd:")
                    && let Ok(seals) = ckpt_sys::fcntl(Fd(fd as i32), c::F_GET_SEALS, 0)
                {
                    r.mode = (r.mode & 0xffff) | ((seals as u32 & 0xff) << 16);
                }
                (r.data_off, r.data_len) = (off, len);
                (how::CONTENT, why::NONE)
            }
            Err(y) => (how::PLACEHOLDER, y),
        },
        _ if path_ok => (how::REOPEN, why::NONE),
        _ => (how::PLACEHOLDER, why::KIND),
    };
    if r.how == how::REOPEN && kind == fkind::REG && pos > 0 && generated(name) {
        r.why = why::GENERATED;
    }
    Ok(Some(r))
}

/// A file whose text the kernel makes as it is read: what is at an offset in
/// it after a restart belongs to the new process (see `why::GENERATED`).
pub fn generated(path: &[u8]) -> bool {
    path.starts_with(b"/proc/") || path.starts_with(b"/sys/")
}

/// Link the ends of each pipe (see `ckpt_image::files::how::PIPE`): the first
/// record of a pipe inode owns it, the others point at it. A pipe with both a
/// read and a write end in the process has its queued bytes saved with the
/// owner: read through a new non-blocking description of the read end, and
/// written straight back through one of the write end, so the pipe holds them
/// again for a program that goes on (continue mode). A pipe with one end only
/// is marked `why::OUTSIDE`.
/// Tree mode (`crate::tree`): pipes may join this process to others of the tree.
pub static TREE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn pipes(recs: &mut [FileRec], w: &mut FilesWriter, left: &mut u64) {
    for i in 0..recs.len() {
        if recs[i].how != how::PIPE {
            continue;
        }
        if let Some(o) = (0..i).find(|&j| recs[j].how == how::PIPE && recs[j].ino == recs[i].ino) {
            recs[i].share = o as u32;
            continue;
        }
        let ino = recs[i].ino;
        let end =
            |acc: u32| recs.iter().find(|r| r.ino == ino && r.how == how::PIPE && r.flags & c::O_ACCMODE.0 == acc);
        let (rd, wr) = (end(c::O_RDONLY.0).map(|r| r.fd), end(c::O_WRONLY.0).map(|r| r.fd));
        let tree = TREE.load(core::sync::atomic::Ordering::Relaxed);
        let (Some(rd), Some(wr)) = (rd, wr.or(if tree { rd } else { None })) else {
            // A FIFO's other end is found again by its name (whoever opens it);
            // an anonymous pipe's is gone.
            if recs[i].kind == fkind::PIPE {
                recs[i].why = why::OUTSIDE;
            }
            continue;
        };
        if wr == rd && recs[i].kind == fkind::PIPE {
            // A tree's process with only the read end: the queued bytes are
            // saved here (put back through a write end opened on the read end's
            // /proc link), for the restart to queue again if the writer is in
            // the tree too. The tree's members write their images one at a
            // time, so no other reader takes them meanwhile.
            recs[i].why = why::OUTSIDE;
        }
        if let Some((off, len)) = drain_and_refill(rd, wr, w, left) {
            (recs[i].data_off, recs[i].data_len) = (off, len);
        }
    }
}

/// Link the connections whose both ends are in the table, so that they come
/// back connected to each other, each end with the bytes queued for it (read
/// with MSG_PEEK: nothing is taken from the program):
/// - a UNIX stream socket whose peer (the kernel's sock_diag, UNIX_DIAG_PEER)
///   is in the table: [`sock::PAIR`]; in a tree, a peer elsewhere may be
///   another process's: [`sock::TREE_PEER`];
/// - a TCP socket whose peer's address is the local address of another socket
///   of the table and the other way round (a connection the process made to
///   itself): [`sock::CONNECTION`];
/// - a stream socket connected to a listening socket of the table that has not
///   accepted it yet (its peer waits in that socket's queue: the listener's
///   UNIX_DIAG_ICONS, or a TCP socket with no inode yet): [`sock::QUEUED`],
///   with the bytes it had sent there, which are lost.
///
/// The others stay dropped connections ([`sock::DROPPED`]). A socket's
/// parameters are the last thing in the blob when this runs, so each record's
/// data grows in place: the parameters are copied to the blob's end first.
fn connections(recs: &mut [FileRec], w: &mut FilesWriter, left: &mut u64) {
    // What each socket becomes, decided on the parameters as they were read
    // (rewriting a record replaces its peer address length by `sock::OTHER`).
    let Ok(mut plan) = Table::<Link>::with_capacity(recs.len().max(1)) else { return };
    for i in 0..recs.len() {
        if plan.push(link(recs, i, w)).is_err() {
            return;
        }
    }
    for (i, l) in plan.as_slice().iter().enumerate() {
        let Some((state, other, lost)) = *l else { continue };
        let r = recs[i];
        let Some(mut copy) = w.read_back(r.data_off, f::SOCKET_DATA_LEN) else { continue };
        let peer_len = u64::from_le_bytes(copy[sock::OTHER * 8..sock::OTHER * 8 + 8].try_into().unwrap_or_default());
        copy[sock::STATE * 8..sock::STATE * 8 + 8].copy_from_slice(&state.to_le_bytes());
        copy[sock::OTHER * 8..sock::OTHER * 8 + 8].copy_from_slice(&other.to_le_bytes());
        let Some(off) = w.blob(&copy) else { continue };
        let mut len = f::SOCKET_DATA_LEN;
        if let Some(lost) = lost {
            if w.blob(&lost.to_le_bytes()).and_then(|_| w.blob(&peer_len.to_le_bytes())).is_none() {
                continue;
            }
            len += 16;
        } else {
            // What is queued for this end.
            let room = (*left as usize).min(w.room()).min(PIPE_MAX);
            if let Some((_, win)) = w.blob_window(room) {
                let ty = u64::from_le_bytes(copy[8..16].try_into().unwrap_or_default());
                let n = if ty == 1 { peek_bytes(r.fd, win) } else { peek_messages(r.fd, win) };
                w.unblob(room - n);
                *left -= n as u64;
                len += n as u64;
            }
        }
        (recs[i].data_off, recs[i].data_len) = (off, len);
    }
}

const MSG_PEEK: u32 = 2;
const MSG_DONTWAIT: u32 = 0x40;
const MSG_TRUNC: u32 = 0x20;

/// The bytes queued for stream socket `fd` (as many as `win` holds), read with
/// MSG_PEEK: nothing is taken from the program.
fn peek_bytes(fd: u32, win: &mut [u8]) -> usize {
    ckpt_sys::recv(Fd(fd as i32), win, MSG_PEEK | MSG_DONTWAIT).unwrap_or(0)
}

/// The messages queued for datagram or record socket `fd`, each as a u32
/// length then its bytes, as many whole ones as `win` holds; returns the bytes
/// used. Each is peeked in turn with SO_PEEK_OFF (nothing is taken from the
/// program); the socket's own peek offset is put back after.
fn peek_messages(fd: u32, win: &mut [u8]) -> usize {
    const SOL_SOCKET: u32 = 1;
    const SO_PEEK_OFF: u32 = 42;
    let s = Fd(fd as i32);
    let Ok(old) = ckpt_sys::getsockopt_int(s, SOL_SOCKET, SO_PEEK_OFF) else { return 0 };
    if ckpt_sys::setsockopt_int(s, SOL_SOCKET, SO_PEEK_OFF, 0).is_err() {
        return 0;
    }
    let mut at = 0;
    while at + 4 < win.len() {
        let (head, body) = win[at..].split_at_mut(4);
        // MSG_TRUNC: the message's whole length, even if it does not fit.
        match ckpt_sys::recv(s, body, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC) {
            // An empty message does not move the peek offset: the last seen.
            Ok(0) => {
                head.copy_from_slice(&0u32.to_le_bytes());
                at += 4;
                break;
            }
            Ok(n) if n <= body.len() => {
                head.copy_from_slice(&(n as u32).to_le_bytes());
                at += 4 + n;
            }
            Ok(_) => {
                Msg::new()
                    .s("ckpt: warning: descriptor ")
                    .u(fd as u64)
                    .s(": more messages are queued than the image keeps; after a restart the later ones are lost")
                    .emit();
                break;
            }
            Err(_) => break,
        }
    }
    let _ = ckpt_sys::setsockopt_int(s, SOL_SOCKET, SO_PEEK_OFF, old);
    at
}

/// A socket's new state, the record or inode it names, and for a queued
/// connection the bytes it lost (None: it stays as it is).
type Link = Option<(u64, u64, Option<u64>)>;

/// What record `i` becomes (see `connections`).
fn link(recs: &[FileRec], i: usize, w: &FilesWriter) -> Link {
    const SOCK_STREAM: u64 = 1;
    const SOCK_DGRAM: u64 = 2;
    const SOCK_SEQPACKET: u64 = 5;
    let is_socket = |r: &FileRec| r.how == how::NEW && r.kind == fkind::SOCKET;
    let params = |j: usize| {
        let o = recs[j];
        is_socket(&o).then(|| w.read_back(o.data_off, f::SOCKET_DATA_LEN)).flatten().map(SockParams)
    };
    let r = recs[i];
    let me = params(i)?;
    // A UNIX socket pair of datagrams or records is no connection the kernel
    // calls one (a datagram socket is "plain"), but is linked like a stream's.
    let messages = me.word(0) == 1 && matches!(me.word(1), SOCK_DGRAM | SOCK_SEQPACKET);
    let connected = match me.word(1) {
        SOCK_DGRAM => me.word(sock::STATE) == sock::PLAIN,
        _ => me.word(sock::STATE) == sock::DROPPED,
    };
    if !connected || !(me.word(1) == SOCK_STREAM || messages) {
        return None;
    }
    let listener =
        (0..recs.len()).find(|&j| params(j).is_some_and(|l| l.word(sock::STATE) == sock::LISTENING && l.serves(&me)));
    match me.word(0) {
        1 => {
            let peer = unix_diag(r.ino as u32, UDIAG_SHOW_PEER, UNIX_DIAG_PEER).and_then(|a| a.u32(0))?;
            // A pair both ways (a datagram socket may be connected to one that
            // is connected elsewhere).
            let back = |o: &FileRec| unix_diag(o.ino as u32, UDIAG_SHOW_PEER, UNIX_DIAG_PEER).and_then(|a| a.u32(0));
            if let Some(j) = recs.iter().position(|o| o.ino == peer as u64 && is_socket(o))
                && back(&recs[j]) == Some(r.ino as u32)
                && params(j).is_some_and(|o| o.word(1) == me.word(1))
            {
                return Some((sock::PAIR, j as u64, None));
            }
            if messages {
                return None;
            }
            if TREE.load(core::sync::atomic::Ordering::Relaxed) {
                return Some((sock::TREE_PEER, peer as u64, None));
            }
            // Waiting in the queue of a listening socket of the table? Its
            // UNIX_DIAG_ICONS are the sockets connected to those waiting.
            let l = listener?;
            let icons = unix_diag(recs[l].ino as u32, UDIAG_SHOW_ICONS, UNIX_DIAG_ICONS)?;
            if !(0..icons.len / 4).any(|k| icons.u32(k) == Some(r.ino as u32)) {
                return None;
            }
            let q = unix_diag(peer, UDIAG_SHOW_RQLEN, UNIX_DIAG_RQLEN).and_then(|a| a.u32(0));
            Some((sock::QUEUED, l as u64, Some(q.unwrap_or(0) as u64)))
        }
        2 | 10 => {
            let j = (0..recs.len()).find(|&j| {
                j != i
                    && params(j).is_some_and(|o| {
                        o.word(sock::STATE) == sock::DROPPED
                            && o.word(0) == me.word(0)
                            && o.word(1) == SOCK_STREAM
                            && o.addr() == me.peer()
                            && o.peer() == me.addr()
                    })
            });
            if let Some(j) = j {
                return Some((sock::CONNECTION, j as u64, None));
            }
            // The other end of a TCP connection, seen from its side, has no
            // inode while it waits in the listening socket's queue.
            let l = listener?;
            let d = tcp_diag(me.word(0) as u8, me.peer(), me.addr())?;
            (d.state == TCP_ESTABLISHED && d.inode == 0).then_some((sock::QUEUED, l as u64, Some(d.rqueue as u64)))
        }
        _ => None,
    }
}

/// A socket's saved parameters (see `fkind::SOCKET`).
struct SockParams([u8; f::SOCKET_DATA_LEN as usize]);

impl SockParams {
    fn word(&self, k: usize) -> u64 {
        u64::from_le_bytes(self.0[k * 8..k * 8 + 8].try_into().unwrap_or_default())
    }

    fn addr(&self) -> &[u8] {
        &self.0[88..88 + (self.word(9) as usize).min(128)]
    }

    fn peer(&self) -> &[u8] {
        &self.0[216..216 + (self.word(sock::OTHER) as usize).min(128)]
    }

    /// Whether this (listening) socket takes the connections `c` is connected to.
    fn serves(&self, c: &SockParams) -> bool {
        self.word(0) == c.word(0) && self.word(1) == c.word(1) && f::serves(self.word(0), self.addr(), c.peer())
    }
}

const UDIAG_SHOW_PEER: u32 = 4;
const UDIAG_SHOW_ICONS: u32 = 8;
const UDIAG_SHOW_RQLEN: u32 = 16;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const TCP_ESTABLISHED: u8 = 1;

/// The data of one attribute of a sock_diag answer (at most 1 KiB of it).
struct Attr {
    data: [u8; 1024],
    len: usize,
}

impl Attr {
    fn u32(&self, k: usize) -> Option<u32> {
        (k * 4 + 4 <= self.len).then(|| u32::from_le_bytes(self.data[k * 4..k * 4 + 4].try_into().unwrap_or_default()))
    }
}

/// One request to the kernel's sock_diag (netlink); the answer's length in `buf`
/// if it is a SOCK_DIAG_BY_FAMILY message (not an error).
fn sock_diag(req: &[u8], buf: &mut [u8]) -> Option<usize> {
    const AF_NETLINK: u32 = 16;
    const SOCK_DGRAM: u32 = 2;
    const SOCK_CLOEXEC: u32 = 0o2000000;
    const NETLINK_SOCK_DIAG: u32 = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let nl = ckpt_sys::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG).ok()?;
    let n = ckpt_sys::write(nl, req).and_then(|_| ckpt_sys::read(nl, buf));
    let _ = ckpt_sys::close(nl);
    let n = n.ok()?;
    (n >= 16 && u16::from_le_bytes([buf[4], buf[5]]) == SOCK_DIAG_BY_FAMILY).then_some(n)
}

/// Attribute `ty` of UNIX socket `ino`, asked for with `show` (UDIAG_SHOW_*).
fn unix_diag(ino: u32, show: u32, ty: u16) -> Option<Attr> {
    // nlmsghdr (len, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, pid) then
    // unix_diag_req (AF_UNIX, 0, pad, states all, ino, show, no cookie).
    let mut req = [0u8; 16 + 24];
    req[0..4].copy_from_slice(&40u32.to_le_bytes());
    req[4..6].copy_from_slice(&20u16.to_le_bytes());
    req[6..8].copy_from_slice(&1u16.to_le_bytes());
    req[16] = 1;
    req[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    req[24..28].copy_from_slice(&ino.to_le_bytes());
    req[28..32].copy_from_slice(&show.to_le_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]);
    let mut buf = [0u8; 2048];
    let n = sock_diag(&req, &mut buf)?;
    let b = &buf[..n];
    // nlmsghdr (16) + unix_diag_msg (16), then rtattrs (len u16, type u16, data).
    let mut at = 32;
    while at + 4 <= b.len() {
        let len = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        if len < 4 {
            break;
        }
        if u16::from_le_bytes([b[at + 2], b[at + 3]]) == ty {
            let d = b.get(at + 4..at + len)?;
            let mut a = Attr { data: [0; 1024], len: d.len().min(1024) };
            a.data[..a.len].copy_from_slice(&d[..a.len]);
            return Some(a);
        }
        at += (len + 3) & !3;
    }
    None
}

/// What sock_diag says of one TCP socket.
struct TcpDiag {
    state: u8,
    rqueue: u32,
    inode: u32,
}

/// The TCP socket (`family` AF_INET or AF_INET6) whose local address is `local`
/// and whose peer is `remote` (sockaddrs as getsockname gives them).
fn tcp_diag(family: u8, local: &[u8], remote: &[u8]) -> Option<TcpDiag> {
    const IPPROTO_TCP: u8 = 6;
    // The address bytes of a sockaddr_in (4 at 4) or sockaddr_in6 (16 at 8).
    let at = if family == 2 { 4..8 } else { 8..24 };
    let (lip, rip) = (local.get(at.clone())?, remote.get(at)?);
    // nlmsghdr, then inet_diag_req_v2: family, protocol, ext, pad, states, and
    // inet_diag_sockid: sport, dport (network order), src[4], dst[4], if, cookie.
    let mut req = [0u8; 16 + 56];
    req[0..4].copy_from_slice(&72u32.to_le_bytes());
    req[4..6].copy_from_slice(&20u16.to_le_bytes());
    req[6..8].copy_from_slice(&1u16.to_le_bytes());
    req[16] = family;
    req[17] = IPPROTO_TCP;
    req[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    req[24..26].copy_from_slice(local.get(2..4)?);
    req[26..28].copy_from_slice(remote.get(2..4)?);
    req[28..28 + lip.len()].copy_from_slice(lip);
    req[44..44 + rip.len()].copy_from_slice(rip);
    req[64..72].copy_from_slice(&[0xff; 8]);
    let mut buf = [0u8; 512];
    let n = sock_diag(&req, &mut buf)?;
    // inet_diag_msg after the header: state at 1, rqueue at 56, inode at 68.
    let m = buf.get(16..n)?;
    let word = |o: usize| Some(u32::from_le_bytes(m.get(o..o + 4)?.try_into().ok()?));
    Some(TcpDiag { state: *m.get(1)?, rqueue: word(56)?, inode: word(68)? })
}

/// Most bytes a pipe can hold (`/proc/sys/fs/pipe-max-size`'s default).
const PIPE_MAX: usize = 1 << 20;

fn drain_and_refill(rd: u32, wr: u32, w: &mut FilesWriter, left: &mut u64) -> Option<(u64, u64)> {
    let room = (*left as usize).min(w.room()).min(PIPE_MAX);
    let (mut pb, mut qb) = ([0u8; 48], [0u8; 48]);
    let r =
        ckpt_sys::openat(Fd::CWD, proc_path(&mut pb, "fd", rd), c::O_RDONLY | c::O_NONBLOCK | c::O_CLOEXEC, 0).ok()?;
    let wfd = ckpt_sys::openat(Fd::CWD, proc_path(&mut qb, "fd", wr), c::O_WRONLY | c::O_NONBLOCK | c::O_CLOEXEC, 0);
    let Ok(wfd) = wfd else {
        let _ = ckpt_sys::close(r);
        return None;
    };
    let mut got = None;
    if let Some((off, win)) = w.blob_window(room) {
        let mut n = 0;
        while n < win.len() {
            match ckpt_sys::read(r, &mut win[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        // Back in the pipe, in order (it held them, so they fit).
        if ckpt_sys::write_all(wfd, &win[..n]).is_err() {
            Msg::new().s("ckpt: warning: could not put the bytes read from a pipe back into it").emit();
        }
        w.unblob(room - n);
        *left -= n as u64;
        got = (n > 0).then_some((off, n as u64));
    }
    let _ = ckpt_sys::close(r);
    let _ = ckpt_sys::close(wfd);
    got
}

/// Copy the content of deleted file `fd` into the blob; the reason why not otherwise.
fn save_content(
    fd: u32,
    st: &ckpt_sys::Stat,
    w: &mut FilesWriter,
    left: &mut u64,
) -> core::result::Result<(u64, u64), u32> {
    if st.size > *left || st.size as usize > w.room() {
        return Err(why::TOO_BIG);
    }
    // Through a new read-only description of the same inode, so that a
    // write-only descriptor can be read too and its offset does not move.
    let mut pb = [0u8; 48];
    let link = proc_path(&mut pb, "fd", fd);
    let src = ckpt_sys::openat(Fd::CWD, link, c::O_RDONLY | c::O_CLOEXEC, 0).map_err(|_| why::UNREADABLE)?;
    let len = st.size as usize;
    let r = match w.blob_window(len) {
        None => Err(why::TOO_BIG),
        Some((off, win)) => {
            let mut done = 0;
            loop {
                if done == len {
                    break Ok((off, len as u64));
                }
                match ckpt_sys::pread(src, &mut win[done..], done as u64) {
                    Ok(0) => {
                        // Shorter than fstat said (truncated meanwhile): zeros.
                        win[done..].fill(0);
                        done = len;
                    }
                    Ok(k) => done += k,
                    Err(Errno::EINTR) => {}
                    Err(_) => break Err(why::UNREADABLE),
                }
            }
        }
    };
    let _ = ckpt_sys::close(src);
    match r {
        Ok(v) => {
            *left -= v.1;
            Ok(v)
        }
        Err(y) => {
            if y == why::UNREADABLE {
                w.unblob(len);
            }
            Err(y)
        }
    }
}

/// Say at checkpoint time what will not come back (`ckpt info` says it too).
fn warn_placeholder(r: &FileRec, files: &FilesView) {
    // `ckpt: warning: descriptor N (PATH): `
    let m = || Msg::new().s("ckpt: warning: descriptor ").u(r.fd as u64).s(" (").b(files.path(r)).s("): ");
    if r.how == how::NEW && r.kind == fkind::INOTIFY {
        for w in files.watches(r).filter(|w| w.path_len == 0) {
            m().s("the path of the file of watch ")
                .u(w.wd)
                .s(" (inode ")
                .u(w.ino)
                .s(") was not found: after a restart it is not watched")
                .emit();
        }
        if files.word(r, 0) > 0 {
            m().u(files.word(r, 0)).s(" bytes of queued events: they are lost after a restart").emit();
        }
        return;
    }
    if r.how == how::NEW && r.kind == fkind::SOCKET && files.word(r, sock::STATE) == sock::DROPPED {
        // (a pair or connection within the process is restored connected: no
        // warning; a peer that may be another process's of the tree is said by
        // the loader if no process of the tree holds it)
        m().s("a connected socket whose peer is not restored: after a restart it fails like a dropped connection \
               (end of file, EPIPE)")
            .emit();
        return;
    }
    if r.how == how::NEW && r.kind == fkind::SOCKET && files.word(r, sock::STATE) == sock::QUEUED {
        let lost = files.word(r, sock::LOST);
        if lost > 0 {
            m().s("a connection waiting to be accepted by descriptor ")
                .u(files.file(files.word(r, sock::OTHER) as usize).map_or(0, |l| l.fd as u64))
                .s(": it is made again after a restart, but the ")
                .u(lost)
                .s(" bytes it had sent there are lost")
                .emit();
        }
        return;
    }
    if r.how == how::PIPE && r.why == why::OUTSIDE && TREE.load(core::sync::atomic::Ordering::Relaxed) {
        // One end of a pipe in a tree's process: the restart joins it again to
        // its other end if another process of the tree has it, and says so
        // when none has (the loader sees every process's descriptors).
        return;
    }
    if r.how == how::PIPE && r.why == why::OUTSIDE {
        m().s("the other end of this pipe is outside the process: after a restart that end is closed \
               (reads see end of file, writes fail with EPIPE)")
            .emit();
        return;
    }
    if r.how == how::REOPEN && r.why == why::GENERATED {
        m().s("a file the kernel writes as it is read, read partway (offset ")
            .u(r.pos)
            .s("): after a restart it is opened again at that offset, but what follows there is the new process's \
                text and need not continue what was read")
            .emit();
        return;
    }
    if r.how != how::PLACEHOLDER {
        return;
    }
    let what = match r.why {
        why::TOO_BIG => "a deleted file too large to keep in the image (over 32 MiB in all)",
        why::UNREADABLE => "a deleted file whose content cannot be read",
        _ => kind_name(r.kind),
    };
    m().s(what).s(", not restored: after a restart it is a placeholder that fails every operation (EBADF)").emit();
}

/// What a kind is called in messages.
pub fn kind_name(k: u32) -> &'static str {
    match k {
        fkind::REG => "a regular file",
        fkind::DIR => "a directory",
        fkind::CHR => "a device",
        fkind::TTY => "a terminal",
        fkind::PIPE => "a pipe",
        fkind::FIFO => "a FIFO",
        fkind::SOCKET => "a socket",
        fkind::DELETED => "a deleted file",
        fkind::ANON => "an anonymous-inode descriptor (fanotify, pidfd, userfaultfd...)",
        _ => "a special file",
    }
}
