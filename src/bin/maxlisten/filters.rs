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
