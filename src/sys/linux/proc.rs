//! What `/proc` says about processes: which descriptors of a process are sockets (and their
//! inodes), and its command name. Plain facts; the survey builds its types from them.
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
