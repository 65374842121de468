//! From an IP packet (no Ethernet header) to what the forwarding and the flow table need:
//! addresses, the transport part of the flow key, TCP flags, the packet trimmed to its own
//! length. As dpservice's conntrack: only TCP, UDP, ICMP and ICMPv6 pass; of ICMPv4 only echo
//! and "destination unreachable" codes 2, 3 and 4; an ICMP error is keyed from the header it
//! quotes, so that it joins the flow it reports on.

use std::net::IpAddr;

use crate::flow::{L4, TcpFlags};
use crate::packet::icmp::{self, IcmpView};
use crate::packet::icmpv6::{self, Icmpv6View};
use crate::packet::ipv4::{self, Ipv4View};
use crate::packet::ipv6::{self, Ipv6View};
use crate::packet::tcp::TcpView;
use crate::packet::udp::UdpView;
use crate::packet::{PacketError, be16, byte};

/// DHCPv4 and DHCPv6 server ports: such packets from a VM are the built-in servers' and are
/// never forwarded.
const DHCP_SERVER_PORT: u16 = 67;
const DHCPV6_SERVER_PORT: u16 = 547;

/// ICMPv4 unreachable codes dpservice's conntrack accepts (protocol, port, fragmentation
/// needed).
const ACCEPTED_UNREACHABLE_CODES: [u8; 3] = [2, 3, 4];

/// A packet the forwarding can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Source address of the header.
    pub src: IpAddr,
    /// Destination address of the header: what is routed.
    pub dst: IpAddr,
    /// Source address of the flow key: `src`, except for an ICMP error, whose key is the
    /// reply view of the packet it quotes.
    pub key_src: IpAddr,
    /// Destination address of the flow key.
    pub key_dst: IpAddr,
    /// The transport part of the flow key.
    pub l4: L4,
    /// TCP flags (none for other protocols).
    pub flags: TcpFlags,
    /// The packet, trimmed to its IP length (Ethernet padding removed).
    pub packet: &'a [u8],
    /// UDP to a DHCP server port.
    pub dhcp: bool,
}

/// Why a packet cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A header does not parse.
    #[error(transparent)]
    Malformed(#[from] PacketError),
    /// Well-formed, but a protocol or ICMP type the dataplane does not forward.
    #[error("unsupported {what} {value}")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u16,
    },
}

/// Parses an IPv4 or IPv6 packet.
pub fn parse(packet: &[u8]) -> Result<Parsed<'_>, KeyError> {
    match byte(packet, 0) >> 4 {
        4 => parse_v4(packet),
        6 => parse_v6(packet),
        v => Err(PacketError::BadVersion {
            field: "ip.version",
            found: v,
        }
        .into()),
    }
}

fn ports(payload: &[u8], field: &'static str) -> Result<(u16, u16), PacketError> {
    crate::packet::need(payload, 4, field)?;
    Ok((be16(payload, 0), be16(payload, 2)))
}

fn parse_v4(packet: &[u8]) -> Result<Parsed<'_>, KeyError> {
    let ip = Ipv4View::parse(packet)?;
    let (src, dst) = (IpAddr::V4(ip.src()), IpAddr::V4(ip.dst()));
    let base = Parsed {
        src,
        dst,
        key_src: src,
        key_dst: dst,
        l4: L4::Other(ip.protocol()),
        flags: TcpFlags::NONE,
        packet: ip.packet(),
        dhcp: false,
    };
    if ip.fragment_offset() != 0 {
        // No transport header in a non-first fragment: keyed by protocol alone.
        return match ip.protocol() {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP | ipv4::PROTO_ICMP => Ok(base),
            p => Err(unsupported("ip protocol", p)),
        };
    }
    let payload = ip.payload();
    match ip.protocol() {
        ipv4::PROTO_TCP => tcp(payload, base),
        ipv4::PROTO_UDP => udp(payload, base, DHCP_SERVER_PORT),
        ipv4::PROTO_ICMP => {
            let m = IcmpView::parse(payload)?;
            let l4 = match (m.kind(), m.code()) {
                (icmp::ECHO_REQUEST | icmp::ECHO_REPLY, _) => L4::Icmp {
                    icmp_type: m.kind(),
                    code: m.code(),
                    id: m.identifier(),
                },
                (icmp::DEST_UNREACHABLE, c) if ACCEPTED_UNREACHABLE_CODES.contains(&c) => {
                    return quoted_v4(m.body(), base);
                }
                (t, _) => return Err(unsupported("icmp type", t)),
            };
            Ok(Parsed { l4, ..base })
        }
        p => Err(unsupported("ip protocol", p)),
    }
}

/// A TCP segment's key and flags (the same for both families).
fn tcp<'a>(payload: &[u8], base: Parsed<'a>) -> Result<Parsed<'a>, KeyError> {
    let tcp = TcpView::parse(payload)?;
    Ok(Parsed {
        l4: L4::Tcp {
            src_port: tcp.src_port(),
            dst_port: tcp.dst_port(),
        },
        flags: TcpFlags(tcp.flags()),
        ..base
    })
}

/// A UDP datagram's key; `dhcp_port` is the family's DHCP server port.
fn udp<'a>(payload: &[u8], base: Parsed<'a>, dhcp_port: u16) -> Result<Parsed<'a>, KeyError> {
    let udp = UdpView::parse(payload)?;
    Ok(Parsed {
        l4: L4::Udp {
            src_port: udp.src_port(),
            dst_port: udp.dst_port(),
        },
        dhcp: udp.dst_port() == dhcp_port,
        ..base
    })
}

/// An ICMPv4 error keyed as the reply of the packet it quotes.
fn quoted_v4<'a>(quoted: &[u8], base: Parsed<'a>) -> Result<Parsed<'a>, KeyError> {
    // The quote holds the IP header and at least 8 bytes of its payload; it may be cut short
    // of its own total length, so it is read without the length check of a full packet.
    crate::packet::need(quoted, ipv4::MIN_HEADER_LEN, "icmp.quoted.ipv4")?;
    if byte(quoted, 0) >> 4 != 4 {
        return Err(PacketError::BadVersion {
            field: "icmp.quoted.ipv4.version",
            found: byte(quoted, 0) >> 4,
        }
        .into());
    }
    let ihl = usize::from(byte(quoted, 0) & 0x0f) * 4;
    let l4 = quoted.get(ihl..).unwrap_or(&[]);
    let protocol = byte(quoted, 9);
    let src = IpAddr::V4(crate::packet::ipv4_at(quoted, 12));
    let dst = IpAddr::V4(crate::packet::ipv4_at(quoted, 16));
    let inner = quoted_l4(protocol, l4, "icmp.quoted.l4", false)?;
    Ok(Parsed {
        key_src: dst,
        key_dst: src,
        l4: inner,
        ..base
    })
}

/// The L4 key of a quoted packet, already reversed (a reply's view).
fn quoted_l4(protocol: u8, l4: &[u8], field: &'static str, v6: bool) -> Result<L4, KeyError> {
    Ok(match protocol {
        ipv4::PROTO_TCP => {
            let (s, d) = ports(l4, field)?;
            L4::Tcp {
                src_port: d,
                dst_port: s,
            }
        }
        ipv4::PROTO_UDP => {
            let (s, d) = ports(l4, field)?;
            L4::Udp {
                src_port: d,
                dst_port: s,
            }
        }
        ipv4::PROTO_ICMP | ipv6::NEXT_ICMPV6 => {
            crate::packet::need(l4, 8, field)?;
            let (request, reply) = if v6 {
                (icmpv6::ECHO_REQUEST, icmpv6::ECHO_REPLY)
            } else {
                (icmp::ECHO_REQUEST, icmp::ECHO_REPLY)
            };
            let t = byte(l4, 0);
            let icmp_type = match t {
                x if x == request => reply,
                x if x == reply => request,
                x => x,
            };
            L4::Icmp {
                icmp_type,
                code: byte(l4, 1),
                id: be16(l4, 4),
            }
        }
        p => return Err(unsupported("quoted protocol", p)),
    })
}

fn parse_v6(packet: &[u8]) -> Result<Parsed<'_>, KeyError> {
    let ip = Ipv6View::parse(packet)?;
    let (src, dst) = (IpAddr::V6(ip.src()), IpAddr::V6(ip.dst()));
    let base = Parsed {
        src,
        dst,
        key_src: src,
        key_dst: dst,
        l4: L4::Other(ip.next_header()),
        flags: TcpFlags::NONE,
        packet: ip.packet(),
        dhcp: false,
    };
    let upper = match ip.upper_layer() {
        Ok(u) => u,
        // A non-first fragment: keyed by the fixed header's next header alone.
        Err(PacketError::Unsupported {
            field: "ipv6.fragment.offset",
            ..
        }) => return Ok(base),
        Err(e) => return Err(e.into()),
    };
    if upper.fragmented && upper.payload.len() < 8 {
        return Err(PacketError::Truncated {
            field: "ipv6.fragment.payload",
            need: 8,
            have: upper.payload.len(),
        }
        .into());
    }
    match upper.protocol {
        ipv6::NEXT_TCP => tcp(upper.payload, base),
        ipv6::NEXT_UDP => udp(upper.payload, base, DHCPV6_SERVER_PORT),
        ipv6::NEXT_ICMPV6 => {
            let m = Icmpv6View::parse(upper.payload)?;
            if m.is_error() {
                return quoted_v6(m.body(), base);
            }
            let id = match m.kind() {
                icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY => m.identifier(),
                _ => 0,
            };
            Ok(Parsed {
                l4: L4::Icmp {
                    icmp_type: m.kind(),
                    code: m.code(),
                    id,
                },
                ..base
            })
        }
        p => Err(unsupported("ip protocol", p)),
    }
}

/// An ICMPv6 error keyed as the reply of the packet it quotes.
fn quoted_v6<'a>(quoted: &[u8], base: Parsed<'a>) -> Result<Parsed<'a>, KeyError> {
    crate::packet::need(quoted, ipv6::HEADER_LEN, "icmpv6.quoted.ipv6")?;
    let src = IpAddr::V6(crate::packet::ipv6_at(quoted, 8));
    let dst = IpAddr::V6(crate::packet::ipv6_at(quoted, 24));
    let l4 = quoted.get(ipv6::HEADER_LEN..).unwrap_or(&[]);
    let inner = quoted_l4(byte(quoted, 6), l4, "icmpv6.quoted.l4", true)?;
    Ok(Parsed {
        key_src: dst,
        key_dst: src,
        l4: inner,
        ..base
    })
}

fn unsupported(what: &'static str, value: u8) -> KeyError {
    KeyError::Unsupported {
        what,
        value: value.into(),
    }
}
