//! Why a checkpoint failed, reported as one line on stderr:
//! `ckpt: checkpoint failed: No space left on device (writing counter.ckpt)`.

use ckpt_sys::Errno;
use ckpt_sys::msg::Msg;

/// A failed step: the errno first (what went wrong), then what was being done.
#[derive(Clone, Copy)]
pub struct Failure {
    /// The kernel's answer.
    pub errno: Errno,
    step: &'static str,
    path: [u8; 256],
    path_len: usize,
}

impl Failure {
    /// `step` is a verb phrase that reads before the path ("creating", "writing").
    pub fn new(step: &'static str, errno: Errno, path: &[u8]) -> Failure {
        let mut f = Failure { errno, step, path: [0; 256], path_len: path.len().min(256) };
        f.path[..f.path_len].copy_from_slice(&path[..f.path_len]);
        f
    }

    /// Without a path.
    pub fn bare(step: &'static str, errno: Errno) -> Failure {
        Failure::new(step, errno, b"")
    }

    /// Print the line.
    pub fn report(&self) {
        let m = Msg::new().s("ckpt: checkpoint failed: ").s(self.errno.text()).s(" (").s(self.step);
        let m = if self.path_len > 0 { m.s(" ").b(&self.path[..self.path_len]) } else { m };
        m.s(")").emit();
    }
}
