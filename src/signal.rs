//! The `-a SIGNAL` argument: parsed by `ckpt_sys::signame`, the parser the
//! runtime uses for `CKPT_ASYNCSIG`, so that both accept the same values; here
//! only the messages.

use std::fmt;

use ckpt_sys::signame;

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
    signame::parse(arg.as_bytes()).map_err(|e| match e {
        signame::SignalError::Invalid => SignalError::Invalid(arg.to_owned()),
        signame::SignalError::Uncatchable(name) => SignalError::Uncatchable(name),
        signame::SignalError::Reserved(n) => SignalError::Reserved(n),
    })
}

/// `SIGUSR1`, `SIGRTMIN+2`: as the runtime names signals.
pub fn name(s: u32) -> String {
    String::from_utf8_lossy(signame::write_name(ckpt_sys::msg::Msg::new(), s).as_bytes()).into_owned()
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
