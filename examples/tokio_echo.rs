//! An echo server on tokio, bound with maxlisten.
//!
//! ```text
//! cargo run --features tokio --example tokio_echo -- 127.0.0.1:7000   # serve until Ctrl-C
//! cargo run --features tokio --example tokio_echo -- --demo           # echo once to itself, exit
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    let demo = arg.as_deref() == Some("--demo");
    let addr = arg
        .filter(|_| !demo)
        .unwrap_or_else(|| "127.0.0.1:0".into());

    // With options; names are resolved off the runtime's thread, as tokio does.
    let listener = maxlisten::ListenerBuilder::new()
        .tcp_nodelay(true)
        .bind_tokio(addr.as_str())
        .await?;
    println!("listening on {}", listener.local_addr()?);
    // The tokio listener answers the runtime calls: the applied backlog and the queue.
    if let Ok(stats) = maxlisten::queue_stats(&listener) {
        println!("accept queue: {stats}");
    }

    if demo {
        let addr = listener.local_addr()?;
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(b"hello, backlog").await?;
            stream.shutdown().await?;
            let mut echoed = String::new();
            stream.read_to_string(&mut echoed).await?;
            Ok::<_, std::io::Error>(echoed)
        });
        let (stream, _) = listener.accept().await?;
        echo(stream).await?;
        println!("echoed: {}", client.await??);
        return Ok(());
    }

    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(err) = echo(stream).await {
                eprintln!("{peer}: {err}");
            }
        });
    }
}

async fn echo(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.split();
    tokio::io::copy(&mut reader, &mut writer).await?;
    Ok(())
}
