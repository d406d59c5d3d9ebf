//! The names an image records for the program and its file mappings, kept
//! across restarts. A restarted process is the restart loader's exec: its
//! `/proc/self/exe` is the checkpoint file, and the loader maps the saved text of
//! the program and its libraries straight from that file, so `/proc/self/maps`
//! names them all `X.ckpt`. An image taken after a restart would then tell `ckpt
//! info` that the program was `X.ckpt`, and so were its libraries.
//!
//! So the runtime records the executable's path when it first loads, in its own
//! memory (which every image carries), and after a restart reads the metadata of
//! the image it was restarted from (through `/proc/self/exe`, which stays open
//! even if the file is removed) into a mapping of its own: a region the maps
//! name after that image is given the name the image recorded for the address.

use ckpt_image::{HEADER_LEN, Header, Meta, page_up};
use ckpt_sys::scratch::Scratch;
use ckpt_sys::{Fd, c};

use crate::config::{NAME_MAX, Path};

/// What the runtime knows of the original names.
pub struct Names {
    /// The program's executable when the runtime first loaded.
    pub exe: Path,
    /// The checkpoint file this process was restarted from (empty: none).
    image: Path,
    /// Its header, a copy of its metadata (in memory of its own, which every
    /// later image carries) and the metadata's length.
    meta: Option<(Header, Scratch, usize)>,
}

impl Names {
    /// Nothing known.
    pub const EMPTY: Names = Names { exe: Path::EMPTY, image: Path::EMPTY, meta: None };

    /// At load: the executable.
    pub fn at_load(&mut self) {
        self.exe = exe().unwrap_or(Path::EMPTY);
    }

    /// In the restarted process: the image it came from, and that image's
    /// names. Best effort: without them, images name what the maps name.
    pub fn after_restart(&mut self, loader_len: usize) {
        // (The copy from the previous restart, if any, is unmapped as it drops.)
        self.meta = None;
        self.image = exe().unwrap_or(Path::EMPTY);
        self.meta = read_meta(page_up(loader_len as u64));
    }

    /// The name to record for a region at `start` that the maps name `name`.
    pub fn original<'a>(&'a self, start: u64, name: &'a [u8]) -> &'a [u8] {
        let img = self.image.as_bytes();
        let ours =
            !img.is_empty() && name.strip_prefix(img).is_some_and(|rest| rest.is_empty() || rest == b" (deleted)");
        let Some((header, copy, len)) = self.meta.as_ref().filter(|_| ours) else { return name };
        let Ok(meta) = Meta::parse(header, &copy.as_slice()[..*len]) else { return name };
        meta.regions()
            .find(|r| r.start <= start && start < r.end)
            .map(|r| meta.string((r.name_off, r.name_len)))
            .filter(|n| !n.is_empty())
            .unwrap_or(name)
    }
}

fn exe() -> Option<Path> {
    let mut buf = [0u8; NAME_MAX];
    let n = ckpt_sys::readlinkat(Fd::CWD, c"/proc/self/exe", &mut buf).ok()?;
    Path::new(&buf[..n])
}

/// The header at `image_offset` of `/proc/self/exe` and a copy of its metadata.
fn read_meta(image_offset: u64) -> Option<(Header, Scratch, usize)> {
    let fd = ckpt_sys::openat(Fd::CWD, c"/proc/self/exe", c::O_RDONLY | c::O_CLOEXEC, 0).ok()?;
    let r = (|| {
        let len = ckpt_sys::fstat(fd).ok()?.size;
        let mut hb = [0u8; HEADER_LEN];
        if ckpt_sys::pread(fd, &mut hb, image_offset).ok()? != HEADER_LEN {
            return None;
        }
        let header = Header::parse(&hb, len, 0).ok()?;
        let n = header.meta_len as usize;
        if n == 0 {
            return None;
        }
        let mut copy = Scratch::new(n).ok()?;
        let buf = &mut copy.bytes()[..n];
        let mut got = 0;
        while got < n {
            match ckpt_sys::pread(fd, &mut buf[got..], header.meta_offset + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        if got < n || Meta::parse(&header, buf).is_err() {
            return None;
        }
        Some((header, copy, n))
    })();
    let _ = ckpt_sys::close(fd);
    r
}
