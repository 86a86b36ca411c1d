#![cfg(target_os = "linux")]

//! Helpers for the integration tests: the kernel's own view of a listener (read here, not through
//! the crate), private network namespaces, and clients that fill an accept queue.
#![allow(dead_code)] // each test file uses a part

pub mod namespaces;

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// `(tcpi_state, tcpi_unacked, tcpi_sacked)` read with libc's `struct tcp_info`.
pub fn kernel_tcp_info<S: AsFd>(socket: &S) -> (u8, u32, u32) {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
    (info.tcpi_state, info.tcpi_unacked, info.tcpi_sacked)
}

/// The applied backlog as the kernel reports it (`tcpi_sacked` of a listening socket).
pub fn kernel_backlog<S: AsFd>(socket: &S) -> u32 {
    let (state, _, sacked) = kernel_tcp_info(socket);
    assert_eq!(state, 10, "not a listening socket (TCP_LISTEN is 10)");
    sacked
}

/// Connections waiting in the accept queue, as the kernel reports them.
pub fn kernel_queued<S: AsFd>(socket: &S) -> u32 {
    kernel_tcp_info(socket).1
}

/// `net.core.somaxconn` of the calling thread's namespace, read directly.
pub fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What `ss ARGS` prints in the network namespace of the calling thread (`nsenter` into it by
/// the thread's own id, so that it does not depend on which thread spawns the process).
fn ss(args: &[&str]) -> String {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let ns = format!("/proc/{}/task/{}/ns/net", std::process::id(), tid);
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={ns}"))
        .arg("ss")
        .args(args)
        .output()
        .expect("run nsenter ss");
    assert!(out.status.success(), "ss failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Send-Q of a listening socket on `port` as `ss -ltn` shows it in the calling thread's
/// namespace.
pub fn ss_send_q(port: u16) -> u32 {
    let text = ss(&["-ltnH", &format!("sport = :{port}")]);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("ss shows no listener on {port}"));
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the test may go on as root. Outside CI a test that needs root says it skips;
/// with `CI=true` it fails instead.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root for a private network namespace, and CI=true forbids skipping it"
    );
    eprintln!("SKIPPED {test}: needs root for a private network namespace");
    false
}

/// Runs `f` on a new thread inside a new network namespace with `lo` up and
/// `net.core.somaxconn` set to `limit`. The namespace goes away with the thread.
pub fn in_netns<T: Send>(limit: u32, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            enter_new_netns();
            set_somaxconn(limit);
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Sets `net.core.somaxconn` of the calling thread's namespace (never call on the host's).
pub fn set_somaxconn(limit: u32) {
    std::fs::write("/proc/sys/net/core/somaxconn", limit.to_string())
        .expect("write net.core.somaxconn");
    assert_eq!(somaxconn(), limit);
}

fn enter_new_netns() {
    // SAFETY: unshare has no memory preconditions; it moves only this thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq naming "lo"; SIOCGIFFLAGS fills in its flags.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) };
    assert_eq!(rc, 0, "SIOCGIFFLAGS: {}", io::Error::last_os_error());
    // SAFETY: SIOCGIFFLAGS just wrote the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `req` is a live ifreq naming "lo" with its flags set.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) };
    assert_eq!(rc, 0, "SIOCSIFFLAGS: {}", io::Error::last_os_error());
}

/// Fires `attempts` non-blocking connects at `addr` and waits until the number of completed
/// handshakes stops changing (well before the first SYN retransmission at ~1 s). Returns the
/// sockets (keep them alive) and how many completed.
pub fn fill_queue(addr: SocketAddr, attempts: usize) -> (Vec<Socket>, usize) {
    let mut clients = Vec::with_capacity(attempts);
    for _ in 0..attempts {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        sock.set_nonblocking(true).unwrap();
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => panic!("connect {addr}: {e}"),
        }
        clients.push(sock);
    }
    let completed = |clients: &[Socket]| clients.iter().filter(|s| s.peer_addr().is_ok()).count();
    let start = Instant::now();
    let mut last = completed(&clients);
    let mut stable_since = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        std::thread::sleep(Duration::from_millis(20));
        let now = completed(&clients);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(200) {
            break;
        }
    }
    (clients, last)
}

/// `(Recv-Q, Send-Q)` of the listening Unix socket `local` (a path, or `@name`) as `ss -xl`
/// shows it in the calling thread's namespace.
pub fn ss_unix(local: &str) -> (u32, u32) {
    let text = ss(&["-xlH"]);
    // Netid State Recv-Q Send-Q Local Inode Peer Inode
    let line = text
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some(local))
        .unwrap_or_else(|| panic!("ss -xl shows no listener {local}:\n{text}"));
    let field = |i: usize| line.split_whitespace().nth(i).unwrap().parse().unwrap();
    (field(2), field(3))
}

/// A fresh directory for the test's socket files.
pub fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maxlisten-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
