//! Answering `ckpt checkpoint PID`: a checkpoint requested from outside, with
//! the trigger signal queued with a value of ours (the protocol, pipes reached
//! through /proc, is in `ckpt_sys::request`). The request may name the file (`-n`)
//! and ask this one checkpoint to continue (`-c`); the process's own settings
//! are otherwise those in force, and none of them changes.
//!
//! The request lives in the state for the duration of one checkpoint (so in its
//! image: the restarted process clears it and never answers the old requester).
//! Each answer opens the requester's descriptor, writes one line and closes it
//! again, non-blocking: the program never waits for the requester and keeps no
//! descriptor of it.

use core::ffi::CStr;

use ckpt_sys::msg::Msg;
use ckpt_sys::request::{self as proto, Record};
use ckpt_sys::{Errno, Fd, c};

use crate::config::Path;
use crate::failure::Failure;

/// One checkpoint asked for by `ckpt checkpoint` (or none: `pid == 0`).
#[derive(Clone, Copy)]
pub struct Request {
    /// The requester's pid (its /proc directory holds the descriptors).
    pid: i32,
    /// Its descriptor of the reply pipe's write end.
    reply_fd: u32,
    /// Continue after this checkpoint.
    pub cont: bool,
    /// The file to write; empty: the process's own name.
    pub name: Path,
}

/// `/proc/PID/fd/FD` and a NUL, in `buf`.
fn fd_path(buf: &mut [u8; 48], pid: i32, fd: u32) -> Option<&CStr> {
    let m = Msg::new().s("/proc/").u(pid as u64).s("/fd/").u(fd as u64).b(b"\0");
    let b = m.as_bytes();
    buf.get_mut(..b.len())?.copy_from_slice(b);
    CStr::from_bytes_with_nul(&buf[..b.len()]).ok()
}

impl Request {
    /// No request.
    pub const NONE: Request = Request { pid: 0, reply_fd: 0, cont: false, name: Path::EMPTY };

    /// The request on descriptor `fd` of process `pid` (the signal's `si_pid`).
    pub fn read(pid: i32, fd: u16) -> Result<Request, Failure> {
        let bad = |e: Errno| Failure::bare("reading the request of 'ckpt checkpoint'", e);
        let mut pbuf = [0u8; 48];
        let path = fd_path(&mut pbuf, pid, fd as u32).ok_or(bad(Errno::EINVAL))?;
        let f = ckpt_sys::openat(Fd::CWD, path, c::O_RDONLY | c::O_NONBLOCK | c::O_CLOEXEC, 0).map_err(bad)?;
        let mut buf = [0u8; proto::RECORD_MAX + 1];
        let mut n = 0;
        // The requester wrote the whole record and closed its end before the
        // signal: read to end of file, never waiting.
        let r = loop {
            match ckpt_sys::read(f, &mut buf[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) if n + k < buf.len() => n += k,
                Ok(_) => break Err(Errno::EOVERFLOW),
                Err(Errno::EINTR) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = ckpt_sys::close(f);
        r.map_err(bad)?;
        let rec = Record::decode(&buf[..n]).ok_or(bad(Errno::EINVAL))?;
        let name = Path::new(rec.name).ok_or(bad(Errno::ENAMETOOLONG))?;
        Ok(Request { pid, reply_fd: rec.reply_fd, cont: rec.cont, name })
    }

    /// Is there a request?
    pub fn active(&self) -> bool {
        self.pid != 0
    }

    /// The name asked for, if any.
    pub fn name(&self) -> Option<&[u8]> {
        (!self.name.is_empty()).then(|| self.name.as_bytes())
    }

    /// Write `line` (with its newline) to the requester. Errors are ignored:
    /// the requester gave up or died; the checkpoint goes on all the same.
    fn send(&self, line: &[u8]) {
        if !self.active() {
            return;
        }
        let mut pbuf = [0u8; 48];
        let Some(path) = fd_path(&mut pbuf, self.pid, self.reply_fd) else { return };
        if let Ok(f) = ckpt_sys::openat(Fd::CWD, path, c::O_WRONLY | c::O_NONBLOCK | c::O_CLOEXEC, 0) {
            let _ = ckpt_sys::write_all(f, line);
            let _ = ckpt_sys::close(f);
        }
    }

    /// The handler took the request.
    pub fn accepted(&self) {
        self.send(b"accepted\n");
    }

    /// In the background writer: it writes the image.
    pub fn writer(&self) {
        self.send(Msg::new().s("writer ").u(ckpt_sys::getpid() as u64).s("\n").as_bytes());
    }

    /// The image `path` of `bytes` is durable.
    pub fn ok(&self, path: &[u8], bytes: u64) {
        if !self.active() {
            return;
        }
        // "ok SIZE " + the working directory + "/" + path + "\n".
        let mut line = [0u8; 2 * crate::config::NAME_MAX + 64];
        let head = Msg::new().s("ok ").u(bytes).s(" ");
        let mut n = head.as_bytes().len();
        line[..n].copy_from_slice(head.as_bytes());
        if !path.starts_with(b"/") {
            match ckpt_sys::getcwd(&mut line[n..n + crate::config::NAME_MAX]) {
                // The length counts the NUL, which the '/' replaces.
                Ok(k) if k > 0 => {
                    n += k - 1;
                    line[n] = b'/';
                    n += 1;
                }
                _ => {}
            }
        }
        line[n..n + path.len()].copy_from_slice(path);
        n += path.len();
        line[n] = b'\n';
        self.send(&line[..n + 1]);
    }

    /// The checkpoint failed.
    pub fn fail(&self, f: &Failure) {
        if self.active() {
            self.send(f.line(Msg::new().s("fail ")).s("\n").as_bytes());
        }
    }
}
