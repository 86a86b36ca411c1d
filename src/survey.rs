//! Every listener of a network namespace, with its owners, and raising another process's
//! backlog live (Linux and Android: the same kernel interfaces; on Android an app is normally
//! denied `sock_diag` and other processes' `/proc` entries, so it needs a root shell there).
//!
//! [`survey`] lists every listening TCP (IPv4, IPv6) and Unix stream socket of the calling
//! thread's network namespace: one `sock_diag` dump per family, then one scan of `/proc/*/fd`
//! to find which processes hold each socket. It makes no system call per socket.
//!
//! [`relisten`] calls `listen(2)` on another process's socket: `pidfd_open` and `pidfd_getfd`
//! (Linux 5.6+) give this process a duplicate of it, and a `listen` on the duplicate changes
//! the backlog of the one socket both share. The owner keeps serving and notices nothing but
//! a longer queue. It needs ptrace permission over the target: `CAP_SYS_PTRACE` (root has it),
//! or the same user where `kernel.yama.ptrace_scope` allows it.
//!
//! ```
//! # #[cfg(target_os = "linux")]
//! # {
//! let survey = maxlisten::survey::survey()?;
//! for listener in survey.listeners.iter().filter(|l| l.below_limit) {
//!     println!("{} {} has backlog {} of {:?}", listener.proto, listener.local, listener.backlog, survey.limit);
//! }
//! # }
//! # Ok::<(), maxlisten::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;

use socket2::SockRef;

use crate::sys::sock_diag::{self, DiagListener};
use crate::sys::{pidfd, proc};
use crate::{control, sys, Address, Backlog, Error};

/// The protocol of a listener.
///
/// ```
/// assert_eq!(maxlisten::survey::Proto::Unix.to_string(), "unix");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// A Unix stream socket.
    Unix,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Unix => "unix",
        })
    }
}

/// A process that holds a listening socket, and the descriptor it holds it as.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let found = maxlisten::survey::listeners()?;
/// let mine = found.iter().find(|l| l.local.as_socket_addr().map(|a| a.port()) == Some(port)).unwrap();
/// // Found through /proc: this process, and the descriptor it holds the socket as.
/// let owner = mine.processes.iter().find(|o| o.pid == std::process::id()).unwrap();
/// assert_eq!(owner.fd, std::os::fd::AsRawFd::as_raw_fd(&listener));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// The descriptor number in that process.
    pub fd: RawFd,
}

/// One listening socket of the namespace, as the kernel reports it.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // std: 128
/// let addr = maxlisten::Address::Inet(listener.local_addr()?);
/// let info = maxlisten::survey::listeners()?.into_iter().find(|l| l.local == addr).unwrap();
/// assert_eq!(info.backlog, maxlisten::system_limit().unwrap().min(128));
/// assert_eq!(info.below_limit, maxlisten::system_limit().unwrap() > 128);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    /// TCP or Unix.
    pub proto: Proto,
    /// Its address: IP and port, a path, or an abstract name.
    pub local: Address,
    /// The socket's inode, as `/proc/PID/fd` shows it (`socket:[INODE]`).
    pub inode: u64,
    /// The inode of the network namespace it belongs to (as `/proc/PID/ns/net` shows it:
    /// `net:[INODE]`).
    pub netns: u64,
    /// The applied backlog.
    pub backlog: u32,
    /// Connections waiting for `accept()`.
    pub queued: u32,
    /// SYNs dropped on it because the queue was full (TCP; `None` for Unix).
    pub drops: Option<u64>,
    /// Whether the backlog is below the system limit: a `listen` with a larger value would
    /// give it more.
    pub below_limit: bool,
    /// The processes that hold it, as far as `/proc` could be read; empty if none could.
    pub processes: Vec<Owner>,
}

/// What [`survey`] found.
///
/// ```
/// let survey = maxlisten::survey::survey()?;
/// assert_eq!(survey.limit, maxlisten::system_limit());
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Survey {
    /// Every listening socket of the namespace, TCP first, each family in the kernel's order.
    pub listeners: Vec<ListenerInfo>,
    /// The system limit the backlogs are compared with (`net.core.somaxconn`).
    pub limit: Option<u32>,
    /// Processes whose descriptors could not be read (another user's, without root): their
    /// listeners are still listed, without those owners.
    pub unreadable_processes: usize,
}

/// Lists every listening TCP and Unix stream socket of the calling thread's network namespace,
/// with backlog, queue, drops and owners. See the [module](self) for the cost.
///
/// # Errors
///
/// [`Error::Query`] when a `sock_diag` dump fails (`what` names it), for instance in a kernel
/// without `inet_diag` or `unix_diag`.
///
/// ```
/// let survey = maxlisten::survey::survey()?;
/// println!("{} listeners, {} processes unreadable", survey.listeners.len(), survey.unreadable_processes);
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn survey() -> Result<Survey, Error> {
    let dump = |what, result: io::Result<Vec<DiagListener>>| {
        result.map_err(|source| Error::Query {
            what,
            addr: None,
            source,
        })
    };
    let tcp = dump("sock_diag inet dump", sock_diag::tcp_listeners())?;
    let unix = dump("sock_diag unix dump", sock_diag::unix_listeners())?;
    let limit = sys::system_limit();
    let netns = proc::thread_netns_inode().unwrap_or(0);
    let (mut owners, unreadable_processes) = owners();
    let listeners = tcp
        .into_iter()
        .map(|l| (Proto::Tcp, l))
        .chain(unix.into_iter().map(|l| (Proto::Unix, l)))
        .map(|(proto, l)| ListenerInfo {
            proto,
            below_limit: limit.is_some_and(|limit| l.backlog < limit),
            processes: owners.remove(&l.inode).unwrap_or_default(),
            local: l.local,
            inode: l.inode,
            netns,
            backlog: l.backlog,
            queued: l.queued,
            drops: l.drops.map(u64::from),
        })
        .collect();
    Ok(Survey {
        listeners,
        limit,
        unreadable_processes,
    })
}

/// The listeners of [`survey`], without the count of unreadable processes.
///
/// # Errors
///
/// As [`survey`].
///
/// ```
/// for listener in maxlisten::survey::listeners()? {
///     println!("{} {} backlog {}", listener.proto, listener.local, listener.backlog);
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn listeners() -> Result<Vec<ListenerInfo>, Error> {
    survey().map(|s| s.listeners)
}

/// Socket inode → its owners, from one pass over `/proc/*/fd`; and how many processes could
/// not be read.
fn owners() -> (HashMap<u64, Vec<Owner>>, usize) {
    let mut owners: HashMap<u64, Vec<Owner>> = HashMap::new();
    let mut unreadable = 0;
    for pid in proc::pids().unwrap_or_default() {
        let fds = match proc::socket_fds(pid) {
            proc::SocketFds::Found(fds) => fds,
            proc::SocketFds::Gone => continue,
            proc::SocketFds::Unreadable(_) => {
                unreadable += 1;
                continue;
            }
        };
        let mut command = None;
        for (fd, inode) in fds {
            let command = command.get_or_insert_with(|| proc::command(pid)).clone();
            owners
                .entry(inode)
                .or_default()
                .push(Owner { pid, command, fd });
        }
    }
    (owners, unreadable)
}

/// Calls `listen(2)` with `backlog` on descriptor `fd` of process `pid`, and reports the
/// backlog the kernel applied. See the [module](self) for how, and what it needs.
///
/// The duplicate is checked first: `listen` is never called on a socket that does not listen
/// (that would make it start listening). It is closed before returning.
///
/// # Errors
///
/// [`Error::Foreign`], naming the pid and fd, the step, and what is missing:
/// - `PermissionDenied` (`EPERM`): no ptrace permission over the process (`CAP_SYS_PTRACE`,
///   or the same user where `kernel.yama.ptrace_scope` allows it);
/// - `Unsupported` (`ENOSYS`): a kernel older than 5.6;
/// - `ESRCH`: the process is gone;
/// - `EBADF`: it has no such descriptor;
/// - `InvalidInput`: the descriptor is not a socket, or not a listening one.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// // A listener of this very process, made with std's 128; any process works the same way
/// // given the permission.
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let backlog = maxlisten::survey::relisten(std::process::id(), listener.as_raw_fd(), u32::MAX)?;
/// assert_eq!(backlog.applied(), maxlisten::system_limit());
/// // Not a socket: refused, naming the pid and fd; listen was not called.
/// let file = std::fs::File::open("/proc/self/status")?;
/// let err = maxlisten::survey::relisten(std::process::id(), file.as_raw_fd(), 5).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn relisten(pid: u32, fd: RawFd, backlog: u32) -> Result<Backlog, Error> {
    let foreign = |step: &'static str, source: io::Error| Error::Foreign {
        pid,
        fd,
        step,
        source,
    };
    let pidfd = pidfd::open(pid).map_err(|e| foreign("pidfd_open", e))?;
    let socket = pidfd::getfd(&pidfd, fd).map_err(|e| foreign("pidfd_getfd", e))?;
    drop(pidfd);
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
    sys::check_open_socket(std::os::fd::AsRawFd::as_raw_fd(&socket)).map_err(|e| {
        let e = if e.raw_os_error() == Some(libc::ENOTSOCK) {
            invalid("not a socket")
        } else {
            e
        };
        foreign("fstat", e)
    })?;
    let socket = SockRef::from(&socket);
    match sys::is_listening(&socket) {
        Ok(true) => {}
        Ok(false) => return Err(foreign("SO_ACCEPTCONN", invalid("not a listening socket"))),
        Err(e) => return Err(foreign("SO_ACCEPTCONN", e)),
    }
    control::relisten(&socket, backlog).map_err(|e| match e {
        Error::Listen { source, .. } => foreign("listen", source),
        other => other,
    })
}
