//! The cost of binding, and of the readings, next to std.
//!
//! ```text
//! cargo bench --bench bind
//! ```
//!
//! Criterion times each path on its own; then, because a shared machine is noisy, the paths are
//! run interleaved in rounds and compared as ratios to std measured in the same rounds.
//! Targets: `maxlisten::bind` within 3% of std (the same system calls), `ListenerBuilder::bind`
//! within 5%.

use std::hint::black_box;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use criterion::Criterion;
use maxlisten::ListenerBuilder;

fn addr() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

type Bind = (&'static str, fn() -> TcpListener);

const PATHS: [Bind; 3] = [
    ("std::net::TcpListener::bind", || {
        TcpListener::bind(addr()).unwrap()
    }),
    ("maxlisten::bind", || maxlisten::bind(addr()).unwrap()),
    ("ListenerBuilder::new().bind", || {
        ListenerBuilder::new().bind(addr()).unwrap().into_std()
    }),
];

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("bind 127.0.0.1:0");
    for (name, bind) in PATHS {
        group.bench_function(name, |b| b.iter(|| black_box(bind())));
    }
    group.finish();

    let listener = ListenerBuilder::new().bind(addr()).unwrap();
    c.bench_function("Listener::backlog", |b| {
        b.iter(|| black_box(listener.backlog()))
    });
    c.bench_function("Listener::queue_stats", |b| {
        b.iter(|| black_box(listener.queue_stats().unwrap()))
    });
    c.bench_function(
        "std TcpListener::local_addr (one getsockname, for scale)",
        |b| b.iter(|| black_box(listener.local_addr().unwrap())),
    );
}

/// Interleaved rounds: each round times `per_round` binds of every path, in a rotating order;
/// the result is the median over rounds of each path's time divided by std's in that round.
fn interleaved_ratios(rounds: usize, per_round: usize) -> Vec<(&'static str, f64)> {
    let mut ratios = vec![Vec::with_capacity(rounds); PATHS.len()];
    for round in 0..rounds {
        let mut times = [Duration::ZERO; PATHS.len()];
        for k in 0..PATHS.len() {
            let index = (round + k) % PATHS.len();
            let bind = PATHS[index].1;
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(bind());
            }
            times[index] = start.elapsed();
        }
        for (index, time) in times.iter().enumerate() {
            ratios[index].push(time.as_secs_f64() / times[0].as_secs_f64());
        }
    }
    PATHS
        .iter()
        .zip(ratios)
        .map(|((name, _), mut r)| {
            r.sort_by(f64::total_cmp);
            (*name, r[r.len() / 2])
        })
        .collect()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();

    let (rounds, per_round) = (41, 500);
    println!();
    println!("interleaved: {rounds} rounds x {per_round} binds per path, median ratio to std");
    for ((name, ratio), target) in
        interleaved_ratios(rounds, per_round)
            .into_iter()
            .zip([None, Some(1.03), Some(1.05)])
    {
        let verdict = match target {
            None => "(baseline)".to_string(),
            Some(t) if ratio <= t => format!("target <= {t:.2}: met"),
            Some(t) => format!("target <= {t:.2}: NOT met"),
        };
        println!("  {name:<30} {ratio:>6.3}  {verdict}");
    }
}
