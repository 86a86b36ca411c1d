//! Survey data to text: plain functions, no system calls, unit-tested as any user.

pub(crate) mod json;
pub(crate) mod prometheus;
pub(crate) mod table;

/// An error and its causes, each once: `what failed: why: the OS error`. A cause whose text the
/// message already holds is not repeated.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod chain_tests {
    #[test]
    fn each_cause_once() {
        let err = maxlisten::netns::Netns::named("surely-not-a-netns").unwrap_err();
        let text = super::chain(&err);
        assert!(
            text.starts_with("network namespace /run/netns/surely-not-a-netns: open"),
            "{text}"
        );
        let os = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert_eq!(text.matches(&os).count(), 1, "{text}");
    }
}

/// Test data from the real kernel: this process's own listeners (a TCP one, and Unix ones at
/// paths that need escaping), found by a survey of its own namespace, which needs no
/// privilege.
#[cfg(test)]
pub(crate) mod sample {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    use maxlisten::select::Selector;
    use maxlisten::survey::{ListenerInfo, Survey};

    /// Listeners kept open while the test looks at the survey.
    pub(crate) struct Sample {
        pub(crate) survey: Survey,
        pub(crate) dir: PathBuf,
        _tcp: std::net::TcpListener,
        _unix: Vec<UnixListener>,
    }

    impl Sample {
        /// This process's listeners, in survey order.
        pub(crate) fn mine(&self) -> Vec<&ListenerInfo> {
            let me = Selector::new().pid(std::process::id());
            let dir = self.dir.to_string_lossy().into_owned();
            self.survey
                .listeners
                .iter()
                .filter(|l| me.matches(l))
                // Only this sample's (other tests of the binary bind their own meanwhile).
                .filter(|l| {
                    l.local.as_socket_addr() == self._tcp.local_addr().ok()
                        || l.local.to_string().starts_with(&dir)
                })
                .collect()
        }
    }

    /// The names the Unix listeners are bound at, inside a fresh directory.
    pub(crate) const NAMES: [&[u8]; 3] =
        [b"plain.sock", b"q\"uote\\back\nline.sock", b"bad\xff.sock"];

    pub(crate) fn make(test: &str) -> Sample {
        let dir =
            std::env::temp_dir().join(format!("maxlisten-render-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let unix = NAMES
            .iter()
            .map(|name| UnixListener::bind(dir.join(std::ffi::OsStr::from_bytes(name))).unwrap())
            .collect();
        let survey = maxlisten::survey::survey().unwrap();
        Sample {
            survey,
            dir,
            _tcp: tcp,
            _unix: unix,
        }
    }

    impl Drop for Sample {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
