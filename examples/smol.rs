//! smol (async-io) on a listener with the system's full accept backlog.
//!
//! ```text
//! cargo run --example smol -- 127.0.0.1:3000          # serve until Ctrl-C
//! cargo run --example smol -- 127.0.0.1:0 --once      # serve one request, exit
//! ```
//!
//! `smol::net::TcpListener::bind` listens through std (128). `TcpListener::try_from` takes a
//! std listener as it is, so one from `maxlisten::bind` keeps the system limit. The HTTP here is
//! the least that answers a `GET`: smol has no HTTP server of its own.

use smol::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use smol::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let once = args.next().as_deref() == Some("--once");

    smol::block_on(async {
        // was: smol::net::TcpListener::bind(&addr).await?
        let listener = TcpListener::try_from(maxlisten::bind(&addr)?)?;

        let backlog = maxlisten::queue_stats(&listener).map(|stats| stats.backlog.to_string());
        println!(
            "smol listening on {}, backlog {}",
            listener.local_addr()?,
            backlog.unwrap_or_else(|e| format!("unknown ({e})"))
        );

        loop {
            let (stream, _) = listener.accept().await?;
            if once {
                return respond(stream).await;
            }
            smol::spawn(async move {
                if let Err(err) = respond(stream).await {
                    eprintln!("connection: {err}");
                }
            })
            .detach();
        }
    })
}

/// Reads the request head and answers with a short body.
async fn respond(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.clone());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
    }
    let body = "hello from smol\n";
    let mut stream = stream;
    stream
        .write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    stream.flush().await
}
