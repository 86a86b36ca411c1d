//! Listeners handed over by socket activation (systemd's `LISTEN_FDS` protocol), checked and
//! re-listened at the largest backlog (Unix only).

use std::env;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixListener;

use socket2::{Domain, SockRef, Type};

use crate::{control, sys, Backlog, BacklogSource, Error, DEFAULT_BACKLOG};

/// The first descriptor socket activation passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// More descriptors than any service is handed; a larger count is a broken environment.
const MAX_FDS: u32 = 65536;

/// One listening socket handed over by socket activation, adopted by [`inherited`].
///
/// ```
/// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
/// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
/// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = made.local_addr()?;
/// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
/// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
/// # // handed over safely.
/// # let made = OwnedFd::from(made);
/// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
/// # if at3.as_raw_fd() != 3 {
/// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
/// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
/// #     return Ok(());
/// # }
/// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
/// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
/// # std::env::set_var("LISTEN_FDS", "1");
/// # std::env::set_var("LISTEN_FDNAMES", "web");
/// # let mut served = 0;
/// for socket in maxlisten::inherited()? {
///     println!("{:?}: backlog {}", socket.name(), socket.backlog());
///     match socket.into_listener() {
///         maxlisten::InheritedListener::Tcp(listener) => {
///             /* serve TCP */
/// #           let _client = std::net::TcpStream::connect(addr)?;
/// #           listener.accept()?;
/// #           served += 1;
///         }
///         maxlisten::InheritedListener::Unix(listener) => { /* serve Unix */ }
///     }
/// }
/// # assert_eq!(served, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Inherited {
    fd: RawFd,
    name: Option<String>,
    backlog: Backlog,
    listener: InheritedListener,
}

/// The listener an [`Inherited`] socket is: TCP or Unix.
///
/// ```
/// let listener = maxlisten::InheritedListener::Tcp(std::net::TcpListener::bind("127.0.0.1:0")?);
/// assert!(listener.into_tcp().is_some());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub enum InheritedListener {
    /// An IPv4 or IPv6 TCP listener.
    Tcp(TcpListener),
    /// A Unix stream listener.
    Unix(UnixListener),
}

impl InheritedListener {
    /// The TCP listener, if this is one.
    ///
    /// ```
    /// let listener = maxlisten::InheritedListener::Tcp(std::net::TcpListener::bind("127.0.0.1:0")?);
    /// let tcp: std::net::TcpListener = listener.into_tcp().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_tcp(self) -> Option<TcpListener> {
        match self {
            InheritedListener::Tcp(listener) => Some(listener),
            InheritedListener::Unix(_) => None,
        }
    }

    /// The Unix listener, if this is one.
    ///
    /// ```
    /// let listener = maxlisten::InheritedListener::Tcp(std::net::TcpListener::bind("127.0.0.1:0")?);
    /// assert!(listener.into_unix().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_unix(self) -> Option<UnixListener> {
        match self {
            InheritedListener::Tcp(_) => None,
            InheritedListener::Unix(listener) => Some(listener),
        }
    }
}

impl AsFd for InheritedListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            InheritedListener::Tcp(listener) => listener.as_fd(),
            InheritedListener::Unix(listener) => listener.as_fd(),
        }
    }
}

impl Inherited {
    /// The descriptor's name from `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`, or the
    /// socket unit's name), if the variable was set.
    ///
    /// ```
    /// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
    /// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    /// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = made.local_addr()?;
    /// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
    /// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
    /// # // handed over safely.
    /// # let made = OwnedFd::from(made);
    /// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
    /// # if at3.as_raw_fd() != 3 {
    /// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
    /// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
    /// #     return Ok(());
    /// # }
    /// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
    /// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
    /// # std::env::set_var("LISTEN_FDS", "1");
    /// # std::env::set_var("LISTEN_FDNAMES", "web");
    /// let web = maxlisten::inherited()?.into_iter().find(|s| s.name() == Some("web"));
    /// # assert_eq!(web.unwrap().fd(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The descriptor number it was handed over as (3 and up).
    ///
    /// ```
    /// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
    /// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    /// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = made.local_addr()?;
    /// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
    /// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
    /// # // handed over safely.
    /// # let made = OwnedFd::from(made);
    /// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
    /// # if at3.as_raw_fd() != 3 {
    /// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
    /// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
    /// #     return Ok(());
    /// # }
    /// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
    /// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
    /// # std::env::set_var("LISTEN_FDS", "1");
    /// # std::env::set_var("LISTEN_FDNAMES", "web");
    /// let sockets = maxlisten::inherited()?;
    /// # assert_eq!(sockets.len(), 1);
    /// for socket in &sockets {
    ///     assert!(socket.fd() >= 3);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The backlog after adoption: re-listened at the maximum by [`inherited`], as found by
    /// [`inherited_keep_backlog`].
    ///
    /// ```
    /// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
    /// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    /// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = made.local_addr()?;
    /// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
    /// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
    /// # // handed over safely.
    /// # let made = OwnedFd::from(made);
    /// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
    /// # if at3.as_raw_fd() != 3 {
    /// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
    /// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
    /// #     return Ok(());
    /// # }
    /// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
    /// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
    /// # std::env::set_var("LISTEN_FDS", "1");
    /// # std::env::set_var("LISTEN_FDNAMES", "web");
    /// let sockets = maxlisten::inherited()?;
    /// # assert_eq!(sockets.len(), 1);
    /// for socket in &sockets {
    ///     println!("{}", socket.backlog());
    /// #   #[cfg(target_os = "linux")]
    /// #   assert_eq!(socket.backlog().source(), maxlisten::BacklogSource::Kernel);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    /// The listener, to serve with.
    ///
    /// ```
    /// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
    /// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    /// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = made.local_addr()?;
    /// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
    /// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
    /// # // handed over safely.
    /// # let made = OwnedFd::from(made);
    /// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
    /// # if at3.as_raw_fd() != 3 {
    /// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
    /// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
    /// #     return Ok(());
    /// # }
    /// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
    /// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
    /// # std::env::set_var("LISTEN_FDS", "1");
    /// # std::env::set_var("LISTEN_FDNAMES", "web");
    /// # let _client = std::net::TcpStream::connect(addr)?;
    /// # let mut accepted = 0;
    /// for socket in maxlisten::inherited()? {
    ///     if let Some(tcp) = socket.into_listener().into_tcp() {
    ///         tcp.accept()?;
    /// #       accepted += 1;
    ///     }
    /// }
    /// # assert_eq!(accepted, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_listener(self) -> InheritedListener {
        self.listener
    }

    /// The listener, borrowed.
    ///
    /// ```
    /// # // As systemd would: a listener at descriptor 3, and the variables (one thread: sound).
    /// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    /// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = made.local_addr()?;
    /// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
    /// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
    /// # // handed over safely.
    /// # let made = OwnedFd::from(made);
    /// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
    /// # if at3.as_raw_fd() != 3 {
    /// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
    /// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
    /// #     return Ok(());
    /// # }
    /// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
    /// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
    /// # std::env::set_var("LISTEN_FDS", "1");
    /// # std::env::set_var("LISTEN_FDNAMES", "web");
    /// # let _client = std::net::TcpStream::connect(addr)?;
    /// let sockets = maxlisten::inherited()?;
    /// # assert_eq!(sockets.len(), 1);
    /// for socket in &sockets {
    ///     let stats = maxlisten::queue_stats(socket.listener())?;
    /// #   #[cfg(target_os = "linux")]
    /// #   assert_eq!(stats.queued, 1);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listener(&self) -> &InheritedListener {
        &self.listener
    }
}

/// Adopts the listening sockets socket activation handed to this process, and re-listens each
/// at the largest backlog the kernel allows. The environment is left as it is.
///
/// This is the `LISTEN_FDS` protocol as systemd defines it (`sd_listen_fds(3)`):
/// - `LISTEN_PID` must be this process's id; if it names another process, or is unset, there
///   are no sockets for this process (an empty list, not an error). On Linux, `LISTEN_PIDFDID`,
///   where set, must also match this process's pidfd.
/// - `LISTEN_FDS` counts the descriptors, from 3; `LISTEN_FDNAMES` names them, separated by
///   `:`.
/// - Every descriptor must be a listening stream socket, TCP or Unix; each is checked before
///   anything is changed, and one that is not fails the whole call.
/// - Then each is made close-on-exec and re-listened.
///
/// # Ownership, and the environment
///
/// The descriptors become the returned listeners' (they close them when dropped). They are
/// adopted once per process: a second call, of this function or of
/// [`inherited_keep_backlog`] or [`inherited_and_unset_env`], returns an empty list. Do not
/// also adopt them through another library (`listenfd`, `sd-notify`, `libsystemd`) or by
/// number: two owners of one descriptor close it twice.
///
/// The variables stay in the environment, because removing them while other threads may read
/// it is a data race (`#[tokio::main]` has started its workers before `main`'s body runs). That
/// is harmless for children: `LISTEN_PID` names this process, so a child never adopts anything,
/// and the descriptors are close-on-exec. To remove them anyway, as `sd_listen_fds(1)` does,
/// call [`inherited_and_unset_env`] while the process has one thread. This is how the
/// `sd-notify` crate splits it (`listen_fds` leaves the environment; the `unsafe`
/// `listen_fds_and_unset_env` unsets it); `listenfd` instead removes `LISTEN_PID` and
/// `LISTEN_FDS` from a safe function, which races with other threads.
///
/// # The backlog, and systemd's `Backlog=`
///
/// Every socket is re-listened at the largest backlog: an administrator's explicit `Backlog=`
/// in the `.socket` unit (or the backlog any other tool listened with) is overridden, for the
/// socket unit too, across restarts of the service, since systemd keeps the same socket. To
/// respect it, use [`inherited_keep_backlog`]. A backlog is never lowered: `listen` caps the
/// request at the limit of the socket's own network namespace, so where that limit has fallen
/// below a socket's backlog since it listened, or cannot be known (`/proc/sys` masked and no
/// socket may be made to measure it; or the socket is of another network namespace than this
/// process, as a service with `PrivateNetwork=` gets its socket unit's, whose limit cannot be
/// read from here; told by `SO_NETNS_COOKIE`, Linux 5.14+), `listen` is not called on it and
/// its backlog stays as it is.
///
/// Why re-listen: systemd before v254 listened with `SOMAXCONN` (128, or 4096 with glibc 2.31+),
/// `systemfd` listens with 1, and any of them took the system limit as it was when the socket
/// unit started.
///
/// Use with a systemd socket unit (`ListenStream=8080`, `ListenStream=/run/app.sock`), with
/// `systemd-socket-activate -l 8080 ./server` by hand, or in development with
/// `systemfd --no-pid -s http::8080 -- cargo watch -x run` (the `listenfd` companion).
///
/// # Errors
///
/// - [`Error::Environment`]: `LISTEN_PID`, `LISTEN_FDS` or `LISTEN_PIDFDID` is not a number,
///   `LISTEN_FDS` is missing or absurd, or `LISTEN_FDNAMES` has a different count of names.
/// - [`Error::Inherited`]: a descriptor is not open (`EBADF`), not a socket (`ENOTSOCK`), not
///   a stream socket of TCP or Unix, or does not listen (`InvalidInput`); or it could not be
///   made close-on-exec or re-listened.
///
/// All or nothing. Every descriptor is checked (everything that only reads) before any is
/// changed, so an error from the environment or a check changes nothing. If a change itself
/// fails (a security policy refuses `listen`, say), what this call changed on the sockets
/// before is set back: close-on-exec is cleared again, and a socket re-listened is re-listened
/// at the backlog the kernel reported before (a listening socket's backlog can be lowered
/// again by `listen(2)`; this only undoes this call's own raise, and is read back). The error
/// is then the OS error of the failed step, unchanged. Only a socket whose backlog before was
/// not known (a Unix socket of another network namespace, or a kernel without a read-back)
/// cannot be set back; such sockets are changed last, and if one is left re-listened, the
/// error's message names it ("left changed by this call: descriptor 3 ..."), its
/// [`io::ErrorKind`] is the failed step's, and the OS error is its
/// [`source`](std::error::Error::source). On any error nothing is adopted: the descriptors
/// stay open, and a later call may try again.
///
/// ```
/// # // Hand this process a listener, as systemd would: descriptor 3, and the variables.
/// # // (The doctest has one thread, so setting the environment here is sound.)
/// # #[cfg(target_os = "linux")]
/// # {
/// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
/// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = made.local_addr()?;
/// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
/// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
/// # // handed over safely.
/// # let made = OwnedFd::from(made);
/// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
/// # if at3.as_raw_fd() != 3 {
/// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
/// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
/// #     return Ok(());
/// # }
/// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
/// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
/// # std::env::set_var("LISTEN_FDS", "1");
/// # std::env::set_var("LISTEN_FDNAMES", "web");
/// // Under `systemd-socket-activate -l 127.0.0.1:8080 --fdname=web ./server`:
/// let sockets = maxlisten::inherited()?;
/// for socket in &sockets {
///     println!("adopted fd {} {:?}: {}", socket.fd(), socket.name(), socket.backlog());
/// }
/// # assert_eq!(sockets.len(), 1);
/// # assert_eq!((sockets[0].fd(), sockets[0].name()), (3, Some("web")));
/// # assert_eq!(sockets[0].backlog().applied(), maxlisten::system_limit());
/// # let tcp = sockets.into_iter().next().unwrap().into_listener().into_tcp().unwrap();
/// # assert_eq!(tcp.local_addr()?, addr);
/// # // Adopted once; the environment is left alone.
/// # assert!(maxlisten::inherited()?.is_empty());
/// # assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("1"));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inherited() -> Result<Vec<Inherited>, Error> {
    adopt(Some(DEFAULT_BACKLOG))
}

/// As [`inherited`], but leaves each socket's backlog as it was handed over (an
/// administrator's `Backlog=` holds); the report says what it is.
///
/// The report is what the kernel says of this very socket (Linux, FreeBSD, Apple: source
/// [`BacklogSource::Kernel`], and [`Backlog::requested`] is that same value, since what the
/// other side asked for is not known). Where the kernel cannot say (OpenBSD, NetBSD, the
/// rest), it is [`BacklogSource::Unknown`] with no applied value and a request of 0: a figure
/// derived from the system limit would assume the other side asked for the maximum.
///
/// # Errors
///
/// As [`inherited`].
///
/// ```
/// # #[cfg(target_os = "linux")]
/// # {
/// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
/// # // Hand this process a listener with a backlog of 5, as a socket unit with Backlog=5 would.
/// # let made = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
/// # made.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>()?.into())?;
/// # made.listen(5)?;
/// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
/// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
/// # // handed over safely.
/// # let made = OwnedFd::from(made);
/// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
/// # if at3.as_raw_fd() != 3 {
/// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
/// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
/// #     return Ok(());
/// # }
/// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
/// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
/// # std::env::set_var("LISTEN_FDS", "1");
/// for socket in maxlisten::inherited_keep_backlog()? {
///     println!("handed over with backlog {}", socket.backlog());
/// #   assert_eq!(socket.backlog().applied(), Some(5));
/// #   assert_eq!(socket.backlog().source(), maxlisten::BacklogSource::Kernel);
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inherited_keep_backlog() -> Result<Vec<Inherited>, Error> {
    adopt(None)
}

/// As [`inherited`], and then removes `LISTEN_PID`, `LISTEN_PIDFDID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` from the environment, as `sd_listen_fds(1)` does, when they are meant for
/// this process (`LISTEN_PID` is this process's id) and the call succeeded.
///
/// # Safety
///
/// No other thread may read or write the environment while this runs: not through
/// `std::env`, and not through C code that calls `getenv` (DNS resolution, time zones,
/// locales). Call it at the start of `main`, before any thread is started; not from
/// `#[tokio::main]`, whose worker threads already run, but from a plain `main` before the
/// runtime is built. (This is the rule edition 2024 makes [`std::env::remove_var`] `unsafe`
/// for.)
///
/// # Errors
///
/// As [`inherited`]; on an error the environment is left as it is.
///
/// ```
/// # #[cfg(target_os = "linux")]
/// # {
/// # use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
/// # let made = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # // Onto 3: a new descriptor is the lowest free one, and `try_clone` takes the lowest free
/// # // from 3. If 3 is open already (inherited from whoever runs the doctests), nothing can be
/// # // handed over safely.
/// # let made = OwnedFd::from(made);
/// # let at3 = if made.as_raw_fd() == 3 { made } else { made.try_clone()? };
/// # if at3.as_raw_fd() != 3 {
/// #     assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "descriptor 3 is open");
/// #     eprintln!("descriptor 3 is already open in this process: nothing to hand over");
/// #     return Ok(());
/// # }
/// # let _ = at3.into_raw_fd(); // The protocol's now: `inherited` takes it.
/// # std::env::set_var("LISTEN_PID", std::process::id().to_string());
/// # std::env::set_var("LISTEN_FDS", "1");
/// fn main() -> Result<(), maxlisten::Error> {
///     // SAFETY: the first thing in main: no other thread exists yet.
///     let sockets = unsafe { maxlisten::inherited_and_unset_env()? };
///     assert!(std::env::var_os("LISTEN_FDS").is_none());
/// #   assert_eq!(sockets.len(), 1);
///     // ... start threads, a runtime, and serve `sockets`.
///     Ok(())
/// }
/// # main()?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub unsafe fn inherited_and_unset_env() -> Result<Vec<Inherited>, Error> {
    let meant_for_us = handed_to_us()?.is_some();
    let sockets = adopt(Some(DEFAULT_BACKLOG))?;
    if meant_for_us {
        // The caller promises that no other thread touches the environment now.
        unset_variables();
    }
    Ok(sockets)
}

/// A socket checked but not yet adopted: what adopting it needs, read without changing it.
struct Checked {
    fd: RawFd,
    name: Option<String>,
    unix: bool,
    /// Its backlog as the kernel reports it before adoption, where it can: what a failed
    /// adoption sets it back to.
    before: Option<u32>,
}

/// What adoption changed on one socket so far, to be undone if a later step fails.
#[derive(Default)]
struct Changed {
    /// Close-on-exec was set here, and was not set before.
    cloexec: bool,
    /// It was re-listened, and this is the report after.
    relistened: Option<Backlog>,
}

fn adopt(relisten: Option<u32>) -> Result<Vec<Inherited>, Error> {
    let Some(count) = handed_to_us()? else {
        return Ok(Vec::new());
    };
    if sys::inherited_claimed() {
        return Ok(Vec::new());
    }
    let names = names(count)?;
    // Check every descriptor before touching any: everything here only reads.
    let mut checked = Vec::with_capacity(count as usize);
    for (i, name) in names.into_iter().enumerate() {
        let fd = FIRST_FD + i as RawFd;
        let (unix, before) = check(fd).map_err(|source| Error::Inherited {
            fd,
            name: name.clone(),
            source,
        })?;
        checked.push(Checked {
            fd,
            name,
            unix,
            before,
        });
    }
    // Two calls at once: one adopts, the other finds nothing.
    let fds: Vec<RawFd> = checked.iter().map(|c| c.fd).collect();
    let Some(claim) = sys::claim_inherited(&fds) else {
        return Ok(Vec::new());
    };
    let backlogs = match change(claim.fds(), &checked, relisten) {
        Ok(backlogs) => backlogs,
        Err(err) => {
            // Nothing adopted: the descriptors stay open, as they were handed over (and as
            // `change` left them), and a later call may try again.
            claim.release();
            return Err(err);
        }
    };
    Ok(claim
        .into_fds()
        .into_iter()
        .zip(checked)
        .zip(backlogs)
        .map(|((owned, Checked { fd, name, unix, .. }), backlog)| {
            let listener = if unix {
                InheritedListener::Unix(UnixListener::from(owned))
            } else {
                InheritedListener::Tcp(TcpListener::from(owned))
            };
            Inherited {
                fd,
                name,
                backlog,
                listener,
            }
        })
        .collect())
}

/// Makes every checked socket close-on-exec, then re-listens each (or reads its kept backlog),
/// and returns the reports in the order of `sockets`. All or nothing: when a step fails, what
/// the steps before changed is set back (close-on-exec cleared, a backlog re-listened at what
/// the kernel reported before), and the error names whatever could not be set back.
///
/// Sockets whose backlog before is known go first: a failure on a later one can then set them
/// back, and only a socket whose earlier backlog is not known (a Unix socket of another network
/// namespace, or a kernel that cannot say) can be left re-listened.
fn change(
    owned: &[std::os::fd::OwnedFd],
    checked: &[Checked],
    relisten: Option<u32>,
) -> Result<Vec<Backlog>, Error> {
    let mut order: Vec<usize> = (0..checked.len()).collect();
    order.sort_by_key(|&i| checked[i].before.is_none());
    let mut changed: Vec<Changed> = (0..checked.len()).map(|_| Changed::default()).collect();
    let mut backlogs: Vec<Option<Backlog>> = vec![None; checked.len()];
    let failed = |i: usize, source: io::Error, changed: &[Changed]| {
        let left = undo(owned, checked, changed);
        Error::Inherited {
            fd: checked[i].fd,
            name: checked[i].name.clone(),
            source: if left.is_empty() {
                source
            } else {
                io::Error::new(source.kind(), LeftChanged { source, left })
            },
        }
    };
    for &i in &order {
        match sys::set_cloexec(owned[i].as_fd(), true) {
            Ok(was) => changed[i].cloexec = !was,
            Err(source) => return Err(failed(i, source, &changed)),
        }
    }
    for &i in &order {
        let socket = SockRef::from(&owned[i]);
        let Some(backlog) = relisten else {
            backlogs[i] = Some(kept_backlog(&socket));
            continue;
        };
        match control::relisten_raising(&socket, backlog) {
            Ok(after) => {
                changed[i].relistened = Some(after);
                backlogs[i] = Some(after);
            }
            Err(err) => {
                let source = match err {
                    Error::Listen { source, .. } => source,
                    other => io::Error::other(other),
                };
                return Err(failed(i, source, &changed));
            }
        }
    }
    Ok(backlogs
        .into_iter()
        .map(|b| b.unwrap_or_else(|| Backlog::new(0, None, BacklogSource::Unknown)))
        .collect())
}

/// Sets back what [`change`] did; says, one line per socket, what could not be set back.
fn undo(owned: &[std::os::fd::OwnedFd], checked: &[Checked], changed: &[Changed]) -> Vec<String> {
    let mut left = Vec::new();
    for ((socket, c), done) in owned.iter().zip(checked).zip(changed) {
        let mut problems = Vec::new();
        if let Some(after) = done.relistened {
            let kernel_after = (after.source() == BacklogSource::Kernel)
                .then(|| after.applied())
                .flatten();
            match c.before {
                // The same figure before and after: nothing to set back.
                Some(before) if kernel_after == Some(before) => {}
                // The kernel says what it was: set it back (a listening socket's backlog can
                // be lowered by listen(2) again), and read back that it is so.
                Some(before) => match control::relisten(&SockRef::from(socket), before) {
                    Ok(back)
                        if back.source() == BacklogSource::Kernel
                            && back.applied() == Some(before) => {}
                    Ok(back) => problems.push(format!(
                        "re-listened at backlog {after}; set back to {before}, it is now {back}"
                    )),
                    Err(err) => problems.push(format!(
                        "re-listened at backlog {after}; setting it back to {before} failed: {err}"
                    )),
                },
                None => problems.push(format!(
                    "re-listened at backlog {after}, left so: its backlog before is not known"
                )),
            }
        }
        if done.cloexec {
            if let Err(err) = sys::set_cloexec(socket.as_fd(), false) {
                problems.push(format!("made close-on-exec; clearing it failed: {err}"));
            }
        }
        if !problems.is_empty() {
            left.push(format!(
                "descriptor {}{}: {}",
                c.fd,
                c.name
                    .as_deref()
                    .map_or(String::new(), |n| format!(" ({n})")),
                problems.join("; ")
            ));
        }
    }
    left
}

/// A failed adoption that could not set everything back: the failure, and what was left
/// changed.
#[derive(Debug)]
struct LeftChanged {
    source: io::Error,
    left: Vec<String>,
}

impl std::fmt::Display for LeftChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; left changed by this call: {}",
            self.source,
            self.left.join(", ")
        )
    }
}

impl std::error::Error for LeftChanged {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The backlog of a socket whose backlog is kept: what was asked for when it was made is not
/// known, so only a reading of the kernel for this very socket counts. A figure derived from the
/// system limit would assume the other side asked for the maximum (systemd asks for
/// `Backlog=`, systemfd for 1): it is reported as unknown instead, with a request of 0.
fn kept_backlog(socket: &SockRef<'_>) -> Backlog {
    let found = sys::applied_backlog(socket, DEFAULT_BACKLOG);
    match (found.source(), found.applied()) {
        (BacklogSource::Kernel, Some(applied)) => {
            Backlog::new(applied, Some(applied), BacklogSource::Kernel)
        }
        _ => Backlog::new(0, None, BacklogSource::Unknown),
    }
}

/// Removes the socket-activation variables from the environment. Only
/// [`inherited_and_unset_env`] calls it, whose `# Safety` carries the rule of
/// [`std::env::remove_var`] in edition 2024 (a safe function in this crate's edition 2021):
/// no other thread may read or write the environment at the same time.
fn unset_variables() {
    for variable in [
        "LISTEN_PID",
        "LISTEN_PIDFDID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    ] {
        env::remove_var(variable);
    }
}

/// The number of descriptors handed to this process, or `None` if none were.
fn handed_to_us() -> Result<Option<u32>, Error> {
    let Some(pid) = var("LISTEN_PID")? else {
        return Ok(None);
    };
    let pid: u32 = number("LISTEN_PID", &pid)?;
    if pid != std::process::id() {
        return Ok(None);
    }
    if let Some(id) = var("LISTEN_PIDFDID")? {
        let id: u64 = number("LISTEN_PIDFDID", &id)?;
        if sys::own_pidfd_id().is_some_and(|own| own != id) {
            return Ok(None);
        }
    }
    let Some(count) = var("LISTEN_FDS")? else {
        return Err(Error::Environment {
            variable: "LISTEN_FDS",
            value: String::new(),
            problem: "missing, though LISTEN_PID names this process",
        });
    };
    let n: u32 = number("LISTEN_FDS", &count)?;
    if n > MAX_FDS {
        return Err(Error::Environment {
            variable: "LISTEN_FDS",
            value: count,
            problem: "more descriptors than any service is handed",
        });
    }
    Ok(Some(n))
}

/// The names from `LISTEN_FDNAMES`, one per descriptor, or `None` each where it is unset.
fn names(count: u32) -> Result<Vec<Option<String>>, Error> {
    match var("LISTEN_FDNAMES")? {
        None => Ok(vec![None; count as usize]),
        Some(text) => {
            let names: Vec<Option<String>> = if count == 0 && text.is_empty() {
                Vec::new()
            } else {
                text.split(':').map(|n| Some(n.to_owned())).collect()
            };
            if names.len() != count as usize {
                return Err(Error::Environment {
                    variable: "LISTEN_FDNAMES",
                    value: text,
                    problem: "does not give one name per descriptor of LISTEN_FDS",
                });
            }
            Ok(names)
        }
    }
}

fn var(variable: &'static str) -> Result<Option<String>, Error> {
    match env::var(variable) {
        Ok(value) => Ok(Some(value)),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(value)) => Err(Error::Environment {
            variable,
            value: value.to_string_lossy().into_owned(),
            problem: "not valid UTF-8",
        }),
    }
}

fn number<T: std::str::FromStr>(variable: &'static str, value: &str) -> Result<T, Error> {
    value.parse().map_err(|_| Error::Environment {
        variable,
        value: value.to_owned(),
        problem: "not a number",
    })
}

/// Whether `fd` is a listening TCP (`false`) or Unix (`true`) stream socket, and its backlog
/// where the kernel reports it; an error says why not.
fn check(fd: RawFd) -> io::Result<(bool, Option<u32>)> {
    sys::with_open_socket(fd, |borrowed| {
        let socket = SockRef::from(&borrowed);
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        if socket.r#type()? != Type::STREAM {
            return Err(invalid("not a stream socket".into()));
        }
        let domain = socket.local_addr()?.domain();
        let unix = if domain == Domain::UNIX {
            true
        } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
            false
        } else {
            return Err(invalid(format!(
                "a socket of family {domain:?}, not TCP or Unix"
            )));
        };
        if !sys::is_listening(&socket)? {
            return Err(invalid(format!(
                "a socket on {} that does not listen",
                control::addr_of(&socket).map_or("an unknown address".into(), |a| a.to_string())
            )));
        }
        let now = sys::applied_backlog(&socket, DEFAULT_BACKLOG);
        let before = (now.source() == BacklogSource::Kernel)
            .then(|| now.applied())
            .flatten();
        Ok((unix, before))
    })
}
