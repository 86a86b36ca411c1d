//! The error type: which step failed, on which address, and the OS error behind it.

use std::fmt;
use std::io;

use crate::Address;

/// Why making or operating a listener failed.
///
/// Every variant names the step that failed and the address it failed on, and keeps the
/// operating system's error: its message ends with it, so a plain `eprintln!("{err}")` says
/// why, and [`Error::io_error`] gives it.
///
/// # In an error chain
///
/// Each cause appears once in a chain (`anyhow`'s `{:#}`, `eyre`, a loop over
/// [`source`](std::error::Error::source)). The OS error is in this error's message, so
/// `source()` does not return it again: it returns what the OS error itself wraps, if anything,
/// the rule [`io::Error`] follows for the error it carries. That way an [`io::Error`] made from
/// this one (the drop-ins' error, below) still shows the step, the address and the OS error,
/// and its chain repeats nothing either.
///
/// [`Error::kind`] gives the [`io::ErrorKind`] of the underlying error (`AddrInUse`,
/// `AddrNotAvailable`, `PermissionDenied`, ...), and [`Error::raw_os_error`] its OS code.
///
/// # Inside an `io::Error`
///
/// The drop-ins [`bind`](crate::bind) and `maxlisten::tokio::bind` return [`io::Result`], as
/// std and tokio do. Their error is `io::Error::from(err)`: the same [`kind`](io::Error::kind)
/// as std's for the same input, a message that names the address, and this `Error` inside,
/// reachable with [`get_ref`](io::Error::get_ref) or [`into_inner`](io::Error::into_inner) and
/// `downcast`. The one difference from std: [`io::Error::raw_os_error`] on the outer error is
/// `None` (an `io::Error` that carries a message has no OS code of its own). Ask the inner
/// `Error` for it:
///
/// ```
/// use std::io;
///
/// let first = maxlisten::bind("127.0.0.1:0")?;
/// let addr = first.local_addr()?;
/// // The port is taken: the same kind as std, and the message names the address.
/// let err: io::Error = maxlisten::bind(addr).unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
/// assert_eq!(err.kind(), std::net::TcpListener::bind(addr).unwrap_err().kind());
/// assert!(err.to_string().contains(&addr.to_string()), "{err}");
/// // The detail, and the OS code, are inside.
/// let inner = err.get_ref().and_then(|e| e.downcast_ref::<maxlisten::Error>()).unwrap();
/// assert_eq!(inner.addr().and_then(|a| a.as_socket_addr()), Some(addr));
/// # #[cfg(target_os = "linux")]
/// assert_eq!(inner.raw_os_error(), Some(libc::EADDRINUSE));
/// # Ok::<(), io::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The address could not be resolved: a name the resolver does not know, or text that is
    /// not an address (kind `InvalidInput`). The error is the resolver's, as std returns it.
    ///
    /// [`bind`](crate::bind) and [`ListenerBuilder::bind`](crate::ListenerBuilder::bind) take
    /// std's bound, `ToSocketAddrs`, which cannot print its input: like std, this error does
    /// not name it. Every error made after resolution names the socket address.
    Resolve {
        /// The resolver's error.
        source: io::Error,
    },

    /// The address resolved to no socket address at all (kind `InvalidInput`), for example an
    /// empty slice.
    NoAddresses,

    /// `socket(2)` failed, for example when the process is out of file descriptors.
    Socket {
        /// The address the socket was for.
        addr: Address,
        /// The OS error.
        source: io::Error,
    },

    /// Setting a socket option failed, or the option does not fit the address (`only_v6` on an
    /// IPv4 address) or the platform (kind `Unsupported`).
    SetOption {
        /// The option, as the OS names it (`SO_REUSEPORT`, `IPV6_V6ONLY`, ...).
        option: &'static str,
        /// The address the socket was for.
        addr: Address,
        /// The OS error.
        source: io::Error,
    },

    /// Binding the socket to a network device failed: no such device (`SO_BINDTODEVICE` gives
    /// `ENODEV`), a name too long (`InvalidInput`), or a platform without the option
    /// (`Unsupported`).
    BindDevice {
        /// The device name as given.
        device: String,
        /// The address the socket was for.
        addr: Address,
        /// The OS error.
        source: io::Error,
    },

    /// `bind(2)` failed: the port is in use (`AddrInUse`), the address is not on this host
    /// (`AddrNotAvailable`), or the port is privileged (`PermissionDenied`). For a Unix socket:
    /// the path exists (`AddrInUse`; with `remove_stale`, the message says why it was kept), or
    /// its directory cannot be written (`PermissionDenied`).
    Bind {
        /// The address that could not be bound.
        addr: Address,
        /// The OS error.
        source: io::Error,
    },

    /// `listen(2)` failed.
    Listen {
        /// The listener's local address, where it could be read.
        addr: Option<Address>,
        /// The OS error.
        source: io::Error,
    },

    /// Every address the input resolved to failed; each failure is kept, in the order tried,
    /// and each names its address. [`Error::kind`] is the kind of the last one, as with `std`.
    AllAddressesFailed {
        /// One error per address tried.
        errors: Vec<Error>,
    },

    /// A backlog change or a queue reading was asked of a socket that is not listening
    /// (kind `InvalidInput`). Nothing was changed: `listen(2)` was not called.
    NotListening {
        /// The socket's local address, where it could be read.
        addr: Option<Address>,
    },

    /// Reading the state of a listener from the kernel failed, or this platform cannot report it
    /// (kind `Unsupported`).
    Query {
        /// What was read (`TCP_INFO`, `SO_LISTENQLEN`, ...).
        what: &'static str,
        /// The listener's local address, where it could be read.
        addr: Option<Address>,
        /// The OS error.
        source: io::Error,
    },

    /// The listener could not be handed to an async runtime (no runtime running, or the
    /// runtime refused to register it).
    Register {
        /// The listener's local address, where it could be read.
        addr: Option<Address>,
        /// The runtime's error.
        source: io::Error,
    },

    /// A socket-activation variable (`LISTEN_PID`, `LISTEN_FDS`, ...) holds something that is
    /// not what the protocol allows (kind `InvalidInput`). Nothing was adopted.
    Environment {
        /// The variable's name.
        variable: &'static str,
        /// Its value, as found.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// Operating another process's socket failed ([`survey::relisten`](crate::survey::relisten)):
    /// the step (`pidfd_open`, `pidfd_getfd`, `check that it is the socket surveyed`,
    /// `SO_ACCEPTCONN`, `listen`), the pid and descriptor,
    /// the OS error, and in the message what is missing: ptrace permission for `EPERM`
    /// (`CAP_SYS_PTRACE`, or the same user where `kernel.yama.ptrace_scope` allows it), Linux
    /// 5.6 for `ENOSYS`, a process that is gone for `ESRCH`, a descriptor it lacks for `EBADF`.
    Foreign {
        /// The process.
        pid: u32,
        /// The descriptor number in that process.
        fd: i32,
        /// The step that failed.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },

    /// Opening, checking or entering a network namespace failed
    /// ([`netns::Netns`](crate::netns::Netns)): `netns` names it (a path such as
    /// `/proc/PID/ns/net` or `/run/netns/NAME`, or its inode), `step` says what was being done
    /// (`open`, `check that it is a network namespace`, `setns`, ...), and the message says what
    /// is missing where the OS error tells: `CAP_SYS_ADMIN` to enter another namespace
    /// (`EPERM` from `setns`), ptrace read access (`CAP_SYS_PTRACE`) to open another user's
    /// `/proc/PID/ns/net`, a process or name that does not exist.
    Namespace {
        /// The namespace: the path, pid or name it was asked by, or its inode.
        netns: String,
        /// The step that failed.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },

    /// A descriptor handed over by socket activation is not a listening stream socket, or
    /// could not be examined or prepared: `ENOTSOCK`, `EBADF`, or kind `InvalidInput` for a
    /// socket of the wrong type or one that does not listen. Nothing was adopted.
    Inherited {
        /// The descriptor number (3 and up).
        fd: i32,
        /// Its name from `LISTEN_FDNAMES`, if any.
        name: Option<String>,
        /// What is wrong.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { source } => write!(f, "resolve the address to bind: {source}"),
            Error::NoAddresses => {
                f.write_str("resolve the address to bind: it gave no socket addresses")
            }
            Error::Socket { addr, source } => write!(f, "create socket for {addr}: {source}"),
            Error::SetOption {
                option,
                addr,
                source,
            } => write!(f, "set {option} for {addr}: {source}"),
            Error::BindDevice {
                device,
                addr,
                source,
            } => write!(f, "bind to device {device:?} for {addr}: {source}"),
            Error::Bind { addr, source } => write!(f, "bind {addr}: {source}"),
            Error::Listen { addr, source } => write!(f, "listen on {}: {source}", Addr(addr)),
            Error::AllAddressesFailed { errors } => {
                write!(f, "bind: every address failed: {}", List(errors))
            }
            Error::NotListening { addr } => write!(f, "{} is not a listening socket", Addr(addr)),
            Error::Query { what, addr, source } => {
                write!(f, "read {what} of {}: {source}", Addr(addr))
            }
            Error::Register { addr, source } => write!(
                f,
                "register {} with the async runtime: {source}",
                Addr(addr)
            ),
            Error::Environment {
                variable,
                value,
                problem,
            } => write!(f, "{variable}={value:?}: {problem}"),
            Error::Foreign {
                pid,
                fd,
                step,
                source,
            } => write!(
                f,
                "{step} on pid {pid} fd {fd}: {source}{}",
                ForeignHint(source)
            ),
            Error::Inherited { fd, name, source } => {
                write!(f, "inherited descriptor {fd}{}: {source}", Name(name))
            }
            Error::Namespace {
                netns,
                step,
                source,
            } => write!(
                f,
                "network namespace {netns}: {step}: {source}{}",
                NamespaceHint(step, source)
            ),
        }
    }
}

impl std::error::Error for Error {
    /// What the OS error wraps, if anything: the OS error itself is in the message already
    /// (see [In an error chain](Error#in-an-error-chain)).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io_error()?.source()
    }
}

impl Error {
    /// The [`io::ErrorKind`] of the underlying error.
    ///
    /// For [`Error::AllAddressesFailed`] it is the kind of the last address's error;
    /// for [`Error::NoAddresses`], [`Error::NotListening`] and [`Error::Environment`],
    /// `InvalidInput`.
    ///
    /// ```
    /// let err = maxlisten::ListenerBuilder::new().bind("not an address").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::AllAddressesFailed { errors, .. } => errors
                .last()
                .map_or(io::ErrorKind::InvalidInput, Error::kind),
            _ => self
                .io_error()
                .map_or(io::ErrorKind::InvalidInput, io::Error::kind),
        }
    }

    /// The OS error code behind the failure (`EADDRINUSE`, `EMFILE`, ...), where there is one,
    /// as [`io::Error::raw_os_error`]. For [`Error::AllAddressesFailed`], the last address's.
    ///
    /// ```
    /// // Not an address of this host:
    /// let err = maxlisten::ListenerBuilder::new().bind("192.0.2.1:0").unwrap_err();
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::AllAddressesFailed { errors, .. } => errors.last()?.raw_os_error(),
            _ => {
                let io = self.io_error()?;
                // An OS error given context (an adoption that could not set everything back
                // says what it left changed): the code is the one it wraps.
                io.raw_os_error().or_else(|| {
                    let mut inner = io.get_ref().and_then(std::error::Error::source);
                    while let Some(err) = inner {
                        if let Some(code) = err
                            .downcast_ref::<io::Error>()
                            .and_then(io::Error::raw_os_error)
                        {
                            return Some(code);
                        }
                        inner = err.source();
                    }
                    None
                })
            }
        }
    }

    /// The OS error this error wraps (the error `bind(2)` or `listen(2)` returned, say);
    /// `None` for the variants that have none, and for [`Error::AllAddressesFailed`] (see each
    /// error in `errors`). Its message is the end of this error's.
    ///
    /// ```
    /// let taken = maxlisten::bind("127.0.0.1:0")?;
    /// let err = maxlisten::ListenerBuilder::new().bind(taken.local_addr()?).unwrap_err();
    /// let os = err.io_error().unwrap();
    /// assert_eq!(os.kind(), std::io::ErrorKind::AddrInUse);
    /// assert!(err.to_string().ends_with(&os.to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Resolve { source, .. }
            | Error::Socket { source, .. }
            | Error::SetOption { source, .. }
            | Error::BindDevice { source, .. }
            | Error::Bind { source, .. }
            | Error::Listen { source, .. }
            | Error::Query { source, .. }
            | Error::Register { source, .. }
            | Error::Inherited { source, .. }
            | Error::Foreign { source, .. }
            | Error::Namespace { source, .. } => Some(source),
            Error::NoAddresses
            | Error::NotListening { .. }
            | Error::Environment { .. }
            | Error::AllAddressesFailed { .. } => None,
        }
    }

    /// The address the failure concerns (a socket address, a Unix socket path or an abstract
    /// name), where there is one.
    ///
    /// `None` for resolution failures, for [`Error::AllAddressesFailed`] (see each error in
    /// `errors`) and for socket activation (see [`Error::Inherited`]'s `fd`).
    ///
    /// ```
    /// let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    /// let addr = taken.local_addr().unwrap();
    /// let err = maxlisten::ListenerBuilder::new().bind(addr).unwrap_err();
    /// assert_eq!(err.addr(), Some(&maxlisten::Address::Inet(addr)));
    /// ```
    pub fn addr(&self) -> Option<&Address> {
        match self {
            Error::Socket { addr, .. }
            | Error::SetOption { addr, .. }
            | Error::BindDevice { addr, .. }
            | Error::Bind { addr, .. } => Some(addr),
            Error::Listen { addr, .. }
            | Error::NotListening { addr }
            | Error::Query { addr, .. }
            | Error::Register { addr, .. } => addr.as_ref(),
            Error::Resolve { .. }
            | Error::NoAddresses
            | Error::AllAddressesFailed { .. }
            | Error::Environment { .. }
            | Error::Inherited { .. }
            | Error::Foreign { .. }
            | Error::Namespace { .. } => None,
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps [`Error::kind`] and the whole message; the [`Error`] itself stays reachable
    /// through [`io::Error::get_ref`] and `into_inner`. [`io::Error::raw_os_error`] of the
    /// result is `None`: use [`Error::raw_os_error`] on the inner error.
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// Shows an address that may not be known.
struct Addr<'a>(&'a Option<Address>);

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("socket (address unknown)"),
        }
    }
}

/// Shows each error of a list, separated by `; `.
struct List<'a>(&'a [Error]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

/// Shows a descriptor's name, if it has one.
struct Name<'a>(&'a Option<String>);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " ({name:?})"),
            None => Ok(()),
        }
    }
}

/// What an OS error on another process's socket says is missing.
struct ForeignHint<'a>(&'a io::Error);

impl fmt::Display for ForeignHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.0.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "; needs ptrace permission over that process: CAP_SYS_PTRACE (run as root), or \
                 the same user where kernel.yama.ptrace_scope allows it"
            }
            Some(libc::ENOSYS) => "; pidfd_getfd needs Linux 5.6 or later",
            Some(libc::ESRCH) => "; the process is gone",
            Some(libc::EBADF) => "; the process has no such descriptor",
            _ => "",
        };
        f.write_str(hint)
    }
}

/// What an OS error on a network namespace says is missing.
struct NamespaceHint<'a>(&'a str, &'a io::Error);

impl fmt::Display for NamespaceHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NamespaceHint(step, source) = *self;
        let permission = matches!(
            source.raw_os_error(),
            Some(libc::EPERM) | Some(libc::EACCES)
        ) || source.kind() == io::ErrorKind::PermissionDenied;
        let hint = match step {
            "setns" if permission => {
                "; entering another network namespace needs CAP_SYS_ADMIN over its user \
                 namespace (run as root)"
            }
            "setns" if source.raw_os_error() == Some(libc::EINVAL) => "; not a network namespace",
            "open" if permission => {
                "; another process's namespace needs ptrace read access (CAP_SYS_PTRACE, or \
                 the same user)"
            }
            "open" if source.raw_os_error() == Some(libc::ENOENT) => {
                "; no such process, file or name"
            }
            "open" if source.raw_os_error() == Some(libc::ESRCH) => "; the process is gone",
            "open" if source.raw_os_error() == Some(libc::EMFILE) => {
                "; every network namespace found is held open (one descriptor each) until the \
                 survey ends: raise the soft limit on open files (ulimit -n, LimitNOFILE=)"
            }
            _ => "",
        };
        f.write_str(hint)
    }
}
