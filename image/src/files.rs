//! The FILES section: the descriptor table at checkpoint time, and the shared
//! file mappings to map again from their files (see docs/files.md).
//!
//! ```text
//! FilesHeader                      (FILES_HEADER_LEN bytes: counts, blob length)
//! FileRec * nfiles                 (ascending descriptor numbers)
//! MapRec  * nmaps                  (MAP_SHARED mappings of files)
//! blob                             (paths, and the content of deleted files)
//! ```
//!
//! Each descriptor says *what it was* ([`fkind`]) and *how it comes back*
//! ([`how`]); the runtime decides the second at checkpoint time (so `ckpt info`
//! can say it), the loader may still turn a reopen into a placeholder at restart
//! when the file is gone (and says so).

use crate::section::tag;
use crate::{ImageError, Rd, Wr};

/// What a descriptor referred to at checkpoint time.
pub mod fkind {
    /// A regular file with a name.
    pub const REG: u32 = 1;
    /// A directory.
    pub const DIR: u32 = 2;
    /// A character device that is not a terminal (/dev/null, /dev/zero, /dev/urandom...).
    pub const CHR: u32 = 3;
    /// A terminal (the console, a pty, /dev/tty); `data` (56 bytes, when the
    /// settings could be read): its `struct termios` (36 bytes, then 4 zero), its
    /// window size (four u16), and a u64 that is 1 if the process group was the
    /// terminal's foreground group.
    pub const TTY: u32 = 4;
    /// An anonymous pipe.
    pub const PIPE: u32 = 5;
    /// A named pipe (FIFO).
    pub const FIFO: u32 = 6;
    /// A socket. Made anew (how [`super::how::NEW`]) with `data`: [`super::SOCKET_DATA_LEN`]
    /// bytes: eleven u64 (domain, type, protocol, state ([`super::sock`]),
    /// SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, TCP_NODELAY, SO_RCVBUF, address
    /// length, peer address length), then its address (128 bytes) and its
    /// peer's (128 bytes); what follows depends on the state.
    pub const SOCKET: u32 = 7;
    /// A regular file deleted while open (or a memfd): no name to reopen.
    pub const DELETED: u32 = 8;
    /// An anonymous inode (eventfd, epoll, timerfd, signalfd, inotify...).
    pub const ANON: u32 = 9;
    /// Anything else (a block device, an O_PATH descriptor of a special file...).
    pub const OTHER: u32 = 10;
    /// An eventfd; `data`: its counter, 1 if EFD_SEMAPHORE (two u64).
    pub const EVENTFD: u32 = 11;
    /// A timerfd; `data`: clock id, expirations not yet read, interval (s, ns),
    /// remaining time (s, ns) (six u64).
    pub const TIMERFD: u32 = 12;
    /// A signalfd; `data`: its signal mask (one u64).
    pub const SIGNALFD: u32 = 13;
    /// An epoll instance; `data`: its interest list, (descriptor, events, data)
    /// triples of u64.
    pub const EPOLL: u32 = 14;
    /// An inotify instance (FILES version 2); `data`: the bytes of events
    /// queued at checkpoint time (lost at restart: the kernel cannot be handed
    /// them back), then one [`super::INOTIFY_WATCH_LEN`]-byte entry per watch,
    /// in ascending watch-descriptor order: seven u64, wd, mask, inode, device
    /// (major << 32 | minor), offset and length in the blob of the watched
    /// file's path (length 0: no path was found, and that watch is not made
    /// again), and the file's ctime in ns at checkpoint time (a change since
    /// then made no event the program will see).
    pub const INOTIFY: u32 = 15;
    /// Highest valid kind.
    pub const MAX: u32 = INOTIFY;
}

/// How a descriptor comes back at restart.
pub mod how {
    /// Opened again by path, with its flags, at its offset; `data`, if any: the
    /// locks it held, (kind, start, end) triples of u64: kind 1 flock, 2 POSIX
    /// record lock, 3 open-file-description lock, plus 0x100 for a write
    /// (exclusive) lock; end inclusive, `u64::MAX` for the end of the file.
    pub const REOPEN: u32 = 1;
    /// Standard input, output or error that was a terminal, pipe, socket or
    /// device: the restarting shell's descriptor of that number.
    pub const SHELL: u32 = 2;
    /// A new unlinked file with the content saved in the image, at its offset.
    pub const CONTENT: u32 = 3;
    /// Shares the open file description of the earlier record `share` (dup).
    pub const DUP: u32 = 4;
    /// A placeholder that fails every operation (`why` says what it was).
    pub const PLACEHOLDER: u32 = 5;
    /// An end of a pipe. The first record of a pipe (`share` = [`super::NO_SHARE`])
    /// creates it, with the queued bytes in `data` when both ends were in the
    /// process, or with its other end closed (`why` = [`super::why::OUTSIDE`]:
    /// reads see EOF, writes EPIPE); the other records of that pipe (`share` = the
    /// first's index) open its other end again.
    pub const PIPE: u32 = 6;
    /// Made anew from the parameters in `data` (eventfd, timerfd, signalfd,
    /// epoll: see [`super::fkind`]).
    pub const NEW: u32 = 7;
    /// Highest valid value.
    pub const MAX: u32 = NEW;
}

/// Why a descriptor is a placeholder (`FileRec::why`).
pub mod why {
    /// Not a placeholder.
    pub const NONE: u32 = 0;
    /// A kind of descriptor this version does not restore.
    pub const KIND: u32 = 1;
    /// A deleted file larger than [`super::MAX_CONTENT`] (or over the image's total).
    pub const TOO_BIG: u32 = 2;
    /// A deleted file whose content could not be read.
    pub const UNREADABLE: u32 = 3;
    /// A pipe whose other end was outside the process (not a placeholder: the
    /// pipe comes back with that end closed).
    pub const OUTSIDE: u32 = 4;
    /// A file whose text the kernel makes as it is read (under /proc or /sys),
    /// read partway (not a placeholder: it is opened by path again at the same
    /// offset, but the text there is the restarted process's, which need not
    /// continue what was read before).
    pub const GENERATED: u32 = 5;
    /// Highest valid value.
    pub const MAX: u32 = GENERATED;
}

/// Most bytes of deleted-file content one image carries (all files together):
/// the content lives in the metadata, which the loader holds in memory.
pub const MAX_CONTENT: u64 = 32 << 20;

/// Bytes of a socket's saved parameters (see [`fkind::SOCKET`]).
pub const SOCKET_DATA_LEN: u64 = 11 * 8 + 256;

/// The state of a socket record: word [`sock::STATE`] of its `data` (see
/// [`fkind::SOCKET`]), and how the restart makes it again.
pub mod sock {
    /// The word that holds the state.
    pub const STATE: usize = 3;
    /// The word that holds the peer address length, or, in the states that
    /// name another socket, that socket (a record index or an inode).
    pub const OTHER: usize = 10;
    /// Not connected (or a datagram socket, connected again to its peer):
    /// bound again to its address.
    pub const PLAIN: u64 = 0;
    /// Listening: bound to its address again and listening.
    pub const LISTENING: u64 = 1;
    /// A connected stream socket whose peer is not restored: it comes back as
    /// one end of a socket pair whose other end is closed (a dropped connection).
    pub const DROPPED: u64 = 2;
    /// One end of a UNIX socket pair (or stream connection) whose other end is
    /// record [`OTHER`] of the table; what is queued for this end follows (the
    /// first end of the pair makes both): a stream's bytes, or (FILES version
    /// 4, a pair of datagram or record sockets) each message as a u32 length
    /// then its bytes.
    pub const PAIR: u64 = 3;
    /// FILES version 3, tree mode: a connected UNIX stream socket whose peer,
    /// inode [`OTHER`], is not in this process but may be another process's of
    /// the tree; the bytes queued for this end follow (the tree's loader makes
    /// one pair for the two ends, or it is a dropped connection).
    pub const TREE_PEER: u64 = 4;
    /// FILES version 4: one end of a TCP connection whose other end is record
    /// [`OTHER`] of the table (a connection the process made to itself); the
    /// bytes queued for this end follow. The first end makes both: a new
    /// connection between the same addresses where they are free, through the
    /// listening socket of the table that accepted it if there is one.
    pub const CONNECTION: u64 = 5;
    /// FILES version 4: a stream socket (TCP or UNIX) connected to the
    /// listening socket that is record [`OTHER`] of the table, which had not
    /// accepted it yet (the connection waits in its queue); two u64 follow:
    /// the bytes this socket had sent there, which a restart cannot give back,
    /// and its peer address length.
    /// It is connected to that socket again once the listening sockets are.
    pub const QUEUED: u64 = 6;
    /// [`QUEUED`]: the word after the parameters that holds the bytes it lost,
    pub const LOST: usize = (super::SOCKET_DATA_LEN / 8) as usize;
    /// and the next, its peer address length ([`OTHER`] names the listener).
    pub const QUEUED_PEER_LEN: usize = LOST + 1;
}

/// Bytes of one watch of an inotify instance (see [`fkind::INOTIFY`]).
pub const INOTIFY_WATCH_LEN: u64 = 56;

/// The FILES section's format version: 2 added [`fkind::INOTIFY`], 3 socket
/// state [`sock::TREE_PEER`], 4 [`sock::CONNECTION`] and [`sock::QUEUED`]; older
/// payloads are read as they are.
pub const VERSION: u32 = 4;

/// Bytes of a terminal's saved settings (see [`fkind::TTY`]).
pub const TTY_DATA_LEN: u64 = 56;

/// `FileRec::share` when the description is not shared with an earlier record.
pub const NO_SHARE: u32 = u32::MAX;

record! {
    /// The counts of the FILES section.
    pub struct FilesHeader [FILES_HEADER_LEN = 32] {
        /// Number of [`FileRec`].
        pub nfiles: u64,
        /// Number of [`MapRec`].
        pub nmaps: u64,
        /// Bytes of the blob after the records.
        pub blob_len: u64,
        /// Reserved, zero.
        pub reserved: u64,
    }
}

record! {
    /// One open descriptor.
    pub struct FileRec [FILE_REC_LEN = 88] {
        /// The descriptor number.
        pub fd: u32,
        /// [`fkind`].
        pub kind: u32,
        /// [`how`].
        pub how: u32,
        /// The file status flags (`O_*`, from /proc/self/fdinfo), without O_CLOEXEC.
        pub flags: u32,
        /// 1 if close-on-exec.
        pub cloexec: u32,
        /// Index of the record whose open file description this one shares, or
        /// [`NO_SHARE`].
        pub share: u32,
        /// The file offset.
        pub pos: u64,
        /// Device of the file (major << 32 | minor).
        pub dev: u64,
        /// Inode number.
        pub ino: u64,
        /// Size in bytes at checkpoint time.
        pub size: u64,
        /// Mode (type and permissions); for a memfd (a deleted file whose path
        /// starts with `/memfd:`), bits 16-23 hold its seals (F_GET_SEALS).
        pub mode: u32,
        /// [`why`], for a placeholder.
        pub why: u32,
        /// The path (or the kernel's name, `pipe:[123]`) in the blob.
        pub path_off: u32,
        /// Its length.
        pub path_len: u32,
        /// The saved content (deleted files) in the blob.
        pub data_off: u64,
        /// Its length.
        pub data_len: u64,
    }
}

record! {
    /// A MAP_SHARED mapping of a file, mapped again from that file at restart.
    pub struct MapRec [MAP_REC_LEN = 48] {
        /// First address.
        pub start: u64,
        /// One past the last address.
        pub end: u64,
        /// Offset in the file.
        pub offset: u64,
        /// Device (major << 32 | minor).
        pub dev: u64,
        /// Inode number.
        pub ino: u64,
        /// The path in the blob.
        pub path_off: u32,
        /// Its length.
        pub path_len: u32,
    }
}

/// A validated FILES section.
#[derive(Clone, Copy, Debug)]
pub struct Files<'a> {
    /// The counts.
    pub header: FilesHeader,
    files: &'a [u8],
    maps: &'a [u8],
    blob: &'a [u8],
}

impl<'a> Files<'a> {
    /// Bytes a section with these counts takes.
    pub const fn len_for(nfiles: usize, nmaps: usize, blob: usize) -> usize {
        FILES_HEADER_LEN + nfiles * FILE_REC_LEN + nmaps * MAP_REC_LEN + blob
    }

    /// Check the whole payload: lengths, every record's ranges and values.
    pub fn parse(data: &'a [u8]) -> Result<Files<'a>, ImageError> {
        let bad = ImageError::BadSection { tag: tag::FILES };
        let h = FilesHeader::decode(data).map_err(|_| bad)?;
        if h.nfiles > 1 << 20 || h.nmaps > 1 << 20 || h.blob_len > 1 << 30 {
            return Err(bad);
        }
        let (nf, nm, nb) = (h.nfiles as usize, h.nmaps as usize, h.blob_len as usize);
        if data.len() != Self::len_for(nf, nm, nb) {
            return Err(bad);
        }
        let f0 = FILES_HEADER_LEN;
        let m0 = f0 + nf * FILE_REC_LEN;
        let b0 = m0 + nm * MAP_REC_LEN;
        let files = Files { header: h, files: &data[f0..m0], maps: &data[m0..b0], blob: &data[b0..] };
        let in_blob = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= h.blob_len);
        let mut prev_fd = None::<u32>;
        let mut content = 0u64;
        for (i, r) in files.files().enumerate() {
            let ok = prev_fd.is_none_or(|p| r.fd > p)
                && r.fd < 1 << 30
                && (1..=fkind::MAX).contains(&r.kind)
                && (1..=how::MAX).contains(&r.how)
                && r.cloexec <= 1
                && r.why <= why::MAX
                && in_blob(r.path_off as u64, r.path_len as u64)
                && in_blob(r.data_off, r.data_len)
                && (matches!(r.how, how::CONTENT | how::NEW)
                    || (r.how == how::PIPE && r.share == NO_SHARE)
                    || (r.kind == fkind::TTY && r.data_len == TTY_DATA_LEN)
                    || (r.how == how::REOPEN && r.kind != fkind::TTY && r.data_len % 24 == 0)
                    || r.data_len == 0)
                && (r.how != how::NEW
                    || match r.kind {
                        fkind::EVENTFD => r.data_len == 16,
                        fkind::TIMERFD => r.data_len == 48,
                        fkind::SIGNALFD => r.data_len == 8,
                        fkind::EPOLL => r.data_len % 24 == 0,
                        fkind::INOTIFY => {
                            r.data_len >= 8
                                && (r.data_len - 8) % INOTIFY_WATCH_LEN == 0
                                && files.watches(&r).all(|w| in_blob(w.path_off, w.path_len))
                        }
                        fkind::SOCKET => r.data_len >= SOCKET_DATA_LEN,
                        _ => false,
                    })
                && match r.how {
                    how::DUP => {
                        (r.share as usize) < i && files.file(r.share as usize).is_some_and(|s| s.how != how::DUP)
                    }
                    how::PIPE if r.share != NO_SHARE => {
                        (r.share as usize) < i
                            && files.file(r.share as usize).is_some_and(|s| s.how == how::PIPE && s.share == NO_SHARE)
                    }
                    _ => r.share == NO_SHARE,
                }
                && match r.how {
                    how::PLACEHOLDER => !matches!(r.why, why::NONE | why::OUTSIDE | why::GENERATED),
                    how::PIPE => r.why == why::NONE || r.why == why::OUTSIDE,
                    how::REOPEN => r.why == why::NONE || (r.why == why::GENERATED && r.kind == fkind::REG),
                    _ => r.why == why::NONE,
                };
            if !ok {
                return Err(bad);
            }
            content += r.data_len;
            prev_fd = Some(r.fd);
        }
        if content > MAX_CONTENT {
            return Err(bad);
        }
        // A socket that names another record names one that names it back (a
        // pair, a connection) or a listening socket (a queued connection).
        let socket_in = |j: u64, state: u64| {
            files
                .file(j as usize)
                .filter(|o| o.how == how::NEW && o.kind == fkind::SOCKET && files.word(o, sock::STATE) == state)
        };
        for (i, r) in files.files().enumerate().filter(|(_, r)| r.how == how::NEW && r.kind == fkind::SOCKET) {
            let (state, other) = (files.word(&r, sock::STATE), files.word(&r, sock::OTHER));
            let ok = match state {
                sock::PLAIN | sock::LISTENING | sock::DROPPED | sock::TREE_PEER => true,
                sock::PAIR | sock::CONNECTION => {
                    other as usize != i
                        && socket_in(other, state).is_some_and(|o| files.word(&o, sock::OTHER) == i as u64)
                }
                sock::QUEUED => r.data_len == SOCKET_DATA_LEN + 16 && socket_in(other, sock::LISTENING).is_some(),
                _ => false,
            };
            if !ok {
                return Err(bad);
            }
        }
        for m in files.maps() {
            if m.start >= m.end || !in_blob(m.path_off as u64, m.path_len as u64) || m.path_len == 0 {
                return Err(bad);
            }
        }
        Ok(files)
    }

    /// Number of descriptors.
    pub fn nfiles(&self) -> usize {
        self.header.nfiles as usize
    }

    /// Record `i`.
    pub fn file(&self, i: usize) -> Option<FileRec> {
        let o = i.checked_mul(FILE_REC_LEN)?;
        FileRec::decode(self.files.get(o..o + FILE_REC_LEN)?).ok()
    }

    /// Every descriptor, ascending.
    pub fn files(&self) -> impl Iterator<Item = FileRec> + 'a {
        let t = *self;
        (0..t.nfiles()).filter_map(move |i| t.file(i))
    }

    /// Every shared file mapping.
    pub fn maps(&self) -> impl Iterator<Item = MapRec> + 'a {
        let t = *self;
        (0..t.header.nmaps as usize)
            .filter_map(move |i| MapRec::decode(t.maps.get(i * MAP_REC_LEN..(i + 1) * MAP_REC_LEN)?).ok())
    }

    /// The shared file mapping that starts at `start`, if any.
    pub fn map_at(&self, start: u64) -> Option<MapRec> {
        self.maps().find(|m| m.start == start)
    }

    /// Bytes `(off, len)` of the blob (empty if out of range: validated anyway).
    pub fn blob(&self, off: u64, len: u64) -> &'a [u8] {
        let (o, l) = (off as usize, len as usize);
        self.blob.get(o..o.saturating_add(l)).unwrap_or(&[])
    }

    /// The path of a descriptor.
    pub fn path(&self, r: &FileRec) -> &'a [u8] {
        self.blob(r.path_off as u64, r.path_len as u64)
    }

    /// The path of a mapping.
    pub fn map_path(&self, m: &MapRec) -> &'a [u8] {
        self.blob(m.path_off as u64, m.path_len as u64)
    }

    /// The saved content of a deleted file, a pipe's queued bytes, or the
    /// parameters of a descriptor made anew.
    pub fn content(&self, r: &FileRec) -> &'a [u8] {
        self.blob(r.data_off, r.data_len)
    }

    /// The watches of an inotify record (see [`fkind::INOTIFY`]).
    pub fn watches(&self, r: &FileRec) -> impl Iterator<Item = Watch> + '_ {
        let n = if r.kind == fkind::INOTIFY { r.data_len.saturating_sub(8) / INOTIFY_WATCH_LEN } else { 0 };
        let r = *r;
        (0..n as usize).map(move |k| {
            let w = |i| self.word(&r, 1 + 7 * k + i);
            Watch { wd: w(0), mask: w(1), ino: w(2), dev: w(3), path_off: w(4), path_len: w(5), ctime_ns: w(6) }
        })
    }

    /// The path of an inotify watch (empty: not found at checkpoint time).
    pub fn watch_path(&self, w: &Watch) -> &'a [u8] {
        self.blob(w.path_off, w.path_len)
    }

    /// Word `i` of the parameters of a descriptor made anew (0 past the end).
    pub fn word(&self, r: &FileRec, i: usize) -> u64 {
        let b = self.content(r);
        b.get(i * 8..i * 8 + 8).map_or(0, |w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    }

    /// A socket record's own address (see [`fkind::SOCKET`]).
    pub fn sock_addr(&self, r: &FileRec) -> &'a [u8] {
        sock_bytes(self.content(r), 88, self.word(r, 9))
    }

    /// A socket record's peer address (see [`fkind::SOCKET`]; empty in the
    /// states whose [`sock::OTHER`] names another socket instead, but for
    /// [`sock::QUEUED`]).
    pub fn sock_peer(&self, r: &FileRec) -> &'a [u8] {
        let len = match self.word(r, sock::STATE) {
            sock::PAIR | sock::TREE_PEER | sock::CONNECTION => 0,
            sock::QUEUED => self.word(r, sock::QUEUED_PEER_LEN),
            _ => self.word(r, sock::OTHER),
        };
        sock_bytes(self.content(r), 216, len)
    }
}

fn sock_bytes(d: &[u8], at: usize, len: u64) -> &[u8] {
    d.get(at..at + (len as usize).min(128)).unwrap_or(&[])
}

/// Whether a MAP_SHARED mapping of `len` bytes at `offset` of the deleted file
/// or memfd that record `r` holds ([`how::CONTENT`], the same path) is mapped
/// from the restored descriptor again, so that the two share pages as they did:
/// when it lies within the saved content (its last page may be partial), and
/// the descriptor is open for reading and writing and not sealed against
/// writes (the restart writes the saved pages in through the mapping).
pub fn maps_content(r: &FileRec, offset: u64, len: u64) -> bool {
    const O_ACCMODE: u32 = 3;
    const O_RDWR: u32 = 2;
    // F_SEAL_WRITE | F_SEAL_FUTURE_WRITE, kept in bits 16-23 of `mode`.
    const WRITE_SEALS: u32 = 0x08 | 0x10;
    r.how == how::CONTENT
        && r.flags & O_ACCMODE == O_RDWR
        && (r.mode >> 16) & WRITE_SEALS == 0
        && offset.checked_add(len).is_some_and(|e| e <= r.data_len.next_multiple_of(4096))
}

/// Whether a socket of `domain` listening on `addr` takes the connections made
/// to `to` (sockaddrs as getsockname gives them): the same path, or the same
/// port on the same address or on the wildcard one.
pub fn serves(domain: u64, addr: &[u8], to: &[u8]) -> bool {
    let (a, p) = (addr, to);
    match domain {
        1 => a.len() > 2 && a == p,
        2 if a.len() >= 8 && p.len() >= 8 => a[2..4] == p[2..4] && (a[4..8] == [0; 4] || a[4..8] == p[4..8]),
        10 if a.len() >= 24 && p.len() >= 24 => a[2..4] == p[2..4] && (a[8..24] == [0; 16] || a[8..24] == p[8..24]),
        _ => false,
    }
}

/// One watch of an inotify instance (see [`fkind::INOTIFY`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// Its watch descriptor.
    pub wd: u64,
    /// Its event mask (with IN_ONESHOT, IN_EXCL_UNLINK... as the kernel keeps them).
    pub mask: u64,
    /// The watched inode.
    pub ino: u64,
    /// Its device (major << 32 | minor).
    pub dev: u64,
    /// Its path in the blob.
    pub path_off: u64,
    /// Its length (0: not found).
    pub path_len: u64,
    /// The file's ctime (ns) at checkpoint time.
    pub ctime_ns: u64,
}

impl Watch {
    /// The seven words of its entry.
    pub fn words(&self) -> [u64; 7] {
        [self.wd, self.mask, self.ino, self.dev, self.path_off, self.path_len, self.ctime_ns]
    }
}

/// Lays a FILES section out in a caller's buffer (the runtime has no allocator):
/// the counts are fixed first, records and blob bytes are then put in place.
pub struct FilesWriter<'a> {
    buf: &'a mut [u8],
    nfiles: usize,
    nmaps: usize,
    blob: usize,
}

impl<'a> FilesWriter<'a> {
    /// A writer for at most `nfiles` and `nmaps` records in `buf` (the rest of
    /// `buf` is room for the blob).
    pub fn new(buf: &'a mut [u8], nfiles: usize, nmaps: usize) -> Option<Self> {
        (buf.len() >= Files::len_for(nfiles, nmaps, 0)).then_some(FilesWriter { buf, nfiles, nmaps, blob: 0 })
    }

    fn blob0(&self) -> usize {
        Files::len_for(self.nfiles, self.nmaps, 0)
    }

    /// Append bytes to the blob; returns their offset.
    pub fn blob(&mut self, b: &[u8]) -> Option<u64> {
        let at = self.blob0() + self.blob;
        let end = at.checked_add(b.len())?;
        self.buf.get_mut(at..end)?.copy_from_slice(b);
        self.blob += b.len();
        Some((at - self.blob0()) as u64)
    }

    /// Room left in the blob.
    pub fn room(&self) -> usize {
        self.buf.len() - self.blob0() - self.blob
    }

    /// A mutable window of `len` blob bytes, appended (filled by the caller);
    /// returns its offset and the window.
    pub fn blob_window(&mut self, len: usize) -> Option<(u64, &mut [u8])> {
        let at = self.blob0() + self.blob;
        let end = at.checked_add(len)?;
        if end > self.buf.len() {
            return None;
        }
        self.blob += len;
        let off = (at - self.blob0()) as u64;
        Some((off, &mut self.buf[at..end]))
    }

    /// The `len` blob bytes at `off`, copied (something already put in).
    pub fn read_back(&self, off: u64, len: u64) -> Option<[u8; SOCKET_DATA_LEN as usize]> {
        let at = self.blob0() + off as usize;
        let mut out = [0u8; SOCKET_DATA_LEN as usize];
        if len as usize != out.len() || off as usize + len as usize > self.blob {
            return None;
        }
        out.copy_from_slice(self.buf.get(at..at + len as usize)?);
        Some(out)
    }

    /// Give back the last `len` blob bytes (a window not filled after all).
    pub fn unblob(&mut self, len: usize) {
        self.blob -= len.min(self.blob);
    }

    /// Store descriptor record `i`.
    pub fn file(&mut self, i: usize, r: &FileRec) {
        let o = FILES_HEADER_LEN + i * FILE_REC_LEN;
        r.encode(&mut self.buf[o..o + FILE_REC_LEN]);
    }

    /// Store mapping record `i`.
    pub fn map(&mut self, i: usize, m: &MapRec) {
        let o = FILES_HEADER_LEN + self.nfiles * FILE_REC_LEN + i * MAP_REC_LEN;
        m.encode(&mut self.buf[o..o + MAP_REC_LEN]);
    }

    /// Finish with the actual counts (`nfiles`/`nmaps` at most those given to
    /// `new`; records beyond them are squeezed out): the payload's length.
    pub fn finish(self, nfiles: usize, nmaps: usize) -> usize {
        let (nf, nm) = (nfiles.min(self.nfiles), nmaps.min(self.nmaps));
        let m_from = FILES_HEADER_LEN + self.nfiles * FILE_REC_LEN;
        let b_from = self.blob0();
        let m_to = FILES_HEADER_LEN + nf * FILE_REC_LEN;
        let b_to = m_to + nm * MAP_REC_LEN;
        self.buf.copy_within(m_from..m_from + nm * MAP_REC_LEN, m_to);
        self.buf.copy_within(b_from..b_from + self.blob, b_to);
        let h = FilesHeader { nfiles: nf as u64, nmaps: nm as u64, blob_len: self.blob as u64, reserved: 0 };
        h.encode(self.buf);
        b_to + self.blob
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with each kind of record parses; damage is refused.
    #[test]
    fn round_trip_and_checks() {
        let mut buf = [0u8; 4096];
        let mut w = FilesWriter::new(&mut buf, 3, 1).unwrap();
        let p = w.blob(b"/dev/pts/0").unwrap();
        let d = w.blob(&[0u8; TTY_DATA_LEN as usize]).unwrap();
        let tty = FileRec {
            fd: 0,
            kind: fkind::TTY,
            how: how::SHELL,
            share: NO_SHARE,
            path_off: p as u32,
            path_len: 10,
            data_off: d,
            data_len: TTY_DATA_LEN,
            ..Default::default()
        };
        w.file(0, &tty);
        w.file(1, &FileRec { fd: 1, data_len: 0, data_off: 0, ..tty });
        w.file(2, &FileRec { fd: 2, how: how::DUP, share: 0, ..tty });
        w.map(0, &MapRec { start: 0x1000, end: 0x2000, path_off: p as u32, path_len: 10, ..Default::default() });
        let n = w.finish(3, 1);
        let f = Files::parse(&buf[..n]).unwrap();
        assert_eq!(f.files().count(), 3);
        assert_eq!(f.path(&f.file(0).unwrap()), b"/dev/pts/0");
        assert!(Files::parse(&buf[..n - 1]).is_err());
        let mut bad = buf;
        bad[FILES_HEADER_LEN + 8] = 99; // how of record 0
        assert!(Files::parse(&bad[..n]).is_err());
    }
}
