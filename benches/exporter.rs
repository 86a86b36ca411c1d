//! `maxlisten exporter`: one scrape of 10,000 listeners against `ss -ltnp` on the same
//! listeners, side by side in one run, and the exporter's resident memory after the scrapes.
//!
//! ```text
//! cargo bench --features cli --bench exporter                 # 10,000 listeners, 15 rounds
//! cargo bench --features cli --bench exporter -- --listeners 2000 --rounds 3
//! cargo bench --features cli --bench exporter -- --binary "$PWD/target/x86_64-unknown-linux-musl/release/maxlisten"
//! cargo bench --features cli --bench exporter -- --check       # exit 1 on a missed target
//! ```
//!
//! `--binary` measures another build of the command, such as the static musl one the container
//! image holds (its allocator returns freed memory to the system, glibc's keeps it).
//!
//! In a private network namespace that holds only these listeners (held by this process;
//! through a user namespace for a user who is not root). A scrape is a whole HTTP GET of
//! /metrics on a new connection (what Prometheus waits for); `ss -ltnp` is a run of the command (what an operator would otherwise use). Both
//! find the owner of every socket. Each round does one of each, in alternating order; the medians
//! are compared. Then VmRSS and VmHWM (the peak) of the exporter are read from /proc. It says
//! FAIL where the exporter is slower than ss or its resident memory reaches 10 MiB, and with
//! `--check` exits 1 then.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{median, ms, raise_fd_limit, time};

const MIB: u64 = 1024;

fn main() {
    let (mut listeners, mut rounds) = (10_000usize, 15usize);
    let mut binary = env!("CARGO_BIN_EXE_maxlisten").to_string();
    let mut check = false;
    support::parse_args("exporter", |flag, args| {
        match flag {
            "--listeners" => listeners = args.number(flag),
            "--rounds" => rounds = args.number::<usize>(flag).max(1),
            "--check" => check = true,
            "--binary" => binary = args.value(flag),
            _ => return false,
        }
        true
    });
    // Only these listeners: the host's sockets do not count.
    support::in_private_netns(4096);
    raise_fd_limit(listeners + 100);
    let result = {
        let held: Vec<TcpListener> = (0..listeners)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a listener"))
            .collect();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut exporter = Killed(
            Command::new(&binary)
                .args(["exporter", &format!("--listen=127.0.0.1:{port}")])
                .stderr(Stdio::null())
                .spawn()
                .expect("start the exporter"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                fail("the exporter does not listen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (idle_rss, _) = memory(exporter.0.id());

        // Both must see every listener.
        let body = scrape(port);
        let found = body
            .lines()
            .filter(|l| l.starts_with("maxlisten_listener_backlog{"))
            .count();
        let ss_lines = ss().output().unwrap().stdout.split(|b| *b == b'\n').count();
        if found < listeners || ss_lines <= listeners {
            fail(&format!("the exporter lists {found}, ss {ss_lines} lines"));
        }
        let (mut scrapes, mut sss) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let scrape_first = round % 2 == 0;
            for turn in 0..2 {
                if (turn == 0) == scrape_first {
                    let start = Instant::now();
                    let body = scrape(port);
                    scrapes.push(start.elapsed());
                    assert!(body.contains("maxlisten_collect_success 1"));
                } else {
                    sss.push(time(&mut ss()));
                }
            }
        }
        let (rss, hwm) = memory(exporter.0.id());
        let _ = exporter.0.kill();
        drop(held);
        (
            median(scrapes),
            median(sss),
            found,
            body.len(),
            idle_rss,
            rss,
            hwm,
        )
    };
    let (scrape, ss, found, bytes, idle_rss, rss, hwm) = result;
    println!(
        "exporter ({binary}): {listeners} TCP listeners held by one process, in a private \
         network namespace; {rounds} rounds, alternating order, medians"
    );
    println!(
        "  one scrape of /metrics    {:>8.1} ms  ({found} listeners, {} KiB of text)",
        ms(scrape),
        bytes / 1024
    );
    println!("  ss -ltnp                  {:>8.1} ms", ms(ss));
    let ratio = ss.as_secs_f64() / scrape.as_secs_f64();
    println!("  ratio ss / scrape: {ratio:.2}x (above 1: the scrape is faster)");
    println!(
        "  exporter resident memory: {:.1} MiB idle, {:.1} MiB after the scrapes (VmRSS), \
         peak {:.1} MiB (VmHWM)",
        idle_rss as f64 / MIB as f64,
        rss as f64 / MIB as f64,
        hwm as f64 / MIB as f64
    );
    let mut failed = false;
    if ratio < 1.0 {
        println!("  FAIL: a scrape is slower than ss -ltnp");
        failed = true;
    }
    if rss >= 10 * MIB {
        println!("  FAIL: resident memory after the scrapes is not under 10 MiB");
        failed = true;
    }
    if failed && check {
        std::process::exit(1);
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ss() -> Command {
    let mut c = Command::new("ss");
    c.arg("-ltnp");
    c
}

/// GET /metrics on a new connection, read to the end.
fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the exporter");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    if !raw.starts_with("HTTP/1.0 200") && !raw.starts_with("HTTP/1.1 200") {
        fail(&format!(
            "the scrape failed: {}",
            raw.lines().next().unwrap_or("")
        ));
    }
    raw
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| fail(&format!("no {name} in /proc/{pid}/status")))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn fail(why: &str) -> ! {
    support::fail("exporter", why)
}
