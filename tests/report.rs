//! `maxlisten::report` inside private network namespaces, checked against what the kernel and
//! real programs say there: the measured rows against the namespace's limit, two documented
//! rows (Node, Python) against real Node and Python servers' backlogs as `ss` shows them, and
//! the listeners below the limit against a server this test started.

// Linux only: it reads the kernel's own view (ss, /proc) and needs namespaces.
#![cfg(all(target_os = "linux", feature = "report"))]

mod common;

use std::process::Command;

use common::process::{listening, Killed};
use common::{in_netns, own_netns, somaxconn, ss_send_q};
use maxlisten::report::{How, Report, Stack};

/// Starts `program ARGS`, which prints the port it listens on: the server (killed when
/// dropped) and its port.
fn start(program: &str, args: &[&str]) -> (Killed, u16) {
    listening(Command::new(program).args(args))
}

fn row<'a>(stacks: &'a [Stack], name: &str) -> &'a Stack {
    stacks
        .iter()
        .find(|s| s.stack == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

fn check(limit: u32) {
    // Real programs with their own defaults: Python's listen() and Node's listen().
    let python = start(
        "python3",
        &[
            "-c",
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n\
             print(s.getsockname()[1], flush=True)\ntime.sleep(60)",
        ],
    );
    let node = start(
        "node",
        &[
            "-e",
            "require('net').createServer().listen(0, '127.0.0.1', function () \
             { console.log(this.address().port); });",
        ],
    );
    // A server far below the limit, for the survey part.
    let small = start(
        "python3",
        &[
            "-c",
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(3)\n\
             print(s.getsockname()[1], flush=True)\ntime.sleep(60)",
        ],
    );

    let report = Report::build("127.0.0.1:0").unwrap();
    assert_eq!(report.system_limit.value, Some(limit));
    assert_eq!(report.system_limit.setting, "net.core.somaxconn");

    // Measured rows: what the kernel gives each request in this namespace.
    assert!(report.measured.iter().all(|s| s.how == How::Measured));
    assert_eq!(
        row(&report.measured, "maxlisten::bind").applied,
        Some(limit)
    );
    let std_row = row(&report.measured, "std::net::TcpListener::bind");
    assert_eq!(std_row.applied, Some(limit.min(128)));
    assert_eq!(std_row.clamped, Some(limit < 128));
    let tokio_stacks = if cfg!(feature = "tokio") {
        &report.measured
    } else {
        &report.documented
    };
    let tokio_row = row(tokio_stacks, "tokio::net::TcpListener::bind");
    assert_eq!(tokio_row.applied, Some(limit.min(128)));
    if !cfg!(feature = "tokio") {
        assert!(
            tokio_row.note.contains("not measured"),
            "{}",
            tokio_row.note
        );
    }

    // Documented rows, labelled so, and true of the real programs here.
    assert!(report.documented.iter().all(|s| s.how == How::Documented));
    assert_eq!(
        row(&report.documented, "Python socket.listen()").applied,
        Some(ss_send_q(python.1))
    );
    assert_eq!(
        row(&report.documented, "Node.js server.listen").applied,
        Some(ss_send_q(node.1))
    );
    assert_eq!(
        row(&report.documented, "Go net.Listen").applied,
        Some(limit)
    );

    // The listeners of this namespace: each server, with its owner, below the limit where
    // its backlog is.
    let listeners = report.listeners.as_ref().expect("the survey runs here");
    assert_eq!(listeners.total, 3, "{listeners:?}");
    let small_row = listeners
        .below_limit
        .iter()
        .find(|l| l.local == format!("127.0.0.1:{}", small.1))
        .unwrap_or_else(|| panic!("{listeners:?}"));
    assert_eq!(small_row.backlog, 3.min(limit));
    assert!(
        small_row
            .processes
            .contains(&format!("{}/python3", small.0.id())),
        "{small_row:?}"
    );
    assert_eq!(
        listeners.below_limit.len(),
        [3, 128, 511].iter().filter(|&&b| b < limit).count()
    );

    let metrics = report.metrics.as_ref().unwrap();
    assert_eq!(metrics.accept_queue_backlog, limit);
    assert_eq!(metrics.accept_queue_queued, 0);
    assert_eq!(metrics.accept_queue_drops_total, Some(0));

    // JSON: the same figures, measured and documented apart.
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["system_limit"]["value"], limit);
    assert_eq!(json["measured"][0]["stack"], "maxlisten::bind");
    assert!(json["documented"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["how"] == "documented"));
    assert_eq!(json["listeners"]["total"], 3);

    // Text: the documented rows come under their own heading, after the measured ones.
    let text = report.to_text();
    assert!(
        text.contains(&format!("system limit           {limit}\n")),
        "{text}"
    );
    let measured_at = text.find("measured on this machine").unwrap();
    let documented_at = text.find("documented defaults of other stacks").unwrap();
    let std_at = text.find("std::net::TcpListener::bind").unwrap();
    let node_at = text.find("Node.js server.listen").unwrap();
    assert!(measured_at < std_at && std_at < documented_at && documented_at < node_at);
    assert!(text.contains(&format!("127.0.0.1:{}", small.1)), "{text}");
    assert_eq!(text.contains("is low"), limit < 4096, "{text}");
}

#[test]
fn report_follows_the_namespace_limit_and_the_real_programs() {
    if !own_netns("report_follows_the_namespace_limit_and_the_real_programs") {
        return;
    }
    for limit in [16, 300, 4096, 65535] {
        in_netns(limit, || check(limit));
    }
}

#[test]
fn report_at_a_fixed_port_names_it() {
    // In the namespace the test runs in: every measured row is read back. (That the port is
    // bound once is shown with strace in tests/cli.rs.)
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let report = Report::build(addr).unwrap();
    assert_eq!(report.address, addr.to_string());
    for stack in &report.measured {
        assert!(stack.applied.is_some(), "{stack:?}");
    }
    assert_eq!(
        row(&report.measured, "maxlisten::bind").applied,
        Some(somaxconn())
    );
}
