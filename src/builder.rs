//! The builder: socket options, backlog, and the bind path.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Socket, TcpKeepalive};

use crate::sys::{self, PlatformOption};
use crate::{Error, Listener, DEFAULT_BACKLOG};

/// Configures and binds a [`Listener`].
///
/// Every option left alone keeps what `std::net::TcpListener::bind` does, so a builder with no
/// options makes the same system calls as std (`socket`, `SO_REUSEADDR` on Unix, `bind`,
/// `listen`) and differs only in the backlog: the largest the kernel allows.
///
/// The builder is cheap to clone and is not consumed by [`bind`](Self::bind), so one builder can
/// bind many listeners.
///
/// ```
/// use maxlisten::ListenerBuilder;
///
/// let builder = ListenerBuilder::new().tcp_nodelay(true);
/// let v4 = builder.bind("127.0.0.1:0")?;
/// let another = builder.bind("127.0.0.1:0")?;
/// assert_ne!(v4.local_addr()?, another.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct ListenerBuilder {
    backlog: Option<u32>,
    reuse_address: Option<bool>,
    reuse_port: Option<bool>,
    only_v6: Option<bool>,
    nonblocking: Option<bool>,
    tcp_nodelay: Option<bool>,
    recv_buffer_size: Option<usize>,
    send_buffer_size: Option<usize>,
    ttl: Option<u32>,
    keepalive: Option<Duration>,
    tcp_defer_accept: Option<Duration>,
    tcp_fastopen: Option<u32>,
    bind_device: Option<String>,
    freebind: Option<bool>,
}

impl ListenerBuilder {
    /// A builder with the defaults: the largest backlog ([`DEFAULT_BACKLOG`]), `SO_REUSEADDR` on
    /// Unix and off on Windows (as std), blocking, and every other option as the OS sets it.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// assert_eq!(listener.backlog().requested(), maxlisten::DEFAULT_BACKLOG);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The backlog to ask `listen(2)` for. Default: [`DEFAULT_BACKLOG`] (`i32::MAX`), which every
    /// kernel lowers to its own limit.
    ///
    /// Values above `i32::MAX` are passed as `i32::MAX`, never as a negative number (NetBSD
    /// would read a negative backlog as 0). Where the kernel stores fewer bits the value is
    /// capped first: 65535 on Linux older than 4.1, 32767 on Apple systems.
    /// `0` is passed as is: Linux then holds one connection; Apple kernels read 0 as "the
    /// limit"; OpenBSD raises it to `kern.sominconn`. [`Listener::backlog`] tells what was applied.
    ///
    /// On Windows a value above 200 is passed as `SOMAXCONN_HINT(min(value, 65535))`, which
    /// Windows adjusts into 200..=65535; 200 or less is passed as it is. A plain `i32::MAX`
    /// would be Windows' `SOMAXCONN`, which gets only about 200 (OpenJDK bug 8330940).
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().backlog(1024).bind("127.0.0.1:0")?;
    /// assert_eq!(listener.backlog().requested(), 1024);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// `SO_REUSEADDR`: bind a port that still has connections in `TIME_WAIT`.
    /// Default: on for Unix, off for Windows, as std does. On Windows it lets another socket
    /// take over a bound port, so leave it off there.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().reuse_address(true).bind("127.0.0.1:0")?;
    /// assert!(socket2::SockRef::from(&listener).reuse_address()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = Some(on);
        self
    }

    /// `SO_REUSEPORT`: let several sockets bind the same address and port (on Linux the kernel
    /// spreads connections among them). Default off: with it on, any process of the same user
    /// can bind the port too and receive a share of the connections.
    ///
    /// Unix only (not illumos or Solaris); on Windows `true` fails at bind time with an
    /// [`Error::SetOption`] of kind `Unsupported`.
    ///
    /// ```
    /// # #[cfg(all(unix, not(any(target_os = "illumos", target_os = "solaris"))))]
    /// # {
    /// let builder = maxlisten::ListenerBuilder::new().reuse_port(true);
    /// let first = builder.bind("127.0.0.1:0")?;
    /// let second = builder.bind(first.local_addr()?)?;
    /// assert_eq!(first.local_addr()?, second.local_addr()?);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = Some(on);
        self
    }

    /// `IPV6_V6ONLY`: whether an IPv6 listener refuses IPv4-mapped connections.
    /// Default: left as the OS sets it (off on Linux unless `net.ipv6.bindv6only` says otherwise,
    /// on for Windows and OpenBSD).
    ///
    /// It matters only for the unspecified address `[::]`: Linux turns it on whenever a specific
    /// IPv6 address is bound, since such a socket cannot receive IPv4 traffic anyway.
    ///
    /// Once set, binding an IPv4 address is an [`Error::SetOption`] of kind `InvalidInput`,
    /// returned before any socket is made.
    ///
    /// ```
    /// let builder = maxlisten::ListenerBuilder::new().only_v6(true);
    /// if let Ok(v6) = builder.bind("[::1]:0") {
    ///     assert!(socket2::SockRef::from(&v6).only_v6()?);
    /// }
    /// let err = builder.bind("127.0.0.1:0").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// Put the listener in non-blocking mode (`SOCK_NONBLOCK` in the `socket` call on Linux and
    /// the BSDs, else `O_NONBLOCK` right after it, `FIONBIO` on Windows): `accept` returns
    /// `WouldBlock` instead of waiting. Default off, as std.
    /// [`Listener::into_tokio`] sets it itself.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().nonblocking(true).bind("127.0.0.1:0")?;
    /// let err = listener.accept().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn nonblocking(mut self, on: bool) -> Self {
        self.nonblocking = Some(on);
        self
    }

    /// `TCP_NODELAY` on the listening socket. Linux and the BSDs copy it to accepted
    /// connections; to be portable, also set it on each accepted stream. Default off.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().tcp_nodelay(true).bind("127.0.0.1:0")?;
    /// assert!(socket2::SockRef::from(&listener).tcp_nodelay()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = Some(on);
        self
    }

    /// `SO_RCVBUF`, set before `listen(2)` so that accepted connections inherit it and the
    /// window scale is chosen for it. The kernel adjusts the value: Linux doubles it and clamps
    /// it to `net.core.rmem_max` (and to a minimum, so `0` gives the smallest buffer); values
    /// above `i32::MAX` are passed as `i32::MAX`.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().recv_buffer_size(64 * 1024).bind("127.0.0.1:0")?;
    /// assert!(socket2::SockRef::from(&listener).recv_buffer_size()? >= 64 * 1024);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = Some(bytes);
        self
    }

    /// `SO_SNDBUF`, inherited by accepted connections. Adjusted by the kernel as
    /// [`recv_buffer_size`](Self::recv_buffer_size) is (`net.core.wmem_max` on Linux).
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().send_buffer_size(64 * 1024).bind("127.0.0.1:0")?;
    /// assert!(socket2::SockRef::from(&listener).send_buffer_size()? >= 64 * 1024);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.send_buffer_size = Some(bytes);
        self
    }

    /// `IP_TTL` for IPv4 or `IPV6_UNICAST_HOPS` for IPv6, inherited by accepted connections.
    /// Must be 1 to 255: anything else is an [`Error::SetOption`] of kind `InvalidInput`,
    /// returned before any socket is made.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().ttl(64).bind("127.0.0.1:0")?;
    /// assert_eq!(socket2::SockRef::from(&listener).ttl_v4()?, 64);
    /// assert!(maxlisten::ListenerBuilder::new().ttl(256).bind("127.0.0.1:0").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// `SO_KEEPALIVE` with the idle time before the first probe (`TCP_KEEPIDLE` on Linux,
    /// `TCP_KEEPALIVE` on Apple systems, `SIO_KEEPALIVE_VALS` on Windows), so that dead peers are
    /// found. Linux copies both to every accepted connection; elsewhere set them on each
    /// accepted stream as well. Whole seconds; the kernel may reject 0 (`InvalidInput`).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let listener = maxlisten::ListenerBuilder::new()
    ///     .keepalive(Duration::from_secs(60))
    ///     .bind("127.0.0.1:0")?;
    /// assert!(socket2::SockRef::from(&listener).keepalive()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// `TCP_DEFER_ACCEPT` (Linux and Android): `accept()` returns a connection only once the
    /// client has sent data, or after `wait`, so idle connects do not wake the server. The
    /// kernel counts in SYN-ACK retransmissions: the wait is rounded up to whole seconds and
    /// then to the retransmission schedule (1, 3, 7, 15, 31 ... s; reading it back gives that).
    /// Elsewhere binding fails with an [`Error::SetOption`] of kind `Unsupported` (FreeBSD's
    /// analogue is the `dataready` accept filter).
    ///
    /// ```
    /// # #[cfg(any(target_os = "linux", target_os = "android"))]
    /// # {
    /// let listener = maxlisten::ListenerBuilder::new()
    ///     .tcp_defer_accept(std::time::Duration::from_secs(3))
    ///     .bind("127.0.0.1:0")?;
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn tcp_defer_accept(mut self, wait: Duration) -> Self {
        self.tcp_defer_accept = Some(wait);
        self
    }

    /// `TCP_FASTOPEN` on the listener: accept data in the SYN from clients that hold a Fast Open
    /// cookie. On Linux and Android `queue` bounds the pending Fast Open requests (and
    /// `net.ipv4.tcp_fastopen` must allow servers, bit 2, as it does by default); on FreeBSD and
    /// Apple systems any `queue` above 0 turns it on, 0 off. Elsewhere binding fails with an
    /// [`Error::SetOption`] of kind `Unsupported`.
    ///
    /// ```
    /// # #[cfg(any(target_os = "linux", target_os = "android"))]
    /// # {
    /// let listener = maxlisten::ListenerBuilder::new().tcp_fastopen(256).bind("127.0.0.1:0")?;
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn tcp_fastopen(mut self, queue: u32) -> Self {
        self.tcp_fastopen = Some(queue);
        self
    }

    /// `SO_BINDTODEVICE` (Linux and Android): accept only connections that arrive on the
    /// network device `device` (`"eth0"`, `"lo"`, a VRF). Linux requires `CAP_NET_RAW` for it
    /// unless the socket is not yet bound to a device (kernels since 5.7 allow that unprivileged).
    /// A device that does not exist is an [`Error::BindDevice`] naming it; on other platforms
    /// the same error has kind `Unsupported`.
    ///
    /// ```
    /// # #[cfg(any(target_os = "linux", target_os = "android"))]
    /// # {
    /// let listener = maxlisten::ListenerBuilder::new().bind_device("lo").bind("127.0.0.1:0")?;
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn bind_device(mut self, device: &str) -> Self {
        self.bind_device = Some(device.to_owned());
        self
    }

    /// `IP_FREEBIND` / `IPV6_FREEBIND` (Linux and Android): bind an address that is not (yet)
    /// configured on this host, for a server that starts before its network is up or that
    /// serves a floating address. Elsewhere binding fails with an [`Error::SetOption`] of kind
    /// `Unsupported`.
    ///
    /// ```
    /// # #[cfg(any(target_os = "linux", target_os = "android"))]
    /// # {
    /// // 192.0.2.1 is not on this host, but may be bound with freebind.
    /// let listener = maxlisten::ListenerBuilder::new().freebind(true).bind("192.0.2.1:0")?;
    /// # }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn freebind(mut self, on: bool) -> Self {
        self.freebind = Some(on);
        self
    }

    /// Resolves `addr`, then makes, configures, binds and listens on a socket for each address
    /// in turn, as std does; the first that succeeds is returned.
    ///
    /// The backlog actually applied is not read here (that would cost a system call on every
    /// bind): ask [`Listener::backlog`].
    ///
    /// `addr` is anything std's [`TcpListener::bind`](std::net::TcpListener::bind) takes:
    /// `"host:port"`, `(ip, port)`, a [`SocketAddr`], a slice of them, or a generic
    /// `A: ToSocketAddrs`. A host name is resolved with the system's blocking resolver, as std
    /// does; in async code use [`bind_tokio`](Self::bind_tokio), which resolves off the runtime.
    ///
    /// # Errors
    ///
    /// - [`Error::Resolve`]: the name does not resolve, or the text is not an address (std's
    ///   resolver error, which cannot name the input since `ToSocketAddrs` cannot print it).
    /// - [`Error::NoAddresses`]: it resolved to nothing (an empty slice).
    /// - [`Error::SetOption`]: an option does not fit the address (`only_v6` on IPv4, a TTL
    ///   outside 1..=255), the platform (`reuse_port` on Windows), or the kernel refused it.
    /// - [`Error::Socket`], [`Error::Bind`], [`Error::Listen`]: that system call failed, with the
    ///   address; `AddrInUse`, `AddrNotAvailable` and `PermissionDenied` are the usual kinds.
    /// - [`Error::AllAddressesFailed`]: several addresses were tried and all failed; each error
    ///   is kept and names its address.
    ///
    /// A failed attempt closes its socket before the next address is tried: nothing leaks.
    ///
    /// ```
    /// let builder = maxlisten::ListenerBuilder::new();
    /// let listener = builder.bind("localhost:0")?;
    /// assert!(listener.local_addr()?.ip().is_loopback());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind<A: ToSocketAddrs>(&self, addr: A) -> Result<Listener, Error> {
        let addrs = addr
            .to_socket_addrs()
            .map_err(|source| Error::Resolve { source })?;
        self.bind_first(addrs, false).map(|(listener, _)| listener)
    }

    /// As [`bind`](Self::bind), but resolves as tokio does (`tokio::net::lookup_host`: a
    /// literal address at once, a host name on tokio's blocking pool, never on the runtime's
    /// thread) and returns a [`tokio::net::TcpListener`]. Requires the `tokio` feature.
    ///
    /// The socket is made non-blocking by the `socket` call itself where the kernel allows (as
    /// tokio's own sockets are) and registered with the current runtime.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind), and [`Error::Register`] when called outside a tokio runtime
    /// (checked first, before any socket is made; tokio's own `bind` would panic) or when the
    /// runtime refuses the socket.
    ///
    /// # Panics
    ///
    /// In a runtime built without the IO driver (`enable_io` or `enable_all` not called), as
    /// tokio's [`TcpListener::from_std`](tokio::net::TcpListener::from_std) does: tokio gives no
    /// way to ask whether the driver is there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), maxlisten::Error> {
    /// let listener = maxlisten::ListenerBuilder::new()
    ///     .tcp_nodelay(true)
    ///     .bind_tokio("localhost:0")
    ///     .await?;
    /// // The applied backlog, where the platform can read it (Linux, FreeBSD, Apple):
    /// if let Ok(stats) = maxlisten::queue_stats(&listener) {
    ///     println!("listening on {:?}, backlog {}", listener.local_addr(), stats.backlog);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn bind_tokio<A: tokio::net::ToSocketAddrs>(
        &self,
        addr: A,
    ) -> Result<tokio::net::TcpListener, Error> {
        crate::listener::current_runtime(None)?;
        let addrs = tokio::net::lookup_host(addr)
            .await
            .map_err(|source| Error::Resolve { source })?;
        let (listener, addr) = self.bind_first(addrs, true)?;
        tokio::net::TcpListener::from_std(listener.into_std()).map_err(|source| Error::Register {
            addr: Some(addr.into()),
            source,
        })
    }

    /// Binds the first of `addrs` that succeeds, as std does, and returns it with its address.
    fn bind_first(
        &self,
        addrs: impl Iterator<Item = SocketAddr>,
        nonblocking: bool,
    ) -> Result<(Listener, SocketAddr), Error> {
        let mut errors = Vec::new();
        for one in addrs {
            match self.bind_addr(one, nonblocking) {
                Ok(listener) => return Ok((listener, one)),
                Err(err) => errors.push(err),
            }
        }
        Err(match errors.len() {
            0 => Error::NoAddresses,
            1 => errors.remove(0),
            _ => Error::AllAddressesFailed { errors },
        })
    }

    /// The bind path for one address; `nonblocking` forces non-blocking mode.
    fn bind_addr(&self, addr: SocketAddr, nonblocking: bool) -> Result<Listener, Error> {
        let option = |option: &'static str| {
            move |source| Error::SetOption {
                option,
                addr: addr.into(),
                source,
            }
        };
        let invalid = |name: &'static str, why: String| {
            Err(option(name)(io::Error::new(
                io::ErrorKind::InvalidInput,
                why,
            )))
        };
        // Checks that need no socket come first, so that bad input makes none.
        if self.only_v6.is_some() && addr.is_ipv4() {
            return invalid(
                "IPV6_V6ONLY",
                format!("only_v6 applies to IPv6 addresses, not {addr}"),
            );
        }
        let ttl_option = if addr.is_ipv4() {
            "IP_TTL"
        } else {
            "IPV6_UNICAST_HOPS"
        };
        if let Some(ttl) = self.ttl.filter(|ttl| !(1..=255).contains(ttl)) {
            return invalid(ttl_option, format!("TTL must be 1 to 255, not {ttl}"));
        }

        // Non-blocking in the socket call itself where the kernel allows (SOCK_NONBLOCK).
        let nonblocking = nonblocking || self.nonblocking == Some(true);
        let (kind, nonblocking_done) = sys::stream_type(nonblocking);
        // Closed on drop, so an error below leaks nothing.
        let socket =
            Socket::new(Domain::for_address(addr), kind, None).map_err(|source| Error::Socket {
                addr: addr.into(),
                source,
            })?;
        if self.reuse_address.unwrap_or(cfg!(unix)) {
            socket
                .set_reuse_address(true)
                .map_err(option("SO_REUSEADDR"))?;
        }
        if self.reuse_port == Some(true) {
            sys::set_reuse_port(&socket, true).map_err(option("SO_REUSEPORT"))?;
        }
        if let Some(on) = self.only_v6 {
            socket.set_only_v6(on).map_err(option("IPV6_V6ONLY"))?;
        }
        if self.tcp_nodelay == Some(true) {
            socket
                .set_tcp_nodelay(true)
                .map_err(option("TCP_NODELAY"))?;
        }
        let int_max = i32::MAX as usize;
        if let Some(bytes) = self.recv_buffer_size {
            socket
                .set_recv_buffer_size(bytes.min(int_max))
                .map_err(option("SO_RCVBUF"))?;
        }
        if let Some(bytes) = self.send_buffer_size {
            socket
                .set_send_buffer_size(bytes.min(int_max))
                .map_err(option("SO_SNDBUF"))?;
        }
        if let Some(ttl) = self.ttl {
            let set = if addr.is_ipv4() {
                socket.set_ttl_v4(ttl)
            } else {
                socket.set_unicast_hops_v6(ttl)
            };
            set.map_err(option(ttl_option))?;
        }
        if let Some(idle) = self.keepalive {
            socket
                .set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))
                .map_err(option("SO_KEEPALIVE"))?;
        }
        let ipv4 = addr.is_ipv4();
        let platform = |option: PlatformOption<'_>| {
            sys::set_platform_option(&socket, ipv4, option).map_err(|source| match option {
                PlatformOption::BindDevice(device) => Error::BindDevice {
                    device: device.to_owned(),
                    addr: addr.into(),
                    source,
                },
                _ => Error::SetOption {
                    option: option.name(ipv4),
                    addr: addr.into(),
                    source,
                },
            })
        };
        if let Some(device) = &self.bind_device {
            platform(PlatformOption::BindDevice(device))?;
        }
        if let Some(on) = self.freebind {
            platform(PlatformOption::FreeBind(on))?;
        }
        if let Some(wait) = self.tcp_defer_accept {
            platform(PlatformOption::DeferAccept(wait))?;
        }
        if let Some(queue) = self.tcp_fastopen {
            platform(PlatformOption::FastOpen(queue))?;
        }
        if nonblocking && !nonblocking_done {
            socket.set_nonblocking(true).map_err(option("O_NONBLOCK"))?;
        }
        socket.bind(&addr.into()).map_err(|source| Error::Bind {
            addr: addr.into(),
            source,
        })?;
        let requested = self.backlog.unwrap_or(DEFAULT_BACKLOG);
        socket
            .listen(sys::listen_arg(requested))
            .map_err(|source| Error::Listen {
                addr: Some(addr.into()),
                source,
            })?;
        Ok(Listener::new(socket.into(), requested))
    }
}
