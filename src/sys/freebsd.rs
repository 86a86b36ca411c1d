//! FreeBSD.
//!
//! - `listen(2)` clamps a negative or too large backlog to `kern.ipc.soacceptqueue` (named
//!   `kern.ipc.somaxconn` before FreeBSD 10.3), a global limit.
//! - `SO_LISTENQLIMIT` reads the applied backlog back, `SO_LISTENQLEN` the queued connections.
//!   The queue overflows at about 1.5 × the limit.

use libc::c_int;
use socket2::Socket;

use super::unix::{check_listening, getsockopt_int, sysctl_by_name};
pub(crate) use super::unix::{
    is_listening, set_fastopen_only as set_platform_option, set_reuse_port,
};
use super::Failed;
use crate::{Backlog, BacklogSource, QueueStats};

/// The sysctl that caps the backlog.
pub(crate) const LIMIT_NAME: &str = "kern.ipc.soacceptqueue";

/// What to pass to `listen(2)`: the request as an `int` (the kernel stores an unsigned int).
pub(crate) fn listen_arg(requested: u32) -> c_int {
    super::cap_to_int(requested)
}

fn read(socket: &Socket, what: &'static str, name: c_int) -> Result<u32, Failed> {
    getsockopt_int(socket, libc::SOL_SOCKET, name)
        .map(|v| u32::try_from(v).unwrap_or(0))
        .map_err(|source| Failed { what, source })
}

/// The applied backlog: `SO_LISTENQLIMIT`, else derived from the sysctl.
pub(crate) fn applied_backlog(socket: &Socket, requested: u32) -> Backlog {
    if let Ok(limit) = read(socket, "SO_LISTENQLIMIT", libc::SO_LISTENQLIMIT) {
        return Backlog::new(requested, Some(limit), BacklogSource::Kernel);
    }
    Backlog::derived(requested, system_limit(), |limit| {
        (listen_arg(requested) as u32).min(limit)
    })
}

/// `SO_LISTENQLEN` and `SO_LISTENQLIMIT`, after `SO_ACCEPTCONN` says the socket listens.
pub(crate) fn queue_stats(socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    if !check_listening(socket)? {
        return Ok(None);
    }
    Ok(Some(QueueStats {
        queued: read(socket, "SO_LISTENQLEN", libc::SO_LISTENQLEN)?,
        backlog: read(socket, "SO_LISTENQLIMIT", libc::SO_LISTENQLIMIT)?,
        // FreeBSD counts overflows only system-wide (`netstat -s`, "listen queue overflows").
        drops: None,
    }))
}

/// `kern.ipc.soacceptqueue`, or its old name `kern.ipc.somaxconn`.
pub(crate) fn system_limit() -> Option<u32> {
    sysctl_by_name(c"kern.ipc.soacceptqueue").or_else(|| sysctl_by_name(c"kern.ipc.somaxconn"))
}
