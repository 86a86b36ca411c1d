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
//!
//! Each answer also carries the socket's cookie (`SO_COOKIE`, what tells a socket from a later
//! one with the same inode or descriptor number) and, for TCP, the bound device's index
//! (`idiag_if`: the IPv6 scope id of a link-local address, or `SO_BINDTODEVICE`).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NlasIterator, Parseable, NLM_F_DUMP,
    NLM_F_REQUEST,
};
// INET_DIAG_SKMEMINFO: the `sk_meminfo` array of an inet socket; UNIX_DIAG_VFS: the inode and
// device of the file a Unix socket is bound to.
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, IPPROTO_TCP, UNIX_DIAG_VFS,
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
pub(crate) struct DiagListener {
    /// The socket's inode (what `/proc/PID/fd/N` links to as `socket:[INODE]`).
    pub(crate) inode: u64,
    /// Its address: IP and port, a path, an abstract name, or unnamed.
    pub(crate) local: Address,
    /// Connections waiting for `accept()`.
    pub(crate) queued: u32,
    /// The applied backlog.
    pub(crate) backlog: u32,
    /// Handshakes dropped on the listener, for any reason (`sk_drops`: its own `ListenDrops`);
    /// TCP only, `None` before Linux 4.12.
    pub(crate) drops: Option<u32>,
    /// The socket's cookie (`SO_COOKIE`): unique for the kernel's uptime.
    pub(crate) cookie: u64,
    /// The index of the device it is bound to (`idiag_if`; 0 for none, and for Unix).
    pub(crate) interface: u32,
}

/// `SOCK_DIAG_BY_FAMILY`: the message type of every `sock_diag` answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The netlink control messages that end an exchange.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// The fixed part of an inet answer (`struct inet_diag_msg`) and of a Unix answer
/// (`struct unix_diag_msg`), before their attributes.
const INET_DIAG_MSG_LEN: usize = 72;
const UNIX_DIAG_MSG_LEN: usize = 16;

/// Sends one request and collects the payload of every answer until the end of the dump (or
/// the one answer). The framing is read here, not by the crate's message parser, so that one
/// attribute the crate cannot parse (see [`parse_inet`]) does not fail the whole dump.
fn exchange(request: SockDiagMessage, dump: bool) -> io::Result<Vec<Vec<u8>>> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let mut packet = NetlinkMessage::new(header, request.into());
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    retry_eintr(|| socket.send(&out, 0))?;

    let mut answers = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let size = retry_eintr(|| socket.recv(&mut &mut buf[..], 0))?;
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sock_diag closed the exchange before its end",
            ));
        }
        let mut offset = 0;
        while offset < size {
            let message = NetlinkBuffer::new_checked(&buf[offset..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let length = message.length() as usize;
            match message.message_type() {
                NLMSG_DONE => return Ok(answers),
                NLMSG_ERROR => {
                    let payload = message.payload();
                    let code = payload
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if code < 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    if !dump {
                        return Ok(answers);
                    }
                }
                SOCK_DIAG_BY_FAMILY => answers.push(message.payload().to_vec()),
                _ => {}
            }
            if !dump && !answers.is_empty() {
                return Ok(answers);
            }
            // Messages are aligned to 4 bytes; a zero length would loop forever.
            let aligned = (length + 3) & !3;
            if aligned == 0 {
                break;
            }
            offset += aligned;
        }
    }
}

/// Runs `call` again while it fails with `EINTR` (a signal arrived while it waited).
fn retry_eintr<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn parse_unix(payload: &[u8]) -> io::Result<unix::UnixResponse> {
    unix::UnixResponse::parse(payload).map_err(invalid)
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
    match exchange(request, false) {
        Ok(answers) => {
            for payload in answers {
                let r = parse_unix(&payload)?;
                if r.header.state == TCP_LISTEN {
                    if let Some(found) = rqlen(&r) {
                        return Ok(Some(found));
                    }
                }
            }
            Ok(None)
        }
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

/// The file a bound Unix socket's path names, as `UNIX_DIAG_VFS` reports it: the kernel's
/// device number (`s_dev`, major in the top 12 bits, minor in the low 20) and the inode number,
/// both truncated to 32 bits by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vfs {
    pub(crate) dev: u32,
    pub(crate) ino: u32,
}

impl Vfs {
    /// Whether this is the file `stat(2)` described with `st_dev` and `st_ino`.
    pub(crate) fn is(&self, st_dev: u64, st_ino: u64) -> bool {
        let (major, minor) = (self.dev >> 20, self.dev & 0xf_ffff);
        let st_dev = st_dev as libc::dev_t;
        u64::from(libc::major(st_dev)) == u64::from(major)
            && u64::from(libc::minor(st_dev)) == u64::from(minor)
            && st_ino as u32 == self.ino
    }
}

/// The `UNIX_DIAG_VFS` attribute of a Unix answer, read from its bytes (the crate keeps the
/// fields of its own `Vfs` private).
fn vfs_of(payload: &[u8]) -> Option<Vfs> {
    NlasIterator::new(payload.get(UNIX_DIAG_MSG_LEN..)?)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == UNIX_DIAG_VFS)
        .and_then(|nla| {
            let v = nla.value();
            let word = |i: usize| {
                v.get(i..i + 4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            };
            Some(Vfs {
                ino: word(0)?,
                dev: word(4)?,
            })
        })
}

/// The file the Unix socket with this inode is bound to, in any state (bound, listening,
/// connected); `None` if the kernel knows no such socket or it has no file (unbound, abstract).
pub(crate) fn unix_bound_file(inode: u64) -> io::Result<Option<Vfs>> {
    let Ok(inode) = u32::try_from(inode) else {
        return Ok(None);
    };
    let request = SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: unix::StateFlags::all(),
        inode,
        show_flags: ShowFlags::VFS,
        cookie: [0xff; 8],
    });
    match exchange(request, false) {
        Ok(answers) => Ok(answers.iter().find_map(|payload| vfs_of(payload))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a Unix socket of this network namespace that listens, or is bound and not connected
/// (about to listen, or a datagram server), is bound to the file `stat(2)` described with
/// `st_dev` and `st_ino`. Connections a listener accepted share its file but do not count: once
/// the listener is gone, nobody can connect there. Nothing connects to it: this is one
/// `sock_diag` dump.
pub(crate) fn unix_socket_bound_to(st_dev: u64, st_ino: u64) -> io::Result<bool> {
    const TCP_CLOSE: u32 = 7;
    let request = SockDiagMessage::UnixRequest(UnixRequest {
        state_flags: unix::StateFlags::LISTEN | unix::StateFlags::from_bits_retain(1 << TCP_CLOSE),
        inode: 0,
        show_flags: ShowFlags::VFS,
        cookie: [0xff; 8],
    });
    Ok(exchange(request, true)?
        .iter()
        .filter_map(|payload| vfs_of(payload))
        .any(|vfs| vfs.is(st_dev, st_ino)))
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
    for payload in exchange(request, true)? {
        let r = parse_unix(&payload)?;
        // SOCK_STREAM only; SEQPACKET listeners are not what servers mean by a listener.
        if r.header.state != TCP_LISTEN || i32::from(r.header.kind) != libc::SOCK_STREAM {
            continue;
        }
        let Some((queued, backlog)) = rqlen(&r) else {
            continue;
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
    }
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
        for payload in exchange(request, true)? {
            found.extend(parse_inet(&payload)?);
        }
    }
    Ok(found)
}

/// One inet answer: its header by the crate, its attributes here. The crate rejects an
/// `INET_DIAG_SKMEMINFO` shorter than nine `u32`s, and kernels before 4.12 send eight (no
/// `SK_MEMINFO_DROPS`): there the drops are `None` and the rest of the answer is kept.
fn parse_inet(payload: &[u8]) -> io::Result<Option<DiagListener>> {
    let header = inet::InetResponseHeader::parse(payload).map_err(invalid)?;
    if header.state != TCP_LISTEN {
        return Ok(None);
    }
    let drops = NlasIterator::new(payload.get(INET_DIAG_MSG_LEN..).unwrap_or_default())
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == INET_DIAG_SKMEMINFO)
        .and_then(|nla| skmeminfo_drops(nla.value()));
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

/// The cookie of a `sock_diag` answer: two native-endian 32-bit halves, low first.
fn cookie(bytes: [u8; 8]) -> u64 {
    let low = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let high = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    u64::from(low) | (u64::from(high) << 32)
}

/// `SO_COOKIE` of a socket (Linux 4.11+): the cookie `sock_diag` reports for it.
pub(crate) fn cookie_of(socket: BorrowedFd<'_>) -> io::Result<u64> {
    socket_option_u64(socket, libc::SO_COOKIE)
}

/// A 64-bit `SOL_SOCKET` option of a socket.
pub(crate) fn socket_option_u64(socket: BorrowedFd<'_>, name: libc::c_int) -> io::Result<u64> {
    let mut value = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` bytes to
    // `value`; `socket` is open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// `SK_MEMINFO_DROPS` (index 8) of an `sk_meminfo` array, where the kernel sent it.
fn skmeminfo_drops(value: &[u8]) -> Option<u32> {
    const AT: usize = 8 * 4;
    let b = value.get(AT..AT + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inet answer for a listener on 127.0.0.1:8080 (inode 77, 3 queued, backlog 128), with
    /// an `INET_DIAG_SKMEMINFO` of `words` u32s, the last being 5 (the drops when there are 9).
    fn answer(words: usize) -> Vec<u8> {
        let mut msg = vec![0u8; INET_DIAG_MSG_LEN];
        msg[0] = AF_INET;
        msg[1] = TCP_LISTEN;
        msg[4..6].copy_from_slice(&8080u16.to_be_bytes()); // idiag_sport, network order
        msg[8..12].copy_from_slice(&[127, 0, 0, 1]); // idiag_src
        msg[56..60].copy_from_slice(&3u32.to_ne_bytes()); // idiag_rqueue
        msg[60..64].copy_from_slice(&128u32.to_ne_bytes()); // idiag_wqueue
        msg[68..72].copy_from_slice(&77u32.to_ne_bytes()); // idiag_inode
        let len = 4 + 4 * words;
        msg.extend_from_slice(&(len as u16).to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
        for i in 0..words {
            let value = if i + 1 == words {
                5u32
            } else {
                1000 + i as u32
            };
            msg.extend_from_slice(&value.to_ne_bytes());
        }
        msg
    }

    #[test]
    fn a_short_skmeminfo_gives_no_drops_and_keeps_the_listener() {
        // Before Linux 4.12: eight words, no SK_MEMINFO_DROPS. The crate's parser refuses it...
        let old = answer(8);
        assert!(inet::InetResponse::parse(old.as_slice()).is_err());
        // ... and this parser keeps the listener, with drops unknown.
        let listener = parse_inet(&old).unwrap().unwrap();
        assert_eq!(listener.drops, None);
        assert_eq!(
            (listener.queued, listener.backlog, listener.inode),
            (3, 128, 77)
        );
        assert_eq!(
            listener.local,
            Address::Inet("127.0.0.1:8080".parse().unwrap())
        );

        // 4.12 and later: nine words, the ninth is the drops.
        let new = answer(9);
        assert!(inet::InetResponse::parse(new.as_slice()).is_ok());
        assert_eq!(parse_inet(&new).unwrap().unwrap().drops, Some(5));
    }

    #[test]
    fn a_link_local_listener_keeps_its_scope_and_cookie() {
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
        let mut bytes = vec![0; netlink_packet_core::Emitable::buffer_len(&header)];
        netlink_packet_core::Emitable::emit(&header, &mut bytes);
        assert_eq!(bytes.len(), INET_DIAG_MSG_LEN);
        let l = parse_inet(&bytes).unwrap().unwrap();
        assert_eq!(l.local.to_string(), "[fe80::1%3]:8080");
        assert_eq!(l.interface, 3);
        assert_eq!(l.cookie, 7 | (1 << 32));
        assert_eq!(
            (l.inode, l.queued, l.backlog, l.drops),
            (4242, 2, 511, None)
        );
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

    #[test]
    fn a_call_interrupted_by_a_signal_is_made_again() {
        let mut calls = 0;
        let result = retry_eintr(|| {
            calls += 1;
            if calls < 3 {
                Err(io::Error::from_raw_os_error(libc::EINTR))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
        // Any other error is returned at once.
        let mut calls = 0;
        let result: io::Result<()> = retry_eintr(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_vfs_device_is_compared_in_the_kernels_encoding() {
        // s_dev of 8:3 is (8 << 20) | 3; stat's st_dev of the same is makedev(8, 3).
        let vfs = Vfs {
            dev: (8 << 20) | 3,
            ino: 42,
        };
        let st_dev = libc::makedev(8, 3) as u64;
        assert!(vfs.is(st_dev, 42));
        assert!(vfs.is(st_dev, 42 + (1 << 32))); // the kernel sends 32 bits of the inode
        assert!(!vfs.is(st_dev, 43));
        assert!(!vfs.is(libc::makedev(8, 4) as u64, 42));
    }
}
