//! `maxlisten survey`: list the listeners, as a table, JSON or Prometheus text.

use std::process::ExitCode;

use maxlisten::survey::{self, ListenerInfo, Survey};

use crate::filters::Filters;
use crate::render;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten survey\n  \
    maxlisten survey --below-limit\n  \
    maxlisten survey --port 8080\n  \
    maxlisten survey --proto unix --json\n  \
    maxlisten survey --json | jq '.[] | select(.below_limit)'\n  \
    maxlisten survey --prometheus > /var/lib/node_exporter/textfile/maxlisten.prom\n\n\
    Run as root to see the owners of every process's sockets.";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Print a JSON array of objects.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print the Prometheus text format (node_exporter's textfile collector reads it).
    #[arg(long)]
    prometheus: bool,
    /// Only listeners whose backlog is below the system limit.
    #[arg(long)]
    below_limit: bool,
    #[command(flatten)]
    filters: Filters,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let found = match survey::survey() {
        Ok(found) => found,
        Err(err) => {
            eprintln!("maxlisten survey: {err}");
            return ExitCode::FAILURE;
        }
    };
    let selector = args.filters.selector().below_limit(args.below_limit);
    let shown: Vec<&ListenerInfo> = found
        .listeners
        .iter()
        .filter(|l| selector.matches(l))
        .collect();
    if args.json {
        print!("{}", render::json::listeners(&shown));
    } else if args.prometheus {
        print!("{}", render::prometheus::survey(&found, &shown));
    } else {
        print!("{}", render::table::survey(&found, &shown));
    }
    note_unreadable(&found);
    ExitCode::SUCCESS
}

/// A line on stderr when some processes could not be read.
pub(crate) fn note_unreadable(found: &Survey) {
    if found.unreadable_processes > 0 {
        eprintln!(
            "note: the descriptors of {} processes could not be read; their listeners are \
             shown without owners (run as root to see them)",
            found.unreadable_processes
        );
    }
}
