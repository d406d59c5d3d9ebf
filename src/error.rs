//! The one error type of the command: a message and the exit status to use.

use std::fmt;

/// Exit status for a bad command line (the same status clap uses).
pub const USAGE: u8 = 2;
/// Exit status for an installation problem (runtime library missing or unusable).
pub const FAILURE: u8 = 1;
/// Exit status when the program exists but cannot or will not be run (as in sh).
pub const CANNOT_EXECUTE: u8 = 126;
/// Exit status when the program does not exist (as in sh).
pub const NOT_FOUND: u8 = 127;

/// A fatal error: printed as `ckpt: <message>`, then the process exits with `status`.
#[derive(Debug)]
pub struct Error {
    pub status: u8,
    pub message: String,
}

impl Error {
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
