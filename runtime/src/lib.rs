//! The ckpt runtime: lives inside the program (preloaded as `libckpt.so`, or linked
//! from `libckpt.a`) and writes checkpoints.
//!
//! - `capi`: the load-time constructor and the C API (`ckpt.h`).
//! - `config`: CKPT_* settings, read once at load.
//! - `signal`: the asynchronous trigger (SIGTSTP by default).
//! - `capture`: kernel state that memory does not carry, captured before the image
//!   is written and restored after a restart.
//! - `write`: the checkpoint file itself.
//! - `arch`: the save point, the thread pointer, rseq (one file per architecture).
//! - `state`: the single global, serialised.
//!
//! The checkpoint path runs inside a signal handler at any instruction of the
//! program: it uses raw syscalls only (no malloc, no stdio, no locks, no errno).
//! Memory comes from `mmap`, diagnostics from `ckpt_sys::msg`.
#![no_std]
#![deny(unsafe_code)]

#[cfg_attr(target_arch = "x86_64", path = "arch/x86_64.rs")]
#[cfg_attr(target_arch = "x86", path = "arch/x86.rs")]
mod arch;
mod capi;
mod capture;
mod config;
mod failure;
mod signal;
mod state;
mod write;

use ckpt_sys::{Errno, c};

use crate::arch::Saved;
use crate::config::{Config, Path};
use crate::failure::Failure;
use crate::write::Job;

/// What a checkpoint request came to.
pub enum Outcome {
    /// The image is written; `exit` if the program should now end (not -c).
    Written {
        /// Continue mode is off.
        exit: bool,
    },
    /// This is the restarted process, returning from the checkpoint call.
    Restarted,
}

/// Load-time set-up: read the configuration and install the trigger.
pub fn init() {
    let (env, env_len) = match ckpt_sys::scratch::read_whole(c"/proc/self/environ") {
        Ok(v) => v,
        Err(_) => return,
    };
    let argv = ckpt_sys::scratch::read_whole(c"/proc/self/cmdline").ok();
    let argv0 = argv.as_ref().map_or(&b""[..], |(b, n)| {
        let a = &b.as_slice()[..*n];
        a.split(|&c| c == 0).next().unwrap_or(b"")
    });
    let cfg = Config::from_env(&env.as_slice()[..env_len], argv0);
    state::with(|st| st.cfg = cfg);
    if let Err(e) = signal::install(cfg.signal) {
        ckpt_sys::msg::Msg::new().s("ckpt: cannot install the checkpoint signal handler: ")
            .errno(e).emit();
    }
}

/// Take a checkpoint now, into `name` or the configured file.
pub fn checkpoint(name: Option<&[u8]>) -> Result<Outcome, Failure> {
    state::with(|st| {
        // Nothing else may run while the image is taken: block every signal.
        let (all, mut old) = (!0u64, 0u64);
        ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&all), Some(&mut old))
            .map_err(|e| Failure::bare("blocking signals", e))?;
        let pending = ckpt_sys::rt_sigpending().unwrap_or(!0);
        let r = take(st, name, old);
        if !matches!(r, Ok(Outcome::Restarted)) {
            // Writing past RLIMIT_FSIZE fails with EFBIG and also raises SIGXFSZ,
            // whose default action would kill the program we just promised to keep
            // running: a SIGXFSZ that our write raised is ours to drop.
            let xfsz = 1u64 << (c::SIGXFSZ - 1);
            if pending & xfsz == 0 {
                let _ = ckpt_sys::take_pending(xfsz);
            }
            // (After a restart the captured mask was already put back.)
            let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&old), None);
        }
        r
    })
    .unwrap_or(Err(Failure::bare("another checkpoint is in progress", Errno::EBUSY)))
}

fn take(st: &mut state::State, name: Option<&[u8]>, mask: u64) -> Result<Outcome, Failure> {
    st.kernel.capture(mask).map_err(|e| Failure::bare("reading process state", e))?;
    let path = match name {
        Some(n) => Path::new(n).ok_or(Failure::new("invalid checkpoint file name", Errno::EINVAL, n))?,
        None => st.cfg.name,
    };
    let mut job = Job::create(&path)?;
    let kernel = &st.kernel;
    let saved = arch::save_context(&mut || match job.write(kernel) {
        Ok(()) => 0,
        Err(f) => {
            job.failed = Some(f);
            -1
        }
    });
    match saved {
        Ok(Saved::Wrote(0)) => {
            job.commit()?;
            Ok(Outcome::Written { exit: !st.cfg.cont })
        }
        Ok(Saved::Wrote(_)) => {
            let f = job.failed.unwrap_or(Failure::bare("writing", Errno::EIO));
            job.abort();
            Err(f)
        }
        Err(e) => {
            job.abort();
            Err(Failure::bare("saving registers", e))
        }
        Ok(Saved::Restarted(info)) => {
            // The job's descriptor and buffers belong to the old process.
            core::mem::forget(job);
            arch::unmap_loader(&info);
            st.kernel.restore();
            Ok(Outcome::Restarted)
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    ckpt_sys::msg::Msg::new().s("ckpt: internal error (runtime panic)").emit();
    ckpt_sys::exit_group(127)
}
