//! `maxlisten survey|raise --all-namespaces|--netns` against namespaces made the three ways
//! containers are (`unshare --net`, `ip netns add`, `unshare --net --pid --fork --mount-proc`),
//! each with its own limit, real Python and Node servers and a Python Unix listener, their
//! processes in cgroups named as Docker and containerd under Kubernetes name them.
//!
//! `--all-namespaces` covers the whole host, so each test that uses it runs in a sandbox of its
//! own (new network, PID and mount namespaces, a fresh /proc and an empty /run/netns): there the
//! whole host is what the test made, and a raise can never reach a listener it did not start.
//! The sandbox is the test's own: for any user it is made inside a user namespace of its own
//! (see `common::own_sandbox`). What needs the host's root (cgroups in the host's cgroup tree,
//! a second user, nobody) is skipped with a message outside CI, a failure with `CI=true`.

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::process::{Command, Output};

use common::namespaces::{
    namespace_holders, three, unix_answers, unix_path, Fixture, InOwnUserns, Kind, Server, CRI_ID,
    DOCKER_ID, NODE, POD, PY,
};
use common::process::{as_nobody, started, text, Killed};
use common::{is_host_root, needs_root, own_sandbox};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");
/// Why a test needs root.
const CGROUPS: &str = "needs root: it makes cgroups in the host's cgroup tree";
const NOBODY: &str = "needs root: it runs the command as a second user (nobody)";

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The three namespaces (see `three`), their processes in cgroups named as runtimes name them
/// where this is the host's root.
fn start(test: &str) -> (Vec<common::namespaces::Cgroup>, Vec<Fixture>) {
    three(test, is_host_root())
}

/// Python listening on 127.0.0.1:`port` (backlog 3) once this returns, killed on drop.
fn python_on(port: u16) -> Killed {
    let code = format!(
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); \
         s.listen(3); print('up', flush=True); time.sleep(60)"
    );
    let (server, up) = started(Command::new("python3").args(["-c", &code]));
    assert_eq!(up, "up");
    server
}

fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn listeners_of(doc: &Value, inode: u64) -> Vec<Value> {
    doc["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["netns"] == inode)
        .cloned()
        .collect()
}

#[test]
fn survey_all_namespaces_lists_each_with_its_namespace_limit_owner_and_cgroup() {
    const TEST: &str = "survey_all_namespaces_lists_each_with_its_namespace_limit_owner_and_cgroup";
    if !needs_root(TEST, CGROUPS) || !own_sandbox(TEST) {
        return;
    }
    let (cgroups, fixtures) = start("survey");
    let doc = json(&["survey", "--all-namespaces", "--json"]);
    // The sandbox's own namespace and the three.
    assert_eq!(doc["namespaces"].as_array().unwrap().len(), 4, "{doc:#}");
    assert_eq!(doc["unreadable_processes"], 0);
    assert_eq!(doc["unreadable_namespaces"], 0);
    for fixture in &fixtures {
        let inode = fixture.inode();
        let ns = doc["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ns| ns["netns"] == inode)
            .unwrap_or_else(|| panic!("{:?} missing: {doc:#}", fixture.kind));
        assert_eq!(ns["limit"], fixture.limit);
        assert_eq!(ns["listeners"], 3);
        let names: Vec<String> = fixture.name.iter().cloned().collect();
        assert_eq!(ns["names"], serde_json::json!(names));
        assert!(ns["listen_overflows"].is_u64() && ns["listen_drops"].is_u64());
        let mine = listeners_of(&doc, inode);
        let find = |local: &str| {
            mine.iter()
                .find(|l| l["local"] == local)
                .unwrap_or_else(|| panic!("{local} missing in {:?}: {mine:#?}", fixture.kind))
        };
        for (l, backlog, command) in [
            (find(&format!("127.0.0.1:{PY}")), 7, "python3"),
            (find(&format!("127.0.0.1:{NODE}")), 511, "node"),
            (find(&unix_path("survey", fixture.kind)), 5, "python3"),
        ] {
            assert_eq!(l["backlog"], backlog, "{l:#}");
            assert_eq!(l["limit"], fixture.limit, "{l:#}");
            assert_eq!(l["below_limit"], true);
            let owner = &l["processes"][0];
            assert!(
                owner["command"].as_str().unwrap().starts_with(command),
                "{l:#}"
            );
            let cgroup = owner["cgroup"].as_str().unwrap();
            match fixture.kind {
                Kind::Unshared => {
                    assert_eq!(cgroup, cgroups[0].path);
                    assert_eq!(owner["container"]["runtime"], "docker");
                    assert_eq!(owner["container"]["id"], DOCKER_ID);
                    assert_eq!(owner["container"]["pod"], Value::Null);
                }
                Kind::Container => {
                    assert_eq!(cgroup, cgroups[1].path);
                    assert_eq!(owner["container"]["runtime"], "containerd");
                    assert_eq!(owner["container"]["id"], CRI_ID);
                    assert_eq!(owner["container"]["pod"], POD);
                }
                Kind::Named => assert_eq!(owner["container"], Value::Null, "{l:#}"),
            }
        }
    }

    // The table: a NETNS column (the ip netns name where there is one) and each one's LIMIT;
    // the header lists every namespace with its limit.
    let out = run(&["survey", "--all-namespaces"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("4 network namespaces"), "{table}");
    let name = fixtures[1].name.clone().unwrap();
    assert!(
        table.contains(&format!(
            "  {name} ({}): limit 2222, 3 listeners",
            fixtures[1].inode()
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "  {}: limit 1111, 3 listeners",
            fixtures[0].inode()
        )),
        "{table}"
    );
    let heads = table.lines().find(|l| l.starts_with("NETNS")).unwrap();
    assert!(
        heads.contains("LIMIT") && heads.contains("BACKLOG"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(&name) && l.contains(&format!("127.0.0.1:{NODE}")))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[3..5], ["511", "2222"], "{row}");
    assert!(
        table.contains(&format!("(docker {})", &DOCKER_ID[..12])),
        "{table}"
    );
    assert!(
        table.contains(&format!("(containerd {}, pod {POD})", &CRI_ID[..12])),
        "{table}"
    );

    // One namespace, by name, pid or path.
    for ns in [
        name.clone(),
        fixtures[1].pid.to_string(),
        format!("/run/netns/{name}"),
    ] {
        let one = json(&["survey", "--netns", &ns, "--json"]);
        assert_eq!(one["namespaces"].as_array().unwrap().len(), 1, "{ns}");
        assert_eq!(one["namespaces"][0]["netns"], fixtures[1].inode());
        assert_eq!(one["listeners"].as_array().unwrap().len(), 3, "{one:#}");
    }
    let filtered = json(&["survey", "--all-namespaces", "--json", "--port", "8081"]);
    assert_eq!(
        filtered["listeners"].as_array().unwrap().len(),
        3,
        "{filtered:#}"
    );

    // --prometheus --output: the contract's families, written atomically, promtool agrees.
    let dir = common::temp_dir("cli-netns-prom");
    let file = dir.join("maxlisten.prom");
    let out = run(&[
        "survey",
        "--all-namespaces",
        "--prometheus",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let prom = std::fs::read_to_string(&file).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(check.status.success(), "promtool: {}\n{prom}", text(&check));
    for fixture in &fixtures {
        let inode = fixture.inode();
        assert!(
            prom.contains(&format!(
                "maxlisten_somaxconn{{netns=\"{inode}\"}} {}\n",
                fixture.limit
            )),
            "{prom}"
        );
        assert!(
            prom.contains(&format!(
                "maxlisten_netns_listen_drops_total{{netns=\"{inode}\"}} "
            )),
            "{prom}"
        );
        let info_name = fixture.name.clone().unwrap_or_default();
        assert!(
            prom.contains(&format!(
                "maxlisten_netns_info{{netns=\"{inode}\",name=\"{info_name}\"}} 1\n"
            )),
            "{prom}"
        );
    }
    let node_in_pod = format!(
        "maxlisten_listener_backlog{{netns=\"{}\",proto=\"tcp\",local=\"127.0.0.1:{NODE}\",\
         command=\"node\",container_id=\"{CRI_ID}\",pod_uid=\"{POD}\"}} 511\n",
        fixtures[2].inode(),
    );
    assert!(prom.contains(&node_in_pod), "{prom}");
    assert!(
        prom.contains("maxlisten_unreadable_namespaces 0\n"),
        "{prom}"
    );
    // A failed run leaves the file as it was, and no temporary file behind.
    let out = run(&[
        "survey",
        "--netns",
        "/nonexistent/netns",
        "--prometheus",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/netns"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), prom);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raise_all_namespaces_brings_each_to_its_own_limit_once() {
    const TEST: &str = "raise_all_namespaces_brings_each_to_its_own_limit_once";
    if !own_sandbox(TEST) {
        return;
    }
    let (_cgroups, fixtures) = start("raise");
    let out = run(&[
        "raise",
        "--all-namespaces",
        "--all-below-limit",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for fixture in &fixtures {
        assert_eq!(fixture.ss_backlog(PY), 7);
    }

    let out = run(&["raise", "--all-namespaces", "--all-below-limit"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for fixture in &fixtures {
        // ss, run inside each namespace, agrees: each at its own namespace's limit.
        assert_eq!(fixture.ss_backlog(PY), fixture.limit, "{stdout}");
        assert_eq!(fixture.ss_backlog(NODE), fixture.limit, "{stdout}");
        let path = unix_path("raise", fixture.kind);
        assert_eq!(fixture.ss_unix_backlog(&path), fixture.limit, "{stdout}");
        assert!(
            stdout.contains(&format!("7 → {}", fixture.limit)),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("5 → {}", fixture.limit)),
            "{stdout}"
        );
        // Every server still answers.
        assert!(
            fixture.answers(PY) && fixture.answers(NODE),
            "{:?}",
            fixture.kind
        );
        assert!(unix_answers(&path), "{path}");
    }

    // Again: nothing below the limit, exit 0, nothing changed.
    let out = run(&["raise", "--all-namespaces", "--all-below-limit"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to raise"),
        "{}",
        text(&out)
    );
    for fixture in &fixtures {
        assert_eq!(fixture.ss_backlog(PY), fixture.limit);
    }

    // Lowering is refused, and nothing changes; --allow-lower lowers.
    let name = fixtures[1].name.clone().unwrap();
    let out = run(&[
        "raise",
        "--netns",
        &name,
        "--port",
        "8081",
        "--backlog",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lower") && stderr.contains("--allow-lower"),
        "{stderr}"
    );
    assert_eq!(fixtures[1].ss_backlog(NODE), 2222);
    let out = run(&[
        "raise",
        "--netns",
        &name,
        "--port",
        "8081",
        "--backlog",
        "100",
        "--allow-lower",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fixtures[1].ss_backlog(NODE), 100);
    assert!(fixtures[1].answers(NODE));
    // The other namespaces' listeners on that port were not chosen.
    assert_eq!(fixtures[0].ss_backlog(NODE), 1111);
    // A listener at its limit, named outright: already done, exit 0.
    let out = run(&["raise", "--netns", &name, "--port", "8080"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already 2222"),
        "{}",
        text(&out)
    );
}

#[test]
fn without_privilege_all_namespaces_and_netns_fail_naming_what_is_missing() {
    const TEST: &str = "without_privilege_all_namespaces_and_netns_fail_naming_what_is_missing";
    if !needs_root(TEST, NOBODY) || !own_sandbox(TEST) {
        return;
    }
    let fixture = Fixture::start(
        Kind::Named,
        1500,
        &[Server::PythonTcp {
            port: PY,
            backlog: 7,
        }],
    );
    let name = fixture.name.clone().unwrap();
    let nobody = |args: &[&str]| as_nobody(BIN).args(args).output().unwrap();
    for args in [
        &["survey", "--all-namespaces"][..],
        &["survey", "--all-namespaces", "--json"],
        &["raise", "--all-namespaces", "--all-below-limit"],
        &["survey", "--netns", &name],
        &["raise", "--netns", &name, "--all-below-limit"],
    ] {
        let out = nobody(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        // Nothing printed as if it were the answer.
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("CAP_SYS_ADMIN"), "{args:?}: {stderr}");
    }
    assert_eq!(fixture.ss_backlog(PY), 7);
    // A named process whose descriptors cannot be read is reported as such.
    let python = fixture.descendants()[0].to_string();
    let out = nobody(&["raise", "--pid", &python]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {python}")) && stderr.contains("cannot be read"),
        "{stderr}"
    );
    assert!(!stderr.contains("no listener matches"), "{stderr}");
    // Its own namespace needs nothing.
    let out = nobody(&["survey", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_holder_hidden_by_hidepid_is_reported_as_such() {
    const TEST: &str = "a_holder_hidden_by_hidepid_is_reported_as_such";
    if !needs_root(TEST, NOBODY) || !own_sandbox(TEST) {
        return;
    }
    // This sandbox's own /proc, remounted as a hardened host mounts it.
    let remount = Command::new("mount")
        .args(["-o", "remount,hidepid=invisible", "/proc"])
        .status()
        .unwrap();
    assert!(remount.success());
    // Root's server in the sandbox's own namespace, which nobody's survey sees too.
    let mut server = python_on(9999);
    let out = as_nobody(BIN)
        .args(["raise", "--port", "9999"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:9999") && stderr.contains("hidepid=invisible"),
        "{stderr}"
    );
    assert!(stderr.contains("run as root"), "{stderr}");
}

/// More namespaces than the soft limit on open files allows (`--all-namespaces` holds each one
/// open): the command raises its soft limit to the hard one at start, as Go's runtime does, so
/// the survey still reads every namespace (the library alone fails there: see
/// `tests/netns_all.rs`).
#[test]
fn all_namespaces_beyond_the_soft_limit_on_open_files_are_all_surveyed() {
    const TEST: &str = "all_namespaces_beyond_the_soft_limit_on_open_files_are_all_surveyed";
    if !own_sandbox(TEST) {
        return;
    }
    const MORE: usize = 40;
    let holders = namespace_holders(MORE);
    let out = Command::new("sh")
        .args(["-c", "ulimit -Sn 32 && exec \"$0\" \"$@\""])
        .args([BIN, "survey", "--all-namespaces", "--json"])
        .output()
        .unwrap();
    drop(holders);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let namespaces = json["namespaces"].as_array().unwrap();
    // The sandbox's own namespace and one per holder.
    assert_eq!(namespaces.len(), MORE + 1, "{}", text(&out));
    assert_eq!(json["unreadable_namespaces"], 0, "{}", text(&out));
}

#[test]
fn a_namespace_that_cannot_be_entered_is_named_and_fails_the_raise() {
    const TEST: &str = "a_namespace_that_cannot_be_entered_is_named_and_fails_the_raise";
    if !needs_root(
        TEST,
        "needs root: its agent runs in a user namespace made below the host's, beside the test's",
    ) || !own_sandbox(TEST)
    {
        return;
    }
    let fixture = Fixture::start(
        Kind::Named,
        2048,
        &[Server::PythonTcp {
            port: PY,
            backlog: 7,
        }],
    );
    let name = fixture.name.clone().unwrap();
    let inode = fixture.inode();
    let holder = InOwnUserns::start(&name);
    let pid = holder.pid();
    let maxlisten = |args: &[&str]| holder.agent(BIN).args(args).output().unwrap();
    let named = format!(
        "network namespace {inode} (ip netns {name}, pid {pid}): setns: {}",
        std::io::Error::from_raw_os_error(libc::EPERM)
    );

    // A listener below the limit is in it: the raise did not do what was asked. Exit 1,
    // naming the namespace, a pid in it, the step and the OS error; a dry run says the same.
    for dry in [false, true] {
        let mut args = vec!["raise", "--all-namespaces", "--all-below-limit"];
        if dry {
            args.push("--dry-run");
        }
        let out = maxlisten(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&named), "{args:?}: {stderr}");
        assert!(stderr.contains("CAP_SYS_ADMIN"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("1 network namespace could not be read"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(fixture.ss_backlog(PY), 7);

    // The survey shows what it read (exit 0) and names it on stderr; the JSON lists it, the
    // metric counts it.
    let out = maxlisten(&["survey", "--all-namespaces"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("note: {named}")) && stderr.contains("its listeners are missing"),
        "{stderr}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!(
            "{name} ({inode}, pid {pid}): could not be read: {}; its listeners are missing",
            std::io::Error::from_raw_os_error(libc::EPERM)
        )),
        "{table}"
    );
    let out = maxlisten(&["survey", "--all-namespaces", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unreadable_namespaces"], 1, "{doc}");
    let details = &doc["unreadable_namespace_details"][0];
    assert_eq!(details["netns"], inode);
    assert_eq!(details["names"], serde_json::json!([name]));
    assert_eq!(details["pid"], pid);
    assert_eq!(details["kind"], "PermissionDenied");
    assert!(
        details["error"].as_str().unwrap().starts_with(&named),
        "{details}"
    );
    let out = maxlisten(&["survey", "--all-namespaces", "--prometheus"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("maxlisten_unreadable_namespaces 1\n"),
        "{}",
        text(&out)
    );
    // raise --watch says it once, not at every pass, and keeps watching.
    let watch = Command::new("nsenter")
        .arg(format!("--user=/proc/{pid}/ns/user"))
        .args(["unshare", "--net", BIN, "raise", "--watch", "1"])
        .args(["--all-namespaces", "--all-below-limit"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // nsenter and unshare exec in place: the pid is maxlisten's. Its stderr is read as it
    // comes: once the first pass has said it, two more periods or so, then SIGTERM.
    let mut watch = watch;
    let said = format!("cannot read netns={inode}: {named}");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = {
        let stderr = watch.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines_tx.send(line);
            }
        })
    };
    let mut stderr = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !stderr.contains(&said) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => stderr += &(line + "\n"),
            Err(_) => panic!("the first pass never said it: {stderr}"),
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: kill has no memory preconditions; the pid is this test's child, not reaped.
    assert_eq!(unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) }, 0);
    let status = watch.wait().unwrap();
    reader.join().unwrap();
    stderr.extend(lines_rx.try_iter().map(|line| line + "\n"));
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert_eq!(fixture.ss_backlog(PY), 7);
    // As root, the same namespace is read, and the run does what was asked.
    let out = run(&["raise", "--all-namespaces", "--all-below-limit"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fixture.ss_backlog(PY), 2048);
}
