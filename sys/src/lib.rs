//! Typed raw Linux syscalls for the ckpt runtime and loader: no libc, no allocation.
//!
//! Every syscall ckpt issues has exactly one wrapper here, named after the syscall
//! and headed by its man(2) prototype. Wrappers take typed arguments and return
//! `Result<T, Errno>`; the 32-bit differences (`mmap2`, split 64-bit offsets, no
//! `arch_prctl`) live inside them. This is the one crate where raw `unsafe` is
//! routine; callers see safe functions wherever the kernel checks the arguments
//! (pointers it only reads or validates itself), and `unsafe fn` where the call can
//! change memory the compiler knows about (mapping, unmapping, writing to an address).
//!
//! Everything here is async-signal-safe: each call is one system call.
#![no_std]

/// Compile-time proof that a kernel structure written out here has the layout
/// linux-raw-sys gives it for the target (same size and alignment, each field at
/// the same offset). The structures are written out rather than used directly for
/// their types (`usize` addresses, plain flag words, `Default`), never for a
/// layout of their own.
macro_rules! same_layout {
    ($ours:ty, $theirs:ty, { $($a:ident => $($b:ident).+),* $(,)? }) => {
        const _: () = {
            assert!(core::mem::size_of::<$ours>() == core::mem::size_of::<$theirs>());
            assert!(core::mem::align_of::<$ours>() == core::mem::align_of::<$theirs>());
            $(assert!(core::mem::offset_of!($ours, $a) == core::mem::offset_of!($theirs, $($b).+));)*
        };
    };
}

pub mod cpu;
mod errno;
pub mod maps;
pub mod msg;
pub mod num;
#[cfg(target_arch = "x86_64")]
pub mod ptrace;
pub mod request;
pub mod scratch;
pub mod settings;
pub mod signame;
pub mod task;
pub mod trace;
pub mod uffd;

use core::ffi::CStr;

pub use errno::{Errno, Result};
use syscalls::{Sysno, raw_syscall};

/// A file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub i32);

impl Fd {
    /// Standard error.
    pub const STDERR: Fd = Fd(2);
    /// `AT_FDCWD`: paths relative to the working directory.
    pub const CWD: Fd = Fd(-100);
}

macro_rules! sys {
    ($($t:tt)*) => { Errno::from_ret(raw_syscall!($($t)*)) };
}

/// A flag word of one kind: a `u32` newtype that combines with `|` only with its
/// own kind, so an `O_*` flag cannot be passed where a `MAP_*` one is wanted. The
/// values are the kernel's (`c::O_RDONLY`...); `.0` is the raw word.
macro_rules! flags {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name(pub u32);

        impl $name {
            /// No flag.
            pub const EMPTY: $name = $name(0);
            /// Are all of `other`'s flags set?
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, o: $name) -> $name {
                $name(self.0 | o.0)
            }
        }

        impl core::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: $name) {
                self.0 |= o.0;
            }
        }
    )*};
}

flags! {
    /// `O_*`: how `openat` opens a file.
    OFlags;
    /// `PROT_*`: the access of a mapping (`mmap`, `mprotect`).
    ProtFlags;
    /// `MAP_*`: the kind of a mapping (`mmap`).
    MapFlags;
    /// `MREMAP_*` (`mremap`).
    MremapFlags;
    /// `AT_*`: how a path relative to a directory is resolved (`statx`, `unlinkat`).
    AtFlags;
    /// `RENAME_*` (`renameat2`).
    RenameFlags;
}

/// Constants the wrappers take, named as in the kernel's uapi.
pub mod c {
    use super::{AtFlags, MapFlags, MremapFlags, OFlags, ProtFlags};
    use linux_raw_sys::general as g;
    pub use linux_raw_sys::general::{
        ARCH_SET_FS, CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_REALTIME, ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL,
        SIGKILL, SIGSTOP, SIGTSTP, SIGXFSZ,
    };

    pub use linux_raw_sys::general::{MADV_DONTFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WIPEONFORK};
    pub use linux_raw_sys::general::{
        SA_ONSTACK, SA_RESTART, SA_RESTORER, SA_SIGINFO, SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK, SS_DISABLE, SS_ONSTACK,
    };

    /// Typed copies of linux-raw-sys's constants, as the wrappers take them.
    macro_rules! typed {
        ($t:ident: $($name:ident),* $(,)?) => {$(
            #[doc = concat!("`", stringify!($name), "`.")]
            pub const $name: $t = $t(g::$name);
        )*};
    }
    typed!(OFlags: O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_WRONLY);
    typed!(ProtFlags: PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE);
    typed!(MapFlags: MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED);
    typed!(MremapFlags: MREMAP_FIXED, MREMAP_MAYMOVE);
    typed!(AtFlags: AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW);
    /// `madvise(MADV_GUARD_INSTALL)`: make the range guard pages (Linux 6.13;
    /// any access faults); `memfd_create(MFD_CLOEXEC)`; `si_code` values of
    /// signals sent to one process (`sigqueue`) or one thread (`tgkill`).
    pub use linux_raw_sys::general::{MADV_GUARD_INSTALL, MFD_CLOEXEC, SI_QUEUE, SI_TKILL};
    pub use linux_raw_sys::prctl::{
        PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_TID_ADDRESS, PR_SET_MM, PR_SET_MM_MAP, PR_SET_NAME,
    };
    /// `arch_prctl(ARCH_GET_FS, &base)`: read the fs base (asm/prctl.h; not in
    /// linux-raw-sys).
    pub const ARCH_GET_FS: u32 = 0x1003;
    /// `RSEQ_FLAG_UNREGISTER` (linux/rseq.h; an enum there, not a constant).
    pub const RSEQ_FLAG_UNREGISTER: u32 = 1;
    /// `fcntl` commands (fcntl(2)).
    pub const F_GETFD: u32 = 1;
    /// Set the descriptor flags.
    pub const F_SETFD: u32 = 2;
    /// Get the file status flags.
    pub const F_GETFL: u32 = 3;
    /// Set the file status flags.
    pub const F_SETFL: u32 = 4;
    /// Duplicate to the lowest free number at or above the argument, close-on-exec.
    pub const F_DUPFD_CLOEXEC: u32 = 1030;
    /// Set a pipe's capacity.
    pub const F_SETPIPE_SZ: u32 = 1031;
    /// Add seals to a memfd.
    pub const F_ADD_SEALS: u32 = 1033;
    /// Read a memfd's seals.
    pub const F_GET_SEALS: u32 = 1034;
    /// The close-on-exec descriptor flag.
    pub const FD_CLOEXEC: u32 = 1;
    // O_PATH: a descriptor that only names a file (read and write fail with
    // EBADF); O_TMPFILE carries O_DIRECTORY's bit, as the kernel wants it.
    typed!(OFlags: O_APPEND, O_NONBLOCK, O_TRUNC, O_NOCTTY, O_PATH, O_TMPFILE, O_ACCMODE);
    /// `SEEK_SET`.
    pub const SEEK_SET: u32 = 0;
    /// personality(2) flag: PROT_READ implies PROT_EXEC (linux/personality.h;
    /// not in linux-raw-sys).
    pub const READ_IMPLIES_EXEC: u32 = 0x0040_0000;
    /// `kcmp` type: the two descriptors refer to one open file description.
    pub const KCMP_FILE: u32 = 0;
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// `ssize_t read(int fd, void *buf, size_t count);`
pub fn read(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which we own.
    unsafe { sys!(Sysno::read, fd.0, buf.as_mut_ptr(), buf.len()) }
}

/// `ssize_t write(int fd, const void *buf, size_t count);`
pub fn write(fd: Fd, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel only reads buf.
    unsafe { sys!(Sysno::write, fd.0, buf.as_ptr(), buf.len()) }
}

/// Write all of `buf`, retrying on short writes and EINTR.
pub fn write_all(fd: Fd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ssize_t pread64(int fd, void *buf, size_t count, off_t offset);`
pub fn pread(fd: Fd, buf: &mut [u8], off: u64) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which we own.
    unsafe { pread_into(fd, buf.as_mut_ptr() as usize, buf.len(), off) }
}

/// `pread64(2)` into process memory at `addr` (used to fill restored regions).
///
/// # Safety
/// `addr..addr+len` must be writable memory that no Rust reference covers.
pub unsafe fn pread_into(fd: Fd, addr: usize, len: usize, off: u64) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: per the caller's contract the destination is ours to overwrite.
    let r = unsafe { sys!(Sysno::pread64, fd.0, addr, len, off) };
    #[cfg(target_arch = "x86")]
    // SAFETY: as above; i386 passes the 64-bit offset as two registers (lo, hi).
    let r = unsafe { sys!(Sysno::pread64, fd.0, addr, len, off as u32, (off >> 32) as u32) };
    r
}

/// `ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset);`
pub fn pwrite(fd: Fd, buf: &[u8], off: u64) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kernel only reads buf.
    let r = unsafe { sys!(Sysno::pwrite64, fd.0, buf.as_ptr(), buf.len(), off) };
    #[cfg(target_arch = "x86")]
    // SAFETY: as above; i386 passes the 64-bit offset as two registers (lo, hi).
    let r = unsafe { sys!(Sysno::pwrite64, fd.0, buf.as_ptr(), buf.len(), off as u32, (off >> 32) as u32) };
    r
}

/// The kernel's `struct iovec`: one piece of a vectored read or write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoVec {
    /// Start address.
    pub base: usize,
    /// Length in bytes.
    pub len: usize,
}

same_layout!(IoVec, linux_raw_sys::general::iovec, { base => iov_base, len => iov_len });

/// Most iovecs one `readv`/`writev`-family call takes (`IOV_MAX`, `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// `ssize_t writev(int fd, const struct iovec *iov, int iovcnt);`
///
/// The pieces may be any process memory, not only Rust values: the kernel reads
/// it, and an unreadable piece ends the call with a short count, or `EFAULT` if it
/// is the first (instead of the SIGSEGV/SIGBUS a load would raise). That is how
/// the runtime dumps its own address space without an intermediate copy.
pub fn writev(fd: Fd, iov: &[IoVec]) -> Result<usize> {
    // SAFETY: the kernel reads the iovec array (ours, iov.len() entries) and the
    // memory it names, validating every range itself.
    unsafe { sys!(Sysno::writev, fd.0, iov.as_ptr(), iov.len().min(IOV_MAX)) }
}

/// `ssize_t process_vm_readv(pid_t pid, const struct iovec *local_iov, unsigned long liovcnt, const struct iovec *remote_iov, unsigned long riovcnt, unsigned long flags);`
///
/// Copies the memory `remote` names in process `pid` into `local`, in order. With
/// the caller's own pid it is a copy of its own memory that cannot fault: like
/// `writev`, an unreadable piece ends the call with a short count, or `EFAULT`
/// if nothing could be read (where a load would raise SIGSEGV or SIGBUS).
pub fn process_vm_readv(pid: i32, local: &mut [u8], remote: &[IoVec]) -> Result<usize> {
    let l = IoVec { base: local.as_mut_ptr() as usize, len: local.len() };
    // SAFETY: the kernel writes at most `local.len()` bytes into `local`, a
    // buffer we hold exclusively, and validates every remote range itself.
    unsafe {
        sys!(
            Sysno::process_vm_readv,
            pid,
            &l as *const IoVec,
            1usize,
            remote.as_ptr(),
            remote.len().min(IOV_MAX),
            0usize
        )
    }
}

/// `ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset);`
/// (the raw syscall takes the offset as two longs, low then high: on x86_64 the
/// high part is 0; on i386 it is the upper 32 bits.)
///
/// # Safety
/// Every piece must be writable memory that no Rust reference covers.
pub unsafe fn preadv(fd: Fd, iov: &[IoVec], off: u64) -> Result<usize> {
    let n = iov.len().min(IOV_MAX);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: per the caller's contract the destinations are ours to overwrite.
    let r = unsafe { sys!(Sysno::preadv, fd.0, iov.as_ptr(), n, off, 0usize) };
    #[cfg(target_arch = "x86")]
    // SAFETY: as above.
    let r = unsafe { sys!(Sysno::preadv, fd.0, iov.as_ptr(), n, off as u32, (off >> 32) as u32) };
    r
}

/// Fill every piece of `iov` from the file at `off` on, with as few `preadv` calls
/// as the kernel allows (`IOV_MAX` pieces and about 2 GiB per call), or fail with
/// `EIO` at the end of the file. `iov` is used as working space.
///
/// # Safety
/// As [`preadv`].
pub unsafe fn preadv_exact(fd: Fd, mut iov: &mut [IoVec], mut off: u64) -> Result<()> {
    while !iov.is_empty() {
        // SAFETY: forwarded contract; `iov` only ever shrinks to unread parts.
        match unsafe { preadv(fd, iov, off) } {
            Ok(0) => return Err(Errno::EIO),
            Ok(mut n) => {
                off += n as u64;
                while n > 0 && n >= iov[0].len {
                    n -= iov[0].len;
                    iov = &mut iov[1..];
                }
                if n > 0 {
                    iov[0].base += n;
                    iov[0].len -= n;
                }
                while !iov.is_empty() && iov[0].len == 0 {
                    iov = &mut iov[1..];
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `int openat(int dirfd, const char *pathname, int flags, mode_t mode);`
pub fn openat(dir: Fd, path: &CStr, flags: OFlags, mode: u32) -> Result<Fd> {
    // SAFETY: path is NUL-terminated; the kernel only reads it.
    unsafe { sys!(Sysno::openat, dir.0, path.as_ptr(), flags.0, mode) }.map(|fd| Fd(fd as i32))
}

/// `int close(int fd);`
pub fn close(fd: Fd) -> Result<()> {
    // SAFETY: closing a descriptor touches no memory.
    unsafe { sys!(Sysno::close, fd.0) }.map(drop)
}

/// `int close_range(unsigned int first, unsigned int last, unsigned int flags);`
pub fn close_range(first: u32, last: u32, flags: u32) -> Result<()> {
    // SAFETY: closing descriptors touches no memory.
    unsafe { sys!(Sysno::close_range, first, last, flags) }.map(drop)
}

/// `int pipe2(int pipefd[2], int flags);` Returns (read end, write end).
pub fn pipe2(flags: OFlags) -> Result<(Fd, Fd)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into `fds`, ours.
    unsafe { sys!(Sysno::pipe2, fds.as_mut_ptr(), flags.0) }?;
    Ok((Fd(fds[0]), Fd(fds[1])))
}

/// `int eventfd2(unsigned int initval, int flags);`
pub fn eventfd2(initval: u32, flags: u32) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::eventfd2, initval, flags) }.map(|fd| Fd(fd as i32))
}

/// `int inotify_init1(int flags);`
pub fn inotify_init1(flags: u32) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::inotify_init1, flags) }.map(|fd| Fd(fd as i32))
}

/// `int inotify_add_watch(int fd, const char *pathname, uint32_t mask);`
pub fn inotify_add_watch(fd: Fd, path: &CStr, mask: u32) -> Result<u32> {
    // SAFETY: the kernel reads the NUL-terminated path, ours.
    unsafe { sys!(Sysno::inotify_add_watch, fd.0, path.as_ptr(), mask) }.map(|wd| wd as u32)
}

/// `int inotify_rm_watch(int fd, int wd);`
pub fn inotify_rm_watch(fd: Fd, wd: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::inotify_rm_watch, fd.0, wd) }.map(drop)
}

/// `ioctl(fd, FIONREAD, &n)`: the bytes ready to be read (an inotify
/// instance's queued events, a pipe's or socket's queued bytes).
pub fn ioctl_fionread(fd: Fd) -> Result<u32> {
    let mut n = 0i32;
    // SAFETY: the kernel writes an int into `n`, ours.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x541bu32, &mut n as *mut i32) }?;
    Ok(n as u32)
}

/// `int open_by_handle_at(int mount_fd, struct file_handle *handle, int flags);`
/// with `handle` the whole `struct file_handle` (handle_bytes, handle_type, then
/// the handle). Needs CAP_DAC_READ_SEARCH.
pub fn open_by_handle_at(mount: Fd, handle: &[u8], flags: OFlags) -> Result<Fd> {
    let n = handle.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) as usize;
    if handle.len() < 8 + n {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the kernel reads handle_bytes, then that many bytes after the
    // 8-byte header: inside `handle` (checked above).
    unsafe { sys!(Sysno::open_by_handle_at, mount.0, handle.as_ptr(), flags.0) }.map(|fd| Fd(fd as i32))
}

/// `int signalfd4(int fd, const sigset_t *mask, size_t sizemask, int flags);`
pub fn signalfd4(fd: Fd, mask: u64, flags: u32) -> Result<Fd> {
    // SAFETY: the kernel reads the 8-byte mask, ours.
    unsafe { sys!(Sysno::signalfd4, fd.0, &mask as *const u64, 8usize, flags) }.map(|fd| Fd(fd as i32))
}

/// `int timerfd_create(int clockid, int flags);`
pub fn timerfd_create(clock: u32, flags: u32) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::timerfd_create, clock, flags) }.map(|fd| Fd(fd as i32))
}

/// `int timerfd_settime(int fd, int flags, const struct itimerspec *new, NULL);`
/// with `[interval_sec, interval_nsec, value_sec, value_nsec]` (64-bit times:
/// `timerfd_settime64` on i386).
pub fn timerfd_settime(fd: Fd, flags: u32, its: &[i64; 4]) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kernel reads the itimerspec (four 64-bit words), ours.
    let r = unsafe { sys!(Sysno::timerfd_settime, fd.0, flags, its.as_ptr(), 0usize) };
    #[cfg(target_arch = "x86")]
    // SAFETY: as above; __kernel_itimerspec has 64-bit fields on every arch.
    let r = unsafe { sys!(Sysno::timerfd_settime64, fd.0, flags, its.as_ptr(), 0usize) };
    r.map(drop)
}

/// `ioctl(fd, TFD_IOC_SET_TICKS, &ticks)`: the expirations a timerfd has to
/// report (CONFIG_CHECKPOINT_RESTORE).
pub fn ioctl_tfd_set_ticks(fd: Fd, ticks: u64) -> Result<()> {
    const TFD_IOC_SET_TICKS: u32 = 0x4008_5400;
    // SAFETY: the kernel reads the u64, ours.
    unsafe { sys!(Sysno::ioctl, fd.0, TFD_IOC_SET_TICKS, &ticks as *const u64) }.map(drop)
}

/// `int flock(int fd, int operation);`
pub fn flock(fd: Fd, op: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::flock, fd.0, op) }.map(drop)
}

/// `fcntl(fd, F_SETLK / F_OFD_SETLK, &struct flock)`: take a record lock of
/// `kind` (F_RDLCK 0, F_WRLCK 1) on `[start, start+len)` (`len` 0: to the end),
/// without waiting. `ofd`: an open-file-description lock (F_OFD_SETLK).
/// (`fcntl64` with the 64-bit `struct flock64` on i386.)
pub fn fcntl_setlk(fd: Fd, ofd: bool, kind: u16, start: u64, len: u64) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        // struct flock: short l_type, l_whence; off_t l_start, l_len; pid_t l_pid (+ pad).
        #[repr(C)]
        struct Flock(u16, u16, u64, u64, i32, i32);
        let l = Flock(kind, 0, start, len, 0, 0);
        let cmd: u32 = if ofd { 37 } else { 6 };
        // SAFETY: the kernel reads the struct, ours.
        unsafe { sys!(Sysno::fcntl, fd.0, cmd, &l as *const Flock) }.map(drop)
    }
    #[cfg(target_arch = "x86")]
    {
        // struct flock64 on i386: short, short, then two 64-bit offsets at 4-byte
        // alignment, then pid_t: 24 bytes.
        #[repr(C, packed(4))]
        struct Flock64(u16, u16, u64, u64, i32);
        let l = Flock64(kind, 0, start, len, 0);
        let cmd: u32 = if ofd { 37 } else { 13 }; // F_OFD_SETLK, F_SETLK64
        // SAFETY: the kernel reads the struct, ours.
        unsafe { sys!(Sysno::fcntl64, fd.0, cmd, &l as *const Flock64) }.map(drop)
    }
}

/// `int socket(int domain, int type, int protocol);`
pub fn socket(domain: u32, ty: u32, proto: u32) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::socket, domain, ty, proto) }.map(|fd| Fd(fd as i32))
}

/// `int socketpair(int domain, int type, int protocol, int sv[2]);`
pub fn socketpair(domain: u32, ty: u32, proto: u32) -> Result<(Fd, Fd)> {
    let mut sv = [0i32; 2];
    // SAFETY: the kernel writes two ints into `sv`, ours.
    unsafe { sys!(Sysno::socketpair, domain, ty, proto, sv.as_mut_ptr()) }?;
    Ok((Fd(sv[0]), Fd(sv[1])))
}

/// `int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen);`
pub fn bind(fd: Fd, addr: &[u8]) -> Result<()> {
    // SAFETY: the kernel reads addr.len() bytes.
    unsafe { sys!(Sysno::bind, fd.0, addr.as_ptr(), addr.len()) }.map(drop)
}

/// `int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);`
pub fn connect(fd: Fd, addr: &[u8]) -> Result<()> {
    // SAFETY: the kernel reads addr.len() bytes.
    unsafe { sys!(Sysno::connect, fd.0, addr.as_ptr(), addr.len()) }.map(drop)
}

/// `ssize_t recvfrom(int sockfd, void *buf, size_t len, int flags, NULL, NULL);`
pub fn recv(fd: Fd, buf: &mut [u8], flags: u32) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, ours.
    unsafe { sys!(Sysno::recvfrom, fd.0, buf.as_mut_ptr(), buf.len(), flags, 0usize, 0usize) }
}

/// `setsockopt(fd, SOL_SOCKET, SO_LINGER, {on, secs})`: `Some(0)` makes close
/// reset the connection instead of ending it (no TIME_WAIT); `None`, the default.
pub fn setsockopt_linger(fd: Fd, secs: Option<u32>) -> Result<()> {
    const SOL_SOCKET: u32 = 1;
    const SO_LINGER: u32 = 13;
    // struct linger { int l_onoff; int l_linger; }
    let l: [i32; 2] = [secs.is_some() as i32, secs.unwrap_or(0) as i32];
    // SAFETY: the kernel reads the 8-byte struct linger, ours.
    unsafe { sys!(Sysno::setsockopt, fd.0, SOL_SOCKET, SO_LINGER, l.as_ptr(), 8usize) }.map(drop)
}

/// `int accept4(int fd, NULL, NULL, int flags);` the new connection's socket.
pub fn accept4(fd: Fd, flags: u32) -> Result<Fd> {
    // SAFETY: no address is asked for: the kernel writes no memory of ours.
    unsafe { sys!(Sysno::accept4, fd.0, 0usize, 0usize, flags) }.map(|f| Fd(f as i32))
}

/// `int listen(int sockfd, int backlog);`
pub fn listen(fd: Fd, backlog: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::listen, fd.0, backlog) }.map(drop)
}

/// `int getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen);`
/// Returns the address length (the kernel's, possibly more than `buf` holds).
pub fn getsockname(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    let mut len = buf.len() as u32;
    // SAFETY: the kernel writes at most `len` bytes into buf and the length into `len`.
    unsafe { sys!(Sysno::getsockname, fd.0, buf.as_mut_ptr(), &mut len as *mut u32) }?;
    Ok(len as usize)
}

/// `int getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen);`
pub fn getpeername(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    let mut len = buf.len() as u32;
    // SAFETY: as getsockname.
    unsafe { sys!(Sysno::getpeername, fd.0, buf.as_mut_ptr(), &mut len as *mut u32) }?;
    Ok(len as usize)
}

/// `int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen);`
/// for an `int` option.
pub fn getsockopt_int(fd: Fd, level: u32, name: u32) -> Result<i32> {
    let (mut v, mut len) = (0i32, 4u32);
    // SAFETY: the kernel writes at most 4 bytes into `v` and the length into `len`.
    unsafe { sys!(Sysno::getsockopt, fd.0, level, name, &mut v as *mut i32, &mut len as *mut u32) }?;
    Ok(v)
}

/// `int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen);`
/// for an `int` option.
pub fn setsockopt_int(fd: Fd, level: u32, name: u32, v: i32) -> Result<()> {
    // SAFETY: the kernel reads 4 bytes from `v`.
    unsafe { sys!(Sysno::setsockopt, fd.0, level, name, &v as *const i32, 4usize) }.map(drop)
}

/// The kernel's `struct termios` (TCGETS/TCSETS: 36 bytes on x86).
pub type Termios = [u8; 36];

/// `ioctl(fd, TCGETS, &termios)`: the terminal settings (fails with ENOTTY if
/// `fd` is not a terminal).
pub fn ioctl_tcgets(fd: Fd) -> Result<Termios> {
    let mut t = [0u8; 36];
    // SAFETY: the kernel writes 36 bytes into `t`, ours.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x5401u32, t.as_mut_ptr()) }?;
    Ok(t)
}

/// `ioctl(fd, TCSETS, &termios)`.
pub fn ioctl_tcsets(fd: Fd, t: &Termios) -> Result<()> {
    // SAFETY: the kernel reads 36 bytes from `t`.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x5402u32, t.as_ptr()) }.map(drop)
}

/// `ioctl(fd, TIOCGWINSZ, &ws)`: rows, columns, x and y pixels (four u16).
pub fn ioctl_tiocgwinsz(fd: Fd) -> Result<[u16; 4]> {
    let mut w = [0u16; 4];
    // SAFETY: the kernel writes 8 bytes into `w`, ours.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x5413u32, w.as_mut_ptr()) }?;
    Ok(w)
}

/// `ioctl(fd, TIOCGPGRP, &pgrp)`: the terminal's foreground process group.
pub fn ioctl_tiocgpgrp(fd: Fd) -> Result<i32> {
    let mut g = 0i32;
    // SAFETY: the kernel writes an int into `g`, ours.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x540fu32, &mut g as *mut i32) }?;
    Ok(g)
}

/// `ioctl(fd, TIOCSPGRP, &pgrp)`: make `pgrp` the terminal's foreground group.
pub fn ioctl_tiocspgrp(fd: Fd, pgrp: i32) -> Result<()> {
    // SAFETY: the kernel reads an int from `pgrp`.
    unsafe { sys!(Sysno::ioctl, fd.0, 0x5410u32, &pgrp as *const i32) }.map(drop)
}

/// `int epoll_create1(int flags);`
pub fn epoll_create1(flags: u32) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::epoll_create1, flags) }.map(|fd| Fd(fd as i32))
}

/// The kernel's `struct epoll_event` (packed on x86: 12 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EpollEvent {
    /// EPOLLIN, EPOLLOUT, EPOLLET...
    pub events: u32,
    /// The program's data word.
    pub data: u64,
}

// The kernel's struct epoll_event is packed on x86 (both word sizes): 12 bytes.
const _: () = assert!(core::mem::size_of::<EpollEvent>() == 12);

/// `int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);`
pub fn epoll_ctl(epfd: Fd, op: u32, fd: Fd, ev: &EpollEvent) -> Result<()> {
    // SAFETY: the kernel reads the event, ours.
    unsafe { sys!(Sysno::epoll_ctl, epfd.0, op, fd.0, ev as *const EpollEvent) }.map(drop)
}

/// `int dup3(int oldfd, int newfd, int flags);`
pub fn dup3(old: Fd, new: Fd, flags: OFlags) -> Result<Fd> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::dup3, old.0, new.0, flags.0) }.map(|fd| Fd(fd as i32))
}

/// `int fcntl(int fd, int cmd, ... /* int arg */);` for the commands whose
/// argument is an integer (`F_DUPFD_CLOEXEC`, `F_GETFD`, `F_SETFD`, `F_GETFL`,
/// `F_SETFL`); `fcntl64` on i386.
pub fn fcntl(fd: Fd, cmd: u32, arg: usize) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: integer commands only: the kernel reads no memory.
    let r = unsafe { sys!(Sysno::fcntl, fd.0, cmd, arg) };
    #[cfg(target_arch = "x86")]
    // SAFETY: as above.
    let r = unsafe { sys!(Sysno::fcntl64, fd.0, cmd, arg) };
    r
}

/// `off_t lseek(int fd, off_t offset, int whence);` (`_llseek` on i386, so that
/// offsets past 2 GiB work there too). Returns the new offset.
pub fn lseek(fd: Fd, off: u64, whence: u32) -> Result<u64> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: no memory involved.
    let r = unsafe { sys!(Sysno::lseek, fd.0, off, whence) }.map(|o| o as u64);
    #[cfg(target_arch = "x86")]
    let r = {
        let mut res = 0u64;
        // SAFETY: the kernel writes the 64-bit result into `res`, ours.
        unsafe { sys!(Sysno::_llseek, fd.0, (off >> 32) as u32, off as u32, &mut res as *mut u64, whence) }.map(|_| res)
    };
    r
}

/// `int kcmp(pid_t pid1, pid_t pid2, int type, unsigned long idx1, unsigned long idx2);`
/// Returns 0 when equal, 1 or 2 for an order, 3 when different but unordered.
pub fn kcmp(pid1: i32, pid2: i32, kind: u32, a: usize, b: usize) -> Result<usize> {
    // SAFETY: integer arguments for KCMP_FILE: no memory involved.
    unsafe { sys!(Sysno::kcmp, pid1, pid2, kind, a, b) }
}

/// `int fsync(int fd);`
pub fn fsync(fd: Fd) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::fsync, fd.0) }.map(drop)
}

/// `SYNC_FILE_RANGE_WRITE`: start write-out of the dirty pages, do not wait.
pub use linux_raw_sys::general::SYNC_FILE_RANGE_WRITE;

/// `int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags);`
/// (i386 passes each 64-bit argument as two registers, low then high.)
pub fn sync_file_range(fd: Fd, off: u64, len: u64, flags: u32) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: no memory involved.
    let r = unsafe { sys!(Sysno::sync_file_range, fd.0, off, len, flags) };
    #[cfg(target_arch = "x86")]
    // SAFETY: no memory involved.
    let r = unsafe {
        sys!(Sysno::sync_file_range, fd.0, off as u32, (off >> 32) as u32, len as u32, (len >> 32) as u32, flags)
    };
    r.map(drop)
}

/// `int fchmod(int fd, mode_t mode);`
pub fn fchmod(fd: Fd, mode: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::fchmod, fd.0, mode) }.map(drop)
}

/// `int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);`
pub fn renameat2(od: Fd, old: &CStr, nd: Fd, new: &CStr, flags: RenameFlags) -> Result<()> {
    // SAFETY: both paths are NUL-terminated and only read.
    unsafe { sys!(Sysno::renameat2, od.0, old.as_ptr(), nd.0, new.as_ptr(), flags.0) }.map(drop)
}

/// `int symlinkat(const char *target, int newdirfd, const char *linkpath);`
pub fn symlinkat(target: &CStr, dir: Fd, link: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated and only read.
    unsafe { sys!(Sysno::symlinkat, target.as_ptr(), dir.0, link.as_ptr()) }.map(drop)
}

/// `int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags);`
pub fn linkat(od: Fd, old: &CStr, nd: Fd, new: &CStr, flags: AtFlags) -> Result<()> {
    // SAFETY: both paths are NUL-terminated and only read.
    unsafe { sys!(Sysno::linkat, od.0, old.as_ptr(), nd.0, new.as_ptr(), flags.0) }.map(drop)
}

/// `int unlinkat(int dirfd, const char *pathname, int flags);`
pub fn unlinkat(dir: Fd, path: &CStr, flags: AtFlags) -> Result<()> {
    // SAFETY: path is NUL-terminated and only read.
    unsafe { sys!(Sysno::unlinkat, dir.0, path.as_ptr(), flags.0) }.map(drop)
}

/// `ssize_t getdents64(int fd, void *dirp, size_t count);`
pub fn getdents64(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes of records into buf.
    unsafe { sys!(Sysno::getdents64, fd.0, buf.as_mut_ptr(), buf.len()) }
}

/// The names in the `struct linux_dirent64` records `getdents64` put in `buf`
/// (`d_ino` u64, `d_off` i64, `d_reclen` u16, `d_type` u8, `d_name` NUL-ended).
pub fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        let rec = buf.get(at..)?;
        let reclen = u16::from_le_bytes([*rec.get(16)?, *rec.get(17)?]) as usize;
        let name = rec.get(19..reclen.max(19))?;
        at += reclen.max(1);
        Some(name.split(|&b| b == 0).next().unwrap_or(name))
    })
}

/// `ssize_t readlinkat(int dirfd, const char *pathname, char *buf, size_t bufsiz);`
pub fn readlinkat(dir: Fd, path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    unsafe { sys!(Sysno::readlinkat, dir.0, path.as_ptr(), buf.as_mut_ptr(), buf.len()) }
}

/// `int getcwd(char *buf, size_t size);` (the raw syscall returns the length
/// including the NUL).
pub fn getcwd(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    unsafe { sys!(Sysno::getcwd, buf.as_mut_ptr(), buf.len()) }
}

/// `int chdir(const char *path);`
pub fn chdir(path: &CStr) -> Result<()> {
    // SAFETY: path is NUL-terminated and only read.
    unsafe { sys!(Sysno::chdir, path.as_ptr()) }.map(drop)
}

/// What ckpt needs from `struct statx`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// File size in bytes.
    pub size: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Inode number.
    pub ino: u64,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Number of hard links (0: the file was deleted while open).
    pub nlink: u32,
    /// For a device file, the device's major number.
    pub rdev_major: u32,
    /// For a device file, the device's minor number.
    pub rdev_minor: u32,
    /// Last status change (content, metadata or links), ns since the epoch.
    pub ctime_ns: u64,
}

impl Stat {
    /// The file type bits of `mode` (`S_IFMT`).
    pub fn kind(&self) -> u32 {
        self.mode & 0o170000
    }
    /// `dev` as one number (major << 32 | minor), the way the image stores it.
    pub fn dev(&self) -> u64 {
        (self.dev_major as u64) << 32 | self.dev_minor as u64
    }
}

/// File types of `Stat::kind` (`S_IF*`, inode(7)).
pub mod s_if {
    /// Regular file.
    pub const REG: u32 = 0o100000;
    /// Directory.
    pub const DIR: u32 = 0o040000;
    /// Character device.
    pub const CHR: u32 = 0o020000;
    /// Block device.
    pub const BLK: u32 = 0o060000;
    /// FIFO (named or anonymous pipe).
    pub const FIFO: u32 = 0o010000;
    /// Socket.
    pub const SOCK: u32 = 0o140000;
    /// Symbolic link.
    pub const LNK: u32 = 0o120000;
}

/// `int statx(int dirfd, const char *pathname, int flags, unsigned int mask, struct statx *statxbuf);`
/// With an empty path and `AT_EMPTY_PATH` this is `fstat(dirfd)`.
pub fn statx(dir: Fd, path: &CStr, flags: AtFlags) -> Result<Stat> {
    let mut sx = core::mem::MaybeUninit::<linux_raw_sys::general::statx>::zeroed();
    use linux_raw_sys::general::STATX_BASIC_STATS;
    // SAFETY: the kernel fills the statx buffer we own; path is NUL-terminated.
    unsafe { sys!(Sysno::statx, dir.0, path.as_ptr(), flags.0, STATX_BASIC_STATS, sx.as_mut_ptr()) }?;
    // SAFETY: zero-initialised plain-old-data, then filled by the kernel.
    let sx = unsafe { sx.assume_init() };
    Ok(Stat {
        size: sx.stx_size,
        mode: sx.stx_mode as u32,
        ino: sx.stx_ino,
        dev_major: sx.stx_dev_major,
        dev_minor: sx.stx_dev_minor,
        nlink: sx.stx_nlink,
        rdev_major: sx.stx_rdev_major,
        rdev_minor: sx.stx_rdev_minor,
        ctime_ns: (sx.stx_ctime.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(sx.stx_ctime.tv_nsec as u64),
    })
}

/// `fstat(2)` through statx.
pub fn fstat(fd: Fd) -> Result<Stat> {
    statx(fd, c"", c::AT_EMPTY_PATH)
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// `void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);`
/// (`mmap2` with the offset in 4096-byte units on i386: an offset that is not a
/// multiple of the page is `EINVAL`, as on x86_64, and one past 2^44 bytes, which
/// that unit cannot express, `EOVERFLOW`, never a wrong mapping).
///
/// # Safety
/// With `MAP_FIXED` the call replaces whatever was mapped at `addr`: no live Rust
/// reference may point there.
pub unsafe fn mmap(addr: usize, len: usize, prot: ProtFlags, flags: MapFlags, fd: Fd, off: u64) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded to the caller's contract.
    let r = unsafe { sys!(Sysno::mmap, addr, len, prot.0, flags.0, fd.0, off) };
    #[cfg(target_arch = "x86")]
    let r = {
        if !off.is_multiple_of(4096) {
            return Err(Errno::EINVAL);
        }
        let pages = u32::try_from(off / 4096).map_err(|_| Errno::EOVERFLOW)?;
        // SAFETY: forwarded to the caller's contract.
        unsafe { sys!(Sysno::mmap2, addr, len, prot.0, flags.0, fd.0, pages) }
    };
    r
}

/// `int munmap(void *addr, size_t length);`
///
/// # Safety
/// No live Rust reference may point into the range.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<()> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::munmap, addr, len) }.map(drop)
}

/// `int madvise(void *addr, size_t length, int advice);`
///
/// # Safety
/// `MADV_DONTNEED` discards contents and `MADV_GUARD_INSTALL` makes every access
/// fault: no Rust value may live there.
pub unsafe fn madvise(addr: usize, len: usize, advice: u32) -> Result<()> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::madvise, addr, len, advice) }.map(drop)
}

/// `int mprotect(void *addr, size_t len, int prot);`
///
/// # Safety
/// Removing access from memory that Rust code still uses makes it fault.
pub unsafe fn mprotect(addr: usize, len: usize, prot: ProtFlags) -> Result<()> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::mprotect, addr, len, prot.0) }.map(drop)
}

/// `void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, void *new_address);`
///
/// # Safety
/// As [`munmap`] for the old range and [`mmap`] with `MAP_FIXED` for the new one.
pub unsafe fn mremap(old: usize, old_len: usize, new_len: usize, flags: MremapFlags, new: usize) -> Result<usize> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::mremap, old, old_len, new_len, flags.0, new) }
}

/// `int memfd_create(const char *name, unsigned int flags);`
pub fn memfd_create(name: &CStr, flags: u32) -> Result<Fd> {
    // SAFETY: the kernel reads the NUL-terminated name.
    unsafe { sys!(Sysno::memfd_create, name.as_ptr(), flags) }.map(|f| Fd(f as i32))
}

/// `int ftruncate(int fd, off_t length);` (`ftruncate64` with the length split in
/// two words on i386).
pub fn ftruncate(fd: Fd, len: u64) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: no memory involved.
    let r = unsafe { sys!(Sysno::ftruncate, fd.0, len) };
    #[cfg(target_arch = "x86")]
    // SAFETY: no memory involved.
    let r = unsafe { sys!(Sysno::ftruncate64, fd.0, len as u32 as usize, (len >> 32) as usize) };
    r.map(drop)
}

/// The kernel's `struct page_region` (linux/fs.h, 6.7): a range of pages that
/// `PAGEMAP_SCAN` found, with their `PAGE_IS_*` categories (masked by
/// `return_mask`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRegion {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PAGE_IS_*` bits.
    pub categories: u64,
}

/// The kernel's `struct pm_scan_arg` (linux/fs.h, 6.7). Debian's uapi headers
/// predate it, so it is written out here. Pages match when, after XOR with
/// `category_inverted`, they have every bit of `category_mask` and (if non-zero)
/// at least one bit of `category_anyof_mask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmScanArg {
    /// `sizeof(struct pm_scan_arg)`.
    pub size: u64,
    /// `PM_SCAN_*` flags (0: only report).
    pub flags: u64,
    /// First address to scan.
    pub start: u64,
    /// End of the scan.
    pub end: u64,
    /// Set by the kernel: where the walk stopped.
    pub walk_end: u64,
    /// Address of a `PageRegion` array.
    pub vec: u64,
    /// Its length.
    pub vec_len: u64,
    /// Stop after this many pages (0: no limit).
    pub max_pages: u64,
    /// Categories inverted before matching.
    pub category_inverted: u64,
    /// Categories every matching page must have.
    pub category_mask: u64,
    /// A matching page has at least one of these.
    pub category_anyof_mask: u64,
    /// Categories reported (and that split regions).
    pub return_mask: u64,
}
const _: () = assert!(core::mem::size_of::<PmScanArg>() == 96);
same_layout!(PageRegion, linux_raw_sys::general::page_region, { start => start, end => end, categories => categories });
same_layout!(PmScanArg, linux_raw_sys::general::pm_scan_arg, {
    size => size, flags => flags, start => start, end => end, walk_end => walk_end, vec => vec, vec_len => vec_len,
    max_pages => max_pages, category_inverted => category_inverted, category_mask => category_mask,
    category_anyof_mask => category_anyof_mask, return_mask => return_mask,
});

/// `PAGE_IS_*` categories of `PAGEMAP_SCAN` (linux/fs.h).
pub mod page_is {
    /// Written since it was write-protected through an asynchronous
    /// userfaultfd (every page of a range not registered so counts as written).
    pub const WRITTEN: u64 = 1 << 1;
    /// Present in memory.
    pub const PRESENT: u64 = 1 << 3;
    /// Swapped out.
    pub const SWAPPED: u64 = 1 << 4;
    /// Mapped to the kernel's shared zero page (read but never written).
    pub const PFNZERO: u64 = 1 << 5;
    /// A guard page (`MADV_GUARD_INSTALL`, Linux 6.13; reported since 6.14).
    pub const GUARD: u64 = 1 << 8;
}

/// `ioctl(pagemap_fd, PAGEMAP_SCAN, &arg)` on an open `/proc/PID/pagemap`
/// (Linux 6.7): fills `out` with the matching page ranges of
/// `[arg.start, arg.end)`; returns how many it filled. `arg.vec`/`vec_len` are set
/// from `out` here. Older kernels fail with `ENOTTY` (or `EINVAL`).
pub fn ioctl_pagemap_scan(fd: Fd, arg: &mut PmScanArg, out: &mut [PageRegion]) -> Result<usize> {
    // _IOWR('f', 16, struct pm_scan_arg): dir 3 << 30 | size << 16 | 'f' << 8 | 16.
    const PAGEMAP_SCAN: u32 = (3 << 30) | (96 << 16) | ((b'f' as u32) << 8) | 16;
    arg.size = core::mem::size_of::<PmScanArg>() as u64;
    arg.vec = out.as_mut_ptr() as u64;
    arg.vec_len = out.len() as u64;
    // SAFETY: the kernel reads and updates `arg` (ours) and writes at most
    // vec_len page_region records into `out` (ours); it only reads page tables.
    unsafe { sys!(Sysno::ioctl, fd.0, PAGEMAP_SCAN, arg as *mut PmScanArg) }
}

/// `brk(2)` as the kernel implements it: returns the (new) break; `brk(0)` reads it.
///
/// # Safety
/// Moving the break down unmaps the end of the heap: no live value (the C
/// library's allocator's included) may be there. `brk(0)` ([`brk_now`]) is safe.
pub unsafe fn brk(addr: usize) -> usize {
    // SAFETY: forwarded to the caller's contract.
    unsafe { raw_syscall!(Sysno::brk, addr) }
}

/// The current break (`brk(0)`, which moves nothing).
pub fn brk_now() -> usize {
    // SAFETY: an address of 0 is below any heap: the kernel changes nothing.
    unsafe { brk(0) }
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// The kernel's `struct sigaction` for `rt_sigaction` (not glibc's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KSigAction {
    /// Handler address, or 0 (SIG_DFL) / 1 (SIG_IGN).
    pub handler: usize,
    /// `SA_*` flags.
    pub flags: usize,
    /// Restorer address (used with `SA_RESTORER`).
    pub restorer: usize,
    /// Blocked during the handler (64 signals; two words on i386).
    pub mask: [usize; 64 / usize::BITS as usize],
}

same_layout!(KSigAction, linux_raw_sys::general::kernel_sigaction, {
    handler => sa_handler_kernel, flags => sa_flags, restorer => sa_restorer, mask => sa_mask,
});

/// The kernel's 64-bit signal set.
pub type SigSet = u64;

impl KSigAction {
    /// The mask as a 64-bit set.
    pub fn mask64(&self) -> SigSet {
        let mut m = 0u64;
        for (i, w) in self.mask.iter().enumerate() {
            m |= (*w as u64) << (i as u32 * usize::BITS);
        }
        m
    }
    /// Set the mask from a 64-bit set.
    pub fn set_mask64(&mut self, m: SigSet) {
        for (i, w) in self.mask.iter_mut().enumerate() {
            *w = (m >> (i as u32 * usize::BITS)) as usize;
        }
    }
}

/// `int rt_sigaction(int signum, const struct sigaction *act, struct sigaction *oldact, size_t sigsetsize);`
///
/// # Safety
/// With `act`, the kernel will jump to `act.handler` (and return through
/// `act.restorer`) on the next such signal, at any instruction: both must be
/// functions fit to run there (async-signal-safe, of the handler's signature), or
/// `SIG_DFL`/`SIG_IGN`. Reading the current action ([`rt_sigaction_get`]) is safe.
pub unsafe fn rt_sigaction(sig: u32, act: Option<&KSigAction>, old: Option<&mut KSigAction>) -> Result<()> {
    let a = act.map_or(0, |a| a as *const _ as usize);
    let o = old.map_or(0, |o| o as *mut _ as usize);
    // SAFETY: act is only read and oldact written, both typed kernel structs we own;
    // what the kernel does with the handler is the caller's contract.
    unsafe { sys!(Sysno::rt_sigaction, sig, a, o, 8usize) }.map(drop)
}

/// The action installed for `sig` (`rt_sigaction` without `act`).
pub fn rt_sigaction_get(sig: u32) -> Result<KSigAction> {
    let mut old = KSigAction::default();
    // SAFETY: no new action: the kernel only writes the current one into `old`.
    unsafe { rt_sigaction(sig, None, Some(&mut old)) }?;
    Ok(old)
}

/// Give `sig` its default action (`rt_sigaction` with `SIG_DFL`): no handler
/// address is installed, so this is safe.
pub fn sigaction_default(sig: u32) -> Result<()> {
    // SAFETY: SIG_DFL (a zeroed action): the kernel jumps nowhere.
    unsafe { rt_sigaction(sig, Some(&KSigAction::default()), None) }
}

/// End this process as a child that ended with wait status `status` did: exit
/// with its status, or die of its signal (with the default action, unblocked),
/// so that the waiting parent (a shell) sees the same. 128 + the signal if the
/// signal does not kill (it was caught, ignored or stopped the child).
pub fn exit_like(status: u32) -> ! {
    let sig = status & 0x7f;
    if sig == 0 {
        exit_group(((status >> 8) & 0xff) as i32);
    }
    let _ = sigaction_default(sig);
    let _ = kill(getpid(), sig);
    let unblock: SigSet = 1 << (sig - 1);
    let _ = rt_sigprocmask(c::SIG_UNBLOCK, Some(&unblock), None);
    exit_group(128 + sig as i32)
}

/// `int rt_sigprocmask(int how, const sigset_t *set, sigset_t *oldset, size_t sigsetsize);`
pub fn rt_sigprocmask(how: u32, set: Option<&SigSet>, old: Option<&mut SigSet>) -> Result<()> {
    let s = set.map_or(0, |s| s as *const _ as usize);
    let o = old.map_or(0, |o| o as *mut _ as usize);
    // SAFETY: 8-byte sets we own; the kernel reads one and writes the other.
    unsafe { sys!(Sysno::rt_sigprocmask, how, s, o, 8usize) }.map(drop)
}

/// `int rt_sigpending(sigset_t *set, size_t sigsetsize);`
pub fn rt_sigpending() -> Result<SigSet> {
    let mut set: SigSet = 0;
    // SAFETY: an 8-byte set we own, written by the kernel.
    unsafe { sys!(Sysno::rt_sigpending, &mut set as *mut SigSet as usize, 8usize) }.map(|_| set)
}

/// Take one pending signal of SET off the queue without running any handler
/// (`rt_sigtimedwait` with a zero timeout, no siginfo); the signal number, or
/// EAGAIN if none is pending. SET must be blocked, or a handler may have run first.
pub fn take_pending(set: SigSet) -> Result<u32> {
    settings::rt_sigtimedwait(set, None)
}

/// The kernel's `stack_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackT {
    /// Base of the alternate stack.
    pub sp: usize,
    /// `SS_ONSTACK` / `SS_DISABLE`.
    pub flags: i32,
    /// Size in bytes.
    pub size: usize,
}

same_layout!(StackT, linux_raw_sys::general::stack_t, { sp => ss_sp, flags => ss_flags, size => ss_size });

impl Default for StackT {
    fn default() -> Self {
        StackT { sp: 0, flags: c::SS_DISABLE as i32, size: 0 }
    }
}

/// `int sigaltstack(const stack_t *ss, stack_t *old_ss);`
///
/// # Safety
/// With `ss` (and not `SS_DISABLE`), the kernel writes signal frames into
/// `ss.sp..ss.sp + ss.size` from now on: memory nothing else uses, and mapped as
/// long as it is installed. Reading the current one ([`sigaltstack_get`]) is safe.
pub unsafe fn sigaltstack(ss: Option<&StackT>, old: Option<&mut StackT>) -> Result<()> {
    let s = ss.map_or(0, |s| s as *const _ as usize);
    let o = old.map_or(0, |o| o as *mut _ as usize);
    // SAFETY: typed kernel structs we own; one read, one written; the stack itself
    // is the caller's contract.
    unsafe { sys!(Sysno::sigaltstack, s, o) }.map(drop)
}

/// The alternate signal stack in force (`sigaltstack` without `ss`).
pub fn sigaltstack_get() -> Result<StackT> {
    let mut old = StackT::default();
    // SAFETY: no new stack: the kernel only writes the current one into `old`.
    unsafe { sigaltstack(None, Some(&mut old)) }?;
    Ok(old)
}

/// `int kill(pid_t pid, int sig);`
pub fn kill(pid: i32, sig: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::kill, pid, sig) }.map(drop)
}

/// `int tgkill(pid_t tgid, pid_t tid, int sig);`
pub fn tgkill(tgid: i32, tid: i32, sig: u32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::tgkill, tgid, tid, sig) }.map(drop)
}

// ---------------------------------------------------------------------------
// Process
// ---------------------------------------------------------------------------

/// `pid_t setsid(void);`
pub fn setsid() -> Result<i32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::setsid) }.map(|p| p as i32)
}

/// `int setpgid(pid_t pid, pid_t pgid);` (0: the calling process / its pid)
pub fn setpgid(pid: i32, pgid: i32) -> Result<()> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::setpgid, pid, pgid) }.map(drop)
}

/// `pid_t getpgid(pid_t pid);` (0: the calling process)
pub fn getpgid(pid: i32) -> Result<i32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::getpgid, pid) }.map(|p| p as i32)
}

/// `prctl(PR_GET_DUMPABLE)`: 0 when the kernel made the process non-dumpable
/// (it changed its credentials, or asked with PR_SET_DUMPABLE).
pub fn prctl_get_dumpable() -> Result<u32> {
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::prctl, c::PR_GET_DUMPABLE) }.map(|v| v as u32)
}

/// `void exit_group(int status);`
pub fn exit_group(code: i32) -> ! {
    // SAFETY: ends the process; nothing after it runs.
    unsafe { raw_syscall!(Sysno::exit_group, code) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `pid_t getpid(void);`
pub fn getpid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { raw_syscall!(Sysno::getpid) as i32 }
}

/// `pid_t gettid(void);`
pub fn gettid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { raw_syscall!(Sysno::gettid) as i32 }
}

/// The kernel's `struct prctl_mm_map`, with the auxv pointer widened to 64 bits so
/// the layout is the same for 64-bit and compat callers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrctlMmMap {
    /// Text start.
    pub start_code: u64,
    /// Text end.
    pub end_code: u64,
    /// Data start.
    pub start_data: u64,
    /// Data end.
    pub end_data: u64,
    /// Heap start.
    pub start_brk: u64,
    /// Current break.
    pub brk: u64,
    /// Where the kernel put argv/envp/auxv (names the `[stack]` mapping).
    pub start_stack: u64,
    /// argv strings.
    pub arg_start: u64,
    /// End of argv strings.
    pub arg_end: u64,
    /// Environment strings.
    pub env_start: u64,
    /// End of environment strings.
    pub env_end: u64,
    /// Saved auxiliary vector (pointer).
    pub auxv: u64,
    /// Its size in bytes.
    pub auxv_size: u32,
    /// New /proc/self/exe, or -1 to keep it.
    pub exe_fd: u32,
}
const _: () = assert!(core::mem::size_of::<PrctlMmMap>() == 104);
// On i386 linux-raw-sys describes a 32-bit kernel's struct (a 4-byte auxv
// pointer); the 64-bit kernel a compat process calls reads the 64-bit one.
#[cfg(target_arch = "x86_64")]
same_layout!(PrctlMmMap, linux_raw_sys::prctl::prctl_mm_map, {
    start_code => start_code, end_code => end_code, start_data => start_data, end_data => end_data,
    start_brk => start_brk, brk => brk, start_stack => start_stack, arg_start => arg_start, arg_end => arg_end,
    env_start => env_start, env_end => env_end, auxv => auxv, auxv_size => auxv_size, exe_fd => exe_fd,
});

/// `prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map, 0);`
///
/// # Safety
/// The new `start_brk`/`brk` decide where later `brk` calls grow and shrink the
/// heap: they must be the bounds of the heap the program's allocator uses (the
/// ones it had when they were read), or a later `brk` unmaps live memory.
pub unsafe fn prctl_set_mm_map(map: &PrctlMmMap) -> Result<()> {
    let sz = core::mem::size_of::<PrctlMmMap>();
    // SAFETY: the kernel reads the struct (and auxv_size bytes at auxv, which it
    // validates and copies) and changes only mm bookkeeping fields; the heap
    // bounds are the caller's contract.
    unsafe { sys!(Sysno::prctl, c::PR_SET_MM, c::PR_SET_MM_MAP, map as *const _, sz, 0) }.map(drop)
}

/// `prctl(PR_GET_TID_ADDRESS, &addr);` the clear_child_tid address.
pub fn prctl_get_tid_address() -> Result<usize> {
    // The kernel writes with put_user of its own pointer size: 8 bytes on a 64-bit
    // kernel even for an i386 (compat) caller, so the buffer is always a u64.
    let mut a: u64 = 0;
    // SAFETY: the kernel writes at most 8 bytes into `a`.
    unsafe { sys!(Sysno::prctl, c::PR_GET_TID_ADDRESS, &mut a as *mut u64) }?;
    Ok(a as usize)
}

/// `prctl(PR_GET_NAME, name)`: the 16-byte comm.
pub fn prctl_get_name() -> Result<[u8; 16]> {
    let mut n = [0u8; 16];
    // SAFETY: the kernel writes 16 bytes.
    unsafe { sys!(Sysno::prctl, c::PR_GET_NAME, n.as_mut_ptr()) }?;
    Ok(n)
}

/// `prctl(PR_SET_NAME, name)`.
pub fn prctl_set_name(n: &[u8; 16]) -> Result<()> {
    // SAFETY: the kernel reads at most 16 bytes.
    unsafe { sys!(Sysno::prctl, c::PR_SET_NAME, n.as_ptr()) }.map(drop)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: `sig` is sent to the caller when its parent dies.
pub fn prctl_set_pdeathsig(sig: u32) -> Result<()> {
    const PR_SET_PDEATHSIG: u32 = 1;
    // SAFETY: no memory involved.
    unsafe { sys!(Sysno::prctl, PR_SET_PDEATHSIG, sig) }.map(drop)
}

/// `int arch_prctl(ARCH_SET_FS, unsigned long addr);`
///
/// # Safety
/// Changes the thread pointer: every TLS access afterwards uses the new base.
#[cfg(target_arch = "x86_64")]
pub unsafe fn arch_prctl_set_fs(addr: u64) -> Result<()> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::arch_prctl, c::ARCH_SET_FS, addr) }.map(drop)
}

/// `int arch_prctl(ARCH_GET_FS, unsigned long *addr);`
#[cfg(target_arch = "x86_64")]
pub fn arch_prctl_get_fs() -> Result<u64> {
    let mut a: u64 = 0;
    // SAFETY: the kernel writes one u64.
    unsafe { sys!(Sysno::arch_prctl, c::ARCH_GET_FS, &mut a as *mut u64) }?;
    Ok(a)
}

/// The kernel's `struct user_desc` (i386 TLS descriptors, `set_thread_area(2)`).
#[cfg(target_arch = "x86")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserDesc {
    /// GDT entry number (glibc's TLS uses 12: selector 0x63); -1 asks for a free one.
    pub entry_number: u32,
    /// Segment base: the thread pointer.
    pub base_addr: u32,
    /// Segment limit.
    pub limit: u32,
    /// Bit field: seg_32bit, contents (2 bits), read_exec_only, limit_in_pages,
    /// seg_not_present, useable, in this order from bit 0.
    pub flags: u32,
}

#[cfg(target_arch = "x86")]
same_layout!(UserDesc, linux_raw_sys::general::user_desc, {
    entry_number => entry_number, base_addr => base_addr, limit => limit, flags => _bitfield_1,
});

/// `int get_thread_area(struct user_desc *u_info);` (u_info->entry_number chosen by
/// the caller).
#[cfg(target_arch = "x86")]
pub fn get_thread_area(entry: u32) -> Result<UserDesc> {
    let mut d = UserDesc { entry_number: entry, ..Default::default() };
    // SAFETY: the kernel reads entry_number and fills the rest of the struct we own.
    unsafe { sys!(Sysno::get_thread_area, &mut d as *mut UserDesc) }?;
    Ok(d)
}

/// `int set_thread_area(struct user_desc *u_info);`
///
/// # Safety
/// Changes a TLS descriptor: code that loads its selector into %gs afterwards
/// sees the new base.
#[cfg(target_arch = "x86")]
pub unsafe fn set_thread_area(d: &mut UserDesc) -> Result<()> {
    // SAFETY: forwarded to the caller's contract; the kernel reads the struct and
    // writes entry_number back when it was -1.
    unsafe { sys!(Sysno::set_thread_area, d as *mut UserDesc) }.map(drop)
}

/// `long set_robust_list(struct robust_list_head *head, size_t len);`
///
/// # Safety
/// At thread exit the kernel walks the list at `head` and writes to the futex
/// words it names: it must be this thread's list (glibc's, as it was saved).
pub unsafe fn set_robust_list(head: usize, len: usize) -> Result<()> {
    // SAFETY: the kernel only records the pointer now; its use at exit is the
    // caller's contract.
    unsafe { sys!(Sysno::set_robust_list, head, len) }.map(drop)
}

/// `long get_robust_list(int pid, struct robust_list_head **head_ptr, size_t *len_ptr);`
pub fn get_robust_list() -> Result<(usize, usize)> {
    let (mut h, mut l) = (0usize, 0usize);
    // SAFETY: the kernel writes one pointer and one size into our locals.
    unsafe { sys!(Sysno::get_robust_list, 0, &mut h as *mut usize, &mut l as *mut usize) }?;
    Ok((h, l))
}

/// `pid_t set_tid_address(int *tidptr);`
///
/// # Safety
/// At thread exit the kernel writes 0 to `addr` (and wakes a futex there): it must
/// be a word that stays this thread's (glibc's `tid` field, as it was saved).
pub unsafe fn set_tid_address(addr: usize) {
    // SAFETY: the kernel only records the pointer now; its use at exit is the
    // caller's contract.
    unsafe { raw_syscall!(Sysno::set_tid_address, addr) };
}

/// `int rseq(struct rseq *rseq, u32 rseq_len, int flags, u32 sig);`
///
/// # Safety
/// Registering makes the kernel write `cpu_id` fields at `area` from now on.
pub unsafe fn rseq(area: usize, len: u32, flags: u32, sig: u32) -> Result<()> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys!(Sysno::rseq, area, len, flags, sig) }.map(drop)
}

/// The kernel's `struct itimerval` (native long layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ITimerVal {
    /// Interval seconds.
    pub interval_sec: isize,
    /// Interval microseconds.
    pub interval_usec: isize,
    /// Remaining seconds.
    pub value_sec: isize,
    /// Remaining microseconds.
    pub value_usec: isize,
}

same_layout!(ITimerVal, linux_raw_sys::general::itimerval, {
    interval_sec => it_interval.tv_sec, interval_usec => it_interval.tv_usec,
    value_sec => it_value.tv_sec, value_usec => it_value.tv_usec,
});

/// `int getitimer(int which, struct itimerval *curr_value);`
pub fn getitimer(which: u32) -> Result<ITimerVal> {
    let mut v = ITimerVal::default();
    // SAFETY: the kernel fills the struct we own.
    unsafe { sys!(Sysno::getitimer, which, &mut v as *mut ITimerVal) }?;
    Ok(v)
}

/// `int setitimer(int which, const struct itimerval *new_value, struct itimerval *old_value);`
pub fn setitimer(which: u32, v: &ITimerVal) -> Result<()> {
    // SAFETY: the kernel reads the struct.
    unsafe { sys!(Sysno::setitimer, which, v as *const ITimerVal, 0) }.map(drop)
}

/// `int clock_gettime(clockid_t clockid, struct timespec *tp);` → (sec, nsec).
pub fn clock_gettime(clock: u32) -> Result<(i64, i64)> {
    let mut ts = [0isize; 2];
    // SAFETY: the kernel fills a native `struct timespec` (two longs) we own.
    unsafe { sys!(Sysno::clock_gettime, clock, ts.as_mut_ptr()) }?;
    Ok((ts[0] as i64, ts[1] as i64))
}

/// `struct new_utsname` (six 65-byte fields).
#[derive(Clone, Copy)]
pub struct Utsname(pub [[u8; 65]; 6]);

impl Utsname {
    /// The `release` field up to its NUL.
    pub fn release(&self) -> &[u8] {
        let r = &self.0[2];
        &r[..r.iter().position(|&b| b == 0).unwrap_or(65)]
    }
}

/// `int uname(struct utsname *buf);`
pub fn uname() -> Result<Utsname> {
    let mut u = Utsname([[0; 65]; 6]);
    // SAFETY: the kernel fills 6*65 bytes.
    unsafe { sys!(Sysno::uname, u.0.as_mut_ptr()) }?;
    Ok(u)
}

/// Read a whole small file (e.g. under /proc) into `buf`; returns the length read.
/// Fails with `EOVERFLOW` if the file does not fit.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    let fd = openat(Fd::CWD, path, c::O_RDONLY | c::O_CLOEXEC, 0)?;
    let mut n = 0;
    let r = loop {
        if n == buf.len() {
            break Err(Errno::EOVERFLOW);
        }
        match read(fd, &mut buf[n..]) {
            Ok(0) => break Ok(n),
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    r
}
