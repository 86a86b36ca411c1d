//! Windows.
//!
//! - `SOMAXCONN` is `0x7fffffff`, which is also `i32::MAX`: `listen(s, i32::MAX)` does not ask
//!   for the largest backlog but lets the provider pick "a maximum reasonable value", about 200
//!   on current Windows. The documented way to ask for more is `SOMAXCONN_HINT(n)`, which is
//!   `-n`; Windows adjusts `n` into 200..=65535. So a request above 200 is passed as
//!   `SOMAXCONN_HINT(min(request, 65535))`, and a request of 200 or less as it is. This is the
//!   fix OpenJDK made (bug 8330940, openjdk/jdk PR 25819); CUBRID PR 4512 describes the same
//!   trap.
//! - No call reads the applied value back, so it is reported as unknown.
//! - Calling `listen` again on a listening socket succeeds without changing its backlog.
//! - There is no system limit to read.

use std::io;
use std::os::windows::io::AsRawSocket;

use socket2::Socket;
use windows_sys::Win32::Networking::WinSock;

// Nothing can be read back.
pub(crate) use super::unknown::{applied_backlog, queue_stats, set_platform_option, system_limit};

/// What to pass to `listen`: `SOMAXCONN_HINT(min(request, 65535))` above 200, else the request.
pub(crate) fn listen_arg(requested: u32) -> i32 {
    super::windows_listen_arg(requested)
}

/// What [`listen_arg`] passed, for the report: Windows says nothing back.
pub(crate) fn listen_note(requested: u32) -> Option<String> {
    Some(super::windows_listen_note(requested))
}

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
