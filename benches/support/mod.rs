//! What the benchmarks share: their command line, running the measurement in a private network
//! namespace, timing commands, and medians.
#![allow(dead_code)] // each benchmark uses a part

use std::fmt::Display;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A benchmark's command line, as `parse_args` hands it to the benchmark, flag by flag.
pub struct Args {
    bench: &'static str,
    rest: std::iter::Skip<std::env::Args>,
}

/// Reads the command line of the benchmark `bench` (cargo's own `--bench` is skipped): `on` is
/// given each flag, takes the flag's value from the `Args`, and returns false for a flag it
/// does not know. An unknown flag, or a value missing or not a number, ends the run with
/// status 2 and a line that says so.
pub fn parse_args(bench: &'static str, mut on: impl FnMut(&str, &mut Args) -> bool) {
    let mut args = Args {
        bench,
        rest: std::env::args().skip(1),
    };
    while let Some(flag) = args.rest.next() {
        if flag != "--bench" && !on(&flag, &mut args) {
            fail(bench, &format!("unknown argument {flag:?}"));
        }
    }
}

impl Args {
    /// The value after `flag`.
    pub fn value(&mut self, flag: &str) -> String {
        let bench = self.bench;
        self.rest
            .next()
            .unwrap_or_else(|| fail(bench, &format!("{flag} needs a value")))
    }

    /// The number after `flag`.
    pub fn number<T: FromStr>(&mut self, flag: &str) -> T
    where
        T::Err: Display,
    {
        let value = self.value(flag);
        value
            .parse()
            .unwrap_or_else(|e| fail(self.bench, &format!("{flag} {value:?}: {e}")))
    }
}

/// Ends the benchmark `bench` with status 2, saying why on stderr.
pub fn fail(bench: &str, why: &str) -> ! {
    eprintln!("{bench} bench: {why}");
    std::process::exit(2)
}

/// Set in the re-run inside the private namespace.
const INNER: &str = "MAXLISTEN_BENCH_IN_NETNS";

/// Makes sure the rest of `main` runs in a private network namespace with `lo` up and
/// `net.core.somaxconn` = `somaxconn`: the first call re-runs this benchmark there (`unshare
/// -n`, or `unshare -rn` through a user namespace for a user who is not root) and exits with
/// its status; inside, it returns. The host's own limit is never written.
pub fn in_private_netns(somaxconn: u32) {
    if std::env::var_os(INNER).is_some() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let flags = if unsafe { libc::geteuid() } == 0 {
        "-n"
    } else {
        "-rn"
    };
    let script = format!(
        "ip link set lo up && sysctl -qw net.core.somaxconn={somaxconn} && exec \"$0\" \"$@\""
    );
    let status = Command::new("unshare")
        .args([flags, "sh", "-c", &script])
        .arg(std::env::current_exe().expect("this benchmark's path"))
        .args(std::env::args().skip(1))
        .env(INNER, "1")
        .status()
        .unwrap_or_else(|e| {
            eprintln!("benchmark: unshare {flags}: {e}");
            std::process::exit(2)
        });
    std::process::exit(status.code().unwrap_or(1));
}

/// How long `command` takes to run to a successful end, its output thrown away.
pub fn time(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    let took = start.elapsed();
    assert!(status.success(), "{command:?}: {status}");
    took
}

/// The median of some timings.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Raises this process's descriptor limit to at least `want` where root may go past the hard
/// limit, and to the hard limit otherwise.
pub fn raise_fd_limit(want: usize) {
    // SAFETY: rlimit is plain old data and the pointers are live locals.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let hard = limit.rlim_max;
        limit.rlim_cur = hard.max(want as libc::rlim_t);
        limit.rlim_max = limit.rlim_cur;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            limit.rlim_cur = hard;
            limit.rlim_max = hard;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
