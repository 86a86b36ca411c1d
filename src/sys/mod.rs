//! Platform answers, one file per OS family. Each file answers the same questions, with the same
//! names, so the rest of the crate never sees a `cfg`:
//!
//! - `listen_arg(requested)`: the value to pass to `listen(2)` for a requested backlog;
//! - `applied_backlog(socket, requested)`: the backlog the kernel applied, and how that is known;
//! - `queue_stats(socket)`: queued connections and backlog, `None` if the socket is not listening;
//! - `is_listening(socket)`: whether `listen(2)` was called on the socket;
//! - `system_limit()` and `LIMIT_NAME`: the system's cap on the backlog and the sysctl that holds it;
//! - `set_reuse_port(socket, on)`: `SO_REUSEPORT`, where it exists;
//! - `set_platform_option(socket, addr, option)`: the options only some kernels have.

use std::io;
use std::time::Duration;

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
#[path = "linux.rs"]
mod os;

#[cfg(target_os = "freebsd")]
#[path = "freebsd.rs"]
mod os;

#[cfg(target_vendor = "apple")]
#[path = "apple.rs"]
mod os;

#[cfg(any(target_os = "openbsd", target_os = "netbsd"))]
#[path = "openbsd_netbsd.rs"]
mod os;

#[cfg(windows)]
#[path = "windows.rs"]
mod os;

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_vendor = "apple",
    target_os = "openbsd",
    target_os = "netbsd",
    windows
)))]
#[path = "other.rs"]
mod os;

pub(crate) use os::{
    applied_backlog, is_listening, listen_arg, queue_stats, set_platform_option, set_reuse_port,
    system_limit, LIMIT_NAME,
};

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

/// The largest value `listen(2)` takes: its argument is a C `int`.
pub(crate) fn cap_to_int(requested: u32) -> libc::c_int {
    libc::c_int::try_from(requested).unwrap_or(libc::c_int::MAX)
}
