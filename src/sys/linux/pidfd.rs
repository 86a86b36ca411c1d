//! Another process's descriptors: `pidfd_open(2)` (Linux 5.3) and `pidfd_getfd(2)` (Linux 5.6);
//! `PIDFD_THREAD` (Linux 6.9) for one thread, whose descriptor table may be its own.
//!
//! `getfd` needs `PTRACE_MODE_ATTACH_REALCREDS` over the target: `CAP_SYS_PTRACE`, or the same
//! user where `kernel.yama.ptrace_scope` allows it. Errors are the kernel's: `EPERM` (no
//! permission), `ENOSYS` (an older kernel), `ESRCH` (the process is gone), `EBADF` (no such
//! descriptor).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pidfd for process `pid` (a thread-group leader, in this process's PID namespace).
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(fd)
}

/// A pidfd for thread `tid` itself (`PIDFD_THREAD`, Linux 6.9): `getfd` on it reads that
/// thread's descriptor table, which differs from its group leader's after
/// `unshare(CLONE_FILES)`. `EINVAL` on older kernels, which open only thread-group leaders.
pub(crate) fn open_thread(tid: u32) -> io::Result<OwnedFd> {
    let tid = libc::pid_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // PIDFD_THREAD is O_EXCL (include/uapi/linux/pidfd.h).
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) };
    owned(fd)
}

/// A duplicate, in this process and close-on-exec, of descriptor `fd` of the process behind
/// `pidfd`: the same open file description.
pub(crate) fn getfd(pidfd: &OwnedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd this process owns, a descriptor number of the target
    // and flags; it returns a new descriptor (close-on-exec) or -1.
    let new = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    owned(new)
}

/// A descriptor a system call just returned, or its error.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just made `fd` for this process, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
