//! Linux `sock_diag` (netlink): the kernel's own view of listening sockets, in the network
//! namespace of the calling thread.
//!
//! - A Unix listener's backlog and queue exist nowhere else: `TCP_INFO` does not apply, and
//!   `UNIX_DIAG_RQLEN` reports `udiag_rqueue` (queued connections) and `udiag_wqueue` (the
//!   applied backlog). One listener is asked for by inode.
//! - A dump lists every TCP listener (`idiag_rqueue` queued, `idiag_wqueue` backlog, and
//!   `INET_DIAG_SKMEMINFO`'s drop counter) and every Unix listener of the namespace in one
//!   request per family: this is what the host-wide survey uses.
//!
//! The requests are built, and the Unix answers and every fixed header parsed, by the
//! rust-netlink crates; nothing here touches raw memory. The attributes of a TCP answer are
//! walked here: `netlink-packet-sock-diag` 0.5 rejects an `INET_DIAG_SKMEMINFO` shorter than
//! nine counters, which kernels before 4.12 send (no drop counter), and that would fail the
//! whole dump. Such a listener gets `drops: None`.
//!
//! Each answer also carries the socket's cookie (`SO_COOKIE`, what tells a socket from a later
//! one with the same inode or descriptor number) and, for TCP, the bound device's index
//! (`idiag_if`: the IPv6 scope id of a link-local address, or `SO_BINDTODEVICE`).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NlasIterator, Parseable, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY,
};
use netlink_packet_sock_diag::inet::{self, ExtensionFlags, InetRequest, SocketId};
use netlink_packet_sock_diag::unix::nlas::UnixDiagName;
use netlink_packet_sock_diag::unix::{self, ShowFlags, UnixRequest};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::TCP_LISTEN;
use crate::Address;

/// One listening socket as `sock_diag` reports it.
#[derive(Clone, Debug)]
#[allow(dead_code)] // cookie and interface: read by the survey (next)
pub(crate) struct DiagListener {
    /// The socket's inode (what `/proc/PID/fd/N` links to as `socket:[INODE]`).
    pub(crate) inode: u64,
    /// Its address: IP and port, a path, an abstract name, or unnamed.
    pub(crate) local: Address,
    /// Connections waiting for `accept()`.
    pub(crate) queued: u32,
    /// The applied backlog.
    pub(crate) backlog: u32,
    /// SYNs and ACKs dropped because the queue was full (TCP only; `None` before Linux 4.12).
    pub(crate) drops: Option<u32>,
    /// The socket's cookie (`SO_COOKIE`): unique for the kernel's uptime.
    pub(crate) cookie: u64,
    /// The index of the device it is bound to (`idiag_if`; 0 for none, and for Unix).
    pub(crate) interface: u32,
}

/// Sends one request and hands the payload of every answer to `each`, until the end of the
/// dump (or after the one answer).
fn exchange(
    request: SockDiagMessage,
    dump: bool,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let mut packet = NetlinkMessage::new(header, request.into());
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    socket.send(&out, 0)?;

    let invalid = |e: netlink_packet_core::DecodeError| {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut buf[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkBuffer::new_checked(&buf[offset..size]).map_err(invalid)?;
            let length = message.length() as usize;
            match message.message_type() {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let payload = message.payload();
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EPROTO);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
                SOCK_DIAG_BY_FAMILY => {
                    each(message.payload())?;
                    if !dump {
                        return Ok(());
                    }
                }
                _ => {}
            }
            // Messages are aligned to 4 bytes.
            let step = (length + 3) & !3;
            if step == 0 {
                break;
            }
            offset += step;
        }
    }
}

/// The cookie of a `sock_diag` answer: two native-endian 32-bit halves, low first.
fn cookie(bytes: [u8; 8]) -> u64 {
    let low = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let high = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    u64::from(low) | (u64::from(high) << 32)
}

/// A Unix answer, parsed by the crate.
fn unix_response(payload: &[u8]) -> io::Result<unix::UnixResponse> {
    unix::UnixResponse::parse(payload)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Queued connections and applied backlog of the Unix listener with this inode, or `None` if
/// the kernel knows no listening Unix socket by that inode (in this network namespace).
pub(crate) fn unix_listener(inode: u64) -> io::Result<Option<(u32, u32)>> {
    let Ok(inode) = u32::try_from(inode) else {
        return Ok(None); // sock_diag takes 32-bit inodes
    };
    let request = SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: unix::StateFlags::LISTEN,
        inode,
        show_flags: ShowFlags::RQLEN,
        cookie: [0xff; 8],
    });
    let mut found = None;
    let result = exchange(request, false, |payload| {
        let r = unix_response(payload)?;
        if r.header.state == TCP_LISTEN {
            found = rqlen(&r);
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(found),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn rqlen(response: &unix::UnixResponse) -> Option<(u32, u32)> {
    response.nlas.iter().find_map(|nla| match nla {
        unix::nlas::Nla::ReceiveQueueLength(queued, backlog) => Some((*queued, *backlog)),
        _ => None,
    })
}

/// Every listening Unix stream socket of the namespace.
pub(crate) fn unix_listeners() -> io::Result<Vec<DiagListener>> {
    let request = SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: unix::StateFlags::LISTEN,
        inode: 0,
        show_flags: ShowFlags::RQLEN | ShowFlags::NAME,
        cookie: [0xff; 8],
    });
    let mut found = Vec::new();
    exchange(request, true, |payload| {
        let r = unix_response(payload)?;
        // SOCK_STREAM only; SEQPACKET listeners are not what servers mean by a listener.
        if r.header.state != TCP_LISTEN || i32::from(r.header.kind) != libc::SOCK_STREAM {
            return Ok(());
        }
        let Some((queued, backlog)) = rqlen(&r) else {
            return Ok(());
        };
        let local = r
            .nlas
            .iter()
            .find_map(|nla| match nla {
                unix::nlas::Nla::Name(UnixDiagName::Pathname(path)) => {
                    Some(Address::Path(path.into()))
                }
                unix::nlas::Nla::Name(UnixDiagName::Abstract(name)) => {
                    Some(Address::Abstract(name.clone()))
                }
                _ => None,
            })
            .unwrap_or(Address::Unnamed);
        found.push(DiagListener {
            inode: u64::from(r.header.inode),
            local,
            queued,
            backlog,
            drops: None,
            cookie: cookie(r.header.cookie),
            interface: 0,
        });
        Ok(())
    })?;
    Ok(found)
}

/// Every listening TCP socket of the namespace, IPv4 and IPv6.
pub(crate) fn tcp_listeners() -> io::Result<Vec<DiagListener>> {
    let mut found = Vec::new();
    for (family, id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::SKMEMINFO,
            states: inet::StateFlags::LISTEN,
            socket_id: id,
        });
        exchange(request, true, |payload| {
            if let Some(listener) = tcp_listener(payload)? {
                found.push(listener);
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// `SO_COOKIE` of a socket (Linux 4.11+): the cookie `sock_diag` reports for it.
#[allow(dead_code)] // the relisten identity check (next)
pub(crate) fn cookie_of(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut value = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes to
    // `value`; `socket` is open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// `sizeof(struct inet_diag_msg)`: the fixed part of a TCP answer, before its attributes.
const INET_DIAG_MSG_LEN: usize = 72;

/// `SK_MEMINFO_DROPS`: the index of the drop counter among the `u32`s of
/// `INET_DIAG_SKMEMINFO` (present since Linux 4.12).
const SK_MEMINFO_DROPS: usize = 8;

/// One TCP answer: the fixed header parsed by the crate, the attributes walked here (see the
/// module's note on `INET_DIAG_SKMEMINFO`). `None` for a socket that is not listening.
fn tcp_listener(payload: &[u8]) -> io::Result<Option<DiagListener>> {
    let invalid = |e: netlink_packet_core::DecodeError| {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    };
    let head = payload.get(..INET_DIAG_MSG_LEN).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a sock_diag inet answer too short",
        )
    })?;
    let header = inet::InetResponseHeader::parse(head).map_err(invalid)?;
    if header.state != TCP_LISTEN {
        return Ok(None);
    }
    let mut drops = None;
    for nla in NlasIterator::new(&payload[INET_DIAG_MSG_LEN..]) {
        let nla = nla.map_err(invalid)?;
        if nla.kind() == INET_DIAG_SKMEMINFO {
            drops = nla
                .value()
                .chunks_exact(4)
                .nth(SK_MEMINFO_DROPS)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        }
    }
    let id = header.socket_id;
    let ip: IpAddr = id.source_address;
    let local = match ip {
        // The scope id of a link-local address is the device the socket is bound to.
        IpAddr::V6(v6) if is_link_local(&v6) => {
            SocketAddr::V6(SocketAddrV6::new(v6, id.source_port, 0, id.interface_id))
        }
        ip => SocketAddr::new(ip, id.source_port),
    };
    Ok(Some(DiagListener {
        inode: u64::from(header.inode),
        local: Address::Inet(local),
        queued: header.recv_queue,
        backlog: header.send_queue,
        drops,
        cookie: cookie(id.cookie),
        interface: id.interface_id,
    }))
}

/// `fe80::/10`, whose addresses need a scope id.
fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    /// A TCP answer as the kernel sends it: the fixed header and one `INET_DIAG_SKMEMINFO` of
    /// `counters` values.
    fn answer(counters: usize) -> Vec<u8> {
        let mut id = SocketId::new_v6();
        id.source_address = "fe80::1".parse().unwrap();
        id.source_port = 8080;
        id.interface_id = 3;
        id.cookie = [7, 0, 0, 0, 1, 0, 0, 0];
        let header = inet::InetResponseHeader {
            family: AF_INET6,
            state: TCP_LISTEN,
            timer: None,
            socket_id: id,
            recv_queue: 2,
            send_queue: 511,
            uid: 0,
            inode: 4242,
        };
        let mut bytes = vec![0; header.buffer_len()];
        header.emit(&mut bytes);
        assert_eq!(bytes.len(), INET_DIAG_MSG_LEN);
        let value: Vec<u8> = (0..counters as u32)
            .flat_map(|i| (i + 100).to_ne_bytes())
            .collect();
        bytes.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        bytes.extend_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
        bytes.extend_from_slice(&value);
        bytes
    }

    #[test]
    fn a_full_skmeminfo_gives_the_drops() {
        let l = tcp_listener(&answer(9)).unwrap().unwrap();
        assert_eq!(l.drops, Some(108));
        assert_eq!((l.inode, l.queued, l.backlog), (4242, 2, 511));
        assert_eq!(l.local.to_string(), "[fe80::1%3]:8080");
        assert_eq!(l.interface, 3);
        assert_eq!(l.cookie, 7 | (1 << 32));
    }

    #[test]
    fn a_short_skmeminfo_of_an_old_kernel_gives_no_drops_and_no_error() {
        // Before Linux 4.12 the attribute holds eight counters; the crate's own parser refuses it.
        let bytes = answer(8);
        assert!(inet::InetResponse::parse(&bytes).is_err());
        let l = tcp_listener(&bytes).unwrap().unwrap();
        assert_eq!(l.drops, None);
        assert_eq!(l.backlog, 511);
    }

    #[test]
    fn cookies_match_so_cookie() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = tcp_listeners()
            .unwrap()
            .into_iter()
            .find(|l| l.local.as_socket_addr().map(|a| a.port()) == Some(port))
            .unwrap();
        let value = cookie_of(std::os::fd::AsFd::as_fd(&listener)).unwrap();
        assert_eq!(ours.cookie, value);
        assert_eq!(ours.interface, 0);
        assert!(ours.drops.is_some());
    }
}
