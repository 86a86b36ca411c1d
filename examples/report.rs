//! A diagnosis of the accept backlog on this machine (or network namespace): the system limit
//! and where it comes from, the backlog each common stack ends up with, and what to do.
//!
//! ```text
//! cargo run --example report                 # aligned text
//! cargo run --example report -- --json       # the same data as one JSON object
//! cargo run --example report -- --addr 0.0.0.0:8080
//! ```

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use serde::Serialize;

#[derive(Serialize)]
pub(crate) struct Report {
    pub(crate) os: &'static str,
    pub(crate) address: String,
    pub(crate) system_limit: Limit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) linux: Option<LinuxCounters>,
    pub(crate) stacks: Vec<Stack>,
    /// The maxlisten listener's accept queue, as a server would export it; `None` where the
    /// platform cannot read it.
    pub(crate) metrics: Option<Metrics>,
    pub(crate) advice: Vec<String>,
}

/// What a server exports per listener: two gauges and a counter.
#[derive(Serialize)]
pub(crate) struct Metrics {
    pub(crate) accept_queue_queued: u32,
    pub(crate) accept_queue_backlog: u32,
    /// A counter (Linux 4.12+); `None` where the platform keeps none per listener.
    pub(crate) accept_queue_drops_total: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct Limit {
    pub(crate) value: Option<u32>,
    pub(crate) setting: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network_namespace: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct LinuxCounters {
    pub(crate) tcp_max_syn_backlog: Option<u64>,
    pub(crate) tcp_syncookies: Option<u64>,
    pub(crate) listen_overflows: Option<u64>,
    pub(crate) listen_drops: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct Stack {
    pub(crate) stack: &'static str,
    pub(crate) requested: String,
    pub(crate) applied: Option<u32>,
    /// "measured": a real listener was bound and read back; "computed": from the stack's
    /// documented default and the system limit.
    pub(crate) how: &'static str,
    pub(crate) clamped: Option<bool>,
    pub(crate) note: String,
}

fn main() -> ExitCode {
    let mut json = false;
    let mut addr = String::from("127.0.0.1:0");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--addr" => match args.next() {
                Some(value) => addr = value,
                None => return usage("--addr needs an address, e.g. 0.0.0.0:8080"),
            },
            "-h" | "--help" => {
                println!("usage: report [--json] [--addr HOST:PORT]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let report = match build(&addr) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("report: {err}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialize")
        );
    } else {
        print!("{}", render_text(&report));
    }
    ExitCode::SUCCESS
}

fn usage(why: &str) -> ExitCode {
    eprintln!("report: {why}\nusage: report [--json] [--addr HOST:PORT]");
    ExitCode::from(2)
}

pub(crate) fn build(addr: &str) -> Result<Report, Box<dyn std::error::Error>> {
    let limit = maxlisten::system_limit();
    let mut stacks = Vec::new();

    // Measured: bind for real, one after the other (the address may have a fixed port), and
    // read the applied backlog back from the kernel.
    let ours = maxlisten::ListenerBuilder::new().bind(addr)?;
    let backlog = ours.backlog();
    let metrics = ours.queue_stats().ok().map(|stats| Metrics {
        accept_queue_queued: stats.queued,
        accept_queue_backlog: stats.backlog,
        accept_queue_drops_total: stats.drops,
    });
    let bound: SocketAddr = ours.local_addr()?;
    drop(ours);
    stacks.push(Stack {
        stack: "maxlisten::bind",
        requested: backlog.requested().to_string(),
        applied: backlog.applied(),
        how: "measured",
        clamped: backlog.applied().map(|_| backlog.is_clamped()),
        // Where nothing can be read back (Windows), the line says what was passed to listen.
        note: match backlog.applied() {
            Some(_) => backlog.source().to_string(),
            None => backlog.to_string(),
        },
    });

    let std_listener = TcpListener::bind(addr)?;
    stacks.push(measured("std::net::TcpListener::bind", 128, &std_listener));
    drop(std_listener);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let tokio_listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
    stacks.push(measured(
        "tokio::net::TcpListener::bind",
        128,
        &tokio_listener,
    ));
    drop(tokio_listener);

    // Computed from each stack's default (read from their sources) and the limit.
    let nginx = if cfg!(any(target_os = "freebsd", target_vendor = "apple")) {
        -1
    } else {
        511
    };
    for (stack, requested, note) in [
        ("Go net.Listen", None, "reads the system limit itself"),
        (
            "systemd .socket, v254+",
            Some(i32::MAX as i64),
            "Backlog= default (SOMAXCONN_DELUXE)",
        ),
        (
            "systemd .socket, before v254",
            Some(4096),
            "Backlog= default: glibc SOMAXCONN (128 before 2.31)",
        ),
        (
            "actix-web HttpServer::bind",
            Some(1024),
            "default (.backlog(n))",
        ),
        ("actix-server ServerBuilder", Some(2048), "builder default"),
        ("Node.js server.listen", Some(511), "default"),
        ("nginx listen", Some(nginx), "default for this OS"),
        ("Redis", Some(511), "tcp-backlog default"),
        ("Python socket.listen()", Some(128), "min(SOMAXCONN, 128)"),
        ("Java ServerSocket", Some(50), "default"),
    ] {
        stacks.push(computed(stack, requested, limit, note));
    }

    let linux = cfg!(target_os = "linux").then(linux_counters);
    let mut advice = Vec::new();
    let setting = maxlisten::system_limit_name();
    match limit {
        Some(limit) if limit < 4096 => advice.push(format!(
            "The system limit {setting} = {limit} is low: every listener on this system gets at most \
             {limit} queued connections, whatever it asks for. Raise it now with \
             `sysctl -w {setting}=65535` and for good with a line `{setting} = 65535` in \
             {}, then restart the servers (or call refresh_backlog()). The setting is per network \
             namespace: in a container, set it where the container is made \
             (`docker run --sysctl {setting}=65535`, a pod's securityContext.sysctls).",
            persist_file()
        )),
        Some(limit) => advice.push(format!(
            "The system limit ({setting} = {limit}) is fine; servers that pass a fixed 128 \
             (std, tokio, Python) still use only 128 of it: bind with maxlisten::bind or \
             maxlisten::tokio::bind, or call maxlisten::set_backlog(&listener, u32::MAX) on \
             their listeners."
        )),
        None if cfg!(windows) => advice.push(
            "Windows reports no backlog limit and no applied backlog. A plain SOMAXCONN \
             (which is i32::MAX) gets the provider's \"reasonable maximum\", about 200; maxlisten \
             asks with SOMAXCONN_HINT(65535), which Windows adjusts into 200..=65535 \
             (Microsoft's listen() documentation; OpenJDK bug 8330940). These figures are \
             documented, not measured by this report."
                .into(),
        ),
        None => advice.push(
            "This OS does not report a backlog limit; maxlisten passes the largest value and \
             lets the kernel choose."
                .into(),
        ),
    }
    let namespace = network_namespace();
    if let Some(counters) = &linux {
        if counters.listen_overflows.unwrap_or(0) > 0 {
            advice.push(format!(
                "ListenOverflows is {}: accept queues overflowed on this system since boot (or since \
                 this network namespace was made) and SYNs were dropped. Find the listener with \
                 `ss -ltn` (Recv-Q close to Send-Q).",
                counters.listen_overflows.unwrap_or(0)
            ));
        }
    }

    Ok(Report {
        os: std::env::consts::OS,
        address: bound.to_string(),
        system_limit: Limit {
            value: limit,
            setting,
            network_namespace: namespace,
        },
        linux,
        stacks,
        metrics,
        advice,
    })
}

/// A listener bound by another stack, read back through maxlisten::queue_stats.
#[cfg(unix)]
fn measured<S: std::os::fd::AsFd>(stack: &'static str, requested: u32, listener: &S) -> Stack {
    let reading = maxlisten::queue_stats(listener);
    from_reading(stack, requested, reading.map(|stats| stats.backlog))
}

#[cfg(windows)]
fn measured<S: std::os::windows::io::AsSocket>(
    stack: &'static str,
    requested: u32,
    listener: &S,
) -> Stack {
    let reading = maxlisten::queue_stats(listener);
    from_reading(stack, requested, reading.map(|stats| stats.backlog))
}

fn from_reading(
    stack: &'static str,
    requested: u32,
    reading: Result<u32, maxlisten::Error>,
) -> Stack {
    match reading {
        Ok(applied) => Stack {
            stack,
            requested: requested.to_string(),
            applied: Some(applied),
            how: "measured",
            clamped: Some(applied < requested),
            note: "reported by the kernel".into(),
        },
        Err(err) => Stack {
            stack,
            requested: requested.to_string(),
            applied: None,
            how: "measured",
            clamped: None,
            note: format!("cannot read it here: {err}"),
        },
    }
}

/// What a stack gets with its default backlog: `None` means it reads the limit itself.
fn computed(stack: &'static str, requested: Option<i64>, limit: Option<u32>, note: &str) -> Stack {
    let Some(limit) = limit else {
        return Stack {
            stack,
            requested: requested.map_or("the system limit".into(), |r| r.to_string()),
            applied: None,
            how: "computed",
            clamped: None,
            note: format!("{note}; no system limit to compute with"),
        };
    };
    let (shown, applied) = match requested {
        None => ("the system limit".to_string(), limit),
        // Linux compares unsigned; the BSDs and Apple treat negative as "the limit".
        Some(r) if r < 0 => (r.to_string(), limit),
        Some(r) => (r.to_string(), (r.min(u32::MAX as i64) as u32).min(limit)),
    };
    let clamped = requested.is_some_and(|r| r > i64::from(applied));
    Stack {
        stack,
        requested: shown,
        applied: Some(applied),
        how: "computed",
        clamped: Some(clamped),
        note: note.into(),
    }
}

fn persist_file() -> &'static str {
    if cfg!(target_os = "linux") {
        "/etc/sysctl.d/90-somaxconn.conf"
    } else {
        "/etc/sysctl.conf"
    }
}

/// The network namespace of this thread, as `readlink /proc/thread-self/ns/net` shows it.
fn network_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self/ns/net").ok()?;
    Some(link.to_string_lossy().into_owned())
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `/proc/thread-self/...` follows this thread's network namespace (`/proc/net` would follow
/// the main thread's).
fn linux_counters() -> LinuxCounters {
    let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
    LinuxCounters {
        tcp_max_syn_backlog: read_number("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        tcp_syncookies: read_number("/proc/sys/net/ipv4/tcp_syncookies"),
        listen_overflows: tcp_ext(&netstat, "ListenOverflows"),
        listen_drops: tcp_ext(&netstat, "ListenDrops"),
    }
}

/// A `TcpExt:` counter: the file has a line of names, then a line of values.
fn tcp_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

pub(crate) fn render_text(report: &Report) -> String {
    let limit = &report.system_limit;
    let show = |v: Option<u64>| v.map_or("unknown".to_string(), |v| v.to_string());
    let mut lines = vec![
        format!(
            "Accept backlog report ({}, bound {})",
            report.os, report.address
        ),
        String::new(),
    ];
    let mut row = |name: &str, value: String| lines.push(format!("  {name:<22} {value}"));
    row(
        "system limit",
        limit
            .value
            .map_or("none reported".into(), |v| v.to_string()),
    );
    row("from", limit.setting.into());
    if let Some(ns) = &limit.network_namespace {
        row("network namespace", ns.clone());
    }
    if let Some(linux) = &report.linux {
        row("tcp_max_syn_backlog", show(linux.tcp_max_syn_backlog));
        row("tcp_syncookies", show(linux.tcp_syncookies));
        row("ListenOverflows", show(linux.listen_overflows));
        row("ListenDrops", show(linux.listen_drops));
    }
    lines.push(String::new());
    lines.push(format!(
        "  {:<30} {:>16} {:>10}  {:<9} {:<8} note",
        "stack", "requested", "applied", "how", "clamped"
    ));
    for s in &report.stacks {
        let clamped = match s.clamped {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let applied = s.applied.map_or("unknown".into(), |a| a.to_string());
        lines.push(format!(
            "  {:<30} {:>16} {:>10}  {:<9} {:<8} {}",
            s.stack, s.requested, applied, s.how, clamped, s.note
        ));
    }
    lines.push(String::new());
    if let Some(m) = &report.metrics {
        lines.push(
            "  metrics of the maxlisten listener (export the first two as gauges, drops as a counter):"
                .into(),
        );
        let drops = m
            .accept_queue_drops_total
            .map_or("none kept on this platform".into(), |d| d.to_string());
        lines.push(format!(
            "    accept_queue_queued        {}",
            m.accept_queue_queued
        ));
        lines.push(format!(
            "    accept_queue_backlog       {}",
            m.accept_queue_backlog
        ));
        lines.push(format!("    accept_queue_drops_total   {drops}"));
        lines.push(String::new());
    }
    for advice in &report.advice {
        lines.push(format!("  advice: {advice}"));
    }
    lines.join("\n") + "\n"
}
