//! What the benchmarks share: running the measurement in a private network namespace, timing
//! commands, and medians.
#![allow(dead_code)] // each benchmark uses a part

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Raises this process's descriptor limit to at least `want` (as far as the hard limit, or
/// root, allows).
pub fn raise_fd_limit(want: usize) {
    // SAFETY: rlimit is plain old data and the pointers are live locals.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.max(want as libc::rlim_t);
            limit.rlim_max = limit.rlim_cur;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
