//! The underlay: raw IPv6 sockets in the dataplane's network namespace. One `IPPROTO_RAW`
//! socket sends (the header is ours, built as dpservice builds it); one socket per inner
//! protocol (4: IPv4, 41: IPv6) receives, with `IPV6_PKTINFO` telling the outer destination,
//! which selects the interface. The kernel strips the outer header on receipt.
//!
//! For the kernel to hand us packets to every address of the node's /64, the /64 is made local
//! (`ip -6 route replace local <prefix> dev lo`, "AnyIP"); the fabric routes the /64 to the
//! node's underlay link.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::Command;

use ipnet::Ipv6Net;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Inner protocol numbers of IPv4-in-IPv6 and IPv6-in-IPv6.
pub const INNER_PROTOCOLS: [i32; 2] = [4, 41];
/// IPPROTO_RAW: a socket that sends whole IPv6 packets (implies IPV6_HDRINCL).
const IPPROTO_RAW: i32 = 255;
/// Socket buffers sized for bursts of full-size packets.
const SOCKET_BUFFER: usize = 4 << 20;

/// Setting up the underlay failed.
#[derive(Debug, thiserror::Error)]
pub enum UnderlayError {
    /// A socket call failed.
    #[error("underlay socket ({what}): {source}")]
    Socket {
        /// Which step.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Making the /64 local failed.
    #[error("cannot make {prefix} local (`ip -6 route replace local {prefix} dev lo`): {detail}")]
    LocalRoute {
        /// The prefix.
        prefix: Ipv6Net,
        /// What went wrong.
        detail: String,
    },
    /// The underlay interface's MTU cannot be read.
    #[error("underlay interface {name}: cannot read its MTU from {path}: {detail}")]
    Mtu {
        /// Interface.
        name: String,
        /// Where it was read from.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

fn sock_err(what: &'static str) -> impl FnOnce(io::Error) -> UnderlayError {
    move |source| UnderlayError::Socket { what, source }
}

/// Makes every address of `prefix` local to this namespace.
pub fn make_prefix_local(prefix: Ipv6Net) -> Result<(), UnderlayError> {
    let p = prefix.trunc().to_string();
    let out = Command::new("ip")
        .args(["-6", "route", "replace", "local", &p, "dev", "lo"])
        .output()
        .map_err(|e| UnderlayError::LocalRoute {
            prefix,
            detail: format!("cannot run `ip` (Debian package iproute2): {e}"),
        })?;
    if !out.status.success() {
        return Err(UnderlayError::LocalRoute {
            prefix,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The MTU of interface `name`, from sysfs.
pub fn interface_mtu(name: &str) -> Result<u16, UnderlayError> {
    let path = format!("/sys/class/net/{name}/mtu");
    let err = |detail: String| UnderlayError::Mtu {
        name: name.to_string(),
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let mtu: u32 = text
        .trim()
        .parse()
        .map_err(|_| err(format!("{:?} is not a number", text.trim())))?;
    Ok(u16::try_from(mtu).unwrap_or(u16::MAX))
}

/// Sends encapsulated packets.
#[derive(Debug)]
pub struct Sender {
    socket: Socket,
}

impl Sender {
    /// A non-blocking `IPPROTO_RAW` socket.
    pub fn new() -> Result<Self, UnderlayError> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
            .map_err(sock_err("open IPPROTO_RAW"))?;
        socket
            .set_nonblocking(true)
            .map_err(sock_err("set non-blocking"))?;
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        // The /64 is local by a route, not by addresses: a source given as IPV6_PKTINFO is
        // accepted only with freebind.
        socket
            .set_freebind_v6(true)
            .map_err(sock_err("IPV6_FREEBIND"))?;
        Ok(Self { socket })
    }

    /// Sends one packet (outer header included) to `dst`. Never blocks: a full socket buffer
    /// is an error the caller counts.
    pub fn send(&self, dst: Ipv6Addr, packet: &[u8]) -> io::Result<()> {
        // The outer source goes along as IPV6_PKTINFO: the kernel routes the packet without
        // choosing a source address for it first (it would not use it: the header is ours).
        // (An unspecified one, for a packet too short to have it, lets the kernel choose.)
        let src = packet
            .get(8..24)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .unwrap_or_default();
        let info = nix::libc::in6_pktinfo {
            ipi6_addr: nix::libc::in6_addr { s6_addr: src },
            ipi6_ifindex: 0,
        };
        let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
        let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, 0));
        sendmsg(
            self.socket.as_raw_fd(),
            &[IoSlice::new(packet)],
            &cmsgs,
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        )
        .map(|_| ())
        .map_err(io::Error::from)
    }
}

/// Receives encapsulated packets of one inner protocol; non-blocking, the packet loop polls it.
#[derive(Debug)]
pub struct Receiver {
    socket: Socket,
    protocol: i32,
}

impl Receiver {
    /// A raw socket for inner protocol `protocol` (4 or 41) with `IPV6_RECVPKTINFO`.
    pub fn new(protocol: i32) -> Result<Self, UnderlayError> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(protocol)))
            .map_err(sock_err("open raw receive socket"))?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| sock_err("IPV6_RECVPKTINFO")(io::Error::from(e)))?;
        socket
            .set_nonblocking(true)
            .map_err(sock_err("set non-blocking"))?;
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        Ok(Self { socket, protocol })
    }

    /// The inner protocol this socket receives.
    pub fn protocol(&self) -> i32 {
        self.protocol
    }

    /// The socket, for the packet loop's `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The next packet if one is queued: its outer destination and the inner packet's length
    /// in `buf`; `None` when none is. A packet without destination information is skipped.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<(Ipv6Addr, usize)>> {
        self.recv_flags(buf, MsgFlags::MSG_DONTWAIT)
    }

    fn recv_flags(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<Option<(Ipv6Addr, usize)>> {
        loop {
            match recv_one(&self.socket, buf, flags) {
                Ok(Some(got)) => return Ok(Some(got)),
                Ok(None) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn recv_one(
    socket: &Socket,
    buf: &mut [u8],
    flags: MsgFlags,
) -> io::Result<Option<(Ipv6Addr, usize)>> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrIn6>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)
        .map_err(io::Error::from)?;
    let len = msg.bytes;
    let mut dst = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv6PacketInfo(info) = c {
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
        }
    }
    Ok(dst.map(|d| (d, len)))
}
