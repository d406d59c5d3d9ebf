//! The THREADS section ([`crate::section::tag::THREADS`]): one [`Thread`] record per
//! thread of the process, in a [`Table`]. Written by the runtime when the process has
//! more than one thread; absent in single-threaded images, whose one thread is the
//! [`crate::Process`] record's.
//!
//! - Exactly one record is the thread-group leader (`tid == Process::pid`), and its
//!   registers are `Process::regs`: the loader's own thread resumes it, so older
//!   readers of the process record still see the main thread.
//! - Every other record is a thread the loader creates with `clone3` (`CLONE_THREAD`,
//!   `CLONE_SETTLS`, `set_tid = tid` inside a fresh pid namespace) and starts at its
//!   save point with `regs` (the save-point registers: [`crate::RegsX86_64`] or
//!   [`crate::RegsX86`] as words; word 0 the stack pointer, word 1 the return address).
//! - The rest is the thread's own kernel state, which the restarted thread puts back
//!   itself before it returns from the runtime's stop handler: the alternate signal
//!   stack, glibc's rseq area, the robust futex list head, the clear-child-tid address
//!   (`pthread_join`), its name, CPU affinity, scheduling policy and nice value. Its
//!   signal mask and interrupted registers are in the kernel's signal frame on its
//!   stack, like the checkpointing thread's.
//!
//! `regs` is at byte [`Thread::REGS_OFFSET`] of the encoded record, 11 little-endian
//! words: the in-memory layout the assembly restores from, so the loader points a new
//! thread straight at the record in its copy of the metadata.

use crate::section::{Record, Table, tag};
use crate::{ImageError, REGS_WORDS, Rd, Wr};

/// Most threads an image may hold (the kernel's default threads-max is far above; the
/// runtime stops and records at most this many).
pub const MAX_THREADS: usize = 4096;

/// `flags` bit: the thread that took the checkpoint (ran the writer, runs the hooks).
pub const COORDINATOR: u64 = 1;

/// One thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thread {
    /// Thread id (in the pid namespace the process saw).
    pub tid: u64,
    /// [`COORDINATOR`].
    pub flags: u64,
    /// Save-point registers, as words (see the module comment).
    pub regs: [u64; REGS_WORDS],
    /// `sigaltstack`: ss_sp, ss_flags, ss_size.
    pub altstack: [u64; 3],
    /// glibc's rseq area registered for the thread (0: none).
    pub rseq: u64,
    /// `get_robust_list`: head and length (0: none).
    pub robust: [u64; 2],
    /// `PR_GET_TID_ADDRESS`: the clear-child-tid address (0: none).
    pub tid_address: u64,
    /// Thread name (`PR_GET_NAME`), NUL-padded.
    pub comm: [u8; 16],
    /// CPU affinity mask (up to 1024 CPUs).
    pub affinity: [u64; 16],
    /// Bytes of `affinity` the kernel filled (0: not recorded).
    pub affinity_len: u64,
    /// `sched_getscheduler`.
    pub policy: u64,
    /// `sched_getparam` priority.
    pub priority: u64,
    /// Nice value (as i64).
    pub nice: u64,
}

/// Encoded length of [`Thread`].
pub const THREAD_LEN: usize = 8 * (2 + REGS_WORDS + 3 + 1 + 2 + 1) + 16 + 8 * (16 + 4);

impl Thread {
    /// Byte offset of `regs` in the encoded record.
    pub const REGS_OFFSET: usize = 16;

    /// The thread name up to its NUL.
    pub fn name(&self) -> &[u8] {
        let n = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        &self.comm[..n]
    }
}

impl Record for Thread {
    const LEN: usize = THREAD_LEN;
    fn put(&self, out: &mut [u8]) {
        let mut w = Wr::new(out);
        w.u64(self.tid);
        w.u64(self.flags);
        for r in self.regs {
            w.u64(r);
        }
        for a in self.altstack {
            w.u64(a);
        }
        w.u64(self.rseq);
        for r in self.robust {
            w.u64(r);
        }
        w.u64(self.tid_address);
        w.put(&self.comm);
        for a in self.affinity {
            w.u64(a);
        }
        w.u64(self.affinity_len);
        w.u64(self.policy);
        w.u64(self.priority);
        w.u64(self.nice);
        debug_assert_eq!(w.at, THREAD_LEN);
    }
    fn get(b: &[u8]) -> Result<Self, ImageError> {
        if b.len() < THREAD_LEN {
            return Err(ImageError::BadSection { tag: tag::THREADS });
        }
        let mut r = Rd::new(b);
        let mut t = Thread { tid: r.u64(), flags: r.u64(), ..Default::default() };
        for x in t.regs.iter_mut() {
            *x = r.u64();
        }
        for x in t.altstack.iter_mut() {
            *x = r.u64();
        }
        t.rseq = r.u64();
        for x in t.robust.iter_mut() {
            *x = r.u64();
        }
        t.tid_address = r.u64();
        t.comm = r.bytes::<16>();
        for x in t.affinity.iter_mut() {
            *x = r.u64();
        }
        t.affinity_len = r.u64();
        t.policy = r.u64();
        t.priority = r.u64();
        t.nice = r.u64();
        Ok(t)
    }
}

/// The records of a THREADS payload, its framing checked.
pub fn parse(data: &[u8]) -> Result<Table<'_, Thread>, ImageError> {
    let t = Table::<Thread>::parse(data, tag::THREADS)?;
    let bad = ImageError::BadSection { tag: tag::THREADS };
    if t.len() < 2 || t.len() > MAX_THREADS {
        return Err(bad);
    }
    let mut coordinators = 0;
    for (i, th) in t.iter().enumerate() {
        // pid_max is at most 2^22 (PID_MAX_LIMIT).
        if th.tid == 0 || th.tid > 1 << 22 || th.flags & !COORDINATOR != 0 || th.affinity_len > 128 {
            return Err(bad);
        }
        coordinators += (th.flags & COORDINATOR != 0) as u32;
        // Unique ids (n <= MAX_THREADS: at most 8 M comparisons).
        if t.iter().skip(i + 1).any(|o| o.tid == th.tid) {
            return Err(bad);
        }
    }
    if coordinators != 1 {
        return Err(bad);
    }
    Ok(t)
}
