//! Configuration from the environment, read once when the runtime loads:
//! `CKPT_NAME` (checkpoint file), `CKPT_DIR` (directory mode: numbered images in
//! DIR, see `write::Dir`) and `CKPT_KEEP` (how many of them), `CKPT_CONTINUE`
//! (keep running after a checkpoint), `CKPT_ASYNCSIG` (trigger signals, numbers or
//! names separated by commas; 0 disables), `CKPT_INTERVAL` (periodic
//! checkpoints), `CKPT_EXIT_STATUS` (status after checkpoint-and-exit),
//! `CKPT_QUIET` (no message after a checkpoint), `CKPT_DEADLINE` (seconds from the
//! trigger signal by which the image must be durable), `CKPT_COMPRESS` (page
//! data compressed with LZ4: `1`, `lz4`; `0` for none), `CKPT_INCREMENTAL`
//! (incremental images in continue and periodic mode: `1`, or `N` for a full
//! image every N checkpoints; see `track`), `CKPT_INHERIT` and
//! `CKPT_PID` (see `preload`). An invalid value is reported once on stderr and
//! the default is kept.

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
    /// `name` is a directory of numbered images (`CKPT_DIR`), not a file.
    pub dir: bool,
    /// Directory mode: images kept (the newest and the ones before it), >= 1.
    pub keep: u32,
    /// Trigger signal (the first of `signals`; the periodic timer's); 0 = none.
    pub signal: u32,
    /// Every trigger signal, as a mask (bit `s - 1` for signal `s`).
    pub signals: u64,
    /// Exit status after a checkpoint-and-exit.
    pub exit_status: u8,
    /// No message after a successful checkpoint.
    pub quiet: bool,
    /// Seconds from the trigger signal by which the image must be durable; 0 = none.
    pub deadline: u32,
    /// The pid `ckpt` ran the program in (`CKPT_PID`), 0 if not set (see `preload`).
    pub starter: i32,
    /// Seconds between periodic checkpoints; 0 = none.
    pub interval: u32,
    /// Leave our LD_PRELOAD entry to the program's children.
    pub inherit: bool,
    /// Print how long stopping the threads and restarting them took (CKPT_TIMING).
    pub timing: bool,
    /// Tree mode (`CKPT_TREE`, `ckpt --tree`): the program and every descendant
    /// are checkpointed together, into one file (see `tree`).
    pub tree: bool,
    /// Compress the page data (CKPT_COMPRESS).
    pub compress: bool,
    /// Incremental images in continue and periodic mode (CKPT_INCREMENTAL): a
    /// full image every `incremental` checkpoints (0: every image is full).
    pub incremental: u32,
}

impl Config {
    /// Before the environment is read.
    pub const DEFAULT: Config = Config {
        name: Path::EMPTY,
        dir: false,
        keep: 2,
        cont: false,
        signal: ckpt_sys::c::SIGTSTP,
        signals: 1 << (ckpt_sys::c::SIGTSTP - 1),
        exit_status: EXIT_STATUS,
        quiet: false,
        deadline: 0,
        interval: 0,
        inherit: false,
        starter: 0,
        timing: false,
        tree: false,
        compress: false,
        incremental: 0,
    };

    /// `CKPT_INCREMENTAL=1`: a full image every this many checkpoints.
    pub const FULL_EVERY: u32 = 8;

    /// Make `s` the one trigger signal (0: none).
    pub fn set_signal(&mut self, s: u32) {
        self.signal = s;
        self.signals = if s == 0 { 0 } else { 1 << (s - 1) };
    }

    /// Read `environ` (NUL-separated `KEY=VALUE`) and `argv0` for the default name.
    pub fn from_env(environ: &[u8], argv0: &[u8]) -> Config {
        let mut c = Config::DEFAULT;
        c.name = default_name(argv0);
        for kv in environ.split(|&b| b == 0) {
            let Some(eq) = kv.iter().position(|&b| b == b'=') else { continue };
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            match k {
                b"CKPT_NAME" if !c.dir => match Path::new(v) {
                    Some(p) if !v.is_empty() => c.name = p,
                    _ => invalid(k, v, "a file name"),
                },
                b"CKPT_DIR" => match Path::new(v) {
                    Some(p) if !v.is_empty() => (c.name, c.dir) = (p, true),
                    _ => invalid(k, v, "a directory name"),
                },
                b"CKPT_KEEP" => match ckpt_sys::num::small(v) {
                    Some(n) if n >= 1 => c.keep = n,
                    _ => invalid(k, v, "a number of images, at least 1"),
                },
                b"CKPT_EXIT_STATUS" => match ckpt_sys::num::small(v) {
                    Some(n) if n <= 255 => c.exit_status = n as u8,
                    _ => invalid(k, v, "an exit status from 0 to 255"),
                },
                b"CKPT_QUIET" => match parse_bool(v) {
                    Some(b) => c.quiet = b,
                    None => invalid(k, v, "1 or 0"),
                },
                b"CKPT_COMPRESS" => match (v, parse_bool(v)) {
                    (b"lz4", _) => c.compress = true,
                    (_, Some(b)) => c.compress = b,
                    _ => invalid(k, v, "1 or lz4 (compress), or 0"),
                },
                b"CKPT_INCREMENTAL" => match (parse_bool(v), ckpt_sys::num::small(v)) {
                    (Some(b), _) => c.incremental = if b { Config::FULL_EVERY } else { 0 },
                    (_, Some(n)) if (2..=ckpt_image::parent::MAX_DEPTH).contains(&n) => c.incremental = n,
                    _ => invalid(k, v, "1 (a full image every 8 checkpoints), N from 2 to 64 (every N), or 0"),
                },
                b"CKPT_DEADLINE" => match ckpt_sys::num::small(v) {
                    Some(n) => c.deadline = n,
                    None => invalid(k, v, "a number of seconds"),
                },
                b"CKPT_PID" => match ckpt_sys::num::small(v) {
                    Some(n) if n > 0 && n <= i32::MAX as u32 => c.starter = n as i32,
                    _ => invalid(k, v, "a process id"),
                },
                b"CKPT_CONTINUE" => match parse_bool(v) {
                    Some(b) => c.cont = b,
                    None => invalid(k, v, "1 or 0"),
                },
                b"CKPT_ASYNCSIG" => match parse_signals(v) {
                    Some((first, all)) => (c.signal, c.signals) = (first, all),
                    None => invalid(k, v, "catchable signal numbers or names (not 32 or 33), separated by commas"),
                },
                b"CKPT_INTERVAL" => match ckpt_sys::num::small(v) {
                    Some(n) => c.interval = n,
                    None => invalid(k, v, "a number of seconds"),
                },
                b"CKPT_INHERIT" => match parse_bool(v) {
                    Some(b) => c.inherit = b,
                    None => invalid(k, v, "1 or 0"),
                },
                b"CKPT_TREE" => match parse_bool(v) {
                    Some(b) => c.tree = b,
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

/// The default exit status after a checkpoint-and-exit: the convention of
/// HTCondor's `checkpoint_exit_code` and of Slurm's `RequeueExit` set-ups.
pub const EXIT_STATUS: u8 = 85;

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

/// `m` + the name of signal `s` (`SIGUSR1`, `SIGRTMIN+2`).
pub use ckpt_sys::signame::write_name as signal_name;

/// `SIG[,SIG...]`: the first signal and the mask of all. `0` alone disables.
fn parse_signals(v: &[u8]) -> Option<(u32, u64)> {
    let (mut first, mut all) = (0u32, 0u64);
    for s in v.split(|&b| b == b',') {
        match parse_signal(s)? {
            0 if v.len() == s.len() => return Some((0, 0)),
            0 => return None,
            n => {
                if first == 0 {
                    first = n;
                }
                all |= 1 << (n - 1);
            }
        }
    }
    Some((first, all))
}

/// A trigger signal as `ckpt -a` takes it (`ckpt_sys::signame`): a number 0..=64
/// or a name; SIGKILL, SIGSTOP and glibc's 32 and 33 are refused.
pub fn parse_signal(v: &[u8]) -> Option<u32> {
    ckpt_sys::signame::parse(v).ok()
}
