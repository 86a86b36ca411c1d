//! The flags that choose listeners and namespaces, shared by `survey` and `raise`: one place
//! for each flag.

use std::path::PathBuf;

use maxlisten::netns::Netns;
use maxlisten::select::Selector;
use maxlisten::survey::{self, Proto, Survey};

/// Which network namespaces to survey: the caller's (no flag), one, or all.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct Scope {
    /// Every network namespace on the host: every process's and thread's, and those kept under
    /// /run/netns (needs CAP_SYS_ADMIN and CAP_SYS_PTRACE: root, with the host's PID namespace).
    #[arg(long, conflicts_with = "netns")]
    all_namespaces: bool,
    /// One network namespace: a pid (that process's), a path (/proc/PID/ns/net,
    /// /run/netns/NAME, any nsfs file) or an `ip netns` name (needs CAP_SYS_ADMIN unless it is
    /// this process's own).
    #[arg(long, value_name = "NS")]
    netns: Option<String>,
}

impl Scope {
    /// The survey these flags ask for.
    pub(crate) fn survey(&self) -> Result<Survey, maxlisten::Error> {
        match (&self.netns, self.all_namespaces) {
            (Some(ns), _) => survey::survey_netns(&Netns::parse(ns)?),
            (None, true) => survey::survey_all(),
            (None, false) => survey::survey(),
        }
    }
}

impl Scope {
    /// The flags as given (`--netns blue`, `--all-namespaces`), for messages; none for the
    /// caller's own namespace.
    pub(crate) fn flags(&self) -> Vec<String> {
        match (&self.netns, self.all_namespaces) {
            (Some(ns), _) => vec!["--netns".into(), word(ns)],
            (None, true) => vec!["--all-namespaces".into()],
            (None, false) => Vec::new(),
        }
    }
}

/// A flag's value as a shell would need it typed: as is when plain, else single-quoted, with
/// control characters escaped so that a message stays one line.
pub(crate) fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        return text.to_owned();
    }
    let quoted = text.replace('\'', "'\\''");
    format!("'{}'", crate::render::table::cell(&quoted))
}

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Filters {
    /// Listeners held by this process.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// With --pid: only this descriptor of it.
    #[arg(long, requires = "pid")]
    pub(crate) fd: Option<i32>,
    /// TCP listeners on this port.
    #[arg(long)]
    port: Option<u16>,
    /// The Unix listener at this path.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Only TCP or only Unix listeners.
    #[arg(long, value_parser = ["tcp", "unix"])]
    proto: Option<String>,
    /// Listeners bound to this network device (SO_BINDTODEVICE, or an IPv6 link-local
    /// address's scope), by its name in the listener's namespace.
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
}

impl Filters {
    /// The flags as given (`--pid 7 --fd 3 --port 80`), for messages.
    pub(crate) fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut flag = |name: &str, value: String| {
            flags.push(name.to_owned());
            flags.push(value);
        };
        if let Some(pid) = self.pid {
            flag("--pid", pid.to_string());
        }
        if let Some(fd) = self.fd {
            flag("--fd", fd.to_string());
        }
        if let Some(port) = self.port {
            flag("--port", port.to_string());
        }
        if let Some(path) = &self.path {
            flag("--path", word(&path.to_string_lossy()));
        }
        if let Some(proto) = &self.proto {
            flag("--proto", proto.clone());
        }
        if let Some(device) = &self.device {
            flag("--device", word(device));
        }
        flags
    }

    /// Whether these flags name particular listeners (`--pid`, `--fd`, `--port`, `--path`), as
    /// `--proto` and `--device` alone do not: finding none of those is a failure.
    pub(crate) fn names_listeners(&self) -> bool {
        self.pid.is_some() || self.fd.is_some() || self.port.is_some() || self.path.is_some()
    }

    /// The library selector these flags describe.
    pub(crate) fn selector(&self) -> Selector {
        let mut selector = Selector::new();
        if let Some(pid) = self.pid {
            selector = selector.pid(pid);
        }
        if let Some(fd) = self.fd {
            selector = selector.fd(fd);
        }
        if let Some(port) = self.port {
            selector = selector.port(port);
        }
        if let Some(path) = &self.path {
            selector = selector.path(path);
        }
        if let Some(device) = &self.device {
            selector = selector.device(device);
        }
        match self.proto.as_deref() {
            Some("tcp") => selector.proto(Proto::Tcp),
            Some("unix") => selector.proto(Proto::Unix),
            _ => selector,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        filters: Filters,
    }

    fn selector(args: &[&str]) -> Selector {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .filters
            .selector()
    }

    #[test]
    fn each_flag_sets_its_criterion() {
        assert_eq!(selector(&[]), Selector::new());
        assert_eq!(selector(&["--pid", "7"]), Selector::new().pid(7));
        assert_eq!(
            selector(&["--pid", "7", "--fd", "3"]),
            Selector::new().pid(7).fd(3)
        );
        assert_eq!(selector(&["--port", "80"]), Selector::new().port(80));
        assert_eq!(
            selector(&["--path", "/run/a"]),
            Selector::new().path("/run/a")
        );
        assert_eq!(
            selector(&["--proto", "unix"]),
            Selector::new().proto(Proto::Unix)
        );
        assert_eq!(
            selector(&["--proto", "tcp"]),
            Selector::new().proto(Proto::Tcp)
        );
        assert_eq!(
            selector(&["--device", "eth0"]),
            Selector::new().device("eth0")
        );
        // --fd alone, an unknown protocol, a port out of range: usage errors.
        for bad in [
            &["--fd", "3"][..],
            &["--proto", "udp"],
            &["--port", "70000"],
        ] {
            let args = std::iter::once("t").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_are_echoed_as_given() {
        let cli = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .unwrap()
                .filters
                .flags()
                .join(" ")
        };
        assert_eq!(cli(&[]), "");
        assert_eq!(cli(&["--port", "8000"]), "--port 8000");
        assert_eq!(
            cli(&["--fd", "3", "--pid", "7", "--proto", "tcp"]),
            "--pid 7 --fd 3 --proto tcp"
        );
        assert_eq!(
            cli(&["--path", "/run/my app's.sock"]),
            "--path '/run/my app'\\''s.sock'"
        );
        assert_eq!(cli(&["--device", "a\nb"]), "--device 'a\\nb'");
        let scope = |args: &[&str]| {
            ScopeCli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .unwrap()
                .scope
                .flags()
                .join(" ")
        };
        assert_eq!(scope(&[]), "");
        assert_eq!(scope(&["--netns", "blue"]), "--netns blue");
        assert_eq!(
            scope(&["--netns", "/run/netns/blue"]),
            "--netns /run/netns/blue"
        );
        assert_eq!(scope(&["--all-namespaces"]), "--all-namespaces");
    }

    #[derive(Parser)]
    struct ScopeCli {
        #[command(flatten)]
        scope: Scope,
    }

    #[test]
    fn one_namespace_or_all_not_both() {
        let parse = |args: &[&str]| {
            ScopeCli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .map(|c| (c.scope.netns, c.scope.all_namespaces))
        };
        assert_eq!(parse(&[]).unwrap(), (None, false));
        assert_eq!(parse(&["--all-namespaces"]).unwrap(), (None, true));
        assert_eq!(
            parse(&["--netns", "blue"]).unwrap(),
            (Some("blue".into()), false)
        );
        assert!(parse(&["--all-namespaces", "--netns", "blue"]).is_err());
        assert!(parse(&["--netns"]).is_err());
    }
}
