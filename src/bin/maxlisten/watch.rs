//! `maxlisten raise --watch SECONDS`: `raise` again and again, so that a listener opened after a
//! deploy, a reload or a raised limit reaches the limit within one period.
//!
//! Each pass is a fresh survey of the namespaces `--all-namespaces`/`--netns` name and `raise`'s
//! own re-listen ([`crate::raise::raise_one`]) of each listener chosen, run on tokio's blocking
//! pool (one thread) while the runtime thread waits for the period or a signal. What it says goes to stderr, one line per event, `key=value` where a machine may want
//! to pick it out (journald and `kubectl logs` keep lines whole):
//!
//! ```text
//! raised tcp 127.0.0.1:8080 (1234/python3 fd 3) netns=4026531840 backlog 128 -> 4096
//! cannot raise tcp 127.0.0.1:9090 netns=4026531840 backlog 128: no process holding it ...
//! cannot read netns=4026532524: network namespace 4026532524 (ip netns blue, pid 812): setns: ...
//! ```
//!
//! A network namespace that cannot be read (its listeners cannot be raised) is said once while
//! it stays so, like a listener that cannot be raised, and the watch goes on with the others.
//!
//! It never lowers: only listeners below the limit (or below `--backlog`) are touched. A listener
//! it cannot raise is said once, while it keeps failing (the reason's details, such as how many
//! processes could not be read, change from pass to pass); the memory of what was said holds
//! only listeners that failed in the last pass, so it stays as small as the host.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use maxlisten::select::Selector;
use maxlisten::survey::{ListenerInfo, Survey};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::MissedTickBehavior;

use crate::filters::Scope;
use crate::raise::{raise_one, Outcome};
use crate::render::chain;
use crate::render::table::{cell, owner};
use crate::survey::UnreadableSaid;

/// Runs passes every `seconds` until SIGTERM or SIGINT (status 0).
pub(crate) fn run(
    scope: Scope,
    selector: Selector,
    backlog: Option<u32>,
    seconds: u64,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .max_blocking_threads(1)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("maxlisten raise --watch: start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(watch(
        scope,
        selector,
        backlog,
        Duration::from_secs(seconds),
    ))
}

async fn watch(
    scope: Scope,
    selector: Selector,
    backlog: Option<u32>,
    period: Duration,
) -> ExitCode {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(int), Ok(hup)) => (term, int, hup),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            eprintln!("maxlisten raise --watch: watch SIGTERM, SIGINT and SIGHUP: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "maxlisten raise --watch: a pass every {}s (SIGHUP: one now; SIGTERM or SIGINT: stop)",
        period.as_secs()
    );
    let chosen = Arc::new((scope, selector));
    let mut said = Said::default();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = hup.recv() => eprintln!("maxlisten raise --watch: SIGHUP: a pass now"),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        let chosen = Arc::clone(&chosen);
        let mut memory = std::mem::take(&mut said);
        // The pass blocks (setns, sock_diag, /proc, pidfd_getfd): not on the runtime thread.
        match tokio::task::spawn_blocking(move || {
            pass(&chosen.0, &chosen.1, backlog, &mut memory);
            memory
        })
        .await
        {
            Ok(memory) => said = memory,
            Err(err) => eprintln!("maxlisten raise --watch: the pass failed: {err}"),
        }
    }
    eprintln!("maxlisten raise --watch: stopped");
    ExitCode::SUCCESS
}

/// What has been said about failures, so that each is said once.
#[derive(Default)]
struct Said {
    /// Inodes of the sockets that failed in the last pass (and were said then or before).
    failures: HashSet<u64>,
    /// The last reason the survey itself failed ("" when it worked).
    survey: String,
    /// The namespaces that could not be read in the last pass (and were said).
    namespaces: UnreadableSaid,
}

/// One pass: survey, choose, raise; say what changed and what newly failed.
fn pass(scope: &Scope, selector: &Selector, backlog: Option<u32>, said: &mut Said) {
    let found = match scope.survey() {
        Ok(found) => {
            if !said.survey.is_empty() {
                eprintln!("maxlisten raise --watch: the survey works again");
                said.survey.clear();
            }
            say_namespaces(&found, said);
            found
        }
        Err(err) => {
            let err = chain(&err);
            if said.survey != err {
                eprintln!("maxlisten raise --watch: survey failed: {err}");
                said.survey = err;
            }
            return;
        }
    };
    let request = backlog.unwrap_or(u32::MAX);
    // Never lower: only listeners that the request, capped at their own namespace's limit,
    // takes higher.
    let chosen: Vec<&ListenerInfo> = found
        .listeners
        .iter()
        .filter(|l| {
            let expected = l.limit.map_or(request, |limit| request.min(limit));
            selector.matches(l) && expected > l.backlog
        })
        .collect();
    let mut failing = HashSet::new();
    for l in chosen {
        let who = l
            .processes
            .first()
            .map_or(String::new(), |o| format!(" ({})", owner(o)));
        let what = format!(
            "{} {}{who} netns={}",
            l.proto,
            cell(&l.local_name()),
            l.netns
        );
        let line = match raise_one(l, request) {
            Outcome::Done { applied, note } => {
                let applied = applied.map_or_else(|| "unknown".to_string(), |a| a.to_string());
                eprintln!("raised {what} backlog {} -> {applied}{note}", l.backlog);
                continue;
            }
            Outcome::Failed(why) => format!("cannot raise {what} backlog {}: {why}", l.backlog),
        };
        say_once(said, &mut failing, l.inode, &line);
    }
    // Forget listeners that no longer fail (raised, closed, or no longer chosen).
    said.failures = failing;
}

/// Says `line` about a listener that was not raised, unless it was not raised in the last
/// pass either.
fn say_once(said: &Said, failing: &mut HashSet<u64>, inode: u64, line: &str) {
    if !said.failures.contains(&inode) {
        eprintln!("{line}");
    }
    failing.insert(inode);
}

/// Says each namespace that could not be read, once while it stays so (its listeners cannot
/// be raised), and when one that could not be read is read again.
fn say_namespaces(found: &Survey, said: &mut Said) {
    let cleared = said.namespaces.update(found, |ns| {
        eprintln!(
            "cannot read netns={}: {ns}; its listeners are not raised",
            ns.netns
        );
    });
    for netns in cleared {
        if found.namespace(netns).is_some() {
            eprintln!("read netns={netns} again");
        }
    }
}
