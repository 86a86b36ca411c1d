//! Reading the accept queue of any listener: this crate's, std's, tokio's; and errors on
//! sockets that do not listen.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use common::{kernel_backlog, kernel_queued};
use maxlisten::{Error, ListenerBuilder, QueueStats};
use socket2::{Domain, Socket, Type};

/// Waits for the kernel to finish `n` loopback handshakes (instant in practice).
fn wait_queued<S: AsFd>(listener: &S, n: u32) {
    for _ in 0..200 {
        if kernel_queued(listener) == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("kernel never showed {n} queued connections");
}

/// 0 queued, then 3 after three connects, then 2 after one accept; the backlog as TCP_INFO says.
fn check<S: AsFd>(listener: &S, stats: impl Fn() -> QueueStats, accept: impl FnOnce()) {
    let pair = || {
        let s = stats();
        (s.queued, s.backlog)
    };
    let addr = socket2::SockRef::from(listener)
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap();
    let backlog = kernel_backlog(listener);
    assert_eq!(pair(), (0, backlog));
    let _clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_queued(listener, 3);
    assert_eq!(pair(), (3, backlog));
    accept();
    assert_eq!(pair(), (2, backlog));
    assert_eq!(kernel_queued(listener), 2);
}

#[test]
fn counts_on_this_crates_listener() {
    let listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
    check(
        &listener,
        || listener.queue_stats().unwrap(),
        || drop(listener.accept().unwrap()),
    );
    assert_eq!(
        maxlisten::queue_stats(&listener).unwrap(),
        listener.queue_stats().unwrap()
    );
}

#[test]
fn counts_on_a_std_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    check(
        &listener,
        || maxlisten::queue_stats(&listener).unwrap(),
        || drop(listener.accept().unwrap()),
    );
}

#[test]
fn counts_on_a_tokio_listener_and_set_backlog_works_on_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let report = maxlisten::set_backlog(&listener, u32::MAX).unwrap();
        assert_eq!(report.applied(), maxlisten::system_limit());
        assert_eq!(Some(kernel_backlog(&listener)), maxlisten::system_limit());
        let addr = listener.local_addr().unwrap();
        let stats = |l: &tokio::net::TcpListener| {
            let s = maxlisten::queue_stats(l).unwrap();
            (s.queued, s.backlog)
        };
        let backlog = kernel_backlog(&listener);
        assert_eq!(stats(&listener), (0, backlog));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        wait_queued(&listener, 3);
        assert_eq!(stats(&listener), (3, backlog));
        listener.accept().await.unwrap();
        assert_eq!(stats(&listener), (2, backlog));
    });
}

#[test]
fn a_socket_that_never_listened_is_an_error_for_both() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();

    let err = maxlisten::queue_stats(&socket).unwrap_err();
    assert!(matches!(err, Error::NotListening { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    let err = maxlisten::set_backlog(&socket, 5).unwrap_err();
    assert!(matches!(err, Error::NotListening { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // set_backlog did not start it listening.
    assert!(!socket.is_listener().unwrap());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn a_std_unix_listener_is_read_through_sock_diag() {
    let dir = std::env::temp_dir().join(format!("maxlisten-uds-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = std::os::unix::net::UnixListener::bind(&dir).unwrap();
    // std passes -1 on Linux: the limit. No TCP_INFO for AF_UNIX: sock_diag says it.
    let stats = maxlisten::queue_stats(&listener).unwrap();
    assert_eq!(Some(stats.backlog), maxlisten::system_limit());
    assert_eq!((stats.queued, stats.drops), (0, None));
    let _client = std::os::unix::net::UnixStream::connect(&dir).unwrap();
    assert_eq!(maxlisten::queue_stats(&listener).unwrap().queued, 1);
    let report = maxlisten::set_backlog(&listener, 9).unwrap();
    assert_eq!(report.applied(), Some(9));
    assert_eq!(report.source(), maxlisten::BacklogSource::Kernel);
    std::fs::remove_file(&dir).unwrap();
}
