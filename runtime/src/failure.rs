//! Why a checkpoint failed, reported as one line on stderr:
//! `ckpt: checkpoint failed: No space left on device (writing counter.ckpt)`,
//! optionally followed by what exactly failed and what the user can do:
//! `ckpt: checkpoint failed: Permission denied (reading /proc/self/auxv for
//! counter.ckpt): the process is not dumpable ...`.

use ckpt_sys::Errno;
use ckpt_sys::msg::Msg;

/// The step of [`Failure::busy`].
const BUSY: &str = "another checkpoint is in progress";

/// A failed step: the errno first (what went wrong), then what was being done.
#[derive(Clone, Copy)]
pub struct Failure {
    /// The kernel's answer.
    pub errno: Errno,
    step: &'static str,
    path: [u8; 256],
    path_len: usize,
    detail: [u8; 768],
    detail_len: usize,
}

impl Failure {
    /// `step` is a verb phrase that reads before the path ("creating", "writing").
    pub fn new(step: &'static str, errno: Errno, path: &[u8]) -> Failure {
        let mut f =
            Failure { errno, step, path: [0; 256], path_len: path.len().min(256), detail: [0; 768], detail_len: 0 };
        f.path[..f.path_len].copy_from_slice(&path[..f.path_len]);
        f
    }

    /// Add the explanation printed after the parenthesis (what failed exactly,
    /// why, what the user can do).
    pub fn detail(mut self, d: &[u8]) -> Failure {
        self.detail_len = d.len().min(self.detail.len());
        self.detail[..self.detail_len].copy_from_slice(&d[..self.detail_len]);
        self
    }

    /// The same failure about another file (the checkpoint's, once it is known).
    pub fn for_path(mut self, path: &[u8]) -> Failure {
        self.path_len = path.len().min(256);
        self.path[..self.path_len].copy_from_slice(&path[..self.path_len]);
        self
    }

    /// Without a path.
    pub fn bare(step: &'static str, errno: Errno) -> Failure {
        Failure::new(step, errno, b"")
    }

    /// Another thread's checkpoint holds the state (`state::with` found it
    /// busy).
    pub fn busy() -> Failure {
        Failure::bare(BUSY, Errno::EBUSY)
    }

    /// Is this [`Failure::busy`]?
    pub fn is_busy(&self) -> bool {
        self.errno == Errno::EBUSY && self.step == BUSY
    }

    /// Print the line.
    pub fn report(&self) {
        self.line(Msg::new().s("ckpt: ")).emit();
    }

    /// `m` + the line, without `ckpt: ` and without a newline (also what
    /// `ckpt checkpoint` is told).
    pub fn line(&self, m: Msg) -> Msg {
        let m = m.s("checkpoint failed: ").s(self.errno.text()).s(" (").s(self.step);
        let m = if self.path_len > 0 { m.s(" ").b(&self.path[..self.path_len]) } else { m };
        let m = m.s(")");
        if self.detail_len > 0 { m.s(": ").b(&self.detail[..self.detail_len]) } else { m }
    }
}

/// Add what the user can do to a failure to read the process's own /proc files
/// or state, where the cause is known: a process the kernel made non-dumpable
/// (after setuid, or PR_SET_DUMPABLE 0) finds /proc/self/* owned by root.
pub fn explained(f: Failure) -> Failure {
    let denied = matches!(f.errno, Errno::EACCES | Errno::EPERM);
    if denied && ckpt_sys::prctl_get_dumpable() == Ok(0) {
        f.detail(
            b"the process is not dumpable (it changed its user or group ids, or called prctl(PR_SET_DUMPABLE, 0)), \
            so the kernel lets only root read its /proc/self files; the program can call \
            prctl(PR_SET_DUMPABLE, 1) once it no longer holds secrets it must protect, or run without the id change",
        )
    } else {
        f
    }
}
