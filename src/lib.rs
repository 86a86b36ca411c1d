//! A drop-in for [`TcpListener::bind`] that asks for the largest accept backlog the kernel
//! allows, and tells you what the kernel applied.
//!
//! # The problem
//!
//! `listen(fd, backlog)` bounds how many finished handshakes may wait for `accept()`. Kernels
//! silently *lower* a backlog above their limit (Linux: `net.core.somaxconn`, per network
//! namespace, 4096 by default since 5.4) but never raise a small one. `std`'s
//! [`TcpListener::bind`] passes 128, and so does tokio's `TcpListener::bind` since mio 1.2: an
//! administrator who raised the limit is ignored. Under a burst, Linux then drops SYNs past
//! backlog + 1 without a word, and those clients wait a second or more to retransmit. The
//! `SOMAXCONN` constant does not help: it is a compile-time number, not the system's limit.
//!
//! # What this crate does
//!
//! - [`bind`] has exactly the signature of [`TcpListener::bind`] and makes the same system
//!   calls, but passes [`DEFAULT_BACKLOG`] (`i32::MAX`), which every kernel lowers to its limit.
//!   With the `tokio` feature, [`tokio::bind`] does the same for `tokio::net::TcpListener::bind`. Where a kernel
//!   stores fewer bits the request is capped first (65535 on Linux older than 4.1, 32767 on
//!   Apple systems), and a negative value is never passed.
//! - [`ListenerBuilder`] adds socket options and an explicit backlog; its [`Listener`] reports
//!   the [`Backlog`] the kernel applied, how that is known ([`BacklogSource`]) and whether it
//!   was clamped.
//! - [`set_backlog`], [`queue_stats`] and [`system_limit`] operate any listener at runtime
//!   (std's, tokio's, one inherited from systemd): re-apply or change its backlog, and watch its
//!   accept queue.
//! - [`unix`] does the same for Unix domain sockets (`unix::bind` has the signature of
//!   `UnixListener::bind`), and [`inherited`] adopts the sockets systemd's socket activation
//!   hands over, checks them and re-listens them at the maximum.
//! - On Linux (and Android), `survey` lists every listener of the network namespace with its
//!   owners, `select` chooses among them, and
//!   `survey::relisten` raises another process's listener in place (`pidfd_getfd`); the
//!   `maxlisten` command (feature `cli`) is built on them.
//! - On Linux, `exec` runs a program so that every `listen` it and its descendants make gets
//!   the maximum from the first call (seccomp user notification); `maxlisten exec` is built on it.
//! - [`QueueStats::drops`] counts every SYN the kernel dropped on a listener, for any reason (its
//!   own `ListenDrops`, Linux).
//! - Every failure is an [`Error`] that names the step (resolve, socket, option, bind, listen)
//!   and the address, ends with the OS error and keeps its [`io::ErrorKind`].
//!
//! ```
//! use std::io;
//!
//! fn main() -> io::Result<()> {
//!     // Instead of std::net::TcpListener::bind: the same signature.
//!     let listener: std::net::TcpListener = maxlisten::bind("127.0.0.1:0")?;
//!
//!     // Or with options, and a report of the backlog:
//!     let listener = maxlisten::ListenerBuilder::new()
//!         .tcp_nodelay(true)
//!         .bind("127.0.0.1:0")?;
//!     println!("listening on {}, backlog {}", listener.local_addr()?, listener.backlog());
//!     Ok(())
//! }
//! ```
//!
//! # Platforms
//!
//! | OS | applied backlog | accept queue | system limit |
//! |---|---|---|---|
//! | Linux, Android | `TCP_INFO` (kernel) | `TCP_INFO` | `net.core.somaxconn` of the thread's network namespace |
//! | FreeBSD | `SO_LISTENQLIMIT` (kernel) | `SO_LISTENQLEN` | `kern.ipc.soacceptqueue` |
//! | macOS, iOS | `proc_pidfdinfo` (kernel), else derived | `proc_pidfdinfo` | `kern.ipc.somaxconn` |
//! | OpenBSD, NetBSD | derived from the sysctls | unsupported | `kern.somaxconn` |
//! | Windows | unknown (asked with `SOMAXCONN_HINT`, see below) | unsupported | none |
//! | others | unknown | unsupported | none |
//!
//! On Windows, `SOMAXCONN` is `i32::MAX`, and `listen(s, SOMAXCONN)` gets the provider's
//! "reasonable maximum", about 200, not the largest backlog. Requests above 200 are therefore
//! passed as `SOMAXCONN_HINT(min(request, 65535))`, which Windows adjusts into 200..=65535 (the
//! fix OpenJDK made for bug 8330940). Windows cannot report the result, so the [`Backlog`] says
//! `Unknown` and its `Display` line says what was passed. These figures are Microsoft's
//! documentation, not measured: under Wine the code runs, but Wine follows Linux here.
//!
//! "Derived" values are computed from the limit as it is when asked and the kernel's clamping
//! rule, and are labelled [`BacklogSource::SystemLimit`]; nothing is ever guessed. This crate's
//! CI runs its tests against the real Linux kernel (x86_64 and i686 with glibc, x86_64 with
//! musl) and under Wine for Windows; macOS, FreeBSD, NetBSD and aarch64 are type-checked only.
//!
//! # Running servers
//!
//! The kernel reads the system limit only when `listen` is called. A server that should follow
//! a limit raised while it runs calls [`Listener::refresh_backlog`] (or [`set_backlog`] on a
//! listener it did not make), for example on `SIGHUP`. For metrics, sample
//! [`queue_stats`] (one `getsockopt` on Linux) and export `queued` and `backlog`: a queue that
//! reaches the backlog means SYNs are being dropped.
//!
//! ```
//! let mut listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
//! // ... on reload:
//! let backlog = listener.refresh_backlog()?;
//! println!("backlog now {backlog}");
//! // ... every few seconds, on platforms that can read it:
//! if let Ok(stats) = listener.queue_stats() {
//!     println!("accept queue {} of {}", stats.queued, stats.backlog);
//! }
//! # Ok::<(), maxlisten::Error>(())
//! ```
//!
//! # Bad input and failures
//!
//! Every failure is an [`Error`] naming the step and the address; a failed bind closes its
//! socket. The drop-ins return it inside an [`io::Error`] with the same kind as
//! std's or tokio's for the same input (see [`Error`]). What each bad input gets (tested on
//! Linux):
//!
//! | input | outcome | [`Error::kind`] |
//! |---|---|---|
//! | port already in use (with or without `reuse_port`) | [`Error::Bind`] | `AddrInUse` |
//! | address not on this host (`192.0.2.1`) | [`Error::Bind`] (unless [`freebind`](ListenerBuilder::freebind)) | `AddrNotAvailable` |
//! | privileged port without permission | [`Error::Bind`] | `PermissionDenied` |
//! | name that does not resolve | [`Error::Resolve`], with the resolver's message | as the resolver says (no specific kind) |
//! | text that is not an address, a bad port | [`Error::Resolve`] | `InvalidInput` |
//! | empty address list | [`Error::NoAddresses`] | `InvalidInput` |
//! | several addresses, all failing | [`Error::AllAddressesFailed`], each error kept | the last one's |
//! | descriptor limit reached | [`Error::Socket`], [`Error::raw_os_error`] `EMFILE` | no specific kind |
//! | `only_v6` with an IPv4 address | [`Error::SetOption`] `IPV6_V6ONLY`, before any socket | `InvalidInput` |
//! | `ttl` 0 or above 255 | [`Error::SetOption`] `IP_TTL`, before any socket | `InvalidInput` |
//! | `keepalive` of zero | [`Error::SetOption`] `SO_KEEPALIVE` (the kernel refuses) | `InvalidInput` |
//! | unknown or too long device name | [`Error::BindDevice`], naming the device | no specific kind / `InvalidInput` |
//! | an option this platform lacks | [`Error::SetOption`] or [`Error::BindDevice`] | `Unsupported` |
//! | backlog 0 | bound; Linux holds 1 connection | - |
//! | backlog above `i32::MAX`, `u32::MAX` | bound; `i32::MAX` is passed, the kernel clamps | - |
//! | buffer size 0 / `usize::MAX` | bound; the kernel's minimum / `i32::MAX` capped by the kernel | - |
//! | `set_backlog` or `queue_stats` on a socket that does not listen | [`Error::NotListening`]; `listen` not called | `InvalidInput` |
//! | `queue_stats` where the platform cannot read the queue | [`Error::Query`] | `Unsupported` |
//! | [`tokio::bind`], `bind_tokio`, `into_tokio` outside a tokio runtime | [`Error::Register`] (tokio would panic) | `Other` |
//! | the same in a tokio runtime without the IO driver | a panic, as tokio's own `bind` | - |
//! | Unix socket path that exists | [`Error::Bind`] naming the path | `AddrInUse` |
//! | `remove_stale` on a live listener, a regular file, a directory, a link | [`Error::Bind`], saying why it was kept; nothing removed | `AddrInUse` |
//! | Unix `mode` with bits beyond `0o777` | [`Error::SetOption`] `mode`, before any file | `InvalidInput` |
//! | `LISTEN_FDS`/`LISTEN_PID` that is not a number, names that do not match the count | [`Error::Environment`] naming the variable; nothing adopted | `InvalidInput` |
//! | an inherited descriptor that is closed, not a socket, or does not listen | [`Error::Inherited`] naming the fd; nothing adopted | `EBADF` / `ENOTSOCK` / `InvalidInput` |
//! | `survey::relisten` without ptrace permission, on a gone process, a missing fd | [`Error::Foreign`] naming pid, fd and what is missing | `PermissionDenied` / `ESRCH` / `EBADF` |
//! | `survey::relisten` on a descriptor reused by another socket since the survey | [`Error::Foreign`], step `check that it is the socket surveyed`; nothing changed | `NotFound` |
//! | `survey::relisten` on a listener no readable process holds | [`Error::Query`] saying why (hidepid, not root, another PID namespace) | `NotFound` |
//! | `netns::Netns` by a pid, path or name that does not exist; a file that is not a network namespace | [`Error::Namespace`] naming it | `NotFound` / `InvalidInput` |
//! | entering another network namespace, or `Netns::all`, without `CAP_SYS_ADMIN` (and `CAP_SYS_PTRACE`) | [`Error::Namespace`] naming the missing capability | `PermissionDenied` |
//!
//! # Security
//!
//! - Sockets are close-on-exec from the start (`SOCK_CLOEXEC`, or `FD_CLOEXEC` right after
//!   `socket` where the flag does not exist): a child process never inherits a listener.
//! - `SO_REUSEPORT` is off unless asked for: with it on, any process of the same user may bind
//!   the same port and take a share of the connections.
//! - `SO_REUSEADDR` is set on Unix (as std does: it only allows rebinding over `TIME_WAIT`) and
//!   not on Windows, where it would let another socket steal the port. `SO_EXCLUSIVEADDRUSE` is
//!   not set either, as std does not: it makes a restarted server fail to bind while old
//!   connections linger, and Windows already refuses a bind by another user over a bound port.
//! - A failed bind closes its socket, whatever step failed; nothing is left half-configured.
//! - `unsafe` blocks are the system calls in `sys/` and, in socket activation, the adoption of
//!   the descriptors handed over; each says why it holds. [`inherited_and_unset_env`] is an
//!   `unsafe fn` because it changes the environment (see its `# Safety`).
//!
//! # Features
//!
//! - `tokio`: [`tokio::bind`] (tokio's `TcpListener::bind`, drop-in),
//!   [`ListenerBuilder::bind_tokio`] and [`Listener::into_tokio`].
//! - `report` (default): `report`, the diagnosis `cargo run --example report` prints, as
//!   text or JSON (serde, serde_json).
//! - `cli`: the `maxlisten` command (`survey`, `raise`, `report`); clap comes only with it. It
//!   does not turn on `tokio`: without it the report says tokio's bind was not measured.
//!
//! [`TcpListener::bind`]: std::net::TcpListener::bind

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod address;
mod backlog;
mod builder;
pub mod container;
mod control;
mod error;
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod exec;
#[cfg(unix)]
mod inherited;
mod listener;
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod netns;
mod queue;
#[cfg(feature = "report")]
#[cfg_attr(docsrs, doc(cfg(feature = "report")))]
pub mod report;
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(docsrs, doc(cfg(any(target_os = "linux", target_os = "android"))))]
pub mod select;
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(docsrs, doc(cfg(any(target_os = "linux", target_os = "android"))))]
pub mod survey;
mod sys;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod unix;

use std::io;
use std::net::{TcpListener, ToSocketAddrs};

pub use address::Address;
pub use backlog::{Backlog, BacklogSource};
pub use builder::ListenerBuilder;
pub use control::{queue_stats, set_backlog, system_limit, system_limit_name};
pub use error::Error;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use inherited::{
    inherited, inherited_and_unset_env, inherited_keep_backlog, Inherited, InheritedListener,
};
pub use listener::Listener;
pub use queue::QueueStats;
pub use sys::AsSocket;

/// The README's examples, compiled and run as doctests (they use the `tokio` feature and Unix
/// sockets).
#[cfg(all(doctest, feature = "tokio", unix))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The backlog requested unless told otherwise: `i32::MAX`, the largest `listen(2)` takes,
/// which every kernel lowers to its own limit.
pub const DEFAULT_BACKLOG: u32 = i32::MAX as u32;

/// A drop-in for [`TcpListener::bind`]: the same signature, the same system calls, the same
/// error kinds, but the largest backlog the kernel allows instead of 128.
///
/// Replace `std::net::TcpListener::bind` with `maxlisten::bind` and nothing else changes:
/// generic callers, `fn` pointers, `?` in functions returning [`io::Result`] and code that
/// inspects the error all compile and work as before (`tests/dropin.rs` checks a list of such
/// call patterns against both). For a report of the applied backlog, use
/// [`ListenerBuilder::bind`]; on a listener made here, [`queue_stats`] reads it.
///
/// # Errors
///
/// The [`io::Error`] has the same [`kind`](io::Error::kind) std's would have for the same
/// input (`AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, `InvalidInput`, ...). Its
/// message names the step and the address, and the detailed [`Error`] is inside it: reach it
/// with [`get_ref`](io::Error::get_ref) or [`into_inner`](io::Error::into_inner) and
/// `downcast`. One difference from std: [`io::Error::raw_os_error`] of the returned error is
/// `None`; [`Error::raw_os_error`] of the inner error has the OS code. See [`Error`].
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::TcpListener;
///
/// fn serve() -> io::Result<TcpListener> {
///     maxlisten::bind("127.0.0.1:0") // was: TcpListener::bind("127.0.0.1:0")
/// }
///
/// let listener = serve()?;
/// let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
/// server.write_all(b"hello")?;
/// let mut buf = String::new();
/// drop(server);
/// client.read_to_string(&mut buf)?;
/// assert_eq!(buf, "hello");
/// # Ok::<(), io::Error>(())
/// ```
pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
    match ListenerBuilder::new().bind(addr) {
        Ok(listener) => Ok(listener.into_std()),
        Err(err) => Err(err.into()),
    }
}
