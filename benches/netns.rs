//! `maxlisten survey --all-namespaces --json` against the loop an operator runs today, one
//! `nsenter --net=NS ss -ltnp` per network namespace, on the same 40 namespaces of 25 TCP
//! listeners each, side by side in one run.
//!
//! ```text
//! cargo bench --features cli --bench netns                          # 40 x 25, 15 rounds
//! cargo bench --features cli --bench netns -- --namespaces 10 --listeners 5 --rounds 3
//! ```
//!
//! Needs root (it makes the namespaces, and entering them needs CAP_SYS_ADMIN). Each namespace
//! is made by a thread of this process (`unshare(CLONE_NEWNET)`, its own `net.core.somaxconn`,
//! never the host's), which binds its listeners (on 0.0.0.0, so `lo` may stay down) and waits;
//! so the survey finds them through `/proc/PID/task/TID/ns/net`. The loop is given the namespaces' paths outright (no `lsns`), and
//! also covers the bench's own namespace, as the survey does. Each round runs both, in
//! alternating order; the medians are compared. Other namespaces on the host count for both.

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;

use support::{median, ms, time};

fn main() {
    let (mut namespaces, mut listeners, mut rounds) = (40usize, 25usize, 15usize);
    support::parse_args("netns", |flag, args| {
        match flag {
            "--namespaces" => namespaces = args.number::<usize>(flag).max(1),
            "--listeners" => listeners = args.number(flag),
            "--rounds" => rounds = args.number::<usize>(flag).max(1),
            _ => return false,
        }
        true
    });
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        fail("needs root: it makes network namespaces, and entering them needs CAP_SYS_ADMIN");
    }
    sandbox();

    // One thread per namespace: it enters a new one, binds its listeners, reports the path of
    // its namespace and waits until told to end.
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut stops = Vec::new();
    let mut threads = Vec::new();
    for i in 0..namespaces {
        let ready = ready_tx.clone();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        stops.push(stop_tx);
        threads.push(std::thread::spawn(move || {
            // SAFETY: unshare has no memory preconditions; it moves only this thread, which
            // was made for it.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            // This thread's namespace: /proc/thread-self follows the thread.
            std::fs::write("/proc/sys/net/core/somaxconn", (1024 + i).to_string())
                .expect("set the new namespace's somaxconn");
            let held: Vec<TcpListener> = (0..listeners)
                .map(|_| TcpListener::bind("0.0.0.0:0").expect("bind a listener"))
                .collect();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let path = format!("/proc/{}/task/{tid}/ns/net", std::process::id());
            ready.send(path).unwrap();
            let _ = stop_rx.recv();
            drop(held);
        }));
    }
    drop(ready_tx);
    let mut paths: Vec<String> = ready_rx.iter().take(namespaces).collect();
    paths.push("/proc/self/ns/net".replace("self", &std::process::id().to_string()));

    let survey_cmd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maxlisten"));
        c.args(["survey", "--all-namespaces", "--json"]);
        c
    };
    // The loop, as one shell script (what an operator types), given the paths.
    let script = format!(
        "for ns in {}; do nsenter --net=\"$ns\" ss -ltnp || exit 1; done",
        paths.join(" ")
    );
    let loop_cmd = || {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };

    // Both must see every listener of every namespace made here.
    let out = survey_cmd().output().unwrap();
    assert!(out.status.success(), "survey failed: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = json["listeners"].as_array().unwrap().len();
    let surveyed = json["namespaces"].as_array().unwrap().len();
    let out = loop_cmd().output().unwrap();
    assert!(out.status.success(), "the nsenter loop failed: {out:?}");
    let ss_lines = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"LISTEN"))
        .count();
    let made = namespaces * listeners;
    assert!(
        found >= made && ss_lines >= made,
        "survey {found}, ss {ss_lines}, made {made}"
    );
    assert!(surveyed > namespaces, "{surveyed} namespaces surveyed");

    let (mut survey, mut looped) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut order = [(&mut survey, survey_cmd()), (&mut looped, loop_cmd())];
        if round % 2 == 1 {
            order.reverse();
        }
        for (times, mut command) in order {
            times.push(time(&mut command));
        }
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for thread in threads {
        let _ = thread.join();
    }
    let (survey, looped) = (median(survey), median(looped));
    println!(
        "netns: {namespaces} network namespaces x {listeners} TCP listeners; {rounds} rounds, \
         alternating order, medians"
    );
    println!(
        "  maxlisten survey --all-namespaces --json  {:>8.1} ms  ({found} listeners in \
         {surveyed} namespaces)",
        ms(survey)
    );
    println!(
        "  for ns: nsenter --net=$ns ss -ltnp         {:>8.1} ms  ({} namespaces)",
        ms(looped),
        paths.len()
    );
    println!(
        "  ratio loop / maxlisten survey: {:.1}x (above 1: the survey is faster)",
        looped.as_secs_f64() / survey.as_secs_f64()
    );
}

/// Re-runs this benchmark in a sandbox of its own (new network, PID and mount namespaces, a
/// fresh /proc, an empty /run/netns) and exits with its status; inside, returns.
fn sandbox() {
    const INNER: &str = "MAXLISTEN_BENCH_SANDBOX";
    if std::env::var_os(INNER).is_some() {
        return;
    }
    let script = "mkdir -p /run/netns && mount -t tmpfs maxlisten-bench /run/netns && \
                  exec \"$0\" \"$@\"";
    let status = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(["sh", "-c", script])
        .arg(std::env::current_exe().expect("this benchmark's path"))
        .args(std::env::args().skip(1))
        .env(INNER, "1")
        .status()
        .expect("run unshare");
    std::process::exit(status.code().unwrap_or(1));
}

fn fail(why: &str) -> ! {
    support::fail("netns", why)
}
