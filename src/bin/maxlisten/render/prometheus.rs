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

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::Write;

use std::net::{SocketAddr, SocketAddrV4};

use maxlisten::survey::{ListenerInfo, Survey};
use maxlisten::Address;

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
                self.out.push_str(label);
                self.out.push_str("=\"");
                push_escaped(&mut self.out, value);
                self.out.push('"');
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
/// Every value is a whole number, written as one (no float formatting per sample).
type ListenerFamily = (&'static str, Kind, &'static str, fn(&Values) -> Option<u64>);

const LISTENER_FAMILIES: [ListenerFamily; 4] = [
    (
        "maxlisten_listener_backlog",
        Kind::Gauge,
        "The accept backlog the kernel applies to the listener.",
        |l| Some(u64::from(l.backlog)),
    ),
    (
        "maxlisten_listener_queued",
        Kind::Gauge,
        "Connections waiting in the listener's accept queue.",
        |l| Some(u64::from(l.queued)),
    ),
    (
        "maxlisten_listener_drops_total",
        Kind::Counter,
        "SYNs and handshake ACKs the kernel dropped on the listener (its sk_drops: a full \
         accept or SYN queue, or another reason to drop), since the socket was made.",
        |l| l.drops,
    ),
    (
        "maxlisten_listener_below_limit",
        Kind::Gauge,
        "1 if the listener's backlog is below its network namespace's net.core.somaxconn.",
        |l| Some(u64::from(l.below_limit)),
    ),
];

/// Every family of a survey (the contract in the README): per listener (labels `netns`,
/// `proto`, `local`, `command`, `container_id`, `pod_uid`, and `inode` where two listeners would
/// otherwise share them all); per namespace its limit, its names and its `TcpExt` counters; and
/// what could not be read.
pub(crate) fn survey(found: &Survey, shown: &[&ListenerInfo]) -> String {
    let listeners = Listeners::new(shown.iter().copied());
    let mut out = String::new();
    render(
        found,
        &listeners,
        &mut Cursor::default(),
        &mut out,
        usize::MAX,
    );
    out
}

/// What the listener families need of the listeners a survey shows, made once per collection:
/// each listener's labels, written out and escaped, and its values.
///
/// Every sample of a listener (four families) copies its labels from here, so they are written
/// once, not once per family: a scrape of 10,000 listeners spent most of its time writing
/// labels, in `fmt` and in many small copies (musl's `memcpy` is slow for those; see the
/// exporter benchmark). It holds about 150 bytes a listener, 1.5 MiB for 10,000, and nothing
/// of the survey, whose listeners the exporter drops as they are read.
pub(crate) struct Listeners {
    /// Every listener's labels, one after another.
    labels: String,
    /// Where each listener's labels end in `labels`.
    ends: Vec<usize>,
    values: Vec<Values>,
}

/// A listener's values, and its inode if it is a label too.
pub(crate) struct Values {
    backlog: u32,
    queued: u32,
    drops: Option<u64>,
    below_limit: bool,
    /// For a listener that shares every other label with another (SO_REUSEPORT, or two
    /// non-UTF-8 paths that display alike), so that every sample's labels are unique.
    shared: bool,
    inode: u64,
}

impl Listeners {
    /// The samples of `shown`, in their order. Given the listeners themselves (not
    /// references), each is dropped once read, so that a survey and its samples are not both
    /// held whole (the exporter's peak memory).
    pub(crate) fn new<L: Borrow<ListenerInfo>>(shown: impl IntoIterator<Item = L>) -> Listeners {
        let shown = shown.into_iter();
        let room = shown.size_hint().1.unwrap_or(0);
        let mut this = Listeners {
            labels: String::with_capacity(room * 100),
            ends: Vec::with_capacity(room),
            values: Vec::with_capacity(room),
        };
        for l in shown {
            let l = l.borrow();
            write_labels(&mut this.labels, l);
            this.ends.push(this.labels.len());
            this.values.push(Values {
                backlog: l.backlog,
                queued: l.queued,
                drops: l.drops,
                below_limit: l.below_limit,
                shared: false,
                inode: l.inode,
            });
        }
        let mut seen: HashMap<&str, u32> = HashMap::with_capacity(this.ends.len());
        for i in 0..this.ends.len() {
            *seen.entry(this.labels_of(i)).or_default() += 1;
        }
        let shared: Vec<bool> = (0..this.ends.len())
            .map(|i| seen[this.labels_of(i)] > 1)
            .collect();
        drop(seen);
        for (values, shared) in this.values.iter_mut().zip(shared) {
            values.shared = shared;
        }
        this
    }

    fn labels_of(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &self.labels[start..self.ends[i]]
    }
}

/// One listener's labels, escaped: `netns="…",proto="…",local="…",command="…",
/// container_id="…",pod_uid="…"`. Each piece is written directly (numbers with `itoa`, an IPv4 address through
/// [`push_ipv4`]), without `fmt` and, for an IP listener, without an allocation.
fn write_labels(out: &mut String, l: &ListenerInfo) {
    let first = l.processes.first();
    let container = first.and_then(|o| o.container.as_ref());
    let mut number = itoa::Buffer::new();
    out.push_str("netns=\"");
    out.push_str(number.format(l.netns));
    out.push_str("\",proto=\"");
    out.push_str(l.proto.as_str());
    out.push_str("\",local=\"");
    match (&l.local, &l.device) {
        // An IPv4 address has nothing to escape.
        (Address::Inet(SocketAddr::V4(v4)), _) => push_ipv4(out, v4),
        // The rest (IPv6 with its scope, paths, abstract names) as `local_name` writes them.
        _ => push_escaped(out, &l.local_name()),
    }
    out.push_str("\",command=\"");
    push_escaped(out, first.map_or("", |o| &*o.command));
    out.push_str("\",container_id=\"");
    push_escaped(out, container.map_or("", |c| &c.id));
    out.push_str("\",pod_uid=\"");
    push_escaped(out, container.and_then(|c| c.pod.as_deref()).unwrap_or(""));
    out.push('"');
}

/// `a.b.c.d:port`, as `SocketAddrV4`'s `Display` writes it, in one copy.
fn push_ipv4(out: &mut String, addr: &SocketAddrV4) {
    // The longest: "255.255.255.255:65535".
    let mut text = [0u8; 21];
    let mut len = 0;
    let [a, b, c, d] = addr.ip().octets();
    let mut digits = itoa::Buffer::new();
    for (n, after) in [(a, b'.'), (b, b'.'), (c, b'.'), (d, b':')] {
        for &digit in digits.format(n).as_bytes().iter().chain([&after]) {
            text[len] = digit;
            len += 1;
        }
    }
    for &digit in digits.format(addr.port()).as_bytes() {
        text[len] = digit;
        len += 1;
    }
    // Only ASCII digits, dots and a colon were written.
    out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
}

/// Appends `value` escaped as a label value (backslash, double quote, line feed); the runs
/// between characters to escape are copied whole.
fn push_escaped(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
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
/// `listeners` are the listeners shown ([`Listeners::new`]); `found` gives the namespaces and
/// what could not be read (its listeners are not read).
pub(crate) fn render(
    found: &Survey,
    listeners: &Listeners,
    cursor: &mut Cursor,
    out: &mut String,
    budget: usize,
) -> bool {
    let mut number = itoa::Buffer::new();
    while let Some(&(name, kind, help, value)) = LISTENER_FAMILIES.get(cursor.family) {
        if !cursor.started {
            header(out, name, kind, help);
            cursor.started = true;
        }
        while let Some(values) = listeners.values.get(cursor.listener) {
            if out.len() >= budget {
                return true;
            }
            if let Some(v) = value(values) {
                out.push_str(name);
                out.push('{');
                out.push_str(listeners.labels_of(cursor.listener));
                if values.shared {
                    out.push_str(",inode=\"");
                    out.push_str(number.format(values.inode));
                    out.push('"');
                }
                out.push_str("} ");
                out.push_str(number.format(v));
                out.push('\n');
            }
            cursor.listener += 1;
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

    /// A label value as the format wants it: backslash, double quote and line feed escaped.
    fn escape_label_value(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        push_escaped(&mut out, value);
        out
    }

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
    fn ipv4_addresses_are_written_as_display_writes_them() {
        let mut text = String::new();
        for a in [0u8, 1, 9, 10, 99, 100, 127, 255] {
            for port in [0u16, 7, 80, 443, 8080, 19974, 65535] {
                let addr = SocketAddrV4::new(std::net::Ipv4Addr::new(a, 255 - a, a / 2, 1), port);
                text.clear();
                push_ipv4(&mut text, &addr);
                assert_eq!(text, addr.to_string());
            }
        }
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
                [
                    "netns",
                    "proto",
                    "local",
                    "command",
                    "container_id",
                    "pod_uid"
                ],
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
        let listeners = Listeners::new(mine.iter().copied());
        for budget in [1, 40, 4096] {
            let (mut cursor, mut text, mut pieces) = (Cursor::default(), String::new(), 0);
            loop {
                let mut piece = String::new();
                let more = render(&sample.survey, &listeners, &mut cursor, &mut piece, budget);
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
