//! What `/proc` says: which descriptors of a process are sockets (and their inodes), its command
//! name, its threads and the network namespace of each, its cgroup, fields of its `status`, how
//! `/proc` is mounted; and the calling thread's network namespace and its TCP counters. Plain
//! facts; the survey, the namespaces and the report build their types from them.
//!
//! `/proc` is the one this process sees: its PID namespace's, as mounted.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

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
///
/// This runs once per descriptor of every process on the host, so it allocates nothing per
/// descriptor: the directory is read with `getdents64` into a 32 KiB buffer on the stack (a
/// thousand entries a call, where musl's `readdir` asks for 2 KiB at a time), and each link
/// with `readlinkat` into a buffer on the stack.
pub(crate) fn socket_fds(pid: u32) -> SocketFds {
    let gone_or = |err: io::Error| match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => SocketFds::Gone,
        _ => SocketFds::Unreadable(err),
    };
    let dir = match fs::File::open(format!("/proc/{pid}/fd")) {
        Ok(dir) => dir,
        Err(err) => return gone_or(err),
    };
    let mut found = Vec::new();
    let mut entries = [0u8; 32 * 1024];
    loop {
        // SAFETY: `dir` is an open directory for the whole call, and `entries` a live buffer
        // of the length passed; the kernel writes at most that many bytes into it.
        let read = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                entries.as_mut_ptr(),
                entries.len(),
            )
        };
        // A failure partway means the list is not whole.
        let Ok(read) = usize::try_from(read) else {
            return gone_or(io::Error::last_os_error());
        };
        if read == 0 {
            return SocketFds::Found(found);
        }
        let mut at = 0;
        // Each record: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), then the name,
        // NUL-terminated, padded to d_reclen.
        while let Some(record) = entries[..read].get(at..).filter(|r| !r.is_empty()) {
            let length = record
                .get(16..18)
                .map_or(0, |r| usize::from(u16::from_ne_bytes([r[0], r[1]])));
            // A record cut short, or one that does not hold its own header, is malformed.
            let Some(name) = record
                .get(19..length)
                .and_then(|n| std::ffi::CStr::from_bytes_until_nul(n).ok())
            else {
                return SocketFds::Unreadable(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("getdents64 of /proc/{pid}/fd: a malformed record"),
                ));
            };
            at += length;
            let Some(fd) = std::str::from_utf8(name.to_bytes())
                .ok()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue; // "." and ".."
            };
            let mut link = [0u8; 64];
            // SAFETY: `dir` is the open directory, `name` a NUL-terminated name, and `link` a
            // live buffer of the length passed; readlinkat writes at most that many bytes.
            let len = unsafe {
                libc::readlinkat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    link.as_mut_ptr().cast(),
                    link.len(),
                )
            };
            let Ok(len) = usize::try_from(len) else {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::ENOENT) {
                    continue; // closed since the listing
                }
                // The process reaped since the listing: its links answer EACCES (the kernel
                // finds no task to check the access to).
                if !alive(pid) {
                    return SocketFds::Gone;
                }
                // Listed but not readable (EACCES across user namespaces, say): the process is
                // not to be taken for one that holds nothing.
                return gone_or(err);
            };
            if let Some(inode) = std::str::from_utf8(&link[..len])
                .ok()
                .and_then(socket_inode)
            {
                found.push((fd, inode));
            }
        }
    }
}

/// Whether `pid` is still a process that is not a zombie (`/proc/PID/stat` can be read and
/// its state is neither `Z` nor `X`).
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses; the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
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

/// The thread ids of `pid` (`/proc/PID/task`); `Err` with `NotFound` once the process is gone.
pub(crate) fn tasks(pid: u32) -> io::Result<Vec<u32>> {
    Ok(fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect())
}

/// The path of the network namespace link of thread `tid` of process `pid`.
pub(crate) fn task_netns_path(pid: u32, tid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/task/{tid}/ns/net"))
}

/// The inode of the network namespace of thread `tid` of `pid`, from its `net:[INODE]` link.
/// Reading it needs ptrace read access, as opening it does (`EACCES` otherwise); `NotFound`
/// once the thread is gone.
pub(crate) fn task_netns_inode(pid: u32, tid: u32) -> io::Result<u64> {
    let target = fs::read_link(task_netns_path(pid, tid))?;
    target
        .to_str()
        .and_then(|t| t.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a net:[INODE] link"))
}

/// What descriptor `fd` of `pid` is (`/proc/PID/fd/FD`: `socket:[INODE]`, a path, ...).
pub(crate) fn fd_target(pid: u32, fd: RawFd) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
}

/// The socket inode that descriptor `fd` of thread `tid` names, from its `socket:[INODE]` link
/// (`/proc/TID/fd/FD`: the thread's own descriptor table, which after `unshare(CLONE_FILES)`
/// is not its group leader's); `None` if the descriptor is open but not a socket. `NotFound`
/// if there is no such descriptor (or thread).
pub(crate) fn fd_socket_inode(tid: u32, fd: RawFd) -> io::Result<Option<u64>> {
    let target = fs::read_link(format!("/proc/{tid}/fd/{fd}"))?;
    Ok(target.to_str().and_then(socket_inode))
}

/// This process's id as the `/proc` it sees names it (`/proc/self`). It differs from
/// `getpid()` when that `/proc` belongs to another PID namespace (`unshare --pid` without
/// `--mount-proc`), whose numbers then name other processes than this one's.
pub(crate) fn self_pid() -> Option<u32> {
    fs::read_link("/proc/self").ok()?.to_str()?.parse().ok()
}

/// Whether `/proc/PID` exists (the process is alive, or a zombie).
pub(crate) fn exists(pid: u32) -> bool {
    fs::symlink_metadata(format!("/proc/{pid}")).is_ok()
}

/// The text of `/proc/PID/cgroup` (`0::/PATH` on cgroup v2; one line per hierarchy on v1).
pub(crate) fn cgroup(pid: u32) -> io::Result<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
}

/// One field of `/proc/PID/status` (`Tgid`, `NSpid`, `CapEff`, ...), its value trimmed.
pub(crate) fn status_field(pid: u32, field: &str) -> io::Result<Option<String>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(find_field(&status, field))
}

fn find_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim().to_owned())
    })
}

/// The effective capability set of this process (`CapEff` of `/proc/self/status`), as bits
/// numbered like `CAP_SYS_ADMIN` (21) and `CAP_SYS_PTRACE` (19).
pub(crate) fn own_capabilities() -> io::Result<u64> {
    let value = status_field(std::process::id(), "CapEff")?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff in status"))?;
    u64::from_str_radix(&value, 16).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid` reads `pid:[INODE]`). The
/// initial PID namespace's is `PROC_PID_INIT_INO` (0xEFFFFFFC) on every kernel since 3.8.
pub(crate) fn own_pid_namespace() -> Option<u64> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `PROC_PID_INIT_INO`: the inode of the initial PID namespace.
pub(crate) const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The `hidepid=` option of the `/proc` this process sees (`/proc/self/mountinfo`), if any:
/// `"invisible"`, `"noaccess"`, `"ptraceable"`, or `"1"`/`"2"` on older kernels.
pub(crate) fn proc_hidepid() -> Option<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    hidepid_of(&mountinfo)
}

fn hidepid_of(mountinfo: &str) -> Option<String> {
    // The last proc mount on /proc is the one on top, the one paths resolve to.
    let top = mountinfo.lines().rev().find(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|f| *f == "-");
        fields.get(4) == Some(&"/proc") && dash.is_some_and(|d| fields.get(d + 1) == Some(&"proc"))
    })?;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    let fields: Vec<&str> = top.split_whitespace().collect();
    let dash = fields.iter().position(|f| *f == "-")?;
    fields.get(dash + 3)?.split(',').find_map(|option| {
        let value = option.strip_prefix("hidepid=")?;
        (value != "0" && value != "off").then(|| value.to_owned())
    })
}

/// The network namespace of the calling thread, as `readlink /proc/thread-self/ns/net` shows
/// it (`net:[4026531840]`).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn thread_netns() -> Option<String> {
    let link = fs::read_link("/proc/thread-self/ns/net").ok()?;
    Some(link.to_string_lossy().into_owned())
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

/// The working directory of thread `tid` (`/proc/TID/cwd`).
pub(crate) fn cwd(tid: u32) -> io::Result<PathBuf> {
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
        let inode =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata("/proc/thread-self/ns/net").unwrap());
        assert_eq!(thread_netns(), Some(format!("net:[{inode}]")));
    }

    #[test]
    fn a_reaped_or_zombie_process_is_not_alive() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited, not yet reaped: a zombie.
        let started = std::time::Instant::now();
        while alive(pid) {
            assert!(started.elapsed().as_secs() < 10, "{pid} never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            fs::metadata(format!("/proc/{pid}")).is_ok(),
            "a zombie keeps /proc/PID"
        );
        child.wait().unwrap();
        assert!(!alive(pid));
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

    /// A process with thousands of descriptors (more than one `getdents64` call returns, with
    /// files and pipes between the sockets): every socket is found, with its inode, and nothing
    /// else; what Python says it holds is the reference.
    #[test]
    fn every_socket_of_a_process_with_thousands_of_descriptors() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let script = "import os, resource, socket, sys\n\
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8000), hard))\n\
            held = []\n\
            for i in range(3000):\n\
            \x20   held.append(socket.socket() if i % 3 else open('/dev/null'))\n\
            held += [os.pipe() for _ in range(100)]\n\
            print(' '.join(f'{s.fileno()}:{os.fstat(s.fileno()).st_ino}' \
                  for s in held if isinstance(s, socket.socket)), flush=True)\n\
            sys.stdin.read()\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut expected: Vec<(RawFd, u64)> = line
            .split_whitespace()
            .map(|pair| {
                let (fd, inode) = pair.split_once(':').unwrap();
                (fd.parse().unwrap(), inode.parse().unwrap())
            })
            .collect();
        let found = socket_fds(child.id());
        drop(child.stdin.take());
        child.wait().unwrap();
        let SocketFds::Found(mut found) = found else {
            panic!("{found:?}");
        };
        expected.sort_unstable();
        found.sort_unstable();
        assert_eq!(expected.len(), 2000);
        assert_eq!(found, expected);
    }

    #[test]
    fn own_threads_and_their_namespace() {
        let me = std::process::id();
        let tasks = tasks(me).unwrap();
        assert!(tasks.contains(&me), "{tasks:?}");
        let link = fs::read_link("/proc/self/ns/net").unwrap();
        let inode = task_netns_inode(me, me).unwrap();
        assert_eq!(link.to_str().unwrap(), format!("net:[{inode}]"));
        assert_eq!(status_field(me, "Tgid").unwrap(), Some(me.to_string()));
        assert!(!cgroup(me).unwrap().is_empty());
        own_capabilities().unwrap();
        assert!(own_pid_namespace().is_some());
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
        let tgid = status_field(tid, "Tgid").unwrap();
        assert_eq!(tgid, Some(std::process::id().to_string()));
        assert!(cwd(tid).unwrap().is_absolute());
        drop(done_tx);
        thread.join().unwrap();
    }

    #[test]
    fn status_fields_parse() {
        let status = "Name:\tnginx\nTgid:\t812\nNSpid:\t812\t1\nCapEff:\t000001ffffffffff\n";
        assert_eq!(find_field(status, "Tgid").as_deref(), Some("812"));
        assert_eq!(find_field(status, "NSpid").as_deref(), Some("812\t1"));
        assert_eq!(find_field(status, "Pid"), None);
    }

    #[test]
    fn hidepid_is_read_from_mountinfo() {
        let plain = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";
        assert_eq!(hidepid_of(plain), None);
        let hidden = "22 1 0:21 / /proc rw,relatime shared:12 - proc proc rw,hidepid=invisible\n\
                      23 1 0:22 / /sys rw - sysfs sysfs rw\n";
        assert_eq!(hidepid_of(hidden).as_deref(), Some("invisible"));
        let old = "22 1 0:21 / /proc rw - proc proc rw,hidepid=2,gid=4\n";
        assert_eq!(hidepid_of(old).as_deref(), Some("2"));
        let elsewhere = "30 1 0:40 / /mnt/proc rw - proc proc rw,hidepid=2\n";
        assert_eq!(hidepid_of(elsewhere), None);
        // Stacked: the mount on top decides.
        let stacked = "46 44 0:21 / /proc rw - proc proc rw\n\
                       65 46 0:39 / /proc rw - proc proc rw,hidepid=invisible\n";
        assert_eq!(hidepid_of(stacked).as_deref(), Some("invisible"));
        let covered = "46 44 0:21 / /proc rw - proc proc rw,hidepid=2\n\
                       65 46 0:39 / /proc rw - proc proc rw\n";
        assert_eq!(hidepid_of(covered), None);
    }
}
