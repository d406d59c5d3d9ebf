//! Restarting a tree image (`ckpt_image::tree`, docs/trees.md): every process of
//! the tree again, each forked by its parent with its old pid, in the pid
//! namespace `ids::enter` made for the root.
//!
//! The root's loader (already the root's process, with the root's pid) forks the
//! root's children, each with clone3 `set_tid = [pid]`; each child, still running
//! the loader, forks its own children the same way, then puts itself in its
//! session and process group, and goes on to restore its own image (a complete
//! image of its own inside the file). A zombie's process exits at once with its
//! saved wait status, for its parent to reap. Parents come before their children
//! in the table (validated), so a process forks only members that follow it.
//!
//! # Safety
//! Forks (clone3 without CLONE_VM) of a loader that holds no lock and runs no
//! other thread, as in `ids`.
#![allow(unsafe_code)]

use ckpt_image::section::Table;
use ckpt_image::tree::{Member, ZOMBIE};
use ckpt_sys::task::{self, CloneArgs};
use ckpt_sys::{Errno, c};

use crate::{Name, die, msg};

/// Fork every process of the tree (see the module comment). Returns the index
/// of the member this process is (0: the root).
pub fn spawn(name: &Name, t: &Table<Member>) -> usize {
    let Some(root) = t.at(0) else { return 0 };
    let mut me = 0usize;
    'member: loop {
        let Some(my) = t.at(me) else { return me };
        for j in me + 1..t.len() {
            let Some(m) = t.at(j) else { continue };
            if m.ppid != my.pid {
                continue;
            }
            let tid = [m.pid as i32];
            let args = CloneArgs {
                exit_signal: task::SIGCHLD,
                set_tid: tid.as_ptr() as usize as u64,
                set_tid_size: 1,
                ..Default::default()
            };
            // SAFETY: see the module comment; `tid` lives across the call.
            match unsafe { task::clone3_fork(&args) } {
                Ok(0) => {
                    me = j;
                    settle(name, &root, &m);
                    if m.flags & ZOMBIE != 0 {
                        exit_as(m.status);
                    }
                    continue 'member;
                }
                Ok(_) => {}
                Err(Errno::EEXIST) => die(msg(name)
                    .s("cannot restore pid ")
                    .u(m.pid as u64)
                    .s(" of the tree: taken in the new pid namespace")),
                Err(e) => die(msg(name)
                    .s("cannot create the process of pid ")
                    .u(m.pid as u64)
                    .s(" of the tree (clone3): ")
                    .errno(e)),
            }
        }
        return me;
    }
}

/// Put the new process of member `m` in its session and process group. The
/// root's own group and session are the restarting shell's: a member that was
/// in the root's stays in the root's; one that led its own leads its own again;
/// one that was in another member's group joins it (once that member made it).
fn settle(name: &Name, root: &Member, m: &Member) {
    let warn = |what: &str, e: Errno| {
        msg(name)
            .s("warning: process ")
            .u(m.pid as u64)
            .s(" of the tree: cannot ")
            .s(what)
            .s(" (")
            .errno(e)
            .s("); it stays in its parent's")
            .emit()
    };
    if m.sid == m.pid {
        if let Err(e) = ckpt_sys::setsid() {
            warn("start its own session again (setsid)", e);
        }
        return;
    }
    let now = ckpt_sys::getpgid(0).unwrap_or(0);
    let want = if m.pgid == root.pgid { ckpt_sys::getpgid(root.pid as i32).unwrap_or(now) } else { m.pgid as i32 };
    if want == now {
        return;
    }
    let target = if want == m.pid as i32 { 0 } else { want };
    // The group's leader may not have made it yet (a sibling forked just before).
    let mut tries = 0;
    loop {
        match ckpt_sys::setpgid(0, target) {
            Ok(()) => return,
            Err(Errno::EPERM) if tries < 200 => {
                tries += 1;
                let w = core::sync::atomic::AtomicU32::new(0);
                let _ = task::futex_wait(&w, 0, 1);
            }
            Err(e) => return warn("join its process group again (setpgid)", e),
        }
    }
}

/// End this process as the zombie ended: its exit status, or its signal.
fn exit_as(status: u32) -> ! {
    let sig = status & 0x7f;
    if sig == 0 {
        ckpt_sys::exit_group(((status >> 8) & 0xff) as i32);
    }
    // SAFETY: the default action: no handler address is installed.
    let _ = unsafe { ckpt_sys::rt_sigaction(sig, Some(&ckpt_sys::KSigAction::default()), None) };
    let _ = ckpt_sys::kill(ckpt_sys::getpid(), sig);
    let unblock: u64 = 1 << (sig - 1);
    let _ = ckpt_sys::rt_sigprocmask(c::SIG_UNBLOCK, Some(&unblock), None);
    ckpt_sys::exit_group(128 + sig as i32)
}
