//! `maxlisten exporter`: the survey over HTTP for Prometheus, collected at scrape time.
//!
//! hyper serves HTTP/1.1 on a listener made with [`maxlisten::ListenerBuilder`] (so the
//! exporter's own backlog is the limit). Only `GET /metrics` (and `HEAD`) answers 200; other
//! paths 404, other methods 405, and what hyper cannot parse 400 (431 for oversized headers).
//! Robustness, all bounded:
//! - at most [`MAX_CONNECTIONS`] connections are served at once; more wait in the kernel's
//!   accept queue (not in memory here) until one ends;
//! - a client has [`HEADER_TIMEOUT`] to send each request head (an idle keep-alive connection
//!   too), and a connection lives at most [`CONNECTION_LIFETIME`], so silent, slow and
//!   non-reading clients free their slot;
//! - request heads are capped at [`MAX_HEAD`] bytes (hyper's read buffer), bodies are never read;
//! - a response is rendered a piece ([`PIECE`]) at a time as the client reads it, from the one
//!   shared survey: the whole text never sits in memory;
//! - concurrent scrapes share one collection (single flight): however many scrapes arrive, at
//!   most one collection runs, on tokio's blocking pool (one thread), never on the runtime
//!   thread;
//! - failures are said on stderr once per change (not once per scrape), and a failed collection
//!   still answers 200 with `maxlisten_collect_success 0`.

use std::convert::Infallible;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};

use http_body_util::{Either, Full};
use maxlisten::survey::Survey;

use crate::filters::{Filters, Scope};
use crate::render;
use crate::survey::UnreadableSaid;

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    maxlisten exporter\n  \
    maxlisten exporter --listen 127.0.0.1:19974\n  \
    maxlisten exporter --all-namespaces\n  \
    maxlisten exporter --proto tcp\n  \
    curl -s http://127.0.0.1:19974/metrics\n\n\
    The default port, 19974, is outside Prometheus's allocated exporter range (9100-9999, which is\n\
    full). Run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see every owner;\n\
    deploy/ holds a systemd unit and a Kubernetes DaemonSet.";

/// The exporter's default address: every IPv4 address, port 19974.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:19974";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The address to serve /metrics on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    #[command(flatten)]
    scope: Scope,
    /// Only listeners whose backlog is below their namespace's limit.
    #[arg(long)]
    below_limit: bool,
    #[command(flatten)]
    filters: Filters,
}

/// Serves until SIGTERM or SIGINT (status 0); a failure to start is status 1 with the reason.
pub(crate) fn run(args: Args) -> ExitCode {
    let selector = args.filters.selector().below_limit(args.below_limit);
    let scope = args.scope;
    // Each namespace that cannot be read is said on stderr once while it stays so.
    let unread = Mutex::new(UnreadableSaid::default());
    let collect = move || {
        let mut found = scope.survey().map_err(|e| render::chain(&e))?;
        lock(&unread).update(&found, |ns| {
            eprintln!("maxlisten exporter: {ns}; its listeners are missing from /metrics");
        });
        // What the body needs of the listeners goes into `listeners`, and the survey's own
        // (their owners, cgroups and namespaces) are dropped as that is made.
        let listeners = render::prometheus::Listeners::new(
            std::mem::take(&mut found.listeners)
                .into_iter()
                .filter(|l| selector.matches(l)),
        );
        Ok(Collected { found, listeners })
    };
    serve_with(&args.listen, Arc::new(collect))
}

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head (headers included).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection (with keep-alive, many requests) is kept: a client that stops
/// reading its response frees its slot by then (Prometheus reconnects; its scrapes time out
/// at 10 s by default).
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The largest request head read (hyper's minimum buffer is 8 KiB).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The text exposition format, version 0.0.4.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A body is sent in pieces of about this size, rendered as the client reads: the whole text
/// (4 MiB for 10,000 listeners) never sits in memory.
const PIECE: usize = 64 * 1024;

/// What a collection found: the survey's namespaces and what it could not read (`found`,
/// without its listeners), and the samples of the listeners the filters chose.
pub(crate) struct Collected {
    found: Survey,
    listeners: render::prometheus::Listeners,
}

/// One collection's outcome, shared by every scrape that waited for it.
pub(crate) struct Scrape {
    /// The survey, or `None` if the collection failed.
    collected: Option<Collected>,
    /// The exporter's own two families, the end of every body.
    health: Bytes,
}

/// What a collection does (on a blocking thread): the survey, or what failed.
pub(crate) type Collect = dyn Fn() -> Result<Collected, String> + Send + Sync;

/// A response body: the scrape's text, rendered a piece at a time as hyper asks for it.
struct MetricsBody {
    scrape: Arc<Scrape>,
    cursor: render::prometheus::Cursor,
    /// The survey's families are all out; next the health families, then the end.
    rendered: bool,
    health_sent: bool,
}

impl Body for MetricsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let (false, Some(c)) = (this.rendered, &this.scrape.collected) {
            let mut piece = String::with_capacity(PIECE + 512);
            let more = render::prometheus::render(
                &c.found,
                &c.listeners,
                &mut this.cursor,
                &mut piece,
                PIECE,
            );
            this.rendered = !more;
            if !piece.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece)))));
            }
        }
        this.rendered = true;
        if !this.health_sent {
            this.health_sent = true;
            return Poll::Ready(Some(Ok(Frame::data(this.scrape.health.clone()))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.health_sent
    }
}

/// The answer to anything but a scrape: a short text.
type Reply = Either<MetricsBody, Full<Bytes>>;

struct State {
    collect: Arc<Collect>,
    /// The collection in flight, if any: later scrapes wait on it instead of starting another.
    inflight: Mutex<Option<watch::Receiver<Option<Arc<Scrape>>>>>,
    /// The last failure said on stderr ("" when the last collection worked).
    last_error: Mutex<String>,
}

impl State {
    /// The result of the collection in flight, or of a new one.
    async fn scrape(self: &Arc<Self>) -> Arc<Scrape> {
        let mut rx = {
            let mut inflight = lock(&self.inflight);
            match &*inflight {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *inflight = Some(rx.clone());
                    let state = Arc::clone(self);
                    // Its own task: a scrape that gives up does not cancel the collection the
                    // others wait for, and no second one starts meanwhile.
                    tokio::spawn(async move {
                        let scrape = Arc::new(state.collect_once().await);
                        *lock(&state.inflight) = None;
                        let _ = tx.send(Some(scrape));
                    });
                    rx
                }
            }
        };
        let done = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| v.clone());
        // None: the task ended without sending, which happens only when the runtime stops.
        done.unwrap_or_else(|| {
            Arc::new(self.health(Err("the collection was abandoned".into()), 0.0))
        })
    }

    async fn collect_once(&self) -> Scrape {
        let collect = Arc::clone(&self.collect);
        let started = Instant::now();
        let result = match tokio::task::spawn_blocking(move || collect()).await {
            Ok(result) => result,
            Err(join) => Err(format!("the collection panicked: {join}")),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.health(result, seconds)
    }

    /// The scrape: what was collected (if anything) and the exporter's own two families.
    fn health(&self, result: Result<Collected, String>, seconds: f64) -> Scrape {
        let success = u8::from(result.is_ok());
        let collected = match result {
            Ok(collected) => {
                let mut last = lock(&self.last_error);
                if !last.is_empty() {
                    eprintln!("maxlisten exporter: collection works again");
                    last.clear();
                }
                Some(collected)
            }
            Err(error) => {
                let mut last = lock(&self.last_error);
                if *last != error {
                    eprintln!("maxlisten exporter: collection failed: {error}");
                    *last = error;
                }
                None
            }
        };
        let health = format!(
            "# HELP maxlisten_collect_duration_seconds How long this scrape's collection took.\n\
             # TYPE maxlisten_collect_duration_seconds gauge\n\
             maxlisten_collect_duration_seconds {seconds}\n\
             # HELP maxlisten_collect_success 1 if the collection succeeded, 0 if it failed.\n\
             # TYPE maxlisten_collect_success gauge\n\
             maxlisten_collect_success {success}\n"
        );
        Scrape {
            collected,
            health: Bytes::from(health),
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the data (an Option, a String) is still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Reply>, Infallible> {
    let response = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
            body.as_bytes(),
        ))));
        *r.status_mut() = status;
        r
    };
    if request.uri().path() != "/metrics" {
        return Ok(response(
            StatusCode::NOT_FOUND,
            "not found: maxlisten serves /metrics\n",
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: GET /metrics\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let scrape = state.scrape().await;
    let mut r = Response::new(Either::Left(MetricsBody {
        scrape,
        cursor: render::prometheus::Cursor::default(),
        rendered: false,
        health_sent: false,
    }));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT));
    Ok(r)
}

/// Serves `collect` on `listen` until SIGTERM or SIGINT.
fn serve_with(listen: &str, collect: Arc<Collect>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Single flight: one collection at a time needs one blocking thread.
        .max_blocking_threads(1)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("maxlisten exporter: start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(listen, collect))
}

async fn serve(listen: &str, collect: Arc<Collect>) -> ExitCode {
    // The exporter's own listener gets the largest backlog the kernel allows.
    let bound = maxlisten::ListenerBuilder::new()
        .nonblocking(true)
        .bind(listen);
    let listener = match bound.map(|l| (l.backlog().applied(), l.into_std())) {
        Ok((backlog, std)) => match tokio::net::TcpListener::from_std(std) {
            Ok(listener) => {
                let addr = listener
                    .local_addr()
                    .map_or_else(|_| listen.to_string(), |a| a.to_string());
                let backlog = backlog.map_or("unknown".into(), |b| b.to_string());
                eprintln!("maxlisten exporter: serving http://{addr}/metrics (backlog {backlog})");
                listener
            }
            Err(err) => {
                eprintln!("maxlisten exporter: listen on {listen}: {err}");
                return ExitCode::FAILURE;
            }
        },
        Err(err) => {
            eprintln!("maxlisten exporter: listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    serve_on(listener, collect).await
}

/// Serves `collect` on `listener` until SIGTERM or SIGINT.
async fn serve_on(listener: tokio::net::TcpListener, collect: Arc<Collect>) -> ExitCode {
    let state = Arc::new(State {
        collect,
        inflight: Mutex::new(None),
        last_error: Mutex::new(String::new()),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);

    let stop = shutdown();
    tokio::pin!(stop);
    loop {
        // Wait for a free slot before accepting: extra clients wait in the kernel's queue.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return ExitCode::FAILURE, // the semaphore is never closed
            },
            () = &mut stop => return ExitCode::SUCCESS,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE, ENOBUFS, ...: say it, and do not spin.
                    eprintln!("maxlisten exporter: accept: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut stop => return ExitCode::SUCCESS,
        };
        let state = Arc::clone(&state);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| handle(Arc::clone(&state), request)),
        );
        tokio::spawn(async move {
            // Errors of one client (timeouts, garbage, resets) are that client's: hyper has
            // already answered 400/431 where it could; nothing to say on stderr.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!(
                "maxlisten exporter: cannot watch SIGTERM/SIGINT ({err}); stop it with SIGKILL"
            );
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Serves `collect` on a loopback port in a thread of its own (a runtime like the
    /// exporter's); the port.
    fn start(collect: Arc<Collect>) -> u16 {
        let std = maxlisten::ListenerBuilder::new()
            .nonblocking(true)
            .bind("127.0.0.1:0")
            .unwrap()
            .into_std();
        let port = std.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(1)
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std).unwrap();
                serve_on(listener, collect).await
            })
        });
        port
    }

    fn scrape(port: u16) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn a_failed_collection_answers_with_success_0() {
        let port = start(Arc::new(|| {
            Err("sock_diag inet dump: Permission denied".into())
        }));
        for _ in 0..3 {
            let text = scrape(port);
            assert!(text.starts_with("HTTP/1.0 200"), "{text}");
            assert!(text.contains("\nmaxlisten_collect_success 0\n"), "{text}");
            assert!(!text.contains("maxlisten_listener_backlog"), "{text}");
        }
    }

    #[test]
    fn a_collection_that_panics_does_not_stop_the_exporter() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let port = start(Arc::new(move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("a bug in a collection")
        }));
        for _ in 0..3 {
            let text = scrape(port);
            assert!(text.contains("\nmaxlisten_collect_success 0\n"), "{text}");
        }
        // Each scrape collected again: the panic did not wedge the single flight.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
