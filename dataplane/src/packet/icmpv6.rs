//! ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): a view, parsers of RS/RA/NS/NA with
//! their options, and builders. ICMPv6 messages are built without checksum and completed by
//! [`write_ipv6_icmpv6`], since the checksum covers the IPv6 pseudo-header.

use std::net::Ipv6Addr;

use super::checksum::transport_checksum_v6;
use super::ether::MacAddr;
use super::ipv6::{self, Ipv6Header};
use super::{PacketError, array, be16, be32, byte, ipv6_at, need, put16};

/// Destination unreachable.
pub const DEST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// Router advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Neighbor solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbor advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;

/// ND option: source link-layer address.
pub const OPT_SOURCE_LL: u8 = 1;
/// ND option: target link-layer address.
pub const OPT_TARGET_LL: u8 = 2;
/// ND option: prefix information.
pub const OPT_PREFIX_INFO: u8 = 3;
/// ND option: MTU.
pub const OPT_MTU: u8 = 5;

/// NA flag: sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// NA flag: solicited.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: override.
pub const NA_OVERRIDE: u8 = 0x20;

/// A parsed ICMPv6 message.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv6View<'a> {
    buf: &'a [u8],
}

impl<'a> Icmpv6View<'a> {
    /// Views an ICMPv6 message (the upper-layer payload); the checksum is checked separately.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, 4, "icmpv6")?;
        Ok(Self { buf })
    }

    /// Fails unless the checksum verifies for the given IPv6 addresses.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), PacketError> {
        if transport_checksum_v6(src, dst, ipv6::NEXT_ICMPV6, self.buf) != 0 {
            return Err(PacketError::BadChecksum {
                field: "icmpv6.checksum",
            });
        }
        Ok(())
    }

    /// Message type.
    pub fn kind(&self) -> u8 {
        byte(self.buf, 0)
    }
    /// Code.
    pub fn code(&self) -> u8 {
        byte(self.buf, 1)
    }
    /// Echo identifier (0 if the message is shorter than 8 bytes).
    pub fn identifier(&self) -> u16 {
        be16(self.buf, 4)
    }
    /// Echo sequence number.
    pub fn sequence(&self) -> u16 {
        be16(self.buf, 6)
    }
    /// MTU of a packet-too-big message.
    pub fn mtu(&self) -> u32 {
        be32(self.buf, 4)
    }
    /// Whether this is an error message (types below 128).
    pub fn is_error(&self) -> bool {
        self.kind() < 128
    }
    /// Everything after the 8-byte header (echo data, quoted packet); empty if shorter.
    pub fn body(&self) -> &'a [u8] {
        self.buf.get(8..).unwrap_or(&[])
    }
    /// The whole message.
    pub fn message(&self) -> &'a [u8] {
        self.buf
    }
}

/// Iterator over ND options (type, data without the 2-byte option header). An option with
/// length 0 or running past the end yields an error and ends the iteration, as RFC 4861 says
/// such a message must be discarded.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdOptions<'a> {
    /// Iterates over the options in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<(u8, &'a [u8]), PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let len = usize::from(byte(self.rest, 1)) * 8;
        if self.rest.len() < 2 || len == 0 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(PacketError::BadLength {
                field: "ndp.option.length",
                value: len,
            }));
        }
        let kind = byte(self.rest, 0);
        let data = self.rest.get(2..len).unwrap_or(&[]);
        self.rest = self.rest.get(len..).unwrap_or(&[]);
        Some(Ok((kind, data)))
    }
}

// The first link-layer address option of `kind`, validating every option on the way.
fn link_layer(options: &[u8], kind: u8) -> Result<Option<MacAddr>, PacketError> {
    let mut found = None;
    for option in NdOptions::new(options) {
        let (k, data) = option?;
        if k == kind && found.is_none() {
            need(data, 6, "ndp.option.link_layer_address")?;
            found = Some(MacAddr(array(data, 0)));
        }
    }
    Ok(found)
}

fn check_code(msg: &Icmpv6View<'_>, expected: u8) -> Result<(), PacketError> {
    if msg.kind() != expected {
        return Err(PacketError::Unsupported {
            field: "icmpv6.type",
            value: msg.kind().into(),
        });
    }
    if msg.code() != 0 {
        return Err(PacketError::Unsupported {
            field: "icmpv6.code",
            value: msg.code().into(),
        });
    }
    Ok(())
}

/// A router solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSolicit {
    pub source_ll: Option<MacAddr>,
}

impl RouterSolicit {
    /// Parses an RS (type 133, code 0, options validated).
    pub fn parse(msg: &Icmpv6View<'_>) -> Result<Self, PacketError> {
        check_code(msg, ROUTER_SOLICIT)?;
        need(msg.buf, 8, "icmpv6.router_solicit")?;
        Ok(Self {
            source_ll: link_layer(msg.buf.get(8..).unwrap_or(&[]), OPT_SOURCE_LL)?,
        })
    }
}

/// A neighbor solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicit {
    pub target: Ipv6Addr,
    pub source_ll: Option<MacAddr>,
}

impl NeighborSolicit {
    /// Parses an NS (type 135, code 0, options validated).
    pub fn parse(msg: &Icmpv6View<'_>) -> Result<Self, PacketError> {
        check_code(msg, NEIGHBOR_SOLICIT)?;
        need(msg.buf, 24, "icmpv6.neighbor_solicit")?;
        Ok(Self {
            target: ipv6_at(msg.buf, 8),
            source_ll: link_layer(msg.buf.get(24..).unwrap_or(&[]), OPT_SOURCE_LL)?,
        })
    }
}

/// A neighbor advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// `NA_ROUTER | NA_SOLICITED | NA_OVERRIDE` bits.
    pub flags: u8,
    pub target: Ipv6Addr,
    pub target_ll: Option<MacAddr>,
}

impl NeighborAdvert {
    /// Parses an NA (type 136, code 0, options validated).
    pub fn parse(msg: &Icmpv6View<'_>) -> Result<Self, PacketError> {
        check_code(msg, NEIGHBOR_ADVERT)?;
        need(msg.buf, 24, "icmpv6.neighbor_advert")?;
        Ok(Self {
            flags: byte(msg.buf, 4) & 0xe0,
            target: ipv6_at(msg.buf, 8),
            target_ll: link_layer(msg.buf.get(24..).unwrap_or(&[]), OPT_TARGET_LL)?,
        })
    }

    /// Appends the NA without checksum (see [`write_ipv6_icmpv6`]).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[NEIGHBOR_ADVERT, 0, 0, 0, self.flags, 0, 0, 0]);
        out.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.target_ll {
            out.extend_from_slice(&[OPT_TARGET_LL, 1]);
            out.extend_from_slice(&mac.0);
        }
    }
}

/// A router advertisement (the fields dpservice sends; prefix options are only counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterAdvert {
    pub cur_hop_limit: u8,
    pub managed: bool,
    pub other: bool,
    pub router_lifetime: u16,
    pub reachable_time: u32,
    pub retrans_timer: u32,
    pub source_ll: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub prefix_options: usize,
}

impl RouterAdvert {
    /// Parses an RA (type 134, code 0, options validated).
    pub fn parse(msg: &Icmpv6View<'_>) -> Result<Self, PacketError> {
        check_code(msg, ROUTER_ADVERT)?;
        need(msg.buf, 16, "icmpv6.router_advert")?;
        let options = msg.buf.get(16..).unwrap_or(&[]);
        let mut mtu = None;
        let mut prefix_options = 0;
        for option in NdOptions::new(options) {
            let (kind, data) = option?;
            match kind {
                OPT_MTU => {
                    need(data, 6, "ndp.option.mtu")?;
                    mtu = Some(be32(data, 2));
                }
                OPT_PREFIX_INFO => prefix_options += 1,
                _ => {}
            }
        }
        let flags = byte(msg.buf, 5);
        Ok(Self {
            cur_hop_limit: byte(msg.buf, 4),
            managed: flags & 0x80 != 0,
            other: flags & 0x40 != 0,
            router_lifetime: be16(msg.buf, 6),
            reachable_time: be32(msg.buf, 8),
            retrans_timer: be32(msg.buf, 12),
            source_ll: link_layer(options, OPT_SOURCE_LL)?,
            mtu,
            prefix_options,
        })
    }

    /// Appends the RA without checksum; prefix options are not written (dpservice sends none).
    pub fn write(&self, out: &mut Vec<u8>) {
        let flags = if self.managed { 0x80 } else { 0 } | if self.other { 0x40 } else { 0 };
        out.extend_from_slice(&[ROUTER_ADVERT, 0, 0, 0, self.cur_hop_limit, flags]);
        out.extend_from_slice(&self.router_lifetime.to_be_bytes());
        out.extend_from_slice(&self.reachable_time.to_be_bytes());
        out.extend_from_slice(&self.retrans_timer.to_be_bytes());
        if let Some(mac) = self.source_ll {
            out.extend_from_slice(&[OPT_SOURCE_LL, 1]);
            out.extend_from_slice(&mac.0);
        }
        if let Some(mtu) = self.mtu {
            out.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
            out.extend_from_slice(&mtu.to_be_bytes());
        }
    }
}

/// Appends an echo reply to `request` without checksum.
pub fn write_echo_reply(out: &mut Vec<u8>, request: &Icmpv6View<'_>) {
    out.extend_from_slice(&[ECHO_REPLY, 0, 0, 0]);
    out.extend_from_slice(&request.identifier().to_be_bytes());
    out.extend_from_slice(&request.sequence().to_be_bytes());
    out.extend_from_slice(request.body());
}

/// Appends a packet-too-big message advertising `mtu` and quoting `quoted`, without checksum.
pub fn write_packet_too_big(out: &mut Vec<u8>, mtu: u32, quoted: &[u8]) {
    out.extend_from_slice(&[PACKET_TOO_BIG, 0, 0, 0]);
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quoted);
}

/// Appends the IPv6 header `ip` (next header forced to ICMPv6) and the message `body` appends,
/// then fills in the payload length and the ICMPv6 checksum.
pub fn write_ipv6_icmpv6(out: &mut Vec<u8>, ip: &Ipv6Header, body: impl FnOnce(&mut Vec<u8>)) {
    let ip_start = out.len();
    let header = Ipv6Header {
        next_header: ipv6::NEXT_ICMPV6,
        ..*ip
    };
    header.write(out, 0);
    let start = out.len();
    body(out);
    put16(out, start + 2, 0);
    let sum = transport_checksum_v6(&ip.src, &ip.dst, ipv6::NEXT_ICMPV6, &out[start..]);
    put16(out, start + 2, sum);
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    ipv6::set_payload_length(out, ip_start, len);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::ipv6::Ipv6View;
    use super::*;
    use proptest::prelude::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn golden_neighbor_solicit() {
        let mut ns = vec![
            135, 0, 0, 0, // type NS, code 0, checksum (unchecked here)
            0, 0, 0, 0, // reserved
        ];
        ns.extend_from_slice(&addr("fe80::1").octets()); // target
        ns.extend_from_slice(&[OPT_SOURCE_LL, 1, 0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        let v = Icmpv6View::parse(&ns).unwrap();
        let p = NeighborSolicit::parse(&v).unwrap();
        assert_eq!(p.target, addr("fe80::1"));
        assert_eq!(p.source_ll, Some(MAC));
        // An option of length 0 makes the message invalid.
        ns[25] = 0;
        assert_eq!(
            NeighborSolicit::parse(&Icmpv6View::parse(&ns).unwrap()).unwrap_err(),
            PacketError::BadLength {
                field: "ndp.option.length",
                value: 0
            }
        );
        assert!(matches!(
            RouterSolicit::parse(&Icmpv6View::parse(&ns).unwrap()),
            Err(PacketError::Unsupported {
                field: "icmpv6.type",
                value: 135
            })
        ));
    }

    #[test]
    fn router_advert_round_trip() {
        let ra = RouterAdvert {
            cur_hop_limit: 255,
            managed: true,
            other: true,
            router_lifetime: 65535,
            reachable_time: 0,
            retrans_timer: 0,
            source_ll: Some(MAC),
            mtu: Some(1500),
            prefix_options: 0,
        };
        let (src, dst) = (addr("fe80::1"), addr("ff02::1"));
        let mut out = Vec::new();
        write_ipv6_icmpv6(&mut out, &Ipv6Header::new(src, dst, 0, 255), |o| {
            ra.write(o)
        });
        let ip = Ipv6View::parse(&out).unwrap();
        assert_eq!(ip.next_header(), ipv6::NEXT_ICMPV6);
        let msg = Icmpv6View::parse(ip.payload()).unwrap();
        msg.verify_checksum(&src, &dst).unwrap();
        assert!(msg.verify_checksum(&src, &addr("ff02::2")).is_err());
        assert_eq!(RouterAdvert::parse(&msg).unwrap(), ra);
        // Golden bytes of the RA body: type, code, checksum, hop limit, M|O, lifetime,
        // reachable, retrans, SLLA option, MTU option.
        let body = &ip.payload()[4..];
        assert_eq!(
            body,
            [
                255, 0xc0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0xab, 0xcd,
                0xef, 5, 1, 0, 0, 0, 0, 0x05, 0xdc
            ]
        );
    }

    #[test]
    fn neighbor_advert_and_echo_round_trip() {
        let na = NeighborAdvert {
            flags: NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
            target: addr("fe80::1"),
            target_ll: Some(MAC),
        };
        let mut out = Vec::new();
        na.write(&mut out);
        assert_eq!(
            NeighborAdvert::parse(&Icmpv6View::parse(&out).unwrap()).unwrap(),
            na
        );

        let req = [128, 0, 0, 0, 0, 7, 0, 9, 1, 2, 3];
        let mut out = Vec::new();
        write_echo_reply(&mut out, &Icmpv6View::parse(&req).unwrap());
        assert_eq!(out, [129, 0, 0, 0, 0, 7, 0, 9, 1, 2, 3]);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(v) = Icmpv6View::parse(&data) {
                let _ = (v.body(), v.mtu(), v.is_error());
                let _ = v.verify_checksum(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST);
                let _ = RouterSolicit::parse(&v);
                let _ = RouterAdvert::parse(&v);
                let _ = NeighborSolicit::parse(&v);
                let _ = NeighborAdvert::parse(&v);
            }
        }

        #[test]
        fn options_never_panic(data in proptest::collection::vec(any::<u8>(), 0..60)) {
            for o in NdOptions::new(&data) {
                let _ = o;
            }
        }
    }
}
