//! `maxlisten exec -- CMD` against programs this crate did not write: Python (main thread,
//! another thread, a forked child, a thread with its own descriptor table, a Unix listener, a
//! daemon that double-forks, a server that opens a new listener on SIGHUP), Node, and a static
//! C binary the test builds. Each runs in a private network namespace with
//! `net.core.somaxconn` = [`LIMIT`] (set inside the namespace only), ends at the limit as `ss`
//! in that namespace shows it, and still serves. These run for any user: a user other than root
//! runs each in a user namespace of its own (`common::own_netns`), as its root. The wrapper
//! without any capability (under `no_new_privs`) is tested too: as `nobody` when run as root,
//! as this user with every capability dropped otherwise. As root (CI), one test runs all the
//! others as `nobody`, so that the user namespace path is taken there too.
//!
//! Outside any namespace, for everyone (the filter is installed under `no_new_privs`): the same
//! program prints the same results with and without the wrapper for a datagram `listen`, a bad
//! descriptor, a non-socket, a connected socket; exit status, 127/126, signal forwarding and
//! the signal exit code; an outer notifying filter (EBUSY) is refused up front; the program's
//! descriptors, environment, process group and signal mask are its own.

#![cfg(all(target_os = "linux", feature = "cli"))]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{in_netns, own_netns, run_child_test, ss_send_q, ss_unix, temp_dir};

/// The namespace's limit: none of the programs asks for it (they ask 1, 5, 128, 511).
const LIMIT: u32 = 3000;
const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");

/// Python servers: each prints one line (the port, or pid and port), then answers "ok".
const PY: &str = r#"
import os, signal, socket, sys, threading, time
mode = sys.argv[1]

def tcp(backlog=5, port=0):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    if backlog < 0:
        # Python turns a negative backlog into 0; C passes it on, and the kernel reads it as
        # "the limit".
        import ctypes
        assert ctypes.CDLL(None).listen(s.fileno(), backlog) == 0
    else:
        s.listen(backlog)
    return s

def serve(s):
    while True:
        c, _ = s.accept()
        c.sendall(b"ok\n")
        c.close()

def say(*words):
    # Not print: a signal handler that says something (reload) while print still holds
    # stdout's buffer would fail with a reentrant call.
    os.write(1, (" ".join(map(str, words)) + "\n").encode())

if mode == "main":
    s = tcp(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    say(s.getsockname()[1])
    serve(s)
elif mode == "thread":
    box = []
    t = threading.Thread(target=lambda: box.append(tcp()))
    t.start(); t.join()
    say(box[0].getsockname()[1])
    serve(box[0])
elif mode == "unshare_files":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def run():
        # CLONE_FILES: this thread gets a descriptor table of its own.
        assert libc.unshare(0x400) == 0, ctypes.get_errno()
        s = tcp()
        say(s.getsockname()[1])
        serve(s)
    threading.Thread(target=run).start()
elif mode == "unshare_same_number":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    # The leader's socket at descriptor n: bound, never listening.
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    n, a_port = a.fileno(), a.getsockname()[1]
    def run():
        assert libc.unshare(0x400) == 0, ctypes.get_errno()
        # In this thread's own table, n is another socket; the leader's n is still a.
        b = socket.socket()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        b.bind(("127.0.0.1", 0))
        os.dup2(b.fileno(), n)
        b.close()
        s = socket.socket(fileno=n)
        s.listen(5)
        say(s.getsockname()[1], a_port)
        serve(s)
    threading.Thread(target=run).start()
elif mode == "fork":
    pid = os.fork()
    if pid == 0:
        s = tcp()
        say(s.getsockname()[1])
        serve(s)
    # As a pre-forking server's master does: stop the worker on SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: (os.kill(pid, signal.SIGTERM), os._exit(0)))
    os.waitpid(pid, 0)
elif mode == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[2])
    s.listen(5)
    say(0)
    serve(s)
elif mode == "daemon":
    # The classic double fork: the first process exits, the daemon listens after it is gone.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    time.sleep(0.5)
    s = tcp()
    say(os.getpid(), s.getsockname()[1])
    serve(s)
elif mode == "reload":
    s = tcp()
    def reload(*_):
        n = tcp(7)
        say(n.getsockname()[1])
        threading.Thread(target=serve, args=(n,), daemon=True).start()
    signal.signal(signal.SIGHUP, reload)
    say(s.getsockname()[1])
    serve(s)
elif mode == "ports":
    a = tcp(5, int(sys.argv[2]))
    b = tcp(5, int(sys.argv[3]))
    say(a.getsockname()[1])
    serve(a)
"#;

const NODE: &str = "
require('net').createServer(c => c.end('ok\\n'))
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });
";

/// A static C server: listen(fd, 1), print the port, answer "ok".
const C_SERVER: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("listen"); return 1; }
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) { int c = accept(s, 0, 0); write(c, "ok\n", 3); close(c); }
}
"#;

/// Whether a 64-bit ELF file has a program interpreter (`PT_INTERP`): a dynamic binary does.
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The wrapper and its program; SIGTERM (forwarded to the program) when dropped.
struct Wrapped {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Wrapped {
    fn start(flags: &[&str], program: &str, args: &[&str]) -> Wrapped {
        let mut child = Command::new(BIN)
            .arg("exec")
            .args(flags)
            .arg("--")
            .arg(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start maxlisten exec");
        let out = BufReader::new(child.stdout.take().unwrap());
        Wrapped { child, out }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the program printed nothing");
        line.trim().to_owned()
    }

    fn port(&mut self) -> u16 {
        let line = self.line();
        line.parse()
            .unwrap_or_else(|_| panic!("not a port: {line:?}"))
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill takes two integers; the child is not reaped, so its pid is its own.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// The wrapper's exit status within `timeout`, or `None` while it runs.
    fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            if self.exit_within(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn answers_tcp(port: u16) {
    let mut reply = String::new();
    TcpStream::connect(("127.0.0.1", port))
        .unwrap()
        .read_to_string(&mut reply)
        .unwrap();
    assert_eq!(reply, "ok\n");
}

/// A Python server in `mode` under the wrapper, in a namespace at LIMIT: at the limit, serving.
fn python_at_limit(test: &str, mode: &str) {
    if !own_netns(test) {
        return;
    }
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "python3", &["-c", PY, mode]);
        let port = wrapped.port();
        assert_eq!(ss_send_q(port), LIMIT, "{mode}: ss -ltn Send-Q");
        answers_tcp(port);
    });
}

#[test]
fn python_main_thread_gets_the_limit() {
    python_at_limit("python_main_thread_gets_the_limit", "main");
}

#[test]
fn python_other_thread_gets_the_limit() {
    python_at_limit("python_other_thread_gets_the_limit", "thread");
}

#[test]
fn python_forked_child_gets_the_limit() {
    python_at_limit("python_forked_child_gets_the_limit", "fork");
}

/// Whether the kernel has `PIDFD_THREAD` (Linux 6.9): a thread's own descriptor table can be
/// read through a pidfd of the thread.
fn has_pidfd_thread() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap(), parts.next().unwrap()) >= (6, 9)
}

/// A thread with a descriptor table of its own: its listen must act on its own socket, raised
/// with PIDFD_THREAD (Linux 6.9+); before, its own call is carried out as made (backlog 5).
/// Looked up in the leader's table, its descriptor would be missing (EBADF) or another one.
#[test]
fn a_thread_with_its_own_descriptor_table_gets_the_limit() {
    let test = "a_thread_with_its_own_descriptor_table_gets_the_limit";
    if !own_netns(test) {
        return;
    }
    let expected = if has_pidfd_thread() { LIMIT } else { 5 };
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "python3", &["-c", PY, "unshare_files"]);
        let port = wrapped.port();
        assert_eq!(ss_send_q(port), expected, "ss -ltn Send-Q");
        answers_tcp(port);
    });
}

/// Under a `/proc` of another PID namespace (`unshare --pid --fork` without `--mount-proc`), the
/// thread ids the kernel gives the wrapper name other processes in `/proc`: the check of the
/// borrowed socket cannot be made there, and a pidfd of the thread itself (6.9+) is trusted, so
/// the program is still raised; before 6.9 its call is carried out as made.
#[test]
fn under_a_proc_of_another_pid_namespace_the_program_is_still_raised() {
    if !own_netns("under_a_proc_of_another_pid_namespace_the_program_is_still_raised") {
        return;
    }
    let expected = if has_pidfd_thread() { LIMIT } else { 5 };
    in_netns(LIMIT, || {
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", BIN, "exec", "--"])
            .args(["python3", "-c", PY, "main"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut wrapped = Wrapped { child, out };
        let port = wrapped.port();
        assert_eq!(ss_send_q(port), expected, "ss -ltn Send-Q");
        answers_tcp(port);
        // unshare waits on SIGTERM; killed, it takes its namespace down (--kill-child).
        let _ = wrapped.child.kill();
        let _ = wrapped.child.wait();
    });
}

/// A thread whose own descriptor table holds, at the same number, another socket than its
/// leader's: its listen acts on its own socket (raised with PIDFD_THREAD; before 6.9 carried
/// out as made, since the socket found through the leader is not the one its descriptor
/// names), and the leader's socket at that number is left alone (it never listens).
#[test]
fn a_thread_whose_own_table_holds_another_socket_at_the_same_number() {
    let test = "a_thread_whose_own_table_holds_another_socket_at_the_same_number";
    if !own_netns(test) {
        return;
    }
    let expected = if has_pidfd_thread() { LIMIT } else { 5 };
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "python3", &["-c", PY, "unshare_same_number"]);
        let line = wrapped.line();
        let ports: Vec<u16> = line.split(' ').map(|p| p.parse().unwrap()).collect();
        let (own, leaders) = (ports[0], ports[1]);
        assert_eq!(
            ss_send_q(own),
            expected,
            "the thread's socket: ss -ltn Send-Q"
        );
        answers_tcp(own);
        // The leader's socket was not made to listen: a connection is refused.
        let err = TcpStream::connect(("127.0.0.1", leaders)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn python_unix_listener_gets_the_limit() {
    if !own_netns("python_unix_listener_gets_the_limit") {
        return;
    }
    let dir = temp_dir("exec-unix");
    let path = dir.join("app.sock");
    in_netns(LIMIT, || {
        let mut wrapped =
            Wrapped::start(&[], "python3", &["-c", PY, "unix", path.to_str().unwrap()]);
        wrapped.port();
        assert_eq!(ss_unix(path.to_str().unwrap()).1, LIMIT, "ss -lx Send-Q");
        let mut reply = String::new();
        UnixStream::connect(&path)
            .unwrap()
            .read_to_string(&mut reply)
            .unwrap();
        assert_eq!(reply, "ok\n");
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn node_gets_the_limit() {
    if !own_netns("node_gets_the_limit") {
        return;
    }
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "node", &["-e", NODE]);
        let port = wrapped.port();
        assert_eq!(ss_send_q(port), LIMIT, "node asks 511");
        answers_tcp(port);
    });
}

/// Builds the C server with `gcc -static FLAGS` into a fresh directory.
fn build_static(test: &str, flags: &[&str]) -> std::path::PathBuf {
    let dir = temp_dir(test);
    let source = dir.join("server.c");
    let binary = dir.join("server");
    std::fs::write(&source, C_SERVER).unwrap();
    let built = Command::new("gcc")
        .arg("-static")
        .args(flags)
        .args(["-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("run gcc (CI installs it)");
    assert!(built.status.success(), "gcc -static {flags:?}: {built:?}");
    binary
}

/// The static server under the wrapper at the limit, serving; without it, at 1.
fn static_server_at_limit(binary: &Path) {
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], binary.to_str().unwrap(), &[]);
        let port = wrapped.port();
        assert_eq!(ss_send_q(port), LIMIT);
        answers_tcp(port);
        drop(wrapped);
        // Without the wrapper, the same binary gets what it asks.
        let mut bare = Command::new(binary).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(bare.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(ss_send_q(line.trim().parse().unwrap()), 1);
        bare.kill().unwrap();
        bare.wait().unwrap();
    });
}

#[test]
fn a_static_binary_that_asks_for_1_gets_the_limit() {
    if !own_netns("a_static_binary_that_asks_for_1_gets_the_limit") {
        return;
    }
    assert!(
        has_interpreter(Path::new("/bin/sh")),
        "the check sees a dynamic binary"
    );
    let binary = build_static("exec-static", &[]);
    assert!(!has_interpreter(&binary), "gcc did not link statically");
    static_server_at_limit(&binary);
    let _ = std::fs::remove_dir_all(binary.parent().unwrap());
}

/// A 32-bit x86 static binary: Debian 12's i386 glibc listens through socketcall(2) (102,
/// `strace -n` shows it), whose arguments the supervisor reads from the program's memory.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_32_bit_static_binary_gets_the_limit() {
    if !own_netns("a_32_bit_static_binary_gets_the_limit") {
        return;
    }
    let binary = build_static("exec-static32", &["-m32"]);
    let elf = std::fs::read(&binary).unwrap();
    assert_eq!(&elf[..5], b"\x7fELF\x01", "a 32-bit ELF file");
    static_server_at_limit(&binary);
    let _ = std::fs::remove_dir_all(binary.parent().unwrap());
}

/// A daemon: the first process exits; the daemon listens after that, and is still covered
/// (the wrapper is its subreaper and stays). The wrapper exits once the daemon has gone, with
/// the first process's status.
#[test]
fn a_daemon_that_double_forks_stays_covered() {
    if !own_netns("a_daemon_that_double_forks_stays_covered") {
        return;
    }
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "python3", &["-c", PY, "daemon"]);
        let line = wrapped.line();
        let (pid, port) = line.split_once(' ').unwrap();
        let (pid, port): (i32, u16) = (pid.parse().unwrap(), port.parse().unwrap());
        assert_eq!(ss_send_q(port), LIMIT);
        answers_tcp(port);
        assert!(
            wrapped.exit_within(Duration::from_millis(300)).is_none(),
            "the wrapper left while the daemon runs"
        );
        // SAFETY: kill takes two integers.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = wrapped
            .exit_within(Duration::from_secs(5))
            .expect("the wrapper stays after the daemon has gone");
        assert_eq!(status.code(), Some(0), "the first process's status");
    });
}

/// SIGHUP to the wrapper reaches the server (forwarded), which opens a new listener: covered.
#[test]
fn a_server_that_reloads_gets_the_limit_on_its_new_listener() {
    if !own_netns("a_server_that_reloads_gets_the_limit_on_its_new_listener") {
        return;
    }
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(&[], "python3", &["-c", PY, "reload"]);
        let first = wrapped.port();
        assert_eq!(ss_send_q(first), LIMIT);
        wrapped.signal(libc::SIGHUP);
        let second = wrapped.port();
        assert_ne!(first, second);
        assert_eq!(ss_send_q(second), LIMIT, "the listener opened on reload");
        answers_tcp(second);
        answers_tcp(first);
    });
}

#[test]
fn an_excepted_port_keeps_the_programs_backlog() {
    if !own_netns("an_excepted_port_keeps_the_programs_backlog") {
        return;
    }
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(
            &["--except-port", "8082"],
            "python3",
            &["-c", PY, "ports", "8081", "8082"],
        );
        assert_eq!(wrapped.port(), 8081);
        assert_eq!(ss_send_q(8081), LIMIT);
        assert_eq!(ss_send_q(8082), 5, "--except-port 8082");
        answers_tcp(8081);
    });
}

#[test]
fn an_excepted_unix_path_keeps_the_programs_backlog() {
    if !own_netns("an_excepted_unix_path_keeps_the_programs_backlog") {
        return;
    }
    let dir = temp_dir("exec-except-path");
    let path = dir.join("admin.sock");
    let path = path.to_str().unwrap();
    in_netns(LIMIT, || {
        let mut wrapped = Wrapped::start(
            &["--except-path", path],
            "python3",
            &["-c", PY, "unix", path],
        );
        wrapped.port();
        assert_eq!(ss_unix(path).1, 5);
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// A Unix listener the program binds at a relative path is placed by its working directory at
/// `listen`. Under a `/proc` of another PID namespace (`unshare --pid` without `--mount-proc`)
/// that cannot be read by the caller's thread id (it names another process there): a listener
/// that may be the excepted one is left as the program asks, not raised past its exception;
/// with no path excepted it is raised as any other.
#[test]
fn a_relative_unix_path_is_excepted_by_the_programs_directory() {
    if !own_netns("a_relative_unix_path_is_excepted_by_the_programs_directory") {
        return;
    }
    let dir = temp_dir("exec-except-relative");
    let raised = if has_pidfd_thread() { LIMIT } else { 5 };
    in_netns(LIMIT, || {
        for (i, (foreign_proc, except, expected)) in
            [(false, true, 5), (true, true, 5), (true, false, raised)]
                .into_iter()
                .enumerate()
        {
            let name = format!("admin{i}.sock");
            let mut command = if foreign_proc {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--kill-child", BIN]);
                c
            } else {
                Command::new(BIN)
            };
            command.arg("exec");
            if except {
                command.arg("--except-path").arg(dir.join(&name));
            } else {
                command.args(["--except-port", "1"]);
            }
            let mut child = command
                .args(["--", "python3", "-c", PY, "unix", &name])
                .current_dir(&dir)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            let mut wrapped = Wrapped { child, out };
            wrapped.port();
            let backlog = ss_unix(&name).1;
            if foreign_proc {
                // unshare waits on SIGTERM; killed, it takes its namespace down (--kill-child).
                let _ = wrapped.child.kill();
                let _ = wrapped.child.wait();
            }
            drop(wrapped);
            assert_eq!(
                backlog, expected,
                "foreign /proc {foreign_proc}, excepted {except}"
            );
        }
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// --backlog raises to at least its value, and never lowers what the program asks.
#[test]
fn backlog_flag_is_a_floor_never_a_ceiling() {
    if !own_netns("backlog_flag_is_a_floor_never_a_ceiling") {
        return;
    }
    in_netns(LIMIT, || {
        for (asks, expected) in [(5, 1000), (2000, 2000), (-1, LIMIT)] {
            let mut wrapped = Wrapped::start(
                &["--backlog", "1000"],
                "python3",
                &["-c", PY, "main", &asks.to_string()],
            );
            let port = wrapped.port();
            assert_eq!(ss_send_q(port), expected, "program asks {asks}");
        }
    });
}

/// A program that reports what listen() gives it in the error cases.
const PY_ERRORS: &str = r#"
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def listen(fd, n):
    ctypes.set_errno(0)
    r = libc.listen(fd, n)
    return r, ctypes.get_errno() if r else 0
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("datagram", listen(u.fileno(), 5))
print("bad descriptor", listen(987, 5))
print("negative descriptor", listen(-1, 5))
f = open("/dev/null")
print("not a socket", listen(f.fileno(), 5))
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(1)
c = socket.create_connection(t.getsockname()); a, _ = t.accept()
print("connected", listen(a.fileno(), 5))
print("listening again", listen(t.fileno(), 9))
s = socket.socket(socket.AF_INET6) if socket.has_ipv6 else socket.socket()
print("unbound", listen(s.fileno(), 3))
"#;

fn output(program: &str, args: &[&str], wrapped: bool) -> Output {
    let mut command = if wrapped {
        let mut c = Command::new(BIN);
        c.args(["exec", "--", program]);
        c
    } else {
        Command::new(program)
    };
    command.args(args).output().unwrap()
}

#[test]
fn errors_reach_the_program_unchanged() {
    let bare = output("python3", &["-c", PY_ERRORS], false);
    let wrapped = output("python3", &["-c", PY_ERRORS], true);
    let text = String::from_utf8(bare.stdout).unwrap();
    assert!(text.contains("datagram (-1, 95)"), "EOPNOTSUPP: {text}");
    assert!(text.contains("bad descriptor (-1, 9)"), "EBADF: {text}");
    assert!(text.contains("not a socket (-1, 88)"), "ENOTSOCK: {text}");
    assert!(text.contains("connected (-1, 22)"), "EINVAL: {text}");
    assert_eq!(text, String::from_utf8(wrapped.stdout).unwrap());
    assert!(wrapped.status.success(), "{:?}", wrapped.stderr);
}

/// What the program sees of its own process: descriptors, environment, process group, the
/// signal mask and ignored signals. The same with and without the wrapper.
const PY_SELF: &str = r#"
import os
print(sorted(os.listdir("/proc/self/fd")))
print(os.environ.get("MAXLISTEN_TEST"), os.getpgrp() == os.getpgid(os.getppid()) or os.getpgrp())
for line in open("/proc/self/status"):
    if line.startswith(("SigBlk", "NoNewPrivs")):
        print(line.strip())
    if line.startswith("SigIgn"):
        # Signals 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): any glibc program in
        # between, env(1) as well, installs handlers for them, so an ignored one is not passed on.
        print("SigIgn", hex(int(line.split()[1], 16) & ~(0b11 << 31)))
"#;

#[test]
fn the_program_keeps_its_descriptors_environment_group_and_signals() {
    let run = |wrapped| {
        let mut c = if wrapped {
            let mut c = Command::new(BIN);
            c.args(["exec", "--", "python3"]);
            c
        } else {
            Command::new("python3")
        };
        let out = c
            .args(["-c", PY_SELF])
            .env("MAXLISTEN_TEST", "kept")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (bare, wrapped) = (run(false), run(true));
    assert!(wrapped.contains("kept True"), "{wrapped}");
    // NoNewPrivs differs only where the wrapper needs it (without CAP_SYS_ADMIN).
    let strip = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with("NoNewPrivs"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&bare), strip(&wrapped));
}

#[test]
fn exit_status_is_the_programs() {
    let code = |args: &[&str]| output("sh", args, true).status.code();
    assert_eq!(code(&["-c", "exit 0"]), Some(0));
    assert_eq!(code(&["-c", "exit 7"]), Some(7));
    assert_eq!(code(&["-c", "exit 255"]), Some(255));
    assert_eq!(code(&["-c", "kill -KILL $$"]), Some(128 + 9));
    assert_eq!(code(&["-c", "kill -TERM $$"]), Some(128 + 15));
}

#[test]
fn not_found_is_127_and_not_executable_is_126_naming_it() {
    let missing = output("maxlisten-no-such-program", &[], true);
    assert_eq!(missing.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("'maxlisten-no-such-program': No such file or directory"),
        "{stderr}"
    );
    let dir = temp_dir("exec-126");
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let denied = output(script.to_str().unwrap(), &[], true);
    assert_eq!(denied.status.code(), Some(126));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("not-executable") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    let directory = output(dir.to_str().unwrap(), &[], true);
    assert_eq!(directory.status.code(), Some(126));
    let _ = std::fs::remove_dir_all(dir);
}

/// Each forwarded signal reaches the program; SIGTERM, unhandled, kills it: 128 + 15.
#[test]
fn signals_are_forwarded_and_a_fatal_one_gives_128_plus_n() {
    // Written with os.write, not print: a handler that runs while print("ready") still holds
    // stdout's buffer (a signal sent as soon as the line is read) fails with "reentrant call
    // inside <_io.BufferedWriter>", and the program dies printing nothing more.
    let program = r#"
import os, signal
def say(text):
    os.write(1, (text + "\n").encode())
names = ["SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"]
for name in names:
    signal.signal(getattr(signal, name), lambda n, f: say(signal.Signals(n).name))
say("ready")
while True:
    signal.pause()
"#;
    let mut wrapped = Wrapped::start(&[], "python3", &["-c", program]);
    assert_eq!(wrapped.line(), "ready");
    for (signal, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGWINCH, "SIGWINCH"),
    ] {
        wrapped.signal(signal);
        assert_eq!(wrapped.line(), name);
    }
    wrapped.signal(libc::SIGTERM);
    let status = wrapped
        .exit_within(Duration::from_secs(5))
        .expect("SIGTERM forwarded");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

/// Inside a wrapper, a second wrapper's filter is refused (one notifying filter per chain):
/// exit 1 with the reason, before the program runs.
#[test]
fn a_second_notifying_filter_is_refused_up_front() {
    let out = Command::new(BIN)
        .args(["exec", "--", BIN, "exec", "--", "sh", "-c", "echo ran"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("EBUSY"), "{stderr}");
    assert!(out.stdout.is_empty(), "the program ran");
}

/// The library: the same supervisor, called directly; the program reads its listener's
/// backlog through the kernel's own TCP_INFO (`tcpi_sacked`). `status()` makes the process a
/// subreaper that reaps every child, so it runs in a process of its own: this test binary
/// again, with only this test.
#[test]
fn the_library_supervises_as_the_command_does() {
    const ALONE: &str = "MAXLISTEN_EXEC_LIBRARY_TEST";
    if std::env::var_os(ALONE).is_none() {
        if !own_netns("the_library_supervises_as_the_command_does") {
            return;
        }
        run_child_test(
            Command::new(std::env::current_exe().unwrap()).env(ALONE, "1"),
            "the_library_supervises_as_the_command_does",
            "a process of its own",
        );
        return;
    }
    in_netns(LIMIT, || {
        let program = r#"
import socket, struct
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
print(struct.unpack_from("I", info, 28)[0])
"#;
        let dir = temp_dir("exec-lib");
        let out = dir.join("out");
        let status = maxlisten::exec::Command::new("sh")
            .args(["-c", &format!("python3 -c '{program}' > {}", out.display())])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            LIMIT.to_string()
        );
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// A flood: 64 threads, each 200 listens (every other one on a bad descriptor), all at once.
/// Every call gets its own answer, one at a time, and the wrapper does not grow: its peak
/// memory (VmHWM, read by the program from /proc/PPID/status) rises by less than 2 MiB.
#[test]
fn a_flood_of_listens_is_answered_and_the_wrapper_does_not_grow() {
    let program = r#"
import ctypes, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
def peak():
    for line in open("/proc/%d/status" % os.getppid()):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
def work(results):
    s = socket.socket(); s.bind(("127.0.0.1", 0))
    for i in range(200):
        if i % 2:
            results.append((libc.listen(987, 5), ctypes.get_errno()))
        else:
            results.append((libc.listen(s.fileno(), 5), 0))
# Warm up: the first listen, so that the wrapper's start-up is in the first reading.
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
before = peak()
results = []
threads = [threading.Thread(target=work, args=(results,)) for _ in range(64)]
for t in threads: t.start()
for t in threads: t.join()
print(len(results), sorted(set(results)), peak() - before)
"#;
    let out = output("python3", &["-c", program], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (answers, growth) = text.trim().rsplit_once(' ').unwrap();
    assert_eq!(
        answers, "12800 [(-1, 9), (0, 0)]",
        "every call answered as the kernel would"
    );
    let growth: u64 = growth.parse().unwrap();
    assert!(
        growth < 2048,
        "the wrapper's peak memory grew by {growth} kB"
    );
}

/// As a container's entrypoint: PID 1 of a new PID namespace (`unshare --pid --fork
/// --mount-proc`, as runtimes make it). A SIGTERM from outside reaches the program (PID 1 gets
/// only the signals it takes, and the wrapper takes these), an orphan is reaped (no zombie
/// left), and the exit status is the program's.
#[test]
fn as_pid_1_of_a_container_it_forwards_reaps_and_exits_with_the_status() {
    if !own_netns("as_pid_1_of_a_container_it_forwards_reaps_and_exits_with_the_status") {
        return;
    }
    let program = r#"
import os, signal, subprocess, sys, time
assert os.getppid() == 1, os.getppid()
# An orphan: a grandchild whose parent exits at once; it exits after 0.2 s.
subprocess.Popen(["sh", "-c", "sleep 0.2 &"]).wait()
def term(*_):
    time.sleep(0.5)  # the orphan has exited meanwhile
    zombies = [p for p in os.listdir("/proc") if p.isdigit()
               and open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[0] == "Z"]
    # os.write, not print: a print here, run while a print of "ready" still held stdout's
    # buffer (the signal comes as soon as that line is read), fails as a reentrant call.
    os.write(1, ("zombies %s\n" % zombies).encode())
    sys.exit(5)
signal.signal(signal.SIGTERM, term)
os.write(1, b"ready\n")
while True:
    signal.pause()
"#;
    let mut unshare = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            BIN,
            "exec",
            "--",
            "python3",
            "-c",
            program,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut out = BufReader::new(unshare.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // The wrapper: the child of unshare.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id())).unwrap();
    let wrapper: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill takes two integers; the wrapper is alive (its program just printed).
    assert_eq!(unsafe { libc::kill(wrapper, libc::SIGTERM) }, 0);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "zombies []", "the orphan was reaped");
    let status = unshare.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "the program's status, through the wrapper"
    );
}

/// Without privilege: no capability at all, so the filter goes in under `no_new_privs`, and the
/// program still ends at the limit. As the host's root, the wrapper runs as `nobody` (another
/// user); for any other user, in the user namespace of [`common::own_netns`], as its root with
/// every capability dropped (bounding, inheritable and ambient sets emptied: nothing is regained
/// at `execve`), which is this user without privilege. Either way the program (the wrapper's
/// child, with the wrapper's credentials) shows no effective capability and `no_new_privs` set.
#[test]
fn without_privilege_it_works_under_no_new_privs() {
    if !own_netns("without_privilege_it_works_under_no_new_privs") {
        return;
    }
    in_netns(LIMIT, || {
        let program = r#"
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
print(status["NoNewPrivs"].strip(), status["CapEff"].strip(), flush=True)
import sys; sys.stdin.read()
"#;
        let mut command = if common::is_host_root() {
            common::process::as_nobody(BIN)
        } else {
            let mut c = Command::new("setpriv");
            c.args([
                "--inh-caps=-all",
                "--ambient-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(BIN);
            c
        };
        let mut child = command
            .args([
                "exec",
                "--",
                common::process::system_python(),
                "-c",
                program,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut port = String::new();
        out.read_line(&mut port).unwrap();
        let mut nnp = String::new();
        out.read_line(&mut nnp).unwrap();
        assert_eq!(ss_send_q(port.trim().parse().unwrap()), LIMIT);
        assert_eq!(
            nnp.trim(),
            "1 0000000000000000",
            "no_new_privs (as documented) and no effective capability"
        );
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    });
}

/// The tests above that make namespaces of their own: for a user other than root, each runs in
/// a user namespace ([`own_netns`]). [`as_nobody_the_others_run_in_user_namespaces`] checks
/// that each took that path.
const IN_OWN_NAMESPACES: [&str; 18] = [
    "python_main_thread_gets_the_limit",
    "python_other_thread_gets_the_limit",
    "python_forked_child_gets_the_limit",
    "a_thread_with_its_own_descriptor_table_gets_the_limit",
    "under_a_proc_of_another_pid_namespace_the_program_is_still_raised",
    "a_thread_whose_own_table_holds_another_socket_at_the_same_number",
    "python_unix_listener_gets_the_limit",
    "node_gets_the_limit",
    "a_static_binary_that_asks_for_1_gets_the_limit",
    "a_daemon_that_double_forks_stays_covered",
    "a_server_that_reloads_gets_the_limit_on_its_new_listener",
    "an_excepted_port_keeps_the_programs_backlog",
    "an_excepted_unix_path_keeps_the_programs_backlog",
    "a_relative_unix_path_is_excepted_by_the_programs_directory",
    "backlog_flag_is_a_floor_never_a_ceiling",
    "the_library_supervises_as_the_command_does",
    "as_pid_1_of_a_container_it_forwards_reaps_and_exits_with_the_status",
    "without_privilege_it_works_under_no_new_privs",
];

/// [`IN_OWN_NAMESPACES`], and the tests of that kind that only some targets build, where built.
fn in_own_namespaces() -> Vec<&'static str> {
    let mut names = IN_OWN_NAMESPACES.to_vec();
    if cfg!(target_arch = "x86_64") {
        names.push("a_32_bit_static_binary_gets_the_limit");
    }
    names
}

/// CI runs as root, and so would never take the path other users take: as root, this runs
/// every other test of this file as `nobody` (a copy of this test binary), where each of
/// [`IN_OWN_NAMESPACES`] runs in a user namespace of its own and none is skipped.
#[test]
fn as_nobody_the_others_run_in_user_namespaces() {
    const TEST: &str = "as_nobody_the_others_run_in_user_namespaces";
    if !common::needs_root(
        TEST,
        "needs root: it runs the others as a second user (nobody); as this user they took the \
         user namespace path themselves",
    ) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let listed = Command::new(&exe)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let tests: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    let in_own_namespaces = in_own_namespaces();
    for name in &in_own_namespaces {
        assert!(tests.contains(name), "{name} is not a test of this file");
    }
    // A copy of this test binary nobody can run (the build may be under /root).
    let dir = temp_dir("exec-as-nobody");
    let copy = dir.join("exec");
    std::fs::copy(&exe, &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = common::process::as_nobody(&copy)
        .args(["--skip", TEST, "--exact", "--nocapture", "--test-threads=1"])
        .current_dir("/")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env_remove("MAXLISTEN_TEST_IN_USERNS")
        .env_remove("MAXLISTEN_EXEC_LIBRARY_TEST")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = common::process::text(&out);
    println!("--- as nobody ---\n{said}\n--- end ---");
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("test result: ok. {} passed", tests.len() - 1)),
        "{said}"
    );
    assert!(!said.contains("SKIPPED"), "{said}");
    for name in &in_own_namespaces {
        assert!(
            said.contains(&format!("--- {name}, run in its user namespace ---")),
            "{name} did not run in a user namespace:\n{said}"
        );
    }
    assert_eq!(
        said.matches(common::USERNS_MARK).count(),
        in_own_namespaces.len(),
        "{said}"
    );
}
