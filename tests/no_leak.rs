//! Failed binds close what they opened. Alone in its own test binary, so that no other test
//! opens descriptors while this one counts them.

// Linux only: it counts descriptors in /proc and expects Linux's errors.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;

use maxlisten::ListenerBuilder;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn failed_binds_leave_the_descriptor_count_unchanged() {
    let taken = maxlisten::bind("127.0.0.1:0").unwrap();
    let in_use = taken.local_addr().unwrap();
    let never_listened = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let empty: &[SocketAddr] = &[];
    let before = open_fds();
    for _ in 0..1000 {
        // Fails at bind (socket made and configured first).
        assert!(maxlisten::bind(in_use).is_err());
        assert!(ListenerBuilder::new()
            .reuse_port(true)
            .tcp_nodelay(true)
            .bind(in_use)
            .is_err());
        // Fails at bind: not an address of this host.
        assert!(maxlisten::bind("192.0.2.1:0").is_err());
        // Several addresses, all failing.
        assert!(maxlisten::bind(&[in_use, "192.0.2.1:0".parse().unwrap()][..]).is_err());
        // Fails before any socket.
        assert!(maxlisten::bind("not an address").is_err());
        assert!(maxlisten::bind(empty).is_err());
        assert!(ListenerBuilder::new()
            .only_v6(true)
            .bind("127.0.0.1:0")
            .is_err());
        assert!(ListenerBuilder::new().ttl(0).bind("127.0.0.1:0").is_err());
        // Fails at a socket option, after the socket was made.
        assert!(ListenerBuilder::new()
            .bind_device("nosuchdev0")
            .bind("127.0.0.1:0")
            .is_err());
        assert!(ListenerBuilder::new()
            .keepalive(std::time::Duration::ZERO)
            .bind("127.0.0.1:0")
            .is_err());
        // Runtime calls on something that does not listen.
        assert!(maxlisten::set_backlog(&never_listened, 5).is_err());
        assert!(maxlisten::queue_stats(&never_listened).is_err());
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
    // And successes close on drop.
    for _ in 0..500 {
        drop(maxlisten::bind("127.0.0.1:0").unwrap());
    }
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked by dropped listeners"
    );
}
