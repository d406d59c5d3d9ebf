//! `CKPT_DEBUG=1`: a line on stderr for each step of a restart, in the loader
//! and in the runtime's restored path, so that a restart that goes wrong after
//! the point of no return (the loader's address space replaced, nothing left to
//! return an error to) still says how far it got.
//!
//! The loader reads the variable from the environment the checkpoint file was run
//! with and passes it on in `RestartInfo::flags` (the restored program's own
//! environment is the one it had when it was saved). One word of static memory,
//! in `.data` (the loader may have no `.bss`, and copies it to its home block
//! with the rest of itself).

use core::sync::atomic::{AtomicU8, Ordering};

use crate::msg::Msg;

/// 1: trace; anything else: quiet. Not 0 when quiet, so that it lives in `.data`.
static STATE: AtomicU8 = AtomicU8::new(QUIET);
const ON: u8 = 1;
const QUIET: u8 = 0xff;

/// Turn tracing on or off.
pub fn enable(on: bool) {
    STATE.store(if on { ON } else { QUIET }, Ordering::Relaxed);
}

/// Is tracing on?
pub fn on() -> bool {
    STATE.load(Ordering::Relaxed) == ON
}

/// Does the NUL-separated `KEY=VALUE` list `environ` set `CKPT_DEBUG` to `1`,
/// `yes` or `true`?
pub fn wanted(environ: &[u8]) -> bool {
    environ.split(|&b| b == 0).any(|kv| matches!(kv, b"CKPT_DEBUG=1" | b"CKPT_DEBUG=yes" | b"CKPT_DEBUG=true"))
}

/// Turn tracing on if this process's environment asks for it (/proc/self/environ).
/// Costs one read of 8 KiB on the stack for a usual environment (a restart takes
/// about 0.5 ms; this, a few microseconds).
pub fn enable_from_environ() {
    let path = c"/proc/self/environ";
    let mut small = [0u8; 8192];
    match crate::read_file(path, &mut small) {
        Ok(n) => enable(wanted(&small[..n])),
        Err(_) => {
            if let Ok((env, len)) = crate::scratch::read_whole(path) {
                enable(wanted(&env.as_slice()[..len]));
            }
        }
    }
}

/// `prefix` `trace: ` `step` on stderr, if tracing is on.
pub fn step(prefix: &str, step: &str) {
    if on() {
        Msg::new().s(prefix).s("trace: ").s(step).emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable() {
        assert!(wanted(b"A=1\0CKPT_DEBUG=1\0B=2"));
        assert!(wanted(b"CKPT_DEBUG=yes"));
        assert!(!wanted(b"CKPT_DEBUG=0\0"));
        assert!(!wanted(b"CKPT_DEBUG=\0XCKPT_DEBUG=1\0CKPT_DEBUG=11"));
        assert!(!wanted(b""));
    }
}
