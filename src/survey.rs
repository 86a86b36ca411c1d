//! Every listener on the host, in every network namespace, with its owners, and raising
//! another process's backlog live (Linux and Android: the same kernel interfaces; on Android an
//! app is normally denied `sock_diag` and other processes' `/proc` entries, so it needs a root
//! shell there).
//!
//! [`survey`] lists every listening TCP (IPv4, IPv6) and Unix stream socket of the calling
//! thread's network namespace; [`survey_netns`] those of one namespace, [`survey_all`] those of
//! every namespace on the host (see [`netns`](crate::netns)). In each namespace: one `sock_diag`
//! dump per family, made from a thread inside it ([`Netns::run`]), and its limit read there;
//! then one scan of `/proc/*/fd` for all of them (socket inodes are unique host-wide) to find
//! which processes hold each socket, and the cgroup (and container) of each holder. It makes no
//! system call per socket.
//!
//! [`relisten`] calls `listen(2)` on another process's socket: `pidfd_open` and `pidfd_getfd`
//! (Linux 5.6+) give this process a duplicate of it, and a `listen` on the duplicate changes
//! the backlog of the one socket both share. The owner keeps serving and notices nothing but
//! a longer queue. It needs ptrace permission over the target: `CAP_SYS_PTRACE` (root has it),
//! or the same user where `kernel.yama.ptrace_scope` allows it. The kernel clamps the backlog to
//! the limit of the socket's own namespace, and the result is read back in that namespace.
//!
//! ```
//! let survey = maxlisten::survey::survey()?;
//! for listener in survey.listeners.iter().filter(|l| l.below_limit) {
//!     println!("{} {} has backlog {} of {:?}", listener.proto, listener.local_name(), listener.backlog, listener.limit);
//! }
//! # Ok::<(), maxlisten::Error>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use socket2::SockRef;

use crate::container::{self, Container};
use crate::netns::{ListenCounters, Netns};
use crate::sys::sock_diag::{self, DiagListener};
use crate::sys::{netns as raw_netns, pidfd, proc};
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

impl Proto {
    /// Its name in the survey's output: `tcp` or `unix` (what `Display` writes).
    ///
    /// ```
    /// assert_eq!(maxlisten::survey::Proto::Tcp.as_str(), "tcp");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Unix => "unix",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
/// assert!(owner.cgroup.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The process id, in the PID namespace of the `/proc` this process sees.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`). Shared, like `cgroup`, by every listener the
    /// process holds (a survey of 10,000 listeners of one process holds it once).
    pub command: Arc<str>,
    /// The descriptor number in that process.
    pub fd: RawFd,
    /// Its cgroup (`/proc/PID/cgroup`: the cgroup v2 path, or the v1 hierarchy that names its
    /// container), `None` if it could not be read.
    pub cgroup: Option<Arc<str>>,
    /// The container its cgroup names (Docker, containerd/Kubernetes with the pod, CRI-O,
    /// Podman), if any; see [`container`].
    pub container: Option<Container>,
}

/// One listening socket, as the kernel reports it.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // std: 128
/// let addr = maxlisten::Address::Inet(listener.local_addr()?);
/// let info = maxlisten::survey::listeners()?.into_iter().find(|l| l.local == addr).unwrap();
/// assert_eq!(info.backlog, maxlisten::system_limit().unwrap().min(128));
/// assert_eq!(info.limit, maxlisten::system_limit());
/// assert_eq!(info.below_limit, maxlisten::system_limit().unwrap() > 128);
/// assert_eq!(info.netns, maxlisten::netns::Netns::current()?.inode());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    /// TCP or Unix.
    pub proto: Proto,
    /// Its address: IP and port (an IPv6 link-local address with its scope id), a path, or an
    /// abstract name. [`local_name`](ListenerInfo::local_name) shows the scope by device name.
    pub local: Address,
    /// The device it is bound to (`SO_BINDTODEVICE`, or the scope of a link-local address), by
    /// its name in the listener's namespace; `None` when it is bound to none.
    pub device: Option<String>,
    /// The socket's inode, as `/proc/PID/fd` shows it (`socket:[INODE]`).
    pub inode: u64,
    /// The socket's cookie (`SO_COOKIE`), unique for the kernel's uptime: with the inode, what
    /// tells this socket from a later one at the same descriptor.
    pub cookie: u64,
    /// The inode of its network namespace (`net:[INODE]`).
    pub netns: u64,
    /// Its namespace's `net.core.somaxconn`, the most `listen` can give it.
    pub limit: Option<u32>,
    /// The applied backlog.
    pub backlog: u32,
    /// Connections waiting for `accept()`.
    pub queued: u32,
    /// SYNs and handshake ACKs the kernel dropped on it, for any reason (TCP, Linux 4.12+;
    /// `None` for Unix): see [`QueueStats::drops`](crate::QueueStats::drops).
    pub drops: Option<u64>,
    /// Whether the backlog is below its own namespace's limit: a `listen` with a larger value
    /// would give it more.
    pub below_limit: bool,
    /// The processes that hold it, as far as `/proc` could be read; empty if none could.
    pub processes: Vec<Owner>,
    /// Its namespace, held open, where its backlog is read back after a `listen`.
    pub(crate) ns: Netns,
}

impl ListenerInfo {
    /// The address as `ss` and the table show it: an IPv6 link-local address with its scope as
    /// the device's name (`[fe80::1%eth0]:80`), everything else as [`Address`] shows it.
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = maxlisten::Address::Inet(listener.local_addr()?);
    /// let info = maxlisten::survey::listeners()?.into_iter().find(|l| l.local == addr).unwrap();
    /// assert_eq!(info.local_name(), listener.local_addr()?.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_name(&self) -> String {
        match (&self.local, &self.device) {
            (Address::Inet(SocketAddr::V6(v6)), Some(device)) if v6.scope_id() != 0 => {
                format!("[{}%{device}]:{}", v6.ip(), v6.port())
            }
            (local, _) => local.to_string(),
        }
    }
}

/// One network namespace of a survey.
///
/// ```
/// let survey = maxlisten::survey::survey()?;
/// let ns = &survey.namespaces[0];
/// assert_eq!(ns.netns, maxlisten::netns::Netns::current()?.inode());
/// assert_eq!(ns.limit, maxlisten::system_limit());
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct NamespaceInfo {
    /// Its inode (`net:[INODE]`).
    pub netns: u64,
    /// Its `ip netns` names (bind mounts under `/run/netns`); empty for most containers.
    pub names: Vec<String>,
    /// Its `net.core.somaxconn`; `None` if it could not be read there.
    pub limit: Option<u32>,
    /// Its `TcpExt` `ListenOverflows` and `ListenDrops`, if readable.
    pub counters: Option<ListenCounters>,
    /// How many of the survey's listeners are in it.
    pub listeners: usize,
}

/// A network namespace that [`survey_all`] found but could not read: its listeners are missing
/// from the survey, so none of them can be raised. `Display` names it (inode, `ip netns` names,
/// a pid in it), the step that failed and the OS error, with what is missing where the error
/// tells (`CAP_SYS_ADMIN` over its user namespace, for `setns`).
///
/// ```
/// # let Ok(survey) = maxlisten::survey::survey_all() else { return Ok(()) }; // not root
/// for ns in &survey.unreadable_namespaces {
///     // e.g. "network namespace 4026532524 (ip netns blue, pid 1234): setns: Operation not
///     // permitted (os error 1); entering another network namespace needs CAP_SYS_ADMIN ..."
///     eprintln!("{ns}");
///     // Not surveyed: none of its listeners is in the survey.
///     assert!(survey.namespace(ns.netns).is_none());
///     assert!(survey.listeners.iter().all(|l| l.netns != ns.netns));
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct UnreadableNamespace {
    /// Its inode (`net:[INODE]`).
    pub netns: u64,
    /// Its `ip netns` names (bind mounts under `/run/netns`); empty for most containers.
    pub names: Vec<String>,
    /// A process in it (the one it was found by), in the PID namespace of the `/proc` this
    /// process sees; `None` for a namespace found only by its name under `/run/netns`.
    pub pid: Option<u32>,
    // Shared, not copied: `Error` holds an `io::Error`, which cannot be cloned.
    error: Arc<Error>,
}

impl UnreadableNamespace {
    /// Why it could not be read: [`Error::Namespace`] (step `open` or `setns`; `EPERM`,
    /// kind `PermissionDenied`, without `CAP_SYS_ADMIN` over its user namespace), or
    /// [`Error::Query`] for a `sock_diag` dump that failed inside it. The OS error and its
    /// [`io::ErrorKind`] are kept.
    ///
    /// ```
    /// # let Ok(survey) = maxlisten::survey::survey_all() else { return Ok(()) }; // not root
    /// for ns in survey.unreadable_namespaces {
    ///     println!("{}: {:?}", ns.netns, ns.error().kind());
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// `INODE (ip netns NAME, pid PID)`, with what is known.
    fn label(netns: u64, names: &[String], pid: Option<u32>) -> String {
        let mut known = Vec::new();
        if !names.is_empty() {
            known.push(format!("ip netns {}", names.join(", ")));
        }
        if let Some(pid) = pid {
            known.push(format!("pid {pid}"));
        }
        if known.is_empty() {
            netns.to_string()
        } else {
            format!("{netns} ({})", known.join(", "))
        }
    }

    /// The namespace `ns`, and why it could not be read: a namespace error is named by its
    /// label (inode, names, pid) rather than by the path it was opened by.
    fn new(ns: &Netns, error: Error) -> UnreadableNamespace {
        UnreadableNamespace::with(ns.inode(), ns.names().to_vec(), pid_of(ns.path()), error)
    }

    fn with(netns: u64, names: Vec<String>, pid: Option<u32>, error: Error) -> Self {
        let error = match error {
            Error::Namespace { step, source, .. } => Error::Namespace {
                netns: UnreadableNamespace::label(netns, &names, pid),
                step,
                source,
            },
            other => other,
        };
        UnreadableNamespace {
            netns,
            names,
            pid,
            error: Arc::new(error),
        }
    }
}

impl fmt::Display for UnreadableNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.error {
            // Already names it: "network namespace LABEL: STEP: OS error".
            Error::Namespace { .. } => write!(f, "{}", self.error),
            other => write!(
                f,
                "network namespace {}: {other}",
                UnreadableNamespace::label(self.netns, &self.names, self.pid)
            ),
        }
    }
}

/// The pid in a `/proc/PID/ns/net` or `/proc/PID/task/TID/ns/net` path.
fn pid_of(path: &Path) -> Option<u32> {
    let mut parts = path.strip_prefix("/proc").ok()?.components();
    parts.next()?.as_os_str().to_str()?.parse().ok()
}

/// What a survey found.
///
/// ```
/// let survey = maxlisten::survey::survey()?;
/// assert_eq!(survey.namespaces.len(), 1);
/// assert!(survey.unreadable_namespaces.is_empty());
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Survey {
    /// Every listening socket, namespace by namespace (in the order of `namespaces`), TCP
    /// first, each family in the kernel's order.
    pub listeners: Vec<ListenerInfo>,
    /// The namespaces surveyed, ordered by inode (for [`survey`], just the caller's).
    pub namespaces: Vec<NamespaceInfo>,
    /// Processes whose descriptors could not be read (another user's, without root): their
    /// listeners are still listed, without those owners.
    pub unreadable_processes: usize,
    /// Their pids, in ascending order.
    pub unreadable_pids: Vec<u32>,
    /// Namespaces that [`survey_all`] found but could not read, each with its error, ordered by
    /// inode: their listeners are missing from `listeners` (empty for [`survey`] and
    /// [`survey_netns`], which fail instead).
    pub unreadable_namespaces: Vec<UnreadableNamespace>,
}

impl Survey {
    /// The namespace of a listener (or any inode), if it was surveyed.
    ///
    /// ```
    /// let survey = maxlisten::survey::survey()?;
    /// for l in &survey.listeners {
    ///     assert_eq!(survey.namespace(l.netns).unwrap().limit, l.limit);
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn namespace(&self, netns: u64) -> Option<&NamespaceInfo> {
        self.namespaces.iter().find(|ns| ns.netns == netns)
    }
}

/// Lists every listening TCP and Unix stream socket of the calling thread's network namespace,
/// with backlog, limit, queue, drops and owners. See the [module](self) for the cost. Needs no
/// privilege (without root, other users' processes are counted, not read).
///
/// # Errors
///
/// [`Error::Query`] when a `sock_diag` dump fails (`what` names it), for instance in a kernel
/// without `inet_diag` or `unix_diag`; [`Error::Namespace`] when `/proc` is not mounted.
///
/// ```
/// let survey = maxlisten::survey::survey()?;
/// println!("{} listeners, {} processes unreadable", survey.listeners.len(), survey.unreadable_processes);
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn survey() -> Result<Survey, Error> {
    survey_netns(&Netns::current()?)
}

/// Lists every listener of one network namespace (a container's, an `ip netns`), read from a
/// thread inside it; owners are found in the `/proc` this process sees.
///
/// # Errors
///
/// [`Error::Namespace`] when the namespace cannot be entered: without `CAP_SYS_ADMIN` for any
/// namespace but the caller's own (the message says so); [`Error::Query`] as [`survey`].
///
/// ```
/// let ns = maxlisten::netns::Netns::parse("/proc/self/ns/net")?;
/// let survey = maxlisten::survey::survey_netns(&ns)?;
/// assert!(survey.listeners.iter().all(|l| l.netns == ns.inode()));
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn survey_netns(ns: &Netns) -> Result<Survey, Error> {
    let inside = read_inside(ns)?;
    Ok(assemble(vec![(ns.clone(), inside)], Vec::new()))
}

/// Lists every listener of every network namespace on the host ([`Netns::all`]): the host's,
/// every container's and pod's, every `ip netns`. A namespace that cannot be entered or read
/// (`setns` refused, a `sock_diag` dump that failed there, a bind mount under `/run/netns`
/// that cannot be opened) is skipped and kept, with its error, in
/// [`Survey::unreadable_namespaces`]: the survey is then not the whole host, and a caller that
/// needs every listener (to raise them all, say) must treat it as a failure. Processes that
/// exit meanwhile are skipped. A namespace that only processes this one may not inspect are in
/// (`/proc/PID/ns/net` refused) cannot be found at all: those processes are among
/// [`Survey::unreadable_pids`], since the kernel refuses their descriptors by the same check.
///
/// A node agent runs this with the host's PID namespace (to see every container's processes),
/// `CAP_SYS_PTRACE` (their namespaces and descriptors) and `CAP_SYS_ADMIN` (to enter the
/// namespaces); it does not need the host's network namespace.
///
/// # Errors
///
/// [`Error::Namespace`], kind `PermissionDenied`, without `CAP_SYS_ADMIN` or `CAP_SYS_PTRACE`,
/// naming the missing one: one namespace is never passed off as all of them.
///
/// ```
/// match maxlisten::survey::survey_all() {
///     Ok(survey) => {
///         for ns in &survey.namespaces {
///             println!("{} {:?}: limit {:?}, {} listeners", ns.netns, ns.names, ns.limit, ns.listeners);
///         }
///     }
///     // Not root: refused, naming the capability that is missing.
///     Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}"),
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
pub fn survey_all() -> Result<Survey, Error> {
    let all = Netns::all()?;
    let mut namespaces = all.namespaces;
    let mut unreadable = Vec::new();
    if all.unreadable_namespaces > 0 {
        // `Netns::all` counts the `/run/netns` names it could not open: open them again here
        // to keep each one's error (and survey those that open now).
        for name in unopened_names(&namespaces) {
            match Netns::named(&name) {
                Ok(ns) if !namespaces.contains(&ns) => namespaces.push(ns),
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => {
                    let inode = std::fs::metadata(Path::new(crate::netns::RUN_DIR).join(&name))
                        .map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m));
                    unreadable.push(UnreadableNamespace::with(inode, vec![name], None, e));
                }
            }
        }
    }
    let results = Netns::run_each(&namespaces, |_| read_here())?;
    let mut read = Vec::with_capacity(namespaces.len());
    for (ns, result) in namespaces.into_iter().zip(results) {
        match result {
            Ok(Ok(inside)) => read.push((ns, inside)),
            Ok(Err(e)) | Err(e) => unreadable.push(UnreadableNamespace::new(&ns, e)),
        }
    }
    read.sort_by_key(|(ns, _)| ns.inode());
    unreadable.sort_by_key(|u| u.netns);
    Ok(assemble(read, unreadable))
}

/// The names under `/run/netns` that none of `namespaces` carries.
fn unopened_names(namespaces: &[Netns]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(crate::netns::RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !namespaces.iter().any(|ns| ns.names().contains(name)))
        .collect();
    names.sort();
    names
}

/// Whether opening a namespace failed because it is not there (gone since it was listed) or is
/// not a namespace at all (a stale file whose mount is gone): nothing unread.
fn gone(err: &Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
    )
}

/// The listeners of [`survey`], without the counts.
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

/// What is read from inside one namespace.
struct Inside {
    tcp: Vec<DiagListener>,
    unix: Vec<DiagListener>,
    limit: Option<u32>,
    counters: Option<ListenCounters>,
    devices: HashMap<u32, String>,
}

/// The dumps, limit, counters and device names of one namespace, from a thread inside it.
fn read_inside(ns: &Netns) -> Result<Inside, Error> {
    ns.run(read_here)?
}

/// The dumps, limit, counters and device names of the calling thread's namespace.
fn read_here() -> Result<Inside, Error> {
    {
        let dump = |what, result: io::Result<Vec<DiagListener>>| {
            result.map_err(|source| Error::Query {
                what,
                addr: None,
                source,
            })
        };
        let tcp = dump("sock_diag inet dump", sock_diag::tcp_listeners())?;
        let unix = dump("sock_diag unix dump", sock_diag::unix_listeners())?;
        let mut devices = HashMap::new();
        for l in &tcp {
            if l.interface != 0 && !devices.contains_key(&l.interface) {
                if let Some(name) = raw_netns::interface_name(l.interface) {
                    devices.insert(l.interface, name);
                }
            }
        }
        Ok(Inside {
            tcp,
            unix,
            limit: sys::system_limit(),
            counters: crate::netns::listen_counters_here(),
            devices,
        })
    }
}

/// The survey of the namespaces read, with one pass over `/proc` for the owners.
fn assemble(read: Vec<(Netns, Inside)>, unreadable_namespaces: Vec<UnreadableNamespace>) -> Survey {
    let wanted: HashSet<u64> = read
        .iter()
        .flat_map(|(_, inside)| inside.tcp.iter().chain(&inside.unix).map(|l| l.inode))
        .collect();
    let (mut owners, unreadable_pids) = owners(&wanted);
    let count = wanted.len();
    drop(wanted);
    // Each process's cgroup and container, read and parsed once however many it holds.
    let mut cgroups: HashMap<u32, (Option<Arc<str>>, Option<Container>)> = HashMap::new();
    // Exactly as many as were read: a doubling Vec of 10,000 listeners holds room for 16,384.
    let mut listeners = Vec::with_capacity(count);
    let mut namespaces = Vec::with_capacity(read.len());
    for (ns, inside) in read {
        let limit = inside.limit;
        let before = listeners.len();
        let found = inside
            .tcp
            .into_iter()
            .map(|l| (Proto::Tcp, l))
            .chain(inside.unix.into_iter().map(|l| (Proto::Unix, l)));
        for (proto, l) in found {
            let mut processes = owners.remove(&l.inode).unwrap_or_default();
            for owner in &mut processes {
                let (cgroup, container) = cgroups.entry(owner.pid).or_insert_with(|| {
                    let cgroup = proc::cgroup(owner.pid)
                        .ok()
                        .and_then(|text| container::cgroup_path(&text));
                    let container = cgroup.as_deref().and_then(Container::from_cgroup);
                    (cgroup.map(Arc::from), container)
                });
                owner.cgroup = cgroup.clone();
                owner.container = container.clone();
            }
            listeners.push(ListenerInfo {
                proto,
                device: inside.devices.get(&l.interface).cloned(),
                below_limit: limit.is_some_and(|limit| l.backlog < limit),
                processes,
                local: l.local,
                inode: l.inode,
                cookie: l.cookie,
                netns: ns.inode(),
                limit,
                backlog: l.backlog,
                queued: l.queued,
                drops: l.drops.map(u64::from),
                ns: ns.clone(),
            });
        }
        namespaces.push(NamespaceInfo {
            netns: ns.inode(),
            names: ns.names().to_vec(),
            limit,
            counters: inside.counters,
            listeners: listeners.len() - before,
        });
    }
    Survey {
        listeners,
        namespaces,
        unreadable_processes: unreadable_pids.len(),
        unreadable_pids,
        unreadable_namespaces,
    }
}

/// Socket inode → its owners, for the sockets in `wanted` (the listeners: a host has many more
/// connected sockets, which are not kept), from one pass over `/proc/*/fd`; and the processes
/// that could not be read.
fn owners(wanted: &HashSet<u64>) -> (HashMap<u64, Vec<Owner>>, Vec<u32>) {
    let mut owners: HashMap<u64, Vec<Owner>> = HashMap::new();
    let mut unreadable = Vec::new();
    let mut pids = proc::pids().unwrap_or_default();
    pids.sort_unstable();
    for pid in pids {
        let fds = match proc::socket_fds(pid) {
            proc::SocketFds::Found(fds) => fds,
            proc::SocketFds::Gone => continue,
            proc::SocketFds::Unreadable(_) => {
                unreadable.push(pid);
                continue;
            }
        };
        let mut command = None;
        for (fd, inode) in fds.into_iter().filter(|(_, inode)| wanted.contains(inode)) {
            let command = command
                .get_or_insert_with(|| Arc::<str>::from(proc::command(pid)))
                .clone();
            // Room for one holder (the usual case), not the four a first push makes room for.
            owners
                .entry(inode)
                .or_insert_with(|| Vec::with_capacity(1))
                .push(Owner {
                    pid,
                    command,
                    fd,
                    cgroup: None,
                    container: None,
                });
        }
    }
    (owners, unreadable)
}

/// Calls `listen(2)` with `backlog` on the listener the survey found, in a process that holds
/// it, and reports the backlog the kernel applied, read back in the listener's own namespace.
/// See the [module](self) for how, and what it needs.
///
/// Each holder in [`ListenerInfo::processes`] is tried in turn (forked workers share one
/// socket) until one can be reached. Before `listen`, the duplicate is checked to be the very
/// socket the survey found (its inode, and its `SO_COOKIE` against the survey's cookie): a
/// pid or a descriptor number may have been reused since. `listen` is never called on
/// another socket, nor on one that does not listen (that would make it start listening). The
/// duplicate is closed before returning. A request at or above the backlog never lowers it:
/// where the namespace's limit has fallen below the backlog since it listened, or cannot be
/// read at all (`listen` would cap the request at a limit that may be lower), `listen` is not
/// called and the backlog as it is is returned. A request below the backlog is carried out:
/// lowering one is this function's caller's decision.
///
/// # Errors
///
/// [`Error::Foreign`], naming the pid and fd, the step, and what is missing, for the holder
/// whose failure says the most (a refusal before a process that is gone):
/// - `PermissionDenied` (`EPERM`): no ptrace permission over the process (`CAP_SYS_PTRACE`,
///   or the same user where `kernel.yama.ptrace_scope` allows it);
/// - `Unsupported` (`ENOSYS`): a kernel older than 5.6;
/// - `ESRCH`: the process is gone; `EBADF`: it no longer has that descriptor;
/// - `NotFound`: the descriptor now holds another socket (step `check that it is the socket
///   surveyed`);
/// - `InvalidInput`: it is not a socket, or no longer listens.
///
/// [`Error::Query`] (kind `NotFound`) when no holder is known, saying why from what this
/// process can observe: a `/proc` mounted with `hidepid`, processes it may not read (not
/// root), or a holder outside its PID namespace. [`Error::Namespace`] when the read-back
/// cannot enter the listener's namespace.
///
/// ```
/// // A listener of this very process, made with std's 128; any process works the same way
/// // given the permission.
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = maxlisten::Address::Inet(listener.local_addr()?);
/// let info = maxlisten::survey::listeners()?.into_iter().find(|l| l.local == addr).unwrap();
/// let backlog = maxlisten::survey::relisten(&info, u32::MAX)?;
/// assert_eq!(backlog.applied(), info.limit);
///
/// // The descriptor closed and reused by another listener: refused, that one unchanged.
/// drop(listener);
/// let other = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let err = maxlisten::survey::relisten(&info, u32::MAX).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn relisten(listener: &ListenerInfo, backlog: u32) -> Result<Backlog, Error> {
    let mut failures: Vec<Error> = Vec::new();
    for owner in &listener.processes {
        match borrow(listener, owner) {
            Ok(socket) => {
                let what = (owner.pid, owner.fd);
                return listener.ns.run(|| listen_on(&socket, backlog, what))?;
            }
            Err(err) => failures.push(err),
        }
    }
    // The most telling failure: anything before a process that is merely gone.
    let gone = |e: &Error| e.raw_os_error() == Some(libc::ESRCH);
    if let Some(i) = failures.iter().position(|e| !gone(e)) {
        return Err(failures.swap_remove(i));
    }
    if let Some(err) = failures.pop() {
        return Err(err);
    }
    Err(Error::Query {
        what: "the holders (/proc/*/fd)",
        addr: Some(listener.local.clone()),
        source: io::Error::new(io::ErrorKind::NotFound, why_no_holder()),
    })
}

/// A duplicate of `owner`'s descriptor, checked to be the listener's socket.
fn borrow(listener: &ListenerInfo, owner: &Owner) -> Result<OwnedFd, Error> {
    let foreign = |step: &'static str, source: io::Error| Error::Foreign {
        pid: owner.pid,
        fd: owner.fd,
        step,
        source,
    };
    let pidfd = pidfd::open(owner.pid).map_err(|e| foreign("pidfd_open", e))?;
    let socket = pidfd::getfd(&pidfd, owner.fd).map_err(|e| foreign("pidfd_getfd", e))?;
    drop(pidfd);
    sys::check_open_socket(socket.as_raw_fd()).map_err(|e| {
        let e = if e.raw_os_error() == Some(libc::ENOTSOCK) {
            io::Error::new(io::ErrorKind::InvalidInput, "not a socket")
        } else {
            e
        };
        foreign("fstat", e)
    })?;
    const SAME: &str = "check that it is the socket surveyed";
    let (_, inode) = raw_netns::id(socket.as_fd()).map_err(|e| foreign("fstat", e))?;
    // A cookie the kernel cannot give (before 4.11) leaves the inode to decide.
    let cookie = sock_diag::cookie_of(socket.as_fd()).ok();
    let cookie_differs = listener.cookie != 0 && cookie.is_some_and(|c| c != listener.cookie);
    if inode != listener.inode || cookie_differs {
        return Err(foreign(
            SAME,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the descriptor now holds socket:[{inode}], not socket:[{}] (reused since \
                     the survey); nothing changed",
                    listener.inode
                ),
            ),
        ));
    }
    Ok(socket)
}

/// `listen` on a checked duplicate, in the thread that reads the backlog back.
fn listen_on(socket: &OwnedFd, backlog: u32, (pid, fd): (u32, RawFd)) -> Result<Backlog, Error> {
    let foreign = |step: &'static str, source: io::Error| Error::Foreign {
        pid,
        fd,
        step,
        source,
    };
    let socket = SockRef::from(socket);
    match sys::is_listening(&socket) {
        Ok(true) => {}
        Ok(false) => {
            return Err(foreign(
                "SO_ACCEPTCONN",
                io::Error::new(io::ErrorKind::InvalidInput, "not a listening socket"),
            ))
        }
        Err(e) => return Err(foreign("SO_ACCEPTCONN", e)),
    }
    control::relisten_raising(&socket, backlog).map_err(|e| match e {
        Error::Listen { source, .. } => foreign("listen", source),
        other => other,
    })
}

/// Why process `pid` (descriptor `fd`, if given) shows no listener in a survey, from what
/// `/proc` shows now: no such process, descriptors that cannot be read, no such descriptor, a
/// descriptor that is not a socket, or a socket that is not a listener of the namespaces
/// surveyed. For a person: `maxlisten raise --pid P --fd F` prints it.
///
/// ```
/// let text = maxlisten::survey::why_not_listed(std::process::id(), Some(0));
/// assert!(text.contains("fd 0"), "{text}");
/// let file = std::fs::File::open("/proc/self/status")?;
/// let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
/// let text = maxlisten::survey::why_not_listed(std::process::id(), Some(fd));
/// assert!(text.contains("not a socket"), "{text}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn why_not_listed(pid: u32, fd: Option<RawFd>) -> String {
    let who = match fd {
        Some(fd) => format!("pid {pid} fd {fd}"),
        None => format!("pid {pid}"),
    };
    if !proc::exists(pid) {
        return format!("{who}: {}", io::Error::from_raw_os_error(libc::ESRCH));
    }
    if let proc::SocketFds::Unreadable(err) = proc::socket_fds(pid) {
        return format!(
            "{who}: its descriptors cannot be read ({err}): needs root (or CAP_SYS_PTRACE)"
        );
    }
    let Some(fd) = fd else {
        return format!("{who}: it holds no listener of the network namespaces surveyed");
    };
    match proc::fd_target(pid, fd) {
        Err(err) => format!("{who}: the process has no such descriptor ({err})"),
        Ok(target) if target.to_string_lossy().starts_with("socket:") => format!(
            "{who}: a socket, but not a listener of the network namespaces surveyed \
             (see --netns and --all-namespaces)"
        ),
        Ok(target) => format!("{who}: not a socket (it is {})", target.display()),
    }
}

/// Why no process could be found holding a socket, from what this process observes.
fn why_no_holder() -> String {
    const CAP_SYS_PTRACE: u32 = 19;
    let ptrace = proc::own_capabilities().is_ok_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0);
    let me = std::process::id();
    // A child PID namespace: NSpid lists more than one pid where /proc is the parent's, and
    // the namespace is not the initial one where /proc is its own.
    let nested = proc::status_field(me, "NSpid")
        .ok()
        .flatten()
        .is_some_and(|pids| pids.split_whitespace().count() > 1)
        || proc::own_pid_namespace().is_some_and(|ns| ns != proc::INITIAL_PID_NAMESPACE);
    if let (Some(hidepid), false) = (proc::proc_hidepid(), ptrace) {
        return format!(
            "/proc is mounted with hidepid={hidepid}, which hides other users' processes: run as \
             root (CAP_SYS_PTRACE)"
        );
    }
    if !ptrace {
        return "no process whose descriptors this user may read holds it: run as root (or with \
                CAP_SYS_PTRACE) to find and reach its owner"
            .into();
    }
    if nested {
        return "no process visible here holds it: this process runs in a child PID namespace \
                (a container), so the holder is outside it; run in the host's PID namespace \
                (hostPID)"
            .into();
    }
    "no process holds it: its holder is in a PID namespace this /proc does not show, or it is \
     held only by the kernel or by a descriptor in flight"
        .into()
}
