//! The listener: a `std::net::TcpListener` that remembers the backlog it asked for.

use std::io;
use std::net::{Incoming, SocketAddr, TcpListener, TcpStream};

use socket2::SockRef;

use crate::{control, sys, Backlog, Error, QueueStats};

/// A listening TCP socket made by [`ListenerBuilder::bind`](crate::ListenerBuilder::bind).
///
/// It owns a [`std::net::TcpListener`] and the backlog that was requested for it, so it can
/// report what the kernel applied ([`backlog`](Self::backlog)), apply it again
/// ([`refresh_backlog`](Self::refresh_backlog)) and read the accept queue
/// ([`queue_stats`](Self::queue_stats)). Convert it with [`into_std`](Self::into_std) (or
/// `TcpListener::from`) or [`into_tokio`](Self::into_tokio) to serve.
///
/// ```
/// use std::io::{Read, Write};
///
/// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
/// let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
/// client.write_all(b"hi")?;
/// let mut buf = [0; 2];
/// server.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    requested: u32,
}

impl Listener {
    pub(crate) fn new(inner: TcpListener, requested: u32) -> Listener {
        Listener { inner, requested }
    }

    /// The backlog the kernel applies to this listener, read when called (one `getsockopt` on
    /// Linux and FreeBSD), with the requested value and how the applied one is known.
    ///
    /// Platforms: Linux and Android read `TCP_INFO`, FreeBSD `SO_LISTENQLIMIT`, Apple
    /// `proc_pidfdinfo` (all [`BacklogSource::Kernel`](crate::BacklogSource::Kernel)); OpenBSD
    /// and NetBSD derive it from their sysctls
    /// ([`SystemLimit`](crate::BacklogSource::SystemLimit)); Windows and the rest cannot tell
    /// ([`Unknown`](crate::BacklogSource::Unknown), `applied()` is `None`).
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let backlog = listener.backlog();
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(backlog.applied(), maxlisten::system_limit());
    /// println!("{backlog}");
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn backlog(&self) -> Backlog {
        sys::applied_backlog(&SockRef::from(&self.inner), self.requested)
    }

    /// Calls `listen(2)` again with `backlog`, which changes the backlog of a socket that
    /// already listens (Linux, the BSDs, Apple), and returns the new report. Later calls to
    /// [`refresh_backlog`](Self::refresh_backlog) use this value.
    ///
    /// On Windows `listen` on a listening socket succeeds but changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Listen`] if the kernel refuses. The requested value is kept only when the call
    /// succeeds.
    ///
    /// ```
    /// let mut listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let backlog = listener.set_backlog(5)?;
    /// assert_eq!(backlog.requested(), 5);
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(backlog.applied(), Some(5));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn set_backlog(&mut self, backlog: u32) -> Result<Backlog, Error> {
        // A Listener always listens: no need to ask the kernel first.
        let report = control::relisten(&SockRef::from(&self.inner), backlog)?;
        self.requested = backlog;
        Ok(report)
    }

    /// Calls `listen(2)` again with the backlog requested before, so that a system limit raised
    /// since the listener was made takes effect; kernels take the limit only when `listen` is
    /// called. Returns the new report.
    ///
    /// # Errors
    ///
    /// As [`set_backlog`](Self::set_backlog).
    ///
    /// ```
    /// let mut listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let before = listener.backlog();
    /// let after = listener.refresh_backlog()?;
    /// assert_eq!(before, after); // the limit did not change in between
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn refresh_backlog(&mut self) -> Result<Backlog, Error> {
        self.set_backlog(self.requested)
    }

    /// How many connections wait for `accept()`, and the applied backlog, in one reading.
    /// See [`queue_stats`](crate::queue_stats) for platforms.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] of kind `Unsupported` where the platform cannot read the queue
    /// (Windows, OpenBSD, NetBSD, ...), or with the OS error if the reading fails.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// # #[cfg(target_os = "linux")]
    /// # {
    /// let stats = listener.queue_stats()?;
    /// assert_eq!(stats.queued, 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_stats(&self) -> Result<QueueStats, Error> {
        control::queue_stats_on(&SockRef::from(&self.inner))
    }

    /// Accepts a connection, as [`TcpListener::accept`].
    ///
    /// # Errors
    ///
    /// The OS error of `accept(2)`; `WouldBlock` when non-blocking and nothing is queued.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let (_stream, peer) = listener.accept()?;
    /// assert_eq!(peer, client.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept()
    }

    /// An iterator over accepted connections, as [`TcpListener::incoming`].
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let stream = listener.incoming().next().unwrap()?;
    /// assert_eq!(stream.local_addr()?, listener.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        self.inner.incoming()
    }

    /// The address the listener is bound to; with port 0, the port the OS picked.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname(2)`.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The std listener, for anything this type does not offer.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// listener.as_std().set_nonblocking(true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_std(&self) -> &TcpListener {
        &self.inner
    }

    /// The std listener, to serve with anything that takes one. The backlog stays as applied;
    /// [`set_backlog`](crate::set_backlog) still works on it.
    ///
    /// ```
    /// let std_listener: std::net::TcpListener =
    ///     maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?.into_std();
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn into_std(self) -> TcpListener {
        self.inner
    }

    /// A [`tokio::net::TcpListener`], made non-blocking and registered with the current
    /// runtime. Requires the `tokio` feature. To bind straight into tokio, with tokio's
    /// non-blocking name resolution, use [`maxlisten::tokio::bind`](crate::tokio::bind) or
    /// [`ListenerBuilder::bind_tokio`](crate::ListenerBuilder::bind_tokio).
    ///
    /// # Errors
    ///
    /// [`Error::Register`] when called outside a tokio runtime (tokio itself would panic), or
    /// when setting non-blocking mode or registering fails. The listener is closed in that case.
    ///
    /// # Panics
    ///
    /// In a runtime built without the IO driver, as tokio's
    /// [`TcpListener::from_std`](tokio::net::TcpListener::from_std) does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), maxlisten::Error> {
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?.into_tokio()?;
    /// let addr = listener.local_addr().unwrap();
    /// let (_client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    /// accepted.unwrap();
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn into_tokio(self) -> Result<tokio::net::TcpListener, Error> {
        let addr = self.inner.local_addr().ok().map(crate::Address::from);
        let register = |source| Error::Register {
            addr: addr.clone(),
            source,
        };
        current_runtime(addr.clone())?;
        self.inner.set_nonblocking(true).map_err(register)?;
        tokio::net::TcpListener::from_std(self.inner).map_err(register)
    }
}

/// Fails with [`Error::Register`] outside a tokio runtime, where tokio would panic.
#[cfg(feature = "tokio")]
pub(crate) fn current_runtime(addr: Option<crate::Address>) -> Result<(), Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Register {
            addr,
            source: io::Error::other(e),
        }),
    }
}

impl From<Listener> for TcpListener {
    fn from(listener: Listener) -> TcpListener {
        listener.inner
    }
}

#[cfg(unix)]
mod fd {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

    use super::Listener;

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
}

#[cfg(windows)]
mod socket {
    use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

    use super::Listener;

    impl AsSocket for Listener {
        fn as_socket(&self) -> BorrowedSocket<'_> {
            self.inner.as_socket()
        }
    }

    impl AsRawSocket for Listener {
        fn as_raw_socket(&self) -> RawSocket {
            self.inner.as_raw_socket()
        }
    }
}
