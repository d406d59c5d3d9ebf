//! The protocol of `ckpt checkpoint PID`, a checkpoint requested from outside the
//! process: shared by the runtime (which answers) and the `ckpt` command (which
//! asks), so that both read and write the same bytes.
//!
//! 1. The command makes two pipes. Into the first it writes a [`Record`] (the
//!    flags, the number of its descriptor of the second pipe's write end, the
//!    name) and closes that write end.
//! 2. It queues the process's trigger signal with `sigqueue` (SI_QUEUE), its own
//!    pid as `si_pid` and [`value`]`(fd)` as `si_value`, `fd` being its read end
//!    of the first pipe.
//! 3. The runtime's handler recognises the value, opens `/proc/SI_PID/fd/FD`
//!    (non-blocking: the program never waits for the requester), reads the
//!    record and closes it; it answers by opening `/proc/SI_PID/fd/REPLY` the same
//!    way, writing one line and closing it again, each time: no descriptor stays
//!    open in the program, none is in the image. The lines ([`Reply`]):
//!    `accepted` (the handler took the request), `writer PID` (continue mode: a
//!    background writer writes the image; once the command has read this it
//!    closes its own write end, so that the writer's end, or its death, ends the
//!    pipe), then `ok SIZE PATH` (durable, PATH absolute) or `fail MESSAGE`.
//!
//! Opening another process's descriptor through /proc needs the same access as
//! reading its memory (same user, dumpable): the requester is checked by the
//! kernel, not by a value anyone could forge.

/// The high half of `si_value` that marks a request ("cr"); the low half is the
/// requester's descriptor. Unlike the periodic timer's value ("ckpt").
const TAG: u32 = 0x6372_0000;

/// `si_value` of a request whose record is on the requester's descriptor `fd`.
pub fn value(fd: u16) -> usize {
    (TAG | fd as u32) as usize
}

/// The requester's descriptor if `v` is a request's `si_value`.
pub fn fd_of(v: usize) -> Option<u16> {
    (v & 0xffff_0000 == TAG as usize).then_some((v & 0xffff) as u16)
}

/// The siginfo to queue (`rt_sigqueueinfo`) `sig` with: SI_QUEUE, the
/// requester's `pid` and `uid`, [`value`]`(fd)`. In this build's layout (the
/// kernel converts it for a 32-bit receiver).
pub fn siginfo(sig: u32, pid: i32, uid: u32, fd: u16) -> [u8; 128] {
    // si_pid follows si_signo, si_errno, si_code (and, on 64-bit, padding to 8);
    // si_uid follows it, then si_value.
    const SI_PID: usize = if cfg!(target_pointer_width = "64") { 16 } else { 12 };
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&(sig as i32).to_ne_bytes());
    b[8..12].copy_from_slice(&crate::c::SI_QUEUE.to_ne_bytes());
    b[SI_PID..SI_PID + 4].copy_from_slice(&pid.to_ne_bytes());
    b[SI_PID + 4..SI_PID + 8].copy_from_slice(&uid.to_ne_bytes());
    let v = SI_PID + 8;
    b[v..v + core::mem::size_of::<usize>()].copy_from_slice(&value(fd).to_ne_bytes());
    b
}

/// The first bytes of a record.
const MAGIC: [u8; 4] = *b"CKRQ";
/// Bytes before the name.
const HEAD: usize = 16;
/// Flag: this checkpoint continues, whatever the process's own setting.
const CONTINUE: u32 = 1;
/// Longest name a record carries (the runtime's path limit).
pub const NAME_MAX: usize = 4095;
/// Longest record.
pub const RECORD_MAX: usize = HEAD + NAME_MAX;

/// A request: what the command asks for this one checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Continue after this checkpoint (`-c`), whatever the process's setting.
    pub cont: bool,
    /// The requester's descriptor of the reply pipe's write end.
    pub reply_fd: u32,
    /// The file to write (`-n`), empty for the process's own name.
    pub name: &'a [u8],
}

impl Record<'_> {
    /// The bytes, into `out`; their length (`None`: the name is too long).
    pub fn encode(&self, out: &mut [u8; RECORD_MAX]) -> Option<usize> {
        if self.name.len() > NAME_MAX || self.name.contains(&0) {
            return None;
        }
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&(if self.cont { CONTINUE } else { 0 }).to_le_bytes());
        out[8..12].copy_from_slice(&self.reply_fd.to_le_bytes());
        out[12..16].copy_from_slice(&(self.name.len() as u32).to_le_bytes());
        out[HEAD..HEAD + self.name.len()].copy_from_slice(self.name);
        Some(HEAD + self.name.len())
    }

    /// Read a whole record from `b`; `None` if it is not one.
    pub fn decode(b: &[u8]) -> Option<Record<'_>> {
        let word = |o: usize| b.get(o..o + 4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        if b.get(..4) != Some(&MAGIC[..]) {
            return None;
        }
        let (flags, reply_fd, len) = (word(4)?, word(8)?, word(12)? as usize);
        if flags & !CONTINUE != 0 || len > NAME_MAX || b.len() != HEAD + len {
            return None;
        }
        let name = &b[HEAD..];
        if name.contains(&0) {
            return None;
        }
        Some(Record { cont: flags & CONTINUE != 0, reply_fd, name })
    }
}

/// One line of the runtime's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The handler took the request; the checkpoint starts.
    Accepted,
    /// A background writer (this pid) writes the image.
    Writer(u32),
    /// The image is durable: its size and absolute path.
    Ok(u64, &'a [u8]),
    /// The checkpoint failed: why (the runtime's line, without `ckpt: `).
    Fail(&'a [u8]),
}

impl Reply<'_> {
    /// Parse one line, without its newline.
    pub fn parse(line: &[u8]) -> Option<Reply<'_>> {
        if line == b"accepted" {
            return Some(Reply::Accepted);
        }
        if let Some(pid) = line.strip_prefix(b"writer ") {
            return crate::num::small(pid).map(Reply::Writer);
        }
        if let Some(rest) = line.strip_prefix(b"ok ") {
            let sp = rest.iter().position(|&c| c == b' ')?;
            return Some(Reply::Ok(crate::num::parse(&rest[..sp], 10)?, &rest[sp + 1..]));
        }
        line.strip_prefix(b"fail ").map(Reply::Fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(fd_of(value(7)), Some(7));
        assert_eq!(fd_of(0x636b_7074), None); // the periodic timer's value
        assert_eq!(fd_of(0), None);
    }

    #[test]
    fn records() {
        let mut out = [0u8; RECORD_MAX];
        let r = Record { cont: true, reply_fd: 9, name: b"/tmp/x.ckpt" };
        let n = r.encode(&mut out).unwrap();
        assert_eq!(Record::decode(&out[..n]), Some(r));
        assert_eq!(Record::decode(&out[..n - 1]), None);
        let r = Record { cont: false, reply_fd: 3, name: b"" };
        let n = r.encode(&mut out).unwrap();
        assert_eq!(Record::decode(&out[..n]), Some(r));
        assert!(Record { cont: false, reply_fd: 3, name: b"a\0b" }.encode(&mut out).is_none());
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::parse(b"accepted"), Some(Reply::Accepted));
        assert_eq!(Reply::parse(b"writer 12"), Some(Reply::Writer(12)));
        assert_eq!(Reply::parse(b"ok 4096 /a b/c.ckpt"), Some(Reply::Ok(4096, b"/a b/c.ckpt")));
        assert_eq!(Reply::parse(b"fail No space"), Some(Reply::Fail(b"No space")));
        assert_eq!(Reply::parse(b"ok x /a"), None);
        assert_eq!(Reply::parse(b"hello"), None);
    }
}
