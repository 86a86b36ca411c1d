//! `maxlisten raise --watch` against Python servers in a private network namespace
//! (`net.core.somaxconn` = 1000): a listener there before it starts and one opened later both
//! reach the limit (`ss` agrees), one line each; SIGHUP runs a pass at once; it never lowers a
//! listener above `--backlog`; a listener it cannot raise (another user's, run without
//! privileges) is said once over many passes; SIGTERM and SIGINT end it with status 0.
//! With `--all-namespaces`, in a sandbox of its own (new network, PID and mount namespaces), two
//! "containers" with limits 1234 and 777 are each raised to their own limit.
//! Each runs for any user in a user namespace of its own (the sandboxed one too, see
//! `common::own_sandbox`), except the one that needs a second user (root only: skipped with a
//! message outside CI, a failure with `CI=true`).

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::namespaces::unshared;
use common::process::{as_nobody, listening, python_listen, python_listen_argv, Killed};
use common::{in_netns, needs_root, own_netns, own_sandbox, ss_send_q, ss_send_q_in};

const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");
const LIMIT: u32 = 1000;

/// A Python listener with `backlog`, as `uid` (None: this user); its port.
fn listener(backlog: u32, uid: Option<u32>) -> (Killed, u16) {
    match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ]);
            c.args(python_listen_argv(backlog));
            listening(&mut c)
        }
        None => listening(&mut python_listen(backlog)),
    }
}

/// `maxlisten raise --watch ARGS` (as nobody without privileges if `nobody`), and its stderr
/// lines as they come.
fn watch(args: &[&str], nobody: bool) -> (Killed, Receiver<String>) {
    let mut command = if nobody {
        as_nobody(BIN)
    } else {
        Command::new(BIN)
    };
    let mut child = command
        .arg("raise")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start maxlisten raise --watch");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Killed(child), rx)
}

/// Waits for a line containing every one of `parts`; the lines seen on the way.
fn expect_line(lines: &Receiver<String>, parts: &[&str], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = parts.iter().all(|p| line.contains(p));
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {parts:?} within {within:?}; saw {seen:?}"),
        }
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to end; its exit code.
fn exit_code(child: &mut Killed) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "it did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_raises_old_and_new_listeners_and_stops_on_sigterm() {
    if !own_netns("watch_raises_old_and_new_listeners_and_stops_on_sigterm") {
        return;
    }
    in_netns(LIMIT, || {
        let (_old, old_port) = listener(8, None);
        let (mut w, lines) = watch(&["--watch", "2", "--all-below-limit"], false);
        let seen = expect_line(
            &lines,
            &[
                "raised tcp",
                &format!("127.0.0.1:{old_port}"),
                "backlog 8 -> 1000",
            ],
            Duration::from_secs(10),
        );
        let line = seen.last().unwrap();
        assert!(
            line.contains("python3 fd ") && line.contains(" netns="),
            "{line}"
        );
        assert_eq!(ss_send_q(old_port), LIMIT);

        // Opened after it started: raised within a period.
        let (_new, new_port) = listener(16, None);
        expect_line(
            &lines,
            &[&format!("127.0.0.1:{new_port}"), "backlog 16 -> 1000"],
            Duration::from_secs(6),
        );
        assert_eq!(ss_send_q(new_port), LIMIT);

        signal(&w.0, "TERM");
        assert_eq!(exit_code(&mut w), Some(0), "SIGTERM must end it with 0");
        // Nothing was said twice about the listeners it raised.
        let rest: Vec<String> = lines.try_iter().collect();
        assert!(!rest.iter().any(|l| l.starts_with("raised")), "{rest:?}");
    });
}

#[test]
fn sighup_runs_a_pass_at_once_and_sigint_stops_it() {
    if !own_netns("sighup_runs_a_pass_at_once_and_sigint_stops_it") {
        return;
    }
    in_netns(LIMIT, || {
        // A period far longer than the test: only SIGHUP can make the second pass.
        let (mut w, lines) = watch(&["--watch", "3600", "--all-below-limit"], false);
        expect_line(&lines, &["a pass every 3600s"], Duration::from_secs(10));
        // Let the first pass (at start) go by with nothing to raise.
        std::thread::sleep(Duration::from_millis(500));
        let (_late, port) = listener(8, None);
        assert_eq!(ss_send_q(port), 8);
        signal(&w.0, "HUP");
        expect_line(
            &lines,
            &[&format!("127.0.0.1:{port}"), "backlog 8 -> 1000"],
            Duration::from_secs(10),
        );
        assert_eq!(ss_send_q(port), LIMIT);
        signal(&w.0, "INT");
        assert_eq!(exit_code(&mut w), Some(0), "SIGINT must end it with 0");
    });
}

#[test]
fn watch_never_lowers() {
    if !own_netns("watch_never_lowers") {
        return;
    }
    in_netns(LIMIT, || {
        let (_high, high) = listener(500, None);
        let (_low, low) = listener(50, None);
        let (mut w, lines) = watch(
            &["--watch", "1", "--all-below-limit", "--backlog", "100"],
            false,
        );
        expect_line(
            &lines,
            &[&format!("127.0.0.1:{low}"), "backlog 50 -> 100"],
            Duration::from_secs(10),
        );
        // Several more passes: the one above --backlog is never touched.
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(ss_send_q(high), 500);
        assert_eq!(ss_send_q(low), 100);
        signal(&w.0, "TERM");
        assert_eq!(exit_code(&mut w), Some(0));
        let said: Vec<String> = lines.try_iter().collect();
        assert!(
            !said
                .iter()
                .any(|l| l.contains(&format!("127.0.0.1:{high}"))),
            "{said:?}"
        );
    });
}

#[test]
fn a_listener_it_cannot_raise_is_said_once() {
    if !needs_root(
        "a_listener_it_cannot_raise_is_said_once",
        "needs root: another user's server, the watch run as a second user (nobody)",
    ) {
        return;
    }
    in_netns(LIMIT, || {
        // Another user's server, and the watch run as nobody without privileges.
        let (_theirs, port) = listener(8, Some(4321));
        let (mut w, lines) = watch(&["--watch", "1", "--port", &port.to_string()], true);
        expect_line(
            &lines,
            &[
                "cannot raise tcp",
                &format!("127.0.0.1:{port}"),
                "backlog 8",
            ],
            Duration::from_secs(10),
        );
        // Four more passes.
        std::thread::sleep(Duration::from_millis(4500));
        signal(&w.0, "TERM");
        assert_eq!(exit_code(&mut w), Some(0));
        let again: Vec<String> = lines
            .try_iter()
            .filter(|l| l.contains(&format!("127.0.0.1:{port}")))
            .collect();
        assert!(again.is_empty(), "said again: {again:?}");
        assert_eq!(ss_send_q(port), 8, "nothing was changed");
    });
}

#[test]
fn watch_needs_a_selector_and_a_period() {
    for (args, code) in [
        (&["--watch", "5"][..], 2),
        (&["--watch", "0", "--all-below-limit"], 2),
        (&["--watch", "5", "--all-below-limit", "--dry-run"], 2),
    ] {
        let out = Command::new(BIN).arg("raise").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says nothing");
    }
}

#[test]
fn watch_all_namespaces_raises_each_to_its_own_limit() {
    const TEST: &str = "watch_all_namespaces_raises_each_to_its_own_limit";
    if !own_sandbox(TEST) {
        return;
    }
    // Two "containers": Python in network namespaces of their own, limits 1234 and 777.
    let mut pythons = Vec::new();
    for limit in [1234, 777] {
        let (child, port) = listening(&mut unshared(Some(limit), &python_listen_argv(8)));
        pythons.push((child, port, limit));
    }
    let (mut w, lines) = watch(
        &["--watch", "1", "--all-namespaces", "--all-below-limit"],
        false,
    );
    // Both raised, in whichever order the pass found them.
    let mut waiting: Vec<(String, String)> = pythons
        .iter()
        .map(|(_, port, limit)| {
            (
                format!("127.0.0.1:{port} "),
                format!("backlog 8 -> {limit}"),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiting.is_empty() {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("not raised within 10 s: {waiting:?}"));
        waiting.retain(|(local, after)| {
            !(line.starts_with("raised")
                && line.contains(local.as_str())
                && line.contains(after.as_str()))
        });
    }
    for (python, port, limit) in &pythons {
        let netns = format!("/proc/{}/ns/net", python.id());
        assert_eq!(ss_send_q_in(Some(&netns), *port), *limit);
    }
    // Two more passes: nothing more to say.
    std::thread::sleep(Duration::from_millis(2500));
    signal(&w.0, "TERM");
    assert_eq!(exit_code(&mut w), Some(0));
    let rest: Vec<String> = lines
        .try_iter()
        .filter(|l| l.starts_with("raised"))
        .collect();
    assert!(rest.is_empty(), "{rest:?}");
}
