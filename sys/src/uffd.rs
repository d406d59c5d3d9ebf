//! userfaultfd(2) and its ioctls: what the restart loader's lazy pager needs to
//! fill a restarted program's memory on demand (docs/memory.md, "Lazy restart").
//!
//! The structures are the kernel's uapi (`linux/userfaultfd.h`), all made of
//! 64-bit fields, so they have one layout and the ioctl numbers are the same on
//! x86_64 and i386.

use syscalls::{Sysno, raw_syscall};

use crate::{Errno, Fd, Result};

macro_rules! sys {
    ($($t:tt)*) => { Errno::from_ret(raw_syscall!($($t)*)) };
}

/// `UFFD_USER_MODE_ONLY`: the only kind an unprivileged process may create when
/// `vm.unprivileged_userfaultfd=0`; faults the kernel takes on the program's
/// behalf (a `read(2)` into a missing page) then fail with `EFAULT`.
pub const USER_MODE_ONLY: u32 = 1;
/// `UFFD_API`.
pub const API: u64 = 0xAA;
/// `UFFD_FEATURE_EVENT_REMAP`: mremap of a registered range is reported (and the
/// moved range stays registered).
pub const FEATURE_EVENT_REMAP: u64 = 1 << 2;
/// `UFFD_FEATURE_EVENT_REMOVE`: `madvise(MADV_DONTNEED/MADV_REMOVE)` is reported.
pub const FEATURE_EVENT_REMOVE: u64 = 1 << 3;
/// `UFFD_FEATURE_EVENT_UNMAP`: munmap of a registered range is reported.
pub const FEATURE_EVENT_UNMAP: u64 = 1 << 6;
/// `UFFD_FEATURE_WP_UNPOPULATED`: write-protecting a range marks its missing
/// pages too, so a first write there counts as a write.
pub const FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
/// `UFFD_FEATURE_WP_ASYNC`: a write to a write-protected page is resolved by the
/// kernel at once (no message, no handler thread); `PAGEMAP_SCAN` then reports
/// the page `PAGE_IS_WRITTEN` (incremental checkpoints, docs/incremental.md).
pub const FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `UFFDIO_REGISTER_MODE_MISSING`.
pub const REGISTER_MODE_MISSING: u64 = 1;
/// `UFFDIO_REGISTER_MODE_WP`.
pub const REGISTER_MODE_WP: u64 = 2;
/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_EVENT_REMAP`.
pub const EVENT_REMAP: u8 = 0x14;
/// `UFFD_EVENT_REMOVE`.
pub const EVENT_REMOVE: u8 = 0x15;
/// `UFFD_EVENT_UNMAP`.
pub const EVENT_UNMAP: u8 = 0x16;

// _IOWR(0xAA, nr, size) = 3 << 30 | size << 16 | 0xAA << 8 | nr; _IOR has 2 << 30.
const UFFDIO_API: u32 = (3 << 30) | (24 << 16) | 0xAA00 | 0x3F;
const UFFDIO_REGISTER: u32 = (3 << 30) | (32 << 16) | 0xAA00;
const UFFDIO_WAKE: u32 = (2 << 30) | (16 << 16) | 0xAA00 | 0x02;
const UFFDIO_COPY: u32 = (3 << 30) | (40 << 16) | 0xAA00 | 0x03;
const UFFDIO_ZEROPAGE: u32 = (3 << 30) | (32 << 16) | 0xAA00 | 0x04;
const UFFDIO_WRITEPROTECT: u32 = (3 << 30) | (24 << 16) | 0xAA00 | 0x06;

/// One `struct uffd_msg` (32 bytes) as `read(2)` returns it: the event, then the
/// event's words (a page fault: flags, address; remap: from, to, len; remove and
/// unmap: start, end).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct Msg {
    /// `UFFD_EVENT_*` in the first byte, then reserved bytes.
    pub event: [u8; 8],
    /// The event's three words.
    pub arg: [u64; 3],
}

const _: () = assert!(core::mem::size_of::<Msg>() == 32);

/// `int syscall(SYS_userfaultfd, int flags)`: `O_CLOEXEC`, `O_NONBLOCK`,
/// [`USER_MODE_ONLY`].
pub fn userfaultfd(flags: u32) -> Result<Fd> {
    // SAFETY: creates a descriptor; no memory is passed.
    unsafe { sys!(Sysno::userfaultfd, flags) }.map(|f| Fd(f as i32))
}

/// `ioctl(fd, UFFDIO_API, struct uffdio_api *)`: agree on the API and enable
/// `features`; returns the features the kernel offers.
pub fn ioctl_uffdio_api(fd: Fd, features: u64) -> Result<u64> {
    let mut a = [API, features, 0u64];
    // SAFETY: the kernel reads and writes our 24-byte struct uffdio_api.
    unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_API, a.as_mut_ptr() as usize) }?;
    Ok(a[1])
}

/// `ioctl(fd, UFFDIO_REGISTER, struct uffdio_register *)`: faults on missing
/// pages of `[start, start+len)` are reported to `fd` (`mode`).
pub fn ioctl_uffdio_register(fd: Fd, start: usize, len: usize, mode: u64) -> Result<()> {
    let mut r = [start as u64, len as u64, mode, 0u64];
    // SAFETY: the kernel reads and writes our 32-byte struct uffdio_register; the
    // range is only marked, not touched.
    unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_REGISTER, r.as_mut_ptr() as usize) }.map(drop)
}

/// `ioctl(fd, UFFDIO_WAKE, struct uffdio_range *)`: wake threads waiting on a
/// fault in `[start, start+len)`.
pub fn ioctl_uffdio_wake(fd: Fd, start: usize, len: usize) -> Result<()> {
    let r = [start as u64, len as u64];
    // SAFETY: the kernel reads our 16-byte struct uffdio_range.
    unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_WAKE, r.as_ptr() as usize) }.map(drop)
}

/// `ioctl(fd, UFFDIO_COPY, struct uffdio_copy *)`: copy `len` bytes from `src`
/// (in the caller's memory) into the missing pages at `dst` of the registered
/// process, and wake its waiting threads. Returns `(bytes copied, result)`: on
/// `EAGAIN` (an event is waiting to be read) or `EEXIST` (a page is already
/// there) part of the range may be done.
pub fn ioctl_uffdio_copy(fd: Fd, dst: usize, src: &[u8]) -> (usize, Result<()>) {
    let mut c = [dst as u64, src.as_ptr() as usize as u64, src.len() as u64, 0u64, 0u64];
    // SAFETY: the kernel reads `src` (ours, src.len() bytes) and writes only the
    // registered process's missing pages and our 40-byte struct uffdio_copy.
    let r = unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_COPY, c.as_mut_ptr() as usize) }.map(drop);
    let done = c[4] as i64;
    (if done > 0 { done as usize } else { 0 }, r)
}

/// `ioctl(fd, UFFDIO_ZEROPAGE, struct uffdio_zeropage *)`: map zero pages at
/// the missing pages of `[start, start+len)` and wake waiting threads. Returns
/// `(bytes done, result)` as [`ioctl_uffdio_copy`].
pub fn ioctl_uffdio_zeropage(fd: Fd, start: usize, len: usize) -> (usize, Result<()>) {
    let mut z = [start as u64, len as u64, 0u64, 0u64];
    // SAFETY: the kernel reads and writes our 32-byte struct uffdio_zeropage and
    // maps zero pages in the registered process's missing pages only.
    let r = unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_ZEROPAGE, z.as_mut_ptr() as usize) }.map(drop);
    let done = z[3] as i64;
    (if done > 0 { done as usize } else { 0 }, r)
}

/// `ioctl(devfd, USERFAULTFD_IOC_NEW, flags)` on an open `/dev/userfaultfd`
/// (Linux 6.1): a userfaultfd for the calling process, allowed to whoever may
/// open the device, without the capability `userfaultfd(2)` demands for faults
/// taken in the kernel.
pub fn ioctl_userfaultfd_ioc_new(dev: Fd, flags: u32) -> Result<Fd> {
    // _IO(0xAA, 0x00).
    const USERFAULTFD_IOC_NEW: u32 = 0xAA00;
    // SAFETY: creates a descriptor; no memory is passed.
    unsafe { sys!(Sysno::ioctl, dev.0, USERFAULTFD_IOC_NEW, flags) }.map(|f| Fd(f as i32))
}

/// `ioctl(fd, UFFDIO_WRITEPROTECT, struct uffdio_writeprotect *)` with
/// `UFFDIO_WRITEPROTECT_MODE_WP`: write-protect `[start, start+len)` of a range
/// registered with [`REGISTER_MODE_WP`] (with [`FEATURE_WP_ASYNC`], the next write
/// to each page is only recorded).
pub fn ioctl_uffdio_writeprotect(fd: Fd, start: usize, len: usize) -> Result<()> {
    const MODE_WP: u64 = 1;
    let mut w = [start as u64, len as u64, MODE_WP];
    // SAFETY: the kernel reads our 24-byte struct uffdio_writeprotect; it changes
    // page-table bits of the range, never its contents.
    unsafe { sys!(Sysno::ioctl, fd.0, UFFDIO_WRITEPROTECT, w.as_mut_ptr() as usize) }.map(drop)
}
