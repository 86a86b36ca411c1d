//! `maxlisten exporter` in a private network namespace, against what a network throws at it and
//! against a real Prometheus server (Debian's `prometheus`, started here with a temporary
//! configuration and storage): Prometheus scrapes it every second, `up` is 1 and its HTTP API
//! returns the series of a Python listener with the backlog the kernel applied; `promtool check
//! metrics` passes on a scrape. Then: 50 concurrent scrapes are all answered (sharing
//! collections), silent and slow clients and idle keep-alive connections are dropped after the
//! header timeout while scrapes go on, garbage gets 400 (or a closed connection), oversized heads 431, unknown paths 404, other
//! methods 405, and many scrapes do not grow its memory.
//!
//! Through the scrape job the Prometheus Operator makes of deploy/kubernetes/podmonitor.yaml, a
//! listener keeps its owner labels (`pod`, `container`) and gets its node.
//!
//! With `--all-namespaces` (in a sandbox of its own, see `common::own_sandbox`) a listener of
//! another network namespace is shown with that namespace's inode and limit.
//!
//! Runs for any user, in a user namespace of its own with network namespaces inside; a missing
//! `prometheus`/`promtool` (Debian package `prometheus`) skips with a message outside CI and is a
//! failure with `CI=true`.

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::namespaces::unshared;
use common::process::{have, listening, python_listen, python_listen_argv, Killed};
use common::{in_netns, own_netns, own_sandbox, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");
/// The exporter's header timeout (src/bin/maxlisten/exporter.rs).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections it serves at once.
const MAX_CONNECTIONS: usize = 64;

/// Starts `maxlisten exporter ARGS --listen 127.0.0.1:0`-like on `port` in the calling thread's
/// namespace and waits until it answers.
fn exporter(port: u16, args: &[&str]) -> Killed {
    let child = Command::new(BIN)
        .arg("exporter")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start maxlisten exporter");
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the exporter does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// One HTTP/1.0 request (no keep-alive, no chunking): status code, head, body.
fn get(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    (status, head.to_string(), body.to_string())
}

/// What the exporter answers to `bytes`: the response (possibly empty, if it closed).
fn send_raw(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    // A reset after the answer is fine: what was read is the answer.
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The sample value of a series line starting with `prefix` in an exposition text.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A free loopback port in the calling thread's namespace.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus API query: the `data.result` array.
fn query(prom: u16, expr: &str) -> Vec<serde_json::Value> {
    let mut encoded = String::new();
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => encoded.push(b as char),
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    let (status, _, body) = get(prom, "GET", &format!("/api/v1/query?query={encoded}"));
    assert_eq!(status, 200, "{expr}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{expr}: {body}");
    v["data"]["result"].as_array().unwrap().clone()
}

#[test]
fn prometheus_scrapes_the_exporter() {
    if !own_netns("prometheus_scrapes_the_exporter")
        || !have(
            "prometheus_scrapes_the_exporter",
            "prometheus",
            "prometheus",
        )
        || !have("prometheus_scrapes_the_exporter", "promtool", "prometheus")
    {
        return;
    }
    let dir = temp_dir("exporter-prometheus");
    in_netns(3000, || {
        let (_python, py_port) = listening(&mut python_listen(8));
        let port = free_port();
        let _exporter = exporter(port, &[]);

        // promtool lints one scrape.
        let (status, head, body) = get(port, "GET", "/metrics");
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let lint = lint.wait_with_output().unwrap();
        assert!(
            lint.status.success(),
            "promtool check metrics: {}{}\n{body}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );

        // A real Prometheus server scrapes it every second.
        let prom = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: maxlisten\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{port}']\n",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("deploy/prometheus/alerts.yml")
                    .display()
            ),
        )
        .unwrap();
        let _prometheus = start_prometheus(&dir, &config, prom);
        let deadline = Instant::now() + Duration::from_secs(60);
        let series = format!("maxlisten_listener_backlog{{local=\"127.0.0.1:{py_port}\"}}");
        let (up, found) = loop {
            let ready = TcpStream::connect(("127.0.0.1", prom)).is_ok();
            if ready {
                let up = query(prom, "up{job=\"maxlisten\"}");
                let found = query(prom, &series);
                if !found.is_empty() && up.first().is_some_and(|u| u["value"][1] == "1") {
                    break (up, found);
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not get the series in 60s; its log: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        eprintln!("up: {up:?}");
        eprintln!("{series}: {found:?}");
        let metric = &found[0]["metric"];
        assert_eq!(found[0]["value"][1], "8", "python asked for 8: {found:?}");
        assert_eq!(metric["proto"], "tcp");
        assert_eq!(metric["command"], "python3");
        assert_eq!(metric["job"], "maxlisten");
        let below = query(
            prom,
            &format!("maxlisten_listener_below_limit{{local=\"127.0.0.1:{py_port}\"}}"),
        );
        assert_eq!(below[0]["value"][1], "1", "{below:?}");
        let health = query(prom, "maxlisten_collect_success");
        assert_eq!(health[0]["value"][1], "1", "{health:?}");
        // The exporter's own listener has the namespace's limit as its backlog.
        let own = query(
            prom,
            &format!("maxlisten_listener_backlog{{local=\"127.0.0.1:{port}\"}}"),
        );
        assert_eq!(own[0]["value"][1], "3000", "{own:?}");

        // deploy/prometheus/alerts.yml on these real series: every rule evaluates, and python's
        // listener below the limit makes MaxlistenBacklogBelowLimit pending (for: 30m).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, _, body) = get(prom, "GET", "/api/v1/rules");
            let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
            let all: Vec<&serde_json::Value> = rules["data"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .collect();
            assert!(all.len() >= 2, "alerts.yml not loaded: {body}");
            let (_, _, body) = get(prom, "GET", "/api/v1/alerts");
            let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
            let pending = alerts["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == "MaxlistenBacklogBelowLimit"
                        && a["labels"]["local"] == format!("127.0.0.1:{py_port}").as_str()
                        && a["state"] == "pending"
                        && a["value"].as_str().is_some_and(|v| v.starts_with('8'))
                });
            let evaluated = all.iter().all(|r| r["health"] == "ok");
            if pending && evaluated {
                eprintln!(
                    "alerts.yml: {} rules evaluate; MaxlistenBacklogBelowLimit pending for python3",
                    all.len()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rules {:?}, alerts {alerts}",
                all.iter()
                    .map(|r| (&r["name"], &r["health"], &r["lastError"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        // The exporter's own listener, at the limit, is not below it: no alert for it.
        let (_, _, body) = get(prom, "GET", "/api/v1/alerts");
        assert!(
            !body.contains(&format!("\"local\":\"127.0.0.1:{port}\"")),
            "{body}"
        );
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exporter_answers_what_it_must_and_refuses_the_rest() {
    if !own_netns("exporter_answers_what_it_must_and_refuses_the_rest") {
        return;
    }
    in_netns(4096, || {
        let port = free_port();
        let _exporter = exporter(port, &[]);
        let (status, _, body) = get(port, "GET", "/metrics");
        assert_eq!(status, 200);
        assert_eq!(sample(&body, "maxlisten_collect_success "), Some(1.0));
        assert!(sample(&body, "maxlisten_collect_duration_seconds ").is_some());
        // The query string is not part of the path.
        assert_eq!(get(port, "GET", "/metrics?x=1").0, 200);
        for path in [
            "/",
            "/metric",
            "/metrics/",
            "/favicon.ico",
            "/../etc/passwd",
        ] {
            assert_eq!(get(port, "GET", path).0, 404, "{path}");
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let (status, head, _) = get(port, method, "/metrics");
            assert_eq!(status, 405, "{method}");
            assert!(
                head.to_ascii_lowercase().contains("allow: get, head"),
                "{head}"
            );
        }
        // HEAD: the head alone.
        let (status, _, body) = get(port, "HEAD", "/metrics");
        assert_eq!((status, body.as_str()), (200, ""));

        // Garbage: 400, or the connection closed without an answer.
        for garbage in [
            &b"\x00\xff\x13\x37 garbage\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"\r\n\r\n\r\n\r\n",
            &[0xde; 4096][..],
        ] {
            let answer = send_raw(port, garbage);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
                "{garbage:?} got {answer:?}"
            );
        }
        // An oversized head: 431 (hyper's limit), not an unbounded buffer.
        let mut big = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 1 << 20));
        big.extend_from_slice(b"\r\n\r\n");
        let answer = send_raw(port, &big);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer:?}"
        );
        // And it still answers.
        assert_eq!(get(port, "GET", "/metrics").0, 200);
    });
}

#[test]
fn fifty_concurrent_scrapes_share_collections() {
    if !own_netns("fifty_concurrent_scrapes_share_collections") {
        return;
    }
    in_netns(4096, || {
        // Enough listeners that a collection takes a while, so scrapes overlap.
        common::allow_open_files(2000 + 256);
        let _held: Vec<TcpListener> = (0..2000)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = free_port();
        let _exporter = exporter(port, &[]);
        let barrier = std::sync::Barrier::new(50);
        let bodies: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let (status, _, body) = get(port, "GET", "/metrics");
                        assert_eq!(status, 200);
                        body
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut durations = HashSet::new();
        for body in &bodies {
            assert_eq!(sample(body, "maxlisten_collect_success "), Some(1.0));
            let listeners = body
                .lines()
                .filter(|l| l.starts_with("maxlisten_listener_backlog{"))
                .count();
            assert!(listeners >= 2000, "a scrape lists {listeners} listeners");
            durations.insert(
                body.lines()
                    .find(|l| l.starts_with("maxlisten_collect_duration_seconds "))
                    .unwrap()
                    .to_string(),
            );
        }
        // Each distinct duration is one collection: 50 scrapes, far fewer collections.
        eprintln!(
            "50 concurrent scrapes were served by {} collections",
            durations.len()
        );
        assert!(
            durations.len() <= 25,
            "{} collections for 50 concurrent scrapes: they are not shared",
            durations.len()
        );
    });
}

#[test]
fn silent_and_slow_clients_are_dropped_and_scrapes_go_on() {
    if !own_netns("silent_and_slow_clients_are_dropped_and_scrapes_go_on") {
        return;
    }
    in_netns(4096, || {
        let port = free_port();
        let _exporter = exporter(port, &[]);
        let started = Instant::now();
        // More silent clients than the exporter serves at once: every slot is taken.
        let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS + 16)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        // A slow client: a byte of its head every half second, never finishing.
        let slow = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            let begun = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if s.write_all(b"X").is_err() {
                    return begun.elapsed();
                }
                assert!(
                    begun.elapsed() < HEADER_TIMEOUT * 4,
                    "the slow client is never dropped"
                );
            }
        });
        // A keep-alive client that scrapes once and then says nothing more.
        let idle = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(HEADER_TIMEOUT * 4)).unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 65536];
            // The chunked response ends with a zero-length chunk; then the connection idles.
            while !seen.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).expect("the response");
                assert!(n > 0, "closed before the response ended");
                seen.extend_from_slice(&buf[..n]);
            }
            let idle_from = Instant::now();
            let n = s.read(&mut buf).unwrap_or(0);
            assert_eq!(n, 0, "data on an idle keep-alive connection");
            idle_from.elapsed()
        });
        // A scrape is answered once the silent ones time out (they wait in the kernel's queue
        // meanwhile, not in the exporter's memory).
        let (status, _, body) = get(port, "GET", "/metrics");
        assert_eq!(status, 200);
        assert_eq!(sample(&body, "maxlisten_collect_success "), Some(1.0));
        let waited = started.elapsed();
        eprintln!(
            "a scrape behind {} silent clients was answered after {waited:?}",
            silent.len()
        );
        assert!(waited < HEADER_TIMEOUT * 3, "{waited:?}");
        // Every silent client has been closed by the exporter (EOF, or reset for the ones
        // still queued when it closes them).
        for mut s in silent {
            s.set_read_timeout(Some(HEADER_TIMEOUT * 3)).unwrap();
            let mut byte = [0u8; 1];
            match s.read(&mut byte) {
                Ok(0) => {}
                Ok(_) => panic!("a silent client got data"),
                Err(e) => assert!(
                    e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut,
                    "a silent client was never dropped: {e}"
                ),
            }
            let _ = s.shutdown(Shutdown::Both);
        }
        let idle_for = idle.join().unwrap();
        eprintln!("an idle keep-alive connection was closed after {idle_for:?}");
        assert!(idle_for < HEADER_TIMEOUT * 3, "{idle_for:?}");
        let slow_for = slow.join().unwrap();
        eprintln!("the slow client was dropped after {slow_for:?}");
        assert!(
            slow_for >= HEADER_TIMEOUT - Duration::from_secs(1),
            "{slow_for:?}"
        );
        assert_eq!(get(port, "GET", "/metrics").0, 200);
    });
}

/// Resident memory of `pid` in KiB: (VmRSS, VmHWM).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn many_scrapes_do_not_grow_its_memory() {
    if !own_netns("many_scrapes_do_not_grow_its_memory") {
        return;
    }
    in_netns(4096, || {
        common::allow_open_files(1000 + 256);
        let _held: Vec<TcpListener> = (0..1000)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = free_port();
        let exporter = exporter(port, &[]);
        let pid = exporter.0.id();
        for _ in 0..30 {
            assert_eq!(get(port, "GET", "/metrics").0, 200);
        }
        let (warm, _) = memory(pid);
        for _ in 0..300 {
            assert_eq!(get(port, "GET", "/metrics").0, 200);
            // Clients that give up half-way, too.
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n");
        }
        let (after, peak) = memory(pid);
        eprintln!("VmRSS after 30 scrapes {warm} KiB, after 330 {after} KiB (VmHWM {peak} KiB)");
        assert!(
            after <= warm + 1024,
            "resident memory grew from {warm} KiB to {after} KiB over 300 scrapes"
        );
    });
}

#[test]
fn all_namespaces_shows_another_namespaces_listener_with_its_own_limit() {
    const TEST: &str = "all_namespaces_shows_another_namespaces_listener_with_its_own_limit";
    if !own_sandbox(TEST) {
        return;
    }
    // A "container": Python in a network namespace of its own whose limit is 1234.
    let (_python, py_port) = listening(&mut unshared(Some(1234), &python_listen_argv(8)));
    let inner = std::fs::read_link(format!("/proc/{}/ns/net", _python.0.id()))
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .to_string();

    let port = free_port();
    let _exporter = exporter(port, &["--all-namespaces"]);
    let (status, _, body) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    let series = body
        .lines()
        .find(|l| {
            l.starts_with("maxlisten_listener_backlog{")
                && l.contains(&format!("local=\"127.0.0.1:{py_port}\""))
        })
        .unwrap_or_else(|| panic!("no series for the other namespace's listener:\n{body}"));
    assert!(
        series.contains(&format!("netns=\"{inner}\"")) && series.contains("command=\"python3\""),
        "{series}"
    );
    assert!(series.ends_with("} 8"), "{series}");
    assert_eq!(
        sample(&body, &format!("maxlisten_somaxconn{{netns=\"{inner}\"}}")),
        Some(1234.0),
        "{body}"
    );
    assert_eq!(sample(&body, "maxlisten_unreadable_namespaces "), Some(0.0));
}

/// The relabelings of deploy/kubernetes/podmonitor.yaml as Prometheus's `relabel_configs`
/// (JSON, which a Prometheus configuration file accepts as YAML), read with python3-yaml; `None`
/// (the test skips, or fails with `CI=true`) without it.
fn podmonitor_relabelings(test: &str) -> Option<String> {
    const TO_JSON: &str = "import sys, json, yaml\n\
        (ep,) = yaml.safe_load(open(sys.argv[1]))['spec']['podMetricsEndpoints']\n\
        names = {'sourceLabels': 'source_labels', 'targetLabel': 'target_label'}\n\
        print(json.dumps([{names.get(k, k): v for k, v in r.items()} for r in ep.get('relabelings', [])]))\n";
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/podmonitor.yaml");
    let out = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find_map(|python| {
            Command::new(python)
                .args(["-c", TO_JSON])
                .arg(&file)
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
    if out.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs python3 with yaml (Debian package python3-yaml); CI=true forbids skipping it"
        );
        eprintln!("SKIPPED {test}: needs python3-yaml");
    }
    out.map(|o| String::from_utf8(o.stdout).unwrap())
}

/// deploy/kubernetes/podmonitor.yaml as the Prometheus Operator makes it a scrape job: every
/// target first gets the scraped pod's `namespace`, `container` and `pod` (and `job`,
/// `endpoint`), then the PodMonitor's own relabelings. The exporter's `container` and `pod`
/// labels name each listener's owner; a real Prometheus scraping it through that job must keep
/// them (a host process has none), not put the maxlisten pod's name on every listener, and adds
/// the node.
#[test]
fn the_podmonitor_job_keeps_the_owner_labels_of_the_listeners() {
    let test = "the_podmonitor_job_keeps_the_owner_labels_of_the_listeners";
    if !own_netns(test) || !have(test, "prometheus", "prometheus") {
        return;
    }
    let Some(relabelings) = podmonitor_relabelings(test) else {
        return;
    };
    let dir = temp_dir("exporter-podmonitor");
    in_netns(3000, || {
        let (_python, py_port) = listening(&mut python_listen(8));
        let port = free_port();
        let _exporter = exporter(port, &[]);
        // The operator's own relabelings for a PodMonitor (namespace, container, pod, job,
        // endpoint), on a target with the pod's metadata, then the file's.
        let operator = r#"[{"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
             {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
             {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
             {"target_label": "job", "replacement": "maxlisten/maxlisten"},
             {"target_label": "endpoint", "replacement": "metrics"}]"#;
        let mut relabel: Vec<serde_json::Value> = serde_json::from_str(operator).unwrap();
        relabel.extend(serde_json::from_str::<Vec<serde_json::Value>>(&relabelings).unwrap());
        let relabel = serde_json::to_string(&relabel).unwrap();
        let prom = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n\
                 scrape_configs:\n  - job_name: podMonitor/maxlisten/maxlisten/0\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{port}']\n        \
                 labels: {{__meta_kubernetes_namespace: maxlisten, __meta_kubernetes_pod_name: maxlisten-x7k2p, \
                 __meta_kubernetes_pod_container_name: exporter, __meta_kubernetes_pod_node_name: node1}}\n    \
                 relabel_configs: {relabel}\n"
            ),
        )
        .unwrap();
        let _prometheus = start_prometheus(&dir, &config, prom);
        let series = format!("maxlisten_listener_backlog{{local=\"127.0.0.1:{py_port}\"}}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let found = loop {
            if TcpStream::connect(("127.0.0.1", prom)).is_ok() {
                let found = query(prom, &series);
                if !found.is_empty() {
                    break found;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not get {series} in 60s; its log: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let metric = &found[0]["metric"];
        eprintln!("{series} through the PodMonitor's job: {metric}");
        assert_eq!(metric["command"], "python3", "{metric}");
        assert_eq!(metric["node"], "node1", "{metric}");
        // python3 runs in no container: no pod, no container, under any name.
        for label in [
            "pod",
            "container",
            "exported_pod",
            "exported_container",
            "pod_uid",
            "container_id",
        ] {
            assert!(
                metric.get(label).is_none(),
                "python3's listener is labelled {label}={}: {metric}",
                metric[label]
            );
        }
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// A real Prometheus server with `config`, its data and log (`prometheus.log`) in `dir`,
/// serving its API on 127.0.0.1:`port`; killed on drop.
fn start_prometheus(dir: &Path, config: &Path, port: u16) -> Killed {
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    )
}
