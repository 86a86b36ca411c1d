//! Operating a backlog at runtime, on any listening socket: the system limit, re-listening,
//! and the accept queue.

use socket2::{SockRef, Socket};

use crate::{sys, Address, Backlog, Error, QueueStats};

/// The system's cap on the backlog, as the OS reports it now: `None` where the OS has no such
/// number (Windows) or it cannot be read.
///
/// Read fresh on each call (one file read or `sysctl`), so it sees a limit changed while the
/// program runs.
///
/// | OS | source |
/// |---|---|
/// | Linux, Android | `/proc/sys/net/core/somaxconn` of the calling thread's network namespace; where that cannot be read or reads as no number (a container's masked `/proc/sys`, systemd's `InaccessiblePaths=`, the file masked by `/dev/null` bound over it), the limit the kernel applies, read back from a listener made for it that asks for the most and is closed at once (on 127.0.0.1 and an ephemeral port, or an unnamed Unix socket where the loopback has no address) |
/// | FreeBSD | `kern.ipc.soacceptqueue` (`kern.ipc.somaxconn` on old releases) |
/// | macOS, iOS | `kern.ipc.somaxconn` |
/// | OpenBSD, NetBSD | `kern.somaxconn` |
/// | Windows and the rest | `None` |
///
/// ```
/// match maxlisten::system_limit() {
///     Some(limit) => println!("the kernel caps every backlog at {limit}"),
///     None => println!("this OS has no readable backlog limit"),
/// }
/// # #[cfg(target_os = "linux")]
/// # assert!(maxlisten::system_limit().is_some());
/// ```
pub fn system_limit() -> Option<u32> {
    sys::system_limit()
}

/// The name of the setting [`system_limit`] reads, for messages: `net.core.somaxconn` on
/// Linux, `kern.ipc.soacceptqueue` on FreeBSD, `kern.ipc.somaxconn` on Apple systems,
/// `kern.somaxconn` on OpenBSD and NetBSD, and a note in parentheses elsewhere.
///
/// ```
/// # #[cfg(target_os = "linux")]
/// assert_eq!(maxlisten::system_limit_name(), "net.core.somaxconn");
/// ```
pub fn system_limit_name() -> &'static str {
    sys::LIMIT_NAME
}

/// Calls `listen(2)` again on a socket that already listens, with a new backlog, and reports
/// what the kernel applied. Works on any listener: std's, tokio's, socket2's, one inherited
/// from systemd.
///
/// This is how a server bound with std's fixed 128 gets the full queue, and how a running
/// server picks up a system limit raised after it started (the kernel reads the limit only in
/// `listen`). Linux, the BSDs and Apple kernels change only the backlog of a listening socket.
/// On Windows the call succeeds but changes nothing, and the report says `Unknown`.
///
/// The value passed is capped as in [`ListenerBuilder::backlog`](crate::ListenerBuilder::backlog).
/// `listener` is anything that lends its socket ([`AsSocket`](crate::AsSocket): `AsFd` on
/// Unix, `AsSocket` on Windows).
///
/// # Errors
///
/// - [`Error::NotListening`] if the socket does not listen: then `listen` is *not* called,
///   since on a bound socket it would start listening.
/// - [`Error::Query`] if `SO_ACCEPTCONN` cannot be read (not a socket, say).
/// - [`Error::Listen`] if the kernel refuses.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // std passes 128
/// let backlog = maxlisten::set_backlog(&listener, u32::MAX)?;
/// # #[cfg(target_os = "linux")]
/// assert_eq!(backlog.applied(), maxlisten::system_limit());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn set_backlog<S: crate::AsSocket>(listener: &S, backlog: u32) -> Result<Backlog, Error> {
    set_backlog_on(&SockRef::from(listener), backlog)
}

/// Reads how many connections wait for `accept()` on any listening socket, its applied
/// backlog, and (Linux) the SYNs dropped on it; see [`QueueStats`].
///
/// | OS | source | system calls |
/// |---|---|---|
/// | Linux, Android | TCP: `TCP_INFO` (`tcpi_unacked`, `tcpi_sacked`) and `SO_MEMINFO`; Unix: `SO_ACCEPTCONN` and `sock_diag` | 2 |
/// | FreeBSD | `SO_LISTENQLEN`, `SO_LISTENQLIMIT` | 3 |
/// | macOS, iOS | `proc_pidfdinfo`: `soi_qlen`, `soi_qlimit` | 2 |
/// | Windows, OpenBSD, NetBSD, others | [`Error::Query`] of kind `Unsupported` | 0 |
///
/// # Errors
///
/// - [`Error::NotListening`] for a socket that does not listen.
/// - [`Error::Query`] if the reading fails, of kind `Unsupported` on platforms that cannot
///   read the queue.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // std passes 128
/// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// match maxlisten::queue_stats(&listener) {
///     Ok(stats) => println!("{} of {} queued", stats.queued, stats.backlog),
///     Err(err) => println!("not readable here: {err}"),
/// }
/// # #[cfg(target_os = "linux")]
/// # {
/// let stats = maxlisten::queue_stats(&listener)?;
/// assert_eq!(stats.queued, 1);
/// assert_eq!(Some(stats.backlog), maxlisten::system_limit().map(|limit| limit.min(128)));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn queue_stats<S: crate::AsSocket>(listener: &S) -> Result<QueueStats, Error> {
    queue_stats_on(&SockRef::from(listener))
}

/// The local address of a socket, for error messages.
pub(crate) fn addr_of(socket: &Socket) -> Option<Address> {
    Address::from_sockaddr(&socket.local_addr().ok()?)
}

/// Fails unless the socket listens.
fn ensure_listening(socket: &Socket) -> Result<(), Error> {
    match sys::is_listening(socket) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotListening {
            addr: addr_of(socket),
        }),
        Err(source) => Err(Error::Query {
            what: "SO_ACCEPTCONN",
            addr: addr_of(socket),
            source,
        }),
    }
}

pub(crate) fn set_backlog_on(socket: &Socket, backlog: u32) -> Result<Backlog, Error> {
    ensure_listening(socket)?;
    relisten(socket, backlog)
}

/// `listen(2)` again on a socket known to listen, and the new report.
pub(crate) fn relisten(socket: &Socket, backlog: u32) -> Result<Backlog, Error> {
    socket
        .listen(sys::listen_arg(backlog))
        .map_err(|source| Error::Listen {
            addr: addr_of(socket),
            source,
        })?;
    Ok(sys::applied_backlog(socket, backlog))
}

/// [`relisten`], except that a request at or above the socket's backlog never lowers it.
/// `listen` caps the request at the limit of the socket's own network namespace; where that
/// limit has fallen below the backlog since the socket listened, or cannot be known (it cannot
/// be read, or the socket is of another namespace than the calling thread's), `listen` is not
/// called and the current reading (or, where the kernel cannot report one, an unknown backlog)
/// is returned. A request below the current backlog (as the kernel reports it) is a request to
/// lower it, and is carried out.
#[cfg(unix)] // socket activation and the survey: Unix only
pub(crate) fn relisten_raising(socket: &Socket, backlog: u32) -> Result<Backlog, Error> {
    let now = sys::applied_backlog(socket, backlog);
    let current = match now.source() {
        crate::BacklogSource::Kernel => now.applied(),
        _ => None,
    };
    if current.is_some_and(|current| backlog < current) {
        return relisten(socket, backlog);
    }
    let foreign = sys::socket_is_in_calling_netns(socket) == Some(false);
    let limit = if foreign { None } else { sys::system_limit() };
    let would = limit.map(|limit| {
        u32::try_from(sys::listen_arg(backlog))
            .unwrap_or(0)
            .min(limit)
    });
    let may_lower = match (current, would) {
        (Some(current), Some(would)) => would < current,
        // Nothing to compare with: a limit that cannot be known could be below the backlog.
        (Some(_), None) => true,
        (None, _) => foreign,
    };
    if may_lower {
        // Not re-listened: what the kernel reports, or unknown (not the limit standing in).
        return Ok(match current {
            Some(_) => now,
            None => Backlog::new(backlog, None, crate::BacklogSource::Unknown),
        });
    }
    relisten(socket, backlog)
}

pub(crate) fn queue_stats_on(socket: &Socket) -> Result<QueueStats, Error> {
    match sys::queue_stats(socket) {
        Ok(Some(stats)) => Ok(stats),
        Ok(None) => Err(Error::NotListening {
            addr: addr_of(socket),
        }),
        Err(failed) => Err(Error::Query {
            what: failed.what,
            addr: addr_of(socket),
            source: failed.source,
        }),
    }
}
