//! Run a program so that every `listen(2)` it and its descendants make gets the largest backlog
//! the socket's network namespace allows, from the first call (Linux 5.6+): what
//! `maxlisten exec -- CMD` does.
//!
//! # How
//!
//! Before `exec`, the child installs a seccomp filter that turns each `listen` system call into
//! a user notification (`seccomp_unotify(2)`) and hands the notification descriptor to the
//! supervisor (this process). Filters are inherited across `fork`, `clone` and `execve`, so
//! every thread and descendant is covered, dynamically linked or static, whatever its language.
//! For each `listen(fd, n)` the supervisor opens a pidfd for the calling thread (`PIDFD_THREAD`
//! on Linux 6.9+, else its thread group, found in `/proc/TID/status`), checks that the call
//! still waits (`SECCOMP_IOCTL_NOTIF_ID_VALID`, against a reused id), borrows the descriptor
//! (`pidfd_getfd(2)`), checks that the duplicate is the very socket the caller's descriptor
//! names (its inode, by `fstat`, against the thread's `/proc/TID/fd/N` link `socket:[INODE]`;
//! then the call is checked to still wait, so that TID was still the caller), calls
//! `listen(dup, max(n, request))` itself, closes the duplicate and answers with that call's
//! result. A descriptor that cannot be borrowed or is not that socket (a file, a bad number):
//! the kernel carries the call out as made, and answers it. Under a `/proc` of another PID
//! namespace (`unshare --pid` without `--mount-proc`), whose numbers name other processes, the
//! link cannot be checked: a pidfd of the calling thread itself is trusted (6.9+, or a thread
//! group's leader before), and before 6.9 another thread's call is carried out as made. So the
//! program sees the return value and errno it would have seen (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP` on a datagram socket, `EINVAL` on a connected
//! one), and its own `n` is never applied after the larger one. Nothing is ever lowered: `n` is
//! compared as the kernel compares it (unsigned, so `listen(fd, -1)` keeps meaning "the limit").
//! A TCP port or Unix path given to [`Command::except_port`] or [`Command::except_path`] keeps
//! the program's own `n`.
//!
//! The supervisor handles one call at a time and queues nothing; every call it makes for the
//! program returns at once, so a stuck or hostile program can neither grow it nor hang it (the
//! program's other calls never reach it). It is a child subreaper: a daemon that forks and whose
//! first process exits stays its descendant and stays covered, and it reaps every orphan. It
//! returns when the program has exited and no covered process is left (the notification
//! descriptor reports `POLLHUP`, or no child remains): a `listen` made after the supervisor has
//! gone would fail with `ENOSYS`.
//!
//! # What cannot be covered
//!
//! - `io_uring`'s `IORING_OP_LISTEN` (Linux 6.11+) does not pass through seccomp: such a
//!   listen gets the program's own backlog.
//! - 32-bit x86 programs that listen through `socketcall(2)` (as i386 glibc does) are covered:
//!   the supervisor reads the two arguments from the caller's memory (`process_vm_readv`).
//!   32-bit programs on other architectures' `socketcall` are not, nor are architectures this
//!   crate does not know (other than x86_64, x32, i386, aarch64, 32-bit Arm, riscv64, where
//!   [`check`] refuses).
//! - Without `CAP_SYS_ADMIN` the filter needs `no_new_privs`: setuid and setgid bits and file
//!   capabilities grant nothing to the whole tree (a `setcap cap_net_bind_service` server run
//!   by a normal user cannot bind port 80). As root the filter is installed without it.
//! - The supervisor's `listen` runs with its own credentials: audit records and LSM checks
//!   (SELinux, AppArmor `socket_listen`) see the supervisor, not the program.
//! - Borrowing a descriptor needs ptrace access to the caller: with Yama
//!   (`kernel.yama.ptrace_scope`) 1 a supervisor reaches its descendants; 2 needs
//!   `CAP_SYS_PTRACE`; 3 forbids it. A program that made itself non-dumpable
//!   (`PR_SET_DUMPABLE` 0) cannot be reached by a non-root supervisor either. Where the
//!   descriptor cannot be borrowed (or the caller is in a PID namespace the supervisor cannot
//!   see), the call is carried out as the program made it (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`):
//!   it works, with its own backlog.
//! - Before Linux 6.9 (no `PIDFD_THREAD`), a thread that is not its group's leader and has a
//!   descriptor table of its own (`unshare(CLONE_FILES)`, `clone` without `CLONE_FILES`) can
//!   only be looked up in its leader's table, where its descriptor number may name another
//!   socket. The check above (made on every kernel) finds that it is not the thread's, and the
//!   thread's call is carried out as made: it listens, with its own backlog. On 6.9+ the
//!   thread's own table is read and it is raised. (Which kernels are tested: the README.)
//! - The supervisor closes each borrowed duplicate at once. Should the program close the same
//!   descriptor from another thread meanwhile, and it is not a socket but a file whose last
//!   close flushes (NFS, FUSE), that close waits as long as the flush does.
//! - A chain of filters holds one notifying filter: inside a container whose runtime installs
//!   one (LXD, some seccomp agents) [`check`] fails with [`Error::Busy`].
//!
//! Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to the
//! supervisor are forwarded to the program (once it has exited, to each remaining child of the
//! supervisor). A signal the terminal sent (^C, ^\, a resize: `SI_KERNEL`) already reached the
//! program's process group and is not sent twice. [`Command::status`] blocks these signals and
//! SIGCHLD in the calling thread while it runs; in a program with other threads, block them in
//! those too, or they may take them first.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use socket2::SockRef;

use crate::sys::listen_arg;
use crate::sys::{pidfd, proc, seccomp, supervise};

/// The signals forwarded to the program.
const FORWARDED: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// How long the supervisor sleeps at most before it looks for exited children again, in case
/// another thread of the process took a SIGCHLD.
const REAP_INTERVAL_MS: libc::c_int = 250;

/// Why a program could not be run under the supervisor, or the supervisor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The program was not found (in `PATH`, or at the path given). The command exits 127.
    NotFound {
        /// The program as given.
        program: OsString,
    },
    /// The program exists but cannot be executed (no permission, a directory, a bad format).
    /// The command exits 126.
    NotExecutable {
        /// The program as given.
        program: OsString,
        /// The OS error (`EACCES`, `ENOEXEC`, ...).
        source: io::Error,
    },
    /// The kernel lacks what the supervisor needs.
    Unsupported {
        /// The missing feature and the Linux version that brought it.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A notifying seccomp filter is installed already (a container runtime's, or an outer
    /// `maxlisten exec`), and a chain holds only one (`EBUSY`).
    Busy,
    /// Installing the filter or borrowing a descriptor is not permitted here.
    PermissionDenied {
        /// What was refused.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A step of starting or supervising failed.
    Io {
        /// The step.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound { program } => {
                write!(
                    f,
                    "'{}': No such file or directory",
                    program.to_string_lossy()
                )
            }
            Error::NotExecutable { program, source } => {
                write!(f, "'{}': {}", program.to_string_lossy(), plain(source))
            }
            Error::Unsupported { what, source } => write!(
                f,
                "this kernel cannot supervise listen(): {what} is missing ({source})"
            ),
            Error::Busy => f.write_str(
                "a seccomp notifying filter is installed already (by the container runtime, or \
                 an outer maxlisten exec); only one is allowed (EBUSY)",
            ),
            Error::PermissionDenied { what, source } => {
                write!(f, "no permission to {what} ({source})")
            }
            Error::Io { step, source } => write!(f, "{step}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NotFound { .. } | Error::Busy => None,
            Error::NotExecutable { source, .. }
            | Error::Unsupported { source, .. }
            | Error::PermissionDenied { source, .. }
            | Error::Io { source, .. } => Some(source),
        }
    }
}

impl Error {
    /// The exit code the command uses for this error, as env(1) does: 127 not found, 126 not
    /// executable, 1 for the rest.
    ///
    /// ```
    /// let err = maxlisten::exec::Command::new("/nonexistent/program").status().unwrap_err();
    /// assert_eq!(err.exit_code(), 127);
    /// ```
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotFound { .. } => 127,
            Error::NotExecutable { .. } => 126,
            _ => 1,
        }
    }

    /// The [`io::ErrorKind`] of the OS error underneath (`NotFound` for [`Error::NotFound`],
    /// `ResourceBusy` for [`Error::Busy`]).
    ///
    /// ```
    /// let err = maxlisten::exec::Command::new("/nonexistent/program").status().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::Busy => io::ErrorKind::ResourceBusy,
            Error::NotExecutable { source, .. }
            | Error::Unsupported { source, .. }
            | Error::PermissionDenied { source, .. }
            | Error::Io { source, .. } => source.kind(),
        }
    }
}

/// The OS's words for an error, without Rust's " (os error N)", as env(1) prints them.
fn plain(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn io_error(step: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { step, source }
}

/// Whether this kernel and this environment allow supervising `listen`, without running
/// anything: the architecture is known, a filter with user notification can be installed (on a
/// thread made for the test, which then exits), and `pidfd_getfd` exists.
/// [`Command::status`] checks the same before it starts the program.
///
/// # Errors
///
/// - [`Error::Unsupported`]: an unknown architecture, seccomp without user notification
///   (Linux before 5.0), or no `pidfd_getfd` (before 5.6).
/// - [`Error::Busy`]: a notifying filter is installed already.
/// - [`Error::PermissionDenied`]: the filter or the pidfd calls are refused.
///
/// ```
/// match maxlisten::exec::check() {
///     Ok(()) => println!("maxlisten exec works here"),
///     Err(err) => println!("maxlisten exec cannot work here: {err}"),
/// }
/// ```
pub fn check() -> Result<(), Error> {
    let filter = filter()?;
    check_with(&filter)
}

fn filter() -> Result<seccomp::Filter, Error> {
    seccomp::listen_filter().ok_or_else(|| Error::Unsupported {
        what: "a seccomp filter for this architecture",
        source: io::Error::from(io::ErrorKind::Unsupported),
    })
}

fn check_with(filter: &seccomp::Filter) -> Result<(), Error> {
    seccomp::probe(filter).map_err(filter_error)?;
    let pidfd = pidfd::open(std::process::id()).map_err(|source| match source.raw_os_error() {
        Some(libc::ENOSYS) => Error::Unsupported {
            what: "pidfd_open (Linux 5.3)",
            source,
        },
        _ => Error::Io {
            step: "pidfd_open",
            source,
        },
    })?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    match pidfd::getfd(&pidfd, fd) {
        Ok(_dup) => Ok(()),
        Err(source) => Err(match source.raw_os_error() {
            Some(libc::ENOSYS) => Error::Unsupported {
                what: "pidfd_getfd (Linux 5.6)",
                source,
            },
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
                what: "borrow descriptors with pidfd_getfd",
                source,
            },
            _ => Error::Io {
                step: "pidfd_getfd",
                source,
            },
        }),
    }
}

fn filter_error(source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::EBUSY) => Error::Busy,
        Some(libc::EINVAL) => Error::Unsupported {
            what: "seccomp user notification (Linux 5.0)",
            source,
        },
        Some(libc::ENOSYS) => Error::Unsupported {
            what: "seccomp (CONFIG_SECCOMP_FILTER)",
            source,
        },
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
            what: "install a seccomp filter",
            source,
        },
        _ => Error::Io {
            step: "install the seccomp filter",
            source,
        },
    }
}

/// A program to run with every `listen` raised; see the [module docs](self).
///
/// ```
/// # if maxlisten::exec::check().is_err() { return Ok(()); }
/// let status = maxlisten::exec::Command::new("python3")
///     .args(["-c", "import socket; s = socket.socket(); s.listen(5)"])
///     .status()?;
/// assert!(status.success());
/// # Ok::<(), maxlisten::exec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    backlog: u32,
    except_ports: Vec<u16>,
    except_paths: Vec<PathBuf>,
}

impl Command {
    /// A command that runs `program`, looked up in `PATH` when it has no `/`, as `execvp` does.
    ///
    /// ```
    /// let command = maxlisten::exec::Command::new("true");
    /// # let _ = command;
    /// ```
    pub fn new<S: AsRef<OsStr>>(program: S) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            backlog: crate::DEFAULT_BACKLOG,
            except_ports: Vec::new(),
            except_paths: Vec::new(),
        }
    }

    /// Adds one argument.
    ///
    /// ```
    /// let mut command = maxlisten::exec::Command::new("echo");
    /// command.arg("hello");
    /// ```
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    ///
    /// ```
    /// let mut command = maxlisten::exec::Command::new("echo");
    /// command.args(["hello", "world"]);
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The backlog each `listen` asks for at least, instead of [`DEFAULT_BACKLOG`]
    /// (`i32::MAX`, which the kernel lowers to the socket's namespace's limit). A program that
    /// asks for more keeps its own value; the kernel still caps both at the limit.
    ///
    /// [`DEFAULT_BACKLOG`]: crate::DEFAULT_BACKLOG
    ///
    /// ```
    /// let mut command = maxlisten::exec::Command::new("python3");
    /// command.backlog(8192);
    /// ```
    pub fn backlog(&mut self, backlog: u32) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// Leaves the backlog of TCP listeners on `port` (IPv4 or IPv6) as the program asks.
    ///
    /// ```
    /// let mut command = maxlisten::exec::Command::new("python3");
    /// command.except_port(9090);
    /// ```
    pub fn except_port(&mut self, port: u16) -> &mut Self {
        self.except_ports.push(port);
        self
    }

    /// Leaves the backlog of the Unix listener bound at `path` as the program asks. A relative
    /// path is taken from this process's working directory; a relative path the program binds
    /// is taken from its own at `listen` (`/proc/TID/cwd`). Where that cannot be read, or the
    /// `/proc` seen is another PID namespace's, every Unix listener bound to a relative path is
    /// left as the program asks, since it cannot be told from an excepted one.
    ///
    /// ```
    /// let mut command = maxlisten::exec::Command::new("python3");
    /// command.except_path("/run/app/admin.sock");
    /// ```
    pub fn except_path<P: AsRef<Path>>(&mut self, path: P) -> &mut Self {
        self.except_paths.push(path.as_ref().to_owned());
        self
    }

    /// Runs the program under the supervisor, and returns its exit status once it and every
    /// covered descendant have exited. The program inherits this process's environment,
    /// working directory, descriptors (none of the supervisor's: they are all close-on-exec),
    /// process group, terminal and signal mask.
    ///
    /// While it runs, this process is a child subreaper and reaps *every* child that exits,
    /// including children it started before: call it from a process whose main job it is (as
    /// the `maxlisten exec` command does).
    ///
    /// # Errors
    ///
    /// - [`Error::NotFound`] or [`Error::NotExecutable`]: the program cannot be executed
    ///   (checked before anything starts where possible).
    /// - The errors of [`check`]: nothing has been started.
    /// - [`Error::Io`] naming the step, if starting the program or supervising it fails.
    ///
    /// ```
    /// # if maxlisten::exec::check().is_err() { return Ok(()); }
    /// let status = maxlisten::exec::Command::new("sh").args(["-c", "exit 3"]).status()?;
    /// assert_eq!(status.code(), Some(3));
    /// # Ok::<(), maxlisten::exec::Error>(())
    /// ```
    pub fn status(&self) -> Result<ExitStatus, Error> {
        let path = resolve(&self.program)?;
        let filter = filter()?;
        check_with(&filter)?;
        let config = Config {
            request: listen_arg(self.backlog),
            ports: self.except_ports.clone(),
            paths: self.except_paths.iter().map(|p| absolute(p)).collect(),
        };

        let was_subreaper = supervise::is_child_subreaper();
        supervise::set_child_subreaper(true).map_err(io_error("PR_SET_CHILD_SUBREAPER"))?;
        let mut signals = FORWARDED.to_vec();
        signals.push(libc::SIGCHLD);
        let blocked = supervise::block(&signals).map_err(io_error("block signals"))?;
        let result = self.supervise(&path, filter, blocked, &config);
        // Signals that came in at the end go to no one; then the old mask is back.
        if let Ok(fd) = blocked.signalfd() {
            while let Ok(Some(_)) = supervise::read_signal(&fd) {}
        }
        let _ = blocked.unblock();
        if !was_subreaper {
            let _ = supervise::set_child_subreaper(false);
        }
        result
    }

    fn supervise(
        &self,
        path: &Path,
        filter: seccomp::Filter,
        blocked: supervise::Blocked,
        config: &Config,
    ) -> Result<ExitStatus, Error> {
        let signalfd = blocked.signalfd().map_err(io_error("signalfd"))?;
        let (ours, theirs) = UnixStream::pair().map_err(io_error("socketpair"))?;
        let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);

        let mut command = std::process::Command::new(path);
        command.arg0(&self.program).args(&self.args);
        seccomp::install_on_exec(&mut command, filter, blocked, theirs_fd);
        let spawned = command.spawn();
        drop(command);
        drop(theirs);
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => return Err(self.spawn_error(source, &ours)),
        };
        let main = child.id();
        let notify = match seccomp::recv_fd(&ours) {
            Ok(Some(notify)) => notify,
            failed => {
                // Not expected: the child sends it before exec. Without a supervisor its
                // listen() calls would fail (ENOSYS), so it does not go on.
                let _ = supervise::kill(main, libc::SIGKILL);
                let _ = child.wait();
                return Err(Error::Io {
                    step: "receive the notification descriptor",
                    source: failed
                        .err()
                        .unwrap_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof)),
                });
            }
        };
        drop(ours);
        Ok(supervise_loop(main, notify, &signalfd, config))
    }

    fn spawn_error(&self, source: io::Error, ours: &UnixStream) -> Error {
        // The child has exited and its end is closed: this read does not wait. It finds the
        // byte 0 if installing the filter failed, 1 (with the descriptor) if the exec did.
        let mut byte = [1u8; 1];
        let filter_failed = matches!(io::Read::read(&mut &*ours, &mut byte), Ok(1)) && byte[0] == 0;
        if filter_failed {
            return filter_error(source);
        }
        match source.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                program: self.program.clone(),
            },
            Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY | libc::ENOTDIR) => {
                Error::NotExecutable {
                    program: self.program.clone(),
                    source,
                }
            }
            _ => Error::Io {
                step: "start the program",
                source,
            },
        }
    }
}

/// What the supervisor needs to decide each call.
struct Config {
    /// The `listen` argument asked for at least.
    request: libc::c_int,
    ports: Vec<u16>,
    paths: Vec<PathBuf>,
}

/// `path` made absolute against this process's working directory.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

/// The file `execvp` would run for `program`: the program itself if it has a `/`, else the
/// first executable match in `PATH` (with `execvp`'s default when `PATH` is unset).
fn resolve(program: &OsStr) -> Result<PathBuf, Error> {
    let search = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
    resolve_in(program, &search)
}

/// [`resolve`] with `search` as `PATH`.
fn resolve_in(program: &OsStr, search: &OsStr) -> Result<PathBuf, Error> {
    let not_found = || Error::NotFound {
        program: program.to_owned(),
    };
    let not_executable = |source| Error::NotExecutable {
        program: program.to_owned(),
        source,
    };
    if program.is_empty() {
        return Err(not_found());
    }
    let check = |path: &Path| -> Result<(), io::Error> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        supervise::executable(path)
    };
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return match check(&path) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(not_found()),
            Err(e) => Err(not_executable(e)),
        };
    }
    let mut denied = None;
    for dir in std::env::split_paths(search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                denied.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    match denied {
        Some(e) => Err(not_executable(e)),
        None => Err(not_found()),
    }
}

/// The wait loop: answers notifications, forwards signals, reaps children, and returns the
/// main child's status once it has exited and no covered process is left.
fn supervise_loop(main: u32, notify: OwnedFd, signalfd: &OwnedFd, config: &Config) -> ExitStatus {
    let mut notify = Some(notify);
    let mut main_status: Option<libc::c_int> = None;
    let mut children_left = true;
    loop {
        if let Some(status) = main_status {
            if notify.is_none() || !children_left {
                return ExitStatus::from_raw(status);
            }
        }
        let ready = supervise::poll(
            [notify.as_ref().map(|n| n.as_fd()), Some(signalfd.as_fd())],
            REAP_INTERVAL_MS,
        )
        .unwrap_or_else(|_| {
            // Not expected with live descriptors (ENOMEM): do not spin.
            std::thread::sleep(std::time::Duration::from_millis(10));
            Default::default()
        });
        if let Some(fd) = &notify {
            if ready[0].readable {
                handle_one(fd, config);
            } else if ready[0].hangup {
                // No task uses the filter any more.
                notify = None;
            }
        }
        if ready[1].readable {
            while let Ok(Some(signal)) = supervise::read_signal(signalfd) {
                if signal.number != libc::SIGCHLD && !signal.from_kernel {
                    forward(signal.number, main_status.is_none().then_some(main));
                }
            }
        }
        // Every wake-up reaps: a SIGCHLD may have gone to another thread of this process.
        loop {
            match supervise::reap_one() {
                Ok(supervise::Reaped::Child { pid, status }) => {
                    if pid == main {
                        main_status = Some(status);
                    }
                }
                Ok(supervise::Reaped::NoChildren) => {
                    children_left = false;
                    break;
                }
                Ok(supervise::Reaped::None) | Err(_) => break,
            }
        }
    }
}

/// Forwards `signal` to the main child while it lives, else to each remaining child (its
/// orphans, reparented here). Children not yet reaped cannot have had their ids reused.
fn forward(signal: libc::c_int, main: Option<u32>) {
    match main {
        Some(pid) => {
            let _ = supervise::kill(pid, signal);
        }
        None => {
            for pid in proc::own_children() {
                let _ = supervise::kill(pid, signal);
            }
        }
    }
}

/// Receives one notification and answers it.
fn handle_one(notify: &OwnedFd, config: &Config) {
    let notification = match seccomp::recv(notify) {
        Ok(n) => n,
        // ENOENT: the caller was killed since poll; EINTR: a signal. Nothing to answer.
        Err(_) => return,
    };
    if let Some(answer) = decide(notify, &notification, config) {
        // ENOENT: the caller is gone; nothing waits for the answer.
        let _ = seccomp::answer(notify, notification.id, answer);
    }
}

/// The answer to one `listen(fd, n)`; `None` when the call no longer waits.
fn decide(notify: &OwnedFd, n: &seccomp::Notification, config: &Config) -> Option<seccomp::Answer> {
    use seccomp::Answer;
    let (pidfd, own_table) = match caller_pidfd(n.tid) {
        Some(found) => found,
        // Gone, or not visible from here: carry the call out as made, if it still waits.
        None => return seccomp::id_valid(notify, n.id).then_some(Answer::Continue),
    };
    // i386's socketcall: the arguments are in the caller's memory.
    let (fd, backlog) = match n.socketcall_args {
        None => (n.fd, n.backlog),
        Some(addr) => match seccomp::read_socketcall_args(n.tid, addr) {
            Ok(args) => args,
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                return seccomp::id_valid(notify, n.id).then_some(Answer::Errno(libc::EFAULT))
            }
            Err(_) => return seccomp::id_valid(notify, n.id).then_some(Answer::Continue),
        },
    };
    // The id read above still names the caller: it has not exited and been reused.
    if !seccomp::id_valid(notify, n.id) {
        return None;
    }
    let dup = match pidfd::getfd(&pidfd, fd) {
        // As a file, to read its inode (fstat).
        Ok(dup) => std::fs::File::from(dup),
        // No such descriptor in the table looked in (or a negative number): the kernel carries
        // the call out, and says EBADF itself if the caller's own table has none either (before
        // 6.9 the table looked in may be its leader's, not its own).
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Some(Answer::Continue),
        // Gone since: nothing waits for the answer.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return None,
        // Not allowed to borrow it (Yama, a non-dumpable process): as made.
        Err(_) => return Some(Answer::Continue),
    };
    // Only the very socket the caller's descriptor names is listened on; anything else (another
    // socket found through the leader's table before 6.9, a file, a link that cannot be read):
    // the call as made. Then the thread id the link was read by is checked to still be the
    // caller's. A `/proc` of another PID namespace cannot say: then only a pidfd of the thread
    // itself (6.9+) is known to read the caller's own table.
    let own = if proc_is_ours() {
        names_this_socket(n.tid, fd, &dup)
    } else {
        own_table
    };
    if !seccomp::id_valid(notify, n.id) {
        return None;
    }
    if !own {
        return Some(Answer::Continue);
    }
    let socket = SockRef::from(&dup);
    let arg = if excepted(&socket, n.tid, config) {
        backlog
    } else {
        larger(backlog, config.request)
    };
    let answer = match socket.listen(arg) {
        Ok(()) => Answer::Value(0),
        Err(e) => Answer::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
    };
    drop(dup);
    Some(answer)
}

/// A pidfd for the calling thread's descriptor table, and whether that is surely the thread's
/// own: a pidfd of the thread itself (`true`: `PIDFD_THREAD`, Linux 6.9+, or before that a
/// thread-group leader), else of its thread group, found in `/proc/TID/status` (`false`: a
/// thread may have a table of its own, not its leader's).
fn caller_pidfd(tid: u32) -> Option<(OwnedFd, bool)> {
    if tid == 0 {
        return None;
    }
    match pidfd::open_thread(tid) {
        Ok(pidfd) => Some((pidfd, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Before 6.9: a thread-group leader opens as itself, and its table is its own.
            if let Ok(pidfd) = pidfd::open(tid) {
                return Some((pidfd, true));
            }
            // A `/proc` of another PID namespace would give the Tgid of another process.
            if !proc_is_ours() {
                return None;
            }
            let tgid = proc::status_field(tid, "Tgid").ok()??.parse().ok()?;
            Some((pidfd::open(tgid).ok()?, false))
        }
        Err(_) => None,
    }
}

/// Whether the `/proc` this process sees numbers processes as its PID namespace does (it names
/// this process by its own id), so that `/proc/TID` is the caller's.
fn proc_is_ours() -> bool {
    proc::self_pid() == Some(std::process::id())
}

/// Whether `borrowed` (a duplicate taken through a pidfd) is the socket that descriptor `fd` of
/// thread `tid` names in the thread's own descriptor table: its inode (`fstat`) is the one of
/// the `socket:[INODE]` link `/proc/TID/fd/FD`. Before Linux 6.9 a pidfd names a thread group,
/// whose leader's table a thread with a table of its own (`unshare(CLONE_FILES)`, `clone`
/// without `CLONE_FILES`) does not share; the same number may name another socket there. False
/// when the link cannot be read, or either is not a socket.
fn names_this_socket(tid: u32, fd: libc::c_int, borrowed: &std::fs::File) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(meta) = borrowed.metadata() else {
        return false;
    };
    meta.file_type().is_socket()
        && matches!(proc::fd_socket_inode(tid, fd), Ok(Some(inode)) if inode == meta.ino())
}

/// The larger of the program's `n` and the request, compared as the kernel compares a backlog
/// with its limit (unsigned: a negative `n` means "the limit" and is kept).
fn larger(program: libc::c_int, request: libc::c_int) -> libc::c_int {
    if program as u32 >= request as u32 {
        program
    } else {
        request
    }
}

/// Whether the socket is bound to an excepted TCP port or Unix path.
fn excepted(socket: &SockRef<'_>, tid: u32, config: &Config) -> bool {
    if config.ports.is_empty() && config.paths.is_empty() {
        return false;
    }
    let Ok(addr) = socket.local_addr() else {
        return false;
    };
    if let Some(inet) = addr.as_socket() {
        return config.ports.contains(&inet.port());
    }
    if let Some(path) = addr.as_pathname() {
        if config.paths.is_empty() {
            return false;
        }
        if path.is_absolute() {
            return config.paths.iter().any(|p| p == path);
        }
        // A relative path is the program's, from its working directory; where that cannot be
        // read, or `/proc` is another PID namespace's (its TID names another process), the
        // path cannot be placed: it is taken as excepted, the call as made, rather than
        // raising a listener that may have been excepted.
        if !proc_is_ours() {
            return true;
        }
        return match proc::cwd(tid) {
            Ok(cwd) => config.paths.contains(&cwd.join(path)),
            Err(_) => true,
        };
    }
    false
}

/// The exit code a wrapper reports for the program's status: its code, or 128 + N when signal
/// N killed it (as a shell reports it).
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::ExitStatus;
///
/// assert_eq!(maxlisten::exec::exit_code(ExitStatus::from_raw(3 << 8)), 3);
/// assert_eq!(maxlisten::exec::exit_code(ExitStatus::from_raw(libc::SIGTERM)), 128 + 15);
/// ```
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_lowers_what_the_program_asks() {
        assert_eq!(larger(128, 4096), 4096);
        assert_eq!(larger(5000, 4096), 5000);
        assert_eq!(larger(0, 4096), 4096);
        // -1 means the limit to the kernel: kept, not replaced by a smaller --backlog.
        assert_eq!(larger(-1, 1000), -1);
        assert_eq!(larger(i32::MIN, i32::MAX), i32::MIN);
        assert_eq!(larger(1, i32::MAX), i32::MAX);
    }

    /// The calling thread's id, from `/proc/thread-self` (a link to `PID/task/TID`).
    fn own_tid() -> u32 {
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        link.file_name().unwrap().to_str().unwrap().parse().unwrap()
    }

    /// Two descriptor tables holding different sockets at the same number: the process's (its
    /// leader's, which a pidfd of the process reads, as before Linux 6.9) and a thread's own
    /// after `unshare(CLONE_FILES)`. The socket borrowed through the leader is not the one the
    /// thread's descriptor names, so the supervisor lets the thread's own call run; the socket
    /// borrowed through the thread's own pidfd (6.9+) is.
    #[test]
    fn a_borrowed_socket_is_checked_against_the_callers_own_table() {
        use std::os::fd::{AsFd, AsRawFd};
        use std::sync::mpsc;
        let leaders = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let number = leaders.as_raw_fd();
        let pid = std::process::id();
        let through_leader = std::fs::File::from(
            pidfd::getfd(&pidfd::open(pid).unwrap(), number).expect("pidfd_getfd (Linux 5.6+)"),
        );
        assert!(names_this_socket(pid, number, &through_leader));
        // A file is never taken for a socket.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!names_this_socket(pid, number, &file));

        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                supervise::unshare_files(number).unwrap();
                // Another socket at the same number, in this thread's table only.
                let own = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                supervise::dup_onto(own.as_fd(), number).unwrap();
                drop(own);
                ready_tx.send(own_tid()).unwrap();
                let _ = done_rx.recv();
            });
            // Dropped if an assertion below fails, so that the thread ends and the test fails
            // rather than waits.
            let done = done_tx;
            let tid = ready_rx.recv().unwrap();
            assert_ne!(tid, pid);
            // The leader's socket is not the thread's: its listen would be carried out as made.
            assert!(!names_this_socket(tid, number, &through_leader));
            // The thread's own, borrowed through a pidfd of the thread (Linux 6.9+).
            match pidfd::open_thread(tid) {
                Ok(thread_pidfd) => {
                    let through_thread =
                        std::fs::File::from(pidfd::getfd(&thread_pidfd, number).unwrap());
                    assert!(names_this_socket(tid, number, &through_thread));
                    assert!(!names_this_socket(pid, number, &through_thread));
                }
                // Before Linux 6.9 there is no PIDFD_THREAD.
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}"),
            }
            // The leader's table is as it was.
            assert!(names_this_socket(pid, number, &through_leader));
            // A number the thread does not have: the link cannot be read.
            assert!(!names_this_socket(tid, 1 << 20, &through_leader));
            done.send(()).unwrap();
        });
        drop(leaders);
    }

    #[test]
    fn programs_resolve_as_execvp_finds_them() {
        // A PATH every user may search (the test's own may hold a directory only its owner
        // can enter, which execvp, and so `resolve`, reports as EACCES).
        let public = OsStr::new("/usr/local/bin:/usr/bin:/bin");
        assert!(resolve_in(OsStr::new("sh"), public).unwrap().is_absolute());
        assert!(matches!(
            resolve_in(OsStr::new("maxlisten-no-such-program"), public),
            Err(Error::NotFound { .. })
        ));
        // An entry of PATH that is not a directory is passed over, as execvp passes it.
        assert!(matches!(
            resolve_in(
                OsStr::new("maxlisten-no-such-program"),
                OsStr::new("/etc/passwd:/bin")
            ),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            resolve(OsStr::new("/nonexistent/x")),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            resolve(OsStr::new("/")),
            Err(Error::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve(OsStr::new("")),
            Err(Error::NotFound { .. })
        ));
    }
}
