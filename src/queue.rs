//! A reading of a listener's accept queue.

use std::fmt;

/// How full a listener's accept queue is, read from the kernel in one go.
///
/// Made by [`queue_stats`](crate::queue_stats) and [`Listener::queue_stats`](crate::Listener::queue_stats).
/// Cheap enough to sample every second and export as metrics: on Linux it is two `getsockopt`
/// calls for a TCP listener (`TCP_INFO` and `SO_MEMINFO`). Export `queued` and `backlog` as
/// gauges and `drops` as a counter.
///
/// ```
/// let listener = maxlisten::bind("127.0.0.1:0")?;
/// # #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_vendor = "apple"))]
/// # {
/// let stats = maxlisten::queue_stats(&listener)?;
/// assert_eq!(stats.queued, 0);
/// println!("accept queue: {stats}");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueStats {
    /// Connections that finished their handshake and wait for `accept()`.
    pub queued: u32,
    /// The backlog the kernel applies to this listener now.
    pub backlog: u32,
    /// Every SYN (and final ACK of a handshake) the kernel dropped on this listener, since it
    /// was made: a counter. It is the per-socket form of the namespace-wide `ListenDrops`
    /// (`tcp_listendrop()` bumps both), so it counts every reason a listener drops a
    /// handshake, not only a full accept queue (which `ListenOverflows` counts, namespace-wide):
    /// also a full SYN queue without syncookies, no memory for the request, a route or a
    /// security hook that refused it. A drop count that grows while `queued` stays below
    /// `backlog` points to those other reasons.
    ///
    /// Linux 4.12+ reads it with `SO_MEMINFO` (`SK_MEMINFO_DROPS`); `None` on other
    /// platforms, on older kernels, and for Unix listeners (a full Unix queue refuses or delays
    /// the client's `connect` instead).
    pub drops: Option<u64>,
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} queued of backlog {}", self.queued, self.backlog)?;
        match self.drops {
            Some(drops) => write!(f, ", {drops} dropped"),
            None => Ok(()),
        }
    }
}
