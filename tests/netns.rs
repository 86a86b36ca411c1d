//! Behaviour that depends on the system limit, in private network namespaces where the test
//! sets `net.core.somaxconn` itself. Runs for any user: as root on a thread, otherwise in a user
//! namespace of its own (`common::own_netns`).

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

use std::net::TcpListener;

use common::{
    fill_queue, in_netns, kernel_backlog, kernel_queued, own_netns, set_somaxconn, ss_send_q,
};
use maxlisten::{BacklogSource, ListenerBuilder};

#[test]
fn reports_exactly_the_namespace_limit() {
    if !own_netns("reports_exactly_the_namespace_limit") {
        return;
    }
    for limit in [16, 4096, 65535] {
        in_netns(limit, || {
            assert_eq!(maxlisten::system_limit(), Some(limit));
            let listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
            let backlog = listener.backlog();
            assert_eq!(backlog.applied(), Some(limit), "limit {limit}");
            assert_eq!(backlog.source(), BacklogSource::Kernel);
            assert!(backlog.is_clamped());
            assert_eq!(kernel_backlog(&listener), limit);
            assert_eq!(ss_send_q(listener.local_addr().unwrap().port()), limit);
            // The drop-in too.
            let plain = maxlisten::bind("127.0.0.1:0").unwrap();
            assert_eq!(kernel_backlog(&plain), limit);
        });
    }
}

#[test]
fn a_listener_that_never_accepts_holds_limit_plus_one_and_std_holds_129_at_most() {
    if !own_netns("a_listener_that_never_accepts_holds_limit_plus_one_and_std_holds_129_at_most") {
        return;
    }
    for limit in [16u32, 300] {
        in_netns(limit, || {
            let attempts = limit as usize + 40;
            let ours = maxlisten::bind("127.0.0.1:0").unwrap();
            let (_clients, completed) = fill_queue(ours.local_addr().unwrap(), attempts);
            assert_eq!(completed, limit as usize + 1, "maxlisten at limit {limit}");
            assert_eq!(kernel_queued(&ours), limit + 1);

            let std = TcpListener::bind("127.0.0.1:0").unwrap();
            let (_clients, completed) = fill_queue(std.local_addr().unwrap(), attempts);
            let expected = limit.min(128) + 1;
            assert_eq!(completed, expected as usize, "std at limit {limit}");
            assert_eq!(kernel_queued(&std), expected);
        });
    }
}

#[test]
fn a_raised_limit_takes_effect_on_refresh_backlog() {
    if !own_netns("a_raised_limit_takes_effect_on_refresh_backlog") {
        return;
    }
    let limit = 200;
    in_netns(limit, || {
        let mut listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
        assert_eq!(kernel_backlog(&listener), limit);
        set_somaxconn(2 * limit);
        assert_eq!(maxlisten::system_limit(), Some(2 * limit));
        // The kernel took the limit at listen() time: still the old one.
        assert_eq!(kernel_backlog(&listener), limit);
        assert_eq!(listener.backlog().applied(), Some(limit));
        let refreshed = listener.refresh_backlog().unwrap();
        assert_eq!(refreshed.applied(), Some(2 * limit));
        assert_eq!(kernel_backlog(&listener), 2 * limit);
        let five = listener.set_backlog(5).unwrap();
        assert_eq!((five.requested(), five.applied()), (5, Some(5)));
        assert_eq!(kernel_backlog(&listener), 5);
        // refresh now re-applies 5, the last request.
        assert_eq!(listener.refresh_backlog().unwrap().applied(), Some(5));
    });
}

#[test]
fn system_limit_follows_the_calling_threads_namespace() {
    if !own_netns("system_limit_follows_the_calling_threads_namespace") {
        return;
    }
    let host = maxlisten::system_limit();
    let inside = in_netns(777, maxlisten::system_limit);
    assert_eq!(inside, Some(777));
    assert_eq!(maxlisten::system_limit(), host);
    assert_eq!(host, Some(common::somaxconn()));
}

#[test]
fn set_backlog_takes_std_listener_from_128_to_the_limit() {
    if !own_netns("set_backlog_takes_std_listener_from_128_to_the_limit") {
        return;
    }
    in_netns(1000, || {
        let std = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(kernel_backlog(&std), 128);
        let report = maxlisten::set_backlog(&std, u32::MAX).unwrap();
        assert_eq!(report.applied(), Some(1000));
        assert_eq!(kernel_backlog(&std), 1000);
        // And the larger queue really holds more: 1001 completed handshakes.
        let (_clients, completed) = fill_queue(std.local_addr().unwrap(), 1040);
        assert_eq!(completed, 1001);
    });
}

#[test]
fn under_a_burst_larger_than_the_backlog_every_connection_is_served_after_refresh() {
    if !own_netns("under_a_burst_larger_than_the_backlog_every_connection_is_served_after_refresh")
    {
        return;
    }
    in_netns(16, || {
        let mut listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // 100 connects against a queue of 17: 17 complete, 83 wait to retransmit their SYN.
        let (clients, completed) = fill_queue(addr, 100);
        assert_eq!(completed, 17);
        assert_eq!(listener.queue_stats().unwrap().queued, 17);
        // The administrator raises the limit; the server picks it up and drains the queue.
        set_somaxconn(256);
        assert_eq!(listener.refresh_backlog().unwrap().applied(), Some(256));
        listener.as_std().set_nonblocking(true).unwrap();
        let start = std::time::Instant::now();
        let mut accepted = 0;
        while accepted < clients.len() && start.elapsed() < std::time::Duration::from_secs(20) {
            match listener.accept() {
                Ok(_) => accepted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        // Every client got in: the 17 queued at once, the rest on their SYN retransmission.
        assert_eq!(accepted, clients.len());
        assert!(clients.iter().all(|c| c.peer_addr().is_ok()));
        assert_eq!(listener.queue_stats().unwrap().queued, 0);
    });
}

/// `maxlisten::tokio::bind` gives the namespace's limit where tokio's own bind gives 128; `ss`
/// agrees. 777 shows the value is read from the namespace, not a default that happens to match.
#[cfg(feature = "tokio")]
#[test]
fn tokio_dropin_gets_the_namespace_limit() {
    if !own_netns("tokio_dropin_gets_the_namespace_limit") {
        return;
    }
    for limit in [4096, 777] {
        in_netns(limit, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let ours = maxlisten::tokio::bind("127.0.0.1:0").await.unwrap();
                let theirs = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                assert_eq!(kernel_backlog(&ours), limit);
                assert_eq!(ss_send_q(ours.local_addr().unwrap().port()), limit);
                assert_eq!(ss_send_q(theirs.local_addr().unwrap().port()), 128);
                let built = ListenerBuilder::new()
                    .tcp_nodelay(true)
                    .bind_tokio("localhost:0")
                    .await
                    .unwrap();
                assert_eq!(ss_send_q(built.local_addr().unwrap().port()), limit);
            });
        });
    }
}

/// `TcpExt: ListenDrops` of the calling thread's network namespace, read from the kernel's
/// counters directly (`/proc/thread-self/net/netstat`).
fn namespace_listen_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenDrops")
        .expect("a ListenDrops counter");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn drops_per_listener_equal_the_namespace_listen_drops() {
    if !own_netns("drops_per_listener_equal_the_namespace_listen_drops") {
        return;
    }
    in_netns(4096, || {
        // The only listener in this namespace, with a backlog of 16, never accepting.
        let listener = ListenerBuilder::new()
            .backlog(16)
            .bind("127.0.0.1:0")
            .unwrap();
        let before = namespace_listen_drops();
        assert_eq!(listener.queue_stats().unwrap().drops, Some(0));
        let (_clients, completed) = fill_queue(listener.local_addr().unwrap(), 100);
        assert_eq!(completed, 17);
        // Clients retransmit their SYNs from about 1 s on: read the listener between two equal
        // readings of the namespace counter, so that no drop falls between them.
        let port = listener.local_addr().unwrap().port();
        let (stats, delta, surveyed) = loop {
            let first = namespace_listen_drops();
            let stats = listener.queue_stats().unwrap();
            // The survey reads the same counter through sock_diag (INET_DIAG_SKMEMINFO).
            let surveyed = maxlisten::survey::listeners()
                .unwrap()
                .into_iter()
                .find(|l| l.local.as_socket_addr().map(|a| a.port()) == Some(port))
                .expect("the survey lists the listener");
            if namespace_listen_drops() == first {
                break (stats, first - before, surveyed);
            }
        };
        let dropped = stats.drops.unwrap();
        assert!(dropped > 0, "no drops counted");
        assert_eq!(dropped, delta);
        assert_eq!(surveyed.drops, Some(dropped), "the survey's drops");
        // On any listener, through the free function, too.
        assert_eq!(
            maxlisten::queue_stats(&listener).unwrap().drops,
            Some(dropped)
        );
        assert!(stats.to_string().contains("dropped"), "{stats}");
    });
}

#[test]
fn relisten_at_the_maximum_never_lowers_after_the_limit_fell() {
    if !own_netns("relisten_at_the_maximum_never_lowers_after_the_limit_fell") {
        return;
    }
    in_netns(3000, || {
        let listener = ListenerBuilder::new().bind("127.0.0.1:0").unwrap();
        let addr = maxlisten::Address::Inet(listener.local_addr().unwrap());
        assert_eq!(kernel_backlog(&listener), 3000);
        // The administrator lowers the limit: a re-listen "at the maximum" would now apply
        // 100, less than the socket has.
        set_somaxconn(100);
        let info = maxlisten::survey::survey()
            .unwrap()
            .listeners
            .into_iter()
            .find(|l| l.local == addr)
            .unwrap();
        let kept = maxlisten::survey::relisten(&info, u32::MAX).unwrap();
        assert_eq!(kept.applied(), Some(3000));
        assert_eq!(kernel_backlog(&listener), 3000);
        assert_eq!(ss_send_q(listener.local_addr().unwrap().port()), 3000);
        // Asked for less than it has: that is a request to lower, and it is carried out.
        let lowered = maxlisten::survey::relisten(&info, 50).unwrap();
        assert_eq!(lowered.applied(), Some(50));
        assert_eq!(kernel_backlog(&listener), 50);
    });
}
