//! The survey as an aligned table for a terminal.

use maxlisten::survey::{ListenerInfo, Owner, Survey};

/// `PID/COMMAND fd N`, as every line of the command names a holder.
pub(crate) fn owner(o: &Owner) -> String {
    format!("{}/{} fd {}", o.pid, cell(&o.command), o.fd)
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

/// The header line, then one row per shown listener: numbers right-aligned, text
/// left-aligned, the last column (the holders) unpadded.
pub(crate) fn survey(found: &Survey, shown: &[&ListenerInfo]) -> String {
    let limit = found.limit.map_or("unknown".to_string(), |l| l.to_string());
    let mut rows = vec![[
        "PROTO",
        "LOCAL",
        "BACKLOG",
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
            l.proto.to_string(),
            cell(&l.local.to_string()),
            l.backlog.to_string(),
            l.queued.to_string(),
            l.drops.map_or("-".into(), |d| d.to_string()),
            if l.below_limit { "yes" } else { "no" }.into(),
            owners,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "system limit {limit} ({}); {} listeners, {} below the limit\n",
        maxlisten::system_limit_name(),
        found.listeners.len(),
        found.listeners.iter().filter(|l| l.below_limit).count()
    );
    for row in rows {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            match i {
                6 => line.push_str(text),
                2..=4 => line.push_str(&format!("{text:>w$}  ", w = widths[i])),
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
            for head in ["LOCAL", "BELOW LIMIT", "PROCESS"] {
                let start = at(head);
                assert!(
                    chars[start - 1] == ' ' && chars[start] != ' ',
                    "{row:?}: {head}"
                );
            }
            for head in ["BACKLOG", "QUEUED", "DROPS"] {
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
    }
}
