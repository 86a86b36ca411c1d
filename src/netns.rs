//! Network namespaces (Linux): find them, name them, open them by pid, path or name, read their
//! limit and counters, and run code inside one.
//!
//! Every container, pod and `ip netns` has its own network namespace, and each namespace has its
//! own `net.core.somaxconn`: a new one starts at the kernel's default (4096 since Linux 5.4),
//! whatever the host's is, and `listen(2)` clamps against the *socket's* namespace. A
//! `sock_diag` dump, `/proc/sys/net` and `/proc/thread-self/net` all show the namespace of the
//! thread that asks. So [`Netns::run`] runs a closure on a thread made for it, which enters the
//! namespace (`setns(2)`) before the closure starts: sockets it makes (a netlink socket, a
//! listener) belong to that namespace for their whole life, and nothing else of the caller
//! moves. The caller's own thread never changes namespace.
//!
//! A [`Netns`] holds an open descriptor of its namespace file, so the namespace cannot vanish
//! while it is held, even if every process in it exits. [`Netns::all`] lists every namespace in
//! use on the host: those of every process and thread in `/proc`, and those kept by a bind mount
//! under `/run/netns` (`ip netns add`, CNI plugins), each once.
//!
//! What it needs: opening another user's `/proc/PID/ns/net` needs ptrace read access
//! (`CAP_SYS_PTRACE`); entering a namespace other than the caller's needs `CAP_SYS_ADMIN` over
//! its user namespace. Root has both. Running code in the caller's own namespace needs nothing.
//!
//! ```
//! use maxlisten::netns::Netns;
//!
//! let mine = Netns::current()?;
//! assert_eq!(mine.limit()?, maxlisten::system_limit());
//! // Inside it (here: the caller's own namespace, which needs no privilege).
//! let port = mine.run(|| {
//!     let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//!     listener.local_addr().unwrap().port()
//! })?;
//! assert_ne!(port, 0);
//! # Ok::<(), maxlisten::Error>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sys::{self, netns as raw, proc};
use crate::Error;

/// Where `ip netns` keeps its bind mounts (iproute2's `NETNS_RUN_DIR`).
///
/// ```
/// // `ip netns add blue` makes /run/netns/blue; Netns::named("blue") opens it.
/// assert_eq!(std::path::Path::new(maxlisten::netns::RUN_DIR).join("blue").to_str(), Some("/run/netns/blue"));
/// ```
pub const RUN_DIR: &str = "/run/netns";

/// `CAP_SYS_PTRACE` and `CAP_SYS_ADMIN`, as bit numbers of a capability set.
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;

/// A network namespace, held open.
///
/// Two `Netns` are equal when they are the same namespace (the same `(st_dev, st_ino)` of its
/// nsfs file), however they were opened. `Display` shows the inode and the path it was opened
/// by.
///
/// ```
/// use maxlisten::netns::Netns;
///
/// let by_pid = Netns::of_pid(std::process::id())?;
/// let by_path = Netns::open("/proc/self/ns/net")?;
/// assert_eq!(by_pid, by_path);
/// assert_eq!(by_pid, Netns::current()?);
/// let link = std::fs::read_link("/proc/self/ns/net")?;
/// assert_eq!(link.to_str(), Some(format!("net:[{}]", by_pid.inode()).as_str()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Netns {
    // Shared, not copied: every listener of a survey holds its namespace (24 bytes each).
    id: Arc<Id>,
    names: Arc<[String]>,
}

/// What a [`Netns`] is: the open namespace file, its device and inode, and the path it was
/// opened by.
#[derive(Debug)]
struct Id {
    fd: OwnedFd,
    dev: u64,
    inode: u64,
    path: PathBuf,
}

impl PartialEq for Netns {
    fn eq(&self, other: &Netns) -> bool {
        (self.id.dev, self.id.inode) == (other.id.dev, other.id.inode)
    }
}

impl Eq for Netns {}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id.inode, self.id.path.display())
    }
}

/// `TcpExt` counters of a namespace (`/proc/net/netstat` as seen inside it).
///
/// ```
/// let counters = maxlisten::netns::Netns::current()?.listen_counters()?;
/// if let Some(c) = counters {
///     assert!(c.listen_drops >= c.listen_overflows);
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenCounters {
    /// `ListenOverflows`: connections dropped because an accept queue was full.
    pub listen_overflows: u64,
    /// `ListenDrops`: every SYN or final ACK dropped on a listener (overflows and other causes).
    pub listen_drops: u64,
}

/// What [`Netns::all`] found.
///
/// ```
/// match maxlisten::netns::Netns::all() {
///     Ok(all) => assert!(all.namespaces.contains(&maxlisten::netns::Netns::current()?)),
///     // Without CAP_SYS_PTRACE and CAP_SYS_ADMIN (not root): refused, naming what is missing.
///     Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}"),
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    /// Every namespace in use, each once, ordered by inode.
    pub namespaces: Vec<Netns>,
    /// Processes whose namespace could not be read (`/proc/PID/ns/net` refused): their
    /// namespaces may be missing from the list.
    pub unreadable_processes: usize,
    /// Namespace files that were found but could not be opened (a bind mount under
    /// `/run/netns` that refused).
    pub unreadable_namespaces: usize,
    /// Processes, threads and names that went away while the list was made; skipped.
    pub vanished: usize,
}

impl Netns {
    /// The calling thread's own network namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if `/proc/thread-self/ns/net` cannot be opened (`/proc` not
    /// mounted).
    ///
    /// ```
    /// let mine = maxlisten::netns::Netns::current()?;
    /// assert!(mine.is_current());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn current() -> Result<Netns, Error> {
        Netns::from_path(Path::new("/proc/thread-self/ns/net"), false)
    }

    /// The network namespace of process (or thread) `pid`, from `/proc/PID/ns/net`, in the PID
    /// namespace of the `/proc` this process sees.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`], step `open`: `NotFound` when there is no such process,
    /// `PermissionDenied` without ptrace read access over it (`CAP_SYS_PTRACE`, or the same
    /// user).
    ///
    /// ```
    /// let err = maxlisten::netns::Netns::of_pid(u32::MAX).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("no such process"), "{err}");
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn of_pid(pid: u32) -> Result<Netns, Error> {
        Netns::from_path(&PathBuf::from(format!("/proc/{pid}/ns/net")), false)
    }

    /// The network namespace behind an nsfs file: `/proc/PID/ns/net`,
    /// `/proc/PID/task/TID/ns/net`, `/run/netns/NAME`, or any bind mount of one.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`]: step `open` with the OS error (`NotFound`, `PermissionDenied`);
    /// kind `InvalidInput` for a file that is not a namespace (a plain file under `/run/netns`
    /// whose mount is gone) or a namespace of another kind (`/proc/PID/ns/mnt`), the message
    /// saying which.
    ///
    /// ```
    /// let err = maxlisten::netns::Netns::open("/proc/self/ns/uts").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// let err = maxlisten::netns::Netns::open("/etc/hostname").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Netns, Error> {
        Netns::from_path(path.as_ref(), true)
    }

    /// The namespace `ip netns` knows as `name` (`/run/netns/NAME`).
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`]: kind `InvalidInput` for a name that is empty or holds a `/`, else
    /// as [`Netns::open`] (`NotFound` for a name that does not exist).
    ///
    /// ```
    /// let err = maxlisten::netns::Netns::named("no-such-namespace").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/run/netns/no-such-namespace"), "{err}");
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn named(name: &str) -> Result<Netns, Error> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Namespace {
                netns: format!("{name:?}"),
                step: "check the name (an ip netns name has no '/')",
                source: io::Error::new(io::ErrorKind::InvalidInput, "not an ip netns name"),
            });
        }
        Netns::open(Path::new(RUN_DIR).join(name))
    }

    /// A namespace as a person names it on a command line: a pid (`1234`: that process's
    /// namespace), a path (anything with a `/`), or else an `ip netns` name.
    ///
    /// # Errors
    ///
    /// As [`Netns::of_pid`], [`Netns::open`] or [`Netns::named`]; `InvalidInput` for an empty
    /// string.
    ///
    /// ```
    /// use maxlisten::netns::Netns;
    /// let me = std::process::id().to_string();
    /// assert_eq!(Netns::parse(&me)?, Netns::parse("/proc/self/ns/net")?);
    /// assert!(Netns::parse("").is_err());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Netns, Error> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            match text.parse() {
                Ok(pid) => Netns::of_pid(pid),
                Err(_) => Err(Error::Namespace {
                    netns: text.to_owned(),
                    step: "open",
                    source: io::Error::from_raw_os_error(libc::ESRCH),
                }),
            }
        } else if text.contains('/') {
            Netns::open(text)
        } else {
            Netns::named(text)
        }
    }

    fn from_path(path: &Path, check: bool) -> Result<Netns, Error> {
        let mut ns = Netns::open_unnamed(path, check)?;
        let (dev, inode) = (ns.id.dev, ns.id.inode);
        ns.names = run_dir_names()
            .into_iter()
            .filter(|(_, id)| *id == (dev, inode))
            .map(|(name, _)| name)
            .collect();
        Ok(ns)
    }

    fn open_unnamed(path: &Path, check: bool) -> Result<Netns, Error> {
        let failed = |step, source| Error::Namespace {
            netns: path.display().to_string(),
            step,
            source,
        };
        let fd = raw::open(path).map_err(|e| failed("open", e))?;
        if check {
            const STEP: &str = "check that it is a network namespace";
            let not =
                |what: String| failed(STEP, io::Error::new(io::ErrorKind::InvalidInput, what));
            match raw::kind(fd.as_fd()).map_err(|e| failed("fstatfs", e))? {
                raw::Kind::Net | raw::Kind::Unchecked => {}
                raw::Kind::Other(flag) => {
                    return Err(not(format!(
                        "a namespace of another kind (NS_GET_NSTYPE: CLONE_NEW* flag {flag:#x})"
                    )))
                }
                raw::Kind::NotNsfs => {
                    return Err(not(
                        "not a namespace file (its file system is not nsfs)".into()
                    ))
                }
            }
        }
        let (dev, inode) = raw::id(fd.as_fd()).map_err(|e| failed("fstat", e))?;
        Ok(Netns {
            id: Arc::new(Id {
                fd,
                dev,
                inode,
                path: path.to_path_buf(),
            }),
            names: Arc::from([]),
        })
    }

    /// The namespace's inode: what `/proc/PID/ns/net` shows as `net:[INODE]`, and what `ip netns
    /// identify`, `lsns` and `ss` call it.
    ///
    /// ```
    /// assert!(maxlisten::netns::Netns::current()?.inode() > 0);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn inode(&self) -> u64 {
        self.id.inode
    }

    /// The device of the namespace file system (`st_dev`); with [`inode`](Netns::inode), the
    /// namespace's identity.
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::current()?;
    /// let meta = std::fs::metadata("/proc/self/ns/net").unwrap();
    /// assert_eq!(ns.dev(), std::os::unix::fs::MetadataExt::dev(&meta));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn dev(&self) -> u64 {
        self.id.dev
    }

    /// The path it was opened by (for one found by [`Netns::all`], the first process or bind
    /// mount seen in it).
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::open("/proc/self/ns/net")?;
    /// assert_eq!(ns.path(), std::path::Path::new("/proc/self/ns/net"));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.id.path
    }

    /// Its `ip netns` names: the entries of `/run/netns` that are bind mounts of it, in
    /// alphabetical order; empty for a namespace that has none (a container's, usually).
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::current()?;
    /// for name in ns.names() {
    ///     assert!(std::path::Path::new("/run/netns").join(name).exists());
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether this is the calling thread's own network namespace.
    ///
    /// ```
    /// assert!(maxlisten::netns::Netns::current()?.is_current());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn is_current(&self) -> bool {
        raw::current_id().is_ok_and(|id| id == (self.id.dev, self.id.inode))
    }

    /// Runs `f` inside this namespace and returns what it returns.
    ///
    /// `f` runs on a thread made for it, which enters the namespace (`setns`) first and ends
    /// when `f` returns; sockets `f` makes belong to this namespace for their whole life, and
    /// `/proc/sys/net`, `/proc/thread-self/net` and a `sock_diag` dump opened by `f` show it.
    /// The caller's thread never changes namespace. When this is the caller's own namespace,
    /// `f` runs on the caller's thread and needs no privilege. A panic in `f` is resumed in the
    /// caller.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`], step `setns`, when the namespace cannot be entered: `EPERM`
    /// (`PermissionDenied`) without `CAP_SYS_ADMIN` over its user namespace (the message says
    /// so). `f` then has not run.
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::current()?;
    /// let limit = ns.run(maxlisten::system_limit)?;
    /// assert_eq!(limit, maxlisten::system_limit());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        if self.is_current() {
            return Ok(f());
        }
        raw::run_inside(self.id.fd.as_fd(), f).map_err(|source| Error::Namespace {
            netns: self.to_string(),
            step: "setns",
            source,
        })
    }

    /// Runs `f` inside each of `namespaces` and returns each result in order: the cheap way to
    /// visit many namespaces, as the survey does. The namespaces are shared out among a few
    /// threads made for them (one per CPU, at most 4), each of which enters its namespaces in
    /// turn with `setns` before calling `f` for each, and ends after its last. As with
    /// [`Netns::run`], the caller's thread never moves, and `f` needs no privilege for the
    /// caller's own namespace.
    ///
    /// # Errors
    ///
    /// Each namespace's own [`Error::Namespace`] (step `setns`) where it could not be entered;
    /// `f` is then not called for it. The outer error is the thread's spawn failing.
    ///
    /// ```
    /// use maxlisten::netns::Netns;
    /// let namespaces = [Netns::current()?, Netns::open("/proc/self/ns/net")?];
    /// let limits = Netns::run_each(&namespaces, |_| maxlisten::system_limit())?;
    /// assert_eq!(limits.len(), 2);
    /// assert!(limits.iter().all(|l| *l.as_ref().unwrap() == maxlisten::system_limit()));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn run_each<T: Send>(
        namespaces: &[Netns],
        f: impl Fn(&Netns) -> T + Sync,
    ) -> Result<Vec<Result<T, Error>>, Error> {
        // All in the caller's own namespace (no privilege needed): run here.
        if namespaces.iter().all(Netns::is_current) {
            return Ok(namespaces.iter().map(|ns| Ok(f(ns))).collect());
        }
        let fds: Vec<_> = namespaces.iter().map(|ns| ns.id.fd.as_fd()).collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let results =
            raw::run_inside_each(&fds, workers, |i| f(&namespaces[i])).map_err(|source| {
                Error::Namespace {
                    netns: "(all)".into(),
                    step: "spawn a thread to enter them",
                    source,
                }
            })?;
        Ok(results
            .into_iter()
            .zip(namespaces)
            .map(|(result, ns)| {
                result.map_err(|source| Error::Namespace {
                    netns: ns.to_string(),
                    step: "setns",
                    source,
                })
            })
            .collect())
    }

    /// Its `net.core.somaxconn`, read inside it; `None` if the sysctl cannot be read there.
    ///
    /// # Errors
    ///
    /// As [`Netns::run`].
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::current()?;
    /// assert_eq!(ns.limit()?, maxlisten::system_limit());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn limit(&self) -> Result<Option<u32>, Error> {
        self.run(sys::system_limit)
    }

    /// Its `TcpExt` `ListenOverflows` and `ListenDrops`, read inside it; `None` if its
    /// `netstat` has no such counters.
    ///
    /// # Errors
    ///
    /// As [`Netns::run`].
    ///
    /// ```
    /// let ns = maxlisten::netns::Netns::current()?;
    /// assert!(ns.listen_counters()?.is_some());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn listen_counters(&self) -> Result<Option<ListenCounters>, Error> {
        self.run(listen_counters_here)
    }

    /// Every network namespace in use on the host, each once, held open (so none can vanish
    /// while the list is used): the namespaces of every process and thread in `/proc`, and those
    /// kept by a bind mount under `/run/netns` (`ip netns`, CNI). Each carries its `ip netns`
    /// names. Processes, threads and names that go away meanwhile are skipped and counted in
    /// [`Namespaces::vanished`]; those that refuse are counted too.
    ///
    /// `/proc` is the one this process sees: a node agent needs the host's PID namespace
    /// (`hostPID`) to see every container's processes. Namespaces kept alive only by an open
    /// descriptor (no process in them, no bind mount) are not found.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`], kind `PermissionDenied`, when this process lacks `CAP_SYS_PTRACE`
    /// (to read every process's namespace) or `CAP_SYS_ADMIN` (to enter them): the message
    /// names the missing capability. A partial list is never returned as if it were all.
    /// `NotFound` when `/proc` cannot be listed. `EMFILE` (or `ENFILE`) when no descriptor is
    /// left to open the next one: every namespace found is held open, one descriptor each,
    /// so a host with more namespaces than the soft `RLIMIT_NOFILE` allows needs it raised.
    ///
    /// ```
    /// match maxlisten::netns::Netns::all() {
    ///     Ok(all) => {
    ///         for ns in &all.namespaces {
    ///             println!("{} {:?} somaxconn {:?}", ns.inode(), ns.names(), ns.limit()?);
    ///         }
    ///     }
    ///     Err(err) => {
    ///         // Not root: the message names the capability that is missing.
    ///         assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    ///         assert!(err.to_string().contains("CAP_SYS_"), "{err}");
    ///     }
    /// }
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn all() -> Result<Namespaces, Error> {
        check_capabilities()?;
        let mut found: HashMap<(u64, u64), Netns> = HashMap::new();
        let mut seen_inodes: HashSet<u64> = HashSet::new();
        let mut all = Namespaces::default();
        let pids = proc::pids().map_err(|source| Error::Namespace {
            netns: "(all)".into(),
            step: "list /proc",
            source,
        })?;
        for pid in pids {
            let tasks = match proc::tasks(pid) {
                Ok(tasks) => tasks,
                Err(e) if gone(&e) => {
                    all.vanished += 1;
                    continue;
                }
                Err(source) if out_of_descriptors(&source) => {
                    return Err(Error::Namespace {
                        netns: format!("(all: {} found so far)", found.len()),
                        step: "open",
                        source,
                    })
                }
                Err(_) => {
                    all.unreadable_processes += 1;
                    continue;
                }
            };
            let mut unreadable = false;
            for tid in tasks {
                let inode = match proc::task_netns_inode(pid, tid) {
                    Ok(inode) => inode,
                    Err(e) if gone(&e) => continue,
                    Err(_) => {
                        unreadable = true;
                        continue;
                    }
                };
                // nsfs is one file system: its inode alone tells namespaces apart, and the
                // identity is confirmed by (st_dev, st_ino) once opened.
                if !seen_inodes.insert(inode) {
                    continue;
                }
                let path = if tid == pid {
                    PathBuf::from(format!("/proc/{pid}/ns/net"))
                } else {
                    proc::task_netns_path(pid, tid)
                };
                match Netns::open_unnamed(&path, false) {
                    Ok(ns) => {
                        found.entry((ns.id.dev, ns.id.inode)).or_insert(ns);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        seen_inodes.remove(&inode);
                    }
                    // Not a refusal: the rest would go missing without a trace.
                    Err(e) if e.io_error().is_some_and(out_of_descriptors) => return Err(e),
                    Err(_) => {
                        seen_inodes.remove(&inode);
                        unreadable = true;
                    }
                }
            }
            all.unreadable_processes += usize::from(unreadable);
        }
        let names = run_dir_names();
        for (name, id) in &names {
            if found.contains_key(id) {
                continue;
            }
            match Netns::open_unnamed(&Path::new(RUN_DIR).join(name), true) {
                Ok(ns) => {
                    found.entry((ns.id.dev, ns.id.inode)).or_insert(ns);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => all.vanished += 1,
                // A stale file whose mount is gone is not a namespace: nothing to count.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
                Err(e) if e.io_error().is_some_and(out_of_descriptors) => return Err(e),
                Err(_) => all.unreadable_namespaces += 1,
            }
        }
        let mut namespaces: Vec<Netns> = found.into_values().collect();
        for ns in &mut namespaces {
            ns.names = names
                .iter()
                .filter(|(_, id)| *id == (ns.id.dev, ns.id.inode))
                .map(|(name, _)| name.clone())
                .collect();
        }
        namespaces.sort_by_key(|ns| (ns.id.inode, ns.id.dev));
        all.namespaces = namespaces;
        Ok(all)
    }
}

/// Whether an error says the process, thread or file went away.
fn gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH)
}

/// Whether opening failed for want of a descriptor (`EMFILE`: this process's `RLIMIT_NOFILE`;
/// `ENFILE`: the system's table), which says nothing about the namespace.
fn out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Fails, naming what is missing, unless this process may read and enter every namespace.
fn check_capabilities() -> Result<(), Error> {
    let caps = proc::own_capabilities().map_err(|source| Error::Namespace {
        netns: "(all)".into(),
        step: "read this process's capabilities (/proc/self/status)",
        source,
    })?;
    let has = |cap: u32| caps & (1 << cap) != 0;
    let step = match (has(CAP_SYS_PTRACE), has(CAP_SYS_ADMIN)) {
        (true, true) => return Ok(()),
        (false, false) => {
            "listing every namespace needs CAP_SYS_PTRACE (to read each process's \
             /proc/PID/ns/net) and CAP_SYS_ADMIN (to enter them); run as root"
        }
        (true, false) => "entering every namespace needs CAP_SYS_ADMIN; run as root",
        (false, true) => {
            "listing every namespace needs CAP_SYS_PTRACE (to read each process's \
             /proc/PID/ns/net); run as root"
        }
    };
    Err(Error::Namespace {
        netns: "(all)".into(),
        step,
        source: io::Error::new(
            io::ErrorKind::PermissionDenied,
            "this process's effective capabilities (CapEff) lack it",
        ),
    })
}

/// Every entry of `/run/netns` with the identity of what it shows (a bind-mounted namespace
/// file, or a plain file whose identity matches no namespace), sorted by name.
fn run_dir_names() -> Vec<(String, (u64, u64))> {
    let Ok(entries) = fs::read_dir(RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<(String, (u64, u64))> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let id = raw::id_of_path(&entry.path()).ok()?;
            Some((name, id))
        })
        .collect();
    names.sort();
    names
}

/// `ListenOverflows` and `ListenDrops` of the calling thread's namespace.
pub(crate) fn listen_counters_here() -> Option<ListenCounters> {
    let text = fs::read_to_string("/proc/thread-self/net/netstat").ok()?;
    Some(ListenCounters {
        listen_overflows: proc::tcp_ext(&text, "ListenOverflows")?,
        listen_drops: proc::tcp_ext(&text, "ListenDrops")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_counters_are_read() {
        let own = listen_counters_here().unwrap();
        assert!(own.listen_drops >= own.listen_overflows);
    }

    #[test]
    fn parse_tells_pid_path_and_name_apart() {
        let me = std::process::id();
        let by_pid = Netns::parse(&me.to_string()).unwrap();
        assert_eq!(by_pid.path(), Path::new(&format!("/proc/{me}/ns/net")));
        assert_eq!(by_pid, Netns::parse("/proc/self/ns/net").unwrap());
        let err = Netns::parse("surely-not-a-netns-name").unwrap_err();
        assert!(
            err.to_string()
                .contains("/run/netns/surely-not-a-netns-name"),
            "{err}"
        );
        let err = Netns::parse("99999999999999999999").unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert_eq!(
            Netns::named("..").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
