//! Process-wide state for the image's PROCESS section (`ckpt_image::process`):
//! umask, nice, rlimits, personality, the prctl flags, oom_score_adj,
//! membarrier registrations, supplementary groups, the flags of each mapping
//! (VmFlags of /proc/self/smaps, which the loader applies as it maps), and the
//! pending signals with their siginfo.
//!
//! Pending signals are taken off the queues with `rt_sigtimedwait` (every signal
//! is blocked during a checkpoint, so no handler runs) and queued back at once
//! with `rt_sigqueueinfo` / `rt_tgsigqueueinfo`, so the process that goes on
//! still has them, with the same siginfo and in the same order. The kernel takes
//! the thread's own queue first, then the process's: a signal pending in both is
//! told apart by reading /proc/thread-self/status again after each one. The
//! kernel lets a process queue any si_code (SI_USER from kill included) to
//! itself; from another process only negative codes (measured on 6.18; see
//! docs/process-state.md). `capture_thread_pending` works on the calling thread
//! only, so that the threads work (issue 11) can call it from each stopped
//! thread.
//!
//! After a restart, `restore` puts everything back before the signal mask (which
//! `crate::checkpoint` restores last), so the queued signals are delivered to the
//! program's own handlers once it is whole. Each failure is reported in one line.

use ckpt_image::process::{
    self, Group, MapFlags, PendingSignal, ProcessState, RLIMIT_MAX, Rlimit, Settings, Timer, have, notify, scope,
    timer_flags, vm,
};
use ckpt_image::section::tag;
use ckpt_sys::settings::{self as s, membarrier_cmd, pr};
use ckpt_sys::task::{TimerEvent, TimerId};
use ckpt_sys::{Errno, Fd, Result, c, msg::Msg, num};

/// Pending signal instances kept (RLIMIT_SIGPENDING allows more: the rest are
/// left queued, unsaved, and the checkpoint says so).
pub const MAX_PENDING: usize = 256;
/// Supplementary groups kept (NGROUPS_MAX is 65536; more are reported).
const MAX_GROUPS: usize = 256;
/// Mappings with flags kept (every thread stack of a 500-thread program has some:
/// 512 was too few).
const MAX_MAPS: usize = 4096;
/// POSIX timers kept.
const MAX_TIMERS: usize = 64;

/// Captured process state.
pub struct Process {
    settings: Settings,
    rlimits: [Rlimit; RLIMIT_MAX as usize + 1],
    nrlimits: usize,
    pending: [PendingSignal; MAX_PENDING],
    npending: usize,
    groups: [Group; MAX_GROUPS],
    ngroups: usize,
    maps: [MapFlags; MAX_MAPS],
    nmaps: usize,
    timers: [Timer; MAX_TIMERS],
    ntimers: usize,
}

const ZERO_PENDING: PendingSignal = PendingSignal {
    sig: 0,
    scope: 0,
    i0: 0,
    i1: 0,
    i2: 0,
    i3: 0,
    i4: 0,
    i5: 0,
    i6: 0,
    i7: 0,
    i8: 0,
    i9: 0,
    i10: 0,
    i11: 0,
    i12: 0,
    i13: 0,
    i14: 0,
    i15: 0,
};
const ZERO_SETTINGS: Settings = Settings {
    have: 0,
    umask: 0,
    prio: 0,
    personality: 0,
    no_new_privs: 0,
    pdeathsig: 0,
    dumpable: 0,
    timer_slack: 0,
    subreaper: 0,
    oom_adj: 0,
    thp_disable: 0,
    membarrier: 0,
    children: 0,
    reserved: 0,
    reserved2: 0,
    reserved3: 0,
    reserved4: 0,
    reserved5: 0,
};

/// The child processes of every thread (`/proc/self/task/TID/children`), which
/// an image of this process alone leaves out: said at checkpoint time, naming
/// the first few, and counted for the restart and `ckpt info` to say again.
fn left_out_children() -> u32 {
    const NAMED: usize = 4;
    let mut named = Msg::new();
    let mut n = 0u32;
    let Ok(dir) = ckpt_sys::openat(Fd::CWD, c"/proc/self/task", c::O_RDONLY | c::O_DIRECTORY | c::O_CLOEXEC, 0) else {
        return 0;
    };
    let mut ents = [0u8; 4096];
    while let Ok(got) = ckpt_sys::getdents64(dir, &mut ents) {
        if got == 0 {
            break;
        }
        for tid in ckpt_sys::dirent_names(&ents[..got]).filter(|t| t.iter().all(u8::is_ascii_digit)) {
            let path = Msg::new().s("/proc/self/task/").b(tid).s("/children");
            let Some(p) = crate::write::CPath::from_parts(&[path.as_bytes()]) else { continue };
            let mut buf = [0u8; 4096];
            let Ok(len) = ckpt_sys::read_file(p.cstr(), &mut buf) else { continue };
            for pid in buf[..len].split(|&b| b == b' ' || b == b'\n').filter(|w| !w.is_empty()) {
                if (n as usize) < NAMED {
                    let stat = Msg::new().s("/proc/").b(pid).s("/comm");
                    let mut comm = [0u8; 32];
                    let name = crate::write::CPath::from_parts(&[stat.as_bytes()])
                        .and_then(|c| ckpt_sys::read_file(c.cstr(), &mut comm).ok())
                        .map_or(&b"?"[..], |k| comm[..k].strip_suffix(b"\n").unwrap_or(&comm[..k]));
                    named = named.s(if n == 0 { "" } else { ", " }).b(pid).s(" ").b(name);
                }
                n += 1;
            }
        }
    }
    let _ = ckpt_sys::close(dir);
    if n > 0 {
        warn(
            Msg::new()
                .u(n as u64)
                .s(if n == 1 { " child process is" } else { " child processes are" })
                .s(" not in the image (")
                .b(named.as_bytes())
                .s(if n as usize > NAMED { ", ..." } else { "" })
                .s(if n == 1 { "): after a restart it is gone" } else { "): after a restart they are gone" })
                .s(if n == 1 { ", and waiting for it" } else { ", and waiting for them" })
                .s(" fails (ECHILD); ckpt --tree checkpoints a program with its children"),
        );
    }
    n
}

/// Say something about the checkpoint being taken (stderr of the program).
fn warn(m: Msg) {
    Msg::new().s("ckpt: warning: ").b(m.as_bytes()).emit();
}

impl Process {
    /// Nothing captured.
    pub const EMPTY: Process = Process {
        settings: ZERO_SETTINGS,
        rlimits: [Rlimit { resource: 0, cur: 0, max: 0 }; RLIMIT_MAX as usize + 1],
        nrlimits: 0,
        pending: [ZERO_PENDING; MAX_PENDING],
        npending: 0,
        groups: [Group { gid: 0 }; MAX_GROUPS],
        ngroups: 0,
        maps: [MapFlags { start: 0, end: 0, flags: 0 }; MAX_MAPS],
        nmaps: 0,
        timers: [Timer { id: 0, clock: 0, signo: 0, notify: 0, value: 0, interval_ns: 0, remaining_ns: 0, flags: 0 };
            MAX_TIMERS],
        ntimers: 0,
    };

    /// Read it all; `skip`: signals that are the runtime's own (the trigger), left
    /// pending and not saved.
    pub fn capture(&mut self, skip: u64) -> Result<()> {
        self.capture_settings();
        self.nrlimits = 0;
        for r in 0..=RLIMIT_MAX {
            if let Ok((cur, max)) = s::prlimit64(r as u32, None) {
                self.rlimits[self.nrlimits] = Rlimit { resource: r, cur, max };
                self.nrlimits += 1;
            }
        }
        self.capture_maps();
        self.capture_timers();
        self.npending = 0;
        self.capture_thread_pending(skip, true)
    }

    fn capture_settings(&mut self) {
        let mut st = ZERO_SETTINGS;
        if !super::files::TREE.load(core::sync::atomic::Ordering::Relaxed) {
            st.children = left_out_children();
            st.have |= have::CHILDREN;
        }
        let mut buf = [0u8; 4096];
        if let Ok(n) = ckpt_sys::read_file(c"/proc/thread-self/status", &mut buf)
            && let Some(u) = num::field(&buf[..n], b"Umask:", 8)
        {
            st.umask = u as u32;
            st.have |= have::UMASK;
        }
        if let Ok(p) = s::getpriority() {
            st.prio = p;
            st.have |= have::NICE;
        }
        if let Ok(p) = s::personality(0xffff_ffff) {
            st.personality = p;
            st.have |= have::PERSONALITY;
        }
        let mut val = |opt: u32, bit: u64, out: &mut u32| {
            if let Ok(v) = s::prctl_value(opt, 0) {
                *out = v as u32;
                st.have |= bit;
            }
        };
        let (mut nnp, mut dump, mut thp) = (0, 0, 0);
        val(pr::GET_NO_NEW_PRIVS, have::NO_NEW_PRIVS, &mut nnp);
        val(pr::GET_DUMPABLE, have::DUMPABLE, &mut dump);
        val(pr::GET_THP_DISABLE, have::THP_DISABLE, &mut thp);
        (st.no_new_privs, st.dumpable, st.thp_disable) = (nnp, dump, thp);
        if let Ok(v) = s::prctl_value(pr::GET_TIMERSLACK, 0) {
            st.timer_slack = v as u64;
            st.have |= have::TIMER_SLACK;
        }
        if let Ok(v) = s::prctl_get_int(pr::GET_PDEATHSIG) {
            st.pdeathsig = v as u32;
            st.have |= have::PDEATHSIG;
        }
        if let Ok(v) = s::prctl_get_int(pr::GET_CHILD_SUBREAPER) {
            st.subreaper = v as u32;
            st.have |= have::SUBREAPER;
        }
        let mut ob = [0u8; 16];
        if let Ok(n) = ckpt_sys::read_file(c"/proc/self/oom_score_adj", &mut ob)
            && let Some(v) = num::signed(ob[..n].trim_ascii())
            && (-1000..=1000).contains(&v)
        {
            st.oom_adj = (v + 1000) as u32;
            st.have |= have::OOM_ADJ;
        }
        if let Ok(m) = s::membarrier(membarrier_cmd::GET_REGISTRATIONS, 0) {
            st.membarrier = m;
            st.have |= have::MEMBARRIER;
        }
        let mut g = [0u32; MAX_GROUPS];
        match s::getgroups(&mut g) {
            Ok(n) => {
                self.ngroups = n;
                for (d, &gid) in self.groups.iter_mut().zip(&g[..n]) {
                    *d = Group { gid: gid as u64 };
                }
                st.have |= have::GROUPS;
            }
            Err(e) => {
                self.ngroups = 0;
                warn(Msg::new().s("supplementary groups not saved (getgroups: ").errno(e).s(")"));
            }
        }
        self.settings = st;
    }

    /// The mappings whose VmFlags hold one of `vm`'s flags.
    fn capture_maps(&mut self) {
        self.nmaps = 0;
        let Ok((mut buf, n)) = ckpt_sys::scratch::read_whole(c"/proc/self/smaps") else {
            warn(Msg::new().s("cannot read /proc/self/smaps: mapping flags (mlock, MADV_*) not saved"));
            return;
        };
        let (mut start, mut end) = (0u64, 0u64);
        let mut lost = 0u64;
        for line in buf.bytes()[..n].split(|&b| b == b'\n') {
            if let Some(flags) = line.strip_prefix(b"VmFlags:") {
                let mut f = 0u64;
                for w in flags.split(|&b| b == b' ') {
                    if let Some(i) = vm::NAMES.iter().position(|n| n.as_bytes() == w) {
                        f |= 1 << i;
                    }
                }
                if f != 0 && end > start {
                    if self.nmaps < MAX_MAPS {
                        self.maps[self.nmaps] = MapFlags { start, end, flags: f };
                        self.nmaps += 1;
                    } else {
                        lost += 1;
                    }
                }
            } else if let Some(e) = ckpt_sys::maps::line(line) {
                (start, end) = (e.start, e.end);
            }
        }
        if lost > 0 {
            warn(Msg::new().s("flags of ").u(lost).s(" mappings not saved (more than 4096 have some)"));
        }
    }

    /// The program's POSIX timers (not the runtime's own periodic one), from
    /// /proc/self/timers and timer_gettime.
    fn capture_timers(&mut self) {
        self.ntimers = 0;
        let Ok((mut buf, n)) = ckpt_sys::scratch::read_whole(c"/proc/self/timers") else { return };
        let own = crate::signal::own_timer();
        let (pid, tid) = (ckpt_sys::getpid() as i64, ckpt_sys::gettid() as i64);
        let mut t: Option<Timer> = None;
        let mut lost = 0u64;
        // Blocks of "ID:", "signal: SIG/VALUE", "notify: KIND/pid.N", "ClockID:".
        let lines = buf.bytes()[..n].split(|&b| b == b'\n').chain(core::iter::once(&b"ID: end"[..]));
        for line in lines {
            if let Some(v) = line.strip_prefix(b"ID: ") {
                if let Some(mut done) = t.take()
                    && Some(done.id as i32) != own
                {
                    match ckpt_sys::task::timer_gettime(TimerId(done.id as i32)) {
                        Ok((interval, remaining)) => {
                            done.interval_ns = interval;
                            done.remaining_ns = remaining;
                            if remaining != 0 || interval != 0 {
                                done.flags |= timer_flags::ARMED;
                            }
                            if self.ntimers < MAX_TIMERS {
                                self.timers[self.ntimers] = done;
                                self.ntimers += 1;
                            } else {
                                lost += 1;
                            }
                        }
                        Err(e) => warn(Msg::new().s("POSIX timer ").u(done.id as u64).s(" not saved: ").errno(e)),
                    }
                }
                t = num::signed(v.trim_ascii()).map(|id| Timer { id: id as u32, ..Default::default() });
            } else if let (Some(x), Some(v)) = (t.as_mut(), line.strip_prefix(b"signal: ")) {
                let slash = v.iter().position(|&c| c == b'/').unwrap_or(v.len());
                x.signo = num::signed(&v[..slash]).unwrap_or(0) as u32;
                x.value = v.get(slash + 1..).and_then(|h| num::parse(h.trim_ascii(), 16)).unwrap_or(0);
            } else if let (Some(x), Some(v)) = (t.as_mut(), line.strip_prefix(b"notify: ")) {
                x.notify = if v.starts_with(b"none/") {
                    notify::NONE
                } else if v.starts_with(b"signal/tid.") {
                    notify::THREAD_ID
                } else {
                    notify::SIGNAL
                };
            } else if let (Some(x), Some(v)) = (t.as_mut(), line.strip_prefix(b"ClockID: ")) {
                let clock = num::signed(v.trim_ascii()).unwrap_or(0);
                x.clock = clock as i32 as u32;
                // CPU-time clocks: ~pid << 3 | type (bit 2: a thread's).
                let who = !(clock >> 3);
                if clock < 0 && (who == pid || (clock & 4 != 0 && who == tid)) {
                    x.flags |= timer_flags::CPU_CLOCK_OF_SELF;
                }
            }
        }
        if lost > 0 {
            warn(Msg::new().u(lost).s(" POSIX timers not saved (more than 64)"));
        }
    }

    /// Take the calling thread's pending signals (its own queue, and the
    /// process's when `shared`) off the queues, record them, and queue them back
    /// in the same order. `skip`: signals left alone.
    pub fn capture_thread_pending(&mut self, skip: u64, shared: bool) -> Result<()> {
        let skip = skip | 1 << (c::SIGKILL - 1) | 1 << (c::SIGSTOP - 1);
        let first = self.npending;
        let mut full = false;
        let (mut own, mut shd) = pending_masks()?;
        own &= !skip;
        shd = if shared { shd & !skip } else { 0 };
        'sigs: for sig in 1..=64u32 {
            let bit = 1u64 << (sig - 1);
            if (own | shd) & bit == 0 {
                continue;
            }
            // In both queues: the thread's instances come first; which one the
            // next belongs to is read again after each.
            let mut in_own = own & bit != 0;
            loop {
                if self.npending == MAX_PENDING {
                    full = true;
                    break 'sigs;
                }
                let mut info = [0u8; 128];
                match s::rt_sigtimedwait(bit, Some(&mut info)) {
                    Ok(_) => {}
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
                let sc = if in_own { scope::THREAD } else { scope::PROCESS };
                self.pending[self.npending] = PendingSignal::new(sig, sc, &info);
                self.npending += 1;
                if in_own && shd & bit != 0 {
                    in_own = pending_masks().map(|m| m.0 & bit != 0).unwrap_or(false);
                } else if !in_own && !shared {
                    break;
                }
            }
        }
        let mut failed = 0;
        for p in &self.pending[first..self.npending] {
            if queue(p).is_err() {
                failed += 1;
            }
        }
        if full {
            warn(Msg::new().s("more than 256 signals pending: the rest are not in the image"));
        }
        if failed > 0 {
            warn(Msg::new().s("could not queue back ").u(failed).s(" pending signals in this process"));
        }
        Ok(())
    }

    /// Put everything back in a restarted process, from the image's section.
    pub fn restore(sections: &ckpt_image::Sections) {
        let Some(sec) = sections.get(tag::PROCESS) else { return };
        let Ok(p) = ProcessState::parse(sec.data) else {
            super::report("read the process settings", Err(Errno::EINVAL));
            return;
        };
        let st = &p.settings;
        let has = |b: u64| st.have & b != 0;
        if has(have::CHILDREN) && st.children > 0 {
            let one = st.children == 1;
            Msg::new()
                .s("ckpt: warning: after restart, ")
                .u(st.children as u64)
                .s(if one { " child process" } else { " child processes" })
                .s(" the program had at checkpoint time ")
                .s(if one { "is" } else { "are" })
                .s(" not there (not in the image: ckpt --tree checkpoints a program with its children); waiting for ")
                .s(if one { "it" } else { "them" })
                .s(" fails (ECHILD)")
                .emit();
        }
        for r in p.rlimits.iter() {
            restore_rlimit(&r);
        }
        if has(have::UMASK) {
            s::umask(st.umask);
        }
        if has(have::NICE) {
            super::report("restore the nice value", s::setpriority(20 - st.prio as i32));
        }
        if has(have::PERSONALITY) {
            super::report("restore the personality", s::personality(st.personality).map(drop));
        }
        if has(have::NO_NEW_PRIVS) {
            let now = s::prctl_value(pr::GET_NO_NEW_PRIVS, 0).unwrap_or(0);
            if st.no_new_privs != 0 {
                super::report("set no_new_privs", s::prctl_value(pr::SET_NO_NEW_PRIVS, 1).map(drop));
            } else if now != 0 {
                super::report("clear no_new_privs (the kernel never allows it)", Err(Errno::EPERM));
            }
        }
        if has(have::PDEATHSIG) {
            super::report(
                "restore the parent-death signal",
                s::prctl_value(pr::SET_PDEATHSIG, st.pdeathsig as usize).map(drop),
            );
        }
        if has(have::DUMPABLE) {
            // 2 (suid_dumpable) cannot be set by prctl.
            let r = if st.dumpable > 1 {
                Err(Errno::EINVAL)
            } else {
                s::prctl_value(pr::SET_DUMPABLE, st.dumpable as usize)
            };
            super::report("restore the dumpable flag", r.map(drop));
        }
        if has(have::TIMER_SLACK) {
            super::report(
                "restore the timer slack",
                s::prctl_value(pr::SET_TIMERSLACK, st.timer_slack as usize).map(drop),
            );
        }
        if has(have::SUBREAPER) {
            super::report(
                "restore the child-subreaper flag",
                s::prctl_value(pr::SET_CHILD_SUBREAPER, st.subreaper as usize).map(drop),
            );
        }
        if has(have::THP_DISABLE) {
            super::report(
                "restore THP_DISABLE",
                s::prctl_value(pr::SET_THP_DISABLE, st.thp_disable as usize).map(drop),
            );
        }
        if has(have::OOM_ADJ) {
            super::report("restore oom_score_adj", write_oom_adj(st.oom_adj as i64 - 1000));
        }
        if has(have::MEMBARRIER) {
            for cmd in membarrier_cmd::REGISTRATIONS.iter().filter(|&&c| st.membarrier & c != 0) {
                super::report("register for membarrier", s::membarrier(*cmd, 0).map(drop));
            }
        }
        if has(have::GROUPS) {
            restore_groups(&p);
        }
        restore_timers(&p);
        let mut failed = (0u64, Errno::EINVAL);
        for sig in p.pending.iter() {
            if let Err(e) = queue(&sig) {
                failed = (failed.0 + 1, e);
            }
        }
        if failed.0 > 0 {
            Msg::new()
                .s("ckpt: warning: after restart, could not queue ")
                .u(failed.0)
                .s(" pending signals back: ")
                .errno(failed.1)
                .emit();
        }
    }
}

impl super::Section for Process {
    fn tag(&self) -> u32 {
        tag::PROCESS
    }
    fn len(&self) -> usize {
        process::len_for(self.nrlimits, self.npending, self.ngroups, self.nmaps, self.ntimers)
    }
    fn encode(&self, out: &mut [u8]) {
        let t = process::Tables {
            rlimits: &self.rlimits[..self.nrlimits],
            pending: &self.pending[..self.npending],
            groups: &self.groups[..self.ngroups],
            maps: &self.maps[..self.nmaps],
            timers: &self.timers[..self.ntimers],
        };
        process::encode(&self.settings, &t, out)
    }
}

/// Queue a captured signal back for this process (or this thread).
fn queue(p: &PendingSignal) -> Result<()> {
    let info = p.info();
    let pid = ckpt_sys::getpid();
    if p.scope == scope::THREAD {
        s::rt_tgsigqueueinfo(pid, ckpt_sys::gettid(), p.sig, &info)
    } else {
        s::rt_sigqueueinfo(pid, p.sig, &info)
    }
}

/// A limit as far as this process may set it: the saved hard limit cannot be
/// raised above the current one without CAP_SYS_RESOURCE; then the soft limit
/// is set as high as the current hard limit allows, and the shortfall reported.
fn restore_rlimit(r: &Rlimit) {
    let res = r.resource as u32;
    let Ok((_, max_now)) = s::prlimit64(res, None) else { return };
    match s::prlimit64(res, Some((r.cur, r.max))) {
        Ok(_) => {}
        Err(Errno::EPERM) if r.max > max_now => {
            let _ = s::prlimit64(res, Some((r.cur.min(max_now), max_now)));
            Msg::new()
                .s("ckpt: warning: after restart, could not raise the hard limit of resource ")
                .u(r.resource)
                .s(" to ")
                .u(r.max)
                .s(" (kept ")
                .u(max_now)
                .s(", soft limit ")
                .u(r.cur.min(max_now))
                .s("; raising needs CAP_SYS_RESOURCE): EPERM")
                .emit();
        }
        Err(e) => Msg::new()
            .s("ckpt: warning: after restart, could not restore resource limit ")
            .u(r.resource)
            .s(": ")
            .errno(e)
            .emit(),
    }
}

/// Re-create each timer with its id (PR_TIMER_CREATE_RESTORE_IDS), clock,
/// signal, value and notification, and arm it for the time it had left.
fn restore_timers(p: &ProcessState) {
    if p.timers.is_empty() {
        return;
    }
    // While on (Linux 6.14), timer_create takes the id to use from `*timerid`.
    let restore_ids = s::prctl_value(pr::TIMER_CREATE_RESTORE_IDS, pr::TIMER_CREATE_RESTORE_IDS_ON as usize);
    super::report("keep the ids of POSIX timers (PR_TIMER_CREATE_RESTORE_IDS)", restore_ids.map(drop));
    let (pid, tid) = (ckpt_sys::getpid(), ckpt_sys::gettid());
    for t in p.timers.iter() {
        let mut clock = t.clock as i32;
        if t.flags & timer_flags::CPU_CLOCK_OF_SELF != 0 {
            let who = if clock & 4 != 0 { tid } else { pid };
            clock = (!who << 3) | (clock & 7);
        }
        let ev = TimerEvent { notify: t.notify as i32, signo: t.signo, value: t.value as usize, tid };
        let r = ckpt_sys::task::timer_create(clock as u32, &ev, t.id as i32).and_then(|id| {
            if id.0 != t.id as i32 {
                let _ = ckpt_sys::task::timer_delete(id);
                return Err(Errno::EBUSY);
            }
            if t.flags & timer_flags::ARMED != 0 {
                // Due already (its signal not taken yet): expire now instead.
                let left = if t.remaining_ns == 0 { 1 } else { t.remaining_ns };
                ckpt_sys::task::timer_settime(id, t.interval_ns, left)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            Msg::new()
                .s("ckpt: warning: after restart, could not re-create POSIX timer ")
                .u(t.id as u64)
                .s(" with the same id: ")
                .errno(e)
                .emit();
        }
    }
    if restore_ids.is_ok() {
        let _ = s::prctl_value(pr::TIMER_CREATE_RESTORE_IDS, pr::TIMER_CREATE_RESTORE_IDS_OFF as usize);
    }
}

fn restore_groups(p: &ProcessState) {
    let mut now = [0u32; MAX_GROUPS];
    let n = s::getgroups(&mut now).unwrap_or(usize::MAX);
    let mut want = [0u32; MAX_GROUPS];
    let k = p.groups.len().min(MAX_GROUPS);
    for (d, g) in want.iter_mut().zip(p.groups.iter()) {
        *d = g.gid as u32;
    }
    if n == k && now[..n] == want[..k] {
        return;
    }
    super::report("restore the supplementary groups (needs CAP_SETGID)", s::setgroups(&want[..k]));
}

fn write_oom_adj(v: i64) -> Result<()> {
    let fd = ckpt_sys::openat(Fd::CWD, c"/proc/self/oom_score_adj", c::O_WRONLY | c::O_CLOEXEC, 0)?;
    let m = if v < 0 { Msg::new().s("-").u(v.unsigned_abs()) } else { Msg::new().u(v as u64) };
    let r = ckpt_sys::write_all(fd, m.as_bytes());
    let _ = ckpt_sys::close(fd);
    r
}

/// (thread's own, process's) pending sets from /proc/thread-self/status.
fn pending_masks() -> Result<(u64, u64)> {
    let mut buf = [0u8; 4096];
    let n = ckpt_sys::read_file(c"/proc/thread-self/status", &mut buf)?;
    let b = &buf[..n];
    match (num::field(b, b"SigPnd:", 16), num::field(b, b"ShdPnd:", 16)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Errno::EINVAL),
    }
}
