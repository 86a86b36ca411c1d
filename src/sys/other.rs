//! Other Unix systems (illumos, Solaris, DragonFly, Haiku, ...): the backlog is passed as an
//! `int` and the kernel clamps it, but no reading of the applied value or of the system limit
//! is implemented, so both are reported as unknown rather than guessed.

use libc::c_int;
use socket2::Socket;

pub(crate) use super::unix::{is_listening, set_reuse_port};
use super::{Failed, PlatformOption};
use crate::{Backlog, BacklogSource, QueueStats};

/// No sysctl is read here.
pub(crate) const LIMIT_NAME: &str = "(none known)";

/// What to pass to `listen(2)`: the request as a non-negative `int`.
pub(crate) fn listen_arg(requested: u32) -> c_int {
    super::cap_to_int(requested)
}

/// Unknown: no reading is implemented.
pub(crate) fn applied_backlog(_socket: &Socket, requested: u32) -> Backlog {
    Backlog::new(requested, None, BacklogSource::Unknown)
}

/// No known call reads the accept queue here.
pub(crate) fn queue_stats(_socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    Err(Failed::queue_unsupported())
}

/// No limit is read here.
pub(crate) fn system_limit() -> Option<u32> {
    None
}

/// None of these options exist here.
pub(crate) fn set_platform_option(
    _socket: &Socket,
    ipv4: bool,
    option: PlatformOption<'_>,
) -> std::io::Result<()> {
    Err(option.unsupported(ipv4))
}
