//! Failures close what they opened, at every step, and successes close on drop: the TCP and Unix
//! builders, socket activation, `survey::relisten` (pidfds) and the `sock_diag` readings. Each
//! test counts `/proc/self/fd` before and after many rounds; they take one lock, so that no other
//! test of this binary opens descriptors while one counts. Socket activation runs in a child
//! process (this binary again), since it works on descriptors 3 and up.

// Linux only: it counts descriptors in /proc and expects Linux's errors.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::Mutex;

use maxlisten::ListenerBuilder;

/// Held by each test while it counts.
static COUNTING: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `rounds` times `round`, and fails if the descriptor count changed.
fn no_leak(what: &str, rounds: usize, mut round: impl FnMut()) {
    let before = open_fds();
    for _ in 0..rounds {
        round();
    }
    assert_eq!(open_fds(), before, "{what}: descriptors leaked");
}

fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maxlisten-leak-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn failed_binds_leave_the_descriptor_count_unchanged() {
    let _counting = COUNTING.lock().unwrap();
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let in_use = taken.local_addr().unwrap();
    let never_listened = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let empty: &[SocketAddr] = &[];
    no_leak("TCP failures", 1000, || {
        // Fails at bind (socket made and configured first).
        assert!(maxlisten::bind(in_use).is_err());
        assert!(ListenerBuilder::new()
            .reuse_port(true)
            .tcp_nodelay(true)
            .bind(in_use)
            .is_err());
        // Fails at bind: not an address of this host.
        assert!(maxlisten::bind("192.0.2.1:0").is_err());
        // Several addresses, all failing.
        assert!(maxlisten::bind(&[in_use, "192.0.2.1:0".parse().unwrap()][..]).is_err());
        // Fails before any socket.
        assert!(maxlisten::bind("not an address").is_err());
        assert!(maxlisten::bind(empty).is_err());
        assert!(ListenerBuilder::new()
            .only_v6(true)
            .bind("127.0.0.1:0")
            .is_err());
        assert!(ListenerBuilder::new().ttl(0).bind("127.0.0.1:0").is_err());
        // Fails at a socket option, after the socket was made.
        assert!(ListenerBuilder::new()
            .bind_device("nosuchdev0")
            .bind("127.0.0.1:0")
            .is_err());
        assert!(ListenerBuilder::new()
            .keepalive(std::time::Duration::ZERO)
            .bind("127.0.0.1:0")
            .is_err());
        // Runtime calls on something that does not listen.
        assert!(maxlisten::set_backlog(&never_listened, 5).is_err());
        assert!(maxlisten::queue_stats(&never_listened).is_err());
    });
    no_leak("dropped TCP listeners", 500, || {
        drop(maxlisten::bind("127.0.0.1:0").unwrap());
    });
}

#[test]
fn unix_binds_leave_the_descriptor_count_unchanged_at_every_step() {
    let _counting = COUNTING.lock().unwrap();
    let dir = temp_dir("unix");
    // A stale file (its listener dropped), and a live listener.
    let stale_path = dir.join("stale.sock");
    drop(maxlisten::unix::bind(&stale_path).unwrap());
    let really_live = dir.join("live.sock");
    let live = std::os::unix::net::UnixListener::bind(&really_live).unwrap();
    let file = dir.join("data.txt");
    std::fs::write(&file, b"x").unwrap();
    let missing = dir.join("no-such-dir").join("a.sock");
    let too_long = dir.join("x".repeat(200));
    let abstract_name = format!("maxlisten-leak-{}", std::process::id());
    let _taken = maxlisten::unix::ListenerBuilder::new()
        .bind_abstract(abstract_name.as_bytes())
        .unwrap();
    let fresh = dir.join("fresh.sock");
    no_leak("Unix failures", 300, || {
        use maxlisten::unix::ListenerBuilder as Unix;
        // The path exists: bind fails (socket made first).
        assert!(maxlisten::unix::bind(&really_live).is_err());
        // With remove_stale: the lock file is opened, sock_diag asked, and the live one kept.
        assert!(Unix::new().remove_stale(true).bind(&really_live).is_err());
        // A regular file is kept (lock file opened, no socket made).
        assert!(Unix::new().remove_stale(true).bind(&file).is_err());
        // No directory: the lock file cannot be made; without remove_stale, bind fails.
        assert!(Unix::new().remove_stale(true).bind(&missing).is_err());
        assert!(Unix::new().bind(&missing).is_err());
        // Too long: refused before any socket.
        assert!(Unix::new().bind(&too_long).is_err());
        // A mode with bits beyond 0o777: refused after the socket is made, before bind.
        assert!(Unix::new().mode(0o4755).bind(&fresh).is_err());
        assert!(!fresh.exists());
        // An abstract name taken; an abstract name with a mode.
        assert!(Unix::new().bind_abstract(abstract_name.as_bytes()).is_err());
        assert!(Unix::new()
            .mode(0o600)
            .bind_abstract(b"maxlisten-leak-mode")
            .is_err());
    });
    no_leak("Unix successes, dropped", 300, || {
        use maxlisten::unix::ListenerBuilder as Unix;
        // A stale file removed, a mode the umask narrows set after bind, then dropped.
        let listener = Unix::new()
            .remove_stale(true)
            .mode(0o666)
            .bind(&stale_path)
            .unwrap();
        // The sock_diag readings of a Unix listener.
        listener.queue_stats().unwrap();
        let _ = listener.backlog();
        drop(listener);
    });
    drop(live);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn relisten_through_pidfds_leaves_the_descriptor_count_unchanged() {
    let _counting = COUNTING.lock().unwrap();
    let me = std::process::id();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    // A pid that is gone: a child started and reaped here.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let addr = maxlisten::Address::Inet(listener.local_addr().unwrap());
    let info = maxlisten::survey::listeners()
        .unwrap()
        .into_iter()
        .find(|l| l.local == addr)
        .unwrap();
    // The same listener as the survey found it, but said to be held elsewhere.
    let held_as = |pid: u32, fd: i32| {
        let mut other = info.clone();
        other.processes.truncate(1);
        other.processes[0].pid = pid;
        other.processes[0].fd = fd;
        other
    };
    let (not_socket, other_socket) = (held_as(me, file.as_raw_fd()), held_as(me, udp.as_raw_fd()));
    let (no_fd, no_process) = (held_as(me, 100_000), held_as(gone, 3));
    let mut no_holder = info.clone();
    no_holder.processes.clear();
    no_leak("survey::relisten", 300, || {
        maxlisten::survey::relisten(&info, 64).unwrap();
        // Each failing step: not a socket, another socket, no such descriptor, no such
        // process, no holder at all.
        for wrong in [&not_socket, &other_socket, &no_fd, &no_process, &no_holder] {
            assert!(maxlisten::survey::relisten(wrong, 5).is_err());
        }
    });
}

#[test]
fn sock_diag_readings_leave_the_descriptor_count_unchanged() {
    let _counting = COUNTING.lock().unwrap();
    let name = format!("maxlisten-leak-diag-{}", std::process::id());
    let unix = maxlisten::unix::ListenerBuilder::new()
        .bind_abstract(name.as_bytes())
        .unwrap();
    no_leak("sock_diag", 50, || {
        let survey = maxlisten::survey::survey().unwrap();
        assert!(!survey.listeners.is_empty());
        maxlisten::survey::listeners().unwrap();
        unix.queue_stats().unwrap();
    });
}

/// Which child case runs; the children are the `#[ignore]`d test below.
const CASE: &str = "MAXLISTEN_LEAK_CASE";

#[test]
fn socket_activation_leaves_the_descriptor_count_unchanged() {
    let _counting = COUNTING.lock().unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$@\"", "sh"])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "child_adopts_without_leaks",
            "--nocapture",
        ])
        .env(CASE, "1")
        .env("LISTEN_FDS", "2");
    let sources: [RawFd; 2] = [tcp.as_raw_fd(), bound.as_raw_fd()];
    // SAFETY: only fcntl and dup2, async-signal-safe, on a fixed array copied in.
    unsafe {
        command.pre_exec(move || {
            let mut high = [-1 as RawFd; 2];
            for (slot, &fd) in high.iter_mut().zip(&sources) {
                *slot = libc::fcntl(fd, libc::F_DUPFD, 100);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high.iter().enumerate() {
                if libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("child done"), "child did not run:\n{text}");
}

#[test]
#[ignore = "the body of a child process, run by the test above"]
fn child_adopts_without_leaks() {
    if std::env::var_os(CASE).is_none() {
        return;
    }
    // Descriptor 4 is bound but does not listen: every call fails at the check, and claims
    // nothing, many times over; with LISTEN_PIDFDID set, a pidfd is opened to compare.
    no_leak("inherited failures", 300, || {
        assert!(maxlisten::inherited().is_err());
        assert!(maxlisten::inherited_keep_backlog().is_err());
    });
    // (This child runs one test; no thread of its harness touches the environment.)
    std::env::set_var("LISTEN_PIDFDID", "1");
    no_leak("inherited, another pidfd", 300, || {
        assert!(maxlisten::inherited().unwrap().is_empty());
    });
    std::env::remove_var("LISTEN_PIDFDID");
    // One socket: adopted, then dropped; it closes its descriptor (3), and nothing else stays.
    std::env::set_var("LISTEN_FDS", "1");
    // SAFETY: descriptor 4 is the inherited socket that nothing here owns or uses any more.
    unsafe { libc::close(4) };
    let before = open_fds();
    let sockets = maxlisten::inherited().unwrap();
    assert_eq!(sockets.len(), 1);
    assert_eq!(open_fds(), before);
    drop(sockets);
    assert_eq!(
        open_fds(),
        before - 1,
        "the adopted descriptor was not closed"
    );
    println!("child done");
}
