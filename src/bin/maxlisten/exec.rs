//! `maxlisten exec`: run a program with every `listen()` of it and its descendants at the
//! maximum (a thin caller of `maxlisten::exec`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten exec -- python3 -m http.server 8000\n  \
    maxlisten exec --backlog 8192 -- node server.js\n  \
    maxlisten exec --except-port 9090 --except-path /run/app/admin.sock -- ./server\n\n\
    The exit status is CMD's (128+N if signal N killed it; 127 if CMD is not found, 126 if it\n\
    cannot be executed; 1 if the kernel or the environment cannot supervise listen()).\n\
    SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to CMD.\n\
    maxlisten stays until the last process of CMD's tree has exited.";

#[derive(clap::Args, Debug)]
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) struct Args {
    /// The backlog each listen() asks for at least (default: the largest the kernel takes,
    /// which it lowers to the namespace's net.core.somaxconn). Never lowers what CMD asks.
    #[arg(long)]
    backlog: Option<u32>,
    /// Keep CMD's own backlog for TCP listeners on this port (repeatable).
    #[arg(long = "except-port", value_name = "PORT")]
    except_ports: Vec<u16>,
    /// Keep CMD's own backlog for the Unix listener at this path (repeatable).
    #[arg(long = "except-path", value_name = "PATH")]
    except_paths: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Where seccomp user notification does not exist, the subcommand says so (exit 2).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn run(_: Args) -> ExitCode {
    eprintln!("maxlisten exec: needs Linux (seccomp user notification and pidfd_getfd)");
    ExitCode::from(2)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn run(args: Args) -> ExitCode {
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("maxlisten exec: no command given");
        return ExitCode::from(2);
    };
    let mut command = maxlisten::exec::Command::new(program);
    command.args(rest);
    if let Some(backlog) = args.backlog {
        command.backlog(backlog);
    }
    for port in args.except_ports {
        command.except_port(port);
    }
    for path in args.except_paths {
        command.except_path(path);
    }
    match command.status() {
        Ok(status) => ExitCode::from(maxlisten::exec::exit_code(status)),
        Err(err) => {
            eprintln!("maxlisten exec: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
