//! The survey in the Prometheus text exposition format (0.0.4), which node_exporter's textfile
//! collector and a Prometheus scrape read.
//!
//! Written here rather than with `prometheus-client`: that crate's text encoder does not
//! escape label values (prometheus/client_rust#151), and socket paths and command names are
//! exactly the values that hold quotes, backslashes and newlines. The format's rules this
//! encoder keeps, each tested below: `# HELP` and `# TYPE` once per family, before its samples,
//! families not interleaved; label values escaped (`\\`, `\"`, `\n`), HELP text escaped
//! (`\\`, `\n`); metric and label names of the allowed characters; `_total` only on counters;
//! no two samples of a family with the same labels.

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{Hash, Hasher};

use maxlisten::survey::{ListenerInfo, Survey};

/// A text-format writer: families, then their samples.
pub(crate) struct Encoder {
    out: String,
}

/// The type of a family.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
}

impl Encoder {
    pub(crate) fn new() -> Encoder {
        Encoder { out: String::new() }
    }

    /// Starts a family: its HELP and TYPE lines. Its samples must follow before the next.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        debug_assert_eq!(name.ends_with("_total"), kind == Kind::Counter, "{name}");
        header(&mut self.out, name, kind, help);
    }

    /// One sample of the current family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label, false), "label name {label:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// A family's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let kind = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
pub(crate) fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, the same without `:` for label names.
fn valid_name(name: &str, metric: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// A per-listener family: name, kind, help, and the value for a listener (`None`: no sample).
type ListenerFamily = (
    &'static str,
    Kind,
    &'static str,
    fn(&ListenerInfo) -> Option<f64>,
);

const LISTENER_FAMILIES: [ListenerFamily; 4] = [
    (
        "maxlisten_listener_backlog",
        Kind::Gauge,
        "The accept backlog the kernel applies to the listener.",
        |l| Some(f64::from(l.backlog)),
    ),
    (
        "maxlisten_listener_queued",
        Kind::Gauge,
        "Connections waiting in the listener's accept queue.",
        |l| Some(f64::from(l.queued)),
    ),
    (
        "maxlisten_listener_drops_total",
        Kind::Counter,
        "SYNs and handshake ACKs the kernel dropped on the listener (its sk_drops: a full \
         accept or SYN queue, or another reason to drop), since the socket was made.",
        |l| l.drops.map(|d| d as f64),
    ),
    (
        "maxlisten_listener_below_limit",
        Kind::Gauge,
        "1 if the listener's backlog is below its network namespace's net.core.somaxconn.",
        |l| Some(if l.below_limit { 1.0 } else { 0.0 }),
    ),
];

/// Every family of a survey (the contract in the README): per listener (labels `netns`,
/// `proto`, `local`, `command`, `container`, `pod`, and `inode` where two listeners would
/// otherwise share them all); per namespace its limit, its names and its `TcpExt` counters; and
/// what could not be read.
pub(crate) fn survey(found: &Survey, shown: &[&ListenerInfo]) -> String {
    let labels = listener_labels(shown);
    let mut out = String::new();
    render(
        found,
        shown,
        &labels,
        &mut Cursor::default(),
        &mut out,
        usize::MAX,
    );
    out
}

/// Which of `shown` share every label with another listener (SO_REUSEPORT, or two non-UTF-8
/// paths that display alike) and so get their `inode` too, so that every sample's labels are
/// unique. The labels themselves are written as each sample is ([`write_labels`]): holding
/// them for 10,000 listeners would cost a megabyte.
pub(crate) fn listener_labels(shown: &[&ListenerInfo]) -> Vec<bool> {
    let mut text = String::new();
    let hashes: Vec<u64> = shown
        .iter()
        .map(|l| {
            text.clear();
            write_labels(&mut text, l, false);
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut hasher);
            hasher.finish()
        })
        .collect();
    let mut seen: HashMap<u64, u32> = HashMap::with_capacity(hashes.len());
    for hash in &hashes {
        *seen.entry(*hash).or_default() += 1;
    }
    hashes.iter().map(|hash| seen[hash] > 1).collect()
}

/// One listener's labels, escaped: `netns="…",proto="…",local="…",command="…",container="…",
/// pod="…"`, and `,inode="…"` if `shared`.
fn write_labels(out: &mut String, l: &ListenerInfo, shared: bool) {
    let first = l.processes.first();
    let container = first.and_then(|o| o.container.as_ref());
    let _ = write!(out, "netns=\"{}\",proto=\"{}\",local=\"", l.netns, l.proto);
    push_escaped(out, &l.local_name());
    out.push_str("\",command=\"");
    push_escaped(out, first.map_or("", |o| o.command.as_str()));
    out.push_str("\",container=\"");
    push_escaped(out, container.map_or("", |c| c.short_id()));
    out.push_str("\",pod=\"");
    push_escaped(out, container.and_then(|c| c.pod.as_deref()).unwrap_or(""));
    out.push('"');
    if shared {
        let _ = write!(out, ",inode=\"{}\"", l.inode);
    }
}

/// [`escape_label_value`] without a String of its own.
fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// How far [`render`] has got through a survey's text.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cursor {
    family: usize,
    listener: usize,
    started: bool,
}

/// Appends the survey's text from `cursor` on to `out`, stopping once `out` holds `budget`
/// bytes or more (so that a large survey can be sent in pieces); returns whether text remains.
/// `shared` is [`listener_labels`] of `shown`.
pub(crate) fn render(
    found: &Survey,
    shown: &[&ListenerInfo],
    shared: &[bool],
    cursor: &mut Cursor,
    out: &mut String,
    budget: usize,
) -> bool {
    while let Some(&(name, kind, help, value)) = LISTENER_FAMILIES.get(cursor.family) {
        if !cursor.started {
            header(out, name, kind, help);
            cursor.started = true;
        }
        while let (Some(l), Some(&shared)) =
            (shown.get(cursor.listener), shared.get(cursor.listener))
        {
            if out.len() >= budget {
                return true;
            }
            cursor.listener += 1;
            if let Some(v) = value(l) {
                out.push_str(name);
                out.push('{');
                write_labels(out, l, shared);
                let _ = writeln!(out, "}} {v}");
            }
        }
        cursor.family += 1;
        cursor.listener = 0;
        cursor.started = false;
    }
    if cursor.family == LISTENER_FAMILIES.len() {
        cursor.family += 1;
        out.push_str(&namespace_families(found));
    }
    false
}

/// The families of the namespaces (limit, names, counters) and of what could not be read.
fn namespace_families(found: &Survey) -> String {
    let mut out = Encoder::new();
    let inodes: Vec<String> = found
        .namespaces
        .iter()
        .map(|ns| ns.netns.to_string())
        .collect();
    out.family(
        "maxlisten_somaxconn",
        Kind::Gauge,
        "net.core.somaxconn of the network namespace: the most any backlog there gets.",
    );
    for (ns, inode) in found.namespaces.iter().zip(&inodes) {
        if let Some(limit) = ns.limit {
            out.sample("maxlisten_somaxconn", &[("netns", inode)], f64::from(limit));
        }
    }
    out.family(
        "maxlisten_netns_info",
        Kind::Gauge,
        "1 for each network namespace and each of its ip netns names (name \"\" when it has none).",
    );
    for (ns, inode) in found.namespaces.iter().zip(&inodes) {
        let names: Vec<&str> = if ns.names.is_empty() {
            vec![""]
        } else {
            ns.names.iter().map(String::as_str).collect()
        };
        for name in names {
            out.sample(
                "maxlisten_netns_info",
                &[("netns", inode), ("name", name)],
                1.0,
            );
        }
    }
    type Counter = fn(&maxlisten::netns::ListenCounters) -> u64;
    let counters: [(&str, &str, Counter); 2] = [
        (
            "maxlisten_netns_listen_overflows_total",
            "TcpExt ListenOverflows of the network namespace: connections dropped because an \
             accept queue was full.",
            |c| c.listen_overflows,
        ),
        (
            "maxlisten_netns_listen_drops_total",
            "TcpExt ListenDrops of the network namespace: SYNs and ACKs dropped on its listeners \
             for any reason.",
            |c| c.listen_drops,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help);
        for (ns, inode) in found.namespaces.iter().zip(&inodes) {
            if let Some(c) = &ns.counters {
                out.sample(name, &[("netns", inode)], value(c) as f64);
            }
        }
    }
    out.family(
        "maxlisten_unreadable_processes",
        Kind::Gauge,
        "Processes whose descriptors could not be read: their listeners have no owner labels.",
    );
    out.sample(
        "maxlisten_unreadable_processes",
        &[],
        found.unreadable_processes as f64,
    );
    out.family(
        "maxlisten_unreadable_namespaces",
        Kind::Gauge,
        "Network namespaces that could not be entered or read: their listeners are missing.",
    );
    out.sample(
        "maxlisten_unreadable_namespaces",
        &[],
        found.unreadable_namespaces.len() as f64,
    );
    out.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::render::sample;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("a\nb"), "a\\nb");
        assert_eq!(escape_label_value("tab\tstays é"), "tab\tstays é");
        let mut e = Encoder::new();
        e.family(
            "m_total",
            Kind::Counter,
            "back\\slash\nnewline \"quotes stay\"",
        );
        e.sample("m_total", &[("a", "x\"y"), ("b", "\\\n")], 3.0);
        e.family("g", Kind::Gauge, "plain");
        e.sample("g", &[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP m_total back\\\\slash\\nnewline \"quotes stay\"\n\
             # TYPE m_total counter\n\
             m_total{a=\"x\\\"y\",b=\"\\\\\\n\"} 3\n\
             # HELP g plain\n# TYPE g gauge\ng 0.5\n"
        );
    }

    #[test]
    fn names_follow_the_format() {
        assert!(valid_name("maxlisten_listener_backlog", true));
        assert!(valid_name("a:b", true) && !valid_name("a:b", false));
        assert!(!valid_name("9lives", true) && !valid_name("", true) && !valid_name("a-b", false));
        for (name, kind, _, _) in LISTENER_FAMILIES {
            assert!(valid_name(name, true));
            assert_eq!(name.ends_with("_total"), kind == Kind::Counter, "{name}");
        }
    }

    type Labels = Vec<(String, String)>;

    /// Reads a sample line back: (name, [(label, unescaped value)], value), checking the
    /// escapes on the way; `None` for a malformed line.
    fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
        let (head, value) = line.rsplit_once(' ')?;
        let value: f64 = value.parse().ok()?;
        let Some((name, rest)) = head.split_once('{') else {
            return Some((head.into(), Vec::new(), value));
        };
        let mut labels = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            let label: String = chars.by_ref().take_while(|&c| c != '=').collect();
            if chars.next()? != '"' {
                return None;
            }
            let mut text = String::new();
            loop {
                match chars.next()? {
                    '\\' => match chars.next()? {
                        '\\' => text.push('\\'),
                        '"' => text.push('"'),
                        'n' => text.push('\n'),
                        _ => return None,
                    },
                    '"' => break,
                    '\n' => return None,
                    c => text.push(c),
                }
            }
            labels.push((label, text));
            match chars.next()? {
                ',' => continue,
                '}' if chars.peek().is_none() => break,
                _ => return None,
            }
        }
        Some((name.into(), labels, value))
    }

    #[test]
    fn a_real_survey_is_well_formed() {
        let sample = sample::make("prometheus");
        let mine = sample.mine();
        let text = survey(&sample.survey, &mine);
        let mut families: Vec<String> = Vec::new();
        let mut series: HashSet<(String, Labels)> = HashSet::new();
        let mut locals = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!families.contains(&name), "{name} twice:\n{text}");
                families.push(name);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next(), families.last().map(String::as_str));
                continue;
            }
            let (name, labels, _) =
                parse_sample(line).unwrap_or_else(|| panic!("malformed: {line:?}\n{text}"));
            assert_eq!(Some(&name), families.last(), "{line}: not under its family");
            if let Some((_, local)) = labels.iter().find(|(k, _)| k == "local") {
                locals.insert(local.clone());
            }
            assert!(series.insert((name, labels)), "duplicate series: {line}");
        }
        // Each listener appears with its own address, unescaped back to what the survey gave.
        for l in &mine {
            assert!(
                locals.contains(&l.local.to_string()),
                "{}:\n{text}",
                l.local
            );
        }
        assert!(locals
            .iter()
            .any(|l| l.contains("q\"uote\\back\nline.sock")));
        let backlogs = text
            .lines()
            .filter(|l| l.starts_with("maxlisten_listener_backlog{"))
            .count();
        assert_eq!(backlogs, mine.len());
        for family in [
            "maxlisten_somaxconn",
            "maxlisten_netns_info",
            "maxlisten_netns_listen_overflows_total",
            "maxlisten_netns_listen_drops_total",
            "maxlisten_unreadable_processes",
            "maxlisten_unreadable_namespaces",
        ] {
            assert!(families.contains(&family.to_string()), "{family}:\n{text}");
        }
        let ns = sample.survey.namespaces[0].netns;
        assert!(
            text.contains(&format!("maxlisten_netns_info{{netns=\"{ns}\",name=\"")),
            "{text}"
        );
        // Every listener sample carries the contract's labels, in its order.
        for line in text
            .lines()
            .filter(|l| l.starts_with("maxlisten_listener_backlog{"))
        {
            let (_, labels, _) = parse_sample(line).unwrap();
            let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                names[..6],
                ["netns", "proto", "local", "command", "container", "pod"],
                "{line}"
            );
            assert_eq!(labels[0].1, ns.to_string());
        }
    }

    #[test]
    fn rendered_in_pieces_it_is_the_same_text() {
        let sample = sample::make("prometheus-pieces");
        let mine = sample.mine();
        let whole = survey(&sample.survey, &mine);
        let labels = listener_labels(&mine);
        for budget in [1, 40, 4096] {
            let (mut cursor, mut text, mut pieces) = (Cursor::default(), String::new(), 0);
            loop {
                let mut piece = String::new();
                let more = render(
                    &sample.survey,
                    &mine,
                    &labels,
                    &mut cursor,
                    &mut piece,
                    budget,
                );
                text.push_str(&piece);
                pieces += 1;
                if !more {
                    break;
                }
            }
            assert_eq!(text, whole, "budget {budget}");
            // The listener families stop at the budget; the namespace families come whole.
            assert!(budget > 100 || pieces > 1, "budget {budget}: one piece");
        }
    }

    #[test]
    fn listeners_that_share_every_label_get_their_inode() {
        // Two listeners on one port (SO_REUSEPORT), held by this process: every label alike.
        let first = maxlisten::ListenerBuilder::new()
            .reuse_port(true)
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = first.local_addr().unwrap();
        let second = maxlisten::ListenerBuilder::new()
            .reuse_port(true)
            .bind(addr)
            .unwrap();
        let found = maxlisten::survey::survey().unwrap();
        let pair: Vec<&ListenerInfo> = found
            .listeners
            .iter()
            .filter(|l| l.local.as_socket_addr() == Some(addr))
            .collect();
        assert_eq!(pair.len(), 2);
        let text = survey(&found, &pair);
        let backlog_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("maxlisten_listener_backlog{"))
            .collect();
        assert_eq!(backlog_lines.len(), 2, "{text}");
        for l in &pair {
            let inode = format!(",inode=\"{}\"}}", l.inode);
            assert_eq!(
                backlog_lines.iter().filter(|s| s.contains(&inode)).count(),
                1,
                "{text}"
            );
        }
        // A listener alone keeps its labels without the inode.
        let alone = survey(&found, &pair[..1]);
        assert!(!alone.contains("inode="), "{alone}");
        drop((first, second));
    }
}
