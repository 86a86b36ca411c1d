//! What `maxlisten exec` costs, side by side in one run, each pair in alternating order:
//!
//! 1. a system-call-heavy program that never listens (a C loop of `getppid` and `stat`
//!    system calls), with and without the wrapper: the time of its loop as the program measures
//!    it, and the wall time of the whole run; as a control, the same loop under a seccomp
//!    filter that allows everything (what any filter costs at system-call entry);
//! 2. one `listen` call, supervised and not (a C loop that re-listens one socket), in
//!    microseconds;
//! 3. the wrapper's own start-up: `maxlisten exec -- true` against `true`.
//!
//! ```text
//! cargo bench --features cli --bench exec                      # 25 rounds, 300,000 calls
//! cargo bench --features cli --bench exec -- --rounds 3 --calls 200000
//! ```
//!
//! Needs a C compiler (`cc`). Runs in the host's network namespace on a socket it makes
//! itself (nothing here depends on the limit).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{median, ms};

const BIN: &str = env!("CARGO_BIN_EXE_maxlisten");

/// `loop N`: N times getppid + stat (two system calls), prints the loop's nanoseconds.
/// `filtered N`: the same after installing a seccomp filter that allows everything (the
/// kernel's cost of any filter, without a supervisor).
/// `listen N`: listen() N times on one bound socket, prints the loop's nanoseconds.
const PROGRAM: &str = r#"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static long long now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    struct stat st;
    if (!strcmp(argv[1], "filtered")) {
        struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        struct sock_fprog prog = {1, allow};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
            perror("seccomp"); return 1;
        }
    }
    if (strcmp(argv[1], "listen")) {
        long long t = now();
        for (long i = 0; i < n; i++) { syscall(SYS_getppid); stat("/", &st); }
        printf("%lld\n", now() - t);
        return 0;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a; memset(&a, 0, sizeof a);
    a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    long long t = now();
    for (long i = 0; i < n; i++) if (listen(s, 5)) { perror("listen"); return 1; }
    printf("%lld\n", now() - t);
    return 0;
}
"#;

fn main() {
    let (mut rounds, mut calls) = (25usize, 300_000u64);
    support::parse_args("exec", |flag, args| {
        match flag {
            "--rounds" => rounds = args.number::<usize>(flag).max(1),
            "--calls" => calls = args.number::<u64>(flag).max(1),
            _ => return false,
        }
        true
    });
    if let Err(err) = maxlisten::exec::check() {
        fail(&format!("maxlisten exec cannot run here: {err}"));
    }
    let program = build();
    let listens = (calls / 20).max(1000);

    let mut loop_filtered = Vec::new();
    let mut pair_ratios = Vec::new();
    let mut filter_ratios = Vec::new();
    let mut loop_bare = Vec::new();
    let mut loop_wrapped = Vec::new();
    let mut wall_bare = Vec::new();
    let mut wall_wrapped = Vec::new();
    let mut listen_bare = Vec::new();
    let mut listen_wrapped = Vec::new();
    let mut start_bare = Vec::new();
    let mut start_wrapped = Vec::new();
    for round in 0..rounds {
        // The control goes before the pair in even rounds, after it in odd ones.
        if round % 2 == 0 {
            loop_filtered.push(run(&program, "filtered", calls, false).0);
        }
        // Alternate which one goes first.
        for wrapped in [round % 2 == 1, round % 2 == 0] {
            let (inner, wall) = run(&program, "loop", calls, wrapped);
            if wrapped {
                loop_wrapped.push(inner);
                wall_wrapped.push(wall);
            } else {
                loop_bare.push(inner);
                wall_bare.push(wall);
            }
            let (inner, _) = run(&program, "listen", listens, wrapped);
            if wrapped {
                &mut listen_wrapped
            } else {
                &mut listen_bare
            }
            .push(inner);
            let wall = start(wrapped);
            if wrapped {
                &mut start_wrapped
            } else {
                &mut start_bare
            }
            .push(wall);
        }
        if round % 2 == 1 {
            loop_filtered.push(run(&program, "filtered", calls, false).0);
        }
        let (bare, with, filtered) = (loop_bare[round], loop_wrapped[round], loop_filtered[round]);
        pair_ratios.push(with.as_secs_f64() / bare.as_secs_f64());
        filter_ratios.push(filtered.as_secs_f64() / bare.as_secs_f64());
    }
    let per_call_us = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "maxlisten exec, {rounds} rounds (medians), {calls} x (getppid + stat), {listens} listens"
    );
    println!("{:<46} {:>12} {:>12} {:>8}", "", "without", "with", "ratio");
    let row = |name: &str, bare: f64, with: f64, unit: &str| {
        println!(
            "{:<46} {:>9.3} {unit} {:>9.3} {unit} {:>8.4}",
            name,
            bare,
            with,
            with / bare
        );
    };
    let (lb, lw) = (median(loop_bare), median(loop_wrapped));
    row(
        "system-call loop, as the program times it",
        ms(lb),
        ms(lw),
        "ms",
    );
    row(
        "  control: any seccomp filter (allow-all, no wrapper)",
        ms(lb),
        ms(median(loop_filtered)),
        "ms",
    );
    let (wb, ww) = (median(wall_bare), median(wall_wrapped));
    row("system-call loop, whole run (wall)", ms(wb), ms(ww), "ms");
    let (pb, pw) = (median(listen_bare), median(listen_wrapped));
    row(
        "one listen()",
        per_call_us(pb, listens),
        per_call_us(pw, listens),
        "us",
    );
    let (sb, sw) = (median(start_bare), median(start_wrapped));
    row(
        "start-up: `true` vs `maxlisten exec -- true`",
        ms(sb),
        ms(sw),
        "ms",
    );
    pair_ratios.sort_by(f64::total_cmp);
    filter_ratios.sort_by(f64::total_cmp);
    println!(
        "system-call loop, median of the per-round ratios: with the wrapper {:.4}, with an \
         allow-all filter {:.4}",
        pair_ratios[rounds / 2],
        filter_ratios[rounds / 2]
    );
    println!(
        "supervised listen costs {:.1} us more; the wrapper adds {:.2} ms at start",
        per_call_us(pw, listens) - per_call_us(pb, listens),
        ms(sw) - ms(sb)
    );
}

/// Compiles the measured program into target/.
fn build() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-exec");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("program.c");
    let binary = dir.join("program");
    std::fs::write(&source, PROGRAM).unwrap();
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| fail(&format!("cc: {e} (install a C compiler)")));
    if !out.status.success() {
        fail(&format!("cc: {}", String::from_utf8_lossy(&out.stderr)));
    }
    binary
}

/// (the loop's time as the program reports it, the wall time of the whole run).
fn run(program: &Path, mode: &str, n: u64, wrapped: bool) -> (Duration, Duration) {
    let mut command = if wrapped {
        let mut c = Command::new(BIN);
        c.args(["exec", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args([mode, &n.to_string()]);
    let start = Instant::now();
    let out = command.output().unwrap();
    let wall = start.elapsed();
    if !out.status.success() {
        fail(&format!(
            "{mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let ns: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| fail("the program printed no time"));
    (Duration::from_nanos(ns), wall)
}

fn start(wrapped: bool) -> Duration {
    let mut command = if wrapped {
        let mut c = Command::new(BIN);
        c.args(["exec", "--", "true"]);
        c
    } else {
        Command::new("true")
    };
    let start = Instant::now();
    let status = command.status().unwrap();
    let wall = start.elapsed();
    assert!(status.success());
    wall
}

fn fail(why: &str) -> ! {
    support::fail("exec", why)
}
