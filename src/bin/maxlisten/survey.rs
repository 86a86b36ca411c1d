//! `maxlisten survey`: list the listeners of one or every network namespace, as a table, JSON or
//! Prometheus text (to stdout, or written atomically to a file).

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use maxlisten::survey::{ListenerInfo, Survey, UnreadableNamespace};

use crate::filters::{Filters, Scope};
use crate::render;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten survey\n  \
    maxlisten survey --below-limit\n  \
    maxlisten survey --all-namespaces\n  \
    maxlisten survey --netns blue --port 8080\n  \
    maxlisten survey --proto unix --json\n  \
    maxlisten survey --all-namespaces --json | jq '.listeners[] | select(.below_limit)'\n  \
    maxlisten survey --all-namespaces --prometheus --output /var/lib/node_exporter/textfile/maxlisten.prom\n\n\
    Run as root to see the owners of every process's sockets, and (with --all-namespaces or\n\
    --netns) to enter other network namespaces.";

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    scope: Scope,
    /// Print one JSON object: namespaces, listeners, unreadable counts (schema in the README).
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print the Prometheus text format (node_exporter's textfile collector reads it).
    #[arg(long)]
    prometheus: bool,
    /// With --prometheus: write to FILE instead, atomically (a temporary file in the same
    /// directory, renamed over FILE); a failed run leaves FILE as it was.
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    output: Option<PathBuf>,
    /// Only listeners whose backlog is below their namespace's limit.
    #[arg(long)]
    below_limit: bool,
    #[command(flatten)]
    filters: Filters,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let found = match args.scope.survey() {
        Ok(found) => found,
        Err(err) => {
            eprintln!("maxlisten survey: {}", render::chain(&err));
            return ExitCode::FAILURE;
        }
    };
    let selector = args.filters.selector().below_limit(args.below_limit);
    let shown: Vec<&ListenerInfo> = found
        .listeners
        .iter()
        .filter(|l| selector.matches(l))
        .collect();
    let text = if args.json {
        render::json::survey(&found, &shown)
    } else if args.prometheus {
        render::prometheus::survey(&found, &shown)
    } else {
        render::table::survey(&found, &shown)
    };
    let written = match &args.output {
        Some(path) => write_atomically(path, &text),
        None => std::io::stdout().write_all(text.as_bytes()),
    };
    if let Err(err) = written {
        let to = args
            .output
            .as_ref()
            .map_or("stdout".to_string(), |p| p.display().to_string());
        eprintln!("maxlisten survey: write {to}: {err}");
        return ExitCode::FAILURE;
    }
    note_unreadable(&found);
    ExitCode::SUCCESS
}

/// Writes `text` to a temporary file beside `path`, flushes it to disk, and renames it over
/// `path`: a reader (node_exporter) sees the old file or the new one, never a part. On failure
/// the temporary file is removed and `path` is untouched.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let temp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Lines on stderr when some processes or namespaces could not be read: the count of the
/// processes, and each namespace with why (the survey still succeeds: it shows what it read).
pub(crate) fn note_unreadable(found: &Survey) {
    note_unreadable_processes(found);
    for ns in &found.unreadable_namespaces {
        eprintln!("note: {ns}; its listeners are missing");
    }
}

/// The namespaces a long-running command (the exporter, `raise --watch`) has said could not be
/// read, so that each is said once while it stays so.
#[derive(Default)]
pub(crate) struct UnreadableSaid(HashSet<u64>);

impl UnreadableSaid {
    /// Calls `new` with each namespace of `found` that could not be read and was readable (or
    /// absent) in the last survey; returns the inodes of those unreadable then and no longer
    /// unreadable now (read again, or gone).
    pub(crate) fn update(
        &mut self,
        found: &Survey,
        mut new: impl FnMut(&UnreadableNamespace),
    ) -> Vec<u64> {
        let now: HashSet<u64> = found
            .unreadable_namespaces
            .iter()
            .map(|ns| ns.netns)
            .collect();
        for ns in &found.unreadable_namespaces {
            if !self.0.contains(&ns.netns) {
                new(ns);
            }
        }
        let cleared = self.0.difference(&now).copied().collect();
        self.0 = now;
        cleared
    }
}

/// The line on stderr when some processes' descriptors could not be read.
pub(crate) fn note_unreadable_processes(found: &Survey) {
    if found.unreadable_processes == 0 {
        return;
    }
    // The owner of /proc/self is this process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let hint = if root {
        "even root is refused a process whose capabilities exceed its own, or by a security \
         module"
    } else {
        "run as root to see them"
    };
    const SHOWN: usize = 10;
    let mut pids: Vec<String> = found
        .unreadable_pids
        .iter()
        .take(SHOWN)
        .map(u32::to_string)
        .collect();
    if found.unreadable_pids.len() > SHOWN {
        pids.push(format!("and {} more", found.unreadable_pids.len() - SHOWN));
    }
    eprintln!(
        "note: the descriptors of {} processes could not be read (pid {}); their listeners \
         are shown without owners ({hint})",
        found.unreadable_processes,
        pids.join(", ")
    );
}
