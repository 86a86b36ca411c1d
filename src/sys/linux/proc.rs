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
}
