//! The flags that choose listeners, shared by `survey` and `raise`: one place for each flag.

use std::path::PathBuf;

use maxlisten::select::Selector;
use maxlisten::survey::Proto;

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
}
