//! `Scratch`: an mmap-backed byte buffer and `Table<T>`, a fixed-capacity array of
//! plain records in one. The checkpoint path runs inside a signal handler, where
//! malloc is off limits; these give it growable-enough working memory from the
//! kernel directly. Capacity is reserved with MAP_NORESERVE, so only the pages
//! actually written cost memory.

use crate::{Fd, Result, c, mmap, munmap};

/// Anonymous private memory owned by this value and unmapped on drop.
pub struct Scratch {
    addr: usize,
    len: usize,
}

impl Scratch {
    /// Reserve `len` bytes (rounded up to a page) of zeroed memory.
    pub fn new(len: usize) -> Result<Scratch> {
        let len = (len.max(1) + 4095) & !4095;
        let flags = c::MAP_PRIVATE | c::MAP_ANONYMOUS | c::MAP_NORESERVE;
        // SAFETY: no MAP_FIXED: the kernel picks a free range, nothing is replaced.
        let addr = unsafe { mmap(0, len, c::PROT_READ | c::PROT_WRITE, flags, Fd(-1), 0) }?;
        Ok(Scratch { addr, len })
    }

    /// The address range `(start, end)` (for excluding it from a dump).
    pub fn range(&self) -> (u64, u64) {
        (self.addr as u64, (self.addr + self.len) as u64)
    }

    /// The whole buffer.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: [addr, addr+len) is a private RW mapping owned by self and
        // borrowed mutably for the returned lifetime.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }

    /// Read-only view.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as `bytes`, shared borrow.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a scratch buffer has at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; borrows of it ended with the borrow of self.
        let _ = unsafe { munmap(self.addr, self.len) };
    }
}

/// A fixed-capacity array of `Copy` records in a [`Scratch`].
pub struct Table<T: Copy> {
    mem: Scratch,
    len: usize,
    cap: usize,
    _t: core::marker::PhantomData<T>,
}

impl<T: Copy> Table<T> {
    /// Room for `cap` records.
    pub fn with_capacity(cap: usize) -> Result<Self> {
        const { assert!(core::mem::align_of::<T>() <= 4096) };
        let mem = Scratch::new(cap * core::mem::size_of::<T>())?;
        Ok(Table { mem, len: 0, cap, _t: core::marker::PhantomData })
    }

    /// Append; `Err(ENOMEM)` when full.
    pub fn push(&mut self, v: T) -> Result<()> {
        if self.len == self.cap {
            return Err(crate::Errno::ENOMEM);
        }
        // SAFETY: index < cap, the buffer holds cap records and is page-aligned
        // (so aligned for T); T is Copy, so overwriting needs no drop.
        unsafe { (self.mem.addr as *mut T).add(self.len).write(v) };
        self.len += 1;
        Ok(())
    }

    /// The records so far.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first len records were initialised by push.
        unsafe { core::slice::from_raw_parts(self.mem.addr as *const T, self.len) }
    }

    /// Mutable view of the records.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as as_slice, borrowed mutably through self.
        unsafe { core::slice::from_raw_parts_mut(self.mem.addr as *mut T, self.len) }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keep the first `n` records.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// No records yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address range of the backing memory.
    pub fn range(&self) -> (u64, u64) {
        self.mem.range()
    }
}

/// Read a whole file of unknown size (under /proc: maps, environ, cmdline) into a
/// scratch buffer, growing it until the file fits. Returns the buffer and length.
pub fn read_whole(path: &core::ffi::CStr) -> Result<(Scratch, usize)> {
    let mut size = 1 << 16;
    loop {
        let mut buf = Scratch::new(size)?;
        match crate::read_file(path, buf.bytes()) {
            Ok(n) => return Ok((buf, n)),
            Err(crate::Errno::EOVERFLOW) if size < 1 << 28 => size *= 8,
            Err(e) => return Err(e),
        }
    }
}
