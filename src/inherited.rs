//! Listeners handed over by socket activation (systemd's `LISTEN_FDS` protocol), checked and
//! re-listened at the largest backlog (Unix only).

use std::env;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use socket2::{Domain, SockRef, Type};

use crate::{control, sys, Backlog, Error, DEFAULT_BACKLOG};

/// The first descriptor socket activation passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// More descriptors than any service is handed; a larger count is a broken environment.
const MAX_FDS: u32 = 65536;

/// One listening socket handed over by socket activation, adopted by [`inherited`].
///
/// ```
/// for socket in maxlisten::inherited()? {
///     println!("{:?}: backlog {}", socket.name(), socket.backlog());
///     match socket.into_listener() {
///         maxlisten::InheritedListener::Tcp(listener) => { /* serve TCP */ }
///         maxlisten::InheritedListener::Unix(listener) => { /* serve Unix */ }
///     }
/// }
/// # Ok::<(), maxlisten::Error>(())
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
    /// let web = maxlisten::inherited()?.into_iter().find(|s| s.name() == Some("web"));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The descriptor number it was handed over as (3 and up).
    ///
    /// ```
    /// for socket in maxlisten::inherited()? {
    ///     assert!(socket.fd() >= 3);
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The backlog after adoption: re-listened at the maximum by [`inherited`], as found by
    /// [`inherited_keep_backlog`].
    ///
    /// ```
    /// for socket in maxlisten::inherited()? {
    ///     println!("{}", socket.backlog());
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    /// The listener, to serve with.
    ///
    /// ```
    /// for socket in maxlisten::inherited()? {
    ///     if let Some(tcp) = socket.into_listener().into_tcp() {
    ///         tcp.accept()?;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_listener(self) -> InheritedListener {
        self.listener
    }

    /// The listener, borrowed.
    ///
    /// ```
    /// for socket in maxlisten::inherited()? {
    ///     let stats = maxlisten::queue_stats(socket.listener())?;
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn listener(&self) -> &InheritedListener {
        &self.listener
    }
}

/// Adopts the listening sockets socket activation handed to this process, and re-listens each
/// at the largest backlog the kernel allows.
///
/// This is the `LISTEN_FDS` protocol as systemd defines it (`sd_listen_fds(3)`):
/// - `LISTEN_PID` must be this process's id; if it names another process, or is unset, there
///   are no sockets for this process (an empty list, not an error). On Linux, `LISTEN_PIDFDID`,
///   where set, must also match this process's pidfd.
/// - `LISTEN_FDS` counts the descriptors, from 3; `LISTEN_FDNAMES` names them, separated by
///   `:`.
/// - Every descriptor must be a listening stream socket, TCP or Unix; each is checked before
///   anything is changed, and one that is not fails the whole call.
/// - Then each is made close-on-exec and re-listened, and the variables are removed from the
///   environment (as `sd_listen_fds(1)` does), so neither a child nor a second call adopts them
///   again.
///
/// Why re-listen: systemd before v254 listened with `SOMAXCONN` (128, or 4096 with glibc 2.31+),
/// `systemfd` listens with 1, and any of them took the system limit as it was when the socket
/// unit started. systemd keeps the same socket, so the re-listen also holds for the socket unit
/// across restarts of the service.
///
/// Use with a systemd socket unit (`ListenStream=8080`, `ListenStream=/run/app.sock`), with
/// `systemd-socket-activate -l 8080 ./server` by hand, or in development with
/// `systemfd --no-pid -s http::8080 -- cargo watch -x run` (the `listenfd` companion). Removing
/// variables from the environment is not thread-safe in every C library: call this early in
/// `main`, before starting threads.
///
/// # Errors
///
/// - [`Error::Environment`]: `LISTEN_PID`, `LISTEN_FDS` or `LISTEN_PIDFDID` is not a number,
///   `LISTEN_FDS` is missing or absurd, or `LISTEN_FDNAMES` has a different count of names.
/// - [`Error::Inherited`]: a descriptor is not open (`EBADF`), not a socket (`ENOTSOCK`), not
///   a stream socket of TCP or Unix, or does not listen (`InvalidInput`); or it could not be
///   made close-on-exec or re-listened.
///
/// Every descriptor is checked before any is changed: on an error from the environment or a
/// check, nothing was adopted, changed or removed, and the descriptors stay open. (Making a
/// checked listening socket close-on-exec or re-listening it does not fail in practice; if
/// it did, the sockets before it would already be changed.)
///
/// ```
/// // Under `systemd-socket-activate -l 127.0.0.1:8080 ./server`:
/// let sockets = maxlisten::inherited()?;
/// for socket in &sockets {
///     println!("adopted fd {} {:?}: {}", socket.fd(), socket.name(), socket.backlog());
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn inherited() -> Result<Vec<Inherited>, Error> {
    adopt(Some(DEFAULT_BACKLOG))
}

/// As [`inherited`], but leaves each socket's backlog as it was handed over; the report says
/// what it is.
///
/// # Errors
///
/// As [`inherited`].
///
/// ```
/// for socket in maxlisten::inherited_keep_backlog()? {
///     println!("handed over with backlog {}", socket.backlog());
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn inherited_keep_backlog() -> Result<Vec<Inherited>, Error> {
    adopt(None)
}

/// A socket checked but not yet adopted.
struct Checked {
    fd: RawFd,
    name: Option<String>,
    unix: bool,
}

fn adopt(relisten: Option<u32>) -> Result<Vec<Inherited>, Error> {
    let Some(count) = handed_to_us()? else {
        return Ok(Vec::new());
    };
    let names = names(count)?;
    // Check every descriptor before touching any.
    let mut checked = Vec::with_capacity(count as usize);
    for (i, name) in names.into_iter().enumerate() {
        let fd = FIRST_FD + i as RawFd;
        let unix = check(fd).map_err(|source| Error::Inherited {
            fd,
            name: name.clone(),
            source,
        })?;
        checked.push(Checked { fd, name, unix });
    }
    let mut adopted = Vec::with_capacity(checked.len());
    for Checked { fd, name, unix } in checked {
        let failed = |source| Error::Inherited {
            fd,
            name: name.clone(),
            source,
        };
        // SAFETY: `fd` is open (check() read its socket options), and the activation protocol
        // hands it to this process alone; the variables are removed below, so no second call
        // adopts it again.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) };
        sys::set_cloexec(owned).map_err(failed)?;
        let socket = SockRef::from(&owned);
        let backlog = match relisten {
            Some(backlog) => control::relisten(&socket, backlog)?,
            // What the other side asked for is unknown: report the applied value as the request.
            None => {
                let found = sys::applied_backlog(&socket, DEFAULT_BACKLOG);
                Backlog::new(
                    found.applied().unwrap_or(DEFAULT_BACKLOG),
                    found.applied(),
                    found.source(),
                )
            }
        };
        adopted.push((fd, name, unix, backlog));
    }
    for variable in [
        "LISTEN_PID",
        "LISTEN_PIDFDID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    ] {
        env::remove_var(variable);
    }
    Ok(adopted
        .into_iter()
        .map(|(fd, name, unix, backlog)| {
            // SAFETY: as above: this process owns `fd` from now on, and only here.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
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

/// Whether `fd` is a listening TCP (`false`) or Unix (`true`) stream socket; an error says why
/// not.
fn check(fd: RawFd) -> io::Result<bool> {
    sys::check_open_socket(fd)?;
    // SAFETY: `fd` is open (just checked) and only borrowed for these readings.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
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
    debug_assert!(borrowed.as_raw_fd() == fd);
    Ok(unix)
}
