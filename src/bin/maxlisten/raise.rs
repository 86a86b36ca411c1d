//! `maxlisten raise`: re-listen the chosen listeners in their owners' processes.

use std::process::ExitCode;

use maxlisten::select::Selector;
use maxlisten::survey::{self, ListenerInfo};

use crate::filters::Filters;
use crate::render::table::owner;
use crate::survey::note_unreadable;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten raise --all-below-limit --dry-run\n  \
    maxlisten raise --all-below-limit\n  \
    maxlisten raise --port 8080\n  \
    maxlisten raise --pid 1234 --fd 3 --backlog 8192\n  \
    maxlisten raise --path /run/app.sock\n\n\
    Selectors combine: every listener that matches all of them is raised.";

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    filters: Filters,
    /// Every listener below the system limit.
    #[arg(long)]
    all_below_limit: bool,
    /// The backlog to ask for (the kernel still caps it at the system limit).
    #[arg(long)]
    backlog: Option<u32>,
    /// Say what would be done, change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let selector = args.filters.selector().below_limit(args.all_below_limit);
    if selector.is_empty() {
        eprintln!(
            "maxlisten raise: say which listeners: --all-below-limit, --pid, --port, --path or \
             --proto (see maxlisten raise --help)"
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
    let request = args.backlog.unwrap_or(u32::MAX);
    if let (Some(pid), Some(fd)) = (selector.chosen_pid(), selector.chosen_fd()) {
        return raise_named(&found.listeners, pid, fd, request, args.dry_run);
    }
    let chosen: Vec<&ListenerInfo> = found
        .listeners
        .iter()
        .filter(|l| selector.matches(l))
        .collect();
    if chosen.is_empty() {
        eprintln!("maxlisten raise: no listener matches");
        note_unreadable(&found);
        return ExitCode::FAILURE;
    }
    let target = found.limit.map_or(request, |limit| request.min(limit));
    let mut failed = 0;
    for l in chosen {
        let what = format!("{} {}", l.proto, l.local);
        // One holder is enough: they all share the one socket.
        let Some(holder) = selector.owners(l).next() else {
            failed += 1;
            if found.unreadable_processes > 0 {
                eprintln!(
                    "{what}: no process holding it could be read ({} processes could not be \
                     read): needs root (or CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)",
                    found.unreadable_processes
                );
            } else {
                eprintln!(
                    "{what}: every process was read and none of this PID namespace holds it \
                     (is its owner in another container?); run maxlisten there"
                );
            }
            continue;
        };
        let who = owner(holder);
        if args.dry_run {
            println!("{what} ({who}): {} → {target} (dry run)", l.backlog);
            continue;
        }
        match relisten(holder.pid, holder.fd, request) {
            Ok(after) => println!("{what} ({who}): {} → {after}", l.backlog),
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

/// One descriptor named outright: reach for it even where `/proc` does not show it (another
/// user's process), so that the kernel's answer says what is missing.
fn raise_named(
    listeners: &[ListenerInfo],
    pid: u32,
    fd: i32,
    request: u32,
    dry_run: bool,
) -> ExitCode {
    let before = Selector::new().pid(pid).fd(fd);
    let before = listeners.iter().find(|l| before.matches(l));
    let what = before.map_or(format!("pid {pid} fd {fd}"), |l| {
        format!("{} {} ({pid} fd {fd})", l.proto, l.local)
    });
    let shown = before.map_or("?".to_string(), |l| l.backlog.to_string());
    if dry_run {
        println!("{what}: {shown} → (dry run, not changed)");
        return ExitCode::SUCCESS;
    }
    match relisten(pid, fd, request) {
        Ok(after) => {
            println!("{what}: {shown} → {after}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("maxlisten raise: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Re-listens descriptor `fd` of `pid`; the applied backlog as text.
fn relisten(pid: u32, fd: i32, request: u32) -> Result<String, maxlisten::Error> {
    let after = survey::relisten(pid, fd, request)?;
    Ok(after
        .applied()
        .map_or_else(|| format!("unknown ({after})"), |a| a.to_string()))
}
