//! Signal names and numbers: the one parser of a trigger signal, used by the
//! runtime for `CKPT_ASYNCSIG` and `ckpt_set_signal` and by the `ckpt` command
//! for `-a`, so that both accept and refuse exactly the same values.
//!
//! Numbers are the kernel's (the same on x86_64 and i386): the runtime installs
//! its handler with a raw `rt_sigaction`, so the number must be the kernel's, not
//! some libc's view of it. Accepted: `0` (no trigger signal), a number 1-64, a
//! name with or without `SIG` in any case (`USR1`, `sigtstp`, the aliases `IOT`,
//! `CLD`, `POLL`), and `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`. Refused: SIGKILL and
//! SIGSTOP (never delivered to a handler) and 32 and 33, the two real-time signals
//! glibc keeps for itself (thread cancellation and setxid): a checkpoint handler
//! there would break every threaded program. `RTMIN` is therefore 34, glibc's
//! `SIGRTMIN`, not the kernel's 32.

/// First real-time signal a program may use (glibc's `SIGRTMIN`).
pub const RTMIN: u32 = 34;
/// Last real-time signal (`_NSIG` is 64 on x86).
pub const RTMAX: u32 = 64;

/// Standard signal names on x86 Linux, without the `SIG` prefix. Aliases (`IOT`,
/// `CLD`, `POLL`) come after the name `kill -l` prints.
pub const NAMES: &[(&str, u32)] = &[
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

/// Why a trigger signal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalError {
    /// Not a signal name or a number in range.
    Invalid,
    /// SIGKILL or SIGSTOP (the name): the kernel never delivers them to a handler.
    Uncatchable(&'static str),
    /// 32 or 33: glibc uses them internally for thread cancellation and setxid.
    Reserved(u32),
}

/// The trigger signal `arg` names; `Ok(0)` for `0`, "no trigger signal".
pub fn parse(arg: &[u8]) -> Result<u32, SignalError> {
    let number = match crate::num::small(arg) {
        Some(0) => return Ok(0),
        Some(n) => n,
        None => {
            let mut up = [0u8; 16];
            if arg.len() > up.len() {
                return Err(SignalError::Invalid);
            }
            for (d, s) in up.iter_mut().zip(arg) {
                *d = s.to_ascii_uppercase();
            }
            let up = &up[..arg.len()];
            lookup(up.strip_prefix(b"SIG").unwrap_or(up)).ok_or(SignalError::Invalid)?
        }
    };
    check(number)
}

/// A signal number as a trigger: `Ok(n)` if a program may use it for that.
pub fn check(n: u32) -> Result<u32, SignalError> {
    match n {
        9 => Err(SignalError::Uncatchable("SIGKILL")),
        19 => Err(SignalError::Uncatchable("SIGSTOP")),
        32 | 33 => Err(SignalError::Reserved(n)),
        1..=RTMAX => Ok(n),
        _ => Err(SignalError::Invalid),
    }
}

/// An upper-case name without `SIG`, including `RTMIN+n` and `RTMAX-n`.
fn lookup(name: &[u8]) -> Option<u32> {
    if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| known.as_bytes() == name) {
        return Some(n);
    }
    if let Some(rest) = name.strip_prefix(b"RTMIN") {
        let n = match rest {
            [] => RTMIN,
            [b'+', offset @ ..] => RTMIN.checked_add(crate::num::small(offset)?)?,
            _ => return None,
        };
        return (n <= RTMAX).then_some(n);
    }
    if let Some(rest) = name.strip_prefix(b"RTMAX") {
        let n = match rest {
            [] => RTMAX,
            [b'-', offset @ ..] => RTMAX.checked_sub(crate::num::small(offset)?)?,
            _ => return None,
        };
        return (n >= RTMIN).then_some(n);
    }
    None
}

/// `m` + the name of signal `s` (`SIGUSR1`, `SIGRTMIN+2`), from [`NAMES`] (the
/// first name listed for a number).
pub fn write_name(m: crate::msg::Msg, s: u32) -> crate::msg::Msg {
    match NAMES.iter().find(|(_, n)| *n == s) {
        Some((name, _)) => m.s("SIG").s(name),
        None if s == RTMIN => m.s("SIGRTMIN"),
        None if s > RTMIN && s <= RTMAX => m.s("SIGRTMIN+").u((s - RTMIN) as u64),
        None => m.s("signal ").u(s as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<u32, SignalError> {
        parse(s.as_bytes())
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(p("10"), Ok(10));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("64"), Ok(64));
        assert_eq!(p("34"), Ok(34));
        assert_eq!(p("usr1"), Ok(10));
        assert_eq!(p("SIGUSR1"), Ok(10));
        assert_eq!(p("SigTstp"), Ok(20));
        assert_eq!(p("TSTP"), Ok(20));
        assert_eq!(p("IOT"), Ok(6));
        assert_eq!(p("SIGCLD"), Ok(17));
        assert_eq!(p("poll"), Ok(29));
    }

    #[test]
    fn realtime() {
        assert_eq!(p("RTMIN"), Ok(34));
        assert_eq!(p("RTMIN+2"), Ok(36));
        assert_eq!(p("sigrtmin+30"), Ok(64));
        assert_eq!(p("RTMAX"), Ok(64));
        assert_eq!(p("RTMAX-1"), Ok(63));
        assert_eq!(p("RTMAX-30"), Ok(34));
        for bad in ["RTMIN+31", "RTMAX-31", "RTMAX-32", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMINX", "RTMIN+99999999"] {
            assert_eq!(p(bad), Err(SignalError::Invalid), "{bad}");
        }
    }

    #[test]
    fn rejected() {
        for bad in ["FOO", "65", "-3", "+10", "", "SIG", " 10", "SIGSIGUSR1", "4294967306", "SIGVERYLONGNAMEXYZ"] {
            assert_eq!(p(bad), Err(SignalError::Invalid), "{bad}");
        }
        assert_eq!(p("KILL"), Err(SignalError::Uncatchable("SIGKILL")));
        assert_eq!(p("9"), Err(SignalError::Uncatchable("SIGKILL")));
        assert_eq!(p("sigstop"), Err(SignalError::Uncatchable("SIGSTOP")));
        assert_eq!(p("32"), Err(SignalError::Reserved(32)));
        assert_eq!(p("33"), Err(SignalError::Reserved(33)));
        assert_eq!(check(0), Err(SignalError::Invalid));
        assert_eq!(check(65), Err(SignalError::Invalid));
        assert_eq!(check(32), Err(SignalError::Reserved(32)));
    }
}
