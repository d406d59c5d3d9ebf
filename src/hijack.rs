//! `ckpt hijack PID`: put the checkpoint runtime into a running process that was
//! started without it, static or dynamic, and leave. From then on it answers
//! its trigger like a process started under `ckpt` (docs/hijack.md).
//!
//! With ptrace, on the main thread only (the other threads run on):
//! PTRACE_SEIZE and PTRACE_INTERRUPT (no signal, no stop the program can see),
//! save the registers and the XSAVE area, run system calls in the thread from
//! the `syscall` instruction of its vDSO (PTRACE_SYSCALL to the exit stop): map a
//! stack, map the runtime blob (dist/lib/ckpt-runtime.blob, its RELATIVE
//! relocations applied here for the address the kernel chose) from a memfd that
//! names it and is closed at once, then
//! run the blob's entry on that stack with the settings on it; the entry traps
//! (int3) when the runtime is armed. Unmap the stack, put every register back,
//! detach. A system call the interrupt made fail with EINTR where a plain
//! signal to a handler with SA_RESTART would not have (epoll_wait...) is made to
//! start again. Signals that arrived meanwhile are sent again after the detach.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use ckpt_sys::ptrace::{self, Regs};

use crate::error::{Error, FAILURE};

/// The name of the blob's memfd, in /proc/PID/maps as
/// `/memfd:ckpt-runtime:SIGNALS (deleted)`: how `ckpt checkpoint` and a second
/// `ckpt hijack` recognise the process (the kernel here has no
/// CONFIG_ANON_VMA_NAME to name an anonymous mapping).
pub const MARK: &str = "ckpt-runtime";

fn fail(message: impl Into<String>) -> Error {
    Error::new(FAILURE, message)
}

const SYS_MMAP: u64 = 9;
const SYS_MPROTECT: u64 = 10;
const SYS_MUNMAP: u64 = 11;
const SYS_CLOSE: u64 = 3;
const SYS_FTRUNCATE: u64 = 77;
const SYS_MEMFD_CREATE: u64 = 319;
const MFD_CLOEXEC: u64 = 1;
const MAP_PRIVATE: u64 = 2;
const PROT_RW: u64 = 3;
const PROT_RX: u64 = 5;
const MAP_PRIVATE_ANON: u64 = 0x22;
const STACK_LEN: u64 = 256 << 10;
const EINTR: u64 = (-4i64) as u64;
/// System calls that fail with EINTR when the thread is only stopped and
/// continued (signal(7), "Interruption of system calls ... by stop signals"):
/// epoll_wait, epoll_pwait, epoll_pwait2, semop, semtimedop, rt_sigtimedwait,
/// io_getevents. They are started again (a timeout starts over).
const EINTR_ON_STOP: [u64; 7] = [232, 281, 441, 65, 220, 128, 208];

/// What the caller asked for: the `CKPT_*` settings and the signals (for the mark).
pub struct Settings {
    pub vars: Vec<(&'static str, std::ffi::OsString)>,
}

/// Install the runtime in `pid`.
pub fn hijack(pid: i32, settings: Settings, blob_path: &Path) -> Result<(), Error> {
    let t0 = Instant::now();
    if pid <= 0 {
        return Err(Error::usage(format!("invalid pid {pid}")));
    }
    check(pid)?;
    let file = fs::read(blob_path).map_err(|e| fail(format!("runtime blob {}: {e}", blob_path.display())))?;
    let blob = ckpt_image::blob::Blob::parse(&file)
        .map_err(|e| fail(format!("runtime blob {}: {e}; is the installation complete?", blob_path.display())))?;
    let mut env = Vec::new();
    for (k, v) in &settings.vars {
        env.extend_from_slice(k.as_bytes());
        env.push(b'=');
        env.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
        env.push(0);
    }
    let signals = mark_signals(&settings);
    if crate::elf::is_go(Path::new(&format!("/proc/{pid}/exe"))) {
        // Go runs signal handlers on each thread's signal stack: a goroutine's
        // own stack may have less than a kilobyte left below it.
        env.extend_from_slice(b"CKPT_ONSTACK=1\0");
    }

    // ckpt must not die half-way with the thread's registers changed.
    let all = !(1u64 << 8); // every signal but SIGKILL (9)
    let mut old = 0u64;
    let _ = ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_BLOCK, Some(&all), Some(&mut old));
    let mut t = Tracee { pid, mem: None, pending: Vec::new(), stopped_at: None };
    let r = t.attach().and_then(|()| t.install(&blob, &env, &signals));
    let stopped = t.stopped_at.map(|s| s.elapsed());
    let resend = std::mem::take(&mut t.pending);
    drop(t);
    for sig in resend {
        let _ = ckpt_sys::tgkill(pid, pid, sig);
    }
    let _ = ckpt_sys::rt_sigprocmask(ckpt_sys::c::SIG_SETMASK, Some(&old), None);
    r?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "ckpt: runtime installed in process {pid} (stopped {:.2} ms, {:.2} ms in all)",
        stopped.map_or(0.0, ms),
        ms(t0.elapsed())
    );
    Ok(())
}

/// The signal list of the mark: the trigger signals, or the timer's (64) under
/// `-a 0 -i N`.
fn mark_signals(s: &Settings) -> String {
    let var = |k: &str| s.vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string_lossy().into_owned());
    match var("CKPT_ASYNCSIG") {
        Some(v) if v == "0" => (if var("CKPT_INTERVAL").is_some() { "64" } else { "0" }).to_owned(),
        Some(v) => v,
        None => ckpt_sys::c::SIGTSTP.to_string(),
    }
}

/// The refusals that need no ptrace.
fn check(pid: i32) -> Result<(), Error> {
    let target = crate::checkpoint::Target::open(pid)?;
    if let Ok(how) = target.runtime() {
        return Err(fail(format!("process {pid} already has the ckpt runtime ({how}): ckpt checkpoint {pid} asks it")));
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("");
    if field("TracerPid:") != "0" && !field("TracerPid:").is_empty() {
        return Err(fail(format!("process {pid} is already traced (by process {})", field("TracerPid:"))));
    }
    if field("Seccomp:") == "2" {
        return Err(fail(format!(
            "process {pid} runs under a seccomp filter, which may refuse or punish the system calls ckpt \
             would make in it; not touching it"
        )));
    }
    if field("State:").starts_with('T') || field("State:").starts_with('t') {
        return Err(fail(format!("process {pid} is stopped; continue it first")));
    }
    let gids = field("Gid:").split_whitespace().collect::<Vec<_>>();
    if gids.windows(2).any(|w| w[0] != w[1]) {
        return Err(fail(format!("process {pid} runs with changed group ids (setgid): not touching it")));
    }
    if !field("CapEff:").chars().all(|c| c == '0') && ckpt_sys::task::getuid() != 0 {
        return Err(fail(format!("process {pid} has capabilities (a privileged program): not touching it")));
    }
    if crate::elf::classify(Path::new(&format!("/proc/{pid}/exe")))
        == crate::elf::Kind::Static(crate::elf::Class::Elf32)
        || crate::elf::classify(Path::new(&format!("/proc/{pid}/exe")))
            == crate::elf::Kind::Dynamic(crate::elf::Class::Elf32)
    {
        return Err(fail(format!("process {pid} is a 32-bit (i386) program: ckpt hijack does not do those yet")));
    }
    Ok(())
}

/// A raw system call result that is an error.
fn is_err(v: u64) -> bool {
    v > (-4096i64) as u64
}

/// "what in process PID failed: why".
fn syserr(pid: i32, what: &str, v: u64) -> Error {
    fail(format!("{what} in process {pid} failed: {}", ckpt_sys::Errno((-(v as i64)) as u16).text()))
}

/// Why ptrace refused, in words.
fn ptrace_refused(pid: i32, e: ckpt_sys::Errno) -> Error {
    let yama = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    let why = match (e, yama.as_deref().map(str::trim)) {
        (ckpt_sys::Errno::EPERM, Some(s)) if s != "0" => format!(
            "Yama forbids it (kernel.yama.ptrace_scope = {s}: only a parent, or a process with CAP_SYS_PTRACE, may \
             attach; 'sysctl kernel.yama.ptrace_scope=0' allows it)"
        ),
        (ckpt_sys::Errno::EPERM, _) => {
            "the kernel forbids it (the process is not dumpable, privileged, or in another container)".to_owned()
        }
        (e, _) => e.text().to_owned(),
    };
    fail(format!("cannot attach to process {pid} with ptrace: {why}"))
}

struct Tracee {
    pid: i32,
    mem: Option<File>,
    /// Signals that arrived while we held the thread (sent again after).
    pending: Vec<u32>,
    stopped_at: Option<Instant>,
}

impl Drop for Tracee {
    fn drop(&mut self) {
        // Seized or not, a detach is harmless.
        let _ = ptrace::detach(self.pid, 0);
    }
}

/// What one `wait` said.
enum Stop {
    /// PTRACE_EVENT_STOP (the interrupt).
    Event,
    /// A system call entry or exit stop.
    Syscall,
    /// A signal about to be delivered.
    Signal(u32),
}

impl Tracee {
    fn wait(&mut self) -> Result<Stop, Error> {
        let pid = self.pid;
        let (_, status) = ckpt_sys::task::wait4(pid, ckpt_sys::task::WALL)
            .map_err(|e| fail(format!("waiting for process {pid}: {}", e.text())))?;
        if status & 0x7f != 0x7f {
            return Err(fail(format!(
                "process {pid} ended while ckpt was installing the runtime (status {status:#x})"
            )));
        }
        let sig = ((status >> 8) & 0xff) as u32;
        Ok(match status >> 16 {
            ptrace::EVENT_STOP => Stop::Event,
            0 if sig == (5 | 0x80) => Stop::Syscall,
            0 => Stop::Signal(sig),
            _ => Stop::Event,
        })
    }

    fn attach(&mut self) -> Result<(), Error> {
        let pid = self.pid;
        ptrace::seize(pid, ptrace::O_TRACESYSGOOD).map_err(|e| ptrace_refused(pid, e))?;
        ptrace::interrupt(pid).map_err(|e| fail(format!("PTRACE_INTERRUPT {pid}: {}", e.text())))?;
        self.stopped_at = Some(Instant::now());
        loop {
            match self.wait()? {
                Stop::Event => break,
                // A signal on its way: kept, and sent again once we leave.
                Stop::Signal(s) => {
                    self.pending.push(s);
                    ptrace::cont(pid, 0).map_err(|e| fail(format!("PTRACE_CONT {pid}: {}", e.text())))?;
                }
                Stop::Syscall => {}
            }
        }
        let mem = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| fail(format!("opening /proc/{pid}/mem: {e}")))?;
        self.mem = Some(mem);
        Ok(())
    }

    fn mem(&self) -> &File {
        self.mem.as_ref().expect("attached")
    }

    fn write(&self, addr: u64, b: &[u8]) -> Result<(), Error> {
        self.mem().write_all_at(b, addr).map_err(|e| fail(format!("writing process {}'s memory: {e}", self.pid)))
    }

    /// Run system call `nr` in the thread from the instruction at `gadget`,
    /// starting from registers `base`; its result.
    fn inject(&mut self, base: &Regs, gadget: u64, nr: u64, args: [u64; 6]) -> Result<u64, Error> {
        let pid = self.pid;
        let mut r = *base;
        r.rip = gadget;
        r.rax = nr;
        // No restart logic of an interrupted system call applies to ours.
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (args[0], args[1], args[2], args[3], args[4], args[5]);
        let err = |what: &str, e: ckpt_sys::Errno| fail(format!("{what} of process {pid}: {}", e.text()));
        ptrace::set_regs(pid, &r).map_err(|e| err("setting the registers", e))?;
        // To the entry stop, then to the exit stop.
        for _ in 0..2 {
            ptrace::syscall(pid).map_err(|e| err("PTRACE_SYSCALL", e))?;
            loop {
                match self.wait()? {
                    Stop::Syscall => break,
                    Stop::Signal(s) => {
                        self.pending.push(s);
                        ptrace::syscall(pid).map_err(|e| err("PTRACE_SYSCALL", e))?;
                    }
                    Stop::Event => ptrace::syscall(pid).map_err(|e| err("PTRACE_SYSCALL", e))?,
                }
            }
        }
        let out = ptrace::get_regs(pid).map_err(|e| err("reading the registers", e))?;
        Ok(out.rax)
    }

    /// The address of a `syscall` instruction in the vDSO.
    fn gadget(&self) -> Result<u64, Error> {
        let pid = self.pid;
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| fail(format!("{e}")))?;
        let line = maps
            .lines()
            .find(|l| l.ends_with("[vdso]"))
            .ok_or_else(|| fail(format!("process {pid} has no vDSO to run system calls from")))?;
        let range = line.split_whitespace().next().unwrap_or("");
        let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
        let (a, b) = (u64::from_str_radix(a, 16).unwrap_or(0), u64::from_str_radix(b, 16).unwrap_or(0));
        let mut code = vec![0u8; (b - a) as usize];
        self.mem().read_exact_at(&mut code, a).map_err(|e| fail(format!("reading the vDSO of {pid}: {e}")))?;
        code.windows(2)
            .position(|w| w == [0x0f, 0x05])
            .map(|i| a + i as u64)
            .ok_or_else(|| fail(format!("no syscall instruction in the vDSO of process {pid}")))
    }

    fn install(&mut self, blob: &ckpt_image::blob::Blob, env: &[u8], signals: &str) -> Result<(), Error> {
        let pid = self.pid;
        let orig = ptrace::get_regs(pid).map_err(|e| fail(format!("PTRACE_GETREGS {pid}: {}", e.text())))?;
        let mut xstate = vec![0u8; 1 << 16];
        let n =
            ptrace::get_xstate(pid, &mut xstate).map_err(|e| fail(format!("PTRACE_GETREGSET {pid}: {}", e.text())))?;
        xstate.truncate(n);
        if orig.cs != 0x33 {
            return Err(fail(format!("process {pid}'s thread runs 32-bit code: not supported")));
        }
        let gadget = self.gadget()?;
        // glibc's rseq area is at the same offset from every thread's pointer;
        // the blob cannot see glibc's __rseq_offset, so it is told.
        let mut env = env.to_vec();
        if let Ok((area, size)) = ptrace::rseq_configuration(pid)
            && area != 0
        {
            let off = area.wrapping_sub(orig.fs_base) as i64;
            env.extend_from_slice(format!("CKPT_RSEQ={off},{size}\0").as_bytes());
        }
        let r = self.install_with(&orig, gadget, blob, &env, signals);
        // Every register as it was, whatever happened.
        let mut back = orig;
        if orig.rax == EINTR && EINTR_ON_STOP.contains(&orig.orig_rax) {
            // Start it again rather than let the program see EINTR.
            let mut two = [0u8; 2];
            if self.mem().read_exact_at(&mut two, orig.rip - 2).is_ok() && two == [0x0f, 0x05] {
                back.rax = orig.orig_rax;
                back.rip -= 2;
            }
        }
        let restored = ptrace::set_regs(pid, &back).and_then(|()| ptrace::set_xstate(pid, &xstate));
        ptrace::detach(pid, 0).map_err(|e| fail(format!("PTRACE_DETACH {pid}: {}", e.text())))?;
        restored.map_err(|e| fail(format!("restoring the registers of {pid}: {}", e.text())))?;
        r
    }

    fn install_with(
        &mut self,
        orig: &Regs,
        gadget: u64,
        blob: &ckpt_image::blob::Blob,
        env: &[u8],
        signals: &str,
    ) -> Result<(), Error> {
        let pid = self.pid;
        let none = u64::MAX; // fd -1
        let stack = self.inject(orig, gadget, SYS_MMAP, [0, STACK_LEN, PROT_RW, MAP_PRIVATE_ANON, none, 0])?;
        if is_err(stack) {
            return Err(syserr(pid, "mmap", stack));
        }
        let r = self.map_blob(orig, gadget, blob, stack, env, signals).and_then(|base| {
            let r = self.run_entry(orig, blob, base, stack, env);
            if r.is_err() {
                let _ = self.inject(orig, gadget, SYS_MUNMAP, [base, blob.mem_len, 0, 0, 0, 0]);
            }
            r
        });
        let _ = self.inject(orig, gadget, SYS_MUNMAP, [stack, STACK_LEN, 0, 0, 0, 0]);
        r
    }

    /// Map the blob, from a memfd named after the mark (the name is how
    /// `ckpt checkpoint` recognises the process: `/memfd:ckpt-runtime:20
    /// (deleted)` in its maps), closed again at once; write it relocated.
    fn map_blob(
        &mut self,
        orig: &Regs,
        gadget: u64,
        blob: &ckpt_image::blob::Blob,
        stack: u64,
        env: &[u8],
        signals: &str,
    ) -> Result<u64, Error> {
        let pid = self.pid;
        let name = format!("{MARK}:{signals}\0");
        let name_at = stack + env.len() as u64 + 16;
        self.write(name_at, name.as_bytes())?;
        let fd = self.inject(orig, gadget, SYS_MEMFD_CREATE, [name_at, MFD_CLOEXEC, 0, 0, 0, 0])?;
        if is_err(fd) {
            return Err(syserr(pid, "memfd_create", fd));
        }
        let mapped = (|| {
            let t = self.inject(orig, gadget, SYS_FTRUNCATE, [fd, blob.mem_len, 0, 0, 0, 0])?;
            if is_err(t) {
                return Err(syserr(pid, "ftruncate", t));
            }
            let base = self.inject(orig, gadget, SYS_MMAP, [0, blob.mem_len, PROT_RW, MAP_PRIVATE, fd, 0])?;
            if is_err(base) {
                return Err(syserr(pid, "mmap", base));
            }
            Ok(base)
        })();
        let _ = self.inject(orig, gadget, SYS_CLOSE, [fd, 0, 0, 0, 0, 0]);
        let base = mapped?;
        let placed = self.write(base, &blob.relocated(base)).and_then(|()| {
            let rx = self.inject(orig, gadget, SYS_MPROTECT, [base, blob.exec_len, PROT_RX, 0, 0, 0])?;
            if is_err(rx) { Err(syserr(pid, "mprotect", rx)) } else { Ok(()) }
        });
        if let Err(e) = placed {
            let _ = self.inject(orig, gadget, SYS_MUNMAP, [base, blob.mem_len, 0, 0, 0, 0]);
            return Err(e);
        }
        Ok(base)
    }

    /// Run the blob's entry on `stack`, with the settings at its bottom.
    fn run_entry(
        &mut self,
        orig: &Regs,
        blob: &ckpt_image::blob::Blob,
        base: u64,
        stack: u64,
        env: &[u8],
    ) -> Result<(), Error> {
        let pid = self.pid;
        self.write(stack, env)?;
        let mut r = *orig;
        r.rip = base + blob.entry;
        r.rsp = (stack + STACK_LEN - 64) & !15;
        r.rdi = stack;
        r.rsi = env.len() as u64;
        r.orig_rax = u64::MAX;
        r.eflags &= !0x400; // DF clear, as the ABI wants at a call
        ptrace::set_regs(pid, &r).map_err(|e| fail(format!("PTRACE_SETREGS {pid}: {}", e.text())))?;
        ptrace::cont(pid, 0).map_err(|e| fail(format!("PTRACE_CONT {pid}: {}", e.text())))?;
        // The call instruction (5 bytes) and the int3 after it.
        let trap = base + blob.entry + 6;
        loop {
            match self.wait()? {
                Stop::Signal(5) => {
                    let now = ptrace::get_regs(pid).map_err(|e| fail(format!("PTRACE_GETREGS {pid}: {}", e.text())))?;
                    if now.rip == trap {
                        let code = now.rax as u32 as i32;
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(fail(format!(
                                "the runtime could not start in process {pid}: {}",
                                ckpt_sys::Errno(code as u16).text()
                            )))
                        };
                    }
                    return Err(fail(format!(
                        "the runtime crashed while starting in process {pid} (SIGTRAP at {:#x})",
                        now.rip
                    )));
                }
                Stop::Signal(s @ (4 | 7 | 8 | 11)) => {
                    let now = ptrace::get_regs(pid).map_err(|e| fail(format!("PTRACE_GETREGS {pid}: {}", e.text())))?;
                    return Err(fail(format!(
                        "the runtime crashed while starting in process {pid} (signal {s} at {:#x}, blob at {base:#x})",
                        now.rip
                    )));
                }
                Stop::Signal(s) => {
                    self.pending.push(s);
                    ptrace::cont(pid, 0).map_err(|e| fail(format!("PTRACE_CONT {pid}: {}", e.text())))?;
                }
                Stop::Syscall | Stop::Event => {
                    ptrace::cont(pid, 0).map_err(|e| fail(format!("PTRACE_CONT {pid}: {}", e.text())))?
                }
            }
        }
    }
}
