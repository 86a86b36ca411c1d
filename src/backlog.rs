//! The backlog report: what was asked, what the kernel applied, and how that is known.

use std::fmt;

/// How [`Backlog::applied`] is known.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BacklogSource {
    /// Read back from the kernel for this very socket: Linux and Android `TCP_INFO`
    /// (`tcpi_sacked` of a listening socket), FreeBSD `SO_LISTENQLIMIT`, Apple
    /// `proc_pidfdinfo` (`soi_qlimit`).
    Kernel,
    /// Computed from the system limit as it is now (a sysctl) and the kernel's clamping rule,
    /// where the kernel offers no per-socket reading (OpenBSD, NetBSD, Apple when
    /// `proc_pidfdinfo` fails, Linux for a socket that is not TCP). The limit is read when the
    /// report is made, so a limit changed since the last `listen(2)` makes this figure wrong
    /// until the backlog is applied again.
    SystemLimit,
    /// This platform cannot tell (Windows, illumos and the rest): [`Backlog::applied`] is `None`.
    /// On Windows the `Display` line of the [`Backlog`] says what was passed to `listen`: a
    /// request above 200 as `SOMAXCONN_HINT(min(request, 65535))`, which Windows adjusts into
    /// 200..=65535 (a plain `i32::MAX` would be Windows' `SOMAXCONN`, about 200).
    Unknown,
}

impl fmt::Display for BacklogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BacklogSource::Kernel => "reported by the kernel",
            BacklogSource::SystemLimit => "derived from the system limit",
            BacklogSource::Unknown => "the platform cannot report it",
        })
    }
}

/// The backlog of a listening socket: what was requested and what the kernel applied.
///
/// Made by [`Listener::backlog`](crate::Listener::backlog) and by the functions that change a
/// backlog ([`set_backlog`](crate::set_backlog), [`Listener::refresh_backlog`](crate::Listener::refresh_backlog)).
/// Its `Display` is a line for a log:
///
/// ```
/// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
/// let backlog = listener.backlog();
/// println!("accept backlog: {backlog}");
/// // e.g. "accept backlog: 4096 (requested 2147483647, capped by the system limit; reported by the kernel)"
/// assert_eq!(backlog.requested(), i32::MAX as u32);
/// if let Some(applied) = backlog.applied() {
///     assert!(applied <= backlog.requested());
///     assert_eq!(backlog.is_clamped(), applied < backlog.requested());
/// }
/// # Ok::<(), maxlisten::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backlog {
    requested: u32,
    applied: Option<u32>,
    source: BacklogSource,
}

impl Backlog {
    /// Makes a report. `applied` must be `None` exactly when `source` is `Unknown`.
    pub(crate) fn new(requested: u32, applied: Option<u32>, source: BacklogSource) -> Backlog {
        debug_assert_eq!(applied.is_none(), source == BacklogSource::Unknown);
        Backlog {
            requested,
            applied,
            source,
        }
    }

    /// A report derived from the system limit by the kernel's clamping `rule` (given the limit),
    /// or unknown when there is no limit to derive from.
    #[allow(dead_code)] // platforms without a limit never derive
    pub(crate) fn derived(
        requested: u32,
        limit: Option<u32>,
        rule: impl FnOnce(u32) -> u32,
    ) -> Backlog {
        match limit {
            Some(limit) => Backlog::new(requested, Some(rule(limit)), BacklogSource::SystemLimit),
            None => Backlog::new(requested, None, BacklogSource::Unknown),
        }
    }

    /// The backlog the caller asked for: `i32::MAX` (2147483647) unless
    /// [`ListenerBuilder::backlog`](crate::ListenerBuilder::backlog) or
    /// [`set_backlog`](crate::set_backlog) said otherwise.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().backlog(7).bind("127.0.0.1:0")?;
    /// assert_eq!(listener.backlog().requested(), 7);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn requested(&self) -> u32 {
        self.requested
    }

    /// The backlog the kernel applied, or `None` when this platform cannot tell
    /// ([`BacklogSource::Unknown`]).
    ///
    /// On Linux a listener with backlog *n* holds *n* + 1 connections before the kernel drops
    /// SYNs; on FreeBSD and Apple up to about 1.5 × *n*.
    ///
    /// ```
    /// let listener = maxlisten::ListenerBuilder::new().backlog(7).bind("127.0.0.1:0")?;
    /// # #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    /// assert_eq!(listener.backlog().applied(), Some(7));
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn applied(&self) -> Option<u32> {
        self.applied
    }

    /// How [`applied`](Self::applied) is known.
    ///
    /// ```
    /// use maxlisten::BacklogSource;
    ///
    /// let listener = maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")?;
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(listener.backlog().source(), BacklogSource::Kernel);
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn source(&self) -> BacklogSource {
        self.source
    }

    /// `true` when the applied backlog is known and below the requested one: the system limit
    /// (or, on kernels that store fewer bits, this crate's guard) lowered it.
    ///
    /// With the default request of `i32::MAX` this is the normal case; a small explicit
    /// request is not clamped.
    ///
    /// ```
    /// let small = maxlisten::ListenerBuilder::new().backlog(1).bind("127.0.0.1:0")?;
    /// assert!(!small.backlog().is_clamped());
    /// # Ok::<(), maxlisten::Error>(())
    /// ```
    pub fn is_clamped(&self) -> bool {
        self.applied.is_some_and(|applied| applied < self.requested)
    }
}

impl fmt::Display for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requested = self.requested;
        match self.applied {
            None => match crate::sys::listen_note(requested) {
                // Windows: say what was passed, since nothing comes back.
                Some(note) => write!(
                    f,
                    "unknown (requested {requested}, {note}; {})",
                    self.source
                ),
                None => write!(f, "unknown (requested {requested}; {})", self.source),
            },
            Some(applied) if applied < requested => write!(
                f,
                "{applied} (requested {requested}, capped by the system limit; {})",
                self.source
            ),
            Some(applied) if applied > requested => write!(
                f,
                "{applied} (requested {requested}, raised by the kernel; {})",
                self.source
            ),
            Some(applied) => write!(f, "{applied} (as requested; {})", self.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_each_case() {
        let capped = Backlog::new(i32::MAX as u32, Some(4096), BacklogSource::Kernel);
        assert_eq!(
            capped.to_string(),
            "4096 (requested 2147483647, capped by the system limit; reported by the kernel)"
        );
        assert!(capped.is_clamped());
        let exact = Backlog::new(7, Some(7), BacklogSource::SystemLimit);
        assert_eq!(
            exact.to_string(),
            "7 (as requested; derived from the system limit)"
        );
        assert!(!exact.is_clamped());
        let raised = Backlog::new(5, Some(80), BacklogSource::SystemLimit);
        assert!(raised.to_string().contains("raised by the kernel"));
        assert!(!raised.is_clamped());
        let unknown = Backlog::new(9, None, BacklogSource::Unknown);
        assert_eq!(
            unknown.to_string(),
            if cfg!(windows) {
                "unknown (requested 9, passed as 9; the platform cannot report it)"
            } else {
                "unknown (requested 9; the platform cannot report it)"
            }
        );
        assert!(!unknown.is_clamped());
    }
}
