//! A property test over random builder configurations and random addresses: never a panic;
//! every success has an applied backlog within the limit and every option as set; every failure
//! names the address and has the expected kind.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use maxlisten::{Error, ListenerBuilder};
use proptest::prelude::*;
use socket2::SockRef;

#[derive(Clone, Debug)]
struct Config {
    backlog: Option<u32>,
    reuse_address: Option<bool>,
    reuse_port: Option<bool>,
    only_v6: Option<bool>,
    nonblocking: Option<bool>,
    nodelay: Option<bool>,
    recv: Option<usize>,
    send: Option<usize>,
    ttl: Option<u32>,
    keepalive: Option<u64>,
}

#[derive(Clone, Debug)]
enum Target {
    Addr(&'static str),
    InUse,
    Text(String),
}

fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(i32::MAX as u32),
        Just(u32::MAX),
        0..70_000u32,
        any::<u32>()
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let flags = (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
    );
    let size = prop_oneof![Just(0usize), Just(usize::MAX), 0..(1usize << 22)];
    (
        proptest::option::of(edge_u32()),
        flags,
        proptest::option::of(size.clone()),
        proptest::option::of(size),
        proptest::option::of(prop_oneof![0..300u32, edge_u32()]),
        proptest::option::of(1..7200u64),
    )
        .prop_map(
            |(backlog, (ra, rp, v6, nb, nd), recv, send, ttl, keepalive)| Config {
                backlog,
                reuse_address: ra,
                reuse_port: rp,
                only_v6: v6,
                nonblocking: nb,
                nodelay: nd,
                recv,
                send,
                ttl,
                keepalive,
            },
        )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Addr("127.0.0.1:0")),
        Just(Target::Addr("[::1]:0")),
        Just(Target::Addr("0.0.0.0:0")),
        Just(Target::Addr("[::]:0")),
        Just(Target::Addr("192.0.2.1:0")),
        Just(Target::InUse),
        Just(Target::Text("localhost:0".into())),
        // Text that std rejects before any lookup: no port separator, or a port that is not a
        // number. (Names with a valid port would go to DNS, and tests send nothing off the host.)
        "[a-z0-9. \\[\\]-]{0,24}".prop_map(Target::Text),
        "[a-z0-9.]{0,10}:[a-z ]{1,5}".prop_map(Target::Text),
    ]
}

fn builder(c: &Config) -> ListenerBuilder {
    let mut b = ListenerBuilder::new();
    if let Some(v) = c.backlog {
        b = b.backlog(v);
    }
    if let Some(v) = c.reuse_address {
        b = b.reuse_address(v);
    }
    if let Some(v) = c.reuse_port {
        b = b.reuse_port(v);
    }
    if let Some(v) = c.only_v6 {
        b = b.only_v6(v);
    }
    if let Some(v) = c.nonblocking {
        b = b.nonblocking(v);
    }
    if let Some(v) = c.nodelay {
        b = b.tcp_nodelay(v);
    }
    if let Some(v) = c.recv {
        b = b.recv_buffer_size(v);
    }
    if let Some(v) = c.send {
        b = b.send_buffer_size(v);
    }
    if let Some(v) = c.ttl {
        b = b.ttl(v);
    }
    if let Some(v) = c.keepalive {
        b = b.keepalive(Duration::from_secs(v));
    }
    b
}

fn check_ok(c: &Config, listener: &maxlisten::Listener) {
    let limit = maxlisten::system_limit().unwrap();
    let requested = c.backlog.unwrap_or(maxlisten::DEFAULT_BACKLOG);
    let backlog = listener.backlog();
    let applied = backlog.applied().unwrap();
    assert!(applied <= limit);
    assert_eq!(applied, requested.min(i32::MAX as u32).min(limit));
    assert_eq!(backlog.is_clamped(), applied < requested);
    let s = SockRef::from(listener);
    let addr = listener.local_addr().unwrap();
    assert_eq!(s.reuse_address().unwrap(), c.reuse_address.unwrap_or(true));
    assert_eq!(s.reuse_port().unwrap(), c.reuse_port == Some(true));
    assert_eq!(s.nonblocking().unwrap(), c.nonblocking == Some(true));
    assert_eq!(s.tcp_nodelay().unwrap(), c.nodelay == Some(true));
    if let (Some(v6), true) = (c.only_v6, addr.is_ipv6()) {
        // Linux turns IPV6_V6ONLY on when a specific (not wildcard) IPv6 address is bound.
        assert_eq!(s.only_v6().unwrap(), v6 || !addr.ip().is_unspecified());
    }
    if let Some(ttl) = c.ttl {
        let read = if addr.is_ipv4() {
            s.ttl_v4().unwrap()
        } else {
            s.unicast_hops_v6().unwrap()
        };
        assert_eq!(read, ttl);
    }
    if let Some(secs) = c.keepalive {
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(secs));
    }
    if c.recv.is_some() {
        assert!(s.recv_buffer_size().unwrap() > 0);
    }
}

fn check_err(c: &Config, target: &Target, in_use: SocketAddr, err: &Error) {
    let msg = err.to_string();
    match target {
        Target::Addr(text) => assert!(msg.contains(text), "{msg}"),
        Target::InUse => assert!(msg.contains(&in_use.to_string()), "{msg}"),
        // A resolution error says so (ToSocketAddrs cannot print the text); any later one
        // names the address.
        Target::Text(_) => assert!(
            msg.starts_with("resolve the address to bind: ")
                || err.addr().is_some_and(|a| msg.contains(&a.to_string())),
            "{msg}"
        ),
    }
    // Each cause gets its kind.
    let bad_ttl = c.ttl.is_some_and(|t| !(1..=255).contains(&t));
    let is_v4 = match target {
        Target::Addr(a) => a.parse::<SocketAddr>().unwrap().is_ipv4(),
        Target::InUse => true,
        Target::Text(_) => false,
    };
    if matches!(err, Error::Resolve { .. } | Error::NoAddresses) {
        // Resolution comes first: the options were never looked at.
        assert!(matches!(target, Target::Text(_)), "{msg}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{msg}");
    } else if (c.only_v6.is_some() && is_v4) || bad_ttl {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{msg}");
    } else if matches!(target, Target::InUse) {
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{msg}");
    } else if matches!(target, Target::Addr("192.0.2.1:0")) {
        assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "{msg}");
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_configurations_and_addresses(c in config(), target in target()) {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let in_use = taken.local_addr().unwrap();
        let b = builder(&c);
        let result = match &target {
            Target::Addr(text) => b.bind(*text),
            Target::InUse => b.bind(in_use),
            Target::Text(text) => b.bind(text.as_str()),
        };
        match result {
            Ok(listener) => {
                prop_assert!(!matches!(target, Target::InUse | Target::Addr("192.0.2.1:0")));
                check_ok(&c, &listener);
            }
            Err(err) => check_err(&c, &target, in_use, &err),
        }
    }
}
