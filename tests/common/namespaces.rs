//! Network namespaces made the three ways containers are: `unshare --net` (a process in its own
//! namespace), `ip netns add` (named, kept by a bind mount under /run/netns) and
//! `unshare --net --pid --fork --mount-proc` (a container with its own PID namespace). Each sets
//! its own `net.core.somaxconn` inside (never the host's) and runs real servers there: Python and
//! Node TCP servers, a Python Unix listener. Everything is removed on drop, even after a failed
//! assertion. Needs root, or root of a user namespace of one's own with a mount namespace and
//! an empty `/run/netns` (see `own_netns` and `own_sandbox`); [`Cgroup`] needs the host's root.
#![allow(dead_code)] // each test file uses a part

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How the namespace is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `unshare --net`: a process in a namespace of its own, no name.
    Unshared,
    /// `ip netns add NAME`, servers started with `ip netns exec`.
    Named,
    /// `unshare --net --pid --fork --mount-proc`: a "container" with its own PID namespace.
    Container,
}

/// A server to run inside.
#[derive(Clone, Debug)]
pub enum Server {
    /// Python `socket.listen(backlog)` on 127.0.0.1:port; answers "hello\n".
    PythonTcp { port: u16, backlog: i32 },
    /// Node `net.createServer().listen(port, "127.0.0.1")` (Node passes 511).
    NodeTcp { port: u16 },
    /// Python Unix stream listener on `path` with `backlog`; answers "hello\n".
    PythonUnix { path: String, backlog: i32 },
}

/// A Python server: `python3 -c PYTHON WHERE BACKLOG READY` listens on 127.0.0.1:WHERE, or on
/// the Unix path WHERE (a stale file there removed first), prints READY and answers "hello\n".
const PYTHON: &str = r#"
import os, socket, sys
where, backlog, ready = sys.argv[1:4]
if where.startswith("/"):
    try:
        os.unlink(where)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX)
    s.bind(where)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(where)))
s.listen(int(backlog))
print(ready, flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"hello\n")
    except OSError:
        pass  # a client that left first
    c.close()
"#;

const NODE_TCP: &str = r#"
const port = Number(process.argv[1]);
require("net").createServer((c) => c.end("hello\n"))
  .listen(port, "127.0.0.1", () => console.log(process.argv[2]));
"#;

impl Server {
    /// The shell words that start it; it prints `ready` once it listens.
    fn command(&self, ready: &str) -> String {
        match self {
            Server::PythonTcp { port, backlog } => {
                format!("python3 -c {} {port} {backlog} {ready}", quote(PYTHON))
            }
            Server::NodeTcp { port } => format!("node -e {} {port} {ready}", quote(NODE_TCP)),
            Server::PythonUnix { path, backlog } => {
                assert!(path.starts_with('/'), "a Unix path: {path}");
                format!(
                    "python3 -c {} {} {backlog} {ready}",
                    quote(PYTHON),
                    quote(path)
                )
            }
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// A namespace with its servers, removed on drop.
pub struct Fixture {
    pub kind: Kind,
    /// Its `net.core.somaxconn`, set inside.
    pub limit: u32,
    /// Its `ip netns` name (for `Kind::Named`).
    pub name: Option<String>,
    /// A process in the namespace, in the host's PID namespace (the shell that started the
    /// servers; for a container, the `unshare` process, which is in the namespace too).
    pub pid: u32,
    child: Child,
    /// The Unix sockets' paths, removed on drop.
    paths: Vec<String>,
}

static COUNT: AtomicUsize = AtomicUsize::new(0);

/// A token unique to this test process on the host, even inside a PID namespace of its own
/// (where its pid is 1 or so): its pid and the time it first asked.
pub fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// A fresh `ip netns` name for this test process.
pub fn fresh_name() -> String {
    format!(
        "maxlisten-t{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Fixture {
    /// Makes the namespace, sets its limit, starts the servers and waits until each listens.
    pub fn start(kind: Kind, limit: u32, servers: &[Server]) -> Fixture {
        let mut script =
            format!("set -e; ip link set lo up; echo {limit} > /proc/sys/net/core/somaxconn; ");
        let markers: Vec<String> = (0..servers.len())
            .map(|i| format!("listening-{i}"))
            .collect();
        for (server, marker) in servers.iter().zip(&markers) {
            script.push_str(&server.command(marker));
            script.push_str(" & ");
        }
        script.push_str("wait");
        let name = (kind == Kind::Named).then(fresh_name);
        let mut command = match kind {
            Kind::Unshared => {
                let mut c = Command::new("unshare");
                c.args(["--net", "sh", "-c", &script]);
                c
            }
            Kind::Named => {
                let name = name.as_deref().unwrap();
                run("ip", &["netns", "add", name]);
                let mut c = Command::new("ip");
                c.args(["netns", "exec", name, "sh", "-c", &script]);
                c
            }
            Kind::Container => {
                let mut c = Command::new("unshare");
                c.args([
                    "--net",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--kill-child",
                    "sh",
                    "-c",
                    &script,
                ]);
                c
            }
        };
        let child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the namespace");
        let paths = servers
            .iter()
            .filter_map(|s| match s {
                Server::PythonUnix { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let mut fixture = Fixture {
            kind,
            limit,
            name,
            pid: child.id(),
            child,
            paths,
        };
        // Each server prints its own marker once it listens; their writes may interleave.
        let mut stdout = fixture.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            // Drained until every server is gone (so that none ever writes to a closed pipe).
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = tx.send(buf[..n].to_vec());
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !markers
            .iter()
            .all(|m| String::from_utf8_lossy(&seen).contains(m.as_str()))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.extend(bytes),
                Err(_) => panic!(
                    "the servers of {kind:?} did not all start: {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        fixture
    }

    /// A namespace kept only by its bind mount: `ip netns add`, the limit set, no process left.
    pub fn named_empty(limit: u32) -> Fixture {
        let name = fresh_name();
        run("ip", &["netns", "add", &name]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sh",
                "-c",
                &format!("echo {limit} > /proc/sys/net/core/somaxconn"),
            ],
        );
        // A child that exits at once, so that drop has something to wait for.
        let child = Command::new("true").spawn().unwrap();
        Fixture {
            kind: Kind::Named,
            limit,
            pid: 0,
            name: Some(name),
            child,
            paths: Vec::new(),
        }
    }

    /// The path of its namespace file.
    pub fn netns_path(&self) -> String {
        match (&self.name, self.pid) {
            (Some(name), 0) => format!("/run/netns/{name}"),
            _ => format!("/proc/{}/ns/net", self.pid),
        }
    }

    /// Its namespace's inode, read here with stat (not through the crate).
    pub fn inode(&self) -> u64 {
        let meta = std::fs::metadata(self.netns_path()).unwrap();
        std::os::unix::fs::MetadataExt::ino(&meta)
    }

    /// Send-Q (the backlog) of the TCP listener on `port`, as `ss -ltn` shows it inside.
    pub fn ss_backlog(&self, port: u16) -> u32 {
        super::ss_send_q_in(Some(&self.netns_path()), port)
    }

    /// Send-Q of the Unix listener `path`, as `ss -xl` shows it inside.
    pub fn ss_unix_backlog(&self, path: &str) -> u32 {
        super::ss_unix_in(Some(&self.netns_path()), path).1
    }

    /// Whether the TCP server on `port` inside answers "hello" (connects from inside, with
    /// `nsenter` and Python, not through the crate).
    pub fn answers(&self, port: u16) -> bool {
        let code = format!(
            "import socket; s = socket.create_connection(('127.0.0.1', {port}), 5); \
             print(s.recv(16).decode().strip())"
        );
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path()))
            .args(["python3", "-c", &code])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "hello"
    }
}

impl Fixture {
    /// Every process started under it (the servers, and for a container its first process), in
    /// the host's PID namespace.
    pub fn descendants(&self) -> Vec<u32> {
        let mut found = vec![self.pid];
        let mut i = 0;
        while i < found.len() {
            found.extend(children(found[i]));
            i += 1;
        }
        found.remove(0);
        found
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("PPid:"))
                        .and_then(|v| v.trim().parse::<u32>().ok())
                })
                == Some(pid)
        })
        .collect()
}

/// A cgroup (v2) named the way a container runtime names one, under a directory of this test
/// process's own; removed on drop (declare it before the fixture whose processes it holds, so
/// that they are gone first).
pub struct Cgroup {
    /// The directories made, outermost first.
    made: Vec<std::path::PathBuf>,
    /// Its path as /proc/PID/cgroup shows it.
    pub path: String,
}

/// The cgroup v2 mount: /sys/fs/cgroup itself, or /sys/fs/cgroup/unified on a hybrid system.
fn cgroup2_root() -> std::path::PathBuf {
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if std::path::Path::new(root).join("cgroup.procs").exists() {
            return root.into();
        }
    }
    panic!("no cgroup v2 hierarchy mounted");
}

impl Cgroup {
    /// Makes the cgroup `/maxlisten-test-PID-N/<shape>` (`shape` as a runtime names it, e.g.
    /// `system.slice/docker-<id>.scope`) and moves `pids` into it.
    pub fn new(shape: &str, pids: &[u32]) -> Cgroup {
        let root = cgroup2_root();
        let top = format!(
            "maxlisten-test-{}-{}",
            token(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let relative = std::path::Path::new(&top).join(shape.trim_start_matches('/'));
        let mut made = Vec::new();
        let mut dir = root.clone();
        for part in relative.components() {
            dir.push(part);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            made.push(dir.clone());
        }
        for pid in pids {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", dir.display()));
        }
        Cgroup {
            made,
            path: format!("/{}", relative.display()),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let start = Instant::now();
        for dir in self.made.iter().rev() {
            // Empty once its processes have exited (a moment after they were killed).
            while std::fs::remove_dir(dir).is_err()
                && dir.exists()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Whether the Unix server at `path` answers "hello" (path sockets are reachable from any
/// network namespace).
pub fn unix_answers(path: &str) -> bool {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = String::new();
    let _ = stream.write_all(b"");
    stream.read_to_string(&mut buf).is_ok() && buf == "hello\n"
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The servers are children of the shell: end them first (once the shell is gone they
        // are re-parented and harder to find). A container's all go with its first process.
        if self.pid != 0 {
            kill_children(self.pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.kind == Kind::Container {
            // --kill-child ends the PID namespace's first process; wait until it is gone.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5)
                && std::fs::metadata(format!("/proc/{}", self.pid)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(name) = &self.name {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Kills the processes whose parent is `pid` (never 0).
fn kill_children(pid: u32) {
    assert_ne!(pid, 0);
    for child in children(pid) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
    }
}

/// A process in the named network namespace `name` (which the host's user namespace owns) but
/// in a user namespace of its own, as a rootless container joined to a namespace runs; killed
/// on drop. Needs the host's root (`ip netns exec`).
pub struct InOwnUserns(Child);

impl InOwnUserns {
    pub fn start(name: &str) -> InOwnUserns {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                name,
                "unshare",
                "--user",
                "--map-root-user",
            ])
            .args(["sleep", "120"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mine = std::fs::read_link("/proc/self/ns/user").unwrap();
        let started = Instant::now();
        // `ip netns exec` and `unshare` exec in place: the pid is sleep's once both are done.
        while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(mine.clone())
            || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(started.elapsed().as_secs() < 10, "{pid} did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        InOwnUserns(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// `program`, not started, as an agent in that user namespace (root there, with every
    /// capability there) and in a network namespace of its own: it can read the process's
    /// namespace but not enter it (setns needs CAP_SYS_ADMIN over the host's user namespace,
    /// which owns it).
    pub fn agent<S: AsRef<std::ffi::OsStr>>(&self, program: S) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--user=/proc/{}/ns/user", self.pid()))
            .args(["unshare", "--net"])
            .arg(program);
        command
    }
}

impl Drop for InOwnUserns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` processes (`sleep`), each in a network namespace of its own (`unshare --net`), returned
/// once `/proc` shows each in it; killed on drop.
pub fn namespace_holders(n: usize) -> Vec<super::process::Killed> {
    let here = std::fs::read_link("/proc/self/ns/net").unwrap();
    let holders: Vec<_> = (0..n)
        .map(|_| {
            super::process::Killed(
                Command::new("unshare")
                    .args(["--net", "sleep", "120"])
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for holder in &holders {
        let path = format!("/proc/{}/ns/net", holder.id());
        let started = Instant::now();
        while std::fs::read_link(&path).map_or(true, |ns| ns == here) {
            assert!(started.elapsed() < Duration::from_secs(10), "{path}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    holders
}

/// Runs a command that must succeed.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `unshare --net` running `program ARGS` in a network namespace of its own with `lo` up and,
/// with `limit`, its `net.core.somaxconn` set inside: a "container" of one process (`exec`, so
/// the child's pid is the program's). Not started: add pipes and spawn it.
pub fn unshared<S: AsRef<std::ffi::OsStr>>(limit: Option<u32>, program: &[S]) -> Command {
    let set = limit.map_or(String::new(), |limit| {
        format!("echo {limit} > /proc/sys/net/core/somaxconn && ")
    });
    let mut command = Command::new("unshare");
    command
        .args(["--net", "sh", "-c"])
        .arg(format!("ip link set lo up && {set}exec \"$0\" \"$@\""))
        .args(program);
    command
}

/// The Docker container, containerd container and Kubernetes pod that [`three`] names.
pub const DOCKER_ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";
pub const CRI_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const POD: &str = "6b1f0c52-3a9e-4d7b-8c21-0f9e8d7c6b5a";
/// The ports of the Python and Node servers of [`three`].
pub const PY: u16 = 8080;
pub const NODE: u16 = 8081;

/// The Unix listener's path, one per test process, test and namespace kind (tests run at once).
pub fn unix_path(test: &str, kind: Kind) -> String {
    std::env::temp_dir()
        .join(format!("maxlisten-{}-{test}-{kind:?}.sock", token()))
        .display()
        .to_string()
}

/// Python on [`PY`] (backlog 7), Node on [`NODE`] (511) and a Python Unix listener (5) at
/// [`unix_path`]`(test, kind)`.
pub fn servers(test: &str, kind: Kind) -> Vec<Server> {
    vec![
        Server::PythonTcp {
            port: PY,
            backlog: 7,
        },
        Server::NodeTcp { port: NODE },
        Server::PythonUnix {
            path: unix_path(test, kind),
            backlog: 5,
        },
    ]
}

/// The three namespaces (limits 1111, 2222 and 3333), each with [`servers`]. With `cgroups`,
/// the `unshare --net` one's processes are moved into a Docker-named cgroup and the
/// container's into a Kubernetes pod's containerd cgroup (needs the host's root); without,
/// none is made and the first `Vec` is empty.
pub fn three(test: &str, cgroups: bool) -> (Vec<Cgroup>, Vec<Fixture>) {
    let fixtures = vec![
        Fixture::start(Kind::Unshared, 1111, &servers(test, Kind::Unshared)),
        Fixture::start(Kind::Named, 2222, &servers(test, Kind::Named)),
        Fixture::start(Kind::Container, 3333, &servers(test, Kind::Container)),
    ];
    if !cgroups {
        return (Vec::new(), fixtures);
    }
    let pod = POD.replace('-', "_");
    let cgroups = vec![
        Cgroup::new(
            &format!("system.slice/docker-{DOCKER_ID}.scope"),
            &fixtures[0].descendants(),
        ),
        Cgroup::new(
            &format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/\
                 cri-containerd-{CRI_ID}.scope"
            ),
            &fixtures[2].descendants(),
        ),
    ];
    (cgroups, fixtures)
}
