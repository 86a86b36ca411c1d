//! The drop-in for tokio: [`bind`] has the signature of [`tokio::net::TcpListener::bind`].
//! Requires the `tokio` feature.
//!
//! Since mio 1.2, tokio's `TcpListener::bind` passes a fixed 128 to `listen(2)`. Replace it with
//! `maxlisten::tokio::bind` and the listener gets the system limit instead; nothing else
//! changes. Frameworks that take a `tokio::net::TcpListener` (axum's `serve`, hyper-util's
//! accept loops, tonic's `serve_with_incoming`) keep the backlog it was made with.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // was: let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let listener = maxlisten::tokio::bind("127.0.0.1:0").await?;
//! # #[cfg(target_os = "linux")]
//! assert_eq!(Some(maxlisten::queue_stats(&listener).unwrap().backlog), maxlisten::system_limit());
//! # Ok(())
//! # }
//! ```

use std::io;

use ::tokio::net::{TcpListener, ToSocketAddrs};

use crate::ListenerBuilder;

/// A drop-in for [`tokio::net::TcpListener::bind`]: the same signature and resolution, the
/// largest backlog the kernel allows instead of 128.
///
/// The address is resolved as tokio resolves it, through [`tokio::net::lookup_host`] (a literal
/// address at once, a host name on tokio's blocking pool), and every address is tried in
/// order until one binds. With options, use [`ListenerBuilder::bind_tokio`].
///
/// # Errors
///
/// The [`io::Error`] has the kind tokio's would have for the same input, a message that names
/// the address, and the detailed [`Error`](crate::Error) inside (see [`crate::bind`]).
/// Outside a tokio runtime it is an error of kind `Other` (tokio would panic).
///
/// # Panics
///
/// In a runtime built without the IO driver, as tokio's `bind` does.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = maxlisten::tokio::bind("localhost:0").await?;
/// let addr = listener.local_addr()?;
/// let server = tokio::spawn(async move {
///     let (mut stream, _) = listener.accept().await?;
///     stream.write_all(b"hello").await
/// });
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// let mut buf = String::new();
/// client.read_to_string(&mut buf).await?;
/// assert_eq!(buf, "hello");
/// server.await.unwrap()?;
/// # Ok(())
/// # }
/// ```
pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
    match ListenerBuilder::new().bind_tokio(addr).await {
        Ok(listener) => Ok(listener),
        Err(err) => Err(err.into()),
    }
}
