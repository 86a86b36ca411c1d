//! `maxlisten::netns` against real namespaces made the three ways containers are (`unshare
//! --net`, `ip netns add`, `unshare --net --pid --fork --mount-proc`), each with its own limit
//! set inside and a Python server listening there. Each runs for any user, in a user namespace
//! of its own (see `common::own_netns` and `common::own_sandbox`), but for what needs a second
//! user (nobody): that needs root, and is skipped with a message outside CI, a failure with
//! `CI=true`. As root, one test runs the others as nobody, so that CI (root) takes the user
//! namespace path too.

// Linux only: network namespaces.
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;

use common::namespaces::{namespace_holders, Fixture, InOwnUserns, Kind, Server};
use common::process::{as_nobody, text};
use common::{needs_root, own_netns, own_sandbox, run_child_test, USERNS_MARK};
use maxlisten::netns::Netns;

const PORT: u16 = 8080;
const BACKLOG: i32 = 7;

fn python() -> Vec<Server> {
    vec![Server::PythonTcp {
        port: PORT,
        backlog: BACKLOG,
    }]
}

fn three() -> Vec<Fixture> {
    vec![
        Fixture::start(Kind::Unshared, 1111, &python()),
        Fixture::start(Kind::Named, 2222, &python()),
        Fixture::start(Kind::Container, 3333, &python()),
    ]
}

#[test]
fn all_finds_every_namespace_once_with_its_own_limit_and_names() {
    if !own_netns("all_finds_every_namespace_once_with_its_own_limit_and_names") {
        return;
    }
    let fixtures = three();
    let empty = Fixture::named_empty(4444);
    let host = Netns::current().unwrap();
    let host_limit = host.limit().unwrap();

    let all = Netns::all().unwrap();
    // Each once.
    let mut inodes: Vec<u64> = all.namespaces.iter().map(|ns| ns.inode()).collect();
    inodes.dedup();
    assert_eq!(inodes.len(), all.namespaces.len(), "{inodes:?}");
    assert!(all.namespaces.contains(&host));
    // (unreadable_processes may be above zero even for root: a process whose permitted
    // capabilities exceed this one's refuses ptrace read access.)
    for fixture in fixtures.iter().chain([&empty]) {
        let found = all
            .namespaces
            .iter()
            .find(|ns| ns.inode() == fixture.inode())
            .unwrap_or_else(|| panic!("{:?} (limit {}) not found", fixture.kind, fixture.limit));
        assert_ne!(found, &host);
        assert_eq!(
            found.limit().unwrap(),
            Some(fixture.limit),
            "{:?}",
            fixture.kind
        );
        match &fixture.name {
            Some(name) => assert_eq!(found.names(), std::slice::from_ref(name)),
            None => assert!(found.names().is_empty(), "{:?}", found.names()),
        }
    }
    // Nothing of the host changed.
    assert_eq!(host.limit().unwrap(), host_limit);
    assert!(host.is_current());
}

#[test]
fn parse_opens_by_pid_path_and_name() {
    if !own_netns("parse_opens_by_pid_path_and_name") {
        return;
    }
    let fixtures = three();
    for fixture in &fixtures {
        let by_pid = Netns::parse(&fixture.pid.to_string()).unwrap();
        let by_path = Netns::parse(&format!("/proc/{}/ns/net", fixture.pid)).unwrap();
        assert_eq!(by_pid, by_path);
        assert_eq!(by_pid.inode(), fixture.inode());
        assert_eq!(by_pid.limit().unwrap(), Some(fixture.limit));
        if let Some(name) = &fixture.name {
            let by_name = Netns::parse(name).unwrap();
            let by_mount = Netns::parse(&format!("/run/netns/{name}")).unwrap();
            assert_eq!(by_name, by_pid);
            assert_eq!(by_mount, by_pid);
            assert_eq!(by_pid.names(), std::slice::from_ref(name));
        }
    }
    // A namespace of another kind, by path: refused, naming it.
    let pid = fixtures[0].pid;
    let err = Netns::parse(&format!("/proc/{pid}/ns/pid")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains(&format!("/proc/{pid}/ns/pid")),
        "{err}"
    );
}

#[test]
fn run_sees_the_namespace_own_listeners_and_leaves_the_caller_where_it_was() {
    if !own_netns("run_sees_the_namespace_own_listeners_and_leaves_the_caller_where_it_was") {
        return;
    }
    let fixtures = three();
    let before = Netns::current().unwrap();
    for fixture in &fixtures {
        let ns = Netns::of_pid(fixture.pid).unwrap();
        let (survey, limit, hello) = ns
            .run(|| {
                let survey = maxlisten::survey::survey().unwrap();
                let limit = maxlisten::system_limit();
                // A socket made inside belongs to the namespace: it reaches the server there.
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
                let mut hello = String::new();
                stream.read_to_string(&mut hello).unwrap();
                (survey, limit, hello)
            })
            .unwrap();
        assert_eq!(hello, "hello\n");
        assert_eq!(limit, Some(fixture.limit), "{:?}", fixture.kind);
        let listener = survey
            .listeners
            .iter()
            .find(|l| l.local.to_string() == format!("127.0.0.1:{PORT}"))
            .unwrap_or_else(|| panic!("no listener in {:?}: {:?}", fixture.kind, survey.listeners));
        assert_eq!(listener.backlog, BACKLOG as u32);
        assert_eq!(fixture.ss_backlog(PORT), BACKLOG as u32);
        // Owners come from the host's /proc: the Python server, whatever its PID namespace.
        assert!(
            listener
                .processes
                .iter()
                .any(|o| o.command.starts_with("python")),
            "{:?}",
            listener.processes
        );
        assert_eq!(survey.listeners.len(), 1, "{:?}", survey.listeners);
    }
    // The caller's thread never moved.
    assert!(before.is_current());
    assert_eq!(Netns::current().unwrap(), before);
}

#[test]
fn a_held_namespace_outlives_its_processes() {
    if !own_netns("a_held_namespace_outlives_its_processes") {
        return;
    }
    let fixture = Fixture::start(Kind::Unshared, 1234, &python());
    let ns = Netns::of_pid(fixture.pid).unwrap();
    let inode = fixture.inode();
    drop(fixture);
    // Every process of it is gone; the descriptor keeps the namespace, its limit readable.
    assert_eq!(ns.inode(), inode);
    assert_eq!(ns.limit().unwrap(), Some(1234));
    assert!(ns.listen_counters().unwrap().is_some());
}

#[test]
fn without_privilege_entering_and_listing_fail_naming_what_is_missing() {
    if !needs_root(
        "without_privilege_entering_and_listing_fail",
        "needs root: it runs the checks as a second user (nobody)",
    ) {
        return;
    }
    if std::env::var_os("MAXLISTEN_UNPRIVILEGED_CHILD").is_some() {
        return; // the child run of this test below
    }
    let fixture = Fixture::named_empty(999);
    let name = fixture.name.clone().unwrap();
    // Run the checks as `nobody`, without capabilities, in a child copy of this test binary.
    run_child_test(
        as_nobody(std::env::current_exe().unwrap()).env("MAXLISTEN_UNPRIVILEGED_CHILD", &name),
        "unprivileged_child",
        "a process of nobody's",
    );
}

/// The unprivileged half of the test above; does nothing unless started by it.
#[test]
fn unprivileged_child() {
    let Some(name) = std::env::var_os("MAXLISTEN_UNPRIVILEGED_CHILD") else {
        return;
    };
    let name = name.into_string().unwrap();
    // Listing every namespace: refused, naming both capabilities, never a partial list.
    let err = Netns::all().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let message = err.to_string();
    assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
    assert!(message.contains("CAP_SYS_PTRACE"), "{message}");
    // Another user's process: its namespace cannot even be opened.
    let err = Netns::of_pid(1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("CAP_SYS_PTRACE"), "{err}");
    // A named namespace can be opened (the bind mount is readable) but not entered.
    match Netns::named(&name) {
        Ok(ns) => {
            let err = ns.limit().unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
            let message = err.to_string();
            assert!(message.contains("setns"), "{message}");
            assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
        }
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}"),
    }
    // Its own namespace needs nothing.
    let mine = Netns::current().unwrap();
    assert_eq!(mine.limit().unwrap(), maxlisten::system_limit());
}

#[test]
fn all_finds_a_namespace_only_a_thread_is_in() {
    if !own_netns("all_finds_a_namespace_only_a_thread_is_in") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        common::in_netns(777, move || {
            tx.send(Netns::current().unwrap().inode()).unwrap();
            let _ = done_rx.recv();
        })
    });
    let inode = rx.recv().unwrap();
    // No process has it as its own (main thread's) namespace: only /proc/PID/task/TID shows it.
    assert_ne!(Netns::current().unwrap().inode(), inode);
    let all = Netns::all().unwrap();
    let found = all
        .namespaces
        .iter()
        .find(|ns| ns.inode() == inode)
        .expect("a thread's namespace");
    assert!(found.path().to_string_lossy().contains("/task/"), "{found}");
    assert_eq!(found.limit().unwrap(), Some(777));
    done_tx.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn in_a_sandbox_all_is_exactly_what_the_test_made() {
    const TEST: &str = "in_a_sandbox_all_is_exactly_what_the_test_made";
    if !own_sandbox(TEST) {
        return;
    }
    let fixtures = three();
    let empty = Fixture::named_empty(4444);
    let all = Netns::all().unwrap();
    // Its /proc shows only its own processes: each can be read, each namespace entered.
    assert_eq!(all.unreadable_processes, 0);
    assert_eq!(all.unreadable_namespaces, 0);
    let mut found: Vec<u64> = all.namespaces.iter().map(|ns| ns.inode()).collect();
    found.sort_unstable();
    let mut made: Vec<u64> = fixtures
        .iter()
        .chain([&empty])
        .map(Fixture::inode)
        .collect();
    made.push(Netns::current().unwrap().inode());
    made.sort_unstable();
    assert_eq!(found, made, "{all:?}");
    for ns in &all.namespaces {
        let limit = ns.limit().unwrap();
        assert!(limit.is_some(), "{ns}");
    }
}

/// More namespaces than descriptors left: `Netns::all` holds each one it finds open, so the
/// next open fails with `EMFILE`. That is an error naming the limit to raise, not a shorter
/// list passed off as every namespace (and a survey that then cannot read any of them).
#[test]
fn more_namespaces_than_descriptors_is_an_error_not_a_partial_list() {
    const TEST: &str = "more_namespaces_than_descriptors_is_an_error_not_a_partial_list";
    if !own_sandbox(TEST) {
        return;
    }
    const MORE: usize = 40;
    let holders = namespace_holders(MORE);
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    let before = set_open_files(open_now + (MORE as libc::rlim_t) / 2);
    let all = Netns::all();
    let survey = maxlisten::survey::survey_all();
    set_open_files(before);
    drop(holders);
    let err = all.map(|all| all.namespaces.len()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    assert!(err.to_string().contains("ulimit -n"), "{err}");
    let err = survey.map(|s| s.namespaces.len()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
}

/// Sets the soft `RLIMIT_NOFILE` to `soft`; returns what it was.
fn set_open_files(soft: libc::rlim_t) -> libc::rlim_t {
    // SAFETY: rlimit is plain old data; all zeroes is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a live local the kernel writes.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit");
    let was = limit.rlim_cur;
    limit.rlim_cur = soft;
    // SAFETY: `limit` is a live, initialised rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit");
    was
}

/// The tests above that run for any user: as root, [`as_nobody_the_others_run_in_user_namespaces`]
/// runs them as nobody, through the user namespace path.
const FOR_ANY_USER: [&str; 7] = [
    "all_finds_every_namespace_once_with_its_own_limit_and_names",
    "parse_opens_by_pid_path_and_name",
    "run_sees_the_namespace_own_listeners_and_leaves_the_caller_where_it_was",
    "a_held_namespace_outlives_its_processes",
    "all_finds_a_namespace_only_a_thread_is_in",
    "in_a_sandbox_all_is_exactly_what_the_test_made",
    "more_namespaces_than_descriptors_is_an_error_not_a_partial_list",
];

#[test]
fn as_nobody_the_others_run_in_user_namespaces() {
    // CI runs as root, and so would never take the path that other users take.
    if !needs_root(
        "as_nobody_the_others_run_in_user_namespaces",
        "needs root: it runs the others as a second user (nobody); as this user they took the \
         user namespace path themselves",
    ) {
        return;
    }
    if std::env::var_os("MAXLISTEN_UNPRIVILEGED_CHILD").is_some() {
        return; // the child run of without_privilege_entering_and_listing_fail
    }
    // A copy of this test binary nobody can run (the build may be under /root).
    let dir = common::temp_dir("as-nobody");
    let exe = dir.join("netns_all");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = as_nobody(&exe)
        .args(FOR_ANY_USER)
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .current_dir("/")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env_remove("MAXLISTEN_TEST_IN_USERNS")
        .env_remove("MAXLISTEN_TEST_SANDBOX")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = text(&out);
    println!("--- as nobody ---\n{said}\n--- end ---");
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("test result: ok. {} passed", FOR_ANY_USER.len())),
        "{said}"
    );
    assert!(!said.contains("SKIPPED"), "{said}");
    // Each in a user namespace of its own: the mark once per test.
    assert_eq!(
        said.matches(USERNS_MARK).count(),
        FOR_ANY_USER.len(),
        "{said}"
    );
}

/// Set, in the child run of the test below, to `INODE NAME PID` of the namespace it cannot
/// enter.
const UNENTERABLE: &str = "MAXLISTEN_UNENTERABLE_NAMESPACE";

#[test]
fn survey_all_keeps_each_namespace_it_cannot_enter_with_its_error() {
    if !needs_root(
        "survey_all_keeps_each_namespace_it_cannot_enter_with_its_error",
        "needs root: it runs a process in an `ip netns` namespace of the host's user namespace",
    ) {
        return;
    }
    if std::env::var_os(UNENTERABLE).is_some() {
        return; // the child run of this test, below
    }
    let fixture = Fixture::start(Kind::Named, 1234, &python());
    let name = fixture.name.clone().unwrap();
    // A process in that namespace but in a user namespace of its own, as a rootless container
    // joined to a namespace runs.
    let holder = InOwnUserns::start(&name);
    let pid = holder.pid();
    // The survey, run by an agent in that user namespace (root there, every capability
    // there) and a network namespace of its own: it sees the process's namespace but cannot
    // enter it.
    run_child_test(
        holder
            .agent(std::env::current_exe().unwrap())
            .env(UNENTERABLE, format!("{} {name} {pid}", fixture.inode())),
        "unenterable_child",
        "an agent in a user namespace of its own",
    );
}

/// The agent's half of the test above; does nothing unless started by it.
#[test]
fn unenterable_child() {
    let Ok(what) = std::env::var(UNENTERABLE) else {
        return;
    };
    let mut what = what.split(' ');
    let inode: u64 = what.next().unwrap().parse().unwrap();
    let name = what.next().unwrap().to_owned();
    let pid: u32 = what.next().unwrap().parse().unwrap();
    let survey = maxlisten::survey::survey_all().unwrap();
    let ns = survey
        .unreadable_namespaces
        .iter()
        .find(|ns| ns.netns == inode)
        .unwrap_or_else(|| panic!("{inode} not kept: {:?}", survey.unreadable_namespaces));
    assert_eq!(ns.names, std::slice::from_ref(&name));
    assert_eq!(ns.pid, Some(pid));
    let err = ns.error();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    let text = ns.to_string();
    assert!(
        text.starts_with(&format!(
            "network namespace {inode} (ip netns {name}, pid {pid}): setns: "
        )),
        "{text}"
    );
    assert!(text.contains("CAP_SYS_ADMIN"), "{text}");
    // Not passed off as read: no namespace entry, no listener of it (its server listens).
    assert!(survey.namespace(inode).is_none());
    assert!(survey.listeners.iter().all(|l| l.netns != inode));
    // Sorted by inode, each once.
    let inodes: Vec<u64> = survey
        .unreadable_namespaces
        .iter()
        .map(|n| n.netns)
        .collect();
    let mut sorted = inodes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(inodes, sorted);
    // Its own namespace was read.
    let own = maxlisten::netns::Netns::current().unwrap().inode();
    assert!(survey.namespace(own).is_some());
}
