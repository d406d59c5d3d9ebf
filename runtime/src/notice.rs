//! The line printed after every successful checkpoint, once the image is
//! durable (`ckpt: counter.ckpt written (2.4 MiB in 9 ms)`; `CKPT_QUIET=1`
//! silences it), and the deadline check (`CKPT_DEADLINE`): how long after the
//! trigger signal the image was durable, and a warning, printed even when quiet,
//! if that was later than the deadline.
//!
//! The clock starts when the checkpoint is requested ([`begin`]: the trigger
//! signal's handler, the C call, the periodic timer). A background writer is a
//! fork of the program taken after that, so it finds the same start time in its
//! copy of this memory and prints the line itself when it is done.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ckpt_sys::c;
use ckpt_sys::msg::Msg;

use crate::config::{self, Config};

/// CLOCK_MONOTONIC in ns when the checkpoint being taken was requested.
static START: AtomicU64 = AtomicU64::new(0);
/// The trigger signal that requested it, 0 for a call or the periodic timer.
static SIGNAL: AtomicU32 = AtomicU32::new(0);

fn now_ns() -> u64 {
    ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, ns)| s as u64 * 1_000_000_000 + ns as u64)
}

/// A checkpoint is requested now, by signal `sig` (0: not a trigger signal).
pub fn begin(sig: u32) {
    START.store(now_ns(), Ordering::Relaxed);
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// `m` + `n` bytes in the largest binary unit that keeps it at least 1, with one
/// decimal, rounded to nearest (`2.4 MiB`), as `ckpt info` writes sizes.
pub fn size(m: Msg, n: u64) -> Msg {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return m.u(n).s(" bytes");
    }
    let (mut unit, mut i) = (1024u64, 0);
    while i + 1 < UNITS.len() && n / unit >= 1024 {
        unit *= 1024;
        i += 1;
    }
    let tenths = ((n as u128 * 10 + unit as u128 / 2) / unit as u128) as u64;
    m.u(tenths / 10).s(".").u(tenths % 10).s(" ").s(UNITS[i])
}

/// `m` + a duration in ns: `9 ms` below 10 s, `12.3 s` above.
fn duration(m: Msg, ns: u64) -> Msg {
    let ms = ns / 1_000_000;
    if ms < 10_000 { m.u(ms).s(" ms") } else { m.u(ms / 1000).s(".").u(ms % 1000 / 100).s(" s") }
}

/// The image `path` (`seq` in directory mode, 0 otherwise) of `bytes` is
/// durable: say so, and check the deadline.
pub fn written(cfg: &Config, path: &[u8], seq: u64, bytes: u64) {
    let took = now_ns().saturating_sub(START.load(Ordering::Relaxed));
    let sig = SIGNAL.load(Ordering::Relaxed);
    if !cfg.quiet {
        let m = Msg::new().s("ckpt: ").b(path).s(" written (");
        let m = if seq != 0 { m.s("seq ").u(seq).s(", ") } else { m };
        let m = duration(size(m, bytes).s(" in "), took);
        let m = if sig != 0 { config::signal_name(m.s(" after "), sig) } else { m };
        let m = if cfg.deadline != 0 && sig != 0 { m.s(", deadline ").u(cfg.deadline as u64).s(" s") } else { m };
        m.s(")").emit();
    }
    if cfg.deadline != 0 && sig != 0 && took > cfg.deadline as u64 * 1_000_000_000 {
        let m = duration(Msg::new().s("ckpt: warning: ").b(path).s(" was durable "), took);
        config::signal_name(m.s(" after "), sig).s(", past the deadline of ").u(cfg.deadline as u64).s(" s").emit();
    }
}
