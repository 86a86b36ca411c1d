//! The address an error or a listing names: an IP socket address, a Unix socket path, or a
//! Linux abstract name.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use socket2::SockAddr;

/// Where a listener is, or was to be: what [`Error`](crate::Error) names.
///
/// ```
/// use maxlisten::Address;
///
/// let tcp = Address::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
/// assert_eq!(tcp.to_string(), "127.0.0.1:8080");
/// let path = Address::Path("/run/app.sock".into());
/// assert_eq!(path.to_string(), "/run/app.sock");
/// // Abstract names are shown as `ss` shows them: with a leading '@'.
/// assert_eq!(Address::Abstract(b"app".to_vec()).to_string(), "@app");
/// assert_eq!(tcp.as_socket_addr(), Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// The path of a Unix domain socket.
    Path(PathBuf),
    /// A Linux abstract Unix socket name, without the leading NUL byte.
    Abstract(Vec<u8>),
    /// A Unix socket bound to no name.
    Unnamed,
}

impl Address {
    /// The IP socket address, if this is one.
    ///
    /// ```
    /// assert_eq!(maxlisten::Address::Path("/x".into()).as_socket_addr(), None);
    /// ```
    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The address of a socket as the OS gave it; `None` for a family this crate does not name.
    pub(crate) fn from_sockaddr(addr: &SockAddr) -> Option<Address> {
        if let Some(inet) = addr.as_socket() {
            return Some(Address::Inet(inet));
        }
        #[cfg(unix)]
        if addr.is_unix() {
            if let Some(path) = addr.as_pathname() {
                return Some(Address::Path(path.to_owned()));
            }
            if let Some(name) = addr.as_abstract_namespace() {
                return Some(Address::Abstract(name.to_owned()));
            }
            return Some(Address::Unnamed);
        }
        None
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Inet(addr)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => write!(f, "{addr}"),
            Address::Path(path) => write!(f, "{}", path.display()),
            Address::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
            Address::Unnamed => f.write_str("(unnamed)"),
        }
    }
}
