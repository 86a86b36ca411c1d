//! `maxlisten::bind` makes the same system calls as `std::net::TcpListener::bind`, with only the
//! backlog changed; `backlog()` and `queue_stats()` are one `getsockopt` each. Checked with
//! strace on a child run of this test binary.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

use std::process::Command;

const CHILD: &str = "MAXLISTEN_SYSCALLS_CHILD";

/// In the child: does one thing, so that strace sees only its system calls. Ignored in a normal
/// run; the tests below run it with `--ignored` under strace.
#[test]
#[ignore = "the body of a child process, run by the other tests"]
fn child() {
    let Ok(what) = std::env::var(CHILD) else {
        return; // not the child: nothing to do
    };
    let addr = "127.0.0.1:0";
    match what.as_str() {
        "std" => drop(std::net::TcpListener::bind(addr).unwrap()),
        "maxlisten" => drop(maxlisten::bind(addr).unwrap()),
        "builder" => drop(maxlisten::ListenerBuilder::new().bind(addr).unwrap()),
        #[cfg(feature = "tokio")]
        "tokio" | "maxlisten-tokio" | "bind_tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            println!("--- marker ---"); // after the runtime's own set-up
            let listener = rt.block_on(async {
                match what.as_str() {
                    "tokio" => tokio::net::TcpListener::bind(addr).await,
                    "maxlisten-tokio" => maxlisten::tokio::bind(addr).await,
                    _ => Ok(maxlisten::ListenerBuilder::new()
                        .bind_tokio(addr)
                        .await
                        .unwrap()),
                }
            });
            drop(listener.unwrap());
        }
        "backlog" | "queue_stats" | "set_backlog" | "refresh_backlog" => {
            let mut listener = maxlisten::ListenerBuilder::new().bind(addr).unwrap();
            println!("--- marker ---"); // a write(2) between the bind and the reading
            match what.as_str() {
                "backlog" => {
                    std::hint::black_box(listener.backlog());
                }
                "queue_stats" => {
                    std::hint::black_box(listener.queue_stats().unwrap());
                }
                "set_backlog" => {
                    maxlisten::set_backlog(&listener, 64).unwrap();
                }
                _ => {
                    listener.refresh_backlog().unwrap();
                }
            }
        }
        other => panic!("unknown {other}"),
    }
}

/// The network system calls of one child run, with numbers that vary (ports, fds) masked.
fn trace(what: &str) -> Option<Vec<String>> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=%network,write,ioctl,fcntl",
            "-e",
            "signal=none",
        ])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, what)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "strace is needed in CI: {e}"
            );
            eprintln!("SKIPPED: strace not available ({e})");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    let calls = stderr
        .lines()
        .map(|l| match l.find("] ") {
            Some(i) if l.starts_with("[pid") => &l[i + 2..],
            _ => l,
        })
        .filter(|l| {
            let network = [
                "socket(",
                "setsockopt(",
                "getsockopt(",
                "bind(",
                "listen(",
                "ioctl(",
                // The file-status flags (non-blocking mode); not F_GETFD, which std's exit uses.
                "fcntl(#, F_GETFL",
                "fcntl(#, F_SETFL",
            ];
            let masked = l.replace(|c: char| c.is_ascii_digit(), "#");
            network.iter().any(|p| masked.starts_with(p)) || l.contains("--- marker ---")
        })
        // Mask descriptors, ports and results.
        .map(|l| {
            l.split(" = ")
                .next()
                .unwrap()
                .trim()
                .replace(|c: char| c.is_ascii_digit(), "#")
        })
        .collect();
    Some(calls)
}

#[test]
fn maxlisten_bind_makes_the_same_calls_as_std_but_the_backlog() {
    let Some(std) = trace("std") else { return };
    let ours = trace("maxlisten").unwrap();
    let builder = trace("builder").unwrap();
    eprintln!("std:       {std:#?}\nmaxlisten: {ours:#?}");
    assert!(std.iter().any(|l| l.starts_with("listen(")), "{std:?}");
    // Everything equal but the listen() line, which differs only in its backlog.
    assert_eq!(std.len(), ours.len(), "std {std:?}\nmaxlisten {ours:?}");
    for (a, b) in std.iter().zip(&ours) {
        if a.starts_with("listen(") {
            assert_eq!(a, "listen(#, ###)"); // 128
            assert_eq!(b, "listen(#, ##########)"); // 2147483647
        } else {
            assert_eq!(a, b);
        }
    }
    assert_eq!(ours, builder);
}

/// `maxlisten::tokio::bind` (and `bind_tokio`) make tokio's calls: the socket is non-blocking
/// from the `socket` call on, with no `fcntl` after it; only the backlog differs.
#[cfg(feature = "tokio")]
#[test]
fn tokio_dropin_makes_the_same_calls_as_tokio_but_the_backlog() {
    let after_marker = |calls: Vec<String>| -> Vec<String> {
        let at = calls
            .iter()
            .position(|l| l.contains("--- marker ---"))
            .expect("marker");
        calls[at + 1..].to_vec()
    };
    let Some(theirs) = trace("tokio") else { return };
    let theirs = after_marker(theirs);
    let ours = after_marker(trace("maxlisten-tokio").unwrap());
    let built = after_marker(trace("bind_tokio").unwrap());
    eprintln!("tokio:     {theirs:#?}\nmaxlisten: {ours:#?}");
    assert!(
        theirs
            .iter()
            .any(|l| l.starts_with("socket(") && l.contains("SOCK_NONBLOCK")),
        "{theirs:?}"
    );
    // No O_NONBLOCK set after the socket call. tokio's `from_std` reads the flags once in debug
    // builds (its check that the socket is non-blocking): that one F_GETFL is tokio's.
    assert!(
        !ours.iter().any(|l| l.starts_with("fcntl(#, F_SETFL")),
        "{ours:?}"
    );
    let getfl = |calls: &[String]| {
        calls
            .iter()
            .filter(|l| l.starts_with("fcntl(#, F_GETFL"))
            .count()
    };
    assert!(
        getfl(&ours) <= usize::from(cfg!(debug_assertions)),
        "{ours:?}"
    );
    let drop_getfl = |calls: Vec<String>| -> Vec<String> {
        calls
            .into_iter()
            .filter(|l| !l.starts_with("fcntl(#, F_GETFL"))
            .collect()
    };
    let (theirs, ours, built) = (drop_getfl(theirs), drop_getfl(ours), drop_getfl(built));
    assert_eq!(
        theirs.len(),
        ours.len(),
        "tokio {theirs:?}\nmaxlisten {ours:?}"
    );
    for (a, b) in theirs.iter().zip(&ours) {
        if a.starts_with("listen(") {
            assert_eq!(a, "listen(#, ###)"); // 128
            assert_eq!(b, "listen(#, ##########)"); // 2147483647
        } else {
            assert_eq!(a, b);
        }
    }
    assert_eq!(ours, built);
}

#[test]
fn readings_and_relistens_make_the_documented_calls() {
    const TCP_INFO: &str = "getsockopt(#, SOL_TCP, TCP_INFO";
    let cases: [(&str, &[&str]); 4] = [
        // One getsockopt for the backlog; a second for the drops.
        ("backlog", &[TCP_INFO]),
        (
            "queue_stats",
            &[TCP_INFO, "getsockopt(#, SOL_SOCKET, SO_MEMINFO"],
        ),
        // On any socket: is it listening, listen, read back.
        (
            "set_backlog",
            &[
                "getsockopt(#, SOL_SOCKET, SO_ACCEPTCONN",
                "listen(#, ##)",
                TCP_INFO,
            ],
        ),
        // On a Listener, known to listen: listen, read back.
        ("refresh_backlog", &["listen(#, ##########)", TCP_INFO]),
    ];
    for (what, expected) in cases {
        let Some(calls) = trace(what) else { return };
        let marker = calls
            .iter()
            .position(|l| l.contains("--- marker ---"))
            .expect("marker");
        let after = &calls[marker + 1..];
        assert_eq!(after.len(), expected.len(), "{what}: {after:?}");
        for (call, prefix) in after.iter().zip(expected) {
            assert!(call.starts_with(prefix), "{what}: {after:?}");
        }
    }
}
