//! The initial stack the kernel hands a new program (execve(2)): `argc`, the
//! `argv` pointers and a NULL, the `envp` pointers and a NULL, then the auxiliary
//! vector's (type, value) pairs up to `AT_NULL`, every slot one machine word. The
//! same on x86_64 and i386 but for the word size, so both `arch` files include
//! this one.
//!
//! # Safety
//! `sp` must be the stack pointer `_start` found: the kernel wrote everything read
//! here, and the stack outlives every use (phase one copies what it keeps).
#![allow(unsafe_code)]

const W: usize = core::mem::size_of::<usize>();

/// argv[0] from the initial stack, or an empty slice.
pub fn argv0(sp: usize) -> &'static [u8] {
    // SAFETY: see the module comment; argv[0] is a NUL-terminated string on the
    // same stack, or NULL when argc is 0.
    unsafe {
        let argc = *(sp as *const usize);
        let p = *((sp + W) as *const *const u8);
        if argc == 0 || p.is_null() {
            return &[];
        }
        let mut n = 0;
        while *p.add(n) != 0 && n < 4096 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

/// The value of auxiliary vector entry `key` (`AT_*`), if the kernel put one there.
pub fn auxv(sp: usize, key: u64) -> Option<u64> {
    // SAFETY: see the module comment; envp starts after argc, argc pointers and
    // argv's NULL, and ends at its own NULL.
    unsafe {
        let argc = *(sp as *const usize);
        let mut p = (sp + W * (argc + 2)) as *const usize;
        while *p != 0 {
            p = p.add(1);
        }
        p = p.add(1);
        loop {
            let (k, v) = (*p as u64, *p.add(1) as u64);
            if k == 0 {
                return None;
            }
            if k == key {
                return Some(v);
            }
            p = p.add(2);
        }
    }
}

/// Argument `i` (0 is argv[0]) from the initial stack, if there is one.
pub fn arg(sp: usize, i: usize) -> Option<&'static [u8]> {
    // SAFETY: see the module comment; argv[i] for i < argc is a NUL-terminated
    // string on the same stack.
    unsafe {
        let argc = *(sp as *const usize);
        if i >= argc {
            return None;
        }
        Some(cstr_at(*((sp + W * (1 + i)) as *const *const u8)))
    }
}

/// The value of environment variable `key` (`KEY=value`) from the initial stack.
pub fn env(sp: usize, key: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: see the module comment; envp starts after argc, argc pointers and
    // argv's NULL, and ends at its own NULL; each entry is a NUL-terminated string.
    unsafe {
        let argc = *(sp as *const usize);
        let mut p = (sp + W * (argc + 2)) as *const *const u8;
        while !(*p).is_null() {
            let s = cstr_at(*p);
            if s.len() > key.len() && s.starts_with(key) && s[key.len()] == b'=' {
                return Some(&s[key.len() + 1..]);
            }
            p = p.add(1);
        }
        None
    }
}

/// The bytes of the NUL-terminated string at `p` (at most 64 KiB).
///
/// # Safety
/// `p` must point to a NUL-terminated string that lives as long as the stack.
unsafe fn cstr_at(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: per the contract, every byte up to the NUL is readable.
    unsafe {
        while *p.add(n) != 0 && n < 65536 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}
