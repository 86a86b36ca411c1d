//! `maxlisten raise`: re-listen the chosen listeners in their owners' processes, each to its own
//! namespace's limit (or --backlog), never lower unless --allow-lower.
//!
//! Exit status: 0 when everything asked for was done (also when nothing was below the limit, or
//! a listener was already at its limit), 1 when anything failed or was refused (a listener not
//! raised or whose backlog stayed short of the target, one named by --pid, --fd, --port or
//! --path that does not exist, a namespace that could not be read), 2 for a usage error. A dry
//! run exits as the real run would, short of what only trying tells (ptrace permission).

use std::cmp::Ordering;
use std::process::ExitCode;

use maxlisten::select::Selector;
use maxlisten::survey::{self, ListenerInfo, Survey};
use maxlisten::Backlog;

use crate::filters::{Filters, Scope};
use crate::render::chain;
use crate::render::table::{count, netns_label, owner};
use crate::survey::note_unreadable_processes;

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
    Exit status: 0 when all was done (or nothing was below the limit), 1 on any failure (a\n\
    listener not raised, a named one that does not exist, a namespace that could not be read;\n\
    --dry-run: what the real run would), 2 for a usage error.";

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
        // With --all-below-limit, nothing below the limit is nothing to do; unless listeners
        // named outright (--pid, --fd, --port, --path) do not exist at all.
        if args.all_below_limit && (any || !args.filters.names_listeners()) {
            let read = if found.unreadable_namespaces.is_empty() {
                ""
            } else {
                " of the namespaces read"
            };
            println!("nothing to raise: no chosen listener{read} is below its namespace's limit");
            return finish(&found, 0, args.dry_run);
        }
        let read = if found.unreadable_namespaces.is_empty() {
            ""
        } else {
            " in the namespaces read"
        };
        eprintln!(
            "maxlisten raise: no listener{read} matches {}{}",
            args.asked(),
            why_none(&found, &selector, &args.scope)
        );
        finish(&found, 0, args.dry_run);
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
        finish(&found, 0, args.dry_run);
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
        let target = target(l, p.request);
        if args.dry_run {
            // What the real run would say, short of what only trying tells (ptrace
            // permission, a process gone meanwhile).
            if let Some(why) = blind(l, p.request) {
                failed += 1;
                eprintln!(
                    "{what}: {} → {target} would fail (dry run): {why}",
                    l.backlog
                );
            } else if l.processes.is_empty() {
                failed += 1;
                let why = no_holder(l, p.request);
                eprintln!(
                    "{what}: {} → {target} would fail (dry run): {why}",
                    l.backlog
                );
            } else {
                println!("{what}: {} → {target} (dry run)", l.backlog);
            }
            continue;
        }
        match raise_one(l, p.request) {
            Outcome::Done { applied, note } => {
                let applied = applied.map_or_else(|| "unknown".to_string(), |a| a.to_string());
                println!("{what}: {} → {applied}{note}", l.backlog);
            }
            Outcome::Failed(why) => {
                failed += 1;
                eprintln!("{what}: {why}");
            }
        }
    }
    finish(&found, failed, args.dry_run)
}

impl Args {
    /// The selecting flags as given, for messages: `--netns blue --port 8000`.
    fn asked(&self) -> String {
        let mut flags = self.scope.flags();
        flags.extend(self.filters.flags());
        if self.all_below_limit {
            flags.push("--all-below-limit".into());
        }
        flags.join(" ")
    }
}

/// After "no listener matches FLAGS": why, where the survey tells, and where to look.
fn why_none(found: &Survey, selector: &Selector, scope: &Scope) -> String {
    if let Some(pid) = selector.chosen_pid() {
        // The process (and descriptor) alone match nothing: say why, from /proc.
        let mut by_pid = Selector::new().pid(pid);
        if let Some(fd) = selector.chosen_fd() {
            by_pid = by_pid.fd(fd);
        }
        if !found.listeners.iter().any(|l| by_pid.matches(l)) {
            let why = survey::why_not_listed(pid, selector.chosen_fd());
            return format!(": {why}; nothing changed");
        }
    }
    let flags = scope.flags();
    if flags.is_empty() {
        "; nothing changed (maxlisten survey lists the listeners of this network namespace; \
         --all-namespaces, of every one)"
            .into()
    } else {
        format!(
            "; nothing changed (maxlisten survey {} lists the listeners there)",
            flags.join(" ")
        )
    }
}

/// The end of a run: what could not be read, the failures, and the exit status (0 only when
/// everything asked for was done; a namespace that could not be read holds listeners that
/// could not be raised).
fn finish(found: &Survey, failed: usize, dry_run: bool) -> ExitCode {
    let not = |n: usize| match (dry_run, n) {
        (true, _) => "would not be raised (dry run)",
        (false, 1) => "was not raised",
        (false, _) => "were not raised",
    };
    note_unreadable_processes(found);
    let unread = found.unreadable_namespaces.len();
    for ns in &found.unreadable_namespaces {
        eprintln!("maxlisten raise: {ns}; the listeners in it {}", not(2));
    }
    if failed > 0 {
        eprintln!(
            "maxlisten raise: {} {}",
            count(failed, "listener"),
            not(failed)
        );
    }
    if unread > 0 {
        eprintln!(
            "maxlisten raise: {} could not be read; the listeners in {} {}",
            count(unread, "network namespace"),
            if unread == 1 { "it" } else { "them" },
            not(2)
        );
    }
    if failed > 0 || unread > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What a listener will be raised to with `request` (`u32::MAX`: no --backlog): the request
/// capped at its namespace's limit, or, where that limit could not be read, the request and
/// the cap the kernel will still apply.
fn target(l: &ListenerInfo, request: u32) -> String {
    match (l.limit, request) {
        (Some(limit), _) => request.min(limit).to_string(),
        (None, u32::MAX) => "its namespace's limit (which cannot be read here)".into(),
        (None, b) => format!("{b} (at most its namespace's limit, which cannot be read here)"),
    }
}

/// Why the real run would fail for a listener no process is known to hold. `relisten` finds
/// no holder to borrow the socket from, so it changes nothing and only says why, from what this
/// process can observe (hidepid, missing privilege, a PID namespace of its own).
fn no_holder(l: &ListenerInfo, request: u32) -> String {
    // With a holder, relisten would change the socket: a dry run must not get here then.
    if !l.processes.is_empty() {
        return "it has a holder (not a dry run's question)".into();
    }
    match survey::relisten(l, request) {
        Err(err) => chain(&err),
        Ok(_) => "no process is known to hold it".into(),
    }
}

/// How a re-listen ended.
pub(crate) enum Outcome {
    /// Changed as asked, to `applied` (`None`: it cannot be read back); `note` says how it
    /// differs from what was expected, if it does.
    Done { applied: Option<u32>, note: String },
    /// Not done: why.
    Failed(String),
}

/// Why `l` is not re-listened with `request` where its namespace's limit cannot be read:
/// `listen(2)` caps any request at that limit, which may have fallen below the backlog since
/// the listener listened, so only a request to lower it is carried out there (as
/// `survey::relisten` does too).
fn blind(l: &ListenerInfo, request: u32) -> Option<String> {
    (l.limit.is_none() && request >= l.backlog).then(|| {
        format!(
            "left at {}: its namespace's limit cannot be read here (neither net.core.somaxconn \
             nor a listener made to measure it), and listen(2) would lower the backlog to that \
             limit were it lower",
            l.backlog
        )
    })
}

/// Re-listens `l` with `request` through one of its holders, and judges the backlog read back
/// against what was asked. `raise` and `raise --watch` both raise through here.
pub(crate) fn raise_one(l: &ListenerInfo, request: u32) -> Outcome {
    if let Some(why) = blind(l, request) {
        return Outcome::Failed(why);
    }
    match survey::relisten(l, request) {
        Ok(after) => judge(l, request, after),
        Err(err) => Outcome::Failed(chain(&err)),
    }
}

/// The outcome of a `listen(2)` with `request` that left `after`, for a listener surveyed at
/// `l.backlog` under its namespace's limit `l.limit`.
fn judge(l: &ListenerInfo, request: u32, after: Backlog) -> Outcome {
    let before = l.backlog;
    let target = l.limit.map_or(request, |limit| request.min(limit));
    let asked = self::target(l, request);
    let Some(applied) = after.applied() else {
        return Outcome::Done {
            applied: None,
            note: format!(" ({after}: listen(2) succeeded, the result cannot be read back)"),
        };
    };
    if applied == target {
        return Outcome::Done {
            applied: Some(applied),
            note: String::new(),
        };
    }
    let wanted = target.cmp(&before);
    let got = applied.cmp(&before);
    if got == wanted {
        // Moved the way asked, not as far: the limit is not what the survey read (or, where it
        // could not be read, the kernel capped the request at it).
        let note = l.limit.map_or(String::new(), |limit| {
            format!(
                " (not the {target} expected: its namespace's limit is no longer {limit}; \
                 net.core.somaxconn changed since the survey)"
            )
        });
        return Outcome::Done {
            applied: Some(applied),
            note,
        };
    }
    // Where the limit cannot be read, only a request to lower gets here (`blind`).
    match (got, l.limit) {
        (Ordering::Equal, limit) => Outcome::Failed(format!(
            "the backlog stayed {before}, not the {asked} asked for{}",
            limit.map_or(String::new(), |limit| format!(
                " (its namespace's limit was {limit} at the survey: net.core.somaxconn changed \
                 since?)"
            ))
        )),
        (Ordering::Less, _) => Outcome::Failed(format!(
            "the kernel lowered the backlog to {applied}, though {asked} was asked for: its \
             namespace's limit fell below {before} since the survey"
        )),
        (Ordering::Greater, _) => Outcome::Failed(format!(
            "the kernel raised the backlog to {applied}, though {asked} was asked for"
        )),
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
