//! Windows.
//!
//! - `listen(s, SOMAXCONN)` (`SOMAXCONN` is `0x7fffffff`) lets the provider pick "a maximum
//!   reasonable value"; no call reads the applied value back, so it is reported as unknown.
//! - Calling `listen` again on a listening socket succeeds without changing its backlog.
//! - There is no system limit to read.

use std::io;
use std::os::windows::io::AsRawSocket;

use socket2::Socket;
use windows_sys::Win32::Networking::WinSock;

// `listen(s, i32::MAX)` is `listen(s, SOMAXCONN)`; nothing can be read back.
pub(crate) use super::unknown::{
    applied_backlog, listen_arg, queue_stats, set_platform_option, system_limit,
};

/// There is no such sysctl.
pub(crate) const LIMIT_NAME: &str = "(none on Windows)";

/// `SO_ACCEPTCONN`.
pub(crate) fn is_listening(socket: &Socket) -> io::Result<bool> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: `value` and `len` are live locals; Winsock writes at most `len` bytes to `value`.
    let rc = unsafe {
        WinSock::getsockopt(
            socket.as_raw_socket() as WinSock::SOCKET,
            WinSock::SOL_SOCKET,
            WinSock::SO_ACCEPTCONN,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value != 0)
    } else {
        // SAFETY: no preconditions; reads this thread's last Winsock error.
        Err(io::Error::from_raw_os_error(unsafe {
            WinSock::WSAGetLastError()
        }))
    }
}

/// Windows has no `SO_REUSEPORT`.
pub(crate) fn set_reuse_port(_socket: &Socket, _on: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT does not exist on Windows",
    ))
}
