//! `ckpt checkpoint PID [-n NAME] [-c] [--timeout SECONDS]`: have a running
//! process that has the runtime (started under `ckpt`, linked with libckpt.a,
//! restarted from an image) write a checkpoint now, wait until the image is
//! durable, and print its path and size; or say why not.
//!
//! The request goes with the process's own trigger signal, queued with a value
//! the runtime recognises (the protocol is `ckpt_sys::request`); the runtime
//! answers through a pipe of ours, line by line, and we wait for its lines, the
//! process's end and the background writer's end together (pidfds): no polling
//! interval, nothing missed. Before anything is sent, a process that would not
//! recognise the request is refused: the signal would only stop or kill it.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ckpt_sys::request::{Record, Reply};
use ckpt_sys::task::PollFd;

use crate::error::{Error, FAILURE};

/// What `/proc/PID` says about a process we are asked to checkpoint.
pub struct Target {
    pid: i32,
    /// Its `environ` (NUL-separated), as it was when it started (or restarted).
    environ: Vec<u8>,
    /// `SigCgt` of /proc/PID/status: the signals it has a handler for.
    caught: u64,
}

fn fail(message: impl Into<String>) -> Error {
    Error::new(FAILURE, message)
}

impl Target {
    pub fn open(pid: i32) -> Result<Target, Error> {
        let status = match fs::read(format!("/proc/{pid}/status")) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fail(format!("no such process: {pid}"))),
            Err(e) => return Err(fail(format!("cannot read /proc/{pid}/status: {e}"))),
        };
        let field = |key: &[u8]| {
            status.split(|&c| c == b'\n').find_map(|l| l.strip_prefix(key)).map(|v| v.trim_ascii().to_vec())
        };
        if field(b"State:").is_some_and(|s| s.starts_with(b"Z") || s.starts_with(b"X")) {
            return Err(fail(format!("process {pid} has exited (it is a zombie)")));
        }
        // Real, effective, saved, filesystem uids: all must be ours.
        let me = ckpt_sys::task::getuid();
        let uids = field(b"Uid:").unwrap_or_default();
        if uids.split(|c| c.is_ascii_whitespace()).filter(|u| !u.is_empty()).any(|u| u != me.to_string().as_bytes()) {
            return Err(fail(format!(
                "process {pid} belongs to another user (uids {}); only your own processes can be checkpointed",
                String::from_utf8_lossy(&uids).split_whitespace().collect::<Vec<_>>().join(" ")
            )));
        }
        let caught = field(b"SigCgt:").and_then(|v| ckpt_sys::num::parse(&v, 16)).unwrap_or(0);
        let environ = fs::read(format!("/proc/{pid}/environ"))
            .map_err(|e| fail(format!("cannot read the environment of process {pid}: {e}")))?;
        Ok(Target { pid, environ, caught })
    }

    fn var(&self, key: &str) -> Option<&[u8]> {
        self.environ.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
    }

    /// The signal list of the mark `ckpt hijack` named the runtime's mapping
    /// with, if the process has it (`/memfd:ckpt-runtime:20,10 (deleted)`).
    fn hijack_mark(&self) -> Option<String> {
        let maps = fs::read_to_string(format!("/proc/{}/maps", self.pid)).unwrap_or_default();
        let head = format!("/memfd:{}:", crate::hijack::MARK);
        maps.lines().find_map(|l| Some(l.split_once(&head)?.1.strip_suffix(" (deleted)")?.to_owned()))
    }

    /// Does the process run the ckpt runtime, active? Then why we think so.
    pub fn runtime(&self) -> Result<&'static str, Error> {
        let pid = self.pid;
        let starter = self.var("CKPT_PID").and_then(|v| ckpt_sys::num::parse(v, 10));
        if self.var("CKPT_TREE") == Some(b"1") && starter.is_some_and(|s| s != pid as u64) {
            return Err(fail(format!(
                "process {pid} is a member of the process tree of {}: checkpoint the tree's root, {}",
                starter.unwrap_or(0),
                starter.unwrap_or(0)
            )));
        }
        if starter == Some(pid as u64) {
            return Ok("started under ckpt");
        }
        if self.hijack_mark().is_some() {
            return Ok("put in by ckpt hijack");
        }
        let maps = fs::read(format!("/proc/{pid}/maps")).unwrap_or_default();
        let mapped = |name: &[u8]| maps.split(|&c| c == b'\n').any(|l| l.ends_with(name));
        if mapped(b"/libckpt.so") {
            return Ok("runtime preloaded");
        }
        let exe = format!("/proc/{pid}/exe");
        if crate::elf::has_runtime(Path::new(&exe)) {
            return Ok("runtime linked in");
        }
        if crate::inspect::is_image(Path::new(&exe)) {
            return Ok("restarted from a checkpoint");
        }
        Err(fail(format!(
            "process {pid} does not run the ckpt runtime (it was not started under ckpt, nor linked \
             with libckpt.a); the request would only reach it as a plain signal"
        )))
    }

    /// The signal to send: the first trigger signal it catches.
    fn trigger(&self) -> Result<u32, Error> {
        let pid = self.pid;
        let asked = self.var("CKPT_ASYNCSIG").map(|v| String::from_utf8_lossy(v).into_owned()).or(self.hijack_mark());
        let mut list = match asked.map(|v| crate::signal::parse_list(&v)) {
            Some(Ok(l)) => l,
            _ => vec![ckpt_sys::c::SIGTSTP],
        };
        if list == [0] {
            list.clear();
        }
        if self.var("CKPT_INTERVAL").is_some() {
            // The periodic timer's signal when no trigger signal is set.
            list.push(if list.is_empty() { 64 } else { list[0] });
        }
        let caught = |s: u32| self.caught & (1u64 << (s - 1)) != 0;
        match list.iter().copied().find(|&s| caught(s)) {
            Some(s) => Ok(s),
            None if list.is_empty() => Err(fail(format!(
                "process {pid} has no checkpoint trigger (it was started with -a 0): it cannot be asked from outside"
            ))),
            None => Err(fail(format!(
                "process {pid} does not catch its trigger signal {}: its runtime is passive (a child of the \
                 process ckpt started, or the program replaced the handler)",
                crate::signal::name(list[0])
            ))),
        }
    }
}

/// Checkpoint process `pid` now; print `PATH SIZE` once the image is durable.
pub fn checkpoint(pid: i32, name: Option<&OsStr>, cont: bool, timeout: u32) -> Result<(), Error> {
    if pid <= 0 {
        return Err(Error::usage(format!("invalid pid {pid}")));
    }
    let target = Target::open(pid)?;
    target.runtime()?;
    let sig = target.trigger()?;
    // A relative NAME is relative to where this command runs, not to the
    // process's working directory.
    let name = match name {
        Some(n) if n.is_empty() => return Err(Error::usage("the checkpoint name must not be empty")),
        Some(n) => Some(std::path::absolute(n).map_err(|e| fail(format!("{}: {e}", n.display())))?),
        None => None,
    };
    let (req_r, mut req_w) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let (mut reply_r, reply_w) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let name_bytes = name.as_deref().map_or(&b""[..], |n| n.as_os_str().as_bytes());
    let rec = Record { cont, reply_fd: reply_w.as_raw_fd() as u32, name: name_bytes };
    let mut buf = [0u8; ckpt_sys::request::RECORD_MAX];
    let n = rec.encode(&mut buf).ok_or_else(|| Error::usage("the checkpoint name is too long"))?;
    req_w.write_all(&buf[..n]).map_err(|e| fail(format!("pipe: {e}")))?;
    drop(req_w);
    let fd = u16::try_from(req_r.as_raw_fd()).map_err(|_| fail("too many open descriptors"))?;
    let proc_fd = pidfd(pid).ok_or_else(|| fail(format!("no such process: {pid}")))?;
    let info = ckpt_sys::request::siginfo(sig, std::process::id() as i32, ckpt_sys::task::getuid(), fd);
    ckpt_sys::settings::rt_sigqueueinfo(pid, sig, &info)
        .map_err(|e| fail(format!("cannot signal process {pid}: {}", e.text())))?;

    let deadline = Instant::now() + Duration::from_secs(timeout as u64);
    let mut wait = Wait { pid, accepted: false, writer: None, lines: Vec::new() };
    let r = wait.run(&mut reply_r, &proc_fd, deadline, timeout, sig);
    // Both ours until the answer is in: the runtime opens them by number.
    drop((req_r, reply_w));
    let (size, path) = r?;
    println!("{} {size}", String::from_utf8_lossy(&path));
    Ok(())
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = ckpt_sys::task::pidfd_open(pid).ok()?;
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd.0) })
}

/// The answer of a checkpoint that worked: the image's size and absolute path.
type Written = (u64, Vec<u8>);

/// Waiting for the runtime's answer.
struct Wait {
    pid: i32,
    accepted: bool,
    /// The background writer's pid and pidfd (`None` inside: it already ended).
    writer: Option<(u32, Option<OwnedFd>)>,
    /// Bytes of a line not yet complete.
    lines: Vec<u8>,
}

impl Wait {
    fn run(
        &mut self,
        reply: &mut std::io::PipeReader,
        proc_fd: &OwnedFd,
        deadline: Instant,
        timeout: u32,
        sig: u32,
    ) -> Result<Written, Error> {
        let pid = self.pid;
        loop {
            let mut fds = [
                PollFd { fd: reply.as_raw_fd(), events: 1, revents: 0 },
                PollFd { fd: proc_fd.as_raw_fd(), events: 1, revents: 0 },
                PollFd { fd: -1, events: 1, revents: 0 },
            ];
            if let Some((_, Some(w))) = &self.writer {
                fds[2].fd = w.as_raw_fd();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let n = match ckpt_sys::task::ppoll(&mut fds, Some(left.as_millis() as u64)) {
                Ok(n) => n,
                Err(ckpt_sys::Errno::EINTR) => continue,
                Err(e) => return Err(fail(format!("poll: {}", e.text()))),
            };
            if fds[0].revents != 0
                && let Some(done) = self.read(reply)?
            {
                return Ok(done);
            }
            if fds[1].revents != 0 {
                // Its last lines were written before it exited.
                if let Some(done) = self.drain(reply)? {
                    return Ok(done);
                }
                return Err(fail(if self.accepted {
                    format!("process {pid} ended before its checkpoint was durable (killed?)")
                } else {
                    format!("process {pid} ended without taking the request (killed by {}?)", crate::signal::name(sig))
                }));
            }
            let writer_gone = matches!(&self.writer, Some((_, None))) || fds[2].revents != 0;
            if writer_gone {
                if let Some(done) = self.drain(reply)? {
                    return Ok(done);
                }
                let w = self.writer.as_ref().map_or(0, |w| w.0);
                return Err(fail(format!(
                    "the background writer of process {pid} (pid {w}) ended before the image was durable \
                     (killed?); the previous image, if any, is intact"
                )));
            }
            if n == 0 && Instant::now() >= deadline {
                return Err(fail(if self.accepted {
                    format!("timeout: the checkpoint of process {pid} was not durable after {timeout} s")
                } else {
                    format!(
                        "timeout: process {pid} did not take the request within {timeout} s (is it stopped? \
                         does the program handle {} itself?)",
                        crate::signal::name(sig)
                    )
                }));
            }
        }
    }

    /// Everything readable now, without waiting.
    fn drain(&mut self, reply: &mut std::io::PipeReader) -> Result<Option<Written>, Error> {
        loop {
            let mut fds = [PollFd { fd: reply.as_raw_fd(), events: 1, revents: 0 }];
            if ckpt_sys::task::ppoll(&mut fds, Some(0)).unwrap_or(0) == 0 {
                return Ok(None);
            }
            if let Some(done) = self.read(reply)? {
                return Ok(Some(done));
            }
        }
    }

    /// One read (the pipe is readable); the image once its line came, the
    /// runtime's failure as an error.
    fn read(&mut self, reply: &mut std::io::PipeReader) -> Result<Option<Written>, Error> {
        let mut buf = [0u8; 16384];
        let n = reply.read(&mut buf).map_err(|e| fail(format!("reading the answer: {e}")))?;
        self.lines.extend_from_slice(&buf[..n]);
        while let Some(nl) = self.lines.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.lines.drain(..=nl).take(nl).collect();
            match Reply::parse(&line) {
                Some(Reply::Accepted) => self.accepted = true,
                Some(Reply::Writer(w)) => {
                    // ESRCH: it is done already; its last line is in the pipe.
                    self.writer = Some((w, pidfd(w as i32)));
                }
                Some(Reply::Ok(size, path)) => return Ok(Some((size, path.to_vec()))),
                Some(Reply::Fail(why)) => {
                    return Err(fail(format!("process {}: {}", self.pid, String::from_utf8_lossy(why))));
                }
                None => return Err(fail(format!("unexpected answer: {}", String::from_utf8_lossy(&line)))),
            }
        }
        Ok(None)
    }
}
