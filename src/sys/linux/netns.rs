//! Network namespaces: open an nsfs file, check that it is a network namespace, its identity,
//! and run a closure in a thread made for it (`setns(2)` there, never on the caller's thread).
//!
//! - A namespace is named by a file of the `nsfs` filesystem: `/proc/PID/ns/net`,
//!   `/proc/PID/task/TID/ns/net`, or a bind mount of one (`/run/netns/NAME`, made by
//!   `ip netns add` or a CNI plugin). Opening it needs ptrace read access over the process
//!   (for `/proc` links); the open descriptor keeps the namespace alive.
//! - `fstatfs` gives `NSFS_MAGIC` for such a file; `ioctl(NS_GET_NSTYPE)` (Linux 4.11) says
//!   which kind of namespace it is. Older kernels answer `ENOTTY`: then `setns` with
//!   `CLONE_NEWNET` is the check (it refuses another kind with `EINVAL`).
//! - `(st_dev, st_ino)` of the file identifies the namespace; `/proc/PID/ns/net` reads as
//!   `net:[INODE]`.
//! - `setns(fd, CLONE_NEWNET)` moves only the calling thread, and needs `CAP_SYS_ADMIN` over
//!   the namespace's user namespace (`EPERM` without). A network namespace needs no
//!   `unshare(CLONE_FS)` first (only mount and user namespaces do). Sockets made by the thread
//!   afterwards belong to that namespace for their whole life; `/proc/sys/net` and
//!   `/proc/thread-self/net` opened by it show that namespace.
//! - Which namespace a socket belongs to: `getsockopt(SO_NETNS_COOKIE)` (Linux 5.14), the same
//!   for every socket of one namespace, compared with a socket made by the calling thread.
//!   (`ioctl(SIOCGSKNS)` would open the namespace itself, but needs `CAP_NET_ADMIN` there.)

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `NSFS_MAGIC`, the `f_type` `fstatfs` reports for a namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)` (linux/nsfs.h), written out because not every libc
/// target (Android) defines it.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Opens `path` read-only and close-on-exec (a namespace file: nothing is read from it).
pub(crate) fn open(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: `path` is a NUL-terminated string that lives across the call; open returns a new
    // descriptor or -1.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made `fd` for this process, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What a descriptor turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A network namespace (`NS_GET_NSTYPE` said `CLONE_NEWNET`).
    Net,
    /// A namespace file of a kernel without `NS_GET_NSTYPE` (before 4.11): its kind is checked
    /// by `setns` itself.
    Unchecked,
    /// A namespace of another kind (the `CLONE_NEW*` flag).
    Other(libc::c_int),
    /// Not a namespace file at all.
    NotNsfs,
}

/// Whether `fd` is a network namespace: `fstatfs` for `NSFS_MAGIC`, then `NS_GET_NSTYPE`.
pub(crate) fn kind(fd: BorrowedFd<'_>) -> io::Result<Kind> {
    // SAFETY: `statfs` is plain old data; all zeroes is a valid value.
    let mut fs: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: `fs` is a live local that fstatfs fills in; `fd` is open for the whole call.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on some targets, i32 or u32 on others
    if fs.f_type as i64 != NSFS_MAGIC {
        return Ok(Kind::NotNsfs);
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the namespace's CLONE_NEW* flag or -1.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EINVAL) => Ok(Kind::Unchecked),
            _ => Err(err),
        };
    }
    Ok(if rc == libc::CLONE_NEWNET {
        Kind::Net
    } else {
        Kind::Other(rc)
    })
}

/// `(st_dev, st_ino)` of an open file: a namespace's identity.
pub(crate) fn id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is plain old data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is a live local that fstat fills in; `fd` is open for the whole call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // u64 on some targets, u32 on others
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// `(st_dev, st_ino)` of a path, following links (what a bind mount under `/run/netns` shows).
pub(crate) fn id_of_path(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((
        std::os::unix::fs::MetadataExt::dev(&meta),
        std::os::unix::fs::MetadataExt::ino(&meta),
    ))
}

/// The identity of the calling thread's own network namespace.
pub(crate) fn current_id() -> io::Result<(u64, u64)> {
    id_of_path(Path::new("/proc/thread-self/ns/net"))
}

/// The name of network device `index` in the calling thread's namespace (`if_indextoname`),
/// `None` if it has none there.
#[allow(dead_code)] // the survey's bound devices (next)
pub(crate) fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` is a live array of IF_NAMESIZE bytes, as if_indextoname requires; it returns
    // `buf` holding a NUL-terminated name, or NULL.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: if_indextoname succeeded, so `buf` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Runs `f` on a new thread that first enters the network namespace `fd` (`setns`), and
/// returns what it returns; the thread ends with it. The caller's thread is never moved.
///
/// `Err` is the `setns` error (`EPERM` without `CAP_SYS_ADMIN`, `EINVAL` for a namespace of
/// another kind), or the spawn's; `f` then does not run. A panic in `f` is resumed on the
/// caller's thread.
pub(crate) fn run_inside<T: Send>(
    fd: BorrowedFd<'_>,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    let raw = fd.as_raw_fd();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("maxlisten-netns".into())
            .spawn_scoped(scope, move || {
                // SAFETY: setns takes a descriptor that stays open for the whole scope (the
                // caller borrows it) and a namespace type; it moves only this thread, which was
                // made for it and ends after `f`.
                if unsafe { libc::setns(raw, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs `f` once for each namespace of `fds` and returns the results in order. The namespaces
/// are shared out among up to `workers` new threads, each of which enters its namespaces in
/// turn (`setns`) before calling `f` for each; the threads end after their last. The caller's
/// thread is never moved. Each result is `f`'s, or the `setns` error for that namespace (`f`
/// then is not called for it). A panic in `f` is resumed on the caller's thread.
pub(crate) fn run_inside_each<T: Send>(
    fds: &[BorrowedFd<'_>],
    workers: usize,
    f: impl Fn(usize) -> T + Sync,
) -> io::Result<Vec<io::Result<T>>> {
    let raws: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let workers = workers.clamp(1, raws.len().max(1));
    let f = &f;
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for worker in 0..workers {
            // Worker w takes namespaces w, w + workers, w + 2 * workers, ...
            let mine: Vec<(usize, i32)> = raws
                .iter()
                .copied()
                .enumerate()
                .skip(worker)
                .step_by(workers)
                .collect();
            let handle = std::thread::Builder::new()
                .name("maxlisten-netns".into())
                .spawn_scoped(scope, move || {
                    mine.into_iter()
                        .map(|(i, raw)| {
                            // SAFETY: as in `run_inside`: the descriptors stay open for the
                            // whole scope (the caller borrows them), and setns moves only this
                            // thread, which was made for it and ends after its last namespace.
                            if unsafe { libc::setns(raw, libc::CLONE_NEWNET) } != 0 {
                                return (i, Err(io::Error::last_os_error()));
                            }
                            (i, Ok(f(i)))
                        })
                        .collect::<Vec<_>>()
                })?;
            handles.push(handle);
        }
        let mut results: Vec<Option<io::Result<T>>> = (0..raws.len()).map(|_| None).collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, result) in done {
                        results[i] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("not run"))))
            .collect())
    })
}

/// `SO_NETNS_COOKIE` (asm-generic/socket.h; not in every libc): 71 on the architectures this
/// crate builds for, other values on alpha, mips, parisc and sparc (unknown here: `None`).
const SO_NETNS_COOKIE: Option<libc::c_int> = if cfg!(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "loongarch64"
)) {
    Some(71)
} else {
    None
};

/// Whether `socket` belongs to the calling thread's network namespace: its `SO_NETNS_COOKIE`
/// against that of a socket made here and closed at once (Unix, or netlink where a policy
/// refuses Unix sockets). `None` where that cannot be told (before Linux 5.14, or no socket
/// may be made).
pub(crate) fn socket_is_in_calling_netns(socket: BorrowedFd<'_>) -> Option<bool> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsFd;

    let name = SO_NETNS_COOKIE?;
    let theirs = super::sock_diag::socket_option_u64(socket, name).ok()?;
    let here = Socket::new(Domain::UNIX, Type::DGRAM, None)
        .or_else(|_| {
            Socket::new(
                Domain::from(libc::AF_NETLINK),
                Type::DGRAM,
                Some(Protocol::from(libc::NETLINK_ROUTE)),
            )
        })
        .ok()?;
    let ours = super::sock_diag::socket_option_u64(here.as_fd(), name).ok()?;
    Some(theirs == ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn own_namespace_is_a_network_namespace() {
        let fd = open(Path::new("/proc/self/ns/net")).unwrap();
        assert!(matches!(
            kind(fd.as_fd()).unwrap(),
            Kind::Net | Kind::Unchecked
        ));
        let (_, ino) = id(fd.as_fd()).unwrap();
        let link = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_eq!(link.to_str().unwrap(), format!("net:[{ino}]"));
        assert_eq!(current_id().unwrap(), id(fd.as_fd()).unwrap());
    }

    #[test]
    fn loopback_has_a_name() {
        // SAFETY: if_nametoindex takes a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(index, 0);
        assert_eq!(interface_name(index).as_deref(), Some("lo"));
        assert_eq!(interface_name(u32::MAX), None);
    }

    #[test]
    fn other_files_are_told_apart() {
        let uts = open(Path::new("/proc/self/ns/uts")).unwrap();
        assert!(matches!(
            kind(uts.as_fd()).unwrap(),
            Kind::Other(libc::CLONE_NEWUTS) | Kind::Unchecked
        ));
        let file = open(Path::new("/proc/self/status")).unwrap();
        assert_eq!(kind(file.as_fd()).unwrap(), Kind::NotNsfs);
        let missing = open(Path::new("/nonexistent/ns")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
