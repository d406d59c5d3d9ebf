//! The mm fields the kernel keeps about the address space (code/data/brk/stack/
//! argv/env bounds, the saved auxv). A restarted process has the loader's values;
//! PR_SET_MM_MAP puts the program's back, which makes `brk`/`sbrk` grow the
//! restored heap, names `[heap]` and `[stack]` in /proc/PID/maps again, and makes
//! /proc/PID/cmdline and /proc/PID/environ show the program's own strings.
//! It works unprivileged with `exe_fd = -1` (see docs/kernel.md §2).
//!
//! # Safety
//! The heap bounds given to the kernel are put back only in the restarted
//! process, whose heap is the checkpointed one: later `brk` calls move the same
//! heap the program's allocator knows.
#![allow(unsafe_code)]

use ckpt_sys::{Errno, PrctlMmMap, Result};

/// Captured mm fields.
pub struct Mm {
    map: PrctlMmMap,
    auxv: [u64; 128],
}

impl Mm {
    /// Nothing captured.
    pub const EMPTY: Mm = Mm {
        map: PrctlMmMap {
            start_code: 0,
            end_code: 0,
            start_data: 0,
            end_data: 0,
            start_brk: 0,
            brk: 0,
            start_stack: 0,
            arg_start: 0,
            arg_end: 0,
            env_start: 0,
            env_end: 0,
            auxv: 0,
            auxv_size: 0,
            exe_fd: u32::MAX,
        },
        auxv: [0; 128],
    };

    /// Read the fields from /proc/self/stat (see proc(5)), brk from brk(0), and
    /// the auxv from /proc/self/auxv. An error says which file.
    pub fn capture(&mut self) -> core::result::Result<(), (&'static str, Errno)> {
        const STAT: &str = "reading /proc/self/stat for";
        let mut buf = [0u8; 2048];
        let n = ckpt_sys::read_file(c"/proc/self/stat", &mut buf).map_err(|e| (STAT, e))?;
        let f = StatFields::parse(&buf[..n]).ok_or((STAT, Errno::EINVAL))?;
        let m = &mut self.map;
        m.start_code = f.get(26);
        m.end_code = f.get(27);
        m.start_stack = f.get(28);
        m.start_data = f.get(45);
        m.end_data = f.get(46);
        m.start_brk = f.get(47);
        m.arg_start = f.get(48);
        m.arg_end = f.get(49);
        m.env_start = f.get(50);
        m.env_end = f.get(51);
        m.brk = ckpt_sys::brk_now() as u64;
        let mut ab = [0u8; 128 * 8];
        let an = ckpt_sys::read_file(c"/proc/self/auxv", &mut ab).map_err(|e| ("reading /proc/self/auxv for", e))?;
        for (i, w) in self.auxv.iter_mut().enumerate() {
            let o = i * 8;
            *w = if o + 8 <= an { u64::from_le_bytes(ab[o..o + 8].try_into().unwrap_or_default()) } else { 0 };
        }
        m.auxv_size = (an / 8 * 8) as u32;
        Ok(())
    }

    /// PR_SET_MM_MAP with the captured values.
    pub fn restore(&self) -> Result<()> {
        let mut m = self.map;
        m.auxv = self.auxv.as_ptr() as u64;
        m.exe_fd = u32::MAX; // -1: keep /proc/self/exe (changing it needs privilege)
        // SAFETY: the heap bounds are the ones read at checkpoint time, in the
        // restarted process whose heap (and allocator) is the checkpointed one.
        unsafe { ckpt_sys::prctl_set_mm_map(&m) }
    }
}

/// `[env_start, env_end)`: where the kernel put the environment strings at exec
/// (proc(5), /proc/self/stat fields 50 and 51).
pub fn env_range() -> Result<(u64, u64)> {
    let mut buf = [0u8; 2048];
    let n = ckpt_sys::read_file(c"/proc/self/stat", &mut buf)?;
    let f = StatFields::parse(&buf[..n]).ok_or(Errno::EINVAL)?;
    let (s, e) = (f.get(50), f.get(51));
    if s == 0 || e <= s { Err(Errno::EINVAL) } else { Ok((s, e)) }
}

/// The number of threads in the process (proc(5), /proc/self/stat field 20).
pub fn thread_count() -> Result<u64> {
    let mut buf = [0u8; 2048];
    let n = ckpt_sys::read_file(c"/proc/self/stat", &mut buf)?;
    StatFields::parse(&buf[..n]).map(|f| f.get(20)).ok_or(Errno::EINVAL)
}

/// The space-separated fields of /proc/self/stat after the `(comm)` field.
struct StatFields<'a> {
    rest: &'a [u8],
}

impl<'a> StatFields<'a> {
    fn parse(b: &'a [u8]) -> Option<Self> {
        // comm may contain spaces and ')': the last ')' ends it.
        let close = b.iter().rposition(|&c| c == b')')?;
        Some(StatFields { rest: b.get(close + 2..)? })
    }

    /// Field `k` (1-based as in proc(5)); 0 if absent or not a number.
    fn get(&self, k: usize) -> u64 {
        let mut it = self.rest.split(|&c| c == b' ' || c == b'\n');
        let Some(f) = it.nth(k - 3) else { return 0 };
        ckpt_sys::num::parse(f, 10).unwrap_or(0)
    }
}
