//! Platform answers, one file per OS family. Each file answers the same questions, with the same
//! names, so the rest of the crate never sees a `cfg`:
//!
//! - `listen_arg(requested)`: the value to pass to `listen(2)` for a requested backlog;
//! - `listen_note(requested)`: where the kernel says nothing back, what was passed and how the
//!   OS treats it, for the report;
//! - `applied_backlog(socket, requested)`: the backlog the kernel applied, and how that is known;
//! - `queue_stats(socket)`: queued connections and backlog, `None` if the socket is not listening;
//! - `is_listening(socket)`: whether `listen(2)` was called on the socket;
//! - `system_limit()` and `LIMIT_NAME`: the system's cap on the backlog and the sysctl that holds it;
//! - `set_reuse_port(socket, on)`: `SO_REUSEPORT`, where it exists;
//! - `set_platform_option(socket, addr, option)`: the options only some kernels have.

use std::io;
use std::time::Duration;

/// What lends a socket on this OS: [`AsFd`](std::os::fd::AsFd) on Unix.
#[cfg(unix)]
pub use std::os::fd::AsFd as AsSocket;
/// What lends a socket on this OS: [`AsSocket`](std::os::windows::io::AsSocket) on Windows.
#[cfg(windows)]
pub use std::os::windows::io::AsSocket;

/// A reading that failed: what was read, and the OS error.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) what: &'static str,
    pub(crate) source: io::Error,
}

#[cfg(unix)]
mod unix;

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple"
)))]
mod unknown;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
use linux as os;

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(target_os = "freebsd")]
use freebsd as os;

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_vendor = "apple")]
use apple as os;

#[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
mod openbsd_netbsd;
#[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
use openbsd_netbsd as os;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple",
    target_os = "openbsd",
    target_os = "netbsd",
    windows
)))]
mod other;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple",
    target_os = "openbsd",
    target_os = "netbsd",
    windows
)))]
use other as os;

pub(crate) use os::{
    applied_backlog, is_listening, listen_arg, queue_stats, set_platform_option, set_reuse_port,
    system_limit, LIMIT_NAME,
};

#[cfg(windows)]
pub(crate) use os::listen_note;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use unix::check_open_socket;
#[cfg(unix)]
pub(crate) use unix::{
    claim_inherited, inherited_claimed, lock_exclusive, set_cloexec, set_unix_mode_before_bind,
    with_open_socket,
};

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use os::{finish_unix_mode, is_bound_file, unix_file_in_use};

/// No `sock_diag` here: whether a socket is bound to a file is not known without connecting.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) fn unix_file_in_use(_st_dev: u64, _st_ino: u64) -> io::Result<Option<bool>> {
    Ok(None)
}

/// Which file a socket is bound to is not known here.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) fn is_bound_file(_socket: &socket2::Socket, _st_dev: u64, _st_ino: u64) -> Option<bool> {
    None
}

/// Never reached: a mode is refused before `bind` here (`set_unix_mode_before_bind`).
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) fn finish_unix_mode(
    _socket: &socket2::Socket,
    _path: &std::path::Path,
    _mode: u32,
) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use os::{netns, own_pidfd_id, pidfd, proc, sock_diag};

/// Whether `socket` belongs to the calling thread's network namespace; `None` where that
/// cannot be told, and where the OS has no network namespaces (every socket is of the one).
#[cfg(unix)]
pub(crate) fn socket_is_in_calling_netns(socket: &socket2::Socket) -> Option<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return os::netns::socket_is_in_calling_netns(std::os::fd::AsFd::as_fd(socket));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = socket;
        None
    }
}
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use os::{seccomp, supervise};

/// No pidfds here: `LISTEN_PIDFDID` cannot be checked, and `LISTEN_PID` alone decides.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) fn own_pidfd_id() -> Option<u64> {
    None
}

/// Elsewhere the request is passed as a plain `int` and clamped: nothing to add to the report.
#[cfg(not(windows))]
pub(crate) fn listen_note(_requested: u32) -> Option<String> {
    None
}

/// The kernel's counters and settings that bear on accept queues (Linux), for the report.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) struct KernelCounters {
    pub(crate) tcp_max_syn_backlog: Option<u64>,
    pub(crate) tcp_syncookies: Option<u64>,
    pub(crate) listen_overflows: Option<u64>,
    pub(crate) listen_drops: Option<u64>,
}

#[cfg(all(feature = "report", any(target_os = "linux", target_os = "android")))]
pub(crate) use os::proc::{kernel_counters, thread_netns};

/// Elsewhere there are no such counters.
#[cfg(all(
    feature = "report",
    not(any(target_os = "linux", target_os = "android"))
))]
pub(crate) fn kernel_counters() -> KernelCounters {
    KernelCounters::default()
}

/// Elsewhere there are no network namespaces.
#[cfg(all(
    feature = "report",
    not(any(target_os = "linux", target_os = "android"))
))]
pub(crate) fn thread_netns() -> Option<String> {
    None
}

/// A socket option that only some kernels have.
#[derive(Clone, Copy, Debug)]
// Only Linux reads every field.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) enum PlatformOption<'a> {
    /// `TCP_DEFER_ACCEPT` (Linux).
    DeferAccept(Duration),
    /// `TCP_FASTOPEN` (Linux: the queue length; FreeBSD and Apple: on or off).
    FastOpen(u32),
    /// `SO_BINDTODEVICE` (Linux).
    BindDevice(&'a str),
    /// `IP_FREEBIND` / `IPV6_FREEBIND` (Linux).
    FreeBind(bool),
}

impl PlatformOption<'_> {
    /// The option's name, as the OS names it.
    pub(crate) fn name(&self, ipv4: bool) -> &'static str {
        match self {
            PlatformOption::DeferAccept(_) => "TCP_DEFER_ACCEPT",
            PlatformOption::FastOpen(_) => "TCP_FASTOPEN",
            PlatformOption::BindDevice(_) => "SO_BINDTODEVICE",
            PlatformOption::FreeBind(_) if ipv4 => "IP_FREEBIND",
            PlatformOption::FreeBind(_) => "IPV6_FREEBIND",
        }
    }

    /// The error for a platform that lacks the option.
    #[allow(dead_code)] // Linux has them all.
    pub(crate) fn unsupported(&self, ipv4: bool) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{} is not available on this platform", self.name(ipv4)),
        )
    }
}

/// The socket type for a stream socket, and whether non-blocking mode is already in it.
///
/// Where the kernel takes `SOCK_NONBLOCK` in `socket(2)`, a non-blocking socket is made so in
/// one call, as tokio's own sockets are; elsewhere the caller sets `O_NONBLOCK` (`FIONBIO` on
/// Windows) afterwards.
pub(crate) fn stream_type(nonblocking: bool) -> (socket2::Type, bool) {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos"
    ))]
    if nonblocking {
        return (socket2::Type::STREAM.nonblocking(), true);
    }
    let _ = nonblocking;
    (socket2::Type::STREAM, false)
}

/// The largest value `listen(2)` takes: its argument is a C `int`.
pub(crate) fn cap_to_int(requested: u32) -> libc::c_int {
    libc::c_int::try_from(requested).unwrap_or(libc::c_int::MAX)
}

/// Windows: requests above this are passed as `SOMAXCONN_HINT`; the provider's own "reasonable
/// maximum" for `SOMAXCONN` is about this much, and `SOMAXCONN_HINT` never gives less.
pub(crate) const WINDOWS_HINT_MIN: u32 = 200;
/// Windows: the most `SOMAXCONN_HINT` gives.
pub(crate) const WINDOWS_HINT_MAX: u32 = 65535;

/// The Windows `listen` argument for a request: `SOMAXCONN_HINT(min(request, 65535))`, which is
/// `-min(request, 65535)`, above 200; the request as it is otherwise. Plain Rust, so that its
/// unit test runs on every host.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn windows_listen_arg(requested: u32) -> i32 {
    if requested > WINDOWS_HINT_MIN {
        -(requested.min(WINDOWS_HINT_MAX) as i32)
    } else {
        requested as i32
    }
}

/// The report's words for what [`windows_listen_arg`] passed.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn windows_listen_note(requested: u32) -> String {
    if requested > WINDOWS_HINT_MIN {
        format!(
            "passed as SOMAXCONN_HINT({}), which Windows adjusts into \
             {WINDOWS_HINT_MIN}..={WINDOWS_HINT_MAX}",
            requested.min(WINDOWS_HINT_MAX)
        )
    } else {
        format!("passed as {requested}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_asks_with_somaxconn_hint_above_200() {
        // The default request, i32::MAX, is Windows' SOMAXCONN, which would give about 200:
        // it must go out as SOMAXCONN_HINT(65535), that is -65535.
        assert_eq!(windows_listen_arg(crate::DEFAULT_BACKLOG), -65535);
        assert_eq!(windows_listen_arg(u32::MAX), -65535);
        assert_eq!(windows_listen_arg(65536), -65535);
        assert_eq!(windows_listen_arg(65535), -65535);
        assert_eq!(windows_listen_arg(8192), -8192);
        assert_eq!(windows_listen_arg(201), -201);
        // 200 and below: as requested (SOMAXCONN_HINT would raise them to 200).
        assert_eq!(windows_listen_arg(200), 200);
        assert_eq!(windows_listen_arg(5), 5);
        assert_eq!(windows_listen_arg(0), 0);
        assert_eq!(
            windows_listen_note(crate::DEFAULT_BACKLOG),
            "passed as SOMAXCONN_HINT(65535), which Windows adjusts into 200..=65535"
        );
        assert_eq!(windows_listen_note(5), "passed as 5");
    }
}
