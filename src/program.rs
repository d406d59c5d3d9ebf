//! Finding the program to run, and refusing the ones the runtime cannot follow.

use std::env;
use std::ffi::{CString, OsStr, c_char, c_int};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::elf::{Class, Kind};
use crate::error::{CANNOT_EXECUTE, Error, NOT_FOUND};

/// Search path used when `PATH` is unset, as `confstr(_CS_PATH)` gives it.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;
const X_OK: c_int = 1;

unsafe extern "C" {
    /// access(2) from the C library std already links against. Used rather than
    /// looking at mode bits so that the answer accounts for ownership, root and ACLs.
    fn access(path: *const c_char, mode: c_int) -> c_int;
    /// getxattr(2), from the same C library: file capabilities live in the
    /// `security.capability` attribute.
    fn getxattr(path: *const c_char, name: *const c_char, value: *mut u8, size: usize) -> isize;
}

/// Finds `prog` the way a shell does: a name containing `/` is a path, anything
/// else is looked up in `PATH`.
pub fn find(prog: &OsStr) -> Result<PathBuf, Error> {
    if prog.as_bytes().contains(&b'/') {
        let path = PathBuf::from(prog);
        check_executable(&path)?;
        Ok(path)
    } else {
        search_path(prog)
    }
}

/// Looks `prog` up in `PATH`. Like bash, a matching file that is not executable
/// does not stop the search, but is reported if nothing better is found.
fn search_path(prog: &OsStr) -> Result<PathBuf, Error> {
    let path_var = env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut not_executable = None;
    // An empty `PATH` entry traditionally means the current directory.
    for dir in env::split_paths(&path_var) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        // `dir/prog` always contains a `/`, so exec will not search `PATH` again.
        let candidate = dir.join(prog);
        match fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && is_executable(&candidate) => return Ok(candidate),
            Ok(meta) if meta.is_file() => {
                not_executable.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    match not_executable {
        Some(path) => Err(not_executable_error(&path)),
        None => Err(Error::new(NOT_FOUND, format!("{}: command not found", prog.display()))),
    }
}

/// Checks an explicit path: it must exist, be a regular file and be executable by us.
fn check_executable(path: &Path) -> Result<(), Error> {
    let meta = fs::metadata(path).map_err(|err| {
        let status = if err.kind() == io::ErrorKind::NotFound { NOT_FOUND } else { CANNOT_EXECUTE };
        Error::new(status, format!("{}: {}", path.display(), describe(&err)))
    })?;
    if meta.is_dir() {
        return Err(Error::new(CANNOT_EXECUTE, format!("{}: Is a directory", path.display())));
    }
    if !meta.is_file() || !is_executable(path) {
        return Err(not_executable_error(path));
    }
    Ok(())
}

fn not_executable_error(path: &Path) -> Error {
    Error::new(CANNOT_EXECUTE, format!("{}: Permission denied (not an executable file)", path.display()))
}

fn is_executable(path: &Path) -> bool {
    // A path from argv or PATH cannot contain a NUL byte; if it somehow did,
    // exec could not run it either.
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call,
    // and access(2) only reads it.
    unsafe { access(c_path.as_ptr(), X_OK) == 0 }
}

/// Refuses programs that would run but could not be checkpointed, because the
/// dynamic loader would never load the runtime into them. `kind` is what
/// `elf::classify` said about the program; `archive` is where the static runtime
/// library of the program's class is, for the hint given about static programs.
pub fn check_preloadable(path: &Path, kind: Kind, archive: &Path, runtime_linked: bool) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::new(CANNOT_EXECUTE, format!("{}: {why}", path.display())));

    // `check_executable`/`search_path` already succeeded on this path, so a
    // failure here is a race with someone changing the file; exec will tell.
    if let Ok(meta) = fs::metadata(path)
        && let Some(bits) = secure_exec_bits(&meta)
    {
        return refuse(format!(
            "refusing to run a {bits} program: the dynamic loader ignores LD_PRELOAD \
             in secure-execution mode, so the checkpoint runtime would silently not be loaded"
        ));
    }
    // File capabilities are set-ID bits by another name: exec gives the program
    // privileges, and the dynamic loader runs it in secure-execution mode.
    if has_file_capabilities(path) {
        return refuse(
            "refusing to run a program with file capabilities (see getcap): the dynamic \
             loader ignores LD_PRELOAD in secure-execution mode, so the checkpoint runtime \
             would silently not be loaded"
                .to_owned(),
        );
    }

    match kind {
        // Linked with libckpt.a: nothing to preload, static or not.
        Kind::Static(_) | Kind::Dynamic(_) if runtime_linked => Ok(()),
        Kind::Static(class) => refuse(format!(
            "statically linked {}program (no ELF interpreter), so LD_PRELOAD cannot load \
             the checkpoint runtime into it; link it with libckpt.a instead \
             (cc {}-static ... {})",
            if class == Class::Elf32 { "32-bit " } else { "" },
            if class == Class::Elf32 { "-m32 " } else { "" },
            archive.display()
        )),
        Kind::Script | Kind::Dynamic(_) | Kind::Other => Ok(()),
    }
}

/// Whether the file carries a `security.capability` attribute (setcap(8)).
fn has_file_capabilities(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and outlive the call; with a size
    // of 0 the kernel only reports the attribute's length and writes nothing.
    let len = unsafe { getxattr(c_path.as_ptr(), c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
    len > 0
}

/// Which set-ID bits would make exec run the program in secure-execution mode.
fn secure_exec_bits(meta: &Metadata) -> Option<&'static str> {
    let mode = meta.permissions().mode();
    // Without group execute permission, S_ISGID means mandatory locking, and
    // the kernel does not change the group ID at exec.
    let setgid = mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP;
    match (mode & S_ISUID != 0, setgid) {
        (true, true) => Some("setuid and setgid"),
        (true, false) => Some("setuid"),
        (false, true) => Some("setgid"),
        (false, false) => None,
    }
}

/// The text of an I/O error without std's " (os error N)" suffix, the way
/// shells and coreutils print it.
pub fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}
