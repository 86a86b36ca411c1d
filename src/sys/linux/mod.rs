//! Linux and Android.
//!
//! - `listen(2)` clamps with an unsigned compare against `net.core.somaxconn`, which is per
//!   network namespace. Before Linux 4.1 the applied backlog was stored in 16 bits, so larger
//!   values wrapped: requests are capped at 65535 there.
//! - `getsockopt(IPPROTO_TCP, TCP_INFO)` on a listening socket reports the applied backlog in
//!   `tcpi_sacked` and the queued connections in `tcpi_unacked` (one system call).
//!   `SO_MEMINFO` (`SK_MEMINFO_DROPS`, Linux 4.12+) counts every SYN dropped on the listener.
//! - A Unix listener has neither: its backlog and queue come from `sock_diag` (see
//!   `sock_diag.rs`), asked by the socket's inode.
//! - `pidfd.rs`: another process's descriptors (`pidfd_open`, `pidfd_getfd`); `proc.rs`: what
//!   `/proc` says about processes (their socket descriptors, command names, threads, cgroups);
//!   `netns.rs`: network namespace files, and `setns` in a thread made for it.
//! - `seccomp.rs`: the filter that hands `listen` to a supervisor, and its notifications;
//!   `supervise.rs`: the supervisor's calls about itself (subreaper, signals, children).

use std::io;
use std::mem;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use libc::c_int;
use socket2::Socket;

pub(crate) mod netns;
pub(crate) mod pidfd;
pub(crate) mod proc;
pub(crate) mod seccomp;
pub(crate) mod sock_diag;
pub(crate) mod supervise;

use super::unix::{check_listening, inode, setsockopt_int};
pub(crate) use super::unix::{is_listening, set_reuse_port};
use super::{Failed, PlatformOption};
use crate::{Backlog, BacklogSource, QueueStats};

/// The sysctl that caps the backlog.
pub(crate) const LIMIT_NAME: &str = "net.core.somaxconn";

/// The state number of a listening socket (`TCP_LISTEN` in the kernel), as `tcpi_state` of
/// `TCP_INFO` and the state field of `sock_diag` answers give it.
pub(crate) const TCP_LISTEN: u8 = 10;

/// The first 32 bytes of the kernel's `struct tcp_info`, all this crate reads.
#[repr(C)]
#[derive(Default)]
struct TcpInfoHead {
    state: u8,
    _ca_state: u8,
    _retransmits: u8,
    _probes: u8,
    _backoff: u8,
    _options: u8,
    _wscale: u8,
    _flags: u8,
    _rto: u32,
    _ato: u32,
    _snd_mss: u32,
    _rcv_mss: u32,
    /// For a listener: connections waiting in the accept queue.
    unacked: u32,
    /// For a listener: the applied backlog.
    sacked: u32,
}

fn tcp_info(socket: &Socket) -> io::Result<TcpInfoHead> {
    let mut info = TcpInfoHead::default();
    let mut len = mem::size_of::<TcpInfoHead>() as libc::socklen_t;
    // SAFETY: `info` is a live, plain-old-data local of `len` bytes; the kernel writes at most
    // `len` bytes to it and stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut TcpInfoHead).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < mem::size_of::<TcpInfoHead>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's TCP_INFO is too short to hold the backlog",
        ));
    }
    Ok(info)
}

/// What to pass to `listen(2)`: the request as an `int`, capped at 65535 before Linux 4.1.
pub(crate) fn listen_arg(requested: u32) -> c_int {
    static OLD_KERNEL: OnceLock<bool> = OnceLock::new();
    let old = *OLD_KERNEL.get_or_init(|| kernel_release().is_some_and(|v| v < (4, 1)));
    listen_arg_for(requested, old)
}

fn listen_arg_for(requested: u32, sixteen_bit_backlog: bool) -> c_int {
    let arg = super::cap_to_int(requested);
    if sixteen_bit_backlog {
        arg.min(c_int::from(u16::MAX))
    } else {
        arg
    }
}

/// The running kernel's (major, minor) version, from `uname(2)`.
fn kernel_release() -> Option<(u32, u32)> {
    // SAFETY: `utsname` is plain old data; all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { mem::zeroed() };
    // SAFETY: `uts` is a live local that `uname` fills in.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|c| c.to_ne_bytes()[0])
        .collect();
    parse_release(std::str::from_utf8(&release).ok()?)
}

fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The applied backlog: `TCP_INFO` for a listening TCP socket; `sock_diag` by inode for a
/// listening Unix socket; else derived from `net.core.somaxconn`.
pub(crate) fn applied_backlog(socket: &Socket, requested: u32) -> Backlog {
    match tcp_info(socket) {
        Ok(info) if info.state == TCP_LISTEN => {
            return Backlog::new(requested, Some(info.sacked), BacklogSource::Kernel)
        }
        Err(e) if not_tcp(&e) => {
            if let Ok(Some((_, backlog))) = unix_reading(socket) {
                return Backlog::new(requested, Some(backlog), BacklogSource::Kernel);
            }
        }
        _ => {}
    }
    // Non-negative: `listen_arg` never returns less than zero.
    Backlog::derived(requested, system_limit(), |limit| {
        (listen_arg(requested) as u32).min(limit)
    })
}

/// `TCP_INFO` on a socket that is not TCP (a Unix socket, say).
fn not_tcp(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// (queued, backlog) of a listening Unix socket, from `sock_diag` by its inode.
fn unix_reading(socket: &Socket) -> io::Result<Option<(u32, u32)>> {
    sock_diag::unix_listener(inode(socket)?)
}

/// Queued connections and the applied backlog: one `TCP_INFO`, and `SO_MEMINFO` for the drops,
/// for a TCP socket; `SO_ACCEPTCONN` and a `sock_diag` request for a Unix socket.
pub(crate) fn queue_stats(socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    let info = match tcp_info(socket) {
        Ok(info) => info,
        Err(source) if not_tcp(&source) => return unix_queue_stats(socket),
        Err(source) => {
            return Err(Failed {
                what: "TCP_INFO",
                source,
            })
        }
    };
    if info.state != TCP_LISTEN {
        return Ok(None);
    }
    Ok(Some(QueueStats {
        queued: info.unacked,
        backlog: info.sacked,
        drops: drops(socket).map(u64::from),
    }))
}

fn unix_queue_stats(socket: &Socket) -> Result<Option<QueueStats>, Failed> {
    if !check_listening(socket)? {
        return Ok(None);
    }
    let reading = unix_reading(socket).map_err(|source| Failed {
        what: "sock_diag UNIX_DIAG_RQLEN",
        source,
    })?;
    let (queued, backlog) = reading.ok_or_else(|| Failed {
        what: "sock_diag UNIX_DIAG_RQLEN",
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel reports no such listener in this thread's network namespace \
             (a socket that is not a Unix stream listener, or one made in another namespace)",
        ),
    })?;
    // The kernel counts no drops for a Unix listener: a full queue makes connect() fail
    // (EAGAIN) or wait, on the client's side.
    Ok(Some(QueueStats {
        queued,
        backlog,
        drops: None,
    }))
}

/// `SK_MEMINFO_DROPS` of `SO_MEMINFO` (Linux 4.12 and later): the SYNs and ACKs dropped on this
/// listener, for any reason (see `QueueStats::drops`).
fn drops(socket: &Socket) -> Option<u32> {
    const VARS: usize = libc::SK_MEMINFO_DROPS as usize + 1;
    let mut info = [0u32; VARS];
    let mut len = mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live array of `len` bytes; the kernel writes at most `len` bytes to it
    // and stores the length it wrote in `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize >= mem::size_of_val(&info)).then_some(info[VARS - 1])
}

/// Whether a Unix socket of this network namespace is bound to the file `stat(2)` described
/// with `st_dev` and `st_ino`, from one `sock_diag` dump: nothing connects to it. `Some`: the
/// kernel said; this namespace only (a socket bound in another one is not seen).
pub(crate) fn unix_file_in_use(st_dev: u64, st_ino: u64) -> io::Result<Option<bool>> {
    sock_diag::unix_socket_bound_to(st_dev, st_ino).map(Some)
}

/// Whether the file `stat(2)` described is the one `socket` is bound to (`sock_diag`'s
/// `UNIX_DIAG_VFS`); `None` where that cannot be read.
pub(crate) fn is_bound_file(socket: &Socket, st_dev: u64, st_ino: u64) -> Option<bool> {
    let vfs = sock_diag::unix_bound_file(inode(socket).ok()?).ok()?;
    Some(vfs.is_some_and(|vfs| vfs.is(st_dev, st_ino)))
}

/// After `bind`: gives the socket's file exactly `mode`, where the umask took bits from the
/// mode `fchmod` put on the socket before `bind`. Never by path: the path is opened with
/// `O_PATH | O_NOFOLLOW` (a symbolic link put there is opened as itself, and refused), the file
/// is checked to be the one the socket is bound to (`UNIX_DIAG_VFS`), and only then is the mode
/// set, through `/proc/self/fd`, on that very file. When the file already has the mode (the
/// umask took nothing), nothing is done.
pub(crate) fn finish_unix_mode(
    socket: &Socket,
    path: &std::path::Path,
    mode: u32,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;

    #[allow(clippy::useless_conversion)] // mode_t is u16 on some targets
    let mode = u32::from(super::unix::check_mode(mode)?);
    // open(2) itself: std's OpenOptions fails on a socket file with musl (ENXIO) even with
    // O_PATH, which opens the file without reading it.
    let c_path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(io::Error::other)?;
    // SAFETY: `c_path` is a NUL-terminated path that lives across the call; the flags take no
    // further argument.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open just made `fd` for this process, and nothing else owns it.
    let file = std::fs::File::from(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    let meta = file.metadata()?;
    let replaced = || {
        io::Error::other(
            "the path no longer names this socket's file (replaced after bind); no mode was set \
             on what is there",
        )
    };
    if meta.mode() & libc::S_IFMT != libc::S_IFSOCK {
        return Err(replaced());
    }
    if meta.mode() & 0o777 == mode {
        return Ok(());
    }
    match is_bound_file(socket, meta.dev(), meta.ino()) {
        Some(true) => {}
        Some(false) => return Err(replaced()),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sock_diag cannot say which file this socket is bound to, so the mode the \
                 umask narrowed is not set (set a umask that keeps the mode's bits)",
            ))
        }
    }
    // chmod(2) by the descriptor's /proc link: the kernel resolves it to the very file opened
    // above. (std's set_permissions may open the path first, which fails on a socket with
    // ENXIO on some libcs.)
    let by_fd = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(io::Error::other)?;
    // SAFETY: `by_fd` is a NUL-terminated path that lives across the call.
    if unsafe { libc::chmod(by_fd.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The inode of a pidfd of this process, which systemd passes as `LISTEN_PIDFDID`; `None`
/// where pidfds do not exist (Linux before 5.3) or cannot be opened.
pub(crate) fn own_pidfd_id() -> Option<u64> {
    let pidfd = pidfd::open(std::process::id()).ok()?;
    let meta = std::fs::File::from(pidfd).metadata().ok()?;
    Some(std::os::unix::fs::MetadataExt::ino(&meta))
}

/// `net.core.somaxconn` of the calling thread's network namespace.
pub(crate) fn system_limit() -> Option<u32> {
    // /proc/sys/net resolves against the network namespace of the thread that opens it.
    let shown = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok();
    // A file masked as runtimes mask one (`/dev/null` bound over it) reads as empty.
    match shown.and_then(|text| text.trim().parse().ok()) {
        Some(limit) => Some(limit),
        None => limit_as_applied(),
    }
}

/// `net.core.somaxconn` of the calling thread's namespace where `/proc/sys` cannot be read (a
/// container's masked `/proc/sys`, systemd's `InaccessiblePaths=`, the file masked by
/// `/dev/null` bound over it, which reads as empty): the kernel's own clamp, read
/// back from a listener made for it that asks for the most (`listen(2)` lowers any backlog above
/// the limit to the limit, exactly). The listener is on 127.0.0.1 and an ephemeral port, read
/// with `TCP_INFO`; where the loopback has no address, an unnamed Unix socket (an autobound
/// abstract name), read with `sock_diag`. Either is closed at once; `None` if both fail.
fn limit_as_applied() -> Option<u32> {
    limit_on_loopback().or_else(limit_on_unix)
}

/// `listen(2)` asking for the most, on `socket` (what [`listen_arg`] makes of `u32::MAX`).
fn asks_for_the_most(socket: &Socket) -> bool {
    socket.listen(listen_arg(u32::MAX)).is_ok()
}

/// [`limit_as_applied`] on 127.0.0.1.
fn limit_on_loopback() -> Option<u32> {
    let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&loopback.into()).ok()?;
    if !asks_for_the_most(&socket) {
        return None;
    }
    tcp_info(&socket).ok().map(|info| info.sacked)
}

/// [`limit_as_applied`] on an unnamed Unix socket.
fn limit_on_unix() -> Option<u32> {
    let socket = Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).ok()?;
    let family = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    // SAFETY: `family` is a live sockaddr_un; the length passed covers only its family, which
    // asks Linux to bind the socket to a fresh abstract name of its choosing (autobind).
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&family).cast(),
            mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if bound != 0 || !asks_for_the_most(&socket) {
        return None;
    }
    unix_reading(&socket)
        .ok()
        .flatten()
        .map(|(_, backlog)| backlog)
}

/// `TCP_DEFER_ACCEPT` (whole seconds, rounded up), `TCP_FASTOPEN` (queue length),
/// `SO_BINDTODEVICE`, `IP_FREEBIND` / `IPV6_FREEBIND`.
pub(crate) fn set_platform_option(
    socket: &Socket,
    ipv4: bool,
    option: PlatformOption<'_>,
) -> io::Result<()> {
    let tcp = |name, value: u64| {
        let value = c_int::try_from(value).unwrap_or(c_int::MAX);
        setsockopt_int(socket, libc::IPPROTO_TCP, name, value)
    };
    match option {
        PlatformOption::DeferAccept(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tcp(libc::TCP_DEFER_ACCEPT, secs)
        }
        PlatformOption::FastOpen(queue) => tcp(libc::TCP_FASTOPEN, u64::from(queue)),
        PlatformOption::BindDevice(device) => socket.bind_device(Some(device.as_bytes())),
        PlatformOption::FreeBind(on) if ipv4 => socket.set_freebind_v4(on),
        PlatformOption::FreeBind(on) => socket.set_freebind_v6(on),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_as_applied_is_the_one_proc_sys_shows() {
        let shown: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(limit_on_unix(), Some(shown));
        // The loopback has an address wherever lo is up (it is where the tests run).
        assert_eq!(limit_on_loopback(), Some(shown));
        assert_eq!(limit_as_applied(), Some(shown));
    }

    #[test]
    fn listen_arg_never_negative_and_capped_on_old_kernels() {
        assert_eq!(listen_arg_for(0, false), 0);
        assert_eq!(listen_arg_for(7, false), 7);
        assert_eq!(listen_arg_for(u32::MAX, false), i32::MAX);
        assert_eq!(listen_arg_for(i32::MAX as u32 + 1, false), i32::MAX);
        assert_eq!(listen_arg_for(u32::MAX, true), 65535);
        assert_eq!(listen_arg_for(70000, true), 65535);
        assert_eq!(listen_arg_for(4096, true), 4096);
    }

    #[test]
    fn kernel_release_parses() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("4.0.9"), Some((4, 0)));
        assert_eq!(parse_release("3.10.0-1160.el7.x86_64"), Some((3, 10)));
        assert_eq!(parse_release("garbage"), None);
        assert!(kernel_release().is_some());
        assert!(mem::size_of::<TcpInfoHead>() == 32);
    }
}
