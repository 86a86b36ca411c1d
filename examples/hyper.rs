//! hyper 1 with hyper-util on a listener with the system's full accept backlog.
//!
//! ```text
//! cargo run --features tokio --example hyper -- 127.0.0.1:3000          # serve until Ctrl-C
//! cargo run --features tokio --example hyper -- 127.0.0.1:0 --once      # serve one connection, exit
//! ```
//!
//! hyper has no listener of its own: the accept loop below is the program's, so the backlog is
//! the one `maxlisten::tokio::bind` applied.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"hello from hyper\n",
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let once = args.next().as_deref() == Some("--once");

    // was: tokio::net::TcpListener::bind(&addr).await?
    let listener = maxlisten::tokio::bind(&addr).await?;

    let backlog = maxlisten::queue_stats(&listener).map(|stats| stats.backlog.to_string());
    println!(
        "hyper listening on {}, backlog {}",
        listener.local_addr()?,
        backlog.unwrap_or_else(|e| format!("unknown ({e})"))
    );

    loop {
        let (stream, _) = listener.accept().await?;
        let serve = async move {
            auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await
        };
        if once {
            return serve.await;
        }
        tokio::spawn(async move {
            if let Err(err) = serve.await {
                eprintln!("connection: {err}");
            }
        });
    }
}
