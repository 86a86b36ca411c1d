//! What the benchmarks share: running the measurement in a private network namespace.

use std::process::Command;

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
