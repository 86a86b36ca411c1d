//! The answers of a platform that cannot tell: shared by Windows, OpenBSD, NetBSD and the other
//! Unix systems for the questions they have no reading for.

// OpenBSD and NetBSD answer the backlog and the limit themselves.
#![allow(dead_code)]

use std::io;

use libc::c_int;
use socket2::Socket;

use super::{Failed, PlatformOption};
use crate::{Backlog, BacklogSource, QueueStats};

/// What to pass to `listen(2)`: the request as a non-negative `int`.
pub(crate) fn listen_arg(requested: u32) -> c_int {
    super::cap_to_int(requested)
}

/// Unknown: no reading of the applied backlog.
pub(crate) fn applied_backlog(_socket: &Socket, requested: u32) -> Backlog {
    Backlog::new(requested, None, BacklogSource::Unknown)
}

/// No call reads the accept queue; a socket that does not listen is still told apart, as on
/// the platforms that can read it.
pub(crate) fn queue_stats(socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    let listening = super::is_listening(socket).map_err(|source| Failed {
        what: "SO_ACCEPTCONN",
        source,
    })?;
    if !listening {
        return Ok(None);
    }
    Err(Failed {
        what: "the accept queue",
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "this platform has no per-socket reading of the accept queue",
        ),
    })
}

/// No system limit to read.
pub(crate) fn system_limit() -> Option<u32> {
    None
}

/// None of the platform options exist.
pub(crate) fn set_platform_option(
    _socket: &Socket,
    ipv4: bool,
    option: PlatformOption<'_>,
) -> io::Result<()> {
    Err(option.unsupported(ipv4))
}
