//! Helpers shared by the Unix families.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use libc::c_int;
use socket2::Socket;

/// Reads an `int` socket option.
pub(crate) fn getsockopt_int(socket: &Socket, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes to `value`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut value as *mut c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an `int` socket option.
#[allow(dead_code)] // used by the families that have options beyond socket2's
pub(crate) fn setsockopt_int(
    socket: &Socket,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live local of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const c_int).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SO_ACCEPTCONN`: whether `listen(2)` was called on the socket.
pub(crate) fn is_listening(socket: &Socket) -> io::Result<bool> {
    getsockopt_int(socket, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map(|v| v != 0)
}

/// `SO_ACCEPTCONN` as a reading of [`queue_stats`](super) may fail.
#[allow(dead_code)] // used by the families that read the queue with more than one call
pub(crate) fn check_listening(socket: &Socket) -> Result<bool, super::Failed> {
    is_listening(socket).map_err(|source| super::Failed {
        what: "SO_ACCEPTCONN",
        source,
    })
}

/// `SO_REUSEPORT`.
#[cfg(not(any(target_os = "solaris", target_os = "illumos")))]
pub(crate) fn set_reuse_port(socket: &Socket, on: bool) -> io::Result<()> {
    socket.set_reuse_port(on)
}

/// `SO_REUSEPORT` does not exist here.
#[cfg(any(target_os = "solaris", target_os = "illumos"))]
pub(crate) fn set_reuse_port(_socket: &Socket, _on: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

/// Reads an integer sysctl by name (`kern.ipc.somaxconn`, ...).
#[cfg(any(target_os = "freebsd", target_vendor = "apple", target_os = "netbsd"))]
pub(crate) fn sysctl_by_name(name: &std::ffi::CStr) -> Option<u32> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>();
    // SAFETY: `name` is NUL-terminated; `value` and `len` are live locals and the kernel writes at
    // most `len` bytes to `value`; no new value is set (null pointer, length 0).
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            (&mut value as *mut c_int).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 && len == mem::size_of::<c_int>() {
        u32::try_from(value).ok()
    } else {
        None
    }
}

/// FreeBSD and Apple: `TCP_FASTOPEN` is on or off (the queue is system-wide); the other
/// platform options do not exist.
#[cfg(any(target_os = "freebsd", target_vendor = "apple"))]
pub(crate) fn set_fastopen_only(
    socket: &Socket,
    ipv4: bool,
    option: super::PlatformOption<'_>,
) -> io::Result<()> {
    match option {
        super::PlatformOption::FastOpen(queue) => setsockopt_int(
            socket,
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            c_int::from(queue > 0),
        ),
        other => Err(other.unsupported(ipv4)),
    }
}
