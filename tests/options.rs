//! Each builder option, set and read back from the kernel through socket2::SockRef.

use std::net::TcpListener;

use maxlisten::{Listener, ListenerBuilder};
use socket2::SockRef;

type Check = fn(&SockRef<'_>) -> bool;

/// What the kernel makes of a buffer size: Linux doubles it, Windows keeps it.
const BUFFER_FACTOR: usize = if cfg!(target_os = "linux") { 2 } else { 1 };

/// `SO_REUSEPORT` is off (Unix); Windows has no such option.
fn no_reuse_port(s: &SockRef<'_>) -> bool {
    #[cfg(unix)]
    return !s.reuse_port().unwrap() && !s.nonblocking().unwrap();
    #[cfg(windows)]
    return s.local_addr().is_ok();
}

#[test]
fn each_option_reads_back_as_set() {
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    let cases: Vec<(&str, ListenerBuilder, &str, Check)> = vec![
        ("defaults", ListenerBuilder::new(), "127.0.0.1:0", |s| {
            // As std: SO_REUSEADDR on Unix and off on Windows, no SO_REUSEPORT, Nagle on.
            s.reuse_address().unwrap() == cfg!(unix)
                && no_reuse_port(s)
                && !s.tcp_nodelay().unwrap()
        }),
        (
            "reuse_address(false)",
            ListenerBuilder::new().reuse_address(false),
            "127.0.0.1:0",
            |s| !s.reuse_address().unwrap(),
        ),
        (
            "reuse_address(true)",
            ListenerBuilder::new().reuse_address(true),
            "127.0.0.1:0",
            |s| s.reuse_address().unwrap(),
        ),
        #[cfg(unix)]
        (
            "reuse_port(true)",
            ListenerBuilder::new().reuse_port(true),
            "127.0.0.1:0",
            |s| s.reuse_port().unwrap(),
        ),
        #[cfg(unix)]
        (
            "nonblocking(true)",
            ListenerBuilder::new().nonblocking(true),
            "127.0.0.1:0",
            |s| s.nonblocking().unwrap(),
        ),
        (
            "tcp_nodelay(true)",
            ListenerBuilder::new().tcp_nodelay(true),
            "127.0.0.1:0",
            |s| s.tcp_nodelay().unwrap(),
        ),
        // Linux doubles the value it is given (man 7 socket); others keep it.
        (
            "recv_buffer_size",
            ListenerBuilder::new().recv_buffer_size(65536),
            "127.0.0.1:0",
            |s| s.recv_buffer_size().unwrap() == BUFFER_FACTOR * 65536,
        ),
        (
            "send_buffer_size",
            ListenerBuilder::new().send_buffer_size(65536),
            "127.0.0.1:0",
            |s| s.send_buffer_size().unwrap() == BUFFER_FACTOR * 65536,
        ),
        (
            "ttl v4",
            ListenerBuilder::new().ttl(17),
            "127.0.0.1:0",
            |s| s.ttl_v4().unwrap() == 17,
        ),
    ];
    let mut v6_cases: Vec<(&str, ListenerBuilder, &str, Check)> = vec![
        (
            "only_v6(true)",
            ListenerBuilder::new().only_v6(true),
            "[::1]:0",
            |s| s.only_v6().unwrap(),
        ),
        (
            "only_v6(false)",
            ListenerBuilder::new().only_v6(false),
            "[::]:0",
            |s| !s.only_v6().unwrap(),
        ),
        ("ttl v6", ListenerBuilder::new().ttl(42), "[::1]:0", |s| {
            s.unicast_hops_v6().unwrap() == 42
        }),
    ];
    let mut all = cases;
    if ipv6 {
        all.append(&mut v6_cases);
    } else {
        eprintln!("note: no IPv6 loopback here, IPv6 option cases not run");
    }
    for (name, builder, addr, check) in all {
        let listener: Listener = builder.bind(addr).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(check(&SockRef::from(&listener)), "{name} did not read back");
        // Every option leaves the backlog alone.
        assert_eq!(
            listener.backlog().applied(),
            maxlisten::system_limit(),
            "{name}"
        );
    }
}

/// Unix only: `reuse_port` and reading back non-blocking mode do not exist on Windows.
#[cfg(unix)]
#[test]
fn all_options_at_once() {
    let listener = ListenerBuilder::new()
        .backlog(300)
        .reuse_address(true)
        .reuse_port(true)
        .nonblocking(true)
        .tcp_nodelay(true)
        .recv_buffer_size(1 << 17)
        .send_buffer_size(1 << 17)
        .ttl(99)
        .bind("127.0.0.1:0")
        .unwrap();
    let s = SockRef::from(&listener);
    assert!(s.reuse_address().unwrap() && s.reuse_port().unwrap());
    assert!(s.nonblocking().unwrap() && s.tcp_nodelay().unwrap());
    assert_eq!(s.recv_buffer_size().unwrap(), BUFFER_FACTOR << 17);
    assert_eq!(s.ttl_v4().unwrap(), 99);
    assert_eq!(
        listener.backlog().applied(),
        maxlisten::system_limit().map(|l| l.min(300))
    );
}

#[cfg(target_os = "linux")]
#[test]
fn accepted_connections_inherit_nodelay_and_ttl_on_linux() {
    let listener = ListenerBuilder::new()
        .tcp_nodelay(true)
        .ttl(33)
        .bind("127.0.0.1:0")
        .unwrap();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    assert!(stream.nodelay().unwrap());
    assert_eq!(stream.ttl().unwrap(), 33);
}

#[test]
fn into_std_keeps_the_socket_and_the_builder_is_reusable() {
    let builder = ListenerBuilder::new().backlog(9);
    let a: TcpListener = builder.bind("127.0.0.1:0").unwrap().into();
    let b = builder.bind("127.0.0.1:0").unwrap().into_std();
    assert_ne!(a.local_addr().unwrap(), b.local_addr().unwrap());
    let report = maxlisten::set_backlog(&a, 9).unwrap();
    // Windows cannot read it back.
    let readable = maxlisten::system_limit().is_some();
    assert_eq!(report.applied(), readable.then_some(9));
}
