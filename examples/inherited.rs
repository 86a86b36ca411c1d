//! A server that takes its listeners from socket activation (systemd, `systemd-socket-activate`,
//! `systemfd`), raises each to the largest backlog, and serves a greeting on each.
//!
//! ```text
//! cargo build --example inherited
//! systemd-socket-activate -l 127.0.0.1:8080 -l /tmp/app.sock --fdname=web:admin \
//!     target/debug/examples/inherited            # serve until Ctrl-C
//! ... target/debug/examples/inherited --once     # one connection per listener, then exit
//! ```
//!
//! With a systemd socket unit, `ListenStream=8080` and `ListenStream=/run/app.sock` in
//! `app.socket` and this program as `ExecStart=` of `app.service`. In development,
//! `systemfd --no-pid -s http::8080 -- cargo run --example inherited` (systemfd listens with a
//! backlog of 1: this is where the re-listen matters most).
//!
//! `maxlisten::inherited()` leaves `LISTEN_*` in the environment (harmless: they name this
//! process, so no child adopts anything). A program that wants them gone calls
//! `unsafe { maxlisten::inherited_and_unset_env() }` first thing in `main`, before any thread,
//! as here.

use std::process::ExitCode;

/// Socket activation is a Unix protocol.
#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("inherited: socket activation (LISTEN_FDS) exists on Unix only");
    ExitCode::FAILURE
}

#[cfg(unix)]
fn main() -> ExitCode {
    use maxlisten::InheritedListener;
    use std::io::Write;

    let once = std::env::args().nth(1).as_deref() == Some("--once");
    // SAFETY: the first thing in main: no other thread exists yet that could read the
    // environment while the variables are removed.
    let sockets = match unsafe { maxlisten::inherited_and_unset_env() } {
        Ok(sockets) => sockets,
        Err(err) => {
            eprintln!("inherited: {err}");
            return ExitCode::FAILURE;
        }
    };
    if sockets.is_empty() {
        eprintln!("inherited: no sockets were handed over (run me under systemd-socket-activate)");
        return ExitCode::FAILURE;
    }
    let mut threads = Vec::new();
    for socket in sockets {
        let (fd, name, backlog) = (
            socket.fd(),
            socket.name().map(str::to_owned),
            socket.backlog(),
        );
        let name = name.unwrap_or_else(|| "-".into());
        let greeting = format!("hello from fd {fd} ({name})\n");
        threads.push(match socket.into_listener() {
            InheritedListener::Tcp(listener) => {
                let local = listener.local_addr().map(|a| a.to_string());
                println!(
                    "adopted fd {fd} {name}: tcp {}, backlog {backlog}",
                    local.unwrap_or_default()
                );
                std::thread::spawn(move || loop {
                    if let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.write_all(greeting.as_bytes());
                    }
                    if once {
                        // Kept open until every listener has served its connection.
                        break InheritedListener::Tcp(listener);
                    }
                })
            }
            InheritedListener::Unix(listener) => {
                let local = listener.local_addr().ok();
                let path = local
                    .as_ref()
                    .and_then(|a| a.as_pathname())
                    .map(|p| p.display().to_string());
                println!(
                    "adopted fd {fd} {name}: unix {}, backlog {backlog}",
                    path.unwrap_or_default()
                );
                std::thread::spawn(move || loop {
                    if let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.write_all(greeting.as_bytes());
                    }
                    if once {
                        break InheritedListener::Unix(listener);
                    }
                })
            }
        });
    }
    let listeners: Vec<_> = threads.into_iter().map(|thread| thread.join()).collect();
    drop(listeners);
    ExitCode::SUCCESS
}
