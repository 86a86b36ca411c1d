//! The `maxlisten` command against servers this crate did not write (Python, Node), in a
//! private network namespace with `net.core.somaxconn` = 65535: `survey` finds them below the
//! limit with their owners, `raise` takes each to the limit live (`ss` agrees) and they keep
//! serving; as `nobody`, `raise` fails naming the missing permission and changes nothing.
//! Needs root: skipped with a message outside CI, a failure with `CI=true`.

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::process::{listening, Killed};
use common::{in_netns, own_netns, require_root, set_somaxconn, ss_send_q, ss_unix, temp_dir};

const LIMIT: u32 = 65535;
const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");

/// A server process, killed when dropped.
struct Server {
    child: Killed,
    /// The TCP port, or 0 for the Unix server.
    port: u16,
    name: &'static str,
    expected_backlog: u32,
}

/// Python: serve "ok" to every connection; print the port (or "ready") once listening.
const PY_SERVE: &str = "
import socket, sys
kind = sys.argv[1]
if kind == 'somaxconn':
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(socket.SOMAXCONN)
elif kind == 'create_server':
    s = socket.create_server(('127.0.0.1', 0))
else:
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[2])
    s.listen(5)
print(s.getsockname()[1] if kind != 'unix' else 0, flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b'ok\\n')
    c.close()
";

const NODE_SERVE: &str = "
require('net').createServer(c => c.end('ok\\n'))
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });
";

fn start(name: &'static str, mut command: Command, expected_backlog: u32) -> Server {
    let (child, port) = listening(&mut command);
    Server {
        child,
        port,
        name,
        expected_backlog,
    }
}

fn python(kind: &str, arg: &str) -> Command {
    let mut c = Command::new("python3");
    c.args(["-c", PY_SERVE, kind, arg]);
    c
}

fn run(args: &[&str], as_nobody: bool) -> Output {
    let mut command = if as_nobody {
        common::process::as_nobody(BIN)
    } else {
        Command::new(BIN)
    };
    command.args(args).output().unwrap()
}

fn answers(server: &Server, path: &Path) {
    let mut reply = String::new();
    if server.port == 0 {
        UnixStream::connect(path)
            .unwrap()
            .read_to_string(&mut reply)
            .unwrap();
    } else {
        TcpStream::connect(("127.0.0.1", server.port))
            .unwrap()
            .read_to_string(&mut reply)
            .unwrap();
    }
    assert_eq!(reply, "ok\n", "{} does not serve", server.name);
}

/// Metric name → its samples: labels and value.
type Samples = HashMap<String, Vec<(HashMap<String, String>, f64)>>;

/// Parses node_exporter's text format strictly enough to catch a malformed line: HELP and
/// TYPE before a metric's samples, `name{k="v",...} value`, escaped label values, unique
/// label sets. Returns metric name → samples (labels, value).
fn parse_prometheus(text: &str) -> Samples {
    let mut typed = HashSet::new();
    let mut helped = HashSet::new();
    let mut samples = Samples::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty());
            helped.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            typed.insert(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        // A sample without labels: `name value`.
        let (open, close) = match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) => (open, close),
            _ => {
                let end = line.find(' ').expect("name value");
                (end, end)
            }
        };
        let name = &line[..open];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        assert!(typed.contains(name), "sample before TYPE: {line}");
        let value: f64 = line[close + 1..].trim().parse().expect("value");
        // k="v" pairs, with \\ \" \n escapes inside values.
        let mut labels = HashMap::new();
        let inside = if open < close {
            &line[open + 1..close]
        } else {
            ""
        };
        let mut chars = inside.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{key}"
            );
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value") {
                    '\\' => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?} in {line}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            match chars.next() {
                None | Some(',') => {}
                other => panic!("expected ',' not {other:?} in {line}"),
            }
        }
        let mut key: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        key.sort();
        assert!(
            seen.insert((name.to_owned(), key)),
            "duplicate sample: {line}"
        );
        samples
            .entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    samples
}

/// Python (listen(SOMAXCONN), create_server, a Unix listener at `path`) and Node servers.
fn servers(path: &Path) -> Vec<Server> {
    let mut servers = vec![
        // glibc's SOMAXCONN, 4096 here.
        start("python listen(SOMAXCONN)", python("somaxconn", ""), 4096),
        start("python create_server", python("create_server", ""), 128),
        start("python unix", python("unix", path.to_str().unwrap()), 5),
    ];
    let mut node = Command::new("node");
    node.args(["-e", NODE_SERVE]);
    servers.push(start("node", node, 511));
    servers
}

#[test]
fn survey_finds_python_and_node_servers_and_raise_takes_them_to_the_limit() {
    if !own_netns("survey_finds_python_and_node_servers_and_raise_takes_them_to_the_limit") {
        return;
    }
    let dir = temp_dir("cli");
    let path = dir.join("py.sock");
    in_netns(LIMIT, || {
        let servers = servers(&path);

        // survey --json: each with its backlog, pid and command, below the limit.
        let out = run(&["survey", "--json"], false);
        assert!(out.status.success(), "{out:?}");
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed = listed["listeners"].as_array().unwrap();
        let local_of = |s: &Server| {
            if s.port == 0 {
                path.display().to_string()
            } else {
                format!("127.0.0.1:{}", s.port)
            }
        };
        for server in &servers {
            let local = local_of(server);
            let entry = listed
                .iter()
                .find(|e| e["local"] == local.as_str())
                .unwrap_or_else(|| panic!("{} ({local}) not listed: {listed:?}", server.name));
            assert_eq!(entry["backlog"], server.expected_backlog, "{}", server.name);
            assert_eq!(entry["below_limit"], true, "{}", server.name);
            assert_eq!(
                entry["proto"],
                if server.port == 0 { "unix" } else { "tcp" }
            );
            assert_eq!(entry["queued"], 0);
            let processes = entry["processes"].as_array().unwrap();
            let owner = processes
                .iter()
                .find(|p| p["pid"] == server.child.id())
                .unwrap_or_else(|| panic!("{}: owner not found in {processes:?}", server.name));
            let command = owner["command"].as_str().unwrap();
            let expected = if server.name == "node" {
                "node"
            } else {
                "python"
            };
            assert!(command.starts_with(expected), "{}: {command}", server.name);
            assert!(owner["fd"].as_i64().unwrap() >= 3);
        }

        // The human table flags them, and --below-limit keeps them.
        let out = run(&["survey", "--below-limit"], false);
        let table = String::from_utf8(out.stdout).unwrap();
        for server in &servers {
            let line = table
                .lines()
                .find(|l| l.contains(&local_of(server)))
                .unwrap_or_else(|| panic!("{} missing:\n{table}", server.name));
            assert!(line.contains(" yes "), "{line}");
        }

        // --prometheus parses, one sample per listener and metric.
        let out = run(&["survey", "--prometheus"], false);
        let samples = parse_prometheus(&String::from_utf8(out.stdout).unwrap());
        let backlogs = &samples["maxlisten_listener_backlog"];
        for server in &servers {
            let local = local_of(server);
            let (labels, value) = backlogs
                .iter()
                .find(|(labels, _)| labels["local"] == local)
                .unwrap_or_else(|| panic!("no backlog sample for {local}"));
            assert_eq!(*value, f64::from(server.expected_backlog));
            assert_eq!(
                labels["proto"],
                if server.port == 0 { "unix" } else { "tcp" }
            );
        }
        assert!(samples.contains_key("maxlisten_listener_queued"));
        assert!(samples.contains_key("maxlisten_listener_drops_total"));

        // --all-below-limit with a backlog below some of them: those are left as they are
        // (not refused, not lowered); the others would go to it.
        let out = run(
            &[
                "raise",
                "--all-below-limit",
                "--backlog",
                "1000",
                "--dry-run",
            ],
            false,
        );
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("backlog 4096, above the 1000 asked for; left as it is"),
            "{stdout}"
        );
        assert!(stdout.contains("511 → 1000 (dry run)"), "{stdout}");
        // Named outright, the same is a lowering, refused as a whole.
        let port = servers[0].port.to_string();
        let out = run(&["raise", "--port", &port, "--backlog", "1000"], false);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("refused"),
            "{out:?}"
        );
        assert_eq!(ss_send_q(servers[0].port), 4096);

        // A dry run changes nothing either.
        let out = run(&["raise", "--all-below-limit", "--dry-run"], false);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(ss_send_q(servers[0].port), 4096);

        // As root: every one raised to the limit, live; ss agrees; each still serves.
        let out = run(&["raise", "--all-below-limit"], false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        for server in &servers {
            assert!(
                stdout.contains(&format!("{} → {LIMIT}", server.expected_backlog)),
                "{}: {stdout}",
                server.name
            );
            if server.port == 0 {
                assert_eq!(ss_unix(path.to_str().unwrap()).1, LIMIT);
            } else {
                assert_eq!(ss_send_q(server.port), LIMIT, "{}", server.name);
            }
            answers(server, &path);
        }
        // Nothing is left below the limit (in this namespace, only these servers listen).
        let out = run(&["survey", "--json", "--below-limit"], false);
        let left: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(left["listeners"].as_array().unwrap().len(), 0, "{left}");
        drop(servers);
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn raise_as_another_user_is_refused_and_changes_nothing() {
    // A second user exists only for the real root (a user namespace of one's own maps one).
    if !require_root("raise_as_another_user_is_refused_and_changes_nothing") {
        return;
    }
    let dir = temp_dir("cli-nobody");
    let path = dir.join("py.sock");
    // Anyone may pass through the directory, as for a real socket directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    in_netns(LIMIT, || {
        let servers = servers(&path);
        let out = run(&["survey", "--json"], false);
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed = listed["listeners"].as_array().unwrap();
        let local_of = |s: &Server| {
            if s.port == 0 {
                path.display().to_string()
            } else {
                format!("127.0.0.1:{}", s.port)
            }
        };
        // As nobody against root's servers: refused, naming the permission; nothing changes.
        let node_server = &servers[3];
        let node_entry = listed
            .iter()
            .find(|e| e["local"] == local_of(node_server).as_str())
            .unwrap();
        let fd = node_entry["processes"][0]["fd"].to_string();
        let pid = node_server.child.id().to_string();
        let out = run(&["raise", "--pid", &pid, "--fd", &fd], true);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "raise as nobody succeeded: {out:?}");
        assert!(stderr.contains("CAP_SYS_PTRACE"), "{stderr}");
        assert!(stderr.contains(&format!("pid {pid} fd {fd}")), "{stderr}");
        let out = run(&["raise", "--all-below-limit"], true);
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("root"), "{stderr}");
        for server in &servers {
            if server.port != 0 {
                assert_eq!(ss_send_q(server.port), server.expected_backlog);
            }
        }
        assert_eq!(ss_unix(path.to_str().unwrap()).1, 5);

        drop(servers);
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn survey_filters_choose_listeners_in_any_users_own_namespace() {
    // Read-only, in the namespace the test runs in: no privilege needed.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let dir = temp_dir("cli-filters");
    let path = dir.join("filters.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let pid = std::process::id().to_string();
    let listed = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["survey", "--json"];
        all.extend_from_slice(args);
        let out = run(&all, false);
        assert!(out.status.success(), "{out:?}");
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        value["listeners"].as_array().unwrap().clone()
    };
    let locals = |rows: &[serde_json::Value]| -> HashSet<String> {
        rows.iter()
            .map(|r| r["local"].as_str().unwrap().to_owned())
            .collect()
    };
    let tcp_local = format!("127.0.0.1:{port}");
    let unix_local = path.display().to_string();
    let port_arg = port.to_string();
    assert_eq!(
        locals(&listed(&["--port", &port_arg])),
        HashSet::from([tcp_local.clone()])
    );
    assert_eq!(
        locals(&listed(&["--path", &unix_local])),
        HashSet::from([unix_local.clone()])
    );
    let mine = locals(&listed(&["--pid", &pid]));
    assert!(
        mine.contains(&tcp_local) && mine.contains(&unix_local),
        "{mine:?}"
    );
    let mine_unix = listed(&["--pid", &pid, "--proto", "unix"]);
    assert!(
        mine_unix.iter().all(|r| r["proto"] == "unix"),
        "{mine_unix:?}"
    );
    assert!(locals(&mine_unix).contains(&unix_local));
    assert!(listed(&["--port", &port_arg, "--proto", "unix"]).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn report_binds_the_given_address_once() {
    // Every bind(2) the command makes, as strace sees them: the fixed port exactly once (the
    // other stacks are measured on ephemeral loopback ports).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let out = Command::new("strace")
        .args([
            "-f",
            "-e",
            "trace=bind",
            "-o",
            "/dev/stderr",
            BIN,
            "report",
            "--addr",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let trace = String::from_utf8_lossy(&out.stderr);
    let binds: Vec<&str> = trace.lines().filter(|l| l.contains("bind(")).collect();
    let on_port = binds
        .iter()
        .filter(|l| l.contains(&format!("sin_port=htons({port})")))
        .count();
    assert_eq!(on_port, 1, "{trace}");
    // std's and (with the feature) tokio's probes, on port 0.
    assert!(
        binds
            .iter()
            .filter(|l| l.contains("sin_port=htons(0)"))
            .count()
            >= 1,
        "{trace}"
    );
}

#[test]
fn bad_input_gets_a_message_and_a_non_zero_exit() {
    // No selector.
    let out = run(&["raise"], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all-below-limit"));
    // A process that does not exist: one this test started and reaped, so its pid is free
    // (until the kernel hands it out again, which takes a whole turn of the pid space).
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id().to_string();
    gone.wait().unwrap();
    let out = run(&["raise", "--pid", &gone_pid, "--fd", "3"], false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("pid {gone_pid} fd 3")), "{stderr}");
    assert!(stderr.contains("No such process"), "{stderr}");
    // A descriptor that is not a socket: the command names its own file descriptor 7 (a
    // process may always reach its own descriptors, so this holds for any user); listen is
    // never called on it.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("exec 7</proc/self/status; exec {BIN} raise --pid $$ --fd 7"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fd 7") && stderr.contains("not a socket"),
        "{stderr}"
    );
    // Unknown flags are clap's usage error.
    let out = run(&["survey", "--nope"], false);
    assert_eq!(out.status.code(), Some(2));
    // Every subcommand's help has an example.
    for sub in ["survey", "raise", "report"] {
        let out = run(&[sub, "--help"], false);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples:"),
            "{sub}"
        );
    }
}

/// Waits until a process below `ancestor` is stopped in system call `nr` (as strace's
/// `delay_enter` holds it), reading `/proc/PID/task/TID/syscall`.
fn wait_in_syscall(ancestor: u32, nr: libc::c_long) {
    let started = std::time::Instant::now();
    let nr = nr.to_string();
    loop {
        let mut pids = vec![ancestor];
        let mut found = false;
        while let Some(pid) = pids.pop() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let path = task.path();
                let syscall = std::fs::read_to_string(path.join("syscall")).unwrap_or_default();
                found |= syscall.split_whitespace().next() == Some(nr.as_str());
                let children = std::fs::read_to_string(path.join("children")).unwrap_or_default();
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        if found {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no process below {ancestor} reached system call {nr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn raise_whose_backlog_stays_where_it_was_fails_saying_so() {
    const TEST: &str = "raise_whose_backlog_stays_where_it_was_fails_saying_so";
    if !own_netns(TEST) {
        return;
    }
    in_netns(4096, || {
        let server = start("python create_server", python("create_server", ""), 128);
        assert_eq!(ss_send_q(server.port), 128);
        // The survey sees limit 4096; then, while strace holds the command in its pidfd_open
        // (the first step of the re-listen, after the survey), the limit falls to 128, so the
        // kernel keeps 128: "128 → 128" is not a raise.
        let port = server.port.to_string();
        let raise = Command::new("strace")
            .args(["-f", "-o", "/dev/null", "-e", "trace=pidfd_open"])
            .args(["-e", "inject=pidfd_open:delay_enter=3000000"])
            .args([BIN, "raise", "--port", &port])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strace");
        wait_in_syscall(raise.id(), libc::SYS_pidfd_open);
        set_somaxconn(128);
        let out = raise.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(!stdout.contains("128 → 128"), "{stdout}");
        assert!(
            stderr.contains(&format!("tcp 127.0.0.1:{port} "))
                && stderr.contains("the backlog stayed 128, not the 4096 asked for")
                && stderr.contains("net.core.somaxconn changed"),
            "{stderr}"
        );
        assert!(stderr.contains("1 listener was not raised"), "{stderr}");
        assert_eq!(ss_send_q(server.port), 128);
        // Now at its limit: nothing to do, exit 0.
        let out = run(&["raise", "--port", &port, "--backlog", "4096"], false);
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("already 128 (its limit 128)"),
            "{out:?}"
        );
    });
}

/// `maxlisten`, not started, in a mount namespace of its own where `mask` (a shell command)
/// has hidden `net.core.somaxconn` first.
fn masked(mask: &str, args: &[&str]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "sh", "-c"])
        .arg(format!("{mask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args);
    command
}

/// `/proc/sys` masked, as podman's `--security-opt mask=/proc/sys` or systemd's
/// `InaccessiblePaths=/proc/sys` make it: no namespace's `net.core.somaxconn` can be read.
const NO_PROC_SYS: &str = "mount -t tmpfs masked /proc/sys";

/// `maxlisten ARGS` where `/proc/sys` is masked.
fn run_without_sysctls(args: &[&str]) -> Output {
    masked(NO_PROC_SYS, args).output().unwrap()
}

#[test]
fn where_proc_sys_is_masked_the_limit_is_the_kernels_and_nothing_is_lowered() {
    const TEST: &str = "where_proc_sys_is_masked_the_limit_is_the_kernels_and_nothing_is_lowered";
    if !own_netns(TEST) {
        return;
    }
    in_netns(128, || {
        let at_limit = start("python create_server", python("create_server", ""), 128);
        let port = at_limit.port.to_string();
        // The limit, though unreadable in /proc/sys, is what the kernel applies: 128.
        let out = run_without_sysctls(&["survey", "--port", &port]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout.contains("system limit 128 (net.core.somaxconn)"),
            "{stdout}"
        );
        assert!(!stdout.contains("unknown"), "{stdout}");
        // At its limit: nothing to do (not a raise "128 → 128"), in a dry run too.
        for dry in [&[][..], &["--dry-run"]] {
            let out = run_without_sysctls(&[&["raise", "--port", &port][..], dry].concat());
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            assert!(!stdout.contains('→'), "{stdout}");
        }
        // With a higher limit, the same run raises it, and says to what.
        set_somaxconn(4096);
        let out = run_without_sysctls(&["raise", "--port", &port]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("128 → 4096"),
            "{out:?}"
        );
        assert_eq!(ss_send_q(at_limit.port), 4096);
        // A listener above a limit that fell since it listened: the kernel's limit is known,
        // so going to it would lower the listener, which is refused as anywhere else.
        let above = start("python listen(SOMAXCONN)", python("somaxconn", ""), 4096);
        set_somaxconn(1024);
        let port = above.port.to_string();
        let out = run_without_sysctls(&["raise", "--port", &port]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("would lower it to 1024; refused"),
            "{out:?}"
        );
        assert_eq!(ss_send_q(above.port), 4096, "{out:?}");
    });
}

/// A file masked as container runtimes mask one (runc's `maskedPaths`, podman's
/// `--security-opt mask=`): `/dev/null` bound over it, so that it reads as empty rather than
/// failing. The limit is then the kernel's, as where `/proc/sys` cannot be read at all.
#[test]
fn where_somaxconn_reads_empty_the_limit_is_the_kernels() {
    const TEST: &str = "where_somaxconn_reads_empty_the_limit_is_the_kernels";
    if !own_netns(TEST) {
        return;
    }
    in_netns(128, || {
        let at_limit = start("python create_server", python("create_server", ""), 128);
        let port = at_limit.port.to_string();
        let mask = "mount --bind /dev/null /proc/sys/net/core/somaxconn && \
                    [ -z \"$(cat /proc/sys/net/core/somaxconn)\" ]";
        let out = masked(mask, &["survey", "--port", &port]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout.contains("system limit 128 (net.core.somaxconn)"),
            "{stdout}"
        );
    });
}

/// Where the limit cannot be known at all: `/proc/sys` masked, and no socket may be made to
/// measure it (a seccomp policy refuses IPv4, IPv6 and Unix sockets, as systemd's
/// `RestrictAddressFamilies=AF_NETLINK` does; sock_diag's netlink socket is still allowed).
/// `listen(2)` would cap any request at that unseen limit, so a listener above a limit that
/// fell since it listened would be lowered: it is left as it is, and the raise fails for it.
// Not on i686: socket(2) may be a socketcall there, which the filter cannot single out.
#[cfg(target_arch = "x86_64")]
#[test]
fn where_the_limit_cannot_be_known_nothing_is_relistened() {
    use common::{filtered_on_exec, refusing};
    const TEST: &str = "where_the_limit_cannot_be_known_nothing_is_relistened";
    if !own_netns(TEST) {
        return;
    }
    let blind = |args: &[&str]| {
        let mut command = masked(NO_PROC_SYS, args);
        let families = [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].map(|f| f as u32);
        filtered_on_exec(
            &mut command,
            refusing(libc::SYS_socket, &families, libc::EACCES),
        );
        command.output().unwrap()
    };
    in_netns(4096, || {
        let above = start("python listen(SOMAXCONN)", python("somaxconn", ""), 4096);
        set_somaxconn(1024);
        let port = above.port.to_string();
        let out = blind(&["survey", "--port", &port]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("system limit unknown"),
            "the limit is known after all, so this test tests nothing: {out:?}"
        );
        for dry in [&["--dry-run"][..], &[]] {
            let out = blind(&[&["raise", "--port", &port][..], dry].concat());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{dry:?}: {out:?}");
            assert!(
                stderr.contains("left at 4096: its namespace's limit cannot be read here"),
                "{dry:?}: {stderr}"
            );
            assert_eq!(ss_send_q(above.port), 4096, "{dry:?}: {out:?}");
        }
        // A request to lower it is carried out there, as asked.
        let out = blind(&[
            "raise",
            "--port",
            &port,
            "--backlog",
            "100",
            "--allow-lower",
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(ss_send_q(above.port), 100, "{out:?}");
    });
}

#[test]
fn no_listener_matches_echoes_the_flags_and_all_below_limit_finding_none_is_success() {
    const TEST: &str =
        "no_listener_matches_echoes_the_flags_and_all_below_limit_finding_none_is_success";
    if !own_netns(TEST) {
        return;
    }
    in_netns(4096, || {
        // A port is a TCP criterion: with --proto unix, nothing can match.
        let out = run(&["raise", "--port", "8000", "--proto", "unix"], false);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no listener matches --port 8000 --proto unix; nothing changed"),
            "{stderr}"
        );
        assert!(stderr.contains("maxlisten survey"), "{stderr}");
        let out = run(&["raise", "--path", "/run/no such.sock"], false);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("no listener matches --path '/run/no such.sock'"),
            "{out:?}"
        );
        // A namespace named outright is echoed too (here: this one, by a path).
        let out = run(
            &["raise", "--netns", "/proc/self/ns/net", "--port", "8000"],
            false,
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "no listener matches --netns /proc/self/ns/net --port 8000; nothing changed \
                 (maxlisten survey --netns /proc/self/ns/net lists the listeners there)"
            ),
            "{out:?}"
        );
        // --all-below-limit finding nothing below the limit is nothing to do: exit 0, also
        // with --proto or --device (which name no listener); a named one that does not exist
        // is still a failure.
        for args in [
            &["raise", "--all-below-limit"][..],
            &["raise", "--all-below-limit", "--proto", "unix"],
            &["raise", "--all-below-limit", "--device", "lo"],
        ] {
            let out = run(args, false);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("nothing to raise"),
                "{args:?}: {out:?}"
            );
        }
        let out = run(&["raise", "--all-below-limit", "--port", "8000"], false);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("no listener matches --port 8000 --all-below-limit"),
            "{out:?}"
        );
    });
}

#[test]
fn a_dry_run_that_finds_no_holder_fails_as_the_real_run_would() {
    const TEST: &str = "a_dry_run_that_finds_no_holder_fails_as_the_real_run_would";
    if !own_netns(TEST) {
        return;
    }
    in_netns(4096, || {
        let server = start("python create_server", python("create_server", ""), 128);
        let port = server.port.to_string();
        // In a PID namespace of its own (an agent without hostPID), the command sees the
        // listener but no process holding it.
        let raise = |extra: &[&str]| {
            Command::new("unshare")
                .args([
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    BIN,
                    "raise",
                    "--port",
                    &port,
                ])
                .args(extra)
                .output()
                .unwrap()
        };
        let real = raise(&[]);
        let dry = raise(&["--dry-run"]);
        assert_eq!(real.status.code(), Some(1), "{real:?}");
        assert_eq!(dry.status.code(), real.status.code(), "{dry:?}");
        let stderr = String::from_utf8_lossy(&dry.stderr);
        assert!(
            stderr.contains(&format!("tcp 127.0.0.1:{port} "))
                && stderr.contains("128 → 4096 would fail (dry run)")
                && stderr.contains("child PID namespace")
                && stderr.contains("hostPID"),
            "{stderr}"
        );
        assert!(
            stderr.contains("1 listener would not be raised (dry run)"),
            "{stderr}"
        );
        assert!(dry.stdout.is_empty(), "{dry:?}");
        assert_eq!(ss_send_q(server.port), 128);
        // With the holder in view, the dry run is a success and still changes nothing.
        let out = run(&["raise", "--port", &port, "--dry-run"], false);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(ss_send_q(server.port), 128);
    });
}
