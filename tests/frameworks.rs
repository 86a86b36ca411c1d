//! The framework examples (axum, hyper, actix-web, smol) end up with the system limit as their
//! backlog: each is started in a private network namespace with `net.core.somaxconn` = 3000,
//! prints its backlog, `ss` must show the same, and `curl` gets one response before the example
//! exits by itself. Needs root: skipped with a message outside CI, a failure with `CI=true`.
//!
//! The examples are the binaries `cargo test` builds next to this test's own.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{in_netns, own_netns, ss_send_q};

const LIMIT: u32 = 3000;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/frameworks-<hash> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Kills the example if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one example in a namespace at `LIMIT` and checks its backlog, `ss`, and one request.
fn serves_once_with_the_limit(name: &str, greeting: &str) {
    if !own_netns(&format!("{name} example")) {
        return;
    }
    let path = example(name);
    in_netns(LIMIT, || {
        let mut child = Running(
            Command::new(&path)
                .args(["127.0.0.1:0", "--once"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", path.display())),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name} printed nothing"));
        // "<name> listening on 127.0.0.1:PORT, backlog N"
        let (_, rest) = line.split_once(" on ").unwrap_or_else(|| panic!("{line}"));
        let (addr, backlog) = rest.trim().split_once(", backlog ").unwrap();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(backlog, LIMIT.to_string(), "{name}: {line}");
        assert_eq!(ss_send_q(port), LIMIT, "{name}: ss disagrees");

        // A client this crate did not write.
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", &format!("http://{addr}/")])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{name}: curl failed: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), greeting);

        // --once: the example exits by itself, successfully.
        let mut status = None;
        for _ in 0..200 {
            if let Some(s) = child.0.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = status.unwrap_or_else(|| panic!("{name} did not exit after one request"));
        assert!(status.success(), "{name}: {status}");
    });
}

#[cfg(feature = "tokio")]
#[test]
fn axum_serves_with_the_system_limit() {
    serves_once_with_the_limit("axum", "hello from axum\n");
}

#[cfg(feature = "tokio")]
#[test]
fn hyper_serves_with_the_system_limit() {
    serves_once_with_the_limit("hyper", "hello from hyper\n");
}

#[test]
fn actix_web_serves_with_the_system_limit() {
    serves_once_with_the_limit("actix", "hello from actix-web\n");
}

#[test]
fn smol_serves_with_the_system_limit() {
    serves_once_with_the_limit("smol", "hello from smol\n");
}
