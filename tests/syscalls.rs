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
            "trace=%network,write,ioctl",
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
            ];
            network.iter().any(|p| l.starts_with(p)) || l.contains("--- marker ---")
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
