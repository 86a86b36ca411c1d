//! `maxlisten`: see every listener on a host, flag those below the system limit, raise them
//! live, and diagnose the machine. Flags and dispatch only: each subcommand is a module, the
//! work is the library's (`maxlisten::survey`, `maxlisten::select`, `maxlisten::report`), and
//! the renderers are plain functions in `render/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod exec;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod exporter;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod filters;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod raise;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod render;
mod report;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod survey;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod watch;

/// See and fix the accept backlog of every listener on this host.
#[derive(Parser)]
#[command(name = "maxlisten", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every listening TCP and Unix socket of this network namespace (or of one other, or
    /// of every one: --netns, --all-namespaces), with its backlog, queue, drops and owner, and
    /// flag those below their namespace's limit (Linux).
    #[command(after_help = survey::EXAMPLES)]
    Survey(survey::Args),
    /// Re-listen the selected listeners in their own processes, each to its namespace's limit
    /// unless --backlog says otherwise, never lower unless --allow-lower; they keep serving
    /// (Linux 5.6+, needs ptrace permission).
    #[command(after_help = raise::EXAMPLES)]
    Raise(raise::Args),
    /// Diagnose the backlog limits of this machine: the limit, the kernel's counters, what
    /// std, tokio and maxlisten get here, other stacks' documented defaults, and the listeners
    /// below the limit.
    #[command(after_help = report::EXAMPLES)]
    Report(report::Args),
    /// Run CMD so that every listen() it and its descendants make gets the largest backlog the
    /// network namespace allows, from the first call (Linux 5.6+, seccomp user notification).
    #[command(after_help = exec::EXAMPLES)]
    Exec(exec::Args),
    /// Serve the survey to Prometheus: GET /metrics, collected at each scrape (Linux).
    #[command(after_help = exporter::EXAMPLES)]
    Exporter(exporter::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--all-namespaces` holds every namespace it finds open, one descriptor each, and the
    // exporter serves many connections: the soft limit on open files (often 1024, kept low for
    // programs that use select()) is raised to the hard limit, as Go's runtime does at start.
    // Not for `exec`: the program it runs would inherit it.
    if !matches!(cli.command, Command::Exec(_)) {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
    }
    match cli.command {
        Command::Report(args) => report::run(args),
        Command::Survey(args) => survey::run(args),
        Command::Raise(args) => raise::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Exporter(args) => exporter::run(args),
    }
}

/// Where the survey does not exist, its subcommands say so (exit 2).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod survey {
    pub(crate) const EXAMPLES: &str = "";

    #[derive(clap::Args)]
    pub(crate) struct Args {}

    pub(crate) fn run(_: Args) -> std::process::ExitCode {
        eprintln!("maxlisten: survey and raise need Linux (sock_diag and pidfd_getfd)");
        std::process::ExitCode::from(2)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use survey as raise;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use survey as exporter;
