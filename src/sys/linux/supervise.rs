//! The calls a supervising process makes about itself and its children: child subreaper
//! (`PR_SET_CHILD_SUBREAPER`, Linux 3.4), signals taken through a `signalfd(2)`, `waitpid`
//! without waiting, `kill`, `poll`, and whether a file may be executed (`access(2)`).

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libc::c_int;

/// Makes this process the reaper of its orphaned descendants (`on`), or stops it.
pub(crate) fn set_child_subreaper(on: bool) -> io::Result<()> {
    let on = libc::c_ulong::from(on);
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process is a child subreaper already (`PR_GET_CHILD_SUBREAPER`).
pub(crate) fn is_child_subreaper() -> bool {
    let mut on: c_int = 0;
    // SAFETY: the kernel writes one int to the live local.
    let rc = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut on as *mut c_int, 0, 0, 0) };
    rc == 0 && on != 0
}

/// A set of signals, and the calling thread's mask before they were blocked.
#[derive(Clone, Copy)]
pub(crate) struct Blocked {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl std::fmt::Debug for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blocked")
    }
}

/// Blocks `signals` in the calling thread, so that they wait for a `signalfd` read.
pub(crate) fn block(signals: &[c_int]) -> io::Result<Blocked> {
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a live local; sigemptyset and sigaddset write only to it.
    unsafe {
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
    }
    // SAFETY: both sets are live locals.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Blocked { set, old })
}

impl Blocked {
    /// Unblocks the signals again in the calling thread (the mask from before [`block`]).
    pub(crate) fn unblock(&self) -> io::Result<()> {
        self.restore()
    }

    /// A non-blocking, close-on-exec `signalfd` for the blocked signals.
    pub(crate) fn signalfd(&self) -> io::Result<OwnedFd> {
        // SAFETY: `self.set` is an initialised sigset_t.
        let fd = unsafe { libc::signalfd(-1, &self.set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just made the descriptor for this process.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Puts back the calling thread's mask from before [`block`]. Async-signal-safe (the child
    /// calls it between `fork` and `exec`, to start the program with the mask it would have had).
    pub(crate) fn restore(&self) -> io::Result<()> {
        // SAFETY: `self.old` is the initialised mask pthread_sigmask returned.
        let rc =
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
}

/// A signal read from a `signalfd`: its number, and whether the kernel sent it (`SI_KERNEL`:
/// a terminal's ^C, ^\ or resize, which reached the whole foreground process group).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signal {
    pub(crate) number: c_int,
    pub(crate) from_kernel: bool,
}

/// The next signal waiting on `fd`, `None` when there is none.
pub(crate) fn read_signal(fd: &OwnedFd) -> io::Result<Option<Signal>> {
    // SAFETY: signalfd_siginfo is plain old data; all zeroes is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a live local of `size` bytes.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(None),
            _ => Err(err),
        };
    }
    if n as usize != size {
        return Ok(None);
    }
    Ok(Some(Signal {
        number: info.ssi_signo as c_int,
        from_kernel: info.ssi_code == libc::SI_KERNEL,
    }))
}

/// An exited child and its wait status (as `waitpid` gives it).
pub(crate) enum Reaped {
    Child {
        pid: u32,
        status: c_int,
    },
    /// Children remain, none has exited.
    None,
    /// No children at all (`ECHILD`).
    NoChildren,
}

/// Reaps one exited child, if any, without waiting.
pub(crate) fn reap_one() -> io::Result<Reaped> {
    let mut status: c_int = 0;
    // SAFETY: `status` is a live local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Ok(Reaped::None),
        p if p > 0 => Ok(Reaped::Child {
            pid: p as u32,
            status,
        }),
        _ => {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ECHILD) => Ok(Reaped::NoChildren),
                Some(libc::EINTR) => Ok(Reaped::None),
                _ => Err(err),
            }
        }
    }
}

/// Sends `signal` to process `pid` (which must be a child not yet reaped, so that its id
/// cannot have been reused).
pub(crate) fn kill(pid: u32, signal: c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill takes two integers.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Readiness of one descriptor after [`poll`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ready {
    pub(crate) readable: bool,
    /// `POLLHUP` (for a seccomp notification descriptor: no task uses the filter any more) or
    /// `POLLERR`.
    pub(crate) hangup: bool,
}

/// Waits until one of `fds` is readable or hung up, or `timeout_ms` has passed (`poll(2)`);
/// `EINTR` returns with nothing ready.
pub(crate) fn poll<const N: usize>(
    fds: [Option<BorrowedFd<'_>>; N],
    timeout_ms: c_int,
) -> io::Result<[Ready; N]> {
    let mut pollfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; N];
    for (p, fd) in pollfds.iter_mut().zip(fds.iter()) {
        if let Some(fd) = fd {
            p.fd = fd.as_raw_fd();
            p.events = libc::POLLIN;
        }
    }
    // SAFETY: `pollfds` is a live array of N pollfd; a negative fd is ignored by the kernel.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
    let mut ready = [Ready::default(); N];
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(ready);
        }
        return Err(err);
    }
    for (r, p) in ready.iter_mut().zip(pollfds.iter()) {
        r.readable = p.revents & libc::POLLIN != 0;
        r.hangup = p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    }
    Ok(ready)
}

/// Whether this process may execute `path` (`access(path, X_OK)`), with the kernel's error.
pub(crate) fn executable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread a descriptor table of its own, a copy of the one it shared
/// (`unshare(CLONE_FILES)`), as a program's thread may: for tests of the supervisor's lookup.
/// The copy keeps `keep` and the standard streams and closes the rest, so that it does not
/// hold open the sockets and files of tests running meanwhile in other threads (a closed
/// listener must stop accepting).
#[cfg(test)]
pub(crate) fn unshare_files(keep: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: unshare takes integer flags; CLONE_FILES only affects the calling thread's table.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let keep = libc::c_uint::try_from(keep).unwrap_or(0).max(3);
    for (first, last) in [(3, keep - 1), (keep + 1, libc::c_uint::MAX)] {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes integers; it closes descriptors of this thread's own copy
        // of the table only, whose numbers nothing in this thread owns.
        if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes descriptor number `target` of the calling thread's table a duplicate of `fd`
/// (`dup2`), replacing what was there: for tests, in a thread after [`unshare_files`], whose
/// `target` is its own copy that nothing in the thread owns.
#[cfg(test)]
pub(crate) fn dup_onto(fd: BorrowedFd<'_>, target: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two descriptor numbers; the caller promises `target` in this thread's
    // table belongs to no owner that would close it (a copy made by unshare_files).
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
