//! Other Unix systems (illumos, Solaris, DragonFly, Haiku, ...): the backlog is passed as an
//! `int` and the kernel clamps it, but no reading of the applied value or of the system limit
//! is implemented, so both are reported as unknown rather than guessed.

pub(crate) use super::unix::{is_listening, set_reuse_port};
pub(crate) use super::unknown::{
    applied_backlog, listen_arg, queue_stats, set_platform_option, system_limit,
};

/// No sysctl is read here.
pub(crate) const LIMIT_NAME: &str = "(none known)";
