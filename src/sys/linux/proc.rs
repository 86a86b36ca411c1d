//! What `/proc` says: which descriptors of a process are sockets (and their inodes), its command
//! name; and the calling thread's network namespace and its TCP counters. Plain facts; the
//! survey and the report build their types from them.
//!
//! `/proc` is the one this process sees: its PID namespace's, as mounted.

use std::fs;
use std::io;
use std::os::fd::RawFd;

/// Every process id in `/proc`.
pub(crate) fn pids() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect())
}

/// The socket descriptors of one process.
#[derive(Debug)]
pub(crate) enum SocketFds {
    /// (descriptor, socket inode) for each descriptor that is a socket.
    Found(Vec<(RawFd, u64)>),
    /// The process has gone since it was listed.
    Gone,
    /// Its descriptors cannot be read (another user's process, without the permission).
    #[allow(dead_code)] // the error says why; the survey counts these for now
    Unreadable(io::Error),
}

/// The descriptors of `pid` that are sockets, from the `socket:[INODE]` links of
/// `/proc/PID/fd`.
pub(crate) fn socket_fds(pid: u32) -> SocketFds {
    let fds = match fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(fds) => fds,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return SocketFds::Gone,
        Err(e) => return SocketFds::Unreadable(e),
    };
    let mut found = Vec::new();
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue; // closed since the listing
        };
        let Some(inode) = target.to_str().and_then(socket_inode) else {
            continue;
        };
        if let Some(fd) = fd.file_name().to_str().and_then(|n| n.parse().ok()) {
            found.push((fd, inode));
        }
    }
    SocketFds::Found(found)
}

/// The inode of a `socket:[INODE]` link target.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The command name of `pid` (`/proc/PID/comm`), empty if it cannot be read.
pub(crate) fn command(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

/// The network namespace of the calling thread, as `readlink /proc/thread-self/ns/net` shows
/// it (`net:[4026531840]`).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn thread_netns() -> Option<String> {
    let link = fs::read_link("/proc/thread-self/ns/net").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// The inode of the calling thread's network namespace (what [`thread_netns`] shows in
/// brackets).
pub(crate) fn thread_netns_inode() -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata("/proc/thread-self/ns/net").ok()?).into()
}

/// The kernel's counters and settings that bear on accept queues, of the calling thread's
/// network namespace (`/proc/thread-self/...` follows the thread, `/proc/net` the main thread).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn kernel_counters() -> super::super::KernelCounters {
    let netstat = fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
    super::super::KernelCounters {
        tcp_max_syn_backlog: read_number("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        tcp_syncookies: read_number("/proc/sys/net/ipv4/tcp_syncookies"),
        listen_overflows: tcp_ext(&netstat, "ListenOverflows"),
        listen_drops: tcp_ext(&netstat, "ListenDrops"),
    }
}

#[cfg_attr(not(feature = "report"), allow(dead_code))]
fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `TcpExt:` counter of a `/proc/.../net/netstat` text: a line of names, then one of values.
pub(crate) fn tcp_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// The thread-group id (process id) of thread `tid`, from `Tgid:` of `/proc/TID/status`.
pub(crate) fn tgid(tid: u32) -> io::Result<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid in /proc/TID/status"))
}

/// The working directory of thread `tid` (`/proc/TID/cwd`).
pub(crate) fn cwd(tid: u32) -> io::Result<std::path::PathBuf> {
    fs::read_link(format!("/proc/{tid}/cwd"))
}

/// The children of this process, of all its threads (`/proc/self/task/TID/children`, which
/// needs `CONFIG_PROC_CHILDREN`; empty where it is missing).
pub(crate) fn own_children() -> Vec<u32> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_ext_reads_the_value_under_its_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 1 22 333\n\
                    IpExt: InNoRoutes\nIpExt: 4\n";
        assert_eq!(tcp_ext(text, "ListenOverflows"), Some(22));
        assert_eq!(tcp_ext(text, "ListenDrops"), Some(333));
        assert_eq!(tcp_ext(text, "InNoRoutes"), None);
        assert_eq!(tcp_ext("", "ListenDrops"), None);
        let own = kernel_counters();
        assert!(own.listen_drops.is_some() && own.listen_overflows.is_some());
        let inode = thread_netns_inode().unwrap();
        assert_eq!(thread_netns(), Some(format!("net:[{inode}]")));
    }

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("socket:[]"), None);
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn own_sockets_are_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let SocketFds::Found(found) = socket_fds(std::process::id()) else {
            panic!("own /proc/PID/fd unreadable");
        };
        assert!(found.iter().any(|(f, _)| *f == fd), "{found:?}");
        assert!(pids().unwrap().contains(&std::process::id()));
        assert!(!command(std::process::id()).is_empty());
    }

    #[test]
    fn a_thread_belongs_to_this_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::syscall(libc::SYS_gettid) } as u32)
                .unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        assert_ne!(tid, std::process::id());
        assert_eq!(tgid(tid).unwrap(), std::process::id());
        assert!(cwd(tid).unwrap().is_absolute());
        drop(done_tx);
        thread.join().unwrap();
    }
}
