//! Numbers in the text the kernel writes (/proc files, fdinfo) and in the
//! environment: one parser per form, for the runtime, the loader and the maps
//! parser alike.

/// All of `s` as digits in `radix` (2 to 16; no sign, no prefix, no spaces):
/// None if it is empty, holds another byte, or overflows a u64.
pub fn parse(s: &[u8], radix: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |a, &c| a.checked_mul(radix as u64)?.checked_add((c as char).to_digit(radix)? as u64))
}

/// Decimal, with an optional leading `-`.
pub fn signed(s: &[u8]) -> Option<i64> {
    match s.strip_prefix(b"-") {
        Some(d) => parse(d, 10).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        None => parse(s, 10).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A small decimal count from the environment or an argument: at most 9
/// digits, so that it fits a u32.
pub fn small(s: &[u8]) -> Option<u32> {
    (s.len() <= 9).then(|| parse(s, 10)).flatten().map(|v| v as u32)
}

/// The digits in `radix` at the start of `v` (after an optional `0x`), as many
/// as there are (0 if none): fdinfo's fields, which may be followed by more text.
pub fn leading(v: &[u8], radix: u32) -> u64 {
    let v = v.strip_prefix(b"0x").unwrap_or(v);
    let n = v.iter().position(|&c| (c as char).to_digit(radix).is_none()).unwrap_or(v.len());
    parse(&v[..n], radix).unwrap_or(0)
}

/// The number after `key` in a /proc status text (`Key:\tvalue` lines, proc(5)),
/// in `radix`, spaces skipped: None if the line is missing or not a number.
pub fn field(text: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    let line = text.split(|&c| c == b'\n').find_map(|l| l.strip_prefix(key))?;
    parse(line.trim_ascii(), radix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse(b"ff", 16), Some(255));
        assert_eq!(parse(b"", 10), None);
        assert_eq!(parse(b"1x", 10), None);
        assert_eq!(parse(b"18446744073709551616", 10), None);
        assert_eq!(signed(b"-12"), Some(-12));
        assert_eq!(signed(b"-"), None);
        assert_eq!(small(b"123456789"), Some(123456789));
        assert_eq!(small(b"1234567890"), None);
        assert_eq!(leading(b"0x1f rest", 16), 31);
        assert_eq!(leading(b"12\n", 10), 12);
        assert_eq!(leading(b"z", 10), 0);
        assert_eq!(field(b"Name:\tx\nSigBlk:\t0000000000080000\n", b"SigBlk:", 16), Some(0x80000));
        assert_eq!(field(b"Umask:\t0022\n", b"Umask:", 8), Some(0o22));
        assert_eq!(field(b"Umask:\t0022\n", b"Nope:", 8), None);
    }
}
