//! Socket activation: sockets handed over by the real `systemd-socket-activate` tool, and by
//! hand (good and bad environments), adopted by `maxlisten::inherited`.
//!
//! The by-hand cases run in child processes (this test binary again, with `--ignored`), since
//! the protocol works on the process's own environment and descriptors 3 and up.

// Linux only: namespaces, ss, systemd-socket-activate.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{filtered_on_exec, in_netns, own_netns, refusing, ss_send_q, ss_unix, temp_dir};
use maxlisten::{Error, InheritedListener};

/// Which hand-over case a child checks.
const CASE: &str = "MAXLISTEN_INHERITED_CASE";

/// Runs this test binary's `child_adopts` with `fds` placed at 3, 4, ... and the activation
/// variables set (`LISTEN_PID` to the child's own pid unless `pid` says otherwise).
fn run_child(case: &str, fds: &[RawFd], vars: &[(&str, &str)], pid: Option<&str>) {
    run_child_denying(case, fds, vars, pid, None)
}

/// As [`run_child`]; with `deny`, the child's `listen` on that descriptor is refused.
fn run_child_denying(
    case: &str,
    fds: &[RawFd],
    vars: &[(&str, &str)],
    pid: Option<&str>,
    deny: Option<RawFd>,
) {
    let exe = std::env::current_exe().unwrap();
    let script = match pid {
        None => "LISTEN_PID=$$ exec \"$@\"".to_owned(),
        Some(pid) => format!("LISTEN_PID={pid} exec \"$@\""),
    };
    let mut command = Command::new("sh");
    command
        .args(["-c", &script, "sh"])
        .arg(&exe)
        .args(["--ignored", "--exact", "child_adopts", "--nocapture"])
        .env(CASE, case)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("LISTEN_PIDFDID");
    for (name, value) in vars {
        command.env(name, value);
    }
    // Fixed arrays, filled before the fork: the child allocates nothing.
    const MAX: usize = 8;
    assert!(fds.len() <= MAX);
    let mut sources = [-1 as RawFd; MAX];
    sources[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    // With `deny`, `listen(deny, ...)` fails with `EACCES`, as a security policy refusing the
    // service's `listen` would make it.
    if let Some(deny) = deny {
        filtered_on_exec(
            &mut command,
            refusing(libc::SYS_listen, &[deny as u32], libc::EACCES),
        );
    }
    // SAFETY: between fork and exec the closure calls only fcntl and dup2, which are
    // async-signal-safe, on fixed-size arrays copied into it: no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            // First out of the way (a source may already sit at 3 or 4), then into place;
            // dup2 leaves the new descriptor without close-on-exec.
            let mut high = [-1 as RawFd; MAX];
            for i in 0..count {
                high[i] = libc::fcntl(sources[i], libc::F_DUPFD, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high[..count].iter().enumerate() {
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
    assert!(out.status.success(), "child {case} failed:\n{text}");
    assert!(
        text.contains("child done"),
        "child {case} did not run:\n{text}"
    );
}

#[test]
#[ignore = "the body of child processes, run by the tests below"]
fn child_adopts() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let result = match case.as_str() {
        "keep" | "keep-unknown" => maxlisten::inherited_keep_backlog(),
        // SAFETY: this test runs alone in its process (`--exact`), and its harness threads do
        // not touch the environment while it runs.
        "unset" => unsafe { maxlisten::inherited_and_unset_env() },
        _ => maxlisten::inherited(),
    };
    match case.as_str() {
        "good" => {
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 2);
            let limit = maxlisten::system_limit();
            for s in &sockets {
                // Each was listening with a backlog of 1, and is raised to the limit.
                assert_eq!(s.backlog().applied(), limit, "{:?}", s.name());
                // SAFETY: F_GETFD only reads the descriptor's flags.
                let flags = unsafe { libc::fcntl(s.fd(), libc::F_GETFD) };
                assert!(
                    flags & libc::FD_CLOEXEC != 0,
                    "fd {} not close-on-exec",
                    s.fd()
                );
            }
            assert_eq!((sockets[0].fd(), sockets[0].name()), (3, Some("web")));
            assert_eq!((sockets[1].fd(), sockets[1].name()), (4, Some("admin")));
            // The environment is left alone ...
            for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                assert!(std::env::var_os(var).is_some(), "{var} was removed");
            }
            // ... and still the descriptors are adopted once only, by whichever call.
            assert!(maxlisten::inherited().unwrap().is_empty());
            assert!(maxlisten::inherited_keep_backlog().unwrap().is_empty());
            let mut sockets = sockets.into_iter();
            let tcp = sockets.next().unwrap().into_listener().into_tcp().unwrap();
            let unix = sockets.next().unwrap().into_listener().into_unix().unwrap();
            let _client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
            tcp.accept().unwrap();
            let _client =
                UnixStream::connect(unix.local_addr().unwrap().as_pathname().unwrap()).unwrap();
            unix.accept().unwrap();
        }
        "keep" => {
            // Handed over with a backlog of 1, and left so.
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 1);
            assert_eq!(sockets[0].backlog().applied(), Some(1));
            assert!(matches!(sockets[0].listener(), InheritedListener::Tcp(_)));
        }
        "keep-unknown" => {
            // A Unix listener of another network namespace: sock_diag (of this one) cannot read
            // it, so its backlog is unknown, not the system limit.
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 1);
            let backlog = sockets[0].backlog();
            assert_eq!(
                backlog.source(),
                maxlisten::BacklogSource::Unknown,
                "{backlog}"
            );
            assert_eq!(backlog.applied(), None, "{backlog}");
        }
        "other-netns" => {
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 1);
            let backlog = sockets[0].backlog();
            assert_eq!(backlog.applied(), Some(4096), "{backlog}");
        }
        "unset" => {
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 1);
            assert_eq!(sockets[0].backlog().applied(), maxlisten::system_limit());
            for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                assert!(std::env::var_os(var).is_none(), "{var} still set");
            }
        }
        "another-pid" => {
            assert!(result.unwrap().is_empty());
            // Not ours: left for whoever it is meant for.
            assert!(std::env::var_os("LISTEN_FDS").is_some());
        }
        "garbage-count" => {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Environment {
                        variable: "LISTEN_FDS",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("LISTEN_FDS=\"abc\""), "{err}");
            // Nothing changed.
            assert!(std::env::var_os("LISTEN_FDS").is_some());
        }
        "garbage-pid" => {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Environment {
                        variable: "LISTEN_PID",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        "names-mismatch" => {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Environment {
                        variable: "LISTEN_FDNAMES",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        "not-a-socket" => {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Inherited { fd: 3, .. }), "{err:?}");
            assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
            assert!(err.to_string().contains("descriptor 3"), "{err}");
        }
        "not-listening" => {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Inherited { fd: 4, .. }), "{err:?}");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("does not listen"), "{err}");
            // The good socket before it was not touched: the variables are still there.
            assert!(std::env::var_os("LISTEN_FDS").is_some());
        }
        "datagram" => {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("not a stream socket"), "{err}");
        }
        "not-open" => {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Inherited { fd: 4, .. }), "{err:?}");
            assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        }
        "listen-refused" => {
            // Both checked fine; listen on fd 4 is refused after fd 3 was raised: fd 3 is set
            // back (the parent reads its backlog), and the error is fd 4's, errno kept.
            let err = result.unwrap_err();
            assert!(
                matches!(err, Error::Inherited { fd: 4, ref name, .. } if name.as_deref() == Some("admin")),
                "{err:?}"
            );
            assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
            for fd in [3, 4] {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                assert!(flags >= 0, "fd {fd} was closed");
                assert_eq!(flags & libc::FD_CLOEXEC, 0, "fd {fd} left close-on-exec");
            }
            // Nothing adopted: a later call tries again (and fails again), each time setting
            // fd 3 back, and leaves no descriptor behind ...
            let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
            let before = count();
            for _ in 0..100 {
                let again = maxlisten::inherited().unwrap_err();
                assert!(matches!(again, Error::Inherited { fd: 4, .. }), "{again:?}");
            }
            assert_eq!(count(), before, "descriptors leaked");
            // ... and keeping the backlogs, which calls no listen, adopts both as they are.
            let kept = maxlisten::inherited_keep_backlog().unwrap();
            assert_eq!(kept.len(), 2);
            for socket in &kept {
                assert_eq!(socket.backlog().applied(), Some(1), "fd {}", socket.fd());
            }
        }
        "foreign-left-alone" => {
            // fd 3 and fd 4: Unix listeners of another network namespace. Neither is
            // re-listened (fd 4's listen would have been refused), and neither backlog is known.
            let sockets = result.unwrap();
            assert_eq!(sockets.len(), 2);
            for socket in &sockets {
                let backlog = socket.backlog();
                assert_eq!(
                    backlog.source(),
                    maxlisten::BacklogSource::Unknown,
                    "{backlog}"
                );
            }
        }
        "listen-refused-known-first" => {
            // fd 3: a Unix listener, re-listened; fd 4: TCP, refused. fd 3 is set back.
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Inherited { fd: 4, .. }), "{err:?}");
            assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
            assert!(!err.to_string().contains("left changed"), "{err}");
        }
        other => panic!("unknown case {other}"),
    }
    println!("child done");
}

#[test]
fn hand_over_by_hand() {
    let dir = temp_dir("inherited-hand");
    // As systemfd does: listening with a backlog of 1.
    let tcp = tcp_bound();
    tcp.listen(1).unwrap();
    let unix = unix_listener(dir.join("admin.sock"), 1);
    let (t, u) = (tcp.as_raw_fd(), unix.as_raw_fd());
    let names = [("LISTEN_FDS", "2"), ("LISTEN_FDNAMES", "web:admin")];
    run_child("good", &[t, u], &names, None);
    // A fresh one: the child above re-listened `tcp` (the same socket) at the limit.
    let small = tcp_bound();
    small.listen(1).unwrap();
    run_child("keep", &[small.as_raw_fd()], &[("LISTEN_FDS", "1")], None);
    run_child(
        "unset",
        &[small.as_raw_fd()],
        &[("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "small")],
        None,
    );

    let file = std::fs::File::create(dir.join("plain.txt")).unwrap();
    let bound = TcpListener::bind("127.0.0.1:0").unwrap();
    let not_listening = tcp_bound();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let one = [("LISTEN_FDS", "1")];
    run_child("another-pid", &[t], &one, Some("1"));
    run_child("garbage-count", &[t], &[("LISTEN_FDS", "abc")], None);
    run_child("garbage-pid", &[t], &one, Some("12x"));
    run_child(
        "names-mismatch",
        &[t],
        &[("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "a:b")],
        None,
    );
    run_child("not-a-socket", &[file.as_raw_fd()], &one, None);
    run_child(
        "not-listening",
        &[bound.as_raw_fd(), not_listening.as_raw_fd()],
        &[("LISTEN_FDS", "2")],
        None,
    );
    run_child("datagram", &[udp.as_raw_fd()], &one, None);
    run_child("not-open", &[t], &[("LISTEN_FDS", "2")], None);
    std::fs::remove_dir_all(dir).unwrap();
}

/// All or nothing: both sockets pass the checks, then `listen` on the second is refused (a
/// seccomp filter in the child, as a security policy would). The first, already raised, is set
/// back to the backlog it was handed over with, and nothing is adopted.
// Not on i686: its libc may make listen a socketcall(2), whose arguments a seccomp filter cannot
// read, so the refusal of one descriptor's listen cannot be simulated there.
#[cfg(not(target_arch = "x86"))]
#[test]
fn a_refused_listen_sets_back_the_sockets_raised_before_it() {
    let listening = |backlog| {
        let s = tcp_bound();
        s.listen(backlog).unwrap();
        s
    };
    let (web, admin) = (listening(1), listening(1));
    run_child_denying(
        "listen-refused",
        &[web.as_raw_fd(), admin.as_raw_fd()],
        &[("LISTEN_FDS", "2"), ("LISTEN_FDNAMES", "web:admin")],
        None,
        Some(4),
    );
    // The same sockets, read here: as handed over.
    for (name, socket) in [("web", &web), ("admin", &admin)] {
        let stats = maxlisten::queue_stats(socket).unwrap();
        assert_eq!(stats.backlog, 1, "{name} was left changed");
    }
}

/// Unix listeners of another network namespace, whose backlogs this one cannot read nor its
/// limit: they are not re-listened at all (`listen` could lower them to that unseen limit), so
/// a policy refusing `listen` on one of them does not even come into play, and each is
/// reported with an unknown backlog, not the limit standing in.
// Not on i686: its libc may make listen a socketcall(2), whose arguments a seccomp filter cannot
// read, so the refusal of one descriptor's listen cannot be simulated there.
#[cfg(not(target_arch = "x86"))]
#[test]
fn sockets_of_another_namespace_are_not_relistened() {
    if !own_netns("sockets_of_another_namespace_are_not_relistened") {
        return;
    }
    let dir = temp_dir("inherited-foreign");
    let (a, b) = in_netns(4096, || {
        (
            unix_listener(dir.join("a.sock"), 16),
            unix_listener(dir.join("b.sock"), 16),
        )
    });
    run_child_denying(
        "foreign-left-alone",
        &[a.as_raw_fd(), b.as_raw_fd()],
        &[("LISTEN_FDS", "2")],
        None,
        Some(4),
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Of a Unix listener and a TCP one, both re-listened, the TCP one's `listen` refused: the
/// Unix one, re-listened before, is set back to its backlog of 16, and the error names no
/// socket left changed. (Only a socket whose backlog before was not known could not be set
/// back; on Linux no socket is re-listened then, see the test above.)
// Not on i686: as above.
#[cfg(not(target_arch = "x86"))]
#[test]
fn a_refused_listen_sets_back_a_unix_socket_raised_before_it() {
    if !own_netns("a_refused_listen_sets_back_a_unix_socket_raised_before_it") {
        return;
    }
    let dir = temp_dir("inherited-refused");
    // The child runs in the sockets' own namespace.
    in_netns(4096, || {
        let unix = unix_listener(dir.join("b.sock"), 16);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let before = maxlisten::queue_stats(&tcp).unwrap().backlog;
        run_child_denying(
            "listen-refused-known-first",
            &[unix.as_raw_fd(), tcp.as_raw_fd()],
            &[("LISTEN_FDS", "2")],
            None,
            Some(4),
        );
        assert_eq!(maxlisten::queue_stats(&tcp).unwrap().backlog, before);
        assert_eq!(ss_unix(dir.join("b.sock").to_str().unwrap()).1, 16);
    });
    std::fs::remove_dir_all(dir).unwrap();
}

/// A Unix listener bound at `path`, listening with `backlog`.
fn unix_listener(path: impl AsRef<std::path::Path>, backlog: i32) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    s.bind(&socket2::SockAddr::unix(path).unwrap()).unwrap();
    s.listen(backlog).unwrap();
    s
}

/// A TCP socket bound to 127.0.0.1 and an ephemeral port, not listening.
fn tcp_bound() -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&addr.into()).unwrap();
    s
}

/// `inherited_keep_backlog` reports what the kernel says of the socket, or unknown: never the
/// system limit standing in (the old report gave a socket handed over with 16 this namespace's
/// limit).
#[test]
fn keep_backlog_of_a_socket_the_kernel_cannot_read_is_unknown() {
    if !own_netns("keep_backlog_of_a_socket_the_kernel_cannot_read_is_unknown") {
        return;
    }
    let dir = temp_dir("inherited-unknown");
    let path = dir.join("other-ns.sock");
    // Made, with a backlog of 16, in a network namespace the child is not in.
    let listener = in_netns(4096, || unix_listener(&path, 16));
    run_child(
        "keep-unknown",
        &[listener.as_raw_fd()],
        &[("LISTEN_FDS", "1")],
        None,
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A socket of another network namespace than the service's (a socket unit's, handed to a
/// service with `PrivateNetwork=`): `listen` caps at that namespace's limit, which the service
/// cannot read. Made there with a backlog of 4096, under a limit since lowered to 1024, it is
/// handed to a child in a namespace whose limit is 65535: re-listening there at the maximum
/// would have lowered it to 1024; it is left at 4096.
#[test]
fn a_socket_of_another_namespace_is_not_lowered_to_its_fallen_limit() {
    if !own_netns("a_socket_of_another_namespace_is_not_lowered_to_its_fallen_limit") {
        return;
    }
    let listener = in_netns(4096, || {
        let s = tcp_bound();
        s.listen(4096).unwrap();
        common::set_somaxconn(1024);
        s
    });
    assert_eq!(common::kernel_backlog(&listener), 4096);
    in_netns(65535, || {
        run_child(
            "other-netns",
            &[listener.as_raw_fd()],
            &[("LISTEN_FDS", "1")],
            None,
        )
    });
    assert_eq!(common::kernel_backlog(&listener), 4096);
}

/// The real tool: `systemd-socket-activate` makes a TCP and a Unix listener while the limit is
/// 16; a wrapper raises the limit to 4096 and execs the example, which adopts both and raises
/// them to 4096; `ss` agrees.
#[test]
fn systemd_socket_activate_hands_over_and_the_example_raises_both() {
    if !own_netns("systemd_socket_activate_hands_over_and_the_example_raises_both") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/inherited");
    assert!(example.exists(), "{} was not built", example.display());
    let dir = temp_dir("inherited-activate");
    let path = dir.join("admin.sock");
    in_netns(16, || {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-l")
            .arg(&path)
            .arg("--fdname=web:admin")
            .args([
                "sh",
                "-c",
                // Written directly: sysctl(8) is in /usr/sbin, not on every user's PATH.
                "echo 4096 > /proc/sys/net/core/somaxconn && exec \"$0\" --once",
            ])
            .arg(&example)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run systemd-socket-activate (Debian package systemd)");
        // It listens before anything runs (TCP first, then the path); no connect here, since
        // the first connection starts the service.
        for _ in 0..250 {
            if path.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(path.exists(), "systemd-socket-activate did not listen");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ss_send_q(port), 16);
        assert_eq!(ss_unix(path.to_str().unwrap()).1, 16);

        // The first connection starts the service.
        let mut web = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let mut next_line = || match lines.next() {
            Some(line) => line.unwrap(),
            None => {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                panic!("the service printed no more lines; its stderr:\n{text}");
            }
        };
        let first = next_line();
        let second = next_line();
        assert_eq!(
            first,
            format!("adopted fd 3 web: tcp 127.0.0.1:{port}, backlog 4096 (requested 2147483647, capped by the system limit; reported by the kernel)")
        );
        assert_eq!(
            second,
            format!("adopted fd 4 admin: unix {}, backlog 4096 (requested 2147483647, capped by the system limit; reported by the kernel)", path.display())
        );
        assert_eq!(ss_send_q(port), 4096);
        assert_eq!(ss_unix(path.to_str().unwrap()).1, 4096);

        // And both serve.
        let mut greeting = String::new();
        web.read_to_string(&mut greeting).unwrap();
        assert_eq!(greeting, "hello from fd 3 (web)\n");
        let mut admin = UnixStream::connect(&path).unwrap();
        greeting.clear();
        admin.read_to_string(&mut greeting).unwrap();
        assert_eq!(greeting, "hello from fd 4 (admin)\n");
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
    });
    std::fs::remove_dir_all(dir).unwrap();
}
