//! The survey as an aligned table for a terminal.

use maxlisten::survey::{ListenerInfo, NamespaceInfo, Owner, Survey, UnreadableNamespace};

/// `PID/COMMAND fd N`, as every line of the command names a holder, with its container where
/// its cgroup names one (`(docker 3f4e5d6c7b8a)`, `(containerd 0123456789ab, pod UID)`).
pub(crate) fn owner(o: &Owner) -> String {
    let mut text = format!("{}/{} fd {}", o.pid, cell(&o.command), o.fd);
    if let Some(c) = &o.container {
        text.push_str(&format!(" ({} {}", c.runtime, c.short_id()));
        if let Some(pod) = &c.pod {
            text.push_str(&format!(", pod {pod}"));
        }
        text.push(')');
    }
    text
}

/// A namespace as the table names it: its first `ip netns` name, else its inode.
pub(crate) fn netns_label(netns: u64, found: &Survey) -> String {
    found
        .namespace(netns)
        .and_then(|ns| ns.names.first())
        .map_or_else(|| netns.to_string(), |name| cell(name))
}

/// `1 listener`, `2 listeners`.
pub(crate) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A limit, or `unknown`.
fn limit(limit: Option<u32>) -> String {
    limit.map_or("unknown".to_string(), |l| l.to_string())
}

/// One line per namespace: its name(s) and inode, its limit, how many listeners it has.
fn namespace_line(ns: &NamespaceInfo) -> String {
    let names = if ns.names.is_empty() {
        String::new()
    } else {
        format!(
            "{} ",
            ns.names
                .iter()
                .map(|n| cell(n))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "  {names}{}: limit {}, {}\n",
        if names.is_empty() {
            ns.netns.to_string()
        } else {
            format!("({})", ns.netns)
        },
        limit(ns.limit),
        count(ns.listeners, "listener")
    )
}

/// One line for a namespace that could not be read: its name(s) and inode, and that it was
/// not read (the reason is on stderr, one line each: see `survey::note_unreadable`).
fn unreadable_line(ns: &UnreadableNamespace) -> String {
    let pid = ns.pid.map_or(String::new(), |pid| format!(", pid {pid}"));
    let label = if ns.names.is_empty() {
        format!("{}{pid}", ns.netns)
    } else {
        let names: Vec<String> = ns.names.iter().map(|n| cell(n)).collect();
        format!("{} ({}{pid})", names.join(", "), ns.netns)
    };
    // The OS's own words for its error ("Operation not permitted"), which say more than the
    // kind ("uncategorized error" for many).
    let err = ns.error();
    let why = err.raw_os_error().map_or_else(
        || err.kind().to_string(),
        |code| std::io::Error::from_raw_os_error(code).to_string(),
    );
    format!("  {label}: could not be read: {why}; its listeners are missing\n")
}

/// Text for one cell: control characters (a newline in a socket path, an escape sequence in a
/// command name) are shown escaped, so that one listener is one line and nothing reaches the
/// terminal as a control sequence.
pub(crate) fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

const COLUMNS: usize = 9;

/// The header (the namespaces and their limits), then one row per shown listener: numbers
/// right-aligned, text left-aligned, the last column (the holders) unpadded.
pub(crate) fn survey(found: &Survey, shown: &[&ListenerInfo]) -> String {
    let mut rows = vec![[
        "NETNS",
        "PROTO",
        "LOCAL",
        "BACKLOG",
        "LIMIT",
        "QUEUED",
        "DROPS",
        "BELOW LIMIT",
        "PROCESS",
    ]
    .map(String::from)];
    for l in shown {
        let owners = if l.processes.is_empty() {
            "-".to_string()
        } else {
            l.processes.iter().map(owner).collect::<Vec<_>>().join(", ")
        };
        rows.push([
            netns_label(l.netns, found),
            l.proto.to_string(),
            cell(&l.local_name()),
            l.backlog.to_string(),
            limit(l.limit),
            l.queued.to_string(),
            l.drops.map_or("-".into(), |d| d.to_string()),
            if l.below_limit { "yes" } else { "no" }.into(),
            owners,
        ]);
    }
    let widths: Vec<usize> = (0..COLUMNS)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let below = found.listeners.iter().filter(|l| l.below_limit).count();
    let mut out = match found.namespaces.as_slice() {
        [ns] if found.unreadable_namespaces.is_empty() => format!(
            "system limit {} ({}) in network namespace {}; {}, {below} below the limit\n",
            limit(ns.limit),
            maxlisten::system_limit_name(),
            netns_label(ns.netns, found),
            count(found.listeners.len(), "listener"),
        ),
        namespaces => {
            let unread = match found.unreadable_namespaces.len() {
                0 => String::new(),
                n => format!(" ({n} more could not be read: their listeners are missing)"),
            };
            let mut head = format!(
                "{}{unread}, each with its own limit ({}); {}, {below} below their \
                 namespace's limit\n",
                count(namespaces.len(), "network namespace"),
                maxlisten::system_limit_name(),
                count(found.listeners.len(), "listener"),
            );
            for ns in namespaces {
                head.push_str(&namespace_line(ns));
            }
            for ns in &found.unreadable_namespaces {
                head.push_str(&unreadable_line(ns));
            }
            head
        }
    };
    for row in rows {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            match i {
                8 => line.push_str(text),
                3..=6 => line.push_str(&format!("{text:>w$}  ", w = widths[i])),
                _ => line.push_str(&format!("{text:<w$}  ", w = widths[i])),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a\nb\tc\u{1b}[31m"), "a\\nb\\tc\\u{1b}[31m");
        assert_eq!(cell("é ü 中"), "é ü 中");
    }

    #[test]
    fn columns_line_up_and_each_listener_is_one_line() {
        let sample = sample::make("table");
        let mine = sample.mine();
        assert_eq!(mine.len(), 1 + sample::NAMES.len(), "{mine:?}");
        let text = survey(&sample.survey, &mine);
        let lines: Vec<&str> = text.lines().collect();
        // The header line, the column heads, one line per listener.
        assert_eq!(lines.len(), 2 + mine.len(), "{text}");
        assert!(lines[0].starts_with("system limit "), "{text}");
        // Text columns start where their head starts; numeric ones end where their head ends.
        let heads = lines[1];
        let at = |head: &str| heads.find(head).unwrap();
        for row in &lines[2..] {
            let chars: Vec<char> = row.chars().collect();
            for head in ["PROTO", "LOCAL", "BELOW LIMIT", "PROCESS"] {
                let start = at(head);
                assert!(
                    chars[start - 1] == ' ' && chars[start] != ' ',
                    "{row:?}: {head}"
                );
            }
            for head in ["BACKLOG", "LIMIT", "QUEUED", "DROPS"] {
                let end = at(head) + head.len();
                assert!(
                    chars[end - 1] != ' ' && chars[end] == ' ',
                    "{row:?}: {head}"
                );
            }
        }
        // The escaped path is on one line, with the owner; the non-UTF-8 byte is replaced.
        assert!(text.contains("q\"uote\\back\\nline.sock"), "{text}");
        assert!(text.contains("bad\u{fffd}.sock"), "{text}");
        let me = format!("{}/", std::process::id());
        assert!(lines[2..].iter().all(|l| l.contains(&me)), "{text}");
        // Each row starts with its namespace and shows that namespace's limit.
        let ns = &sample.survey.namespaces[0];
        let label = netns_label(ns.netns, &sample.survey);
        let limit = ns.limit.unwrap().to_string();
        for row in &lines[2..] {
            assert!(row.starts_with(&label), "{row}");
            assert!(row.split_whitespace().any(|w| w == limit), "{row}");
        }
        assert!(
            lines[0].contains(&format!("network namespace {label}")),
            "{text}"
        );
    }
}
