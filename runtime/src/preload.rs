//! Keep the runtime to the program it was started with, without losing it to a
//! wrapper that execs the real program (a pyenv-style `python3` shim, a shell
//! script ending in `exec prog`).
//!
//! `ckpt` execs PROG in its own process and tells the runtime that process's pid
//! in `CKPT_PID`. When the runtime loads:
//! - in that process (the program, or whatever it exec'd into: an exec keeps the
//!   pid), the runtime is active and leaves its `LD_PRELOAD` entry in place, so
//!   that the next exec in the same process loads it again;
//! - in any other process (a child the program started: a shell, a compiler,
//!   `system()`), the runtime stays passive (no trigger, no timer) and takes its
//!   entry out of `LD_PRELOAD`, so the child's own children do not load it at all
//!   and nothing but the program answers the checkpoint signal (they would all
//!   write into the same CKPT_NAME).
//!
//! Without `CKPT_PID` (`LD_PRELOAD=.../libckpt.so prog` by hand), the runtime is
//! active and takes its entry out at once, as before. `CKPT_INHERIT=1` (`ckpt
//! --inherit`) leaves the entry in and every process active.
//!
//! A restarted process has a new pid: [`restarted`] writes it into the restored
//! `CKPT_PID` (which `ckpt` pads with zeros to 9 digits so any pid fits in place).
//!
//! The dynamic loader has read `LD_PRELOAD` by the time our constructor runs; what
//! children inherit is the string in the environment block the kernel laid out at
//! exec, which `environ` (and so `getenv`, `execvp`, `system`) points into. Our
//! entry is overwritten there with spaces, in place: `LD_PRELOAD` separates
//! entries by spaces or colons and skips empty ones, nothing moves, and every
//! pointer into the block stays valid.
//!
//! # Safety
//! The environment block is the process's own writable memory (on the initial
//! stack), and constructors run before any other code of the program, so nothing
//! reads it while we change it. After a restart, the runtime runs inside its
//! signal handler with every signal blocked and one thread.
#![allow(unsafe_code)]

use crate::capture::mm;

const KEY: &[u8] = b"LD_PRELOAD=";
const PID_KEY: &[u8] = b"CKPT_PID=";
const OURS: &[u8] = b"libckpt.so";

/// What the runtime is in this process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Arm the triggers.
    Active,
    /// A child of the program: serve nothing, arm nothing.
    Passive,
}

/// Decide this process's role (see the module comment) and adjust `LD_PRELOAD`.
pub fn settle(inherit: bool, starter: i32) -> Role {
    if inherit {
        return Role::Active;
    }
    if starter == 0 {
        remove_own_entry();
        return Role::Active;
    }
    if starter == ckpt_sys::getpid() {
        Role::Active
    } else {
        remove_own_entry();
        Role::Passive
    }
}

/// Call `f` with the value of every `KEY=` variable of the environment block.
fn each_value(key: &[u8], mut f: impl FnMut(&mut [u8])) {
    let Ok((start, end)) = mm::env_range() else { return };
    // SAFETY: see the module comment; [start, end) is the environment block.
    let env = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, (end - start) as usize) };
    let mut at = 0;
    while at < env.len() {
        let len = env[at..].iter().position(|&b| b == 0).unwrap_or(env.len() - at);
        let var = &mut env[at..at + len];
        if let Some(value) = var.strip_prefix_mut(key) {
            f(value);
        }
        at += len + 1;
    }
}

/// Blank our entry (any path whose last component is `libckpt.so`).
pub fn remove_own_entry() {
    each_value(KEY, blank_ours);
}

/// In the restarted process: `CKPT_PID` gets the new pid (zero-padded to the
/// width it had), so that an exec in this process keeps the runtime; returns the
/// pid now in force there (0 if there is no `CKPT_PID` or the pid does not fit).
pub fn restarted() -> i32 {
    let pid = ckpt_sys::getpid();
    let mut set = 0;
    each_value(PID_KEY, |v| {
        let mut n = pid as u64;
        let mut digits = 0;
        let mut t = n;
        while t > 0 {
            digits += 1;
            t /= 10;
        }
        if digits > v.len() || !v.iter().all(u8::is_ascii_digit) {
            return;
        }
        for d in v.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        set = pid;
    });
    set
}

trait StripPrefixMut {
    fn strip_prefix_mut(&mut self, p: &[u8]) -> Option<&mut [u8]>;
}

impl StripPrefixMut for [u8] {
    fn strip_prefix_mut(&mut self, p: &[u8]) -> Option<&mut [u8]> {
        if self.starts_with(p) { Some(&mut self[p.len()..]) } else { None }
    }
}

fn blank_ours(value: &mut [u8]) {
    let mut i = 0;
    while i < value.len() {
        let n = value[i..].iter().position(|&b| b == b':' || b == b' ').unwrap_or(value.len() - i);
        let entry = &mut value[i..i + n];
        let base = entry.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        if base == OURS {
            entry.fill(b' ');
        }
        i += n + 1;
    }
}
