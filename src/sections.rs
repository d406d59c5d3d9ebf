//! How `ckpt info` shows each kind of image section (`ckpt_image::section`). The
//! image crate decodes and validates them; this file only words them for people.
//! Each kind of state adds an arm to [`describe`] that lists its records, one line
//! each, saying how each will come back at restart.

use ckpt_image::memory;
use ckpt_image::section::{self, Section};

/// Human lines for one section (indented by the caller), after its title line.
pub fn describe(s: &Section) -> Vec<String> {
    match s.tag {
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
        _ => Vec::new(),
    }
}

/// The title line of a section: its name, version and size.
pub fn title(s: &Section) -> String {
    format!("{} (tag {}, version {}, {} bytes)", section::name(s.tag), s.tag, s.version, s.data.len())
}

/// The records of a known section as JSON fields to append inside its object
/// (`,"guards":[...]`), or nothing.
pub fn json_fields(s: &Section) -> String {
    match s.tag {
        section::tag::GUARDS => {
            let items: Vec<String> = memory::guards(s)
                .map(|t| t.iter().map(|g| format!("{{\"start\":{},\"end\":{}}}", g.start, g.end)).collect())
                .unwrap_or_default();
            format!(",\"guards\":[{}]", items.join(","))
        }
        section::tag::SHARED => {
            let items: Vec<String> = memory::views(s)
                .map(|t| {
                    t.iter()
                        .map(|v| {
                            format!(
                                "{{\"region\":{},\"object\":{},\"offset\":{},\"dev\":\"{}:{}\",\"inode\":{}}}",
                                v.region,
                                v.object,
                                v.offset,
                                v.dev >> 32,
                                v.dev & 0xffff_ffff,
                                v.inode
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(",\"views\":[{}]", items.join(","))
        }
        _ => String::new(),
    }
}
