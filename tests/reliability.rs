//! Faults that need a process of their own: the descriptor limit exhausted, a privileged port
//! bound by a process without capabilities, and a host name whose every address fails. Each runs this test
//! binary again as a child (selected by an environment variable), under the wrapper it needs.
//! The child bodies are `#[ignore]`d, so a normal run does not count them as passing.

// Linux only: it reads the kernel's own view (TCP_INFO, ss, /proc) or needs namespaces.
#![cfg(target_os = "linux")]

mod common;

use std::io::ErrorKind;
use std::process::Command;

use common::own_netns;
use maxlisten::Error;

const CHILD: &str = "MAXLISTEN_RELIABILITY_CHILD";

/// Runs the test `name` of this binary in a child process, wrapped in `wrapper` (a shell
/// command that ends with `"$@"`), and fails if the child fails.
fn run_child(name: &str, wrapper: Option<&str>) {
    let exe = std::env::current_exe().unwrap();
    let mut command = match wrapper {
        Some(wrapper) => {
            let mut c = Command::new("sh");
            c.args(["-c", wrapper, "sh"]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let out = command
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, name)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {name} ran no test:\n{text}"
    );
    assert!(
        text.contains("child done"),
        "child {name} did not run its body:\n{text}"
    );
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

#[test]
fn descriptor_limit_exhausted_is_an_error_not_a_panic() {
    run_child("child_descriptor_limit", None);
}

#[test]
#[ignore = "the body of a child process, run by the test above"]
fn child_descriptor_limit() {
    if !is_child("child_descriptor_limit") {
        return;
    }
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    let limit = libc::rlimit {
        rlim_cur: open + 8,
        rlim_max: open + 64,
    };
    // SAFETY: `limit` is a live local.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    // Take every descriptor that is left.
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open: {e}"),
        }
    }
    assert!(!fillers.is_empty());
    let mut failures = 0;
    for _ in 0..200 {
        match maxlisten::ListenerBuilder::new().bind("127.0.0.1:0") {
            Err(err) => {
                assert!(matches!(err, Error::Socket { .. }), "{err:?}");
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
                assert!(err.to_string().contains("127.0.0.1:0"), "{err}");
                failures += 1;
            }
            Ok(listener) => drop(listener),
        }
    }
    assert_eq!(failures, 200);
    // One descriptor free again: binding works, so the failures left nothing open.
    fillers.pop();
    maxlisten::bind("127.0.0.1:0").unwrap();
    println!("child done");
}

#[test]
fn privileged_port_without_permission() {
    if !own_netns("privileged_port_without_permission") {
        return;
    }
    // A private network namespace where ports below 2000 are privileged, and a process without
    // capabilities: as the real root, user nobody; in the user namespace of `own_netns`, where
    // only this user is mapped, root of that namespace without any capability.
    let drop_privileges = if common::in_user_namespace() {
        "setpriv --bounding-set=-all --inh-caps=-all"
    } else {
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all"
    };
    run_child(
        "child_privileged_port",
        Some(&format!(
            "exec unshare -n sh -c 'echo 2000 > /proc/sys/net/ipv4/ip_unprivileged_port_start && \
             exec {drop_privileges} \"$@\"' sh \"$@\""
        )),
    );
}

#[test]
#[ignore = "the body of a child process, run by the test above"]
fn child_privileged_port() {
    if !is_child("child_privileged_port") {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert_eq!(
        u64::from_str_radix(effective.split_whitespace().nth(1).unwrap(), 16).unwrap(),
        0,
        "the child must have no capability: {effective}"
    );
    let err = maxlisten::ListenerBuilder::new()
        .bind("0.0.0.0:1500")
        .unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("0.0.0.0:1500"), "{err}");
    // The drop-in gives std's kind, and names the address.
    let io_err = maxlisten::bind("0.0.0.0:1500").unwrap_err();
    let std_err = std::net::TcpListener::bind("0.0.0.0:1500").unwrap_err();
    assert_eq!(io_err.kind(), std_err.kind());
    assert!(io_err.to_string().contains("0.0.0.0:1500"), "{io_err}");
    // Above the namespace's threshold the same user may bind.
    maxlisten::bind("0.0.0.0:2500").unwrap();
    println!("child done");
}

#[test]
fn a_name_whose_every_address_fails_names_each() {
    if !own_netns("a_name_whose_every_address_fails_names_each") {
        return;
    }
    // A private mount namespace whose /etc/hosts gives one name two addresses.
    let hosts = std::env::temp_dir().join(format!("maxlisten-hosts-{}", std::process::id()));
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.1 multi.maxlisten.test\n127.0.0.2 multi.maxlisten.test\n",
    )
    .unwrap();
    let wrapper = format!(
        "exec unshare -m sh -c 'mount --bind {} /etc/hosts && exec \"$@\"' sh \"$@\"",
        hosts.display()
    );
    run_child("child_multi_address_name", Some(&wrapper));
    std::fs::remove_file(hosts).unwrap();
}

#[test]
#[ignore = "the body of a child process, run by the test above"]
fn child_multi_address_name() {
    if !is_child("child_multi_address_name") {
        return;
    }
    // Take the same port on both addresses, then bind the name.
    let first = maxlisten::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let _second = maxlisten::bind(("127.0.0.2", port)).unwrap();
    let err = maxlisten::ListenerBuilder::new()
        .bind(("multi.maxlisten.test", port))
        .unwrap_err();
    let Error::AllAddressesFailed { errors } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::AddrInUse));
    let msg = err.to_string();
    for addr in [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}")] {
        assert!(msg.contains(&addr), "{addr} missing: {msg}");
    }
    // std gives the last address's error; so does the drop-in, with its address.
    let std_err = std::net::TcpListener::bind(("multi.maxlisten.test", port)).unwrap_err();
    let io_err = maxlisten::bind(("multi.maxlisten.test", port)).unwrap_err();
    assert_eq!(io_err.kind(), std_err.kind());
    assert!(
        io_err.to_string().contains(&format!("127.0.0.2:{port}")),
        "{io_err}"
    );
    println!("child done");
}

/// `ListenerBuilder::bind_tokio` and `maxlisten::tokio::bind` resolve a name on tokio's
/// blocking pool, never on the runtime's thread: in a namespace whose only DNS server (on
/// loopback) never answers, a lookup takes about a second, and a single-threaded runtime keeps
/// running its other tasks all along. The same lookup done the blocking way, on that thread,
/// freezes them: the test shows it can tell the two apart.
#[cfg(feature = "tokio")]
#[test]
fn name_resolution_never_blocks_the_runtime_thread() {
    if !own_netns("name_resolution_never_blocks_the_runtime_thread") {
        return;
    }
    let resolv = std::env::temp_dir().join(format!("maxlisten-resolv-{}", std::process::id()));
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let wrapper = format!(
        "exec unshare -n -m sh -c 'mount --bind {} /etc/resolv.conf && exec \"$@\"' sh \"$@\"",
        resolv.display()
    );
    run_child("child_resolution_off_thread", Some(&wrapper));
    std::fs::remove_file(resolv).unwrap();
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "the body of a child process, run by the test above"]
fn child_resolution_off_thread() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    if !is_child("child_resolution_off_thread") {
        return;
    }
    // In the new network namespace: lo up (by ioctl; ip(8) is in /usr/sbin, not on every
    // user's PATH), then the DNS server: takes queries, answers none.
    common::set_lo_up();
    let _blackhole = std::net::UdpSocket::bind("127.0.0.1:53").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Ticks of a task on the runtime's only thread while `lookup` runs, and how long it ran.
    let ticks_during = |lookup: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        rt.block_on(async {
            let ticks = Arc::new(AtomicU32::new(0));
            let counter = Arc::clone(&ticks);
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            tokio::task::yield_now().await;
            let start = Instant::now();
            lookup.await;
            let took = start.elapsed();
            ticker.abort();
            (ticks.load(Ordering::SeqCst), took)
        })
    };
    let name = "slow.maxlisten.test:0";
    let (ours, took) = ticks_during(Box::pin(async move {
        let err = maxlisten::ListenerBuilder::new()
            .bind_tokio(name)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
        let err = maxlisten::tokio::bind(name).await.unwrap_err();
        assert!(err.to_string().contains("resolve"), "{err}");
    }));
    assert!(
        took >= Duration::from_millis(500),
        "the lookup was not slow: {took:?}"
    );
    // About one tick per 20 ms while the lookups ran.
    assert!(
        u128::from(ours) * 20 * 2 >= took.as_millis(),
        "the runtime thread was blocked: {ours} ticks in {took:?}"
    );
    // Control: the blocking way, on the runtime's thread.
    let (blocked, took) = ticks_during(Box::pin(async move {
        let _ = std::net::ToSocketAddrs::to_socket_addrs(name);
    }));
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(
        blocked <= 1,
        "a blocking lookup let {blocked} ticks through"
    );
    println!("child done: {ours} ticks while resolving off the thread, {blocked} while blocking");
}
