//! Kernel state of the process that memory alone does not carry, captured just
//! before the image is written and put back just after a restart, by the runtime
//! itself (the loader only restores memory, the vDSO and the thread pointer).
//!
//! Runs with every signal blocked, on the checkpointing thread.

pub mod files;
pub mod maps;
pub mod mm;
pub mod process;
pub mod signals;
pub mod tls;

use ckpt_sys::{Errno, Result, msg::Msg};

use crate::config::Path;
use crate::failure::Failure;

/// Everything captured; see each module for its part.
pub struct Kernel {
    /// Signal dispositions, mask, alternate stack, interval timers.
    pub signals: signals::Signals,
    /// mm fields for PR_SET_MM_MAP and the saved auxv.
    pub mm: mm::Mm,
    /// Robust futex list and clear-child-tid address.
    pub tls: tls::Tls,
    /// glibc's rseq area, if it registered one.
    pub rseq: Option<usize>,
    /// Working directory.
    pub cwd: Path,
    /// Thread name (comm).
    pub comm: [u8; 16],
    /// Process id (the image may be written by another process).
    pub pid: i32,
    /// CPU affinity of the checkpointing thread, and its length in bytes (0: none).
    pub affinity: (ckpt_sys::task::CpuSet, usize),
    /// The descriptor table and shared file mappings (the FILES section; the
    /// loader restores them).
    pub files: files::Files,
    /// Settings, rlimits, pending signals, mapping flags (section PROCESS).
    pub process: process::Process,
    /// Scheduling policy, priority and nice value of the checkpointing thread.
    pub sched: (u32, i32, i32),
    /// The other threads, when the process has more than one.
    pub threads: ThreadsSection,
    /// The processes of a tree, in the root's image (`crate::tree`).
    pub tree: TreeSection,
}

/// The TREE section (`ckpt_image::tree`): the records of the root's session,
/// valid while the members are frozen (`tree::section`).
pub struct TreeSection {
    /// Address and count of the `Member` records (count 0: no section).
    pub members: (usize, usize),
    /// Address and count of the `SharedFd` records.
    pub shared: (usize, usize),
}

impl TreeSection {
    /// No section.
    pub const EMPTY: TreeSection = TreeSection { members: (0, 0), shared: (0, 0) };

    /// The `(address, count)` table as a slice.
    fn table<T>(&self, (at, n): (usize, usize)) -> &[T] {
        if n == 0 {
            return &[];
        }
        #[allow(unsafe_code)]
        // SAFETY: set by `tree::section` from the session's tables, which live in
        // static memory and are not changed while the image is written.
        unsafe {
            core::slice::from_raw_parts(at as *const T, n)
        }
    }
}

impl Section for TreeSection {
    fn tag(&self) -> u32 {
        ckpt_image::section::tag::TREE
    }
    fn version(&self) -> u32 {
        ckpt_image::tree::VERSION
    }
    fn is_empty(&self) -> bool {
        self.members.1 == 0
    }
    fn len(&self) -> usize {
        ckpt_image::tree::len_for(self.members.1, self.shared.1)
    }
    fn encode(&self, out: &mut [u8]) {
        ckpt_image::tree::encode(self.table(self.members), self.table(self.shared), out);
    }
}

/// The THREADS section (`ckpt_image::threads`): the checkpointing thread's record
/// (its registers are the save point's, known only while the image is written)
/// and the stopped threads' records, in the coordinator's session table.
pub struct ThreadsSection {
    /// The checkpointing thread (tid 0: single-threaded, no section).
    pub me: ckpt_image::threads::Thread,
    /// The stopped threads' records: address and count (valid while they are stopped).
    pub others: (usize, usize),
}

impl ThreadsSection {
    /// No section.
    pub const EMPTY: ThreadsSection = ThreadsSection {
        me: ckpt_image::threads::Thread {
            tid: 0,
            flags: 0,
            regs: [0; ckpt_image::REGS_WORDS],
            altstack: [0; 3],
            rseq: 0,
            robust: [0; 2],
            tid_address: 0,
            comm: [0; 16],
            affinity: [0; 16],
            affinity_len: 0,
            policy: 0,
            priority: 0,
            nice: 0,
        },
        others: (0, 0),
    };

    /// The stopped threads' records.
    pub fn others(&self) -> &[ckpt_image::threads::Thread] {
        if self.others.0 == 0 {
            return &[];
        }
        // SAFETY: set from `threads::Stopped::records` for the session in progress,
        // whose table stays mapped until the threads are released (after the image
        // is written); cleared before every checkpoint.
        #[allow(unsafe_code)]
        unsafe {
            core::slice::from_raw_parts(self.others.0 as *const ckpt_image::threads::Thread, self.others.1)
        }
    }

    /// The save-point registers of the thread-group leader (`tid == pid`): the
    /// process record's, which the loader's own thread resumes.
    pub fn leader_regs(&self, pid: i32) -> [u64; ckpt_image::REGS_WORDS] {
        if self.me.tid == 0 || self.me.tid == pid as u64 {
            return crate::arch::saved_regs();
        }
        self.others().iter().find(|t| t.tid == pid as u64).map_or_else(crate::arch::saved_regs, |t| t.regs)
    }
}

impl Section for ThreadsSection {
    fn tag(&self) -> u32 {
        ckpt_image::section::tag::THREADS
    }
    fn is_empty(&self) -> bool {
        self.me.tid == 0
    }
    fn len(&self) -> usize {
        if self.me.tid == 0 {
            0
        } else {
            ckpt_image::section::Table::<ckpt_image::threads::Thread>::len_for(1 + self.others.1)
        }
    }
    fn encode(&self, out: &mut [u8]) {
        use ckpt_image::section::Table;
        let me = ckpt_image::threads::Thread { regs: crate::arch::saved_regs(), ..self.me };
        Table::<ckpt_image::threads::Thread>::start(out, 1 + self.others.1);
        Table::put(out, 0, &me);
        for (i, t) in self.others().iter().enumerate() {
            Table::put(out, i + 1, t);
        }
    }
}

impl Kernel {
    /// Before the first checkpoint.
    pub const EMPTY: Kernel = Kernel {
        signals: signals::Signals::EMPTY,
        mm: mm::Mm::EMPTY,
        tls: tls::Tls::EMPTY,
        rseq: None,
        cwd: Path::EMPTY,
        comm: [0; 16],
        pid: 0,
        affinity: ([0; 16], 0),
        sched: (0, 0, 0),
        threads: ThreadsSection::EMPTY,
        tree: TreeSection::EMPTY,
        files: files::Files::EMPTY,
        process: process::Process::EMPTY,
    };

    /// Capture everything. A failure names the step (and file) that failed and,
    /// where the user can do something about it, says what.
    /// `skip`: the runtime's own signals (left pending, not saved).
    pub fn capture(&mut self, skip: u64) -> core::result::Result<(), Failure> {
        let step = |what: &'static str| move |e| crate::failure::explained(Failure::bare(what, e));
        self.signals.capture().map_err(step("reading the signal dispositions (rt_sigaction) for"))?;
        self.mm.capture().map_err(|(what, e)| crate::failure::explained(Failure::bare(what, e)))?;
        self.tls.capture().map_err(step("reading the robust futex list and clear-child-tid address for"))?;
        self.rseq = crate::arch::rseq_area();
        let mut buf = [0u8; crate::config::NAME_MAX];
        let n = ckpt_sys::getcwd(&mut buf).map_err(|e| {
            let f = Failure::bare("reading the working directory (getcwd) for", e);
            if e == Errno::ENOENT {
                f.detail(
                    b"the program's working directory was deleted; a restart returns to it, so ckpt cannot \
                    checkpoint a program whose directory is gone: have it chdir to a directory that exists",
                )
            } else {
                crate::failure::explained(f)
            }
        })?;
        self.cwd = Path::new(&buf[..n.saturating_sub(1)]).unwrap_or(Path::EMPTY);
        self.comm = ckpt_sys::prctl_get_name().map_err(step("reading the thread name (PR_GET_NAME) for"))?;
        self.pid = ckpt_sys::getpid();
        self.affinity = ckpt_sys::task::sched_getaffinity().unwrap_or(([0; 16], 0));
        self.sched = (
            ckpt_sys::task::sched_getscheduler().unwrap_or(0),
            ckpt_sys::task::sched_getparam().unwrap_or(0),
            ckpt_sys::task::getpriority().unwrap_or(0),
        );
        self.files.capture().map_err(step("recording the open descriptors (/proc/self/fd, fdinfo) for"))?;
        self.process
            .capture(skip)
            .map_err(step("reading the pending signals (/proc/thread-self/status, rt_sigtimedwait) for"))
    }

    /// The state that goes into image sections (`ckpt_image::section`), in the
    /// order they are written. Each kind of state beyond memory adds itself here.
    pub fn sections(&self) -> impl Iterator<Item = &dyn Section> {
        let all: [&dyn Section; 4] = [&self.files, &self.process, &self.threads, &self.tree];
        all.into_iter().filter(|s| !s.is_empty())
    }

    /// Put it all back in a restarted process. Failures are reported and the
    /// restore goes on: a program with, say, its old cwd gone is still better
    /// continued than killed. The signal mask is left to the caller, which puts
    /// it back last, after the restart hooks, so no handler runs before the
    /// process is whole.
    pub fn restore(&mut self, sections: &ckpt_image::Sections) {
        // The descriptors are already back (the loader restores them from the
        // FILES section before it replaces the address space); the captured
        // payload's memory was left out of the image.
        self.files.forget_after_restart();
        report("restore the memory layout (PR_SET_MM_MAP)", self.mm.restore());
        if let Some(area) = self.rseq {
            report("register rseq", crate::arch::rseq_register(area));
        }
        self.tls.restore();
        crate::trace("restore the robust futex list and the clear-child-tid address");
        if !self.cwd.is_empty() {
            let mut p = [0u8; crate::config::NAME_MAX + 1];
            let b = self.cwd.as_bytes();
            p[..b.len()].copy_from_slice(b);
            if let Ok(c) = core::ffi::CStr::from_bytes_until_nul(&p) {
                report("return to the working directory", ckpt_sys::chdir(c));
            }
        }
        let _ = ckpt_sys::prctl_set_name(&self.comm);
        if self.affinity.1 != 0 {
            // EINVAL: none of those CPUs exists here; the program runs anywhere.
            report("restore the CPU affinity", ckpt_sys::task::sched_setaffinity(&self.affinity.0, self.affinity.1));
        }
        report("restore signal handlers", self.signals.restore_handlers());
        // After the handlers, before the mask (restored last by the caller).
        process::Process::restore(sections);
        let (policy, prio, nice) = self.sched;
        crate::threads::restore_sched(policy, prio, nice, &|what, e| report(what, Err(e)));
    }
}

/// Kernel state written into one image section (see `ckpt_image::section`): the
/// image crate owns the record layout, the capture module fills it.
pub trait Section {
    /// Its tag (`ckpt_image::section::tag`).
    fn tag(&self) -> u32;
    /// Its format version.
    fn version(&self) -> u32 {
        1
    }
    /// Exact payload length in bytes.
    fn len(&self) -> usize;
    /// Nothing to say: the section is left out of the image.
    fn is_empty(&self) -> bool {
        false
    }
    /// Write the payload into `out` (exactly `len()` bytes).
    fn encode(&self, out: &mut [u8]);
}

/// Say what could not be restored (stderr of the restarted process); with
/// `CKPT_DEBUG=1`, what could too.
fn report(what: &str, r: Result<()>) {
    match r {
        Ok(()) => crate::trace(what),
        Err(e) => Msg::new().s("ckpt: warning: after restart, could not ").s(what).s(": ").errno(e).emit(),
    }
}
