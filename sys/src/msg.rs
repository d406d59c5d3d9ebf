//! Diagnostics without `core::fmt`: a line is assembled from `&str` pieces and
//! numbers in a stack buffer and written to fd 2 with one `write(2)`.
//!
//! `core::fmt` is avoided on purpose: it pulls in vtables (relocated statics the
//! loader must not have) and a lot of code, and it is not needed to say what went
//! wrong. Safe to call from a signal handler and before the address space is whole.

use crate::{Errno, Fd};

/// A message line being assembled; long lines are truncated, never overflowed.
pub struct Msg {
    buf: [u8; 1024],
    len: usize,
}

impl Default for Msg {
    fn default() -> Self {
        Self::new()
    }
}

impl Msg {
    /// An empty line.
    pub const fn new() -> Self {
        Msg { buf: [0; 1024], len: 0 }
    }

    /// Append bytes.
    pub fn b(mut self, s: &[u8]) -> Self {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    /// Append a string.
    pub fn s(self, s: &str) -> Self {
        self.b(s.as_bytes())
    }

    /// Append an unsigned decimal number.
    pub fn u(self, mut v: u64) -> Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.b(&d[i..])
    }

    /// Append a signed decimal number.
    pub fn i(self, v: i64) -> Self {
        if v < 0 { self.s("-").u(v.unsigned_abs()) } else { self.u(v as u64) }
    }

    /// Append `0x` and a hexadecimal number.
    pub fn x(self, mut v: u64) -> Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        loop {
            i -= 1;
            let n = (v & 15) as u8;
            d[i] = if n < 10 { b'0' + n } else { b'a' + n - 10 };
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.s("0x").b(&d[i..])
    }

    /// Append `text (NAME)` for an errno.
    pub fn errno(self, e: Errno) -> Self {
        self.s(e.text()).s(" (").s(e.name()).s(")")
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Add a newline and write the line to stderr. Errors are ignored: there is
    /// nowhere left to report them.
    pub fn emit(self) {
        let m = self.s("\n");
        let _ = crate::write_all(Fd::STDERR, m.as_bytes());
    }
}
