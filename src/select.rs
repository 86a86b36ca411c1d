//! Choosing listeners of a [`survey`](crate::survey): by owner (pid, descriptor), port, path,
//! protocol, network namespace, bound device, or being below the limit. `maxlisten survey` filters with it,
//! and `maxlisten raise` picks what to raise with it.
//!
//! Every criterion that is set must hold; a selector with none set chooses every listener.
//!
//! ```
//! use maxlisten::select::Selector;
//! use maxlisten::survey::Proto;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // std: 128
//! let port = listener.local_addr()?.port();
//! let mine = Selector::new().pid(std::process::id()).port(port).proto(Proto::Tcp);
//! let found = maxlisten::survey::listeners()?;
//! let chosen: Vec<_> = found.iter().filter(|l| mine.matches(l)).collect();
//! assert_eq!(chosen.len(), 1);
//! assert_eq!(chosen[0].local.as_socket_addr(), Some(listener.local_addr()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::survey::{ListenerInfo, Owner, Proto};
use crate::Address;

/// Which listeners to choose. See the [module](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pid: Option<u32>,
    fd: Option<RawFd>,
    port: Option<u16>,
    path: Option<PathBuf>,
    proto: Option<Proto>,
    netns: Option<u64>,
    device: Option<String>,
    below_limit: bool,
}

impl Selector {
    /// A selector that chooses every listener.
    ///
    /// ```
    /// assert!(maxlisten::select::Selector::new().is_empty());
    /// ```
    pub fn new() -> Selector {
        Selector::default()
    }

    /// Listeners held by process `pid`.
    ///
    /// ```
    /// let only_mine = maxlisten::select::Selector::new().pid(std::process::id());
    /// assert!(!only_mine.is_empty());
    /// ```
    pub fn pid(mut self, pid: u32) -> Selector {
        self.pid = Some(pid);
        self
    }

    /// Listeners held as descriptor `fd` (with [`pid`](Self::pid): that process's descriptor).
    ///
    /// ```
    /// let third = maxlisten::select::Selector::new().pid(1).fd(3);
    /// assert_eq!(third.chosen_fd(), Some(3));
    /// ```
    pub fn fd(mut self, fd: RawFd) -> Selector {
        self.fd = Some(fd);
        self
    }

    /// TCP listeners on local port `port`.
    ///
    /// ```
    /// let web = maxlisten::select::Selector::new().port(8080);
    /// # let _ = web;
    /// ```
    pub fn port(mut self, port: u16) -> Selector {
        self.port = Some(port);
        self
    }

    /// The Unix listener bound at `path` (compared as the kernel reports the path).
    ///
    /// ```
    /// let app = maxlisten::select::Selector::new().path("/run/app.sock");
    /// # let _ = app;
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Selector {
        self.path = Some(path.into());
        self
    }

    /// Listeners of one protocol.
    ///
    /// ```
    /// let unix = maxlisten::select::Selector::new().proto(maxlisten::survey::Proto::Unix);
    /// # let _ = unix;
    /// ```
    pub fn proto(mut self, proto: Proto) -> Selector {
        self.proto = Some(proto);
        self
    }

    /// Listeners of the network namespace with this inode
    /// ([`ListenerInfo::netns`](crate::survey::ListenerInfo::netns)).
    ///
    /// ```
    /// let host = maxlisten::select::Selector::new().netns(4026531840);
    /// # let _ = host;
    /// ```
    pub fn netns(mut self, inode: u64) -> Selector {
        self.netns = Some(inode);
        self
    }

    /// Listeners bound to the network device `name` (`SO_BINDTODEVICE`, or the scope of an
    /// IPv6 link-local address: [`ListenerInfo::device`](crate::survey::ListenerInfo::device)).
    ///
    /// ```
    /// let on_eth0 = maxlisten::select::Selector::new().device("eth0");
    /// # let _ = on_eth0;
    /// ```
    pub fn device(mut self, name: impl Into<String>) -> Selector {
        self.device = Some(name.into());
        self
    }

    /// Only listeners whose backlog is below their namespace's limit (with `false`, drops the
    /// criterion).
    ///
    /// ```
    /// let low = maxlisten::select::Selector::new().below_limit(true);
    /// assert!(!low.is_empty());
    /// ```
    pub fn below_limit(mut self, below: bool) -> Selector {
        self.below_limit = below;
        self
    }

    /// Whether no criterion is set (so every listener is chosen).
    ///
    /// ```
    /// assert!(!maxlisten::select::Selector::new().port(80).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Selector::default()
    }

    /// The process the selector names, if any.
    ///
    /// ```
    /// assert_eq!(maxlisten::select::Selector::new().pid(7).chosen_pid(), Some(7));
    /// ```
    pub fn chosen_pid(&self) -> Option<u32> {
        self.pid
    }

    /// The descriptor the selector names, if any.
    ///
    /// ```
    /// assert_eq!(maxlisten::select::Selector::new().chosen_fd(), None);
    /// ```
    pub fn chosen_fd(&self) -> Option<RawFd> {
        self.fd
    }

    /// Whether `listener` meets every criterion.
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let found = maxlisten::survey::listeners()?;
    /// let by_port = maxlisten::select::Selector::new().port(port);
    /// assert_eq!(found.iter().filter(|l| by_port.matches(l)).count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches(&self, listener: &ListenerInfo) -> bool {
        let by_owner =
            (self.pid.is_none() && self.fd.is_none()) || self.owners(listener).next().is_some();
        let by_port = self
            .port
            .is_none_or(|port| matches!(listener.local, Address::Inet(a) if a.port() == port));
        let by_path = self
            .path
            .as_ref()
            .is_none_or(|path| matches!(&listener.local, Address::Path(p) if p == path));
        by_owner
            && by_port
            && by_path
            && self.proto.is_none_or(|proto| listener.proto == proto)
            && self.netns.is_none_or(|ns| listener.netns == ns)
            && self
                .device
                .as_ref()
                .is_none_or(|d| listener.device.as_ref() == Some(d))
            && (!self.below_limit || listener.below_limit)
    }

    /// The holders of `listener` that the pid and descriptor criteria allow: every holder when
    /// neither is set. A raise may go through any of them, since they share the one socket.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = maxlisten::Address::Inet(listener.local_addr()?);
    /// let info = maxlisten::survey::listeners()?.into_iter().find(|l| l.local == addr).unwrap();
    /// let me = maxlisten::select::Selector::new().pid(std::process::id());
    /// let owner = me.owners(&info).next().unwrap();
    /// assert_eq!(owner.fd, listener.as_raw_fd());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owners<'a>(&'a self, listener: &'a ListenerInfo) -> impl Iterator<Item = &'a Owner> {
        listener.processes.iter().filter(move |o| {
            self.pid.is_none_or(|pid| o.pid == pid) && self.fd.is_none_or(|fd| o.fd == fd)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn listener(proto: Proto, local: Address, owners: &[(u32, RawFd)]) -> ListenerInfo {
        ListenerInfo {
            proto,
            local,
            device: None,
            inode: 1,
            cookie: 0,
            netns: 4026531840,
            limit: Some(4096),
            backlog: 128,
            queued: 0,
            drops: None,
            below_limit: true,
            processes: owners
                .iter()
                .map(|&(pid, fd)| Owner {
                    pid,
                    command: "server".into(),
                    fd,
                    cgroup: None,
                    container: None,
                })
                .collect(),
            ns: crate::netns::Netns::current().unwrap(),
        }
    }

    fn tcp(port: u16) -> Address {
        Address::Inet(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn every_criterion_must_hold() {
        let web = listener(Proto::Tcp, tcp(8080), &[(100, 3), (101, 3)]);
        let sock = listener(
            Proto::Unix,
            Address::Path("/run/a.sock".into()),
            &[(200, 5)],
        );
        let mut full = listener(Proto::Tcp, tcp(9090), &[]);
        full.below_limit = false;
        full.netns = 4026532000;
        full.device = Some("eth0".into());
        let all = [&web, &sock, &full];
        let chosen =
            |s: Selector| -> Vec<usize> { (0..all.len()).filter(|&i| s.matches(all[i])).collect() };

        assert_eq!(chosen(Selector::new()), [0, 1, 2]);
        assert_eq!(chosen(Selector::new().pid(101)), [0]);
        assert_eq!(chosen(Selector::new().pid(101).fd(3)), [0]);
        assert_eq!(chosen(Selector::new().pid(101).fd(4)), Vec::<usize>::new());
        assert_eq!(chosen(Selector::new().fd(5)), [1]);
        assert_eq!(chosen(Selector::new().port(8080)), [0]);
        // A port never matches a Unix listener, a path never a TCP one.
        assert_eq!(chosen(Selector::new().port(0)), Vec::<usize>::new());
        assert_eq!(chosen(Selector::new().path("/run/a.sock")), [1]);
        assert_eq!(
            chosen(Selector::new().path("/run/b.sock")),
            Vec::<usize>::new()
        );
        assert_eq!(chosen(Selector::new().proto(Proto::Unix)), [1]);
        assert_eq!(chosen(Selector::new().proto(Proto::Tcp)), [0, 2]);
        assert_eq!(chosen(Selector::new().netns(4026532000)), [2]);
        assert_eq!(chosen(Selector::new().device("eth0")), [2]);
        assert_eq!(chosen(Selector::new().device("eth1")), Vec::<usize>::new());
        assert_eq!(chosen(Selector::new().below_limit(true)), [0, 1]);
        assert_eq!(chosen(Selector::new().below_limit(false)), [0, 1, 2]);
        assert_eq!(
            chosen(Selector::new().proto(Proto::Tcp).below_limit(true)),
            [0]
        );
        assert_eq!(
            chosen(Selector::new().port(8080).pid(200)),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn owners_follow_pid_and_fd() {
        let web = listener(Proto::Tcp, tcp(8080), &[(100, 3), (101, 3), (101, 7)]);
        let pids =
            |s: &Selector| -> Vec<(u32, RawFd)> { s.owners(&web).map(|o| (o.pid, o.fd)).collect() };
        assert_eq!(pids(&Selector::new()), [(100, 3), (101, 3), (101, 7)]);
        assert_eq!(pids(&Selector::new().pid(101)), [(101, 3), (101, 7)]);
        assert_eq!(pids(&Selector::new().pid(101).fd(7)), [(101, 7)]);
        assert_eq!(pids(&Selector::new().fd(3)), [(100, 3), (101, 3)]);
        assert!(Selector::new().is_empty());
        assert!(!Selector::new().below_limit(true).is_empty());
        assert!(Selector::new().below_limit(false).is_empty());
    }
}
