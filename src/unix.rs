//! Unix domain socket listeners, with the same guarantees as the TCP ones (Unix only).
//!
//! [`bind`] has the signature of [`UnixListener::bind`]. std passes -1 to `listen(2)` on Linux,
//! FreeBSD, OpenBSD and Apple systems (the system limit there) but 128 or `SOMAXCONN` on the
//! other Unix targets, and NetBSD reads a negative backlog as 0. This crate passes the largest
//! positive value on every Unix, so every kernel lowers it to its own limit.
//!
//! A full Unix accept queue makes a non-blocking `connect` fail with `EAGAIN`: nginx's
//! "connect() to unix:... failed (11: Resource temporarily unavailable)".
//!
//! | OS | applied backlog and queue |
//! |---|---|
//! | Linux, Android | `sock_diag` (`UNIX_DIAG_RQLEN`), asked by the socket's inode: [`Kernel`](crate::BacklogSource::Kernel) |
//! | FreeBSD | `SO_LISTENQLIMIT`, `SO_LISTENQLEN` |
//! | macOS, iOS | `proc_pidfdinfo` |
//! | others | derived from the system limit, or unknown, as for TCP |
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("maxlisten-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("app.sock");
//! # let _ = std::fs::remove_file(&path);
//! // was: std::os::unix::net::UnixListener::bind(&path)?
//! let listener = maxlisten::unix::bind(&path)?;
//! let _client = std::os::unix::net::UnixStream::connect(&path)?;
//! listener.accept()?;
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{Incoming, SocketAddr, UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, SockAddr, SockRef, Socket};

use crate::{control, sys, Address, Backlog, Error, QueueStats, DEFAULT_BACKLOG};

/// A drop-in for [`UnixListener::bind`]: the same signature, the largest backlog the kernel
/// allows on every Unix.
///
/// # Errors
///
/// The [`io::Error`] has std's kind (`AddrInUse` when the path exists, `PermissionDenied`,
/// `NotFound` for a missing directory, `InvalidInput` for a path too long), a message that
/// names the path, and the detailed [`Error`] inside (see [`crate::bind`]).
///
/// ```
/// let path = std::env::temp_dir().join(format!("maxlisten-bind-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener: std::os::unix::net::UnixListener = maxlisten::unix::bind(&path)?;
/// // The path is taken now: the error names it.
/// let err = maxlisten::unix::bind(&path).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
/// assert!(err.to_string().contains(&path.display().to_string()));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
    match ListenerBuilder::new().bind(path) {
        Ok(listener) => Ok(listener.into_std()),
        Err(err) => Err(err.into()),
    }
}

/// Configures and binds a Unix [`Listener`].
///
/// ```
/// let path = std::env::temp_dir().join(format!("maxlisten-builder-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = maxlisten::unix::ListenerBuilder::new()
///     .remove_stale(true)
///     .bind(&path)?;
/// println!("{}", listener.backlog());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct ListenerBuilder {
    backlog: Option<u32>,
    nonblocking: bool,
    mode: Option<u32>,
    remove_stale: bool,
}

impl ListenerBuilder {
    /// A builder with the defaults: the largest backlog, blocking, the file's mode from the
    /// umask (as std), an existing path left alone.
    ///
    /// ```
    /// let builder = maxlisten::unix::ListenerBuilder::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The backlog to ask `listen(2)` for, as [`crate::ListenerBuilder::backlog`].
    ///
    /// ```
    /// let builder = maxlisten::unix::ListenerBuilder::new().backlog(64);
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// Non-blocking mode, set before `bind`. [`Listener::into_tokio`] sets it itself.
    ///
    /// ```
    /// let builder = maxlisten::unix::ListenerBuilder::new().nonblocking(true);
    /// ```
    pub fn nonblocking(mut self, on: bool) -> Self {
        self.nonblocking = on;
        self
    }

    /// The permissions of the socket file (`0o660`, say): who may connect.
    ///
    /// The file is never more open than asked, at no moment, and nothing but this socket's own
    /// file is ever changed. On Linux the mode is put on the socket with `fchmod` before
    /// `bind`, which creates the file with it, less the umask. Where the umask took bits away
    /// (`0o666` under umask `022`), the exact mode is then set on the file without following
    /// its path: it is opened with `O_PATH | O_NOFOLLOW` (a symbolic link swapped in is refused,
    /// not followed), checked through `sock_diag` to be the file this socket is bound to, and
    /// changed through that descriptor. If it was replaced, binding fails with
    /// [`Error::SetOption`] and what is at the path is left alone. Where the umask took
    /// nothing, there is no second step.
    ///
    /// On other Unix systems there is no such order, so binding with a mode fails with
    /// [`Error::SetOption`] of kind `Unsupported`: restrict the directory instead. Bits beyond
    /// `0o777` are an `InvalidInput` error.
    ///
    /// ```
    /// # #[cfg(any(target_os = "linux", target_os = "android"))]
    /// # {
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let path = std::env::temp_dir().join(format!("maxlisten-mode-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = maxlisten::unix::ListenerBuilder::new().mode(0o600).bind(&path)?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    /// # std::fs::remove_file(&path)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Remove a stale socket file left at the path by a server that is gone, before binding.
    ///
    /// Only a socket file nobody is bound to is removed; anything that is not a socket (a
    /// regular file, a directory, a symbolic link) is left alone, and binding fails with
    /// [`Error::Bind`] of kind `AddrInUse` saying why. Default off, as std: an existing path is
    /// an `AddrInUse` error.
    ///
    /// How a live server is told from a stale file, without disturbing it:
    /// - Linux: the kernel lists the sockets bound to the file (`sock_diag`, `UNIX_DIAG_VFS`,
    ///   compared with `stat` of the path): nothing connects to a live server, so it never sees
    ///   a stray connection in its accept queue. `sock_diag` sees the calling thread's network
    ///   namespace only; when it finds nobody, the non-blocking connect below confirms, so a
    ///   server bound from another namespace (a shared volume) is not removed either.
    /// - Elsewhere: a non-blocking connect. Refused means stale; a connection, or "would block"
    ///   (a server whose queue is full), means alive. It never waits.
    ///
    /// Two processes (or threads) that bind the same path with `remove_stale` at once never
    /// remove each other's socket: each takes an exclusive `flock(2)` on the sibling file
    /// `PATH.lock` (created with mode `0o644` if missing, and left in place: removing it would
    /// let a third binder lock a new file) and holds it from the check until its socket
    /// listens. A program that binds the path without this lock is not held back by it.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("maxlisten-stale-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// drop(maxlisten::unix::bind(&path)?); // the file stays behind
    /// let listener = maxlisten::unix::ListenerBuilder::new().remove_stale(true).bind(&path)?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_stale(mut self, on: bool) -> Self {
        self.remove_stale = on;
        self
    }

    /// Binds a listener at `path`, with the options, and listens.
    ///
    /// # Errors
    ///
    /// Each names the path:
    /// - [`Error::Bind`]: the path exists (`AddrInUse`; with [`remove_stale`](Self::remove_stale)
    ///   the message says why it was kept), its directory is missing (`NotFound`) or not
    ///   writable (`PermissionDenied`), or it is too long (`InvalidInput`).
    /// - [`Error::SetOption`]: the mode could not be set (see [`mode`](Self::mode)).
    /// - [`Error::Socket`], [`Error::Listen`]: that system call failed.
    ///
    /// A failure after `bind` removes the file it made; nothing is left behind.
    ///
    /// ```
    /// let err = maxlisten::unix::ListenerBuilder::new()
    ///     .bind("/nonexistent-dir/app.sock")
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/nonexistent-dir/app.sock"));
    /// ```
    pub fn bind<P: AsRef<Path>>(&self, path: P) -> Result<Listener, Error> {
        let path = path.as_ref();
        let addr = Address::Path(path.to_owned());
        let bind_error = |source| Error::Bind {
            addr: addr.clone(),
            source,
        };
        // Held until the listener listens: another `remove_stale` binder of the same path
        // waits, and never takes this socket, bound but not yet listening, for a stale one.
        let _lock = if self.remove_stale {
            let lock = lock_sibling(path).map_err(bind_error)?;
            remove_stale(path).map_err(bind_error)?;
            Some(lock)
        } else {
            None
        };
        let sockaddr = SockAddr::unix(path).map_err(bind_error)?;
        let socket = self.socket(&addr)?;
        let mode_error = |source| Error::SetOption {
            option: "mode",
            addr: addr.clone(),
            source,
        };
        if let Some(mode) = self.mode {
            sys::set_unix_mode_before_bind(&socket, mode).map_err(mode_error)?;
        }
        socket.bind(&sockaddr).map_err(bind_error)?;
        // From here the file exists: remove it if anything fails, if it is still this socket's.
        let finish = || -> Result<(), Error> {
            if let Some(mode) = self.mode {
                sys::finish_unix_mode(&socket, path, mode).map_err(mode_error)?;
            }
            self.listen_on(&socket, &addr)
        };
        match finish() {
            Ok(()) => Ok(self.listener(socket)),
            Err(err) => {
                remove_own_file(&socket, path);
                Err(err)
            }
        }
    }

    /// Binds a listener to a Linux abstract name (no file: `mode` and `remove_stale` do not
    /// apply, and a mode is an `InvalidInput` error). `name` is the name without the leading
    /// NUL byte; `ss -xl` shows it as `@name`. Linux and Android only.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind), naming `@name`; `AddrInUse` when the name is taken.
    ///
    /// ```
    /// let name = format!("maxlisten-doc-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// assert_eq!(listener.backlog().applied(), maxlisten::system_limit());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_abstract(&self, name: &[u8]) -> Result<Listener, Error> {
        let addr = Address::Abstract(name.to_owned());
        if self.mode.is_some() {
            return Err(Error::SetOption {
                option: "mode",
                addr,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an abstract socket has no file to set a mode on",
                ),
            });
        }
        let mut bytes = vec![0];
        bytes.extend_from_slice(name);
        let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes);
        let sockaddr = SockAddr::unix(path).map_err(|source| Error::Bind {
            addr: addr.clone(),
            source,
        })?;
        let socket = self.socket(&addr)?;
        socket.bind(&sockaddr).map_err(|source| Error::Bind {
            addr: addr.clone(),
            source,
        })?;
        self.listen_on(&socket, &addr)?;
        Ok(self.listener(socket))
    }

    fn socket(&self, addr: &Address) -> Result<Socket, Error> {
        let (kind, nonblocking_done) = sys::stream_type(self.nonblocking);
        let socket = Socket::new(Domain::UNIX, kind, None).map_err(|source| Error::Socket {
            addr: addr.clone(),
            source,
        })?;
        if self.nonblocking && !nonblocking_done {
            socket
                .set_nonblocking(true)
                .map_err(|source| Error::SetOption {
                    option: "O_NONBLOCK",
                    addr: addr.clone(),
                    source,
                })?;
        }
        Ok(socket)
    }

    fn listen_on(&self, socket: &Socket, addr: &Address) -> Result<(), Error> {
        socket
            .listen(sys::listen_arg(self.requested()))
            .map_err(|source| Error::Listen {
                addr: Some(addr.clone()),
                source,
            })
    }

    fn requested(&self) -> u32 {
        self.backlog.unwrap_or(DEFAULT_BACKLOG)
    }

    fn listener(&self, socket: Socket) -> Listener {
        Listener {
            inner: socket.into(),
            requested: self.requested(),
        }
    }
}

/// The lock file of `path` (`PATH.lock`), opened and locked (`flock`, exclusive), or the error
/// naming it.
fn lock_sibling(path: &Path) -> io::Result<fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock = std::path::PathBuf::from(name);
    let named =
        |e: io::Error| io::Error::new(e.kind(), format!("lock file {}: {e}", lock.display()));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock)
        .map_err(named)?;
    sys::lock_exclusive(&file).map_err(named)?;
    Ok(file)
}

/// Removes `path` if it is a socket file nobody is bound to; refuses anything else.
///
/// On Linux the kernel says, through `sock_diag` (`UNIX_DIAG_VFS`), whether a socket of this
/// network namespace is bound to the file; nothing connects to a live server. When none is (or
/// elsewhere, where the kernel cannot say), a non-blocking connect decides: refused means stale;
/// a connection, or "would block" (a full queue), means alive. On Linux that connect reaches
/// only a socket bound in another network namespace.
fn remove_stale(path: &Path) -> io::Result<()> {
    let kept = |why: &str| Err(io::Error::new(io::ErrorKind::AddrInUse, why.to_owned()));
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return kept("the path exists and is not a socket; not removed");
    }
    if let Ok(Some(true)) = sys::unix_file_in_use(meta.dev(), meta.ino()) {
        return kept("a socket is bound to this file (the kernel says so); not removed");
    }
    let (kind, nonblocking_done) = sys::stream_type(true);
    let probe = Socket::new(Domain::UNIX, kind, None)?;
    if !nonblocking_done {
        probe.set_nonblocking(true)?;
    }
    match probe.connect(&SockAddr::unix(path)?) {
        Ok(()) => kept("a server is listening on this socket; not removed"),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            kept("a server is listening on this socket (its queue is full); not removed")
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// After a failure past `bind`: removes the file `socket` made, unless something else was put
/// at the path since (then it is left alone).
fn remove_own_file(socket: &Socket, path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let ours = meta.file_type().is_socket()
        && sys::is_bound_file(socket, meta.dev(), meta.ino()).unwrap_or(true);
    if ours {
        let _ = fs::remove_file(path);
    }
}

/// A listening Unix socket made by [`ListenerBuilder::bind`]: std's [`UnixListener`] with the
/// backlog it asked for, reporting and operating as the TCP [`crate::Listener`] does.
///
/// ```
/// let name = format!("maxlisten-listener-{}", std::process::id());
/// # #[cfg(target_os = "linux")]
/// # {
/// let mut listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
/// let stats = listener.queue_stats()?;
/// assert_eq!(stats.queued, 0);
/// listener.set_backlog(5)?;
/// assert_eq!(listener.backlog().applied(), Some(5));
/// # }
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    inner: UnixListener,
    requested: u32,
}

impl Listener {
    /// The backlog the kernel applies, read when called; see the [module](self) for how.
    ///
    /// ```
    /// let name = format!("maxlisten-backlog-{}", std::process::id());
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// assert_eq!(listener.backlog().source(), maxlisten::BacklogSource::Kernel);
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn backlog(&self) -> Backlog {
        sys::applied_backlog(&SockRef::from(&self.inner), self.requested)
    }

    /// Calls `listen(2)` again with `backlog`, and returns the new report; later
    /// [`refresh_backlog`](Self::refresh_backlog) calls use it.
    ///
    /// # Errors
    ///
    /// [`Error::Listen`] if the kernel refuses; the requested value is then kept.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-set-{}", std::process::id());
    /// let mut listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// assert_eq!(listener.set_backlog(3)?.applied(), Some(3));
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn set_backlog(&mut self, backlog: u32) -> Result<Backlog, Error> {
        let report = control::relisten(&SockRef::from(&self.inner), backlog)?;
        self.requested = backlog;
        Ok(report)
    }

    /// Calls `listen(2)` again with the backlog requested before, so that a raised system
    /// limit takes effect.
    ///
    /// # Errors
    ///
    /// As [`set_backlog`](Self::set_backlog).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-refresh-{}", std::process::id());
    /// let mut listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// assert_eq!(listener.refresh_backlog()?, listener.backlog());
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn refresh_backlog(&mut self) -> Result<Backlog, Error> {
        self.set_backlog(self.requested)
    }

    /// Queued connections and the applied backlog; `drops` is `None` for Unix sockets.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] where the platform cannot read it (see the [module](self)).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-queue-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// let addr = listener.local_addr().unwrap();
    /// let _client = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    /// assert_eq!(listener.queue_stats()?.queued, 1);
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn queue_stats(&self) -> Result<QueueStats, Error> {
        control::queue_stats_on(&SockRef::from(&self.inner))
    }

    /// Accepts a connection, as [`UnixListener::accept`].
    ///
    /// # Errors
    ///
    /// The OS error of `accept(2)`.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-accept-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// let _client = std::os::unix::net::UnixStream::connect_addr(&listener.local_addr()?)?;
    /// listener.accept()?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.inner.accept()
    }

    /// An iterator over accepted connections, as [`UnixListener::incoming`].
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-incoming-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// let _client = std::os::unix::net::UnixStream::connect_addr(&listener.local_addr()?)?;
    /// listener.incoming().next().unwrap()?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        self.inner.incoming()
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname(2)`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("maxlisten-addr-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind(&path)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The std listener.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-as-std-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?;
    /// listener.as_std().set_nonblocking(true)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_std(&self) -> &UnixListener {
        &self.inner
    }

    /// The std listener, to serve with anything that takes one.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let name = format!("maxlisten-into-std-{}", std::process::id());
    /// let std_listener: std::os::unix::net::UnixListener =
    ///     maxlisten::unix::ListenerBuilder::new().bind_abstract(name.as_bytes())?.into_std();
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn into_std(self) -> UnixListener {
        self.inner
    }

    /// A [`tokio::net::UnixListener`], made non-blocking and registered with the current
    /// runtime. Requires the `tokio` feature.
    ///
    /// # Errors
    ///
    /// [`Error::Register`] outside a tokio runtime, or when registering fails.
    ///
    /// # Panics
    ///
    /// In a runtime built without the IO driver, as tokio's `from_std` does.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), maxlisten::Error> {
    /// let name = format!("maxlisten-tokio-{}", std::process::id());
    /// let listener = maxlisten::unix::ListenerBuilder::new()
    ///     .bind_abstract(name.as_bytes())?
    ///     .into_tokio()?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(target_os = "linux"))]
    /// # fn main() {}
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn into_tokio(self) -> Result<tokio::net::UnixListener, Error> {
        let addr = control::addr_of(&SockRef::from(&self.inner));
        crate::listener::current_runtime(addr.clone())?;
        self.inner
            .set_nonblocking(true)
            .map_err(|source| Error::Register {
                addr: addr.clone(),
                source,
            })?;
        tokio::net::UnixListener::from_std(self.inner)
            .map_err(|source| Error::Register { addr, source })
    }
}

impl From<Listener> for UnixListener {
    fn from(listener: Listener) -> UnixListener {
        listener.inner
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
