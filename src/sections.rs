//! How `ckpt info` shows each kind of image section (`ckpt_image::section`). The
//! image crate decodes and validates them; this file only words them for people.
//! Each kind of state adds an arm to [`describe`] that lists its records, one line
//! each, saying how each will come back at restart.

use ckpt_image::files::{FileRec, Files, fkind, how, sock, why};
use ckpt_image::memory;
use ckpt_image::section::{self, Section, tag};

/// What the image holds beyond one section, for wording its records.
#[derive(Default)]
pub struct Context {
    /// The pipes of a tree's image (`ckpt --tree`): each pipe's inode and the
    /// (pid, descriptor) of every process of the tree that holds one of its
    /// ends. Empty for an image of one process.
    pub tree_pipes: std::collections::BTreeMap<u64, Vec<(u64, u32)>>,
    /// The image's MAP_SHARED regions: (name, start, file offset, length).
    pub shared_maps: Vec<(Vec<u8>, u64, u64, u64)>,
    /// The UNIX sockets of a tree's image that are ends of socket pairs
    /// (states 3 and 4): each socket's inode and the (pid, descriptor) of every
    /// process that holds it. Empty for an image of one process.
    pub tree_sockets: std::collections::BTreeMap<u64, Vec<(u64, u32)>>,
}

/// Human lines for one section (indented by the caller), after its title line.
pub fn describe(s: &Section, ctx: &Context) -> Vec<String> {
    match s.tag {
        section::tag::THREADS => match ckpt_image::threads::parse(s.data) {
            Ok(t) => {
                let mut v = vec![format!(
                    "{} threads; the restart gives each its tid back inside a new user and pid namespace",
                    t.len()
                )];
                v.extend(t.iter().map(|th| {
                    format!(
                        "tid {:<7} {:<16} sp {:#x} ip {:#x}{}",
                        th.tid,
                        format!("{:?}", String::from_utf8_lossy(th.name())),
                        th.regs[0],
                        th.regs[1],
                        if th.flags & ckpt_image::threads::COORDINATOR != 0 {
                            "  (took the checkpoint; runs the hooks)"
                        } else {
                            ""
                        }
                    )
                }));
                v
            }
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::PARENT => match ckpt_image::parent::Parent::parse(s.data) {
            Ok(p) => vec![
                format!(
                    "parent {} (image {} of the chain, {} images above this one), known by its header: meta_hash {:016x}, data_hash {:016x}, {} bytes",
                    String::from_utf8_lossy(p.name),
                    p.head.seq,
                    p.head.depth,
                    p.head.meta_hash,
                    p.head.data_hash,
                    p.head.file_len
                ),
                format!(
                    "{} inherited ranges, {} bytes: read from the parents at restart (a missing, damaged or different parent is refused); every other page is in this file or zero",
                    p.inherited.len(),
                    p.inherited_len()
                ),
            ],
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::GUARDS => match memory::guards(s) {
            Ok(t) => t
                .iter()
                .map(|g| {
                    format!(
                        "{:x}-{:x} ({} pages): guard pages, installed again at restart (MADV_GUARD_INSTALL)",
                        g.start,
                        g.end,
                        (g.end - g.start) / ckpt_image::PAGE_SIZE
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        },
        section::tag::SHARED => match memory::views(s) {
            Ok(t) => t
                .iter()
                .map(|v| {
                    format!(
                        "shared object {} (device {}:{}, inode {}): region #{} at offset {:#x}; its views map one memfd again at restart",
                        v.object,
                        v.dev >> 32,
                        v.dev & 0xffff_ffff,
                        v.inode,
                        v.region,
                        v.offset
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        },
        section::tag::TREE => match ckpt_image::tree::members(s) {
            Ok(t) => {
                let mut v = vec![format!(
                    "{} processes; the restart makes each again with its pid, parent, process group and \
                     session inside a new user and pid namespace (see processes below)",
                    t.len()
                )];
                for group in tree_shared(s) {
                    let who: Vec<String> = group.iter().map(|(pid, fd)| format!("pid {pid} fd {fd}")).collect();
                    v.push(format!(
                        "one open file description (one offset) shared by {}: opened once before the processes \
                         are made, so they share it again",
                        who.join(", ")
                    ));
                }
                v
            }
            Err(e) => vec![format!("damaged: {e}")],
        },
        t if section::name(t) == "unknown" => {
            vec!["(a kind of state this ckpt does not know; the image's own loader restores it)".to_string()]
        }
        tag::FILES => match Files::parse(s.data) {
            Ok(f) => files(&f, ctx),
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::PROCESS => match ckpt_image::process::ProcessState::parse(s.data) {
            Ok(p) => process_lines(&p),
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::COMPRESSION => match ckpt_image::compress::Compression::parse(s.data) {
            Ok(c) => {
                let z = compression_counts(&c);
                vec![format!(
                    "{}: {} of page data stored in {} ({:.2}x); {} pieces compressed, {} stored plain \
                     (no gain, or program and library text mapped from the image at restart)",
                    ckpt_image::compress::codec::name(c.head.codec),
                    crate::inspect::size(z.plain),
                    crate::inspect::size(z.stored),
                    z.ratio(),
                    z.packed,
                    z.plain_pieces,
                )]
            }
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::DATA_HASHES => match ckpt_image::hashes::DataHashes::parse(s) {
            Ok(h) => vec![format!(
                "{} pieces of {} KiB, each checked by the loader as it reads (or maps) it ({})",
                h.hashes.len(),
                h.piece >> 10,
                h.algo.name()
            )],
            Err(e) => vec![format!("damaged: {e}")],
        },
        _ => Vec::new(),
    }
}

/// The FILES section for `ckpt info --json`: (descriptors, shared file mappings).
pub fn json(s: &Section, ctx: &Context) -> Option<(serde_json::Value, serde_json::Value)> {
    if s.tag != tag::FILES {
        return None;
    }
    let f = Files::parse(s.data).ok()?;
    let fds: Vec<serde_json::Value> = f
        .files()
        .map(|r| {
            serde_json::json!({
                "fd": r.fd,
                "kind": kind(r.kind),
                "path": String::from_utf8_lossy(f.path(&r)),
                "flags": access(r.flags),
                "offset": r.pos,
                "cloexec": r.cloexec != 0,
                "restart": restart(&f, &r, ctx),
            })
        })
        .collect();
    let maps: Vec<serde_json::Value> = f
        .maps()
        .map(|m| {
            serde_json::json!({
                "start": m.start,
                "end": m.end,
                "offset": m.offset,
                "path": String::from_utf8_lossy(f.map_path(&m)),
            })
        })
        .collect();
    Some((fds.into(), maps.into()))
}

fn kind(k: u32) -> &'static str {
    match k {
        fkind::REG => "file",
        fkind::DIR => "directory",
        fkind::CHR => "device",
        fkind::TTY => "terminal",
        fkind::PIPE => "pipe",
        fkind::FIFO => "fifo",
        fkind::SOCKET => "socket",
        fkind::DELETED => "deleted file",
        fkind::ANON => "anon inode",
        fkind::EVENTFD => "eventfd",
        fkind::TIMERFD => "timerfd",
        fkind::SIGNALFD => "signalfd",
        fkind::EPOLL => "epoll",
        fkind::INOTIFY => "inotify",
        _ => "special",
    }
}

fn access(flags: u32) -> String {
    const O_APPEND: u32 = 0o2000;
    const O_PATH: u32 = 0o10000000;
    let mut a = String::from(match flags & 3 {
        0 => "r",
        1 => "w",
        _ => "rw",
    });
    if flags & O_APPEND != 0 {
        a.push_str(",append");
    }
    if flags & O_PATH != 0 {
        a = "path".to_string();
    }
    a
}

/// The TREE section's shared open file descriptions: for each, the (pid,
/// descriptor) of every process that holds it.
fn tree_shared(s: &Section) -> Vec<Vec<(u32, u32)>> {
    let (Ok(t), Ok(sh)) = (ckpt_image::tree::members(s), ckpt_image::tree::shared(s)) else { return Vec::new() };
    let mut groups = std::collections::BTreeMap::<u32, Vec<(u32, u32)>>::new();
    for d in sh.iter() {
        let pid = t.at(d.member as usize).map_or(0, |m| m.pid);
        groups.entry(d.group).or_default().push((pid, d.fd));
    }
    groups.into_values().collect()
}

/// For an end of a socket pair that the restart of a tree makes once for
/// several processes (as `loader/src/tree.rs` decides: a peer recorded outside
/// the process, or an end more than one process holds), who holds the other end.
fn tree_pair(f: &Files, r: &FileRec, ctx: &Context) -> Option<String> {
    let peer = match f.word(r, sock::STATE) {
        sock::PAIR => f.file(f.word(r, sock::OTHER) as usize)?.ino,
        _ => f.word(r, sock::OTHER),
    };
    let (mine, theirs) = (ctx.tree_sockets.get(&r.ino)?, ctx.tree_sockets.get(&peer)?);
    if f.word(r, sock::STATE) == sock::PAIR && mine.len() < 2 && theirs.len() < 2 {
        return None;
    }
    Some(theirs.iter().map(|(pid, fd)| format!("pid {pid} fd {fd}")).collect::<Vec<_>>().join(", "))
}

/// How record `r` comes back, in words.
fn restart(f: &Files, r: &FileRec, ctx: &Context) -> String {
    let others = ctx.tree_pipes.get(&r.ino).filter(|h| h.len() > 1);
    match r.how {
        // (the loader joins the ends the tree's processes hold: `loader/src/tree.rs`)
        how::PIPE if r.kind == fkind::PIPE && others.is_some() => format!(
            "a pipe of the tree, made again before the processes are and held again by {}, with its queued bytes",
            others.map_or(String::new(), |h| h
                .iter()
                .map(|(pid, fd)| format!("pid {pid} fd {fd}"))
                .collect::<Vec<_>>()
                .join(", "))
        ),
        how::REOPEN if r.kind == fkind::TTY => "reopened as the restarting terminal (/dev/tty)".to_string(),
        how::REOPEN if r.why == why::GENERATED => format!(
            "NOT THE SAME TEXT: a file the kernel writes as it is read, read partway: reopened at offset {}, where \
             the text is the restarted process's and need not continue what was read",
            r.pos
        ),
        how::REOPEN if matches!(r.kind, fkind::REG | fkind::DIR) => format!(
            "reopened by path at offset {}{} (a warning if it is gone, replaced or shorter; --refuse-changed refuses)",
            r.pos,
            match r.data_len / 24 {
                0 => String::new(),
                n => format!(", its {n} lock(s) taken again"),
            }
        ),
        how::REOPEN => "reopened by path".to_string(),
        how::SHELL if r.kind == fkind::TTY && r.data_len > 0 => format!(
            "the restarting shell's descriptor {} (its terminal gets the saved settings{})",
            r.fd,
            if f.content(r).get(48) == Some(&1) { "; the program is its foreground again" } else { "" }
        ),
        how::SHELL => format!("the restarting shell's descriptor {}", r.fd),
        how::CONTENT => {
            let mut t = format!("a new unlinked file with the {} saved bytes, at offset {}", r.data_len, r.pos);
            for (_, at, off, len) in ctx.shared_maps.iter().filter(|(n, ..)| n.as_slice() == f.path(r)) {
                if ckpt_image::files::maps_content(r, *off, *len) {
                    t += &format!("; also mapped shared at {at:#x}, mapped from it again (they share its pages)");
                } else {
                    t += &format!(
                        "; ALSO MAPPED shared at {at:#x}, beyond the saved content: the descriptor and the mapping \
                         come back as separate copies (a write through one no longer shows in the other)"
                    );
                }
            }
            t
        }
        how::PIPE if r.kind == fkind::FIFO => {
            format!("the FIFO opened by path again (without blocking), {} queued bytes back in it", r.data_len)
        }
        how::PIPE if r.share != ckpt_image::files::NO_SHARE => {
            format!("the other end of the pipe of fd {}", f.file(r.share as usize).map_or(0, |s| s.fd))
        }
        how::PIPE if r.why == why::OUTSIDE => {
            "a new pipe whose other end (outside the process) is closed: reads see EOF, writes EPIPE".to_string()
        }
        how::PIPE => format!("a new pipe with both ends, {} queued bytes back in it", r.data_len),
        how::NEW => match r.kind {
            fkind::EVENTFD => format!("a new eventfd with counter {}", f.word(r, 0)),
            fkind::TIMERFD => format!(
                "a new timerfd (clock {}), {}.{:09} s left, interval {}.{:09} s, {} expirations unread",
                f.word(r, 0),
                f.word(r, 4),
                f.word(r, 5),
                f.word(r, 2),
                f.word(r, 3),
                f.word(r, 1)
            ),
            fkind::SIGNALFD => format!("a new signalfd for mask {:#x}", f.word(r, 0)),
            fkind::SOCKET => match f.word(r, sock::STATE) {
                sock::LISTENING => "a new socket listening on the same address, with its options (connections \
                                    from outside the image waiting in its queue are lost)"
                    .to_string(),
                sock::CONNECTION => format!(
                    "one end of a new TCP connection to fd {} (made between the same addresses where they are \
                     free), {} queued bytes back in it",
                    f.file(f.word(r, sock::OTHER) as usize).map_or(0, |p| p.fd),
                    r.data_len.saturating_sub(ckpt_image::files::SOCKET_DATA_LEN)
                ),
                sock::QUEUED if f.word(r, sock::LOST) > 0 => format!(
                    "a new connection to the listening socket fd {}, waiting to be accepted as it was; the {} bytes \
                     it had sent are LOST",
                    f.file(f.word(r, sock::OTHER) as usize).map_or(0, |p| p.fd),
                    f.word(r, sock::LOST)
                ),
                sock::QUEUED => format!(
                    "a new connection to the listening socket fd {}, waiting to be accepted as it was",
                    f.file(f.word(r, sock::OTHER) as usize).map_or(0, |p| p.fd)
                ),
                sock::PAIR | sock::TREE_PEER if tree_pair(f, r, ctx).is_some() => format!(
                    "one end of a socket pair of the tree, made again before the processes are; its other end is \
                     held by {}; {} queued bytes back in it",
                    tree_pair(f, r, ctx).unwrap_or_default(),
                    r.data_len.saturating_sub(ckpt_image::files::SOCKET_DATA_LEN)
                ),
                sock::PAIR => format!(
                    "one end of a new socket pair connected to fd {}, {} queued bytes back in it",
                    f.file(f.word(r, 10) as usize).map_or(0, |p| p.fd),
                    r.data_len.saturating_sub(ckpt_image::files::SOCKET_DATA_LEN)
                ),
                sock::TREE_PEER => format!(
                    "NOT RESTORED: its peer (socket:[{}]) is in no process of the tree: a socket that fails like a \
                     dropped connection (EOF, EPIPE)",
                    f.word(r, 10)
                ),
                sock::DROPPED => "NOT RESTORED: its peer is not in the image: a socket that fails like a dropped \
                                  connection \
                      (EOF, EPIPE)"
                    .to_string(),
                _ => "a new socket bound (and, for datagrams, connected) to the same addresses, with its options"
                    .to_string(),
            },
            fkind::INOTIFY => inotify(f, r),
            _ => format!("a new epoll instance watching {} descriptors again", r.data_len / 24),
        },
        how::DUP => {
            format!("shares one open file description with fd {}", f.file(r.share as usize).map_or(0, |s| s.fd))
        }
        _ => format!(
            "NOT RESTORED: a placeholder that fails every operation (EBADF): {}",
            match r.why {
                why::TOO_BIG => "deleted file over the 32 MiB the image keeps",
                why::UNREADABLE => "deleted file that could not be read",
                _ => "this kind of descriptor is not restored yet",
            }
        ),
    }
}

/// How an inotify instance comes back: its watches by path, and what not.
fn inotify(f: &Files, r: &FileRec) -> String {
    let ws: Vec<_> = f.watches(r).collect();
    let lost: Vec<String> =
        ws.iter().filter(|w| w.path_len == 0).map(|w| format!("{} (inode {})", w.wd, w.ino)).collect();
    let mut s = format!(
        "a new inotify instance watching {} path(s) again with the same watch numbers: {}",
        ws.len() - lost.len(),
        ws.iter()
            .filter(|w| w.path_len > 0)
            .map(|w| format!("{}={}", w.wd, String::from_utf8_lossy(f.watch_path(w))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !lost.is_empty() {
        s += &format!("; NOT WATCHED (path not found at checkpoint time): watch {}", lost.join(", "));
    }
    if f.word(r, 0) > 0 {
        s += &format!("; {} bytes of queued events LOST", f.word(r, 0));
    }
    s
}

fn files(f: &Files, ctx: &Context) -> Vec<String> {
    let mut v = Vec::new();
    if f.nfiles() == 0 {
        v.push("no open descriptors (every descriptor of the restarting shell is closed)".to_string());
    }
    for r in f.files() {
        let ce = if r.cloexec != 0 { " cloexec" } else { "" };
        v.push(format!(
            "fd {:<4} {:<12} {:<9} {}{}: {}",
            r.fd,
            kind(r.kind),
            access(r.flags),
            String::from_utf8_lossy(f.path(&r)),
            ce,
            restart(f, &r, ctx)
        ));
    }
    for m in f.maps() {
        v.push(format!(
            "shared mapping {:x}-{:x} of {} at offset {}: mapped again from the file (the restart is refused if it is gone)",
            m.start,
            m.end,
            String::from_utf8_lossy(f.map_path(&m)),
            m.offset
        ));
    }
    v
}

/// The title line of a section: its name, version and size.
/// What a COMPRESSION section adds up to.
pub struct CompressionCounts {
    /// Bytes of plain page data.
    pub plain: u64,
    /// Bytes stored for it (padding between pieces not counted).
    pub stored: u64,
    /// Pieces stored compressed.
    pub packed: u64,
    /// Pieces stored plain.
    pub plain_pieces: u64,
}

impl CompressionCounts {
    /// Plain bytes per stored byte.
    pub fn ratio(&self) -> f64 {
        if self.stored == 0 { 1.0 } else { self.plain as f64 / self.stored as f64 }
    }
}

/// Sum up a COMPRESSION section.
pub fn compression_counts(c: &ckpt_image::compress::Compression) -> CompressionCounts {
    let mut z = CompressionCounts { plain: c.head.plain_len, stored: 0, packed: 0, plain_pieces: 0 };
    for p in c.pieces.iter() {
        z.stored += p.len as u64;
        if p.codec == ckpt_image::compress::codec::NONE {
            z.plain_pieces += 1;
        } else {
            z.packed += 1;
        }
    }
    z
}

pub fn title(s: &Section) -> String {
    format!("{} (tag {}, version {}, {} bytes)", section::name(s.tag), s.tag, s.version, s.data.len())
}

/// `ckpt info` lines of the PROCESS section.
fn process_lines(p: &ckpt_image::process::ProcessState) -> Vec<String> {
    use ckpt_image::process::{have, notify, scope, timer_flags, vm};
    let st = &p.settings;
    let h = |b: u64| st.have & b != 0;
    let mut out = Vec::new();
    let mut set = Vec::new();
    if h(have::UMASK) {
        set.push(format!("umask {:03o}", st.umask));
    }
    if h(have::NICE) {
        set.push(format!("nice {}", 20 - st.prio as i32));
    }
    if h(have::PERSONALITY) {
        set.push(format!("personality {:#x}", st.personality));
    }
    if h(have::NO_NEW_PRIVS) {
        set.push(format!("no_new_privs {}", st.no_new_privs));
    }
    if h(have::PDEATHSIG) {
        set.push(format!("pdeathsig {}", st.pdeathsig));
    }
    if h(have::DUMPABLE) {
        set.push(format!("dumpable {}", st.dumpable));
    }
    if h(have::TIMER_SLACK) {
        set.push(format!("timer slack {} ns", st.timer_slack));
    }
    if h(have::SUBREAPER) {
        set.push(format!("child subreaper {}", st.subreaper));
    }
    if h(have::OOM_ADJ) {
        set.push(format!("oom_score_adj {}", st.oom_adj as i64 - 1000));
    }
    if h(have::THP_DISABLE) {
        set.push(format!("THP disabled {}", st.thp_disable));
    }
    if h(have::MEMBARRIER) {
        set.push(format!("membarrier registrations {:#x}", st.membarrier));
    }
    out.push(format!("settings: {}", set.join(", ")));
    if h(have::CHILDREN) && st.children > 0 {
        out.push(format!(
            "NOT RESTORED: {} child process{} the program had at checkpoint time (not in the image: ckpt --tree \
             checkpoints a program with its children); waiting for them fails (ECHILD)",
            st.children,
            if st.children == 1 { "" } else { "es" }
        ));
    }
    out.push(
        "  (restored at restart; a hard limit above the restarting user's, a lower nice or oom_score_adj, \
              other groups need privilege and are reported when refused)"
            .to_string(),
    );
    let lim: Vec<String> = p
        .rlimits
        .iter()
        .map(|r| {
            let v = |x: u64| if x == u64::MAX { "inf".to_string() } else { x.to_string() };
            format!("{}={}/{}", r.resource, v(r.cur), v(r.max))
        })
        .collect();
    out.push(format!("rlimits (resource=soft/hard): {}", lim.join(" ")));
    if h(have::GROUPS) {
        out.push(format!("groups: {}", p.groups.iter().map(|g| g.gid.to_string()).collect::<Vec<_>>().join(" ")));
    }
    for sig in p.pending.iter() {
        out.push(format!(
            "pending signal {} ({}), si_code {}: queued again at restart",
            sig.sig,
            if sig.scope == scope::THREAD { "for the thread" } else { "process-wide" },
            sig.code()
        ));
    }
    out.push(
        "/proc/self/exe: names the image after a restart, not the program (the kernel refuses to change it, EBUSY, while the image is mapped: the restored text and data are mappings of it)"
            .to_string(),
    );
    if let Some(k) = p.clocks {
        out.push(format!(
            "clocks: CLOCK_MONOTONIC {}.{:09} s, CLOCK_BOOTTIME {}.{:09} s: a restart in a pid namespace (threads, trees) goes on from them in a time namespace; a single-threaded restart sees this machine's",
            k.monotonic_ns / 1_000_000_000,
            k.monotonic_ns % 1_000_000_000,
            k.boottime_ns / 1_000_000_000,
            k.boottime_ns % 1_000_000_000
        ));
    }
    for t in p.timers.iter() {
        let to = match t.notify {
            notify::NONE => "no signal".to_string(),
            notify::THREAD_ID if t.target_tid() != 0 => format!("signal {} to thread {}", t.signo, t.target_tid()),
            notify::THREAD_ID => format!("signal {} to the checkpointing thread", t.signo),
            _ => format!("signal {}", t.signo),
        };
        let armed = if t.flags & timer_flags::ARMED != 0 { "armed" } else { "disarmed" };
        out.push(format!(
            "POSIX timer {}: clock {}, {to}, {armed}, interval {} ns: re-created with its id at restart",
            t.id, t.clock as i32, t.interval_ns
        ));
    }
    for m in p.maps.iter() {
        let names: Vec<&str> =
            vm::NAMES.iter().enumerate().filter(|(i, _)| m.flags & (1 << i) != 0).map(|(_, n)| *n).collect();
        out.push(format!("mapping {:x}-{:x}: {}", m.start, m.end, names.join(" ")));
    }
    out
}

/// The records of a known section for `ckpt info --json`, under their own key
/// (`"guards": [...]`, `"views": [...]`), or nothing.
pub fn json_records(s: &Section, ctx: &Context) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut m = serde_json::Map::new();
    match s.tag {
        section::tag::PARENT => {
            if let Ok(p) = ckpt_image::parent::Parent::parse(s.data) {
                m.insert(
                    "parent".into(),
                    json!({
                        "name": String::from_utf8_lossy(p.name),
                        "seq": p.head.seq,
                        "depth": p.head.depth,
                        "meta_hash": format!("{:016x}", p.head.meta_hash),
                        "data_hash": format!("{:016x}", p.head.data_hash),
                        "file_len": p.head.file_len,
                        "inherited_ranges": p.inherited.len(),
                        "inherited_bytes": p.inherited_len(),
                    }),
                );
            }
        }
        section::tag::GUARDS => {
            let items: Vec<Value> = memory::guards(s)
                .map(|t| t.iter().map(|g| json!({"start": g.start, "end": g.end})).collect())
                .unwrap_or_default();
            m.insert("guards".into(), Value::Array(items));
        }
        section::tag::SHARED => {
            let items: Vec<Value> = memory::views(s)
                .map(|t| {
                    t.iter()
                        .map(|v| {
                            json!({
                                "region": v.region,
                                "object": v.object,
                                "offset": v.offset,
                                "dev": format!("{}:{}", v.dev >> 32, v.dev & 0xffff_ffff),
                                "inode": v.inode,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            m.insert("views".into(), Value::Array(items));
        }
        section::tag::TREE => {
            let items: Vec<Value> = ckpt_image::tree::members(s)
                .map(|t| {
                    t.iter()
                        .map(|m| {
                            json!({
                                "pid": m.pid,
                                "ppid": m.ppid,
                                "pgid": m.pgid,
                                "sid": m.sid,
                                "root": m.flags & ckpt_image::tree::ROOT != 0,
                                "zombie": m.flags & ckpt_image::tree::ZOMBIE != 0,
                                "wait_status": m.status,
                                "offset": m.offset,
                                "bytes": m.len,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            m.insert("processes".into(), Value::Array(items));
            let shared = tree_shared(s)
                .into_iter()
                .map(|g| Value::Array(g.into_iter().map(|(pid, fd)| json!({ "pid": pid, "fd": fd })).collect()))
                .collect();
            m.insert("shared_descriptors".into(), Value::Array(shared));
        }
        section::tag::THREADS => {
            let items: Vec<Value> = ckpt_image::threads::parse(s.data)
                .map(|t| {
                    t.iter()
                        .map(|th| {
                            json!({
                                "tid": th.tid,
                                "name": String::from_utf8_lossy(th.name()),
                                "coordinator": th.flags & ckpt_image::threads::COORDINATOR != 0,
                                "sp": th.regs[0],
                                "ip": th.regs[1],
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            m.insert("threads".into(), Value::Array(items));
        }
        section::tag::COMPRESSION => {
            if let Ok(c) = ckpt_image::compress::Compression::parse(s.data) {
                let z = compression_counts(&c);
                m.insert("codec".into(), json!(ckpt_image::compress::codec::name(c.head.codec)));
                m.insert("plain_bytes".into(), json!(z.plain));
                m.insert("stored_bytes".into(), json!(z.stored));
                m.insert("ratio".into(), json!(z.ratio()));
                m.insert("compressed_pieces".into(), json!(z.packed));
                m.insert("plain_pieces".into(), json!(z.plain_pieces));
            }
        }
        tag::FILES => {
            if let Some((files, maps)) = json(s, ctx) {
                m.insert("files".into(), files);
                m.insert("shared_file_mappings".into(), maps);
            }
        }
        _ => {}
    }
    m
}
