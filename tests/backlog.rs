//! The backlog the kernel applies, on the host's network namespace (no root needed): checked
//! against `TCP_INFO` read by the test itself and against `ss`.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

use common::{kernel_backlog, somaxconn, ss_send_q};
use maxlisten::{BacklogSource, ListenerBuilder, DEFAULT_BACKLOG};

#[test]
fn default_backlog_is_the_system_limit_on_ipv4_ipv6_and_names() {
    let limit = somaxconn();
    let mut addrs = vec!["127.0.0.1:0", "localhost:0"];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        addrs.push("[::1]:0");
    } else {
        eprintln!("note: no IPv6 loopback on this host, IPv6 case not run");
    }
    for addr in addrs {
        let listener = ListenerBuilder::new().bind(addr).unwrap();
        let backlog = listener.backlog();
        assert_eq!(backlog.requested(), DEFAULT_BACKLOG, "{addr}");
        assert_eq!(backlog.applied(), Some(limit), "{addr}");
        assert_eq!(backlog.source(), BacklogSource::Kernel, "{addr}");
        assert!(backlog.is_clamped(), "{addr}");
        assert_eq!(kernel_backlog(&listener), limit, "{addr}");
        assert_eq!(maxlisten::system_limit(), Some(limit));
    }
}

#[test]
fn drop_in_bind_applies_the_limit_where_std_applies_128() {
    let limit = somaxconn();
    let ours = maxlisten::bind("127.0.0.1:0").unwrap();
    let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(kernel_backlog(&ours), limit);
    assert_eq!(kernel_backlog(&std), limit.min(128));
    // ss reads the same numbers through sock_diag, independently of TCP_INFO.
    assert_eq!(ss_send_q(ours.local_addr().unwrap().port()), limit);
    assert_eq!(ss_send_q(std.local_addr().unwrap().port()), limit.min(128));
}

#[test]
fn small_explicit_backlogs_are_applied_exactly() {
    for requested in [0, 1, 7] {
        let listener = ListenerBuilder::new()
            .backlog(requested)
            .bind("127.0.0.1:0")
            .unwrap();
        let backlog = listener.backlog();
        assert_eq!(backlog.applied(), Some(requested));
        assert_eq!(kernel_backlog(&listener), requested);
        assert!(!backlog.is_clamped());
        assert_eq!(
            backlog.to_string(),
            format!("{requested} (as requested; reported by the kernel)")
        );
    }
}

#[test]
fn backlogs_above_the_limit_are_clamped_without_panic() {
    let limit = somaxconn();
    for requested in [limit + 1, i32::MAX as u32, i32::MAX as u32 + 1, u32::MAX] {
        let listener = ListenerBuilder::new()
            .backlog(requested)
            .bind("127.0.0.1:0")
            .unwrap();
        let backlog = listener.backlog();
        assert_eq!(backlog.requested(), requested);
        assert_eq!(backlog.applied(), Some(limit));
        assert_eq!(kernel_backlog(&listener), limit);
        assert!(backlog.is_clamped());
        assert_eq!(
            backlog.to_string(),
            format!("{limit} (requested {requested}, capped by the system limit; reported by the kernel)")
        );
    }
}

#[test]
fn backlog_is_read_when_asked_not_cached() {
    let mut listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
    // Changed behind the Listener's back, through the std listener it exposes.
    maxlisten::set_backlog(listener.as_std(), 3).unwrap();
    assert_eq!(listener.backlog().applied(), Some(3));
    assert_eq!(kernel_backlog(&listener), 3);
    // refresh_backlog applies the Listener's own request again.
    let refreshed = listener.refresh_backlog().unwrap();
    assert_eq!(refreshed.applied(), Some(somaxconn()));
    assert_eq!(kernel_backlog(&listener), somaxconn());
}
