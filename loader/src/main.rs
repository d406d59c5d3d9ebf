//! The restart loader: the executable head of every checkpoint file.
//!
//! `./prog.ckpt` starts here, as a static PIE with no libc, at wherever the kernel
//! placed it. It works in two phases:
//!
//! 1. **Check** (on the kernel's stack, at the kernel's address). Open our own file,
//!    read the image header and metadata that follow the loader, and validate all of
//!    it (checksums, every region and run, the CPU, the vDSO layout) *before* the
//!    address space is touched: a damaged or foreign file is refused with a message
//!    and exit status 1, and nothing else happens. Then copy the loader, its stack
//!    and the metadata into a "home" block placed where no saved region will go,
//!    and continue there.
//!    The descriptor table comes back here too (see `files`): it does not depend
//!    on memory, and a restart refused for a changed file must change nothing.
//! 2. **Restore** (on the home stack, in the copy). Unmap everything else, move the
//!    kernel's vDSO/vvar pages to their saved addresses, map every saved region and
//!    fill it with a few large reads, set the thread pointer and jump back to the
//!    program's save point. From the first unmap on there is no way back: an error
//!    is reported and the process exits with status 1.
//!
//! All signals stay blocked throughout; the restarted runtime restores the saved
//! mask, signal handlers and the rest of the kernel state from its own memory and
//! then unmaps the home block.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod arch;
mod chain;
mod files;
mod ids;
mod lazy;
mod remap;
mod tree;
mod vdso;

use ckpt_image::{HEADER_LEN, Header, ImageError, Meta, PAGE_SIZE};
use ckpt_sys::{Errno, Fd, c, msg::Msg};

/// How the loader names itself in messages.
const PREFIX: &str = "ckpt restart: ";

/// Exit status of a refused or failed restart.
const EXIT_FAILED: i32 = 1;

/// The file name the user ran (argv[0]), kept in the home block for messages.
#[derive(Clone, Copy)]
pub struct Name {
    buf: [u8; 256],
    len: usize,
}

impl Name {
    fn new(s: &[u8]) -> Name {
        let mut n = Name { buf: [0; 256], len: s.len().min(256) };
        n.buf[..n.len].copy_from_slice(&s[..n.len]);
        n
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Start a message: `ckpt restart: NAME: `.
pub fn msg(name: &Name) -> Msg {
    Msg::new().s(PREFIX).b(name.as_bytes()).s(": ")
}

/// Report and exit.
pub fn die(m: Msg) -> ! {
    m.emit();
    ckpt_sys::exit_group(EXIT_FAILED)
}

/// Report a failed step with its errno and exit.
pub fn die_errno(name: &Name, what: &str, e: Errno) -> ! {
    die(msg(name).s(what).s(": ").errno(e))
}

pub fn die_image(name: &Name, e: ImageError) -> ! {
    let m = msg(name).s(e.what());
    let m = match e {
        ImageError::Truncated { need, have } => m.s(" (need ").u(need).s(" bytes, have ").u(have).s(")"),
        ImageError::BadVersion { found } => m
            .s(" (file has version ")
            .u(found as u64)
            .s(", this loader reads ")
            .u(ckpt_image::MIN_VERSION as u64)
            .s(" to ")
            .u(ckpt_image::VERSION as u64)
            .s(")"),
        ImageError::WrongArch { found } => m.s(" (e_machine ").u(found as u64).s(")"),
        ImageError::BadRegion { index } | ImageError::BadRun { index } => m.s(" (entry ").u(index as u64).s(")"),
        ImageError::BadSection { tag } => m.s(" (tag ").u(tag as u64).s(", ").s(ckpt_image::section::name(tag)).s(")"),
        ImageError::NewerSection { tag, version } => m
            .s(" (tag ")
            .u(tag as u64)
            .s(", ")
            .s(ckpt_image::section::name(tag))
            .s(", version ")
            .u(version as u64)
            .s("; this loader reads up to ")
            .u(ckpt_image::section::newest_version(tag) as u64)
            .s(")"),
        _ => m,
    };
    die(m)
}

/// Everything phase two needs, written into the home block by phase one.
#[derive(Clone, Copy)]
pub struct Plan {
    /// The checkpoint file, open for reading.
    pub fd: Fd,
    /// Where this process's image starts in the file: 0, or a member image of a
    /// tree (whose offsets are relative to its own first byte).
    pub base: u64,
    /// What the tree's processes share (shared memory objects, mapped by
    /// `remap`); `Pipes::NONE` for a single process.
    pub tree: tree::Pipes,
    /// The validated header.
    pub header: Header,
    /// The home block: loader copy, stack, metadata copy, buffers.
    pub home: remap::Home,
    /// For messages.
    pub name: Name,
    /// CLOCK_MONOTONIC at the loader's start, ns.
    pub started_ns: u64,
    /// A lazy restart's userfaultfd and mode (`lazy`).
    pub lazy: lazy::Setup,
    /// An incremental image's parents (`chain`).
    pub chain: chain::Chain,
    /// One process of a tree (the root or a member).
    pub in_tree: bool,
    /// Check the page data as it is read (`remap::page_checks`); off only when
    /// asked (`--no-page-check`).
    pub page_check: bool,
}

/// Phase one: called by `_start` (through `arch::loader_main`) with the initial
/// stack pointer.
pub fn main(sp: usize) -> ! {
    let started_ns =
        ckpt_sys::clock_gettime(c::CLOCK_MONOTONIC).map_or(0, |(s, ns)| s as u64 * 1_000_000_000 + ns as u64);
    let name = Name::new(arch::argv0(sp));
    ckpt_sys::trace::enable_from_environ();

    // A checkpoint never gains privileges by being run: were the file made
    // set-user-ID or set-group-ID (or given file capabilities), the restored
    // program would run with rights its owner never had when it was saved.
    // AT_SECURE is how the kernel says so (getauxval(3)).
    const AT_SECURE: u64 = 23;
    if arch::auxv(sp, AT_SECURE).unwrap_or(0) != 0 {
        die(msg(&name).s("refusing to restart with privileges the checkpointed program did not have \
            (the file is set-user-ID or set-group-ID, or has file capabilities)"));
    }

    // Nothing may interrupt the restore: the program's handlers are not installed
    // yet. The runtime restores the saved mask as its last step.
    let all: u64 = !0;
    let _ = ckpt_sys::rt_sigprocmask(c::SIG_SETMASK, Some(&all), None);

    let fd = ckpt_sys::openat(Fd::CWD, c"/proc/self/exe", c::O_RDONLY | c::O_CLOEXEC, 0)
        .unwrap_or_else(|e| die_errno(&name, "cannot open /proc/self/exe", e));
    let file_len = ckpt_sys::fstat(fd).unwrap_or_else(|e| die_errno(&name, "cannot stat the checkpoint file", e)).size;
    trace("checking the image");

    let (header, mut tmp) = load(&name, fd, 0, file_len);
    let meta_bytes: &[u8] = &tmp.bytes()[..header.meta_len as usize];
    let meta = Meta::parse(&header, meta_bytes).unwrap_or_else(|e| die_image(&name, e));
    trace("header and metadata valid");
    let tree = meta.tree();
    let in_tree = tree.is_some();
    if tree.is_some() {
        let end = ckpt_image::tree::end(&meta);
        if file_len < end {
            die_image(&name, ImageError::Truncated { need: end, have: file_len });
        }
    }

    // A multi-threaded image, or a tree, restarts with its pids and tids, in a
    // pid namespace of its own: from here on this is the program's process (see
    // `ids`); a tree's root then forks the other processes (see `tree`), and each
    // goes on with its own image.
    let mut started_ns = started_ns;
    if meta.threads().is_some() || tree.is_some() {
        let clocks = meta
            .sections
            .get(ckpt_image::section::tag::PROCESS)
            .and_then(|s| ckpt_image::process::ProcessState::parse(s.data).ok())
            .and_then(|p| p.clocks);
        // The program's clocks go on from the checkpoint's: so does the
        // loader's start, for CKPT_TIMING.
        started_ns = started_ns.wrapping_add(ids::enter(&name, meta.process.pid as i32, clocks) as u64);
    }
    // The pipes between the tree's processes, before the forks: each inherits them.
    let mut pipes = tree.as_ref().map_or(tree::Pipes::NONE, |t| tree::make_pipes(&name, fd, &meta, t));
    let me = tree.as_ref().map_or(0, |t| tree::spawn(&name, t));
    pipes.me = me;
    let mut member_tmp;
    let (base, header, meta_bytes, meta) = match tree.and_then(|t| t.at(me)).filter(|_| me != 0) {
        None => (0, header, meta_bytes, meta),
        Some(m) => {
            let (start, end) = ckpt_image::tree::range(header.file_len, &m);
            let (h, t) = load(&name, fd, start, end - start);
            member_tmp = t;
            let mb: &[u8] = &member_tmp.bytes()[..h.meta_len as usize];
            let mm = Meta::parse(&h, mb).unwrap_or_else(|e| die_image(&name, e));
            if mm.process.pid != m.pid as u64 || mm.tree().is_some() {
                die_image(&name, ImageError::BadSection { tag: ckpt_image::section::tag::TREE });
            }
            (start, h, mb, mm)
        }
    };

    check_cpu(&name, &meta);
    remap::check_restart_info(&name, &meta);
    remap::check_kernel_support(&name, &meta);
    let cur_vdso = vdso::check(&name, &meta.process);
    trace("CPU features, restart slot and vDSO layout match");

    // An incremental image's parents: all there and the right ones, or nothing
    // is done.
    let mut chain = chain::check(&name, &meta);
    if chain.n > 0 {
        trace("every parent image found and checked");
    }

    // The descriptors, before the point of no return (a restart refused because a
    // file changed leaves nothing done); the image's descriptor moves above them.
    let fd = match files::section(&meta) {
        Some(f) => files::restore(&name, &f, files::Opts::from_stack(sp), fd, &pipes, &meta),
        None => {
            pipes.close_taken();
            fd
        }
    };
    trace("descriptors restored");
    chain::reopen(&name, &mut chain);

    // After `ids::enter`: the userfaultfd belongs to the process that opens it.
    let lazy = lazy::open(&name, lazy::mode(&name, sp), &meta, in_tree);
    let home = remap::Home::place(&name, &meta, cur_vdso, chain.area);
    let page_check = remap::page_checks(&name, sp);
    let plan = Plan { fd, base, tree: pipes, header, home, name, started_ns, lazy, chain, in_tree, page_check };
    trace("moving to the home block");
    // SAFETY-free handoff: `enter` copies the loader, the metadata and the plan into
    // the home block and switches to it; phase two starts from that copy.
    remap::enter(&plan, meta_bytes, phase_two as *const () as usize)
}

/// Phase two, running in the home block on its own stack.
pub extern "C" fn phase_two(plan: usize) -> ! {
    let plan: Plan = remap::plan_at(plan);
    let name = plan.name;
    let meta_bytes = plan.home.meta();
    // Already validated in phase one; parsing again only rebuilds the view.
    let meta = Meta::parse(&plan.header, meta_bytes).unwrap_or_else(|e| die_image(&name, e));

    trace("in the home block; clearing the address space (no way back from here)");
    remap::clear_address_space(&plan);
    trace("address space cleared");
    // The pager forks now, while the address space is only the home block.
    let mut lazy = plan.lazy;
    lazy::start(&mut lazy, &plan, &meta);
    vdso::move_to_saved(&plan, &meta.process);
    trace("vDSO moved to its saved address");
    remap::exact_protections(&name);
    let mut metas = [None; ckpt_image::parent::MAX_DEPTH as usize];
    let buf = chain::load(&plan, plan.home.chain_area(), &mut metas);
    let mut fill =
        chain::Fill { plan: &plan, metas: &metas, buf, held: [None; ckpt_image::parent::MAX_DEPTH as usize] };
    // The pages' checks run beside the reads, on the other CPU, where they can.
    let checker = remap::start_checker(&plan, &meta, &lazy);
    remap::restore_regions(&plan, &meta, &mut lazy, &mut fill, checker.is_some() || !plan.page_check);
    chain::close(&plan.chain);
    trace("memory regions mapped and read");
    remap::finish_checker(&plan, checker);
    let status = if lazy.count > 0 { plan.home.status() as u64 } else { 0 };
    // The pager goes before the restart slot is written: the slot may lie in a
    // lazy region (the runtime's statics in a static program's .bss).
    lazy::go(&lazy, &plan);
    remap::store_restart_info(&plan, &meta, status);
    remap::start_threads(&plan, &meta);
    let _ = ckpt_sys::close(plan.fd);
    trace("jumping to the program's save point");

    // SAFETY-relevant step lives in arch: set the thread pointer, jump.
    let e = remap::jump(&meta.process);
    die_errno(&name, "cannot set the thread pointer", e)
}

/// One restore step, on stderr when `CKPT_DEBUG=1` (`ckpt_sys::trace`).
fn trace(step: &str) {
    ckpt_sys::trace::step(PREFIX, step);
}

/// The header and metadata of the image at `base` (`len` bytes: the whole file,
/// or a tree member's image), read and checked; the metadata in a buffer of its
/// own (the home block's place depends on it).
pub fn load(name: &Name, fd: Fd, base: u64, len: u64) -> (Header, ckpt_sys::scratch::Scratch) {
    let image_offset = ckpt_image::loader::image_offset(arch::file_len());
    let header_end = image_offset + HEADER_LEN as u64;
    if len < header_end {
        die_image(name, ImageError::Truncated { need: header_end, have: len });
    }
    let mut hb = [0u8; HEADER_LEN];
    read_exact(name, fd, &mut hb, base + image_offset);
    let header = Header::parse(&hb, len, arch::ARCH).unwrap_or_else(|e| die_image(name, e));
    if header.image_offset != image_offset {
        die_image(name, ImageError::BadLayout);
    }
    let mut tmp = ckpt_sys::scratch::Scratch::new(header.meta_len as usize)
        .unwrap_or_else(|e| die_errno(name, "cannot allocate memory for the metadata", e));
    read_exact(name, fd, &mut tmp.bytes()[..header.meta_len as usize], base + header.meta_offset);
    (header, tmp)
}

pub fn read_exact(name: &Name, fd: Fd, buf: &mut [u8], off: u64) {
    let mut done = 0;
    while done < buf.len() {
        match ckpt_sys::pread(fd, &mut buf[done..], off + done as u64) {
            Ok(0) => die_image(name, ImageError::Truncated { need: off + buf.len() as u64, have: off + done as u64 }),
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => die_errno(name, "cannot read the checkpoint file", e),
        }
    }
}

/// Refuse to restart on a CPU that lacks something the image's code may use.
fn check_cpu(name: &Name, meta: &Meta) {
    let p = &meta.process;
    let have = ckpt_sys::cpu::features();
    if let Some((word, bit)) = ckpt_sys::cpu::first_missing(&p.cpu_features, &have) {
        const WORDS: [&str; 7] = [
            "CPUID.1:ECX",
            "CPUID.1:EDX",
            "CPUID.7:EBX",
            "CPUID.7:ECX",
            "CPUID.7:EDX",
            "CPUID.80000001:ECX",
            "CPUID.80000001:EDX",
        ];
        die(msg(name)
            .s("this CPU lacks a feature the checkpointed program may use (")
            .s(WORDS[word])
            .s(" bit ")
            .u(bit as u64)
            .s("); restart it on a machine with the same or a newer CPU"));
    }
    let xcr0 = ckpt_sys::cpu::xcr0();
    if p.xcr0 & !xcr0 != 0 {
        die(msg(name)
            .s("this CPU/kernel does not enable register state the image uses (XCR0 saved ")
            .x(p.xcr0)
            .s(", here ")
            .x(xcr0)
            .s(")"));
    }
}

const _: () = assert!(PAGE_SIZE == 4096);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    Msg::new().s(PREFIX).s("internal error (loader panic)").emit();
    ckpt_sys::exit_group(127)
}
