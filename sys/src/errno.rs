//! `Errno`: the kernel's error number, kept as it came back from the syscall, with
//! its symbolic name (`ENOSPC`) for logs and its strerror text for users.

/// A Linux error number (1..4095).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Errno(pub u16);

/// Result of a syscall wrapper.
pub type Result<T> = core::result::Result<T, Errno>;

/// The numbers are the kernel's (`linux_raw_sys::errno`); the texts are glibc's
/// strerror wording, which nothing in the kernel's headers carries.
macro_rules! errnos {
    ($($name:ident, $text:expr;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno(linux_raw_sys::errno::$name as u16);
            )*

            /// Symbolic name, e.g. `"ENOSPC"`, or `"E?"` for an unlisted number.
            pub fn name(self) -> &'static str {
                match self { $(Self::$name => stringify!($name),)* _ => "E?" }
            }

            /// The strerror text, e.g. `"No space left on device"`.
            pub fn text(self) -> &'static str {
                match self { $(Self::$name => $text,)* _ => "Unknown error" }
            }
        }
    };
}

errnos! {
    EPERM, "Operation not permitted";
    ENOENT, "No such file or directory";
    ESRCH, "No such process";
    EINTR, "Interrupted system call";
    EIO, "Input/output error";
    ENXIO, "No such device or address";
    E2BIG, "Argument list too long";
    ENOEXEC, "Exec format error";
    EBADF, "Bad file descriptor";
    ECHILD, "No child processes";
    EAGAIN, "Resource temporarily unavailable";
    ENOMEM, "Cannot allocate memory";
    EACCES, "Permission denied";
    EFAULT, "Bad address";
    EBUSY, "Device or resource busy";
    EEXIST, "File exists";
    EXDEV, "Invalid cross-device link";
    ENODEV, "No such device";
    ENOTDIR, "Not a directory";
    EISDIR, "Is a directory";
    EINVAL, "Invalid argument";
    ENFILE, "Too many open files in system";
    EMFILE, "Too many open files";
    ENOTTY, "Inappropriate ioctl for device";
    ETXTBSY, "Text file busy";
    EFBIG, "File too large";
    ENOSPC, "No space left on device";
    ESPIPE, "Illegal seek";
    EROFS, "Read-only file system";
    EMLINK, "Too many links";
    EPIPE, "Broken pipe";
    ERANGE, "Numerical result out of range";
    ENAMETOOLONG, "File name too long";
    ENOSYS, "Function not implemented";
    ELOOP, "Too many levels of symbolic links";
    EOVERFLOW, "Value too large for defined data type";
    EOPNOTSUPP, "Operation not supported";
    EADDRINUSE, "Address already in use";
    EADDRNOTAVAIL, "Cannot assign requested address";
    ENETUNREACH, "Network is unreachable";
    ECONNRESET, "Connection reset by peer";
    EISCONN, "Transport endpoint is already connected";
    ENOTCONN, "Transport endpoint is not connected";
    ETIMEDOUT, "Connection timed out";
    ECONNREFUSED, "Connection refused";
    ESTALE, "Stale file handle";
    EDQUOT, "Disk quota exceeded";
}

impl Errno {
    /// Decode a raw syscall return: values in -4095..=-1 are errors.
    #[inline]
    pub fn from_ret(ret: usize) -> Result<usize> {
        if ret > usize::MAX - 4095 { Err(Errno((!ret + 1) as u16)) } else { Ok(ret) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_texts() {
        assert_eq!(Errno::EPERM.0, 1);
        assert_eq!(Errno::ENOSPC.0, 28);
        assert_eq!(Errno::EDQUOT.0, 122);
        assert_eq!(Errno(28).name(), "ENOSPC");
        assert_eq!(Errno(28).text(), "No space left on device");
        assert_eq!(Errno(4000).name(), "E?");
        assert_eq!(Errno::from_ret(-2isize as usize), Err(Errno::ENOENT));
        assert_eq!(Errno::from_ret(5), Ok(5));
    }
}
