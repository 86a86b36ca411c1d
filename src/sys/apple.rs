//! macOS, iOS and the other Apple systems (XNU).
//!
//! - `listen(2)` turns a backlog of 0, a negative one or one above `kern.ipc.somaxconn` into
//!   `kern.ipc.somaxconn`, then stores it in a `short` (`so_qlimit`): requests are capped at
//!   32767 so that a raised limit cannot wrap.
//! - `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` reports `soi_qlimit` (applied backlog) and `soi_qlen`
//!   (queued connections). libc has the function but not the structure, so the few fields read
//!   are taken at their offsets in `struct socket_fdinfo` (`sys/proc_info.h`), and the reading is
//!   only trusted when the family and the listening flag read at their offsets agree with the
//!   socket. Otherwise the backlog is derived from the sysctl.

use std::io;
use std::os::fd::AsRawFd;

use libc::c_int;
use socket2::Socket;

use super::unix::{check_listening, sysctl_by_name};
pub(crate) use super::unix::{
    is_listening, set_fastopen_only as set_platform_option, set_reuse_port,
};
use super::Failed;
use crate::{Backlog, BacklogSource, QueueStats};

/// The sysctl that caps the backlog.
pub(crate) const LIMIT_NAME: &str = "kern.ipc.somaxconn";

/// `PROC_PIDFDSOCKETINFO` in `sys/proc_info.h`.
const PROC_PIDFDSOCKETINFO: c_int = 3;
/// `struct socket_fdinfo` starts with a 24-byte `struct proc_fileinfo`; in the `struct
/// socket_info` that follows, a 136-byte `struct vinfo_stat` and two `uint64_t` come first.
const SOCKET_INFO: usize = 24;
const SOI_FAMILY: usize = SOCKET_INFO + 160;
const SOI_OPTIONS: usize = SOCKET_INFO + 164;
const SOI_QLEN: usize = SOCKET_INFO + 170;
const SOI_QLIMIT: usize = SOCKET_INFO + 174;

/// Room for `struct socket_fdinfo` (792 bytes), 8-byte aligned.
#[repr(C, align(8))]
struct FdInfo([u8; 1024]);

impl FdInfo {
    fn i16_at(&self, at: usize) -> i16 {
        i16::from_ne_bytes([self.0[at], self.0[at + 1]])
    }
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_ne_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
}

/// (queued, applied backlog) of a listening TCP or Unix socket from `proc_pidfdinfo` (the
/// queue lives in the generic socket layer, whatever the family).
fn socket_info(socket: &Socket) -> io::Result<(u32, u32)> {
    let mut info = FdInfo([0; 1024]);
    // SAFETY: `info` is a live, writable local of the size passed; the kernel writes at most that
    // many bytes and returns how many it wrote.
    let written = unsafe {
        libc::proc_pidfdinfo(
            libc::getpid(),
            socket.as_raw_fd(),
            PROC_PIDFDSOCKETINFO,
            info.0.as_mut_ptr().cast(),
            info.0.len() as c_int,
        )
    };
    if written <= 0 {
        return Err(io::Error::last_os_error());
    }
    let family = info.i32_at(SOI_FAMILY);
    let listening = info.i16_at(SOI_OPTIONS) as c_int & libc::SO_ACCEPTCONN != 0;
    if (written as usize) < SOI_QLIMIT + 2
        || !(family == libc::AF_INET || family == libc::AF_INET6 || family == libc::AF_UNIX)
        || !listening
    {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "proc_pidfdinfo did not describe a listening TCP or Unix socket",
        ));
    }
    let field = |at| u32::try_from(info.i16_at(at)).unwrap_or(0);
    Ok((field(SOI_QLEN), field(SOI_QLIMIT)))
}

/// What to pass to `listen(2)`: the request capped at 32767 (`so_qlimit` is a `short`).
pub(crate) fn listen_arg(requested: u32) -> c_int {
    super::cap_to_int(requested).min(c_int::from(i16::MAX))
}

/// The applied backlog: `soi_qlimit`, else derived from `kern.ipc.somaxconn`.
pub(crate) fn applied_backlog(socket: &Socket, requested: u32) -> Backlog {
    if let Ok((_, limit)) = socket_info(socket) {
        return Backlog::new(requested, Some(limit), BacklogSource::Kernel);
    }
    Backlog::derived(requested, system_limit(), |limit| {
        let arg = listen_arg(requested) as u32;
        // 0 means "the limit" on XNU; the result is stored in a short.
        let applied = if arg == 0 || arg > limit { limit } else { arg };
        u32::try_from(applied as u16 as i16).unwrap_or(0)
    })
}

/// `soi_qlen` and `soi_qlimit`, after `SO_ACCEPTCONN` says the socket listens.
pub(crate) fn queue_stats(socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    if !check_listening(socket)? {
        return Ok(None);
    }
    let (queued, backlog) = socket_info(socket).map_err(|source| Failed {
        what: "proc_pidfdinfo",
        source,
    })?;
    Ok(Some(QueueStats {
        queued,
        backlog,
        drops: None,
    }))
}

/// `kern.ipc.somaxconn`.
pub(crate) fn system_limit() -> Option<u32> {
    sysctl_by_name(c"kern.ipc.somaxconn")
}
