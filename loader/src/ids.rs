//! Thread ids: a multi-threaded image restarts with the same pid and the same tid
//! for every thread, because glibc and musl cache each thread's tid in its thread
//! descriptor and mutexes store their owner's tid in memory (docs/threads.md).
//!
//! Unprivileged, the only way to choose ids is a fresh pid namespace, which needs a
//! fresh user namespace (PLATFORM facts in docs/threads.md). So, before anything of
//! the address space is touched:
//!
//! 1. this process (the one the shell started: the **supervisor**) unshares a user
//!    and a pid namespace, maps its own uid and gid to themselves, and forks
//! 2. the namespace's **init** (pid 1 there), which mounts a fresh /proc in a mount
//!    namespace of its own (so /proc/PID matches getpid() inside) and forks
//! 3. the **program** with clone3 `set_tid = [old pid]`; the program's process
//!    goes on with the restore and creates each thread with `set_tid = [old tid]`.
//!
//! The init reaps every process of the namespace and keeps the program's wait
//! status in a shared page; when nothing is left it exits, and the supervisor
//! exits with the program's status or dies of the same signal. The supervisor
//! forwards to the program every signal sent to it by a process (`kill PID`);
//! signals the terminal sends to the whole foreground process group (Ctrl-C,
//! Ctrl-Z, Ctrl-\, SIGWINCH, hang-up) already reach the program, which is in the
//! same group, and are not sent twice.
//!
//! # Safety
//! Two forks (clone3 without CLONE_VM) of a loader that holds no lock and runs no
//! other thread, and a shared status page this module maps itself.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use ckpt_sys::task::{self, CloneArgs};
use ckpt_sys::{Errno, Fd, c, msg::Msg};

use crate::{Name, die, die_errno, msg};

/// The shared page: the program's wait status and whether it is known.
struct Shared {
    status: AtomicI32,
    known: AtomicU32,
}

/// `si_code` of a signal the kernel sent (the terminal's signals to a group).
const SI_KERNEL: i32 = 0x80;

fn write_file(name: &Name, path: &core::ffi::CStr, text: &[u8]) {
    let fd = ckpt_sys::openat(Fd::CWD, path, c::O_WRONLY | c::O_CLOEXEC, 0)
        .unwrap_or_else(|e| die_errno(name, "cannot set up the user namespace (open)", e));
    if let Err(e) = ckpt_sys::write_all(fd, text) {
        die(msg(name).s("cannot set up the user namespace (").b(text).s("): ").errno(e));
    }
    let _ = ckpt_sys::close(fd);
}

/// Become the program's process with pid `pid`, inside a fresh user and pid
/// namespace (see the module comment). Returns in that process only; the
/// supervisor and the init never return.
pub fn enter(name: &Name, pid: i32) {
    if pid <= 1 {
        die(msg(name).s("cannot restore pid ").u(pid as u64).s(": it is the namespace's init"));
    }
    let rw = c::PROT_READ | c::PROT_WRITE;
    // SAFETY: a fresh shared mapping at an address of the kernel's choice; it is
    // inherited by both forks and used only through the atomics of `Shared`.
    let page = unsafe { ckpt_sys::mmap(0, 4096, rw, c::MAP_SHARED | c::MAP_ANONYMOUS, Fd(-1), 0) }
        .unwrap_or_else(|e| die_errno(name, "cannot allocate memory", e));
    // SAFETY: the page is zeroed, aligned and ours for the life of the processes.
    let shared: &'static Shared = unsafe { &*(page as *const Shared) };

    let (uid, gid) = (ckpt_sys::task::getuid(), ckpt_sys::task::getgid());
    if let Err(e) = task::unshare(task::CLONE_NEWUSER | task::CLONE_NEWPID) {
        die(msg(name)
            .s("cannot create a user and pid namespace to give the threads their ids back (unshare: ")
            .errno(e)
            .s("); user namespaces may be disabled (kernel.unprivileged_userns_clone, user.max_user_namespaces)"));
    }
    write_file(name, c"/proc/self/setgroups", b"deny");
    let line = |id: u32| Msg::new().u(id as u64).s(" ").u(id as u64).s(" 1\n");
    write_file(name, c"/proc/self/uid_map", line(uid).as_bytes());
    write_file(name, c"/proc/self/gid_map", line(gid).as_bytes());

    // The init tells the supervisor through this pipe when the program stops.
    let (stops_r, stops_w) = task::pipe2().unwrap_or_else(|e| die_errno(name, "cannot create a pipe", e));
    let fork = CloneArgs { exit_signal: task::SIGCHLD, ..Default::default() };
    // SAFETY: see the module comment.
    match unsafe { task::clone3_fork(&fork) } {
        Err(e) => die_errno(name, "cannot start the pid namespace's init (clone3)", e),
        Ok(0) => {
            let _ = ckpt_sys::close(stops_r);
            init(name, pid, shared, stops_w);
            let _ = ckpt_sys::close(stops_w);
        }
        Ok(child) => {
            let _ = ckpt_sys::close(stops_w);
            supervise(name, child, shared, stops_r)
        }
    }
}

/// Pid 1 of the namespace: a fresh /proc, the program with its old pid, then reap.
/// Returns only in the program's process.
fn init(name: &Name, pid: i32, shared: &'static Shared, stops: Fd) {
    let _ = ckpt_sys::prctl_set_name(b"ckpt-init\0\0\0\0\0\0\0");
    // A supervisor killed outright (SIGKILL) takes the namespace with it, as the
    // program would have died with its original process. (A supervisor killed
    // before this line is not noticed: the parent of a namespace's init reads as
    // pid 0 from inside, whether it lives or not.)
    let _ = ckpt_sys::prctl_set_pdeathsig(c::SIGKILL);
    const MS_NOSUID: u64 = 2;
    const MS_NODEV: u64 = 4;
    const MS_NOEXEC: u64 = 8;
    const MS_REC: u64 = 0x4000;
    const MS_PRIVATE: u64 = 1 << 18;
    let proc_ok = task::unshare(task::CLONE_NEWNS)
        .and_then(|_| task::mount(c"none", c"/", c"", MS_REC | MS_PRIVATE))
        .and_then(|_| task::mount(c"proc", c"/proc", c"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC));
    if let Err(e) = proc_ok {
        Msg::new()
            .s("ckpt restart: ")
            .b(name.as_bytes())
            .s(": warning: cannot mount a /proc for the pid namespace (")
            .errno(e)
            .s("): /proc/PID names the pids outside it")
            .emit();
    }
    let tid = [pid];
    let args = CloneArgs {
        exit_signal: task::SIGCHLD,
        set_tid: tid.as_ptr() as usize as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: see the module comment; `tid` lives across the call.
    let prog = match unsafe { task::clone3_fork(&args) } {
        Ok(0) => return,
        Ok(p) => p,
        Err(Errno::EEXIST) => {
            die(msg(name).s("cannot restore pid ").u(pid as u64).s(": taken in the new pid namespace"))
        }
        Err(e) => die(msg(name).s("cannot create the program's process with pid ").u(pid as u64).s(": ").errno(e)),
    };
    // Reap everything; the program's status is what the supervisor reports.
    loop {
        match task::wait4(-1, task::WALL | task::WUNTRACED) {
            // Stopped (Ctrl-Z of a program whose trigger is not SIGTSTP, SIGSTOP):
            // the supervisor stops too, so the shell sees the job stopped.
            Ok((p, st)) if p == prog && st & 0xff == 0x7f => {
                let _ = ckpt_sys::write(stops, b"S");
            }
            Ok((p, st)) if p == prog => {
                shared.status.store(st, Ordering::Release);
                shared.known.store(1, Ordering::Release);
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break, // ECHILD: nobody left
        }
    }
    ckpt_sys::exit_group(0)
}

/// The program's process id as the supervisor sees it (the init's only child
/// outside the namespace's view), from /proc/INIT/task/INIT/children.
fn program_pid(init: i32) -> Option<i32> {
    let p = Msg::new().s("/proc/").u(init as u64).s("/task/").u(init as u64).s("/children");
    let mut path = [0u8; 64];
    let b = p.as_bytes();
    path[..b.len()].copy_from_slice(b);
    let c = core::ffi::CStr::from_bytes_until_nul(&path).ok()?;
    let mut buf = [0u8; 64];
    let n = ckpt_sys::read_file(c, &mut buf).ok()?;
    let first = buf[..n].split(|&b| b == b' ' || b == b'\n').next()?;
    if first.is_empty() {
        return None;
    }
    Some(first.iter().fold(0i32, |a, &d| a.wrapping_mul(10).wrapping_add((d - b'0') as i32)))
}

/// The process the shell started: forward signals, then end as the program did.
fn supervise(name: &Name, init: i32, shared: &'static Shared, stops: Fd) -> ! {
    let catchable = !((1u64 << (c::SIGKILL - 1)) | (1u64 << (c::SIGSTOP - 1)));
    let sfd = ckpt_sys::task::signalfd(catchable).unwrap_or_else(|e| die_errno(name, "cannot create a signalfd", e));
    let mut prog = 0;
    let mut stops_open = true;
    loop {
        let mut fds = [
            task::PollFd { fd: sfd.0, events: 1, revents: 0 },
            task::PollFd { fd: if stops_open { stops.0 } else { -1 }, events: 1, revents: 0 },
        ];
        match task::ppoll(&mut fds, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => die_errno(name, "cannot wait for signals (ppoll)", e),
        }
        if fds[1].revents != 0 {
            let mut b = [0u8; 16];
            match ckpt_sys::read(stops, &mut b) {
                // The program stopped: so does the supervisor, until the shell's
                // SIGCONT (to the whole group) continues both.
                Ok(n) if n > 0 => {
                    let _ = ckpt_sys::kill(ckpt_sys::getpid(), c::SIGSTOP);
                }
                _ => stops_open = false, // the init is gone
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        let mut rec = [0u8; 128];
        match ckpt_sys::read(sfd, &mut rec) {
            Ok(128) => {}
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => die_errno(name, "cannot read the signalfd", e),
        }
        let sig = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let code = i32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
        if sig == task::SIGCHLD as u32 {
            if let Ok((p, _)) = task::wait4(init, task::WNOHANG)
                && p == init
            {
                finish(shared);
            }
            continue;
        }
        if code == SI_KERNEL {
            continue; // the terminal's, to the whole group: the program has it
        }
        if prog == 0 {
            prog = program_pid(init).unwrap_or(0);
        }
        if prog != 0 {
            let _ = ckpt_sys::kill(prog, sig);
        }
    }
}

/// Exit as the program did: its exit status, or death by its signal.
fn finish(shared: &Shared) -> ! {
    if shared.known.load(Ordering::Acquire) == 0 {
        ckpt_sys::exit_group(1); // the init said why
    }
    // Killed by a signal: die of it too, so the shell sees the same.
    ckpt_sys::exit_like(shared.status.load(Ordering::Acquire) as u32)
}
