//! The survey as one JSON object with stable field names (the schema is in the README):
//! the namespaces surveyed, the listeners shown, and what could not be read.

use maxlisten::container::Container;
use maxlisten::survey::{ListenerInfo, Survey};
use serde::Serialize;

#[derive(Serialize)]
struct Document<'a> {
    namespaces: Vec<Namespace<'a>>,
    listeners: Vec<Listener<'a>>,
    unreadable_processes: usize,
    unreadable_namespaces: usize,
    unreadable_namespace_details: Vec<Unreadable<'a>>,
}

/// A namespace that could not be read, and why.
#[derive(Serialize)]
struct Unreadable<'a> {
    netns: u64,
    names: &'a [String],
    pid: Option<u32>,
    /// `io::ErrorKind` as Rust names it (`PermissionDenied`).
    kind: String,
    error: String,
}

#[derive(Serialize)]
struct Namespace<'a> {
    netns: u64,
    names: &'a [String],
    limit: Option<u32>,
    listeners: usize,
    listen_overflows: Option<u64>,
    listen_drops: Option<u64>,
}

#[derive(Serialize)]
struct Listener<'a> {
    netns: u64,
    limit: Option<u32>,
    proto: String,
    local: String,
    device: Option<&'a str>,
    inode: u64,
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
    cgroup: Option<&'a str>,
    container: Option<ContainerJson<'a>>,
}

#[derive(Serialize)]
struct ContainerJson<'a> {
    runtime: String,
    id: &'a str,
    pod: Option<&'a str>,
}

impl<'a> From<&'a Container> for ContainerJson<'a> {
    fn from(c: &'a Container) -> Self {
        ContainerJson {
            runtime: c.runtime.to_string(),
            id: &c.id,
            pod: c.pod.as_deref(),
        }
    }
}

/// The survey as a pretty-printed JSON object, with a final newline: every namespace surveyed,
/// the listeners shown.
pub(crate) fn survey(found: &Survey, shown: &[&ListenerInfo]) -> String {
    let document = Document {
        namespaces: found
            .namespaces
            .iter()
            .map(|ns| Namespace {
                netns: ns.netns,
                names: &ns.names,
                limit: ns.limit,
                listeners: ns.listeners,
                listen_overflows: ns.counters.map(|c| c.listen_overflows),
                listen_drops: ns.counters.map(|c| c.listen_drops),
            })
            .collect(),
        listeners: shown
            .iter()
            .map(|l| Listener {
                netns: l.netns,
                limit: l.limit,
                proto: l.proto.to_string(),
                local: l.local_name(),
                device: l.device.as_deref(),
                inode: l.inode,
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
                        cgroup: o.cgroup.as_deref(),
                        container: o.container.as_ref().map(ContainerJson::from),
                    })
                    .collect(),
            })
            .collect(),
        unreadable_processes: found.unreadable_processes,
        unreadable_namespaces: found.unreadable_namespaces.len(),
        unreadable_namespace_details: found
            .unreadable_namespaces
            .iter()
            .map(|ns| Unreadable {
                netns: ns.netns,
                names: &ns.names,
                pid: ns.pid,
                kind: format!("{:?}", ns.error().kind()),
                error: ns.to_string(),
            })
            .collect(),
    };
    // Strings, numbers and options only: serializing cannot fail.
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::sample;

    #[test]
    fn every_listener_round_trips_with_its_fields() {
        let sample = sample::make("json");
        let mine = sample.mine();
        let parsed: serde_json::Value =
            serde_json::from_str(&survey(&sample.survey, &mine)).unwrap();
        let rows = parsed["listeners"].as_array().unwrap();
        assert_eq!(rows.len(), mine.len());
        let netns = &parsed["namespaces"][0];
        assert_eq!(parsed["namespaces"].as_array().unwrap().len(), 1);
        assert_eq!(netns["limit"], maxlisten::system_limit().unwrap());
        assert!(netns["names"].is_array());
        assert!(netns["listen_drops"].is_u64());
        assert_eq!(
            parsed["unreadable_processes"],
            sample.survey.unreadable_processes
        );
        assert_eq!(parsed["unreadable_namespaces"], 0);
        assert_eq!(
            parsed["unreadable_namespace_details"],
            serde_json::json!([])
        );
        for (row, l) in rows.iter().zip(&mine) {
            assert_eq!(row["netns"], netns["netns"]);
            assert_eq!(row["limit"], netns["limit"]);
            assert_eq!(row["proto"], l.proto.to_string());
            // Quotes, backslashes and newlines survive; a non-UTF-8 byte becomes U+FFFD.
            assert_eq!(row["local"], l.local.to_string());
            assert_eq!(row["backlog"], l.backlog);
            assert_eq!(row["queued"], l.queued);
            assert_eq!(row["below_limit"], l.below_limit);
            assert_eq!(row["device"], serde_json::Value::Null);
            assert_eq!(row["processes"][0]["pid"], std::process::id());
            assert_eq!(row["processes"][0]["fd"], l.processes[0].fd);
            assert!(row["processes"][0]["cgroup"].is_string());
        }
        let text = parsed.to_string();
        assert!(text.contains("q\\\"uote\\\\back\\nline.sock"), "{text}");
        assert!(text.contains("bad\u{fffd}.sock"), "{text}");
        let empty: serde_json::Value = serde_json::from_str(&survey(&sample.survey, &[])).unwrap();
        assert_eq!(empty["listeners"], serde_json::json!([]));
    }
}
