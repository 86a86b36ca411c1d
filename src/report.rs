//! The diagnosis of this machine's (or network namespace's) accept backlogs: the system limit
//! and where it comes from, the kernel's counters, the backlog that std, tokio and maxlisten
//! get here (measured), what other stacks get by their documented defaults (computed, and
//! labelled so), which listeners of this namespace are below the limit, and what to do.
//!
//! [`Report::build`] makes it; [`Report::to_text`] and [`Report::to_json`] render it. This is
//! what `cargo run --example report` and `maxlisten report` print. The JSON field names are
//! stable; the README lists them.
//!
//! ```
//! let report = maxlisten::report::Report::build("127.0.0.1:0")?;
//! print!("{}", report.to_text());
//! let json: serde_json::Value = serde_json::from_str(&report.to_json())?;
//! assert_eq!(json["system_limit"]["value"], serde_json::json!(maxlisten::system_limit()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use serde::Serialize;

use crate::{sys, Error, ListenerBuilder};

/// How a row's backlog is known.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// A listener was bound on this machine and its backlog read back from the kernel.
    Measured,
    /// Computed from the stack's documented default and this system's limit: nothing of that
    /// stack ran here.
    Documented,
}

/// One stack's row: what it asks `listen(2)` for and what it ends up with here.
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct Stack {
    /// The stack and call, e.g. `std::net::TcpListener::bind`.
    pub stack: &'static str,
    /// What it passes to `listen(2)` (or "the system limit").
    pub requested: String,
    /// The backlog it gets; `None` where that cannot be known here.
    pub applied: Option<u32>,
    /// Measured here, or computed from a documented default.
    pub how: How,
    /// Whether the kernel lowers the request; `None` where unknown.
    pub clamped: Option<bool>,
    /// Where the figure comes from, or why there is none.
    pub note: String,
}

/// The system limit and where it is set.
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct Limit {
    /// The limit ([`system_limit`](crate::system_limit)); `None` where the OS reports none.
    pub value: Option<u32>,
    /// The setting that holds it ([`system_limit_name`](crate::system_limit_name)).
    pub setting: &'static str,
    /// The network namespace it belongs to (`net:[INODE]`, Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_namespace: Option<String>,
}

/// The kernel's settings and counters that bear on accept queues (Linux; this namespace).
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct LinuxCounters {
    /// `net.ipv4.tcp_max_syn_backlog`: the SYN queue's size.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.tcp_syncookies`.
    pub tcp_syncookies: Option<u64>,
    /// `TcpExt: ListenOverflows`: handshakes that found an accept queue full.
    pub listen_overflows: Option<u64>,
    /// `TcpExt: ListenDrops`: SYNs and ACKs dropped on listeners, for any reason.
    pub listen_drops: Option<u64>,
}

/// What a server would export for its listener: the maxlisten listener's accept queue.
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// Connections waiting for `accept()` (a gauge).
    pub accept_queue_queued: u32,
    /// The applied backlog (a gauge).
    pub accept_queue_backlog: u32,
    /// SYNs dropped on the listener ([`QueueStats::drops`](crate::QueueStats::drops), a
    /// counter); `None` where the platform keeps none per listener.
    pub accept_queue_drops_total: Option<u64>,
}

/// The listeners of this network namespace, from [`survey`](crate::survey) (Linux).
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct Listeners {
    /// How many listening sockets (TCP and Unix) the namespace has.
    pub total: usize,
    /// Those whose backlog is below the limit: a `listen` with a larger value would give them
    /// more.
    pub below_limit: Vec<BelowLimit>,
    /// Processes whose descriptors could not be read (another user's, without root): their
    /// listeners are counted without owners.
    pub unreadable_processes: usize,
}

/// A listener below the limit.
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct BelowLimit {
    /// `tcp` or `unix`.
    pub proto: String,
    /// Its address, as the survey shows it.
    pub local: String,
    /// Its applied backlog.
    pub backlog: u32,
    /// Who holds it, as `PID/COMMAND`.
    pub processes: Vec<String>,
}

/// The diagnosis. See the [module](self).
#[non_exhaustive]
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The OS, as [`std::env::consts::OS`] names it.
    pub os: &'static str,
    /// Where the maxlisten listener was bound (the address asked for, with its port).
    pub address: String,
    /// The system limit.
    pub system_limit: Limit,
    /// Linux's counters; `None` elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux: Option<LinuxCounters>,
    /// Stacks bound on this machine and read back: maxlisten, std, and tokio (with the `tokio`
    /// feature).
    pub measured: Vec<Stack>,
    /// Other stacks' documented defaults, computed against this limit; not measured.
    pub documented: Vec<Stack>,
    /// The listeners of this namespace below the limit; `None` where the survey is not
    /// available or failed (the advice says why).
    pub listeners: Option<Listeners>,
    /// The maxlisten listener's accept queue, as a server would export it; `None` where the
    /// platform cannot read it.
    pub metrics: Option<Metrics>,
    /// What to do, in sentences.
    pub advice: Vec<String>,
}

/// The documented defaults of other stacks: (stack, what it passes, where that is said).
/// `None` means it reads the system limit itself. Read from their sources; see the README's
/// table "What other stacks pass to `listen()`".
fn documented_defaults() -> [(&'static str, Option<i64>, &'static str); 10] {
    let nginx = if cfg!(any(target_os = "freebsd", target_vendor = "apple")) {
        -1
    } else {
        511
    };
    [
        ("Go net.Listen", None, "reads the system limit itself"),
        (
            "systemd .socket, v254+",
            Some(i64::from(i32::MAX)),
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
    ]
}

impl Report {
    /// Makes the diagnosis: binds one maxlisten listener on `addr` (and nothing else there),
    /// measures std's and tokio's bind on an ephemeral loopback port of the same family, reads
    /// the limit and the kernel's counters, and, on Linux, surveys this namespace's listeners.
    /// Everything it binds is closed before it returns.
    ///
    /// # Errors
    ///
    /// What [`ListenerBuilder::bind`] returns for `addr`: the report needs that listener.
    /// Failures of the other measurements, and of the survey, are written into the report.
    ///
    /// ```
    /// let report = maxlisten::report::Report::build("127.0.0.1:0")?;
    /// assert_eq!(report.measured[0].stack, "maxlisten::bind");
    /// assert!(report.documented.iter().all(|s| s.how == maxlisten::report::How::Documented));
    /// // A port that is taken: the bind error, naming the address.
    /// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let err = maxlisten::report::Report::build(taken.local_addr()?).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build<A: ToSocketAddrs>(addr: A) -> Result<Report, Error> {
        let limit = crate::system_limit();
        let ours = ListenerBuilder::new().bind(addr)?;
        let backlog = ours.backlog();
        let metrics = ours.queue_stats().ok().map(|stats| Metrics {
            accept_queue_queued: stats.queued,
            accept_queue_backlog: stats.backlog,
            accept_queue_drops_total: stats.drops,
        });
        let bound = ours.local_addr().map_err(|source| Error::Query {
            what: "getsockname",
            addr: None,
            source,
        })?;
        drop(ours);

        let mut measured = vec![Stack {
            stack: "maxlisten::bind",
            requested: backlog.requested().to_string(),
            applied: backlog.applied(),
            how: How::Measured,
            clamped: backlog.applied().map(|_| backlog.is_clamped()),
            // Where nothing can be read back (Windows), the line says what was passed.
            note: match backlog.applied() {
                Some(_) => backlog.source().to_string(),
                None => backlog.to_string(),
            },
        }];
        // The other stacks' listeners go on loopback, never on the caller's address.
        let probe: SocketAddr = if bound.is_ipv6() {
            ([0u16, 0, 0, 0, 0, 0, 0, 1], 0).into()
        } else {
            ([127, 0, 0, 1], 0).into()
        };
        measured.push(measure(
            "std::net::TcpListener::bind",
            128,
            TcpListener::bind(probe),
        ));
        let mut documented = Vec::new();
        match tokio_listener(probe) {
            Some(result) => measured.push(measure("tokio::net::TcpListener::bind", 128, result)),
            None => documented.push(computed(
                "tokio::net::TcpListener::bind",
                Some(128),
                limit,
                "mio 1.2+ default; not measured: maxlisten was built without its `tokio` feature",
            )),
        }
        for (stack, requested, note) in documented_defaults() {
            documented.push(computed(stack, requested, limit, note));
        }

        let counters = sys::kernel_counters();
        let linux = cfg!(any(target_os = "linux", target_os = "android")).then(|| LinuxCounters {
            tcp_max_syn_backlog: counters.tcp_max_syn_backlog,
            tcp_syncookies: counters.tcp_syncookies,
            listen_overflows: counters.listen_overflows,
            listen_drops: counters.listen_drops,
        });
        let mut advice = vec![limit_advice(limit)];
        if let Some(overflows) = counters.listen_overflows.filter(|n| *n > 0) {
            advice.push(format!(
                "ListenOverflows is {overflows}: accept queues overflowed in this network \
                 namespace since it was made (or since boot) and SYNs were dropped. \
                 `maxlisten survey` shows each listener's queue, backlog and drops."
            ));
        }
        let listeners = match this_namespace() {
            Some(Ok(listeners)) => {
                if !listeners.below_limit.is_empty() {
                    advice.push(format!(
                        "{} of the {} listeners of this namespace are below the limit: \
                         `maxlisten raise --all-below-limit` raises them live (root), or \
                         restart them with a larger backlog.",
                        listeners.below_limit.len(),
                        listeners.total
                    ));
                }
                Some(listeners)
            }
            Some(Err(err)) => {
                advice.push(format!(
                    "The listeners of this namespace could not be listed: {err}"
                ));
                None
            }
            None => None,
        };

        Ok(Report {
            os: std::env::consts::OS,
            address: bound.to_string(),
            system_limit: Limit {
                value: limit,
                setting: crate::system_limit_name(),
                network_namespace: sys::thread_netns(),
            },
            linux,
            measured,
            documented,
            listeners,
            metrics,
            advice,
        })
    }

    /// The report as aligned text, for a terminal.
    ///
    /// ```
    /// let report = maxlisten::report::Report::build("127.0.0.1:0")?;
    /// let text = report.to_text();
    /// assert!(text.contains("measured on this machine"));
    /// assert!(text.contains("documented defaults"));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn to_text(&self) -> String {
        let limit = &self.system_limit;
        let show = |v: Option<u64>| v.map_or("unknown".to_string(), |v| v.to_string());
        let mut lines = vec![
            format!(
                "Accept backlog report ({}, bound {})",
                self.os, self.address
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
        if let Some(linux) = &self.linux {
            row("tcp_max_syn_backlog", show(linux.tcp_max_syn_backlog));
            row("tcp_syncookies", show(linux.tcp_syncookies));
            row("ListenOverflows", show(linux.listen_overflows));
            row("ListenDrops", show(linux.listen_drops));
        }
        for (title, stacks) in [
            (
                "measured on this machine (bound, then read back from the kernel):",
                &self.measured,
            ),
            (
                "documented defaults of other stacks (computed against this limit, not measured):",
                &self.documented,
            ),
        ] {
            if stacks.is_empty() {
                continue;
            }
            lines.push(String::new());
            lines.push(format!("  {title}"));
            lines.push(format!(
                "    {:<30} {:>16} {:>10}  {:<8} note",
                "stack", "requested", "applied", "clamped"
            ));
            for s in stacks {
                let clamped = match s.clamped {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                };
                let applied = s.applied.map_or("unknown".into(), |a| a.to_string());
                lines.push(format!(
                    "    {:<30} {:>16} {:>10}  {:<8} {}",
                    s.stack, s.requested, applied, clamped, s.note
                ));
            }
        }
        lines.push(String::new());
        if let Some(listeners) = &self.listeners {
            lines.push(format!(
                "  listeners of this namespace: {}, below the limit: {}",
                listeners.total,
                listeners.below_limit.len()
            ));
            for l in &listeners.below_limit {
                let owners = if l.processes.is_empty() {
                    "owner not readable".to_string()
                } else {
                    l.processes.join(", ")
                };
                lines.push(format!(
                    "    {:<5} {:<40} backlog {:>6}  {owners}",
                    l.proto, l.local, l.backlog
                ));
            }
            if listeners.unreadable_processes > 0 {
                lines.push(format!(
                    "    ({} processes could not be read: run as root to see every owner)",
                    listeners.unreadable_processes
                ));
            }
            lines.push(String::new());
        }
        if let Some(m) = &self.metrics {
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
        for advice in &self.advice {
            lines.push(format!("  advice: {advice}"));
        }
        lines.join("\n") + "\n"
    }

    /// The report as one pretty-printed JSON object, with the field names of [`Report`].
    ///
    /// ```
    /// let report = maxlisten::report::Report::build("127.0.0.1:0")?;
    /// let json: serde_json::Value = serde_json::from_str(&report.to_json())?;
    /// assert_eq!(json["measured"][0]["how"], "measured");
    /// assert_eq!(json["documented"][0]["how"], "documented");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json(&self) -> String {
        // Plain data (strings, numbers, options, vectors): serializing it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A row for a listener another stack bound, read back through [`queue_stats`](crate::queue_stats).
fn measure<S: crate::AsSocket>(
    stack: &'static str,
    requested: u32,
    bound: std::io::Result<S>,
) -> Stack {
    let reading = bound
        .map_err(|e| format!("cannot bind it here: {e}"))
        .and_then(|listener| {
            crate::queue_stats(&listener)
                .map(|stats| stats.backlog)
                .map_err(|e| format!("cannot read it here: {e}"))
        });
    match reading {
        Ok(applied) => Stack {
            stack,
            requested: requested.to_string(),
            applied: Some(applied),
            how: How::Measured,
            clamped: Some(applied < requested),
            note: "reported by the kernel".into(),
        },
        Err(note) => Stack {
            stack,
            requested: requested.to_string(),
            applied: None,
            how: How::Measured,
            clamped: None,
            note,
        },
    }
}

/// tokio's own bind on `probe`, in a runtime made for it; `None` without the `tokio` feature.
#[cfg(feature = "tokio")]
fn tokio_listener(probe: SocketAddr) -> Option<std::io::Result<::tokio::net::TcpListener>> {
    let runtime = ::tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    Some(runtime.and_then(|rt| rt.block_on(::tokio::net::TcpListener::bind(probe))))
}

#[cfg(not(feature = "tokio"))]
fn tokio_listener(_probe: SocketAddr) -> Option<std::io::Result<TcpListener>> {
    None
}

/// What a stack gets with its documented default: `None` means it reads the limit itself.
fn computed(stack: &'static str, requested: Option<i64>, limit: Option<u32>, note: &str) -> Stack {
    let shown = requested.map_or("the system limit".into(), |r| r.to_string());
    let Some(limit) = limit else {
        return Stack {
            stack,
            requested: shown,
            applied: None,
            how: How::Documented,
            clamped: None,
            note: format!("{note}; no system limit to compute with"),
        };
    };
    let applied = match requested {
        None => limit,
        // Linux compares unsigned; the BSDs and Apple treat negative as "the limit".
        Some(r) if r < 0 => limit,
        Some(r) => u32::try_from(r).unwrap_or(u32::MAX).min(limit),
    };
    Stack {
        stack,
        requested: shown,
        applied: Some(applied),
        how: How::Documented,
        clamped: Some(requested.is_some_and(|r| r > i64::from(applied))),
        note: note.into(),
    }
}

fn limit_advice(limit: Option<u32>) -> String {
    let setting = crate::system_limit_name();
    let persist = if cfg!(target_os = "linux") {
        "/etc/sysctl.d/90-somaxconn.conf"
    } else {
        "/etc/sysctl.conf"
    };
    match limit {
        Some(limit) if limit < 4096 => format!(
            "The system limit {setting} = {limit} is low: every listener here gets at most \
             {limit} queued connections, whatever it asks for. Raise it now with \
             `sysctl -w {setting}=65535` and for good with a line `{setting} = 65535` in \
             {persist}, then re-listen the servers (`maxlisten raise`, refresh_backlog(), or a \
             restart). The setting is per network namespace: in a container, set it where the \
             container is made (`docker run --sysctl {setting}=65535`, a pod's \
             securityContext.sysctls)."
        ),
        Some(limit) => format!(
            "The system limit ({setting} = {limit}) is fine; servers that pass a fixed 128 \
             (std, tokio, Python) still use only 128 of it: bind with maxlisten::bind or \
             maxlisten::tokio::bind, or call maxlisten::set_backlog(&listener, u32::MAX) on \
             their listeners."
        ),
        None if cfg!(windows) => "Windows reports no backlog limit and no applied backlog. A \
             plain SOMAXCONN (which is i32::MAX) gets the provider's \"reasonable maximum\", \
             about 200; maxlisten asks with SOMAXCONN_HINT(65535), which Windows adjusts into \
             200..=65535 (Microsoft's listen() documentation; OpenJDK bug 8330940). These \
             figures are documented, not measured by this report."
            .into(),
        None => "This OS does not report a backlog limit; maxlisten passes the largest value \
                 and lets the kernel choose."
            .into(),
    }
}

/// The listeners of this namespace, where the survey exists.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn this_namespace() -> Option<Result<Listeners, Error>> {
    let survey = match crate::survey::survey() {
        Ok(survey) => survey,
        Err(err) => return Some(Err(err)),
    };
    let below_limit = survey
        .listeners
        .iter()
        .filter(|l| l.below_limit)
        .map(|l| BelowLimit {
            proto: l.proto.to_string(),
            local: l.local.to_string(),
            backlog: l.backlog,
            processes: l
                .processes
                .iter()
                .map(|o| format!("{}/{}", o.pid, o.command))
                .collect(),
        })
        .collect();
    Some(Ok(Listeners {
        total: survey.listeners.len(),
        below_limit,
        unreadable_processes: survey.unreadable_processes,
    }))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn this_namespace() -> Option<Result<Listeners, Error>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_rows_clamp_as_the_kernel_does() {
        let row = computed("x", Some(511), Some(300), "n");
        assert_eq!((row.applied, row.clamped), (Some(300), Some(true)));
        let row = computed("x", Some(511), Some(4096), "n");
        assert_eq!((row.applied, row.clamped), (Some(511), Some(false)));
        let row = computed("x", Some(-1), Some(4096), "n");
        assert_eq!((row.applied, row.clamped), (Some(4096), Some(false)));
        let row = computed("x", None, Some(4096), "n");
        assert_eq!(
            (row.applied, row.requested.as_str()),
            (Some(4096), "the system limit")
        );
        let row = computed("x", Some(i64::from(i32::MAX)), None, "n");
        assert_eq!((row.applied, row.clamped), (None, None));
        assert!(row.note.contains("no system limit"));
    }
}
