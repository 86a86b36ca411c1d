//! The survey as JSON: an array of listener objects with stable field names (see the README).

use maxlisten::survey::ListenerInfo;
use serde::Serialize;

#[derive(Serialize)]
struct Listener<'a> {
    proto: String,
    local: String,
    backlog: u32,
    queued: u32,
    drops: Option<u64>,
    below_limit: bool,
    processes: Vec<Process<'a>>,
}

#[derive(Serialize)]
struct Process<'a> {
    pid: u32,
    command: &'a str,
    fd: i32,
}

/// The listeners as a pretty-printed JSON array, with a final newline.
pub(crate) fn listeners(shown: &[&ListenerInfo]) -> String {
    let rows: Vec<Listener<'_>> = shown
        .iter()
        .map(|l| Listener {
            proto: l.proto.to_string(),
            local: l.local.to_string(),
            backlog: l.backlog,
            queued: l.queued,
            drops: l.drops,
            below_limit: l.below_limit,
            processes: l
                .processes
                .iter()
                .map(|o| Process {
                    pid: o.pid,
                    command: &o.command,
                    fd: o.fd,
                })
                .collect(),
        })
        .collect();
    // Strings, numbers and options only: serializing cannot fail.
    serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample;

    #[test]
    fn every_listener_round_trips_with_its_fields() {
        let sample = sample::make("json");
        let mine = sample.mine();
        let parsed: serde_json::Value = serde_json::from_str(&listeners(&mine)).unwrap();
        let rows = parsed.as_array().unwrap();
        assert_eq!(rows.len(), mine.len());
        for (row, l) in rows.iter().zip(&mine) {
            assert_eq!(row["proto"], l.proto.to_string());
            // Quotes, backslashes and newlines survive; a non-UTF-8 byte becomes U+FFFD.
            assert_eq!(row["local"], l.local.to_string());
            assert_eq!(row["backlog"], l.backlog);
            assert_eq!(row["queued"], l.queued);
            assert_eq!(row["below_limit"], l.below_limit);
            assert_eq!(row["processes"][0]["pid"], std::process::id());
            assert_eq!(row["processes"][0]["fd"], l.processes[0].fd);
        }
        let text = parsed.to_string();
        assert!(text.contains("q\\\"uote\\\\back\\nline.sock"), "{text}");
        assert!(text.contains("bad\u{fffd}.sock"), "{text}");
        assert_eq!(listeners(&[]), "[]\n");
    }
}
