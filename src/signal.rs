//! Parsing of the `--signal` argument into a Linux signal number.
//!
//! Names follow the kernel's x86_64 numbering, which is what `CKPT_ASYNCSIG`
//! carries: the runtime installs its handler with a raw `rt_sigaction`, so the
//! number must be the kernel's, not some libc's view of it.

use std::fmt;

/// First real-time signal as the kernel numbers it (glibc's `SIGRTMIN` is also 34,
/// because it keeps 32 and 33 for itself).
const RTMIN: u32 = 34;
/// Last real-time signal (`_NSIG` is 64 on x86_64).
const RTMAX: u32 = 64;

/// Standard signal names on x86_64 Linux, without the `SIG` prefix.
/// Aliases (`IOT`, `CLD`, `POLL`) are listed after the name `kill -l` prints.
const NAMES: &[(&str, u32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Why a `--signal` value was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum SignalError {
    /// Not a signal name or a number in range.
    Invalid(String),
    /// SIGKILL or SIGSTOP: the kernel never delivers them to a handler.
    Uncatchable(&'static str),
    /// 32 or 33: glibc uses them internally for thread cancellation and setxid;
    /// taking them over would break threaded programs.
    Reserved(u32),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(s) => write!(f, "invalid signal '{s}' (use a name like USR1 or a number 1-64)"),
            Self::Uncatchable(name) => {
                write!(f, "{name} cannot be caught, so it cannot trigger a checkpoint; choose another signal")
            }
            Self::Reserved(n) => {
                write!(f, "signal {n} is reserved by the C library for threads; choose another signal")
            }
        }
    }
}

/// Parses a signal given as a number (`10`), a name (`USR1`, `sigusr1`) or a
/// real-time offset (`RTMIN+3`, `RTMAX-1`). `0` is accepted and means "no
/// asynchronous checkpoint signal".
pub fn parse(arg: &str) -> Result<u32, SignalError> {
    let invalid = || SignalError::Invalid(arg.to_owned());
    let upper = arg.to_ascii_uppercase();

    let number = if let Some(n) = parse_decimal(&upper) {
        // A bare number: 0 is the "disabled" value, the rest must be a real signal.
        if n == 0 {
            return Ok(0);
        }
        n
    } else {
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        lookup_name(name).ok_or_else(invalid)?
    };

    match number {
        1..=RTMAX => {}
        _ => return Err(invalid()),
    }
    match number {
        9 => Err(SignalError::Uncatchable("SIGKILL")),
        19 => Err(SignalError::Uncatchable("SIGSTOP")),
        32 | 33 => Err(SignalError::Reserved(number)),
        n => Ok(n),
    }
}

/// Several signals separated by commas (`TERM,USR1`); `0` alone disables.
pub fn parse_list(arg: &str) -> Result<Vec<u32>, SignalError> {
    let mut out = Vec::new();
    for part in arg.split(',') {
        match parse(part)? {
            0 if part.len() == arg.len() => return Ok(vec![0]),
            0 => return Err(SignalError::Invalid(arg.to_owned())),
            n if !out.contains(&n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// A name without the `SIG` prefix, including `RTMIN`, `RTMIN+n` and `RTMAX-n`.
fn lookup_name(name: &str) -> Option<u32> {
    if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        return Some(n);
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(offset) => RTMIN.checked_add(parse_decimal(offset)?),
            None if rest.is_empty() => Some(RTMIN),
            None => None,
        }
        .filter(|&n| n <= RTMAX);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(offset) => RTMAX.checked_sub(parse_decimal(offset)?),
            None if rest.is_empty() => Some(RTMAX),
            None => None,
        }
        .filter(|&n| n >= RTMIN);
    }
    None
}

/// Only plain ASCII digits: `str::parse` would also accept a leading `+`.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(parse("10"), Ok(10));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("64"), Ok(64));
        assert_eq!(parse("usr1"), Ok(10));
        assert_eq!(parse("SIGUSR1"), Ok(10));
        assert_eq!(parse("SigTstp"), Ok(20));
        assert_eq!(parse("TSTP"), Ok(20));
        assert_eq!(parse("IOT"), Ok(6));
    }

    #[test]
    fn realtime() {
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("RTMIN+2"), Ok(36));
        assert_eq!(parse("sigrtmin+30"), Ok(64));
        assert_eq!(parse("RTMAX"), Ok(64));
        assert_eq!(parse("RTMAX-1"), Ok(63));
        assert_eq!(parse("RTMAX-30"), Ok(34));
        for bad in ["RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMINX"] {
            assert!(matches!(parse(bad), Err(SignalError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("TERM,USR1"), Ok(vec![15, 10]));
        assert_eq!(parse_list("usr1,10"), Ok(vec![10]));
        assert_eq!(parse_list("0"), Ok(vec![0]));
        assert!(parse_list("TERM,0").is_err());
        assert!(parse_list("TERM,").is_err());
        assert!(parse_list("TERM,KILL").is_err());
    }

    #[test]
    fn rejected() {
        for bad in ["FOO", "65", "-3", "+10", "", "SIG", " 10", "SIGSIGUSR1"] {
            assert_eq!(parse(bad), Err(SignalError::Invalid(bad.to_owned())), "{bad}");
        }
        assert_eq!(parse("KILL"), Err(SignalError::Uncatchable("SIGKILL")));
        assert_eq!(parse("9"), Err(SignalError::Uncatchable("SIGKILL")));
        assert_eq!(parse("sigstop"), Err(SignalError::Uncatchable("SIGSTOP")));
        assert_eq!(parse("32"), Err(SignalError::Reserved(32)));
        assert_eq!(parse("33"), Err(SignalError::Reserved(33)));
    }
}
