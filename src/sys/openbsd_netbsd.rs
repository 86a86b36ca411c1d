//! OpenBSD and NetBSD: no per-socket reading of the backlog is known, so it is derived from
//! the sysctl and the kernel's clamping rule.
//!
//! - OpenBSD: a negative or too large backlog becomes `kern.somaxconn`; the result is then
//!   raised to at least `kern.sominconn` (80 by default).
//! - NetBSD: a negative backlog becomes **0**, then `min(backlog, kern.somaxconn)`. This crate
//!   never passes a negative value.

use socket2::Socket;

pub(crate) use super::unix::{is_listening, set_reuse_port};
pub(crate) use super::unknown::{listen_arg, queue_stats, set_platform_option};
use crate::Backlog;

/// The sysctl that caps the backlog.
pub(crate) const LIMIT_NAME: &str = "kern.somaxconn";

/// The applied backlog, derived from the sysctls.
pub(crate) fn applied_backlog(_socket: &Socket, requested: u32) -> Backlog {
    Backlog::derived(requested, system_limit(), |limit| {
        (listen_arg(requested) as u32).min(limit).max(minimum())
    })
}

/// `kern.somaxconn`.
#[cfg(target_os = "netbsd")]
pub(crate) fn system_limit() -> Option<u32> {
    super::unix::sysctl_by_name(c"kern.somaxconn")
}

/// NetBSD raises no small backlog.
#[cfg(target_os = "netbsd")]
fn minimum() -> u32 {
    0
}

/// `kern.somaxconn`.
#[cfg(target_os = "openbsd")]
pub(crate) fn system_limit() -> Option<u32> {
    kern_int(libc::KERN_SOMAXCONN)
}

/// `kern.sominconn`: OpenBSD raises every backlog to at least this.
#[cfg(target_os = "openbsd")]
fn minimum() -> u32 {
    kern_int(libc::KERN_SOMINCONN).unwrap_or(0)
}

#[cfg(target_os = "openbsd")]
fn kern_int(name: libc::c_int) -> Option<u32> {
    let mib = [libc::CTL_KERN, name];
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>();
    // SAFETY: `mib` holds two names; `value` and `len` are live locals and the kernel writes at
    // most `len` bytes to `value`; no new value is set (null pointer, length 0).
    let rc = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            2,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 {
        u32::try_from(value).ok()
    } else {
        None
    }
}
