//! `maxlisten`: see every listener on a host, flag those below the system limit, and raise them
//! live. A thin layer over `maxlisten::survey`; install with `cargo install maxlisten --features cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[allow(dead_code)] // its own main is the example's
#[path = "../../../examples/report.rs"]
mod report;

/// See and fix the accept backlog of every listener on this host.
#[derive(Parser)]
#[command(name = "maxlisten", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every listening TCP and Unix socket of this network namespace, with its backlog,
    /// queue, drops and owner, and flag those below the system limit (Linux).
    #[command(after_help = "Examples:\n  \
        maxlisten survey\n  \
        maxlisten survey --below-limit\n  \
        maxlisten survey --json | jq '.[] | select(.below_limit)'\n  \
        maxlisten survey --prometheus > /var/lib/node_exporter/textfile/maxlisten.prom\n\n\
        Run as root to see the owners of every process's sockets.")]
    Survey {
        /// Print a JSON array of objects.
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print node_exporter's textfile-collector format.
        #[arg(long)]
        prometheus: bool,
        /// Only listeners whose backlog is below the system limit.
        #[arg(long)]
        below_limit: bool,
    },
    /// Re-listen the selected listeners in their own processes, to the system limit unless
    /// --backlog says otherwise; they keep serving (Linux 5.6+, needs ptrace permission).
    #[command(after_help = "Examples:\n  \
        maxlisten raise --all-below-limit --dry-run\n  \
        maxlisten raise --all-below-limit\n  \
        maxlisten raise --port 8080\n  \
        maxlisten raise --pid 1234 --fd 3 --backlog 8192\n  \
        maxlisten raise --path /run/app.sock\n\n\
        Selectors combine: every listener that matches all of them is raised.")]
    Raise {
        /// Listeners held by this process.
        #[arg(long)]
        pid: Option<u32>,
        /// With --pid: only this descriptor of it.
        #[arg(long, requires = "pid")]
        fd: Option<i32>,
        /// TCP listeners on this port.
        #[arg(long)]
        port: Option<u16>,
        /// The Unix listener at this path.
        #[arg(long)]
        path: Option<std::path::PathBuf>,
        /// Every listener below the system limit.
        #[arg(long)]
        all_below_limit: bool,
        /// The backlog to ask for (the kernel still caps it at the system limit).
        #[arg(long)]
        backlog: Option<u32>,
        /// Say what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Diagnose the backlog limits of this machine: the limit, the kernel's counters, and what
    /// each common server stack ends up with.
    #[command(
        after_help = "Examples:\n  maxlisten report\n  maxlisten report --json\n  \
        maxlisten report --addr 0.0.0.0:8080"
    )]
    Report {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// The address to bind the measured listeners to.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Report { json, addr } => run_report(json, &addr),
        #[cfg(target_os = "linux")]
        Command::Survey {
            json,
            prometheus,
            below_limit,
        } => linux::survey(json, prometheus, below_limit),
        #[cfg(target_os = "linux")]
        Command::Raise {
            pid,
            fd,
            port,
            path,
            all_below_limit,
            backlog,
            dry_run,
        } => linux::raise(
            linux::Selection {
                pid,
                fd,
                port,
                path,
                all_below_limit,
            },
            backlog,
            dry_run,
        ),
        #[cfg(not(target_os = "linux"))]
        Command::Survey { .. } | Command::Raise { .. } => {
            eprintln!("maxlisten: survey and raise need Linux (sock_diag and pidfd_getfd)");
            ExitCode::from(2)
        }
    }
}

fn run_report(json: bool, addr: &str) -> ExitCode {
    match report::build(addr) {
        Ok(built) if json => match serde_json::to_string_pretty(&built) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("maxlisten report: {err}");
                ExitCode::FAILURE
            }
        },
        Ok(built) => {
            print!("{}", report::render_text(&built));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("maxlisten report: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::process::ExitCode;

    use maxlisten::survey::{self, ListenerInfo, Proto, Survey};
    use maxlisten::Address;
    use serde::Serialize;

    pub(crate) fn survey(json: bool, prometheus: bool, below_limit: bool) -> ExitCode {
        let found = match survey::survey() {
            Ok(found) => found,
            Err(err) => {
                eprintln!("maxlisten survey: {err}");
                return ExitCode::FAILURE;
            }
        };
        let shown: Vec<&ListenerInfo> = found
            .listeners
            .iter()
            .filter(|l| !below_limit || l.below_limit)
            .collect();
        if json {
            let rows: Vec<JsonListener> = shown.iter().map(|l| JsonListener::from(*l)).collect();
            match serde_json::to_string_pretty(&rows) {
                Ok(text) => println!("{text}"),
                Err(err) => {
                    eprintln!("maxlisten survey: {err}");
                    return ExitCode::FAILURE;
                }
            }
        } else if prometheus {
            print!("{}", prometheus_text(&shown));
        } else {
            print!("{}", table(&found, &shown));
        }
        note_unreadable(&found);
        ExitCode::SUCCESS
    }

    fn note_unreadable(found: &Survey) {
        if found.unreadable_processes > 0 {
            eprintln!(
                "note: the descriptors of {} processes could not be read; their listeners are \
                 shown without owners (run as root to see them)",
                found.unreadable_processes
            );
        }
    }

    #[derive(Serialize)]
    struct JsonListener {
        proto: &'static str,
        local: String,
        backlog: u32,
        queued: u32,
        drops: Option<u64>,
        below_limit: bool,
        processes: Vec<JsonProcess>,
    }

    #[derive(Serialize)]
    struct JsonProcess {
        pid: u32,
        command: String,
        fd: i32,
    }

    impl From<&ListenerInfo> for JsonListener {
        fn from(l: &ListenerInfo) -> Self {
            JsonListener {
                proto: proto(l.proto),
                local: l.local.to_string(),
                backlog: l.backlog,
                queued: l.queued,
                drops: l.drops,
                below_limit: l.below_limit,
                processes: l
                    .processes
                    .iter()
                    .map(|o| JsonProcess {
                        pid: o.pid,
                        command: o.command.clone(),
                        fd: o.fd,
                    })
                    .collect(),
            }
        }
    }

    fn proto(p: Proto) -> &'static str {
        match p {
            Proto::Tcp => "tcp",
            _ => "unix",
        }
    }

    fn owners(l: &ListenerInfo) -> String {
        if l.processes.is_empty() {
            return "-".into();
        }
        l.processes
            .iter()
            .map(|o| format!("{}/{} fd {}", o.pid, o.command, o.fd))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn table(found: &Survey, shown: &[&ListenerInfo]) -> String {
        let limit = found.limit.map_or("unknown".to_string(), |l| l.to_string());
        let mut rows = vec![[
            "PROTO".to_string(),
            "LOCAL".into(),
            "BACKLOG".into(),
            "QUEUED".into(),
            "DROPS".into(),
            "BELOW LIMIT".into(),
            "PROCESS".into(),
        ]];
        for l in shown {
            rows.push([
                proto(l.proto).into(),
                l.local.to_string(),
                l.backlog.to_string(),
                l.queued.to_string(),
                l.drops.map_or("-".into(), |d| d.to_string()),
                if l.below_limit { "yes" } else { "no" }.into(),
                owners(l),
            ]);
        }
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "system limit {limit} (net.core.somaxconn); {} listeners, {} below the limit\n",
            found.listeners.len(),
            found.listeners.iter().filter(|l| l.below_limit).count()
        );
        for row in rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                // Numbers right-aligned, text left-aligned; the last column unpadded.
                let numeric = (2..=4).contains(&i);
                match (i, numeric) {
                    (6, _) => line.push_str(cell),
                    (_, true) => line.push_str(&format!("{cell:>w$}  ", w = widths[i])),
                    _ => line.push_str(&format!("{cell:<w$}  ", w = widths[i])),
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// A metric: name, type, help, and its value for a listener (`None`: no sample).
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ListenerInfo) -> Option<u64>,
    );

    /// node_exporter's textfile-collector format: HELP and TYPE once per metric, one sample per
    /// listener, labels escaped.
    fn prometheus_text(shown: &[&ListenerInfo]) -> String {
        let escape = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        // Two listeners can share proto, local and command (SO_REUSEPORT): the inode tells
        // those apart, so that every sample's labels are unique.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let labels: Vec<String> = shown
            .iter()
            .map(|l| {
                let command = l.processes.first().map_or("", |o| o.command.as_str());
                format!(
                    "proto=\"{}\",local=\"{}\",command=\"{}\"",
                    proto(l.proto),
                    escape(&l.local.to_string()),
                    escape(command)
                )
            })
            .collect();
        for label in &labels {
            *seen.entry(label.clone()).or_default() += 1;
        }
        let labels: Vec<String> = labels
            .into_iter()
            .zip(shown)
            .map(|(label, l)| {
                if seen[&label] > 1 {
                    format!("{label},inode=\"{}\"", l.inode)
                } else {
                    label
                }
            })
            .collect();
        let mut out = String::new();
        let metrics: [Metric; 3] = [
            (
                "maxlisten_listener_backlog",
                "gauge",
                "The accept backlog the kernel applies to the listener.",
                |l| Some(u64::from(l.backlog)),
            ),
            (
                "maxlisten_listener_queued",
                "gauge",
                "Connections waiting in the listener's accept queue.",
                |l| Some(u64::from(l.queued)),
            ),
            (
                "maxlisten_listener_drops_total",
                "counter",
                "SYNs dropped on the listener because its accept queue was full.",
                |l| l.drops,
            ),
        ];
        for (name, kind, help, value) in metrics {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (label, l) in labels.iter().zip(shown) {
                if let Some(v) = value(l) {
                    out.push_str(&format!("{name}{{{label}}} {v}\n"));
                }
            }
        }
        out
    }

    pub(crate) struct Selection {
        pub(crate) pid: Option<u32>,
        pub(crate) fd: Option<i32>,
        pub(crate) port: Option<u16>,
        pub(crate) path: Option<PathBuf>,
        pub(crate) all_below_limit: bool,
    }

    impl Selection {
        fn is_empty(&self) -> bool {
            self.pid.is_none()
                && self.port.is_none()
                && self.path.is_none()
                && !self.all_below_limit
        }

        fn matches(&self, l: &ListenerInfo) -> bool {
            let by_pid = self.pid.is_none_or(|pid| {
                l.processes
                    .iter()
                    .any(|o| o.pid == pid && self.fd.is_none_or(|fd| o.fd == fd))
            });
            let by_port = self
                .port
                .is_none_or(|port| matches!(l.local, Address::Inet(a) if a.port() == port));
            let by_path = self
                .path
                .as_ref()
                .is_none_or(|path| l.local == Address::Path(path.clone()));
            by_pid && by_port && by_path && (!self.all_below_limit || l.below_limit)
        }
    }

    pub(crate) fn raise(selection: Selection, backlog: Option<u32>, dry_run: bool) -> ExitCode {
        if selection.is_empty() {
            eprintln!(
                "maxlisten raise: say which listeners: --all-below-limit, --pid, --port or --path \
                 (see maxlisten raise --help)"
            );
            return ExitCode::from(2);
        }
        let found = match survey::survey() {
            Ok(found) => found,
            Err(err) => {
                eprintln!("maxlisten raise: {err}");
                return ExitCode::FAILURE;
            }
        };
        let request = backlog.unwrap_or(u32::MAX);
        if let (Some(pid), Some(fd)) = (selection.pid, selection.fd) {
            // One descriptor named outright: reach for it even where /proc does not show it
            // (another user's process), so that the kernel's answer says what is missing.
            let before = found
                .listeners
                .iter()
                .find(|l| l.processes.iter().any(|o| o.pid == pid && o.fd == fd));
            let what = before.map_or(format!("pid {pid} fd {fd}"), |l| {
                format!("{} {} ({pid} fd {fd})", proto(l.proto), l.local)
            });
            let shown = before.map_or("?".to_string(), |l| l.backlog.to_string());
            if dry_run {
                println!("{what}: {shown} → (dry run, not changed)");
                return ExitCode::SUCCESS;
            }
            return match survey::relisten(pid, fd, request) {
                Ok(after) => {
                    let after = after.applied().map_or(after.to_string(), |a| a.to_string());
                    println!("{what}: {shown} → {after}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("maxlisten raise: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        let chosen: Vec<&ListenerInfo> = found
            .listeners
            .iter()
            .filter(|l| selection.matches(l))
            .collect();
        if chosen.is_empty() {
            eprintln!("maxlisten raise: no listener matches");
            note_unreadable(&found);
            return ExitCode::FAILURE;
        }
        let target = found.limit.map_or(request, |limit| request.min(limit));
        let mut failed = 0;
        for l in chosen {
            let what = format!("{} {}", proto(l.proto), l.local);
            // One holder is enough: they all share the one socket. With --pid, that process's.
            let owner = l
                .processes
                .iter()
                .find(|o| selection.pid.is_none_or(|pid| o.pid == pid))
                .filter(|o| selection.fd.is_none_or(|fd| o.fd == fd));
            let Some(owner) = owner else {
                failed += 1;
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    eprintln!(
                        "{what}: no process of this PID namespace holds it (is its owner in \
                         another container?); run maxlisten there"
                    );
                } else {
                    eprintln!(
                        "{what}: no process holding it could be read: needs root (or \
                         CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to find and reach its owner"
                    );
                }
                continue;
            };
            let who = format!("{}/{} fd {}", owner.pid, owner.command, owner.fd);
            if dry_run {
                println!("{what} ({who}): {} → {target} (dry run)", l.backlog);
                continue;
            }
            match survey::relisten(owner.pid, owner.fd, request) {
                Ok(after) => match after.applied() {
                    Some(applied) => println!("{what} ({who}): {} → {applied}", l.backlog),
                    None => println!("{what} ({who}): {} → unknown ({after})", l.backlog),
                },
                Err(err) => {
                    failed += 1;
                    eprintln!("{what} ({who}): {err}");
                }
            }
        }
        note_unreadable(&found);
        if failed > 0 {
            eprintln!("maxlisten raise: {failed} listeners were not raised");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    }
}
