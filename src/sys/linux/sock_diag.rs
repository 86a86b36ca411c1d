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
//! The messages are built and parsed by the rust-netlink crates (`netlink-packet-sock-diag`
//! carries `UNIX_DIAG_RQLEN` and `INET_DIAG_SKMEMINFO`); nothing here touches raw memory.

use std::io;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{self, ExtensionFlags, InetRequest, SocketId};
use netlink_packet_sock_diag::unix::nlas::UnixDiagName;
use netlink_packet_sock_diag::unix::{self, ShowFlags, UnixRequest};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::TCP_LISTEN;
use crate::Address;

/// One listening socket as `sock_diag` reports it.
#[derive(Clone, Debug)]
pub(crate) struct DiagListener {
    /// The socket's inode (what `/proc/PID/fd/N` links to as `socket:[INODE]`).
    pub(crate) inode: u64,
    /// Its address: IP and port, a path, an abstract name, or unnamed.
    pub(crate) local: Address,
    /// Connections waiting for `accept()`.
    pub(crate) queued: u32,
    /// The applied backlog.
    pub(crate) backlog: u32,
    /// SYNs and ACKs dropped because the queue was full (TCP only).
    pub(crate) drops: Option<u32>,
}

/// Sends one request and hands every answer to `each` as it is parsed, until the end of the
/// dump (or the one answer). Answers are not collected: a parsed message is several hundred
/// bytes, and a dump of 10,000 listeners would hold megabytes of them at once.
fn exchange(
    request: SockDiagMessage,
    dump: bool,
    mut each: impl FnMut(SockDiagMessage),
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

    let mut answered = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut buf[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[offset..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(answer) => {
                    answered = true;
                    each(answer);
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(err) if err.code.is_some() => return Err(err.to_io()),
                _ => {}
            }
            if !dump && answered {
                return Ok(());
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
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
    let result = exchange(request, false, |answer| {
        if let SockDiagMessage::UnixResponse(r) = answer {
            if r.header.state == TCP_LISTEN && found.is_none() {
                found = rqlen(&r);
            }
        }
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
    exchange(request, true, |answer| {
        let SockDiagMessage::UnixResponse(r) = answer else {
            return;
        };
        // SOCK_STREAM only; SEQPACKET listeners are not what servers mean by a listener.
        if r.header.state != TCP_LISTEN || i32::from(r.header.kind) != libc::SOCK_STREAM {
            return;
        }
        let Some((queued, backlog)) = rqlen(&r) else {
            return;
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
        });
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
        exchange(request, true, |answer| {
            let SockDiagMessage::InetResponse(r) = answer else {
                return;
            };
            if r.header.state != TCP_LISTEN {
                return;
            }
            let ip: IpAddr = r.header.socket_id.source_address;
            let drops = r.nlas.iter().find_map(|nla| match nla {
                inet::nlas::Nla::MemInfo(info) => Some(info.drops),
                _ => None,
            });
            found.push(DiagListener {
                inode: u64::from(r.header.inode),
                local: Address::Inet(SocketAddr::new(ip, r.header.socket_id.source_port)),
                queued: r.header.recv_queue,
                backlog: r.header.send_queue,
                drops,
            });
        })?;
    }
    Ok(found)
}
