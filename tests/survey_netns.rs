//! `maxlisten::survey` over every network namespace, against namespaces made the three ways
//! containers are (see tests/common/namespaces.rs), each with its own limit, real Python and
//! Node servers and a Python Unix listener, their processes moved into cgroups named the way
//! Docker and containerd under Kubernetes name them. Each runs for any user, in a user
//! namespace of its own (see `common::own_netns`), but for the cgroups: those need the host's
//! root (skipped with a message outside CI, a failure with `CI=true`).

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use common::namespaces::{
    servers, three, unix_answers, unix_path, unshared, Fixture, Kind, CRI_ID, DOCKER_ID, NODE, POD,
    PY,
};
use common::process::Killed;
use common::{is_host_root, needs_root, own_netns};
use maxlisten::container::Runtime;
use maxlisten::netns::Netns;
use maxlisten::survey::{self, ListenerInfo, Proto};

fn in_ns(listeners: &[ListenerInfo], inode: u64) -> Vec<&ListenerInfo> {
    listeners.iter().filter(|l| l.netns == inode).collect()
}

fn find<'a>(listeners: &[&'a ListenerInfo], local: &str) -> &'a ListenerInfo {
    listeners
        .iter()
        .find(|l| l.local_name() == local)
        .unwrap_or_else(|| panic!("no {local} in {listeners:?}"))
}

#[test]
fn survey_all_lists_each_namespace_with_its_limit_and_owners() {
    if own_netns("survey_all_lists_each_namespace_with_its_limit_and_owners") {
        survey_all_lists_each_namespace("all", false);
    }
}

#[test]
fn survey_all_names_each_owner_s_cgroup_and_container() {
    if needs_root(
        "survey_all_names_each_owner_s_cgroup_and_container",
        "needs root: it makes cgroups in the host's cgroup tree",
    ) {
        survey_all_lists_each_namespace("all-cgroups", true);
    }
}

/// The survey of every namespace against [`three`] made for `test`, with cgroups named as
/// runtimes name them (and their containers checked) if `cgroups`.
fn survey_all_lists_each_namespace(test: &str, cgroups: bool) {
    let (cgroups, fixtures) = three(test, cgroups);
    let found = survey::survey_all().unwrap();
    let host = Netns::current().unwrap();
    assert!(found.namespace(host.inode()).is_some());
    for fixture in &fixtures {
        let inode = fixture.inode();
        let ns = found
            .namespace(inode)
            .unwrap_or_else(|| panic!("{:?} not surveyed", fixture.kind));
        assert_eq!(ns.limit, Some(fixture.limit));
        assert_eq!(ns.names, fixture.name.iter().cloned().collect::<Vec<_>>());
        assert!(ns.counters.is_some());
        let mine = in_ns(&found.listeners, inode);
        assert_eq!(mine.len(), 3, "{:?}: {mine:?}", fixture.kind);
        assert_eq!(ns.listeners, 3);
        let py = find(&mine, &format!("127.0.0.1:{PY}"));
        let node = find(&mine, &format!("127.0.0.1:{NODE}"));
        let unix = find(&mine, &unix_path(test, fixture.kind));
        for (l, backlog, command) in [
            (py, 7, "python3"),
            (node, 511, "node"),
            (unix, 5, "python3"),
        ] {
            assert_eq!(l.backlog, backlog, "{:?} {}", fixture.kind, l.local);
            assert_eq!(l.limit, Some(fixture.limit));
            assert!(l.below_limit);
            assert_eq!(l.netns, inode);
            let owner = l
                .processes
                .first()
                .unwrap_or_else(|| panic!("no owner: {l:?}"));
            assert!(owner.command.starts_with(command), "{owner:?}");
            assert!(fixture.descendants().contains(&owner.pid), "{owner:?}");
            let cgroup = owner.cgroup.as_deref().unwrap();
            if cgroups.is_empty() {
                continue; // the cgroups are the test's own: none made (see above)
            }
            match fixture.kind {
                Kind::Unshared => {
                    assert_eq!(cgroup, cgroups[0].path);
                    let c = owner.container.as_ref().unwrap();
                    assert_eq!(
                        (c.runtime, c.id.as_str(), c.pod.as_deref()),
                        (Runtime::Docker, DOCKER_ID, None)
                    );
                }
                Kind::Container => {
                    assert_eq!(cgroup, cgroups[1].path);
                    let c = owner.container.as_ref().unwrap();
                    assert_eq!(
                        (c.runtime, c.id.as_str(), c.pod.as_deref()),
                        (Runtime::Containerd, CRI_ID, Some(POD))
                    );
                }
                Kind::Named => assert_eq!(owner.container, None, "{cgroup}"),
            }
        }
        assert_eq!(py.proto, Proto::Tcp);
        assert_eq!(unix.proto, Proto::Unix);
        assert_eq!(unix.drops, None);
    }
}

#[test]
fn relisten_raises_each_to_its_own_limit_and_reads_it_back_in_its_namespace() {
    if !own_netns("relisten_raises_each_to_its_own_limit_and_reads_it_back_in_its_namespace") {
        return;
    }
    let (_cgroups, fixtures) = three("relisten", is_host_root());
    let found = survey::survey_all().unwrap();
    for fixture in &fixtures {
        let mine = in_ns(&found.listeners, fixture.inode());
        assert_eq!(mine.len(), 3);
        for l in mine {
            let backlog = survey::relisten(l, u32::MAX).unwrap();
            // Read back in the listener's namespace: the kernel's own figure, that limit (a Unix
            // listener's read in the caller's namespace would be unknown or the host's).
            assert_eq!(
                backlog.applied(),
                Some(fixture.limit),
                "{:?} {}",
                fixture.kind,
                l.local
            );
            assert_eq!(backlog.source(), maxlisten::BacklogSource::Kernel);
        }
        assert_eq!(fixture.ss_backlog(PY), fixture.limit);
        assert_eq!(fixture.ss_backlog(NODE), fixture.limit);
        assert_eq!(
            fixture.ss_unix_backlog(&unix_path("relisten", fixture.kind)),
            fixture.limit
        );
        assert!(fixture.answers(PY) && fixture.answers(NODE));
        assert!(
            unix_answers(&unix_path("relisten", fixture.kind)),
            "{:?} {}",
            fixture.kind,
            unix_path("relisten", fixture.kind)
        );
    }
    // Surveyed again: nothing of theirs is below its limit.
    let again = survey::survey_all().unwrap();
    for fixture in &fixtures {
        let mine = in_ns(&again.listeners, fixture.inode());
        assert_eq!(mine.len(), 3);
        assert!(mine
            .iter()
            .all(|l| !l.below_limit && l.backlog == fixture.limit));
    }
}

#[test]
fn survey_netns_by_name_sees_only_that_namespace() {
    if !own_netns("survey_netns_by_name_sees_only_that_namespace") {
        return;
    }
    let fixture = Fixture::start(Kind::Named, 2048, &servers("by-name", Kind::Named));
    let ns = Netns::parse(fixture.name.as_deref().unwrap()).unwrap();
    let found = survey::survey_netns(&ns).unwrap();
    assert_eq!(found.namespaces.len(), 1);
    assert_eq!(found.namespaces[0].limit, Some(2048));
    assert_eq!(found.listeners.len(), 3, "{:?}", found.listeners);
    assert!(found.listeners.iter().all(|l| l.netns == fixture.inode()));
}

/// Starts `command` with pipes to its stdin and from its stdout: the process (killed on drop),
/// its stdin, its stdout and the first line it printed.
fn talking(mut command: Command) -> (Killed, ChildStdin, BufReader<ChildStdout>, String) {
    let mut child = Killed(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}")),
    );
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (child, stdin, stdout, line)
}

/// A Python server in its own namespace that, told to on stdin, opens a second listener and
/// moves it onto the first one's descriptor number (keeping the first open elsewhere).
const SWAPPER: &str = r#"
import os, socket, sys
a = socket.socket(); a.bind(("127.0.0.1", 9001)); a.listen(7)
print(a.fileno(), flush=True)
sys.stdin.readline()
keep = os.dup(a.fileno())
b = socket.socket(); b.bind(("127.0.0.1", 9002)); b.listen(9)
os.dup2(b.fileno(), a.fileno())
print("swapped", flush=True)
sys.stdin.readline()
"#;

#[test]
fn a_reused_descriptor_is_refused_and_both_sockets_are_left_alone() {
    if !own_netns("a_reused_descriptor_is_refused_and_both_sockets_are_left_alone") {
        return;
    }
    let (mut child, mut stdin, mut stdout, mut line) =
        talking(unshared(None, &["python3", "-c", SWAPPER]));
    let pid = child.id();
    let fd: i32 = line.trim().parse().unwrap();

    let ns = Netns::of_pid(pid).unwrap();
    let before = survey::survey_netns(&ns).unwrap();
    let stale = before
        .listeners
        .iter()
        .find(|l| l.local_name() == "127.0.0.1:9001")
        .unwrap()
        .clone();
    assert_eq!(stale.backlog, 7);
    assert_eq!(stale.processes.len(), 1);
    assert_eq!((stale.processes[0].pid, stale.processes[0].fd), (pid, fd));

    stdin.write_all(b"swap\n").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "swapped");

    let err = survey::relisten(&stale, u32::MAX).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("check that it is the socket surveyed"),
        "{message}"
    );
    assert!(message.contains(&format!("pid {pid} fd {fd}")), "{message}");
    // Both unchanged: the one surveyed (now at another descriptor) and the one now at its fd.
    let after = survey::survey_netns(&ns).unwrap();
    let backlog = |local: &str| {
        after
            .listeners
            .iter()
            .find(|l| l.local_name() == local)
            .map(|l| l.backlog)
    };
    assert_eq!(backlog("127.0.0.1:9001"), Some(7));
    assert_eq!(backlog("127.0.0.1:9002"), Some(9));
    let _ = child.kill();
    let _ = child.wait();
}

/// A Python server that forks: parent and child hold the one listener; told to on stdin, the
/// parent closes its descriptor.
const FORKER: &str = r#"
import os, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 9003)); s.listen(7)
child = os.fork()
if child == 0:
    time.sleep(600)
    sys.exit(0)
print(s.fileno(), child, flush=True)
sys.stdin.readline()
s.close()
print("closed", flush=True)
sys.stdin.readline()
os.kill(child, 9)
"#;

#[test]
fn relisten_tries_every_holder_until_one_works() {
    if !own_netns("relisten_tries_every_holder_until_one_works") {
        return;
    }
    let (mut child, mut stdin, mut stdout, mut line) =
        talking(unshared(Some(3000), &["python3", "-c", FORKER]));
    let pid = child.id();
    let forked: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();

    let ns = Netns::of_pid(pid).unwrap();
    let found = survey::survey_netns(&ns).unwrap();
    let mut info = found
        .listeners
        .iter()
        .find(|l| l.local_name() == "127.0.0.1:9003")
        .unwrap()
        .clone();
    let mut holders: Vec<u32> = info.processes.iter().map(|o| o.pid).collect();
    holders.sort_unstable();
    let mut expected = vec![pid, forked];
    expected.sort_unstable();
    assert_eq!(holders, expected, "{info:?}");
    // The parent first, so that its failure comes before the child's success.
    info.processes.sort_by_key(|o| o.pid != pid);

    stdin.write_all(b"close\n").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "closed");

    // The parent's descriptor is gone; the child still holds the socket: raised through it.
    let backlog = survey::relisten(&info, u32::MAX).unwrap();
    assert_eq!(backlog.applied(), Some(3000));
    let after = survey::survey_netns(&ns).unwrap();
    let now = after
        .listeners
        .iter()
        .find(|l| l.local_name() == "127.0.0.1:9003")
        .unwrap();
    assert_eq!(now.backlog, 3000);
    assert_eq!(
        now.processes.iter().map(|o| o.pid).collect::<Vec<_>>(),
        [forked]
    );
    let _ = stdin.write_all(b"end\n");
    let _ = child.wait();
}

#[test]
fn link_local_scope_and_bound_device_are_kept_and_selectable() {
    if !own_netns("link_local_scope_and_bound_device_are_kept_and_selectable") {
        return;
    }
    common::in_netns(2048, || {
        // A device of this namespace only, with a link-local address.
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        let ns = format!("/proc/{}/task/{tid}/ns/net", std::process::id());
        for args in [
            // (veth: the kernel here may lack the dummy driver.)
            &["link", "add", "ml0", "type", "veth", "peer", "name", "ml1"][..],
            &["link", "set", "ml0", "up"],
            &["link", "set", "ml1", "up"],
            &["addr", "add", "fe80::1/64", "dev", "ml0", "nodad"],
        ] {
            let status = Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .arg("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "ip {args:?}");
        }
        // SAFETY: if_nametoindex takes a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c"ml0".as_ptr()) };
        assert_ne!(index, 0);
        let addr = std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 0, 0, index);
        let scoped = maxlisten::ListenerBuilder::new().bind(addr).unwrap();
        let scoped_port = scoped.local_addr().unwrap().port();
        let bound = maxlisten::ListenerBuilder::new()
            .bind_device("ml0")
            .bind("0.0.0.0:0")
            .unwrap();
        let bound_port = bound.local_addr().unwrap().port();
        let plain = maxlisten::bind("127.0.0.1:0").unwrap();

        let found = survey::survey().unwrap();
        let by_port = |port: u16| {
            found
                .listeners
                .iter()
                .find(|l| l.local.as_socket_addr().map(|a| a.port()) == Some(port))
                .unwrap()
        };
        let s = by_port(scoped_port);
        assert_eq!(s.local_name(), format!("[fe80::1%ml0]:{scoped_port}"));
        assert_eq!(s.device.as_deref(), Some("ml0"));
        assert_ne!(s.local.as_socket_addr().unwrap().ip().to_string(), "::");
        let b = by_port(bound_port);
        assert_eq!(b.device.as_deref(), Some("ml0"));
        assert_eq!(b.local_name(), format!("0.0.0.0:{bound_port}"));
        let p = by_port(plain.local_addr().unwrap().port());
        assert_eq!(p.device, None);
        // Selectable by device.
        let on_ml0 = maxlisten::select::Selector::new().device("ml0");
        let mut chosen: Vec<u16> = found
            .listeners
            .iter()
            .filter(|l| on_ml0.matches(l))
            .map(|l| l.local.as_socket_addr().unwrap().port())
            .collect();
        chosen.sort_unstable();
        let mut expected = vec![scoped_port, bound_port];
        expected.sort_unstable();
        assert_eq!(chosen, expected);
    });
}
