//! CPU features an image may depend on. glibc picks string and math routines by
//! CPUID at start-up (ifuncs) and those choices are baked into the saved memory, so
//! the loader refuses to restart on a CPU that lacks a feature the image saw.

#[cfg(target_arch = "x86")]
use core::arch::x86::{__cpuid_count, CpuidResult};
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{__cpuid_count, CpuidResult};

/// The feature words recorded in an image: leaf 1 ECX, EDX; leaf 7 EBX, ECX, EDX;
/// leaf 0x8000_0001 ECX, EDX.
pub fn features() -> [u64; 7] {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86_64 CPU and every i686 CPU Rust targets.
    let q = |leaf, sub| unsafe { __cpuid_count(leaf, sub) };
    let max = q(0, 0).eax;
    let max_ext = q(0x8000_0000, 0).eax;
    let l1 = q(1, 0);
    let zero = CpuidResult { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    let l7 = if max >= 7 { q(7, 0) } else { zero };
    let e1 = if max_ext >= 0x8000_0001 { q(0x8000_0001, 0) } else { zero };
    // Leaf 1 EBX/ECX bits that describe the moment, not the CPU (APIC id, OSXSAVE
    // follows XCR0 which is compared on its own) are not features; mask ECX bit 27.
    [
        (l1.ecx & !(1 << 27)) as u64,
        l1.edx as u64,
        l7.ebx as u64,
        l7.ecx as u64,
        l7.edx as u64,
        e1.ecx as u64,
        e1.edx as u64,
    ]
}

/// XCR0 (the state components the OS enabled for XSAVE), or 0 without OSXSAVE.
pub fn xcr0() -> u64 {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is always available (see `features`).
    let osxsave = unsafe { __cpuid_count(1, 0) }.ecx & (1 << 27) != 0;
    if !osxsave {
        return 0;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV with ECX=0 is valid whenever CR4.OSXSAVE is set, checked above;
    // it only writes EAX and EDX.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Names of the first missing feature for messages: (word index, bit).
pub fn first_missing(saved: &[u64; 7], have: &[u64; 7]) -> Option<(usize, u32)> {
    for i in 0..7 {
        let missing = saved[i] & !have[i];
        if missing != 0 {
            return Some((i, missing.trailing_zeros()));
        }
    }
    None
}
