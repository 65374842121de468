//! IPv4-in-IPv6 and IPv6-in-IPv6 encapsulation as dpservice's `ipip_encap` / `ipip_decap`
//! nodes do it: one 40-byte outer IPv6 header (traffic class 0, flow label 0, hop limit 64,
//! next header 4 or 41), no extension or UDP header, no VNI on the wire.

use std::net::Ipv6Addr;

use super::ether::{self, MacAddr};
use super::ipv6::{self, Ipv6Header, Ipv6View};
use super::{PacketError, byte};

/// Hop limit of the outer header.
pub const OUTER_HOP_LIMIT: u8 = 64;
/// Bytes encapsulation adds to the inner packet.
pub const OVERHEAD: usize = ipv6::HEADER_LEN;

/// The family of an encapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// IPv4-in-IPv6 (next header 4).
    Ipv4,
    /// IPv6-in-IPv6 (next header 41).
    Ipv6,
}

impl Inner {
    /// The outer next-header value.
    pub fn next_header(self) -> u8 {
        match self {
            Inner::Ipv4 => ipv6::NEXT_IPV4,
            Inner::Ipv6 => ipv6::NEXT_IPV6,
        }
    }

    /// The family of `packet` from its version nibble.
    pub fn of(packet: &[u8]) -> Result<Self, PacketError> {
        match byte(packet, 0) >> 4 {
            _ if packet.is_empty() => Err(PacketError::Truncated {
                field: "inner",
                need: 1,
                have: 0,
            }),
            4 => Ok(Inner::Ipv4),
            6 => Ok(Inner::Ipv6),
            v => Err(PacketError::BadVersion {
                field: "inner.version",
                found: v,
            }),
        }
    }
}

/// Appends the outer header and `inner` (an IPv4 or IPv6 packet without Ethernet header).
/// `underlay_src` is the sending interface's underlay address, `next_hop` the route's.
pub fn encapsulate(
    out: &mut Vec<u8>,
    underlay_src: Ipv6Addr,
    next_hop: Ipv6Addr,
    inner: &[u8],
) -> Result<Inner, PacketError> {
    let family = Inner::of(inner)?;
    let len = u16::try_from(inner.len()).map_err(|_| PacketError::BadLength {
        field: "inner.length",
        value: inner.len(),
    })?;
    Ipv6Header::new(
        underlay_src,
        next_hop,
        family.next_header(),
        OUTER_HOP_LIMIT,
    )
    .write(out, len);
    out.extend_from_slice(inner);
    Ok(family)
}

/// Appends an underlay Ethernet header (`src` = the uplink's MAC, `dst` = the underlay
/// router's) followed by [`encapsulate`].
pub fn encapsulate_frame(
    out: &mut Vec<u8>,
    src: MacAddr,
    dst: MacAddr,
    underlay_src: Ipv6Addr,
    next_hop: Ipv6Addr,
    inner: &[u8],
) -> Result<Inner, PacketError> {
    let start = out.len();
    ether::write_header(out, dst, src, ether::ETHERTYPE_IPV6);
    encapsulate(out, underlay_src, next_hop, inner).inspect_err(|_| out.truncate(start))
}

/// A decapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// Outer source (not checked by dpservice).
    pub outer_src: Ipv6Addr,
    /// Outer destination: selects the interface, VIP, NAT or LB.
    pub outer_dst: Ipv6Addr,
    /// Inner family.
    pub inner_family: Inner,
    /// The inner packet, up to the outer payload length.
    pub inner: &'a [u8],
}

/// Strips the outer header of an underlay packet (without Ethernet header). As in dpservice,
/// the outer next header must be 4 or 41 directly (extension headers are refused); unlike
/// dpservice, the inner version must match it.
pub fn decapsulate(packet: &[u8]) -> Result<Decapsulated<'_>, PacketError> {
    let outer = Ipv6View::parse(packet)?;
    let family = match outer.next_header() {
        ipv6::NEXT_IPV4 => Inner::Ipv4,
        ipv6::NEXT_IPV6 => Inner::Ipv6,
        other => {
            return Err(PacketError::Unsupported {
                field: "ipv6.next_header",
                value: other.into(),
            });
        }
    };
    let inner = outer.payload();
    if Inner::of(inner)? != family {
        return Err(PacketError::BadVersion {
            field: "inner.version",
            found: byte(inner, 0) >> 4,
        });
    }
    Ok(Decapsulated {
        outer_src: outer.src(),
        outer_dst: outer.dst(),
        inner_family: family,
        inner,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    // A minimal inner IPv4 header (20 bytes, no payload; checksum irrelevant here).
    const INNER_V4: [u8; 20] = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    #[test]
    fn golden_ipv4_in_ipv6() {
        let mut out = Vec::new();
        let fam = encapsulate(
            &mut out,
            a("fc00:1::d000:0:1"),
            a("fc00:2::d000:0:2"),
            &INNER_V4,
        );
        assert_eq!(fam.unwrap(), Inner::Ipv4);
        let mut expected = vec![
            0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
            0x00, 0x14, // payload length 20
            0x04, // next header 4: IPv4
            0x40, // hop limit 64
        ];
        expected.extend_from_slice(&[0xfc, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xd0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0xfc, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0xd0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&INNER_V4);
        assert_eq!(out, expected);

        let d = decapsulate(&out).unwrap();
        assert_eq!(d.outer_src, a("fc00:1::d000:0:1"));
        assert_eq!(d.outer_dst, a("fc00:2::d000:0:2"));
        assert_eq!(d.inner_family, Inner::Ipv4);
        assert_eq!(d.inner, INNER_V4);
    }

    #[test]
    fn golden_ipv6_in_ipv6_frame() {
        let mut inner = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        inner.extend_from_slice(&a("fd00::1").octets());
        inner.extend_from_slice(&a("fd00::2").octets());
        let mut out = Vec::new();
        let (src, dst) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        encapsulate_frame(&mut out, src, dst, a("fc00::1"), a("fc00::2"), &inner).unwrap();
        assert_eq!(out[..14], [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
        assert_eq!(out[14 + 4..14 + 8], [0, 40, 41, 64]);
        let d = decapsulate(&out[14..]).unwrap();
        assert_eq!((d.inner_family, d.inner), (Inner::Ipv6, &inner[..]));
    }

    #[test]
    fn refuses_what_dpservice_drops() {
        let mut out = Vec::new();
        encapsulate(&mut out, a("fc00::1"), a("fc00::2"), &INNER_V4).unwrap();
        out[6] = 17;
        assert_eq!(
            decapsulate(&out).unwrap_err(),
            PacketError::Unsupported {
                field: "ipv6.next_header",
                value: 17
            }
        );
        out[6] = 41;
        assert!(matches!(
            decapsulate(&out),
            Err(PacketError::BadVersion {
                field: "inner.version",
                ..
            })
        ));
        assert!(matches!(
            encapsulate(&mut Vec::new(), a("::1"), a("::1"), &[0x50]),
            Err(PacketError::BadVersion { found: 5, .. })
        ));
        let mut buf = vec![1, 2, 3];
        let e = encapsulate_frame(
            &mut buf,
            MacAddr::ZERO,
            MacAddr::ZERO,
            a("::1"),
            a("::1"),
            &[],
        );
        assert!(e.is_err());
        assert_eq!(buf, [1, 2, 3]);
    }

    proptest! {
        #[test]
        fn decap_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decapsulate(&data);
        }

        #[test]
        fn round_trip(mut inner in proptest::collection::vec(any::<u8>(), 1..200), v6 in any::<bool>()) {
            inner[0] = (inner[0] & 0x0f) | if v6 { 0x60 } else { 0x40 };
            let mut out = Vec::new();
            encapsulate(&mut out, a("fc00::1"), a("fc00::2"), &inner).unwrap();
            let d = decapsulate(&out).unwrap();
            prop_assert_eq!(d.inner, &inner[..]);
        }
    }
}
