//! Bad input and failures: each error has the right kind, names the step and the address, and
//! survives conversion to io::Error.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use maxlisten::{Error, ListenerBuilder};

#[cfg(target_os = "linux")]
mod common;

#[test]
fn port_in_use() {
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut builders = vec![ListenerBuilder::new()];
    if cfg!(unix) {
        builders.push(ListenerBuilder::new().reuse_port(true));
    }
    for builder in builders {
        let err = builder.bind(addr).unwrap_err();
        assert!(matches!(err, Error::Bind { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert_eq!(err.addr().and_then(|a| a.as_socket_addr()), Some(addr));
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("bind {addr}: ")), "{msg}");
        // The OS error is in the message (Wine has no texts for WinSock errors, only codes).
        let os = std::net::TcpListener::bind(addr).unwrap_err().to_string();
        assert!(msg.ends_with(&os), "the OS error is in the message: {msg}");
        assert_eq!(
            err.io_error().map(io::Error::kind),
            Some(ErrorKind::AddrInUse)
        );
    }
}

/// Every message of an error chain, walked through `source()` as `anyhow`'s `{:#}` and
/// `eyre` do.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut links = vec![err.to_string()];
    let mut next = err.source();
    while let Some(cause) = next {
        links.push(cause.to_string());
        next = cause.source();
    }
    links
}

/// Each cause once: the OS error is in the message, so the chain does not repeat it; and the
/// drop-ins' io::Error still names the step, the address and the OS error.
#[test]
fn an_error_chain_names_each_cause_once() {
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let os = std::net::TcpListener::bind(addr).unwrap_err().to_string();
    let count = |links: &[String]| links.iter().map(|l| l.matches(&os).count()).sum::<usize>();

    let err = ListenerBuilder::new().bind(addr).unwrap_err();
    let links = chain(&err);
    assert_eq!(
        count(&links),
        1,
        "the OS error repeats in the chain: {links:?}"
    );
    assert_eq!(links, [format!("bind {addr}: {os}")]);

    let io_err: io::Error = maxlisten::bind(addr).unwrap_err();
    let links = chain(&io_err);
    assert_eq!(
        count(&links),
        1,
        "the OS error repeats in the chain: {links:?}"
    );
    let msg = io_err.to_string();
    assert!(msg.starts_with("bind "), "the step: {msg}");
    assert!(msg.contains(&addr.to_string()), "the address: {msg}");
    assert!(msg.ends_with(&os), "the OS error: {msg}");

    // A custom OS-level error that wraps another: that one is the next link, once.
    let inner = io::Error::other("the deepest cause");
    let wrapped = io::Error::new(ErrorKind::AddrInUse, Wrapper(inner));
    let err = Error::Bind {
        addr: maxlisten::Address::Inet(addr),
        source: wrapped,
    };
    let links = chain(&err);
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(
        links
            .iter()
            .filter(|l| l.contains("the deepest cause"))
            .count(),
        1,
        "{links:?}"
    );
}

#[derive(Debug)]
struct Wrapper(io::Error);

impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrapper")
    }
}

impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn address_not_on_this_host() {
    let err = ListenerBuilder::new().bind("192.0.2.1:0").unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    assert!(err.to_string().contains("192.0.2.1:0"), "{err}");
}

/// Linux only: it resolves inside a private network namespace, so no DNS query leaves the host.
#[cfg(target_os = "linux")]
#[test]
fn unresolvable_name() {
    let check = || {
        let err = ListenerBuilder::new()
            .bind("no-such-host.invalid:80")
            .unwrap_err();
        assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
        // std's resolver error, behind the step.
        let std_err = std::net::TcpListener::bind("no-such-host.invalid:80").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("resolve the address to bind: {std_err}")
        );
        assert_eq!(err.kind(), std_err.kind());
        assert!(err.addr().is_none());
    };
    // Resolve inside a private network namespace, so that the DNS query never leaves the
    // machine (for any user: see own_netns).
    if common::own_netns("unresolvable_name") {
        common::in_netns(4096, check);
    }
}

#[test]
fn text_that_is_not_an_address() {
    // getaddrinfo("") fails on Linux; Windows resolves it to this host's addresses.
    let empty_host = if cfg!(windows) { None } else { Some(":80") };
    let texts = ["not an address", "127.0.0.1", "127.0.0.1:99999", ""];
    for text in texts.into_iter().chain(empty_host) {
        let err = ListenerBuilder::new().bind(text).unwrap_err();
        assert!(matches!(err, Error::Resolve { .. }), "{text:?}: {err:?}");
        assert!(
            err.to_string().starts_with("resolve the address to bind: "),
            "{err}"
        );
    }
    let err = ListenerBuilder::new().bind("127.0.0.1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn empty_address_list() {
    let none: &[SocketAddr] = &[];
    let err = ListenerBuilder::new().bind(none).unwrap_err();
    assert!(matches!(err, Error::NoAddresses), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no socket addresses"), "{err}");
}

#[test]
fn every_address_failing_names_each() {
    let a = maxlisten::bind("127.0.0.1:0").unwrap();
    let b = maxlisten::bind("127.0.0.1:0").unwrap();
    let addrs = [
        a.local_addr().unwrap(),
        "192.0.2.1:0".parse().unwrap(),
        b.local_addr().unwrap(),
    ];
    let err = ListenerBuilder::new().bind(&addrs[..]).unwrap_err();
    let Error::AllAddressesFailed { errors } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 3);
    let kinds: Vec<_> = errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::AddrInUse,
            ErrorKind::AddrNotAvailable,
            ErrorKind::AddrInUse
        ]
    );
    // The kind is the last one's, as std.
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let msg = err.to_string();
    for addr in &addrs {
        assert!(msg.contains(&addr.to_string()), "{addr} missing from {msg}");
    }
}

#[test]
fn first_address_that_binds_wins() {
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let addrs = [taken.local_addr().unwrap(), "127.0.0.1:0".parse().unwrap()];
    let listener = maxlisten::bind(&addrs[..]).unwrap();
    assert_ne!(listener.local_addr().unwrap(), addrs[0]);
}

#[test]
fn converts_to_io_error_keeping_kind_and_context() {
    fn bind_io(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        let listener = maxlisten::bind(addr)?;
        Ok(listener)
    }
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = bind_io(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // The one documented difference from std: the outer error has no OS code...
    assert_eq!(err.raw_os_error(), None);
    let inner = err.into_inner().unwrap().downcast::<Error>().unwrap();
    assert_eq!(inner.addr().and_then(|a| a.as_socket_addr()), Some(addr));
    // ... the inner one has it: std's code for the same failure.
    let std_err = std::net::TcpListener::bind(addr).unwrap_err();
    assert!(std_err.raw_os_error().is_some());
    assert_eq!(inner.raw_os_error(), std_err.raw_os_error());
}

#[test]
fn only_v6_on_ipv4_is_invalid_input_before_any_socket() {
    let err = ListenerBuilder::new()
        .only_v6(true)
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SetOption {
                option: "IPV6_V6ONLY",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("127.0.0.1:0"), "{err}");
}

#[test]
fn ttl_outside_1_to_255_is_invalid_input() {
    for ttl in [0, 256, u32::MAX] {
        let err = ListenerBuilder::new()
            .ttl(ttl)
            .bind("127.0.0.1:0")
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SetOption {
                    option: "IP_TTL",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(&ttl.to_string()), "{err}");
    }
    for ttl in [1, 255] {
        ListenerBuilder::new().ttl(ttl).bind("127.0.0.1:0").unwrap();
    }
}

#[test]
fn extreme_buffer_sizes_are_defined() {
    // Unix: 0 gives the kernel's minimum; Windows: 0 means no buffer. usize::MAX gives the
    // kernel's maximum. Neither fails nor panics.
    for bytes in [0, usize::MAX] {
        let listener = ListenerBuilder::new()
            .recv_buffer_size(bytes)
            .send_buffer_size(bytes)
            .bind("127.0.0.1:0")
            .unwrap();
        let sock = socket2::SockRef::from(&listener);
        if cfg!(unix) || bytes > 0 {
            assert!(sock.recv_buffer_size().unwrap() > 0);
            assert!(sock.send_buffer_size().unwrap() > 0);
        }
    }
    let small = ListenerBuilder::new()
        .recv_buffer_size(0)
        .bind("127.0.0.1:0")
        .unwrap();
    let big = ListenerBuilder::new()
        .recv_buffer_size(usize::MAX)
        .bind("127.0.0.1:0")
        .unwrap();
    assert!(
        socket2::SockRef::from(&small).recv_buffer_size().unwrap()
            < socket2::SockRef::from(&big).recv_buffer_size().unwrap()
    );
}

/// On every platform, including those that cannot read the queue (Windows, OpenBSD, NetBSD), a
/// socket that does not listen is `NotListening`, and `listen` is not called on it.
#[test]
fn a_socket_that_does_not_listen_is_not_listening_on_every_platform() {
    use socket2::{Domain, Socket, Type};

    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let err = maxlisten::queue_stats(&socket).unwrap_err();
    assert!(matches!(err, Error::NotListening { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = maxlisten::set_backlog(&socket, 5).unwrap_err();
    assert!(matches!(err, Error::NotListening { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // Still not listening: a connect is refused.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}
