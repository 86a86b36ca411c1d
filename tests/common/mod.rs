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

/// What `ss ARGS` prints in the network namespace of the calling thread. A child process
/// starts in the namespaces of the thread that spawns it, so `ss` runs directly: no `nsenter`,
/// which would need privileges over the namespace (root, or a user namespace of its own).
fn ss(args: &[&str]) -> String {
    let out = std::process::Command::new("ss")
        .args(args)
        .output()
        .expect("run ss (package iproute2)");
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

/// Whether the process runs as root: the real root, or root of the user namespace that
/// [`own_netns`] re-ran this test in (where it may make network namespaces just the same).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether CI forbids skipping (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True when the test may go on as root: for what truly needs the host's root (other users,
/// the host's own processes), not for namespaces of its own (see [`own_netns`]). Outside CI a
/// test that needs root says it skips; with `CI=true` it fails instead.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !in_ci(),
        "{test} needs root, and CI=true forbids skipping it"
    );
    eprintln!("SKIPPED {test}: needs root");
    false
}

/// Set in the child that [`own_netns`] runs: the test runs there, in a user namespace.
const IN_USERNS: &str = "MAXLISTEN_TEST_IN_USERNS";

/// The gate of a test that needs only namespaces of its own (network, mount, ...), for any user.
///
/// - As root (or in the child below), returns `true`: the test goes on, and [`in_netns`] makes
///   its network namespaces on a thread.
/// - Otherwise it runs this very test again, alone (`--exact`, the name libtest gave this
///   thread, or `test`), as a child of this test binary placed in a new user namespace, where
///   this user is root, and a new network namespace with `lo` up. There the test makes its
///   namespaces and sets `net.core.somaxconn` as root would (both are allowed in a network
///   namespace that a user namespace of one's own owns). This waits for the child, fails if it
///   failed or ran no test, and returns `false`: the body has run.
/// - Where the kernel forbids user namespaces (`user.max_user_namespaces=0`, an AppArmor or
///   seccomp policy), it skips with the reason, and fails with `CI=true`.
///
/// A thread cannot enter a new user namespace in a process that has other threads (the test
/// harness has), hence the child: it unshares between fork and exec, single-threaded.
pub fn own_netns(test: &str) -> bool {
    if std::env::var_os(IN_USERNS).is_some() {
        set_lo_up(); // the child's own network namespace (threads may make more)
        return true;
    }
    if is_root() {
        return true;
    }
    let current = std::thread::current();
    let name = current.name().filter(|n| *n != "main").unwrap_or(test);
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(&exe);
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_USERNS, "1");
    enter_user_and_net_namespace_on_exec(&mut command);
    let out = match command.output() {
        Ok(out) => out,
        Err(e) => {
            let why = format!(
                "a user namespace with a network namespace inside could not be made ({e}); \
                 the kernel or a policy forbids it (user.max_user_namespaces, a chroot, \
                 kernel.apparmor_restrict_unprivileged_userns)"
            );
            assert!(!in_ci(), "{name}: {why}, and CI=true forbids skipping it");
            eprintln!("SKIPPED {name}: {why}");
            return false;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- {name}, run in a user namespace ---\n{text}--- end of {name} ---");
    assert!(
        out.status.success(),
        "{name} failed in its user namespace:\n{text}"
    );
    assert!(
        text.contains("test result: ok. 1 passed"),
        "{name} did not run in its user namespace (is {name:?} the test's name?):\n{text}"
    );
    false
}

/// Whether this is the child [`own_netns`] runs in a user namespace.
pub fn in_user_namespace() -> bool {
    std::env::var_os(IN_USERNS).is_some()
}

/// Makes `command`'s process, between fork and exec, enter a new user namespace (mapping this
/// user to its root, and this group to its group 0) and a new network namespace.
fn enter_user_and_net_namespace_on_exec(command: &mut std::process::Command) {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;

    // Everything the child writes is made here, before the fork: it only calls unshare, open,
    // write and close, which are async-signal-safe, and allocates nothing.
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let files = [
        (c"/proc/self/setgroups", CString::new("deny").unwrap()),
        (
            c"/proc/self/uid_map",
            CString::new(format!("0 {uid} 1")).unwrap(),
        ),
        (
            c"/proc/self/gid_map",
            CString::new(format!("0 {gid} 1")).unwrap(),
        ),
    ];
    // SAFETY: the closure makes only async-signal-safe calls (see above) on data made before
    // the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            for (path, text) in &files {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let bytes = text.as_bytes();
                let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
                let err = io::Error::last_os_error();
                libc::close(fd);
                if written != bytes.len() as isize {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
}

/// Runs `f` on a new thread inside a new network namespace with `lo` up and
/// `net.core.somaxconn` set to `limit`. The namespace goes away with the thread. Needs root, or
/// the user namespace of [`own_netns`]: call that first.
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
    set_lo_up();
}

/// Brings `lo` of the calling thread's network namespace up.
pub fn set_lo_up() {
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
