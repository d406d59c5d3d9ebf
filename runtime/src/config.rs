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
                    None => invalid(k, v, "a catchable signal number or name"),
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

/// A signal number 0..=64 or a name (with or without SIG, any case; RTMIN+n,
/// RTMAX-n). SIGKILL and SIGSTOP cannot be caught and are refused.
pub fn parse_signal(v: &[u8]) -> Option<u32> {
    const NAMES: [&[u8]; 31] = [
        b"HUP", b"INT", b"QUIT", b"ILL", b"TRAP", b"ABRT", b"BUS", b"FPE", b"KILL", b"USR1", b"SEGV", b"USR2", b"PIPE",
        b"ALRM", b"TERM", b"STKFLT", b"CHLD", b"CONT", b"STOP", b"TSTP", b"TTIN", b"TTOU", b"URG", b"XCPU", b"XFSZ",
        b"VTALRM", b"PROF", b"WINCH", b"IO", b"PWR", b"SYS",
    ];
    let n = if let Some(n) = parse_u32(v) {
        n
    } else {
        let mut up = [0u8; 16];
        if v.len() > up.len() {
            return None;
        }
        for (d, s) in up.iter_mut().zip(v) {
            *d = s.to_ascii_uppercase();
        }
        let mut s = &up[..v.len()];
        if s.starts_with(b"SIG") {
            s = &s[3..];
        }
        if let Some(i) = NAMES.iter().position(|&n| n == s) {
            i as u32 + 1
        } else if let Some(rest) = s.strip_prefix(b"RTMIN") {
            34 + if rest.is_empty() { 0 } else { parse_u32(rest.strip_prefix(b"+")?)? }
        } else if let Some(rest) = s.strip_prefix(b"RTMAX") {
            64u32.checked_sub(if rest.is_empty() { 0 } else { parse_u32(rest.strip_prefix(b"-")?)? })?
        } else {
            return None;
        }
    };
    (n <= 64 && n != ckpt_sys::c::SIGKILL && n != ckpt_sys::c::SIGSTOP).then_some(n)
}
