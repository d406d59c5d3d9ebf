//! Keep the runtime to the program it was started with: by default it takes its
//! own entry out of `LD_PRELOAD`, so that the programs this one runs (a shell, a
//! compiler, `system()`) are not checkpointed too, each writing into the same
//! CKPT_NAME. `CKPT_INHERIT=1` (`ckpt --inherit`) leaves it in.
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
//! reads it while we change it.
#![allow(unsafe_code)]

use crate::capture::mm;

const KEY: &[u8] = b"LD_PRELOAD=";
const OURS: &[u8] = b"libckpt.so";

/// Blank our entry (any path whose last component is `libckpt.so`).
pub fn remove_own_entry() {
    let Ok((start, end)) = mm::env_range() else { return };
    // SAFETY: see the module comment; [start, end) is the environment block.
    let env = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, (end - start) as usize) };
    let mut at = 0;
    while at < env.len() {
        let len = env[at..].iter().position(|&b| b == 0).unwrap_or(env.len() - at);
        let var = &mut env[at..at + len];
        if let Some(value) = var.strip_prefix_mut(KEY) {
            blank_ours(value);
        }
        at += len + 1;
    }
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
