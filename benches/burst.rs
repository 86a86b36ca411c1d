//! Connection burst benchmark: a server busy for S ms, N simultaneous connects, and how long
//! each client waits, for several listeners side by side in one run.
//!
//! ```text
//! cargo bench --features tokio --bench burst                                # N = 2000, S = 300 ms
//! cargo bench --features tokio --bench burst -- --n 500 --stall-ms 100 --somaxconn 1024
//! ```
//!
//! It runs inside a private network namespace (with `--somaxconn L` applied there, 4096 by
//! default; through a user namespace for a user who is not root), so the limit is known and
//! the host is untouched. It prints a table and writes `target/burst.svg`. It exits
//! with an error if any connection was lost (not accepted by the server).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use socket2::{Domain, Socket, Type};

/// How long clients and server wait at most: past several SYN retransmissions (1, 3, 7 s ...).
const DEADLINE: Duration = Duration::from_secs(40);

struct Config {
    n: usize,
    stall: Duration,
    somaxconn: u32,
    svg: PathBuf,
}

#[derive(Clone, Copy)]
enum Kind {
    Std,
    Tokio,
    Socket2(i32, &'static str),
    Maxlisten,
    /// An axum app; `true` when bound with `maxlisten::tokio::bind`, else with tokio's bind.
    Axum(bool),
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Std => "std TcpListener::bind".into(),
            Kind::Tokio => "tokio TcpListener::bind".into(),
            Kind::Socket2(backlog, who) => format!("socket2 listen({backlog}) ({who})"),
            Kind::Maxlisten => "maxlisten::bind".into(),
            Kind::Axum(false) => AXUM_TOKIO.into(),
            Kind::Axum(true) => AXUM_MAXLISTEN.into(),
        }
    }

    /// Whether clients send an HTTP request and are timed to the end of the response, rather
    /// than to the end of the handshake.
    fn http(self) -> bool {
        matches!(self, Kind::Axum(_))
    }
}

const AXUM_TOKIO: &str = "axum on tokio::net::TcpListener::bind";
const AXUM_MAXLISTEN: &str = "axum on maxlisten::tokio::bind";

struct Outcome {
    name: String,
    backlog: u32,
    /// Connect time (request time, for HTTP rows) of every client that finished, sorted.
    times: Vec<Duration>,
    http: bool,
    during_stall: usize,
    failed: usize,
    accepted: usize,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.times.len() as f64).ceil() as usize;
        self.times[rank.clamp(1, self.times.len()) - 1]
    }
}

fn main() {
    let config = parse_args();
    support::in_private_netns(config.somaxconn);
    // Each connection is a client and a server socket.
    support::raise_fd_limit(2 * config.n + 100);
    let outcomes = run_all(&config);
    let place = format!(
        "a private network namespace, net.core.somaxconn = {}",
        config.somaxconn
    );
    report(&config, &place, &outcomes);
    let lost: usize = outcomes.iter().map(|o| config.n - o.accepted).sum();
    if lost > 0 {
        eprintln!("burst: {lost} connections were not accepted");
        std::process::exit(1);
    }
}

fn parse_args() -> Config {
    let mut config = Config {
        n: 2000,
        stall: Duration::from_millis(300),
        somaxconn: 4096,
        svg: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/burst.svg"),
    };
    support::parse_args("burst", |flag, args| {
        match flag {
            "--n" => config.n = args.number(flag),
            "--stall-ms" => {
                config.stall = Duration::from_millis(args.number::<u64>(flag).min(10_000));
            }
            "--somaxconn" => config.somaxconn = args.number(flag),
            "--svg" => config.svg = PathBuf::from(args.value(flag)),
            _ => return false,
        }
        true
    });
    if !(1..=20_000).contains(&config.n) {
        support::fail("burst", "--n must be 1 to 20000");
    }
    config
}

fn run_all(config: &Config) -> Vec<Outcome> {
    [
        Kind::Std,
        Kind::Tokio,
        Kind::Socket2(511, "Node.js default"),
        Kind::Socket2(2048, "actix default"),
        Kind::Maxlisten,
        Kind::Axum(false),
        Kind::Axum(true),
    ]
    .into_iter()
    .map(|kind| run_one(kind, config))
    .collect()
}

/// One listener: the server thread binds, reports (address, backlog), waits for the go signal,
/// stalls, then accepts N; the client fires N connects at once and times each.
fn run_one(kind: Kind, config: &Config) -> Outcome {
    let (ready_tx, ready_rx) = mpsc::channel::<(SocketAddr, u32)>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let n = config.n;
    let stall = config.stall;
    let server = std::thread::spawn(move || match kind {
        Kind::Tokio => tokio_server(ready_tx, go_rx, n, stall),
        Kind::Axum(ours) => axum_server(ours, ready_tx, go_rx, n, stall),
        _ => std_server(kind, ready_tx, go_rx, n, stall),
    });
    let (addr, backlog) = ready_rx.recv().expect("server started");
    let (times, failed) = burst(addr, n, go_tx, kind.http());
    let accepted = server.join().expect("server thread");
    let during_stall = times.iter().filter(|t| **t < stall).count();
    Outcome {
        name: kind.name(),
        backlog,
        times,
        http: kind.http(),
        during_stall,
        failed,
        accepted,
    }
}

fn std_server(
    kind: Kind,
    ready: mpsc::Sender<(SocketAddr, u32)>,
    go: mpsc::Receiver<()>,
    n: usize,
    stall: Duration,
) -> usize {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listener: TcpListener = match kind {
        Kind::Std => TcpListener::bind(addr).unwrap(),
        Kind::Maxlisten => maxlisten::bind(addr).unwrap(),
        Kind::Socket2(backlog, _) => {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_reuse_address(true).unwrap();
            socket.bind(&addr.into()).unwrap();
            socket.listen(backlog).unwrap();
            socket.into()
        }
        Kind::Tokio | Kind::Axum(_) => unreachable!(),
    };
    let backlog = maxlisten::queue_stats(&listener).unwrap().backlog;
    ready
        .send((listener.local_addr().unwrap(), backlog))
        .unwrap();
    go.recv().unwrap();
    std::thread::sleep(stall); // busy: nothing is accepted
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut accepted = 0;
    while accepted < n && start.elapsed() < DEADLINE {
        match listener.accept() {
            Ok(_) => accepted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    accepted
}

fn tokio_server(
    ready: mpsc::Sender<(SocketAddr, u32)>,
    go: mpsc::Receiver<()>,
    n: usize,
    stall: Duration,
) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backlog = maxlisten::queue_stats(&listener).unwrap().backlog;
        ready
            .send((listener.local_addr().unwrap(), backlog))
            .unwrap();
        go.recv().unwrap();
        std::thread::sleep(stall); // busy: the runtime thread is blocked
        let start = Instant::now();
        let mut accepted = 0;
        while accepted < n && start.elapsed() < DEADLINE {
            match tokio::time::timeout(Duration::from_millis(100), listener.accept()).await {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(e)) => panic!("accept: {e}"),
                Err(_) => {}
            }
        }
        accepted
    })
}

/// An axum app that answers `GET /` and stops once it has answered `n` requests. It binds,
/// then is busy for `stall` before it serves, as a server that is still starting, or blocked.
fn axum_server(
    ours: bool,
    ready: mpsc::Sender<(SocketAddr, u32)>,
    go: mpsc::Receiver<()>,
    n: usize,
    stall: Duration,
) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = if ours {
            maxlisten::tokio::bind("127.0.0.1:0").await.unwrap()
        } else {
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
        };
        let backlog = maxlisten::queue_stats(&listener).unwrap().backlog;
        ready
            .send((listener.local_addr().unwrap(), backlog))
            .unwrap();
        go.recv().unwrap();
        std::thread::sleep(stall); // busy: nothing is served yet
        let served = Arc::new(AtomicUsize::new(0));
        let all_served = Arc::new(tokio::sync::Notify::new());
        let (count, done) = (Arc::clone(&served), Arc::clone(&all_served));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                if count.fetch_add(1, Ordering::SeqCst) + 1 == n {
                    done.notify_one();
                }
                "hello\n"
            }),
        );
        let stop = async move {
            let _ = tokio::time::timeout(DEADLINE, all_served.notified()).await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .unwrap();
        served.load(Ordering::SeqCst)
    })
}

/// A client of the burst: connecting, then (HTTP) sending its request and reading the reply.
#[derive(Clone, Copy, PartialEq)]
enum Step {
    Connecting,
    Reading,
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: burst\r\nconnection: close\r\n\r\n";

/// Fires `n` non-blocking connects at once and returns each client's time (sorted) and the
/// number that failed or never finished. A client's time runs from just before its `connect`
/// to the end of its handshake, or with `http`, to the end of the response to its request.
fn burst(addr: SocketAddr, n: usize, go: mpsc::Sender<()>, http: bool) -> (Vec<Duration>, usize) {
    let sockets: Vec<Socket> = (0..n)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    go.send(()).unwrap();
    let start = Instant::now();
    let mut pending: Vec<(usize, Step)> = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    for (i, s) in sockets.iter().enumerate() {
        started.push(start.elapsed());
        match s.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => panic!("connect: {e}"),
        }
        pending.push((i, Step::Connecting));
    }
    let mut times = Vec::with_capacity(n);
    let mut failed = 0;
    let mut replies: Vec<Vec<u8>> = vec![Vec::new(); if http { n } else { 0 }];
    while !pending.is_empty() && start.elapsed() < DEADLINE {
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&(i, step)| libc::pollfd {
                fd: sockets[i].as_raw_fd(),
                events: if step == Step::Connecting {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if ready <= 0 {
            continue;
        }
        let now = start.elapsed();
        let mut still = Vec::with_capacity(pending.len());
        for ((i, step), polled) in pending.into_iter().zip(&fds) {
            if polled.revents == 0 {
                still.push((i, step));
                continue;
            }
            let socket = &sockets[i];
            match step {
                Step::Connecting if !matches!(socket.take_error(), Ok(None)) => failed += 1,
                Step::Connecting if !http => times.push(now - started[i]),
                // The request is far smaller than a socket buffer: one send writes it all.
                Step::Connecting => match socket.send(REQUEST) {
                    Ok(sent) if sent == REQUEST.len() => still.push((i, Step::Reading)),
                    _ => failed += 1,
                },
                Step::Reading => {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
                    match socket.recv(&mut buf) {
                        Ok(0) => {
                            let ok = replies[i].starts_with(b"HTTP/1.1 200");
                            if ok {
                                times.push(now - started[i]);
                            } else {
                                failed += 1;
                            }
                        }
                        Ok(got) => {
                            // SAFETY: recv initialised the first `got` bytes.
                            let bytes = unsafe {
                                std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), got)
                            };
                            replies[i].extend_from_slice(bytes);
                            still.push((i, step));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            still.push((i, step))
                        }
                        Err(_) => failed += 1,
                    }
                }
            }
        }
        pending = still;
    }
    failed += pending.len();
    times.sort();
    (times, failed)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn report(config: &Config, place: &str, outcomes: &[Outcome]) {
    println!(
        "burst: {} simultaneous connects on loopback to a server busy for {} ms, in {place}",
        config.n,
        config.stall.as_millis()
    );
    println!();
    println!(
        "{:<38} {:>8} {:>12} {:>10} {:>10} {:>10} {:>9} {:>7}",
        "listener", "backlog", "done@stall", "p50 ms", "p99 ms", "max ms", "accepted", "failed"
    );
    for o in outcomes {
        // An HTTP row's clients finish only once the server serves: nothing during the stall.
        let during_stall = if o.http {
            "-".to_string()
        } else {
            o.during_stall.to_string()
        };
        println!(
            "{:<38} {:>8} {:>12} {:>10} {:>10} {:>10} {:>9} {:>7}",
            o.name,
            o.backlog,
            during_stall,
            ms(o.percentile(50.0)),
            ms(o.percentile(99.0)),
            ms(o.times.last().copied().unwrap_or_default()),
            o.accepted,
            o.failed
        );
    }
    let p99 = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.percentile(99.0).as_secs_f64())
    };
    if let (Some(std), Some(ours)) = (p99("std TcpListener::bind"), p99("maxlisten::bind")) {
        println!();
        println!(
            "p99 connect time, std / maxlisten: {:.1}x ({} ms / {} ms)",
            std / ours.max(1e-9),
            ms(Duration::from_secs_f64(std)),
            ms(Duration::from_secs_f64(ours))
        );
    }
    if let (Some(tokio), Some(ours)) = (p99(AXUM_TOKIO), p99(AXUM_MAXLISTEN)) {
        println!(
            "p99 request time, axum on tokio's bind / on maxlisten: {:.1}x ({} ms / {} ms)",
            tokio / ours.max(1e-9),
            ms(Duration::from_secs_f64(tokio)),
            ms(Duration::from_secs_f64(ours))
        );
    }
    println!(
        "(connect rows: time to the end of the handshake; axum rows: from before connect to the \
         end of the HTTP response)"
    );
    match chart(config, outcomes) {
        Ok(()) => println!("chart: {}", config.svg.display()),
        Err(e) => eprintln!("chart not written: {e}"),
    }
}

/// The share of clients connected (y) by connect time (x, log scale), one line per listener.
fn chart(config: &Config, outcomes: &[Outcome]) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = config.svg.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let all = outcomes.iter().flat_map(|o| o.times.iter());
    let lo = all.clone().min().copied().unwrap_or_default().as_secs_f64() * 1e3;
    let hi = all.max().copied().unwrap_or_default().as_secs_f64() * 1e3;
    let (lo, hi) = ((lo * 0.8).max(0.001), (hi * 1.25).max(lo * 10.0 + 1.0));
    let root = SVGBackend::new(&config.svg, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} simultaneous connects, server busy {} ms",
                config.n,
                config.stall.as_millis()
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(
            "time per client (ms, log scale): to the handshake, or to the HTTP response for axum",
        )
        .y_desc("share of clients connected")
        .draw()?;
    for (i, o) in outcomes.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let n = config.n as f64;
        let points: Vec<(f64, f64)> = o
            .times
            .iter()
            .enumerate()
            .map(|(k, t)| (t.as_secs_f64() * 1e3, (k + 1) as f64 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(format!("{} (backlog {})", o.name, o.backlog))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
