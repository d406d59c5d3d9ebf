//! Process-wide kernel state beyond memory (section [`tag::PROCESS`]): the
//! per-process settings (umask, nice, personality, prctl flags, oom_score_adj,
//! membarrier registrations, supplementary groups), the resource limits, the
//! pending signals with their siginfo, and the flags of each mapping that
//! `/proc/self/smaps` shows (`VmFlags`).
//!
//! ```text
//! Settings                       one record
//! u64 count, Rlimit…             every resource prlimit knows
//! u64 count, PendingSignal…      in the order they were queued, per signal
//! u64 count, Group…              supplementary group ids
//! u64 count, MapFlags…           mappings with a flag to put back, by address
//! u64 count, Timer…              POSIX timers (timer_create), by id
//! ```
//!
//! Per-thread state (the pending signals of other threads) belongs in the
//! THREADS section; here, a pending signal's `scope` says whether it was
//! process-wide or private to the checkpointing thread.
//!
//! [`tag::PROCESS`]: crate::section::tag::PROCESS

use crate::section::{Record, Section, Table, tag};
use crate::{ImageError, Rd, Wr};

record! {
    /// The per-process settings. A field whose `have` bit is clear could not be
    /// read at checkpoint time and is not restored.
    pub struct Settings [SETTINGS_LEN = 96] {
        /// Bits of [`have`]: which fields below were captured.
        pub have: u64,
        /// umask(2).
        pub umask: u32,
        /// Nice value (getpriority(PRIO_PROCESS, 0) as `20 - nice`, 1..=40).
        pub prio: u32,
        /// personality(0xffffffff).
        pub personality: u32,
        /// PR_GET_NO_NEW_PRIVS.
        pub no_new_privs: u32,
        /// PR_GET_PDEATHSIG (0: none).
        pub pdeathsig: u32,
        /// PR_GET_DUMPABLE.
        pub dumpable: u32,
        /// PR_GET_TIMERSLACK in ns.
        pub timer_slack: u64,
        /// PR_GET_CHILD_SUBREAPER.
        pub subreaper: u32,
        /// /proc/self/oom_score_adj, plus 1000 (0..=2000).
        pub oom_adj: u32,
        /// PR_GET_THP_DISABLE.
        pub thp_disable: u32,
        /// membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): the registration commands.
        pub membarrier: u32,
        /// Child processes it had at checkpoint time that are not in the image
        /// (without tree mode: `ckpt --tree` checkpoints them too).
        pub children: u32,
        /// Reserved, 0.
        pub reserved: u32,
        /// Reserved, 0.
        pub reserved2: u64,
        /// Reserved, 0.
        pub reserved3: u64,
        /// Reserved, 0.
        pub reserved4: u64,
        /// Reserved, 0.
        pub reserved5: u64,
    }
}

/// Bits of [`Settings::have`].
pub mod have {
    /// umask.
    pub const UMASK: u64 = 1 << 0;
    /// nice.
    pub const NICE: u64 = 1 << 1;
    /// personality.
    pub const PERSONALITY: u64 = 1 << 2;
    /// no_new_privs.
    pub const NO_NEW_PRIVS: u64 = 1 << 3;
    /// parent-death signal.
    pub const PDEATHSIG: u64 = 1 << 4;
    /// dumpable.
    pub const DUMPABLE: u64 = 1 << 5;
    /// timer slack.
    pub const TIMER_SLACK: u64 = 1 << 6;
    /// child subreaper.
    pub const SUBREAPER: u64 = 1 << 7;
    /// oom_score_adj.
    pub const OOM_ADJ: u64 = 1 << 8;
    /// THP_DISABLE.
    pub const THP_DISABLE: u64 = 1 << 9;
    /// membarrier registrations.
    pub const MEMBARRIER: u64 = 1 << 10;
    /// supplementary groups.
    pub const GROUPS: u64 = 1 << 11;
    /// the count of children left out of the image.
    pub const CHILDREN: u64 = 1 << 12;
    /// Every bit this version knows.
    pub const ALL: u64 = (1 << 13) - 1;
}

record! {
    /// One resource limit (getrlimit(2)); `u64::MAX` is RLIM_INFINITY.
    pub struct Rlimit [RLIMIT_LEN = 24] {
        /// RLIMIT_* number.
        pub resource: u64,
        /// Soft limit.
        pub cur: u64,
        /// Hard limit.
        pub max: u64,
    }
}

/// Highest RLIMIT_* number (RLIMIT_RTTIME).
pub const RLIMIT_MAX: u64 = 15;

record! {
    /// One pending signal and the kernel's siginfo for it (128 bytes, the
    /// architecture's layout, as rt_sigtimedwait returned it).
    pub struct PendingSignal [PENDING_LEN = 136] {
        /// Signal number, 1..=64.
        pub sig: u32,
        /// [`scope`].
        pub scope: u32,
        /// siginfo bytes 0..8 (little-endian words from here on).
        pub i0: u64,
        /// siginfo bytes 8..16.
        pub i1: u64,
        /// siginfo bytes 16..24.
        pub i2: u64,
        /// siginfo bytes 24..32.
        pub i3: u64,
        /// siginfo bytes 32..40.
        pub i4: u64,
        /// siginfo bytes 40..48.
        pub i5: u64,
        /// siginfo bytes 48..56.
        pub i6: u64,
        /// siginfo bytes 56..64.
        pub i7: u64,
        /// siginfo bytes 64..72.
        pub i8: u64,
        /// siginfo bytes 72..80.
        pub i9: u64,
        /// siginfo bytes 80..88.
        pub i10: u64,
        /// siginfo bytes 88..96.
        pub i11: u64,
        /// siginfo bytes 96..104.
        pub i12: u64,
        /// siginfo bytes 104..112.
        pub i13: u64,
        /// siginfo bytes 112..120.
        pub i14: u64,
        /// siginfo bytes 120..128.
        pub i15: u64,
    }
}

/// Values of [`PendingSignal::scope`].
pub mod scope {
    /// Pending for the whole process (kill, sigqueue).
    pub const PROCESS: u32 = 0;
    /// Pending for the checkpointing thread only (tgkill, pthread_kill, a fault).
    pub const THREAD: u32 = 1;
}

impl PendingSignal {
    /// From the kernel's 128 siginfo bytes.
    pub fn new(sig: u32, scope: u32, info: &[u8; 128]) -> PendingSignal {
        let mut b = [0u8; PENDING_LEN];
        b[0..4].copy_from_slice(&sig.to_le_bytes());
        b[4..8].copy_from_slice(&scope.to_le_bytes());
        b[8..].copy_from_slice(info);
        PendingSignal::decode(&b).unwrap_or_default()
    }

    /// The 128 siginfo bytes.
    pub fn info(&self) -> [u8; 128] {
        let mut b = [0u8; PENDING_LEN];
        self.encode(&mut b);
        let mut out = [0u8; 128];
        out.copy_from_slice(&b[8..]);
        out
    }

    /// `si_code` (bytes 8..12 of siginfo on every architecture).
    pub fn code(&self) -> i32 {
        self.i1 as u32 as i32
    }

    /// `si_value` of a sigqueue'd or timer signal: the word at byte 24 (x86_64)
    /// or 20 (i386) of siginfo.
    pub fn value(&self, arch: u32) -> u64 {
        if arch == crate::ARCH_X86 { self.i2 >> 32 } else { self.i3 }
    }
}

record! {
    /// The flags of one mapping that must come back (VmFlags of smaps).
    pub struct MapFlags [MAP_FLAGS_LEN = 24] {
        /// Start address.
        pub start: u64,
        /// End address.
        pub end: u64,
        /// Bits of [`vm`].
        pub flags: u64,
    }
}

/// Bits of [`MapFlags::flags`] (the smaps VmFlags names).
pub mod vm {
    /// `lo`: locked (mlock, MAP_LOCKED).
    pub const LOCKED: u64 = 1 << 0;
    /// `gd`: grows down (MAP_GROWSDOWN).
    pub const GROWSDOWN: u64 = 1 << 1;
    /// `dc`: not copied on fork (MADV_DONTFORK).
    pub const DONTFORK: u64 = 1 << 2;
    /// `wf`: wiped on fork (MADV_WIPEONFORK).
    pub const WIPEONFORK: u64 = 1 << 3;
    /// `hg`: MADV_HUGEPAGE.
    pub const HUGEPAGE: u64 = 1 << 4;
    /// `nh`: MADV_NOHUGEPAGE.
    pub const NOHUGEPAGE: u64 = 1 << 5;
    /// `nr`: no swap reserved (MAP_NORESERVE).
    pub const NORESERVE: u64 = 1 << 6;
    /// Every bit this version knows.
    pub const ALL: u64 = (1 << 7) - 1;
    /// The smaps two-letter names, index = bit.
    pub const NAMES: [&str; 7] = ["lo", "gd", "dc", "wf", "hg", "nh", "nr"];
}

record! {
    /// One POSIX timer (timer_create(2)), as /proc/self/timers and
    /// timer_gettime(2) show it.
    pub struct Timer [TIMER_LEN = 48] {
        /// The kernel's timer id (what the program's timer_t holds).
        pub id: u32,
        /// Clock id (negative CPU-time clocks as their two's complement).
        pub clock: u32,
        /// sigev_signo.
        pub signo: u32,
        /// sigev_notify: SIGEV_SIGNAL (0), SIGEV_NONE (1), SIGEV_THREAD_ID (4).
        pub notify: u32,
        /// sigev_value.
        pub value: u64,
        /// it_interval in ns.
        pub interval_ns: u64,
        /// it_value (time to the next expiry) in ns; 0: disarmed.
        pub remaining_ns: u64,
        /// Bits of [`timer_flags`].
        pub flags: u64,
    }
}

/// Bits of [`Timer::flags`].
pub mod timer_flags {
    /// Armed: the next expiry was due (it_value read 0 with an interval set,
    /// the signal not taken yet) or `remaining_ns` is set.
    pub const ARMED: u64 = 1;
    /// The clock is a CPU-time clock of this process or thread whose id encodes
    /// the old pid/tid: re-encoded with the new one at restart.
    pub const CPU_CLOCK_OF_SELF: u64 = 2;
}

/// Values of [`Timer::notify`].
pub mod notify {
    /// SIGEV_SIGNAL.
    pub const SIGNAL: u32 = 0;
    /// SIGEV_NONE.
    pub const NONE: u32 = 1;
    /// SIGEV_THREAD_ID (to the checkpointing thread).
    pub const THREAD_ID: u32 = 4;
}

record! {
    /// One supplementary group id.
    pub struct Group [GROUP_LEN = 8] {
        /// The gid.
        pub gid: u64,
    }
}

/// A validated PROCESS section.
#[derive(Clone, Copy, Debug)]
pub struct ProcessState<'a> {
    /// The settings.
    pub settings: Settings,
    /// Resource limits.
    pub rlimits: Table<'a, Rlimit>,
    /// Pending signals.
    pub pending: Table<'a, PendingSignal>,
    /// Supplementary groups.
    pub groups: Table<'a, Group>,
    /// Mapping flags, sorted by address, disjoint.
    pub maps: Table<'a, MapFlags>,
    /// POSIX timers.
    pub timers: Table<'a, Timer>,
}

/// Split one table off the front of `b`.
fn table<'a, R: Record + 'a>(b: &mut &'a [u8]) -> Result<Table<'a, R>, ImageError> {
    let bad = ImageError::BadSection { tag: tag::PROCESS };
    let n = Rd::new(b).u64();
    if b.len() < 8 {
        return Err(bad);
    }
    let len = n.checked_mul(R::LEN as u64).and_then(|l| l.checked_add(8)).ok_or(bad)?;
    if len > b.len() as u64 {
        return Err(bad);
    }
    let (t, rest) = b.split_at(len as usize);
    *b = rest;
    Table::parse(t, tag::PROCESS)
}

impl<'a> ProcessState<'a> {
    /// Decode and check every record.
    pub fn parse(data: &'a [u8]) -> Result<ProcessState<'a>, ImageError> {
        let bad = ImageError::BadSection { tag: tag::PROCESS };
        let settings = Settings::decode(data).map_err(|_| bad)?;
        let mut rest = &data[SETTINGS_LEN..];
        let rlimits: Table<Rlimit> = table(&mut rest)?;
        let pending: Table<PendingSignal> = table(&mut rest)?;
        let groups: Table<Group> = table(&mut rest)?;
        let maps: Table<MapFlags> = table(&mut rest)?;
        let timers: Table<Timer> = table(&mut rest)?;
        if timers.iter().any(|t| {
            t.signo > 64
                || ![notify::SIGNAL, notify::NONE, notify::THREAD_ID].contains(&t.notify)
                || t.flags & !3 != 0
                || (t.notify != notify::NONE && t.signo == 0)
        }) {
            return Err(bad);
        }
        if !rest.is_empty()
            || settings.have & !have::ALL != 0
            || settings.oom_adj > 2000
            || settings.pdeathsig > 64
            || (settings.have & have::NICE != 0 && !(1..=40).contains(&settings.prio))
        {
            return Err(bad);
        }
        if rlimits.iter().any(|r| r.resource > RLIMIT_MAX || (r.cur > r.max)) {
            return Err(bad);
        }
        if pending.iter().any(|p| p.sig == 0 || p.sig > 64 || p.scope > scope::THREAD) {
            return Err(bad);
        }
        let mut prev = 0u64;
        for m in maps.iter() {
            if m.start < prev || m.end <= m.start || m.flags & !vm::ALL != 0 {
                return Err(bad);
            }
            prev = m.end;
        }
        Ok(ProcessState { settings, rlimits, pending, groups, maps, timers })
    }

    /// The flags recorded for the mapping that contains `addr` (0: none).
    pub fn map_flags(&self, addr: u64) -> u64 {
        // The first mapping ending above `addr`.
        let (mut l, mut r) = (0usize, self.maps.len());
        while l < r {
            let m = l + (r - l) / 2;
            match self.maps.at(m) {
                Some(f) if f.end <= addr => l = m + 1,
                _ => r = m,
            }
        }
        self.maps.at(l).filter(|f| f.start <= addr).map_or(0, |f| f.flags)
    }
}

/// Payload length for tables of the given sizes.
pub const fn len_for(rlimits: usize, pending: usize, groups: usize, maps: usize, timers: usize) -> usize {
    Table::<Timer>::len_for(timers)
        + SETTINGS_LEN
        + Table::<Rlimit>::len_for(rlimits)
        + Table::<PendingSignal>::len_for(pending)
        + Table::<Group>::len_for(groups)
        + Table::<MapFlags>::len_for(maps)
}

/// The tables of a payload, in order.
pub struct Tables<'x> {
    /// Resource limits.
    pub rlimits: &'x [Rlimit],
    /// Pending signals.
    pub pending: &'x [PendingSignal],
    /// Supplementary groups.
    pub groups: &'x [Group],
    /// Mapping flags.
    pub maps: &'x [MapFlags],
    /// POSIX timers.
    pub timers: &'x [Timer],
}

/// Encode a payload (`out` exactly `len_for(...)` bytes).
pub fn encode(s: &Settings, t: &Tables, out: &mut [u8]) {
    let (rl, pending, groups, maps) = (t.rlimits, t.pending, t.groups, t.maps);
    s.encode(out);
    let mut at = SETTINGS_LEN;
    let n = Table::<Rlimit>::len_for(rl.len());
    Table::encode(rl, &mut out[at..at + n]);
    at += n;
    let n = Table::<PendingSignal>::len_for(pending.len());
    Table::encode(pending, &mut out[at..at + n]);
    at += n;
    let n = Table::<Group>::len_for(groups.len());
    Table::encode(groups, &mut out[at..at + n]);
    at += n;
    let n = Table::<MapFlags>::len_for(maps.len());
    Table::encode(maps, &mut out[at..at + n]);
    at += n;
    let n = Table::<Timer>::len_for(t.timers.len());
    Table::encode(t.timers, &mut out[at..at + n]);
}

/// The section validator (`section::validate`).
pub fn validate(s: &Section) -> Result<(), ImageError> {
    if s.version != 1 {
        return Err(ImageError::BadSection { tag: s.tag });
    }
    ProcessState::parse(s.data).map(drop)
}
