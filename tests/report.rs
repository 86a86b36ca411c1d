//! The report example, run in-process inside private network namespaces: its figures follow
//! the namespace's limit and its JSON parses.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

#[allow(dead_code)]
#[path = "../examples/report.rs"]
mod report;

use common::{in_netns, require_root};

fn check(limit: u32) {
    let built = report::build("127.0.0.1:0").unwrap();
    assert_eq!(built.system_limit.value, Some(limit));
    let json: serde_json::Value = serde_json::to_string(&built)
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(json["system_limit"]["value"], limit);
    assert_eq!(json["system_limit"]["setting"], "net.core.somaxconn");
    let stack = |name: &str| {
        json["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stack"] == name)
            .unwrap_or_else(|| panic!("no row for {name}"))
            .clone()
    };
    assert_eq!(stack("maxlisten::bind")["applied"], limit);
    assert_eq!(stack("maxlisten::bind")["how"], "measured");
    assert_eq!(
        stack("std::net::TcpListener::bind")["applied"],
        limit.min(128)
    );
    assert_eq!(
        stack("tokio::net::TcpListener::bind")["applied"],
        limit.min(128)
    );
    assert_eq!(stack("Node.js server.listen")["applied"], limit.min(511));
    assert_eq!(stack("Node.js server.listen")["clamped"], limit < 511);
    assert_eq!(stack("Go net.Listen")["applied"], limit);
    assert_eq!(
        stack("actix-web HttpServer::bind")["applied"],
        limit.min(1024)
    );
    assert_eq!(
        stack("actix-server ServerBuilder")["applied"],
        limit.min(2048)
    );
    let metrics = &json["metrics"];
    assert_eq!(metrics["accept_queue_backlog"], limit);
    assert_eq!(metrics["accept_queue_queued"], 0);
    assert_eq!(metrics["accept_queue_drops_total"], 0);
    let text = report::render_text(&built);
    assert!(
        text.contains(&format!("system limit           {limit}\n")),
        "{text}"
    );
    assert_eq!(text.contains("is low"), limit < 4096, "{text}");
}

#[test]
fn report_follows_the_namespace_limit() {
    if !require_root("report_follows_the_namespace_limit") {
        return;
    }
    for limit in [16, 300, 4096, 65535] {
        in_netns(limit, || check(limit));
    }
}

#[test]
fn report_on_the_host() {
    check(common::somaxconn());
}
