//! Unix domain socket listeners against the real kernel: the applied backlog read back through
//! sock_diag and checked against `ss -xl`, the queue filled to limit + 1, the file rules
//! (mode, stale files) checked with stat, and errors that name the path.

// Linux only: namespaces, sock_diag, ss, abstract names.
#![cfg(target_os = "linux")]

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};

use common::{in_netns, own_netns, set_somaxconn, ss_unix, temp_dir};
use maxlisten::unix::ListenerBuilder;
use maxlisten::{Address, BacklogSource, Error};

#[test]
fn reports_exactly_the_namespace_limit_and_ss_agrees() {
    if !own_netns("reports_exactly_the_namespace_limit_and_ss_agrees") {
        return;
    }
    let dir = temp_dir("unix-limit");
    for limit in [16, 4096] {
        in_netns(limit, || {
            let path = dir.join(format!("l{limit}.sock"));
            let listener = ListenerBuilder::new().bind(&path).unwrap();
            let backlog = listener.backlog();
            assert_eq!(backlog.applied(), Some(limit));
            assert_eq!(backlog.source(), BacklogSource::Kernel);
            assert_eq!(ss_unix(path.to_str().unwrap()), (0, limit));
            // The drop-in too, and an abstract name.
            let plain_path = dir.join(format!("p{limit}.sock"));
            let plain = maxlisten::unix::bind(&plain_path).unwrap();
            assert_eq!(maxlisten::queue_stats(&plain).unwrap().backlog, limit);
            let name = format!("maxlisten-test-{limit}-{}", std::process::id());
            let abs = ListenerBuilder::new()
                .bind_abstract(name.as_bytes())
                .unwrap();
            assert_eq!(abs.backlog().applied(), Some(limit));
            assert_eq!(ss_unix(&format!("@{name}")), (0, limit));
        });
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_listener_that_never_accepts_holds_limit_plus_one_then_connect_gets_eagain() {
    if !own_netns("a_listener_that_never_accepts_holds_limit_plus_one_then_connect_gets_eagain") {
        return;
    }
    let limit = 16;
    in_netns(limit, || {
        let name = format!("maxlisten-fill-{}", std::process::id());
        let listener = ListenerBuilder::new()
            .bind_abstract(name.as_bytes())
            .unwrap();

        let mut clients = Vec::new();
        let err = loop {
            let socket =
                socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            socket.set_nonblocking(true).unwrap();
            let target = socket2::SockAddr::unix(format!("\0{name}")).unwrap();
            match socket.connect(&target) {
                Ok(()) => clients.push(socket),
                Err(e) => break e,
            }
            assert!(clients.len() <= 1000, "the queue never filled");
        };
        assert_eq!(clients.len(), limit as usize + 1);
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN), "{err}");
        let stats = listener.queue_stats().unwrap();
        assert_eq!((stats.queued, stats.backlog), (limit + 1, limit));
        assert_eq!(stats.drops, None);
        assert_eq!(ss_unix(&format!("@{name}")), (limit + 1, limit));
    });
}

#[test]
fn set_backlog_widens_std_and_tokio_unix_listeners() {
    if !own_netns("set_backlog_widens_std_and_tokio_unix_listeners") {
        return;
    }
    let dir = temp_dir("unix-widen");
    in_netns(16, || {
        let std_path = dir.join("std.sock");
        let std_listener = UnixListener::bind(&std_path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let tokio_path = dir.join("tokio.sock");
        let tokio_listener = tokio::net::UnixListener::bind(&tokio_path).unwrap();
        assert_eq!(ss_unix(std_path.to_str().unwrap()).1, 16);
        assert_eq!(ss_unix(tokio_path.to_str().unwrap()).1, 16);
        set_somaxconn(4096);
        for (path, report) in [
            (
                &std_path,
                maxlisten::set_backlog(&std_listener, u32::MAX).unwrap(),
            ),
            (
                &tokio_path,
                maxlisten::set_backlog(&tokio_listener, u32::MAX).unwrap(),
            ),
        ] {
            assert_eq!(report.applied(), Some(4096));
            assert_eq!(report.source(), BacklogSource::Kernel);
            assert_eq!(ss_unix(path.to_str().unwrap()).1, 4096);
        }
        assert_eq!(
            maxlisten::queue_stats(&tokio_listener).unwrap().backlog,
            4096
        );
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mode_is_set_without_a_wider_window() {
    let dir = temp_dir("unix-mode");
    for mode in [0o600, 0o660, 0o666, 0o000] {
        let path = dir.join(format!("m{mode:o}.sock"));
        let _listener = ListenerBuilder::new().mode(mode).bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{mode:o}");
    }
    // Bits beyond the permissions are refused, and nothing is left behind.
    let path = dir.join("bad.sock");
    let err = ListenerBuilder::new().mode(0o4755).bind(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        matches!(err, Error::SetOption { option: "mode", .. }),
        "{err:?}"
    );
    assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert!(!path.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Waits until connecting to `path` is refused. A listener closed here can live on for a moment
/// in a child that another test thread is just starting (fork copies every descriptor until
/// exec closes it).
fn wait_refused(path: &std::path::Path) {
    for _ in 0..200 {
        match UnixStream::connect(path) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    panic!("{} still accepts connections", path.display());
}

#[test]
fn remove_stale_removes_only_a_dead_socket() {
    let dir = temp_dir("unix-stale");
    let path = dir.join("app.sock");
    let path_text = path.to_str().unwrap().to_owned();

    // Without remove_stale, an existing path is AddrInUse, as std, naming the path.
    drop(UnixListener::bind(&path).unwrap());
    let err = ListenerBuilder::new().bind(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    assert!(err.to_string().contains(&path_text), "{err}");

    // A dead socket is removed and the path bound.
    wait_refused(&path);
    let live = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&path)
        .unwrap();
    UnixStream::connect(&path).unwrap();

    // A live listener is never removed.
    let err = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    assert!(err.to_string().contains("not removed"), "{err}");
    UnixStream::connect(&path).expect("the live listener still answers");
    drop(live);

    // A regular file is never removed.
    let file = dir.join("data.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let err = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&file)
        .unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // Nor a directory, nor a symbolic link to a dead socket.
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&sub)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(sub.clone())));
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert!(sub.is_dir());
    let dead = dir.join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    wait_refused(&dead);
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&dead, &link).unwrap();
    let err = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&link)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(link.clone())));
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_name_the_path_and_keep_std_kinds() {
    let dir = temp_dir("unix-errors");
    let missing = dir.join("no-such-dir").join("app.sock");
    let too_long = dir.join("x".repeat(200));
    for path in [&missing, &too_long] {
        let std_err = UnixListener::bind(path).unwrap_err();
        let ours = maxlisten::unix::bind(path).unwrap_err();
        assert_eq!(ours.kind(), std_err.kind(), "{}", path.display());
        assert!(ours.to_string().contains(path.to_str().unwrap()), "{ours}");
        let inner = ours.get_ref().unwrap().downcast_ref::<Error>().unwrap();
        assert_eq!(inner.raw_os_error(), std_err.raw_os_error());
        assert!(matches!(inner, Error::Bind { .. }), "{inner:?}");
        assert_eq!(inner.addr(), Some(&Address::Path(path.to_path_buf())));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "tokio")]
#[test]
fn into_tokio_serves() {
    let dir = temp_dir("unix-tokio");
    let path = dir.join("t.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = ListenerBuilder::new()
            .bind(&path)
            .unwrap()
            .into_tokio()
            .unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::UnixStream::connect(&path), listener.accept());
        client.unwrap();
        accepted.unwrap();
    });
    std::fs::remove_dir_all(dir).unwrap();
}

/// The old `remove_stale` connected to learn whether a server was alive: that connection landed
/// in the live server's accept queue. Now the kernel is asked (sock_diag) and nothing reaches it.
#[test]
fn remove_stale_never_connects_to_a_live_server() {
    let dir = temp_dir("unix-stale-live");
    let path = dir.join("live.sock");
    let live = UnixListener::bind(&path).unwrap();
    for _ in 0..3 {
        let err = ListenerBuilder::new()
            .remove_stale(true)
            .bind(&path)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    }
    // The server's own count: nothing waits in its queue, and accept has nothing to take.
    assert_eq!(maxlisten::queue_stats(&live).unwrap().queued, 0);
    live.set_nonblocking(true).unwrap();
    assert_eq!(live.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A socket bound to the path that has not called listen yet (a server starting, which knows
/// nothing of the lock file) refuses connections, as a stale file does: the kernel still says it
/// is bound, and it is kept.
#[test]
fn remove_stale_keeps_a_socket_bound_but_not_yet_listening() {
    let dir = temp_dir("unix-stale-bound");
    let path = dir.join("starting.sock");
    let starting =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    starting
        .bind(&socket2::SockAddr::unix(&path).unwrap())
        .unwrap();
    let err = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    // It listens now, at the path it kept.
    starting.listen(1).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    starting.accept().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A listener that is gone leaves a stale file even while connections it accepted live on (they
/// share its file, but nobody can connect there any more): that file is removed.
#[test]
fn remove_stale_removes_a_file_whose_listener_is_gone_but_connections_live() {
    let dir = temp_dir("unix-stale-accepted");
    let path = dir.join("drain.sock");
    let old = UnixListener::bind(&path).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    let (_accepted, _) = old.accept().unwrap();
    drop(old);
    wait_refused(&path);
    let new = ListenerBuilder::new()
        .remove_stale(true)
        .bind(&path)
        .unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    new.accept().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A live server whose queue is full made the old blocking connect wait without a limit.
#[test]
fn a_server_with_a_full_queue_does_not_make_bind_hang() {
    let dir = temp_dir("unix-stale-full");
    let path = dir.join("full.sock");
    let server = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    server
        .bind(&socket2::SockAddr::unix(&path).unwrap())
        .unwrap();
    server.listen(0).unwrap();
    // Fill it: a backlog of 0 holds one connection; the next non-blocking connect is EAGAIN.
    let mut clients = Vec::new();
    loop {
        let client =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        client.set_nonblocking(true).unwrap();
        match client.connect(&socket2::SockAddr::unix(&path).unwrap()) {
            Ok(()) => clients.push(client),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("connect: {e}"),
        }
        assert!(clients.len() < 100, "the queue never filled");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ListenerBuilder::new().remove_stale(true).bind(&probe));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("bind with remove_stale hangs on a server whose queue is full");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(&Address::Path(path.clone())));
    assert!(path.exists());
    drop(clients);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Several binders starting together over a stale file: exactly one gets the path, and its
/// socket is the one the path reaches (none removed the winner's file to bind its own).
#[test]
fn racing_remove_stale_binders_never_remove_each_others_socket() {
    let dir = temp_dir("unix-stale-race");
    let path = dir.join("race.sock");
    const BINDERS: usize = 4;
    for round in 0..100 {
        drop(UnixListener::bind(&path).unwrap()); // a stale file to start from
        wait_refused(&path);
        let barrier = std::sync::Barrier::new(BINDERS);
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..BINDERS)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        ListenerBuilder::new()
                            .remove_stale(true)
                            .nonblocking(true)
                            .bind(&path)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} binders believe they own the path: {results:?}",
            winners.len()
        );
        for err in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "round {round}: {err}");
        }
        let _client = UnixStream::connect(&path).unwrap();
        winners[0].accept().expect("the path reaches the winner");
        drop(results);
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The "window" of a mode that the umask narrows: the file could be swapped for a symbolic
/// link between `bind` and the step that sets the exact mode, and a mode set by path would land
/// on the link's target. Here another thread swaps links in as fast as it can while a server
/// binds again and again: the target's mode never changes.
#[test]
fn mode_never_follows_a_link_swapped_in_after_bind() {
    let dir = temp_dir("unix-mode-window");
    let path = dir.join("s.sock");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut bound, mut refused) = (0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let tmp = dir.join("tmp-link");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&victim, &tmp).unwrap();
                let _ = std::fs::rename(&tmp, &path);
            }
        });
        // Whatever happens, the swapping thread stops, or the scope would wait for it forever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(3) {
                let _ = std::fs::remove_file(&path);
                // 0o666: the usual umask (022) takes 0o022 away, so the exact mode needs the step
                // after bind.
                match ListenerBuilder::new().mode(0o666).bind(&path) {
                    Ok(_) => bound += 1,
                    Err(e) => {
                        refused += 1;
                        assert!(
                            matches!(
                                e,
                                Error::Bind { .. } | Error::SetOption { option: "mode", .. }
                            ),
                            "{e:?}"
                        );
                    }
                }
                let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "the link's target got the socket's mode");
            }
        }));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    eprintln!("{bound} bound, {refused} refused while links were swapped in");
    assert!(
        bound > 0,
        "never bound: the test did not exercise the window"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
