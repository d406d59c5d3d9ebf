//! Configuration from the environment, read once when the runtime loads:
//! `CKPT_NAME` (checkpoint file), `CKPT_CONTINUE` (keep running after a checkpoint),
//! `CKPT_ASYNCSIG` (trigger signal, number or name; 0 disables), `CKPT_INTERVAL`
//! (reserved for periodic checkpoints). An invalid value is reported once on
//! stderr and the default is kept.

use ckpt_sys::msg::Msg;

/// Longest checkpoint path accepted.
pub const NAME_MAX: usize = 4096;

/// A path held in static memory.
#[derive(Clone, Copy)]
pub struct Path {
    buf: [u8; NAME_MAX],
    len: usize,
}

impl Path {
    /// The empty path.
    pub const EMPTY: Path = Path { buf: [0; NAME_MAX], len: 0 };

    /// From bytes; `None` if too long or containing a NUL.
    pub fn new(b: &[u8]) -> Option<Path> {
        if b.len() >= NAME_MAX || b.contains(&0) {
            return None;
        }
        let mut p = Path::EMPTY;
        p.buf[..b.len()].copy_from_slice(b);
        p.len = b.len();
        Some(p)
    }

    /// The bytes, without NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The runtime's settings.
#[derive(Clone, Copy)]
pub struct Config {
    /// Checkpoint file name (relative to the working directory at checkpoint time).
    pub name: Path,
    /// Keep running after a checkpoint.
    pub cont: bool,
    /// Trigger signal; 0 = none.
    pub signal: u32,
    /// Seconds between periodic checkpoints; 0 = none.
    pub interval: u32,
    /// Leave our LD_PRELOAD entry to the program's children.
    pub inherit: bool,
    /// Print how long stopping the threads and restarting them took (CKPT_TIMING).
    pub timing: bool,
}

impl Config {
    /// Before the environment is read.
    pub const DEFAULT: Config = Config {
        name: Path::EMPTY,
        cont: false,
        signal: ckpt_sys::c::SIGTSTP,
        interval: 0,
        inherit: false,
        timing: false,
    };

    /// Read `environ` (NUL-separated `KEY=VALUE`) and `argv0` for the default name.
    pub fn from_env(environ: &[u8], argv0: &[u8]) -> Config {
        let mut c = Config::DEFAULT;
        c.name = default_name(argv0);
        for kv in environ.split(|&b| b == 0) {
            let Some(eq) = kv.iter().position(|&b| b == b'=') else { continue };
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            match k {
                b"CKPT_NAME" => match Path::new(v) {
                    Some(p) if !v.is_empty() => c.name = p,
                    _ => invalid(k, v, "a file name"),
                },
                b"CKPT_CONTINUE" => match parse_bool(v) {
                    Some(b) => c.cont = b,
                    None => invalid(k, v, "1 or 0"),
                },
                b"CKPT_ASYNCSIG" => match parse_signal(v) {
                    Some(s) => c.signal = s,
                    None => invalid(k, v, "a catchable signal number or name, not 32 or 33"),
                },
                b"CKPT_INTERVAL" => match parse_u32(v) {
                    Some(n) => c.interval = n,
                    None => invalid(k, v, "a number of seconds"),
                },
                b"CKPT_INHERIT" => match parse_bool(v) {
                    Some(b) => c.inherit = b,
                    None => invalid(k, v, "1 or 0"),
                },
                b"CKPT_TIMING" => match parse_bool(v) {
                    Some(b) => c.timing = b,
                    None => invalid(k, v, "1 or 0"),
                },
                _ => {}
            }
        }
        c
    }
}

fn invalid(k: &[u8], v: &[u8], want: &str) {
    Msg::new().s("ckpt: ignoring ").b(k).s("='").b(v).s("': expected ").s(want).s("; keeping the default").emit();
}

/// `basename(argv0) + ".ckpt"`, or `"a.out.ckpt"` if argv0 is empty.
fn default_name(argv0: &[u8]) -> Path {
    let base = argv0.rsplit(|&b| b == b'/').next().filter(|b| !b.is_empty()).unwrap_or(b"a.out");
    let mut buf = [0u8; NAME_MAX];
    let n = base.len().min(NAME_MAX - 8);
    buf[..n].copy_from_slice(&base[..n]);
    buf[n..n + 5].copy_from_slice(b".ckpt");
    Path::new(&buf[..n + 5]).unwrap_or(Path::EMPTY)
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"" | b"0" | b"no" | b"false" => Some(false),
        b"1" | b"yes" | b"true" => Some(true),
        _ => None,
    }
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u32, |a, &d| a * 10 + (d - b'0') as u32))
}

/// A trigger signal as `ckpt -a` takes it (`ckpt_sys::signame`): a number 0..=64
/// or a name; SIGKILL, SIGSTOP and glibc's 32 and 33 are refused.
pub fn parse_signal(v: &[u8]) -> Option<u32> {
    ckpt_sys::signame::parse(v).ok()
}
