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

/// The socket's inode number (`fstat`), as `sock_diag` and `/proc/PID/fd` name it.
#[allow(dead_code)] // Linux only
pub(crate) fn inode(socket: &Socket) -> io::Result<u64> {
    // SAFETY: `stat` is plain old data; all zeroes is a valid value.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `stat` is a live local that fstat fills in.
    if unsafe { libc::fstat(socket.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // u64 on some targets, u32 on others
    Ok(u64::from(stat.st_ino))
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

/// Checks a socket file mode: permission bits only.
pub(crate) fn check_mode(mode: u32) -> io::Result<libc::mode_t> {
    if mode & !0o777 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mode {mode:#o} has bits beyond 0o777"),
        ));
    }
    Ok(mode as libc::mode_t)
}

/// Linux: `fchmod` on an unbound Unix socket sets the mode `bind` creates the file with.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_unix_mode_before_bind(socket: &Socket, mode: u32) -> io::Result<()> {
    let mode = check_mode(mode)?;
    // SAFETY: fchmod takes a descriptor this socket owns and a plain mode.
    if unsafe { libc::fchmod(socket.as_raw_fd(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere `bind` takes the mode from the umask only, which is process-wide: there is no way
/// to create the file with a narrower mode without a moment where it is more open.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_unix_mode_before_bind(_socket: &Socket, mode: u32) -> io::Result<()> {
    check_mode(mode)?;
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "a socket file mode can be set without a window only on Linux; restrict the directory",
    ))
}

/// Takes an exclusive `flock(2)` on `file`, waiting for it; released when the file is closed.
pub(crate) fn lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor the caller keeps open and an integer operation.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sets or clears close-on-exec on a descriptor, and says whether it was set before (so that a
/// caller can put it back).
pub(crate) fn set_cloexec(fd: std::os::fd::BorrowedFd<'_>, on: bool) -> io::Result<bool> {
    // SAFETY: fcntl on a descriptor the caller keeps open, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::FD_CLOEXEC != 0;
    if was == on {
        return Ok(was);
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(was)
}

/// Runs `f` on descriptor `fd`, borrowed, once it is found to be an open socket (else `EBADF`
/// or `ENOTSOCK`). `f` may read and configure the socket; nothing here closes it.
pub(crate) fn with_open_socket<T>(
    fd: std::os::fd::RawFd,
    f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> io::Result<T>,
) -> io::Result<T> {
    check_open_socket(fd)?;
    // SAFETY: `fd` was just found open, and the borrow ends when `f` returns.
    f(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

/// Set once this process has taken the descriptors socket activation handed it.
static INHERITED_CLAIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`claim_inherited`] has taken them already.
pub(crate) fn inherited_claimed() -> bool {
    INHERITED_CLAIMED.load(std::sync::atomic::Ordering::Acquire)
}

/// Takes ownership of the descriptors socket activation handed this process (`LISTEN_FDS`
/// from fd 3): once per process; a second call, or one racing the first, gets `None`. The
/// caller has checked that the protocol's variables name this process.
pub(crate) fn claim_inherited(fds: &[std::os::fd::RawFd]) -> Option<Claim> {
    use std::sync::atomic::Ordering;
    INHERITED_CLAIMED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .ok()?;
    Some(Claim {
        fds: fds
            .iter()
            .map(|&fd| {
                // SAFETY: the activation protocol hands `fd` to this process, and the flag
                // above makes this the one place in the process that takes it (the docs of
                // `inherited` ask that no other code adopts it).
                unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
            })
            .collect(),
    })
}

/// The descriptors [`claim_inherited`] took: kept ([`Claim::into_fds`]) or handed back
/// ([`Claim::release`]).
#[derive(Debug)]
pub(crate) struct Claim {
    fds: Vec<std::os::fd::OwnedFd>,
}

impl Claim {
    /// The descriptors, in the order claimed.
    pub(crate) fn fds(&self) -> &[std::os::fd::OwnedFd] {
        &self.fds
    }

    /// Keeps them: the process has adopted them, once for good.
    pub(crate) fn into_fds(self) -> Vec<std::os::fd::OwnedFd> {
        self.fds
    }

    /// Gives them back unclosed, as they were handed over, and lets a later call claim them
    /// again (an adoption that failed).
    pub(crate) fn release(self) {
        for fd in self.fds {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        }
        INHERITED_CLAIMED.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Fails with `EBADF` if `fd` is not open, `ENOTSOCK` if it is not a socket.
pub(crate) fn check_open_socket(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: `stat` is plain old data; all zeroes is a valid value.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: fstat only reads `fd` (any number is safe to pass) and fills the live local.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    Ok(())
}
