//! actix-web on a listener with the system's full accept backlog.
//!
//! ```text
//! cargo run --example actix -- 127.0.0.1:3000          # serve until Ctrl-C
//! cargo run --example actix -- 127.0.0.1:0 --once      # serve one request, exit
//! ```
//!
//! `HttpServer::bind` listens with its own backlog setting (1024 unless `.backlog(n)`);
//! `HttpServer::listen` takes a std listener as it is (it only makes it non-blocking), so a
//! listener from `maxlisten::bind` keeps the system limit.

use actix_web::{web, App, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let once = args.next().as_deref() == Some("--once");

    let listener = maxlisten::bind(&addr)?;

    let backlog = maxlisten::queue_stats(&listener).map(|stats| stats.backlog.to_string());
    println!(
        "actix-web listening on {}, backlog {}",
        listener.local_addr()?,
        backlog.unwrap_or_else(|e| format!("unknown ({e})"))
    );

    let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = HttpServer::new(move || {
        let served = served_tx.clone();
        App::new().route(
            "/",
            web::get().to(move || {
                let _ = served.send(());
                async { "hello from actix-web\n" }
            }),
        )
    })
    .workers(1)
    // was: .bind(&addr)?
    .listen(listener)?
    .run();

    if once {
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            served.recv().await;
            // Graceful: the response in flight is finished first.
            handle.stop(true).await;
        });
    }
    server.await
}
