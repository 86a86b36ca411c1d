//! Processes the tests start: a guard that kills one on drop, servers that print their port
//! once they listen, commands run as another user, and the tools a test needs.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output, Stdio};

/// A child process, killed (and reaped) when dropped, even after a failed assertion.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `command` with its stdout piped and waits for the first line it prints (a server
/// prints it once it listens): the process, and that line trimmed.
pub fn started(command: &mut Command) -> (Killed, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{command:?}'s first line: {e}"));
    (Killed(child), line.trim().to_string())
}

/// [`started`] for a server whose first line is the TCP port it listens on.
pub fn listening(command: &mut Command) -> (Killed, u16) {
    let (child, line) = started(command);
    let port = line
        .parse()
        .unwrap_or_else(|_| panic!("{command:?} printed {line:?}, not its port"));
    (child, port)
}

/// Python: listen on 127.0.0.1:0 with the backlog `sys.argv[1]`, print the port, then wait
/// to be killed (it never accepts).
pub const PY_LISTEN: &str = "import socket, sys, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(int(sys.argv[1]))
print(s.getsockname()[1], flush=True)
time.sleep(600)";

/// `python3 -c PY_LISTEN BACKLOG` (see [`PY_LISTEN`]): the words, for a command that runs it
/// (as another user, in another namespace).
pub fn python_listen_argv(backlog: u32) -> Vec<String> {
    [system_python(), "-c", PY_LISTEN, &backlog.to_string()]
        .map(String::from)
        .to_vec()
}

/// [`python_listen_argv`] as a command, not started yet.
pub fn python_listen(backlog: u32) -> Command {
    let argv = python_listen_argv(backlog);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// A python3 another user can run (root's PATH may start with a python under /root).
pub fn system_python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// `setpriv` running `program` as `nobody` (uid and gid 65534), without supplementary groups
/// or inheritable capabilities; add its arguments.
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(program);
    command
}

/// Status, stdout and stderr of a finished command, for an assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// True when `tool` is on PATH; otherwise the test skips (outside CI, saying it needs
/// `package`) or fails (`CI=true`).
pub fn have(test: &str, tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !super::in_ci(),
            "{test} needs {tool} (Debian package {package}); CI=true forbids skipping it"
        );
        eprintln!("SKIPPED {test}: needs {tool} (apt-get install {package})");
    }
    found
}
