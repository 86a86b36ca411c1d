//! Linux-only options, set through the builder and read back from the kernel.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

use std::io::ErrorKind;
use std::mem;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use maxlisten::{Error, ListenerBuilder};
use socket2::SockRef;

fn tcp_int<S: AsFd>(socket: &S, name: libc::c_int) -> libc::c_int {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    value
}

#[test]
fn tcp_defer_accept_reads_back_on_the_retransmission_schedule() {
    // Whole seconds rounded up, then up to 1, 3, 7, 15, ... (the kernel counts retransmissions).
    for (asked, read) in [(1_000, 1), (3_000, 3), (5_000, 7), (7_000, 7), (2_500, 3)] {
        let listener = ListenerBuilder::new()
            .tcp_defer_accept(Duration::from_millis(asked))
            .bind("127.0.0.1:0")
            .unwrap();
        assert_eq!(
            tcp_int(&listener, libc::TCP_DEFER_ACCEPT),
            read,
            "{asked} ms"
        );
    }
}

#[test]
fn tcp_defer_accept_holds_back_connections_that_send_nothing() {
    use std::io::Write;
    let listener = ListenerBuilder::new()
        .tcp_defer_accept(Duration::from_secs(30))
        .nonblocking(true)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let _idle = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    let mut talker = std::net::TcpStream::connect(addr).unwrap();
    talker.write_all(b"GET /").unwrap();
    for _ in 0..200 {
        if listener.accept().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the connection that sent data was never accepted");
}

#[test]
fn tcp_fastopen_sets_the_queue_length() {
    for queue in [1, 256] {
        let listener = ListenerBuilder::new()
            .tcp_fastopen(queue)
            .bind("127.0.0.1:0")
            .unwrap();
        assert_eq!(tcp_int(&listener, libc::TCP_FASTOPEN), queue as libc::c_int);
    }
}

#[test]
fn bind_device_reads_back_and_a_bad_name_is_an_error_naming_it() {
    let listener = ListenerBuilder::new()
        .bind_device("lo")
        .bind("127.0.0.1:0")
        .unwrap();
    assert_eq!(
        SockRef::from(&listener).device().unwrap().as_deref(),
        Some(&b"lo"[..])
    );
    let err = ListenerBuilder::new()
        .bind_device("nosuchdev0")
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(matches!(err, Error::BindDevice { .. }), "{err:?}");
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    let msg = err.to_string();
    assert!(
        msg.contains("\"nosuchdev0\"") && msg.contains("127.0.0.1:0"),
        "{msg}"
    );
    // Longer than IFNAMSIZ.
    let err = ListenerBuilder::new()
        .bind_device("a-device-name-far-too-long")
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(matches!(err, Error::BindDevice { .. }), "{err:?}");
    assert!(
        err.to_string().contains("a-device-name-far-too-long"),
        "{err}"
    );
}

#[test]
fn freebind_binds_an_address_not_on_this_host() {
    assert!(maxlisten::bind("192.0.2.1:0").is_err());
    let listener = ListenerBuilder::new()
        .freebind(true)
        .bind("192.0.2.1:0")
        .unwrap();
    assert!(SockRef::from(&listener).freebind_v4().unwrap());
    assert_eq!(listener.local_addr().unwrap().ip().to_string(), "192.0.2.1");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = ListenerBuilder::new()
            .freebind(true)
            .bind("[2001:db8::1]:0")
            .unwrap();
        assert!(SockRef::from(&v6).freebind_v6().unwrap());
    }
}

#[test]
fn keepalive_is_inherited_by_accepted_connections() {
    let listener = ListenerBuilder::new()
        .keepalive(Duration::from_secs(42))
        .bind("127.0.0.1:0")
        .unwrap();
    let sock = SockRef::from(&listener);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let accepted = SockRef::from(&stream);
    assert!(accepted.keepalive().unwrap());
    assert_eq!(
        accepted.tcp_keepalive_time().unwrap(),
        Duration::from_secs(42)
    );
}
