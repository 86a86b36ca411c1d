//! `maxlisten raise`: re-listen the chosen listeners in their owners' processes, each to its own
//! namespace's limit (or --backlog), never lower unless --allow-lower.
//!
//! Exit status: 0 when everything asked for was done (also when nothing was below the limit), 1
//! when anything failed or was refused, 2 for a usage error.

use std::process::ExitCode;

use maxlisten::survey::{self, ListenerInfo, Survey};

use crate::filters::{Filters, Scope};
use crate::render::chain;
use crate::render::table::{count, netns_label, owner};
use crate::survey::note_unreadable;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten raise --all-below-limit --dry-run\n  \
    maxlisten raise --all-below-limit\n  \
    maxlisten raise --all-namespaces --all-below-limit\n  \
    maxlisten raise --netns blue --port 8080\n  \
    maxlisten raise --pid 1234 --fd 3 --backlog 8192\n  \
    maxlisten raise --path /run/app.sock\n  \
    maxlisten raise --watch 30 --all-namespaces --all-below-limit\n\n\
    Selectors combine: every listener that matches all of them is raised, each to its own\n\
    network namespace's limit. A backlog is never lowered unless --allow-lower is given.\n\
    Exit status: 0 when all was done (or nothing was below the limit), 1 on any failure, 2 for\n\
    a usage error.";

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    scope: Scope,
    #[command(flatten)]
    filters: Filters,
    /// Every listener below its namespace's limit.
    #[arg(long)]
    all_below_limit: bool,
    /// The backlog to ask for (the kernel still caps it at the listener's namespace's limit).
    #[arg(long)]
    backlog: Option<u32>,
    /// Allow a smaller backlog than the listener has (refused otherwise, and nothing changes).
    #[arg(long)]
    allow_lower: bool,
    /// Say what would be done, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep raising: every SECONDS, survey and raise what the selectors choose (never
    /// lowering). One line per change or failure on stderr; SIGHUP runs a pass at once;
    /// SIGTERM or SIGINT ends it with status 0.
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["dry_run", "allow_lower"],
          value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
}

/// What the raise will ask of one listener.
struct Plan<'a> {
    listener: &'a ListenerInfo,
    /// The backlog passed to `listen`.
    request: u32,
    /// What the listener should end up with (the request capped at its limit).
    expected: u32,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let selector = args.filters.selector().below_limit(args.all_below_limit);
    if selector.is_empty() {
        eprintln!(
            "maxlisten raise: say which listeners: --all-below-limit, --pid, --port, --path, \
             --proto or --device (see maxlisten raise --help)"
        );
        return ExitCode::from(2);
    }
    if let Some(seconds) = args.watch {
        return crate::watch::run(args.scope, selector, args.backlog, seconds);
    }
    let found = match args.scope.survey() {
        Ok(found) => found,
        Err(err) => {
            eprintln!("maxlisten raise: {}", chain(&err));
            return ExitCode::FAILURE;
        }
    };
    if let Some(pid) = selector.chosen_pid() {
        // A named process whose descriptors cannot be read: say so, not "no listener matches".
        if found.unreadable_pids.contains(&pid) {
            let why = survey::why_not_listed(pid, selector.chosen_fd());
            eprintln!("maxlisten raise: {why}; nothing changed");
            return ExitCode::FAILURE;
        }
    }
    let chosen: Vec<&ListenerInfo> = found
        .listeners
        .iter()
        .filter(|l| selector.matches(l))
        .collect();
    if chosen.is_empty() {
        let without_limit = selector.clone().below_limit(false);
        let any = found.listeners.iter().any(|l| without_limit.matches(l));
        if args.all_below_limit && (any || without_limit.is_empty()) {
            println!("nothing to raise: no chosen listener is below its namespace's limit");
            note_unreadable(&found);
            return ExitCode::SUCCESS;
        }
        match selector.chosen_pid() {
            Some(pid) => eprintln!(
                "maxlisten raise: {}",
                survey::why_not_listed(pid, selector.chosen_fd())
            ),
            None => eprintln!("maxlisten raise: no listener matches"),
        }
        note_unreadable(&found);
        return ExitCode::FAILURE;
    }
    let plans: Vec<Plan> = chosen
        .iter()
        .map(|l| {
            let request = args.backlog.unwrap_or(u32::MAX);
            let expected = l.limit.map_or(request, |limit| request.min(limit));
            Plan {
                listener: l,
                request,
                expected,
            }
        })
        .collect();
    // With --all-below-limit, a listener already above the backlog asked for is not below it:
    // it is left as it is, not lowered and not a reason to refuse the others.
    let (plans, above): (Vec<Plan>, Vec<Plan>) = plans.into_iter().partition(|p| {
        !(args.all_below_limit && !args.allow_lower && p.expected < p.listener.backlog)
    });
    for p in &above {
        println!(
            "{}: backlog {}, above the {} asked for; left as it is",
            what(p.listener, &found),
            p.listener.backlog,
            p.expected
        );
    }
    // Nothing is lowered unless asked: refuse the whole run before any change.
    let lowering: Vec<&Plan> = plans
        .iter()
        .filter(|p| p.expected < p.listener.backlog)
        .collect();
    if !lowering.is_empty() && !args.allow_lower {
        for p in &lowering {
            eprintln!(
                "{}: backlog {}, this would lower it to {}; refused",
                what(p.listener, &found),
                p.listener.backlog,
                p.expected
            );
        }
        eprintln!(
            "maxlisten raise: {} would be lowered; nothing changed (pass --allow-lower to lower \
             them)",
            count(lowering.len(), "listener")
        );
        return ExitCode::FAILURE;
    }
    let mut failed = 0;
    for p in &plans {
        let l = p.listener;
        let what = what(l, &found);
        if p.expected == l.backlog {
            println!("{what}: already {} (its limit {})", l.backlog, limit(l));
            continue;
        }
        if args.dry_run {
            let holder = if l.processes.is_empty() {
                ", no holder found"
            } else {
                ""
            };
            println!("{what}{holder}: {} → {} (dry run)", l.backlog, p.expected);
            continue;
        }
        match raise_one(l, p.request) {
            Ok(after) => println!("{what}: {} → {after}", l.backlog),
            Err(err) => {
                failed += 1;
                eprintln!("{what}: {err}");
            }
        }
    }
    note_unreadable(&found);
    if failed > 0 {
        eprintln!("maxlisten raise: {} not raised", count(failed, "listener"));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Re-listens `l` with `request` through one of its holders; the applied backlog as text, or
/// the error with its causes. `raise` and `raise --watch` both raise through here.
pub(crate) fn raise_one(l: &ListenerInfo, request: u32) -> Result<String, String> {
    match survey::relisten(l, request) {
        Ok(after) => Ok(after
            .applied()
            .map_or_else(|| format!("unknown ({after})"), |a| a.to_string())),
        Err(err) => Err(chain(&err)),
    }
}

/// `tcp 127.0.0.1:8080 in netns blue, 812/nginx fd 6 (docker 3f4e5d6c7b8a), ...`.
pub(crate) fn what(l: &ListenerInfo, found: &Survey) -> String {
    let holders = if l.processes.is_empty() {
        String::new()
    } else {
        format!(
            ", {}",
            l.processes.iter().map(owner).collect::<Vec<_>>().join(", ")
        )
    };
    format!(
        "{} {} in netns {}{holders}",
        l.proto,
        crate::render::table::cell(&l.local_name()),
        netns_label(l.netns, found)
    )
}

fn limit(l: &ListenerInfo) -> String {
    l.limit.map_or("unknown".into(), |v| v.to_string())
}
