//! axum on a listener with the system's full accept backlog: one token changed.
//!
//! ```text
//! cargo run --features tokio --example axum -- 127.0.0.1:3000          # serve until Ctrl-C
//! cargo run --features tokio --example axum -- 127.0.0.1:0 --once      # serve one request, exit
//! ```
//!
//! `axum::serve` takes the `tokio::net::TcpListener` as it is and never calls `listen` again, so
//! the backlog `maxlisten::tokio::bind` applied is the one axum serves with.

use std::sync::Arc;

use axum::{routing::get, Router};
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let once = args.next().as_deref() == Some("--once");

    // was: tokio::net::TcpListener::bind(&addr).await?
    let listener = maxlisten::tokio::bind(&addr).await?;

    let backlog = maxlisten::queue_stats(&listener).map(|stats| stats.backlog.to_string());
    println!(
        "axum listening on {}, backlog {}",
        listener.local_addr()?,
        backlog.unwrap_or_else(|e| format!("unknown ({e})"))
    );

    let served = Arc::new(Notify::new());
    let done = Arc::clone(&served);
    let app = Router::new().route(
        "/",
        get(move || async move {
            done.notify_one();
            "hello from axum\n"
        }),
    );
    let server = axum::serve(listener, app);
    if once {
        // Graceful: the response in flight is finished before the server returns.
        server
            .with_graceful_shutdown(async move { served.notified().await })
            .await
    } else {
        server.await
    }
}
