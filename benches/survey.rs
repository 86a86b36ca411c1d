//! `maxlisten survey` against `ss -ltnp` on the same 10,000 listeners, side by side in one run.
//!
//! ```text
//! cargo bench --features cli --bench survey                 # 10,000 listeners, 15 rounds
//! cargo bench --features cli --bench survey -- --listeners 2000 --rounds 5
//! ```
//!
//! It runs in a private network namespace that holds only these listeners (so the host's
//! sockets do not count; through a user namespace for a user who is not root). Both
//! commands find the owning process of every socket (`ss -p`, and the survey's `/proc` scan)
//! and print every listener; each round runs them one after the other, in alternating order,
//! and the medians are compared.

mod support;

use std::net::TcpListener;
use std::process::Command;

use support::{median, ms, raise_fd_limit, time};

fn main() {
    let (mut listeners, mut rounds) = (10_000usize, 15usize);
    support::parse_args("survey", |flag, args| {
        match flag {
            "--listeners" => listeners = args.number(flag),
            "--rounds" => rounds = args.number::<usize>(flag).max(1),
            _ => return false,
        }
        true
    });
    // Only these listeners: the host's sockets do not count.
    support::in_private_netns(4096);
    raise_fd_limit(listeners + 100);
    let (survey, ss, found) = {
        let held: Vec<TcpListener> = (0..listeners)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a listener"))
            .collect();
        let survey_cmd = || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_maxlisten"));
            c.args(["survey", "--json"]);
            c
        };
        let ss_cmd = || {
            let mut c = Command::new("ss");
            c.arg("-ltnp");
            c
        };
        // Both must see every listener.
        let out = survey_cmd().output().unwrap();
        let found = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["listeners"]
            .as_array()
            .unwrap()
            .len();
        let ss_lines = ss_cmd()
            .output()
            .unwrap()
            .stdout
            .split(|b| *b == b'\n')
            .count();
        assert!(
            found >= listeners && ss_lines > listeners,
            "{found} / {ss_lines}"
        );
        let (mut survey, mut ss) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let mut order = [(&mut survey, survey_cmd()), (&mut ss, ss_cmd())];
            if round % 2 == 1 {
                order.reverse();
            }
            for (times, mut command) in order {
                times.push(time(&mut command));
            }
        }
        drop(held);
        (median(survey), median(ss), found)
    };
    println!(
        "survey: {listeners} TCP listeners held by one process, in a private network namespace; \
         {rounds} rounds, alternating order, medians"
    );
    println!(
        "  maxlisten survey --json   {:>8.1} ms  ({found} listeners listed)",
        ms(survey)
    );
    println!("  ss -ltnp                  {:>8.1} ms", ms(ss));
    println!(
        "  ratio ss / maxlisten survey: {:.2}x (above 1: the survey is faster)",
        ss.as_secs_f64() / survey.as_secs_f64()
    );
}
