#![cfg(target_os = "linux")]

//! Helpers for the integration tests: the kernel's own view of a listener (read here, not through
//! the crate), private network namespaces, and clients that fill an accept queue.
#![allow(dead_code)] // each test file uses a part

pub mod namespaces;
pub mod process;

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

/// What `ss ARGS` prints in the network namespace `netns` (a path such as `/proc/PID/ns/net`
/// or `/run/netns/NAME`, entered with `nsenter --net`: root, or root of the user namespace
/// that owns it), or with `None` in the calling thread's. A child process starts in the
/// namespaces of the thread that spawns it, so there `ss` runs directly: no `nsenter`, which
/// would need privileges over the namespace.
pub fn ss_in(netns: Option<&str>, args: &[&str]) -> String {
    let mut command = match netns {
        Some(path) => {
            let mut c = std::process::Command::new("nsenter");
            c.arg(format!("--net={path}")).arg("ss");
            c
        }
        None => std::process::Command::new("ss"),
    };
    let out = command
        .args(args)
        .output()
        .expect("run ss (package iproute2)");
    assert!(out.status.success(), "ss failed in {netns:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Send-Q of a listening socket on `port` as `ss -ltn` shows it in the calling thread's
/// namespace.
pub fn ss_send_q(port: u16) -> u32 {
    ss_send_q_in(None, port)
}

/// Send-Q (the backlog) of the TCP listener on `port` as `ss -ltn` shows it in `netns` (see
/// [`ss_in`]).
pub fn ss_send_q_in(netns: Option<&str>, port: u16) -> u32 {
    let text = ss_in(netns, &["-ltnH", &format!("sport = :{port}")]);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("ss shows no listener on {port} in {netns:?}"));
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Whether the process runs as root: the real root, or root of the user namespace that
/// [`own_netns`] or [`own_sandbox`] re-ran this test in (where it may make namespaces just the
/// same).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process is in a user namespace other than the host's (the host's maps every
/// id to itself: `0 0 4294967295`).
pub fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").expect("read /proc/self/uid_map");
    map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]
}

/// Whether the process is the host's root (not root of a user namespace of its own).
pub fn is_host_root() -> bool {
    is_root() && !in_user_namespace()
}

/// Whether CI forbids skipping (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True when the test may go on as the host's root: for what truly needs it (other users, the
/// host's cgroups, the host's own processes), not for namespaces of its own (see [`own_netns`]
/// and [`own_sandbox`]). Outside CI a test that needs root says it skips; with `CI=true` it
/// fails instead.
pub fn require_root(test: &str) -> bool {
    needs_root(test, "needs root")
}

/// [`require_root`], saying `why` (what needs root) when it skips or fails.
pub fn needs_root(test: &str, why: &str) -> bool {
    if is_host_root() {
        return true;
    }
    assert!(!in_ci(), "{test} {why}, and CI=true forbids skipping it");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Set in the child that [`own_netns`] runs: the test runs there, in a user namespace.
const IN_USERNS: &str = "MAXLISTEN_TEST_IN_USERNS";

/// Set in the child that [`own_sandbox`] runs, to the test's name.
const IN_SANDBOX: &str = "MAXLISTEN_TEST_SANDBOX";

/// Said by a test run in a user namespace of its own (for a check that this path ran).
pub const USERNS_MARK: &str = "run in a user namespace of its own";

/// The gate of a test that needs only namespaces of its own (network, mount, ...), for any user.
///
/// - As root (or in the child below), returns `true`: the test goes on, and [`in_netns`] makes
///   its network namespaces on a thread.
/// - Otherwise it runs this very test again, alone (`--exact`, the name libtest gave this
///   thread, or `test`), as a child of this test binary placed in a new user namespace, where
///   this user is root, a new network namespace with `lo` up and a new mount namespace with an
///   empty tmpfs on `/run/netns`. There the test makes its namespaces (`unshare`, `ip netns
///   add`) and sets `net.core.somaxconn` as root would (allowed in a network namespace that a
///   user namespace of one's own owns). This waits for the child, fails if it failed or ran no
///   test, and returns `false`: the body has run.
/// - Where the kernel forbids user namespaces (`user.max_user_namespaces=0`, an AppArmor or
///   seccomp policy), it skips with the reason, and fails with `CI=true`.
///
/// A thread cannot enter a new user namespace in a process that has other threads (the test
/// harness has), hence the child: it unshares between fork and exec, single-threaded.
pub fn own_netns(test: &str) -> bool {
    if std::env::var_os(IN_USERNS).is_some() {
        set_lo_up(); // the child's own network namespace (threads may make more)
        eprintln!("{USERNS_MARK}");
        return true;
    }
    if is_root() {
        return true;
    }
    let name = test_name(test);
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([&name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_USERNS, "1");
    enter_user_namespace_on_exec(&mut command, libc::CLONE_NEWNET | libc::CLONE_NEWNS);
    run_child(
        &name,
        command,
        "its user namespace",
        Some("a user namespace with network and mount namespaces inside"),
    )
}

/// The gate of a test that needs a whole "host" of its own: new network, PID and mount
/// namespaces, a fresh `/proc` that shows only its processes, an empty tmpfs on `/run/netns`
/// and `lo` up. There `--all-namespaces` and `Netns::all` reach only what the test made, and
/// nothing can touch a listener of the real host.
///
/// Inside, returns `true`. Outside, runs this very test there (`unshare --net --pid --fork
/// --mount-proc`; for a user other than root, inside a new user namespace made first, as in
/// [`own_netns`], where it skips with the reason if the kernel forbids one, and fails with
/// `CI=true`), fails if it failed or ran no test, and returns `false`: the body has run.
pub fn own_sandbox(test: &str) -> bool {
    if std::env::var(IN_SANDBOX).as_deref() == Ok(test) {
        if in_user_namespace() {
            eprintln!("{USERNS_MARK}");
        }
        return true;
    }
    // A directory /run/netns where there is none (in a user namespace /run is not writable:
    // then a tmpfs on /run, in this mount namespace only), and an empty tmpfs on it.
    let script = "{ [ -d /run/netns ] || mkdir /run/netns 2>/dev/null || \
                    { mount -t tmpfs maxlisten-run /run && mkdir /run/netns; }; } && \
                  mount -t tmpfs maxlisten-test /run/netns && \
                  ip link set lo up && exec \"$0\" \"$@\"";
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--net", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(["sh", "-c", script])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_SANDBOX, test);
    let userns = (!is_root()).then_some("a user namespace");
    if userns.is_some() {
        enter_user_namespace_on_exec(&mut command, 0);
    }
    run_child(test, command, "its sandbox", userns)
}

/// The test's name: the one libtest gave this thread, or `test`.
fn test_name(test: &str) -> String {
    let current = std::thread::current();
    current
        .name()
        .filter(|n| *n != "main")
        .unwrap_or(test)
        .to_string()
}

/// Runs `command` (this test binary re-run for the test `name` in namespaces of its own, in
/// `place`), prints what it said, and fails unless it ran the test and it passed; `false`.
/// Where `userns` (what the child enters first) could not be made, it says `SKIPPED` with the
/// reason, or fails with `CI=true`.
fn run_child(
    name: &str,
    mut command: std::process::Command,
    place: &str,
    userns: Option<&str>,
) -> bool {
    let out = match (command.output(), userns) {
        (Ok(out), _) => out,
        (Err(e), Some(what)) => {
            let why = format!(
                "{what} could not be made ({e}); the kernel or a policy forbids it \
                 (user.max_user_namespaces, a chroot, kernel.apparmor_restrict_unprivileged_userns)"
            );
            assert!(!in_ci(), "{name}: {why}, and CI=true forbids skipping it");
            eprintln!("SKIPPED {name}: {why}");
            return false;
        }
        (Err(e), None) => panic!("{name}: start {command:?}: {e}"),
    };
    assert_one_passed(name, place, &out);
    false
}

/// Runs `test`, a test of this very binary that does its part only when started so, through
/// `command`: this binary, or a program that ends by running it with the arguments it is given
/// (`as_nobody`, an agent's `nsenter`, ...), with what the child needs already set. Adds
/// libtest's arguments and asserts that the one test ran there and passed.
pub fn run_child_test(command: &mut std::process::Command, test: &str, place: &str) {
    let out = command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .output()
        .unwrap_or_else(|e| panic!("{test}: start {command:?}: {e}"));
    assert_one_passed(test, place, &out);
}

/// Shows what the child test `name` printed, and asserts that it ran, alone, and passed.
fn assert_one_passed(name: &str, place: &str, out: &std::process::Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- {name}, run in {place} ---\n{text}--- end of {name} ---");
    assert!(out.status.success(), "{name} failed in {place}:\n{text}");
    assert!(
        text.contains("test result: ok. 1 passed"),
        "{name} did not run in {place} (is {name:?} the test's name?):\n{text}"
    );
}

/// Makes `command`'s process, between fork and exec, enter a new user namespace (mapping this
/// user to its root, and this group to its group 0) and the new namespaces `also`. With
/// `CLONE_NEWNS` in `also`, its mounts become private and an empty tmpfs covers `/run/netns`
/// (made on a tmpfs covering `/run` where the host has no `/run/netns`: `/run` is not
/// writable there). A refusal fails the spawn with the kernel's error.
fn enter_user_namespace_on_exec(command: &mut std::process::Command, also: libc::c_int) {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;

    // Everything the child writes is made here, before the fork: it only calls unshare, open,
    // write, close, mount and mkdir, which are async-signal-safe, and allocates nothing.
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
            if libc::unshare(libc::CLONE_NEWUSER | also) != 0 {
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
            if also & libc::CLONE_NEWNS != 0 {
                private_run_netns()?;
            }
            Ok(())
        });
    }
}

/// In a mount namespace of the caller's own: every mount private, an empty tmpfs on
/// `/run/netns` (see [`enter_user_namespace_on_exec`]). Only system calls, no allocation.
fn private_run_netns() -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let none = std::ptr::null();
    let tmpfs = c"tmpfs".as_ptr();
    // SAFETY: every pointer is a NUL-terminated literal or null, as mount(2) allows.
    unsafe {
        check(libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ))?;
        if libc::mkdir(c"/run/netns".as_ptr(), 0o755) != 0
            && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
        {
            check(libc::mount(
                c"maxlisten-run".as_ptr(),
                c"/run".as_ptr(),
                tmpfs,
                0,
                none.cast(),
            ))?;
            check(libc::mkdir(c"/run/netns".as_ptr(), 0o755))?;
        }
        check(libc::mount(
            c"maxlisten-test".as_ptr(),
            c"/run/netns".as_ptr(),
            tmpfs,
            0,
            none.cast(),
        ))
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
    ss_unix_in(None, local)
}

/// `(Recv-Q, Send-Q)` of the listening Unix socket `local` as `ss -xl` shows it in `netns`
/// (see [`ss_in`]).
pub fn ss_unix_in(netns: Option<&str>, local: &str) -> (u32, u32) {
    let text = ss_in(netns, &["-xlH"]);
    // Netid State Recv-Q Send-Q Local Inode Peer Inode
    let line = text
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some(local))
        .unwrap_or_else(|| panic!("ss -xl shows no listener {local} in {netns:?}:\n{text}"));
    let field = |i: usize| line.split_whitespace().nth(i).unwrap().parse().unwrap();
    (field(2), field(3))
}

/// Raises this process's soft limit of open descriptors to its hard limit (no privilege
/// needed), for a test that holds `need` descriptors at once: a login's soft limit is often
/// 1024. Fails, naming both, if the hard limit is below `need`.
pub fn allow_open_files(need: libc::rlim_t) {
    // SAFETY: rlimit is plain old data; all zeroes is a valid value.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: `limit` is a live local the kernel writes.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    assert!(
        limit.rlim_max >= need,
        "the test holds {need} descriptors; RLIMIT_NOFILE's hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a live, initialised rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// A fresh directory for the test's socket files.
pub fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maxlisten-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A seccomp filter that fails `syscall` with `errno` when the low 32 bits of its first
/// argument are one of `arg0`, as a security policy would (`RestrictAddressFamilies=`, a
/// runtime's profile); every other call is allowed. This machine's own architecture only (it is
/// a test): on i686 `socket` and `listen` may be `socketcall(2)`, which it cannot single out.
pub fn refusing(syscall: libc::c_long, arg0: &[u32], errno: i32) -> Vec<libc::sock_filter> {
    assert!(!arg0.is_empty() && arg0.len() < 100);
    let n = arg0.len() as u8;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = |offset| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    let mut filter = vec![
        load(0), // seccomp_data.nr
        jeq(syscall as u32, 0, n + 1),
        load(16), // the low half of args[0]
    ];
    for (i, &value) in arg0.iter().enumerate() {
        filter.push(jeq(value, n - i as u8, 0));
    }
    filter.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    filter.push(stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | errno as u32,
    ));
    filter
}

/// Installs `filter` (see [`refusing`]) in `command`'s process between fork and exec, with
/// `no_new_privs` as seccomp requires; it holds for what that process execs next.
pub fn filtered_on_exec(command: &mut std::process::Command, filter: Vec<libc::sock_filter>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure calls only prctl, async-signal-safe, with a
    // program made before the fork and moved into it: no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
