//! The kernel's vDSO and its data pages ([vvar], [vvar_vclock], [vdso]).
//!
//! They are not saved as data: the running kernel's own pages are moved to the
//! addresses the program knows (glibc keeps pointers into the vDSO, and on i386 the
//! signal return trampoline lives there). `mremap` keeps the kernel's bookkeeping
//! (`mm->context.vdso`) in step. This requires the same layout as when the image
//! was taken; a different one is refused before anything is touched.
//!
//! # Safety
//! `move_to_saved` moves mappings the loader does not use.
#![allow(unsafe_code)]

use ckpt_image::Process;
use ckpt_sys::{c, maps};

use crate::{Name, Plan, die, die_errno, msg};

const NAMES: [&[u8]; 3] = [b"[vvar]", b"[vvar_vclock]", b"[vdso]"];

/// Find this process's special mappings and check they match the saved ones in
/// size and relative position. Returns the current (start, len) of each.
pub fn check(name: &Name, p: &Process) -> [(u64, u64); 3] {
    let mut buf = [0u8; 16 << 10];
    let n = ckpt_sys::read_file(c"/proc/self/maps", &mut buf)
        .unwrap_or_else(|e| die_errno(name, "cannot read /proc/self/maps", e));
    let mut cur = [(0u64, 0u64); 3];
    for e in maps::parse(&buf[..n]) {
        if let Some(i) = NAMES.iter().position(|&s| s == e.name) {
            cur[i] = (e.start, e.len());
        }
    }
    let anchor = |v: &[(u64, u64); 3]| v.iter().find(|x| x.1 != 0).map_or(0, |x| x.0);
    let (sa, ca) = (anchor(&p.vdso), anchor(&cur));
    for i in 0..3 {
        let (saved, here) = (p.vdso[i], cur[i]);
        let moved = saved.1 != 0 && saved.0.wrapping_sub(sa) != here.0.wrapping_sub(ca);
        if saved.1 != here.1 || moved {
            die(msg(name)
                .s("this kernel's vDSO differs from the one the checkpoint was taken on (")
                .b(NAMES[i])
                .s(": saved ")
                .u(saved.1)
                .s(" bytes, here ")
                .u(here.1)
                .s(if moved { ", at another offset" } else { "" })
                .s("); restart it under the same kernel"));
        }
    }
    cur
}

/// Move the special mappings to their saved addresses, through the parking area
/// of the home block so that a current and a saved range that overlap are handled.
pub fn move_to_saved(plan: &Plan, p: &Process) {
    let cur = plan.home.cur_vdso;
    let (park, _) = plan.home.park();
    let lo = cur.iter().filter(|v| v.1 != 0).map(|v| v.0).min().unwrap_or(0);
    let flags = c::MREMAP_MAYMOVE | c::MREMAP_FIXED;
    for (i, &(start, len)) in cur.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let tmp = park + (start - lo) as usize;
        // SAFETY: the source is a kernel special mapping the loader never touches;
        // the destination is the parking area of the home block, reserved for it.
        let r = unsafe { ckpt_sys::mremap(start as usize, len as usize, len as usize, flags, tmp) };
        if let Err(e) = r {
            die(msg(&plan.name).s("cannot move ").b(NAMES[i]).s(": ").errno(e));
        }
    }
    for (i, &(start, len)) in cur.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let tmp = park + (start - lo) as usize;
        let dst = p.vdso[i].0 as usize;
        // SAFETY: the destination was cleared by clear_address_space and is not the
        // home block (placed away from the saved vDSO range).
        let r = unsafe { ckpt_sys::mremap(tmp, len as usize, len as usize, flags, dst) };
        if let Err(e) = r {
            die(msg(&plan.name).s("cannot move ").b(NAMES[i]).s(" to its saved address: ").errno(e));
        }
    }
}
