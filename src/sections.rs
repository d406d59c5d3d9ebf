//! How `ckpt info` shows each kind of image section (`ckpt_image::section`). The
//! image crate decodes and validates them; this file only words them for people.
//! Each kind of state adds an arm to [`describe`] that lists its records, one line
//! each, saying how each will come back at restart.

use ckpt_image::memory;
use ckpt_image::section::{self, Section};

/// Human lines for one section (indented by the caller), after its title line.
pub fn describe(s: &Section) -> Vec<String> {
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
        t if section::name(t) == "unknown" => {
            vec!["(a kind of state this ckpt does not know; the image's own loader restores it)".to_string()]
        }
        section::tag::PROCESS => match ckpt_image::process::ProcessState::parse(s.data) {
            Ok(p) => process_lines(&p),
            Err(e) => vec![format!("damaged: {e}")],
        },
        section::tag::DATA_HASHES => match ckpt_image::hashes::DataHashes::parse(s.data) {
            Ok(h) => vec![format!(
                "{} pieces of {} KiB, each checked by the loader as it reads (or maps) it",
                h.hashes.len(),
                h.piece >> 10
            )],
            Err(e) => vec![format!("damaged: {e}")],
        },
        _ => Vec::new(),
    }
}

/// The title line of a section: its name, version and size.
pub fn title(s: &Section) -> String {
    format!("{} (tag {}, version {}, {} bytes)", section::name(s.tag), s.tag, s.version, s.data.len())
}

/// `ckpt info` lines of the PROCESS section.
fn process_lines(p: &ckpt_image::process::ProcessState) -> Vec<String> {
    use ckpt_image::process::{have, scope, vm};
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
    for m in p.maps.iter() {
        let names: Vec<&str> =
            vm::NAMES.iter().enumerate().filter(|(i, _)| m.flags & (1 << i) != 0).map(|(_, n)| *n).collect();
        out.push(format!("mapping {:x}-{:x}: {}", m.start, m.end, names.join(" ")));
    }
    out
}

/// The records of a known section for `ckpt info --json`, under their own key
/// (`"guards": [...]`, `"views": [...]`), or nothing.
pub fn json_records(s: &Section) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut m = serde_json::Map::new();
    match s.tag {
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
        _ => {}
    }
    m
}
