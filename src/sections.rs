//! How `ckpt info` shows each kind of image section (`ckpt_image::section`). The
//! image crate decodes and validates them; this file only words them for people.
//! Each kind of state adds an arm to [`describe`] that lists its records, one line
//! each, saying how each will come back at restart.

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
