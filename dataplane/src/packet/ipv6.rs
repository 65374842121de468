//! IPv6 headers (RFC 8200): a view honouring the payload length, safe skipping of extension
//! headers to the upper layer, and a header builder.

use std::net::Ipv6Addr;

use super::{PacketError, be16, be32, byte, ipv6_at, need, put16};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Next header: IPv4 encapsulated (IPv4-in-IPv6).
pub const NEXT_IPV4: u8 = 4;
/// Next header: TCP.
pub const NEXT_TCP: u8 = 6;
/// Next header: UDP.
pub const NEXT_UDP: u8 = 17;
/// Next header: IPv6 encapsulated (IPv6-in-IPv6).
pub const NEXT_IPV6: u8 = 41;
/// Next header: ICMPv6.
pub const NEXT_ICMPV6: u8 = 58;
/// Next header: no next header.
pub const NEXT_NONE: u8 = 59;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTS: u8 = 60;
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;

// More extension headers than any legitimate packet has; bounds the work per packet.
const MAX_EXTENSION_HEADERS: usize = 8;

/// A parsed IPv6 packet; the view ends at 40 + payload length.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6View<'a> {
    buf: &'a [u8],
}

/// The upper-layer header found behind the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer<'a> {
    /// Its protocol number (e.g. 6, 17, 58; 59 for none).
    pub protocol: u8,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// It and everything after it.
    pub payload: &'a [u8],
    /// Whether a fragment header was crossed (the payload is then the first fragment only).
    pub fragmented: bool,
}

impl<'a> Ipv6View<'a> {
    /// Views an IPv6 packet. Jumbograms (payload length 0 with a hop-by-hop jumbo option) are
    /// not supported: length 0 means an empty payload.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, HEADER_LEN, "ipv6")?;
        let version = byte(buf, 0) >> 4;
        if version != 6 {
            return Err(PacketError::BadVersion {
                field: "ipv6.version",
                found: version,
            });
        }
        let total = HEADER_LEN + usize::from(be16(buf, 4));
        if total > buf.len() {
            return Err(PacketError::BadLength {
                field: "ipv6.payload_length",
                value: total - HEADER_LEN,
            });
        }
        Ok(Self {
            buf: buf.get(..total).unwrap_or(buf),
        })
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buf, 0) >> 4) & 0xff) as u8
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.buf, 0) & 0x000f_ffff
    }
    /// Payload length field.
    pub fn payload_length(&self) -> u16 {
        be16(self.buf, 4)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        byte(self.buf, 6)
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        byte(self.buf, 7)
    }
    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        ipv6_at(self.buf, 8)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        ipv6_at(self.buf, 24)
    }
    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(HEADER_LEN..).unwrap_or(&[])
    }
    /// The whole packet up to the payload length.
    pub fn packet(&self) -> &'a [u8] {
        self.buf
    }

    /// Walks the extension headers to the upper layer. A non-first fragment has no upper-layer
    /// header and yields `Unsupported { field: "ipv6.fragment.offset" }`.
    pub fn upper_layer(&self) -> Result<UpperLayer<'a>, PacketError> {
        let mut next = self.next_header();
        let mut offset = HEADER_LEN;
        let mut fragmented = false;
        for _ in 0..MAX_EXTENSION_HEADERS {
            let rest = self.buf.get(offset..).unwrap_or(&[]);
            let len = match next {
                HOP_BY_HOP | ROUTING | DEST_OPTS | MOBILITY | HIP | SHIM6 => {
                    need(rest, 2, "ipv6.extension")?;
                    (usize::from(byte(rest, 1)) + 1) * 8
                }
                AUTH => {
                    need(rest, 2, "ipv6.auth")?;
                    (usize::from(byte(rest, 1)) + 2) * 4
                }
                FRAGMENT => {
                    need(rest, 8, "ipv6.fragment")?;
                    let frag_offset = be16(rest, 2) >> 3;
                    if frag_offset != 0 {
                        return Err(PacketError::Unsupported {
                            field: "ipv6.fragment.offset",
                            value: frag_offset.into(),
                        });
                    }
                    fragmented = true;
                    8
                }
                protocol => {
                    return Ok(UpperLayer {
                        protocol,
                        offset,
                        payload: rest,
                        fragmented,
                    });
                }
            };
            need(rest, len, "ipv6.extension.length")?;
            next = byte(rest, 0);
            offset += len;
        }
        Err(PacketError::Unsupported {
            field: "ipv6.extension",
            value: MAX_EXTENSION_HEADERS as u32,
        })
    }
}

/// The fields of an IPv6 header without extension headers to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub traffic_class: u8,
    pub flow_label: u32,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// A header with traffic class and flow label 0.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, hop_limit: u8) -> Self {
        Self {
            traffic_class: 0,
            flow_label: 0,
            next_header,
            hop_limit,
            src,
            dst,
        }
    }

    /// Appends the 40-byte header for a payload of `payload_len` bytes.
    pub fn write(&self, out: &mut Vec<u8>, payload_len: u16) {
        let first =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(&[self.next_header, self.hop_limit]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

/// Sets the payload length of the header at `out[start..]`.
pub fn set_payload_length(out: &mut [u8], start: usize, payload_len: u16) {
    put16(out, start + 4, payload_len);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn golden() -> Vec<u8> {
        let mut p = vec![
            0x6a, 0xb1, 0x23, 0x45, // version 6, traffic class 0xab, flow label 0x12345
            0x00, 0x04,     // payload length 4
            NEXT_UDP, // next header
            0x40,     // hop limit 64
        ];
        p.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[1, 2, 3, 4]);
        p
    }

    #[test]
    fn golden_packet() {
        let p = golden();
        let v = Ipv6View::parse(&p).unwrap();
        assert_eq!(v.traffic_class(), 0xab);
        assert_eq!(v.flow_label(), 0x12345);
        assert_eq!(v.payload_length(), 4);
        assert_eq!((v.next_header(), v.hop_limit()), (NEXT_UDP, 64));
        assert_eq!(v.src(), "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.dst(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.payload(), &[1, 2, 3, 4]);
        let ul = v.upper_layer().unwrap();
        assert_eq!(
            (ul.protocol, ul.offset, ul.fragmented),
            (NEXT_UDP, 40, false)
        );
        let mut out = Vec::new();
        Ipv6Header {
            traffic_class: 0xab,
            flow_label: 0x12345,
            next_header: NEXT_UDP,
            hop_limit: 64,
            src: v.src(),
            dst: v.dst(),
        }
        .write(&mut out, 4);
        assert_eq!(out, p[..40]);
    }

    #[test]
    fn skips_extension_headers() {
        let mut p = golden();
        p[6] = HOP_BY_HOP;
        p.truncate(40);
        // hop-by-hop: next = fragment, length 0 (8 bytes), PadN
        p.extend_from_slice(&[FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
        // fragment header: next = ICMPv6, offset 0, M=1
        p.extend_from_slice(&[NEXT_ICMPV6, 0, 0, 1, 0, 0, 0, 7]);
        p.extend_from_slice(&[128, 0, 0, 0]);
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        let ul = Ipv6View::parse(&p).unwrap().upper_layer().unwrap();
        assert_eq!(ul.protocol, NEXT_ICMPV6);
        assert_eq!(ul.offset, 56);
        assert!(ul.fragmented);
        assert_eq!(ul.payload, &[128, 0, 0, 0]);

        // A later fragment has no upper layer.
        p[40 + 8 + 2] = 0x01;
        assert!(matches!(
            Ipv6View::parse(&p).unwrap().upper_layer(),
            Err(PacketError::Unsupported {
                field: "ipv6.fragment.offset",
                ..
            })
        ));
        // An extension header longer than the packet.
        p[41] = 5;
        assert!(matches!(
            Ipv6View::parse(&p).unwrap().upper_layer(),
            Err(PacketError::Truncated { .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let mut p = golden();
        assert!(matches!(
            Ipv6View::parse(&p[..39]),
            Err(PacketError::Truncated { .. })
        ));
        p[5] = 5;
        assert_eq!(
            Ipv6View::parse(&p).unwrap_err(),
            PacketError::BadLength {
                field: "ipv6.payload_length",
                value: 5
            }
        );
        p[0] = 0x4a;
        assert!(matches!(
            Ipv6View::parse(&p),
            Err(PacketError::BadVersion { found: 4, .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(v) = Ipv6View::parse(&data) {
                let _ = (v.src(), v.dst(), v.payload(), v.flow_label(), v.traffic_class());
                if let Ok(ul) = v.upper_layer() {
                    prop_assert!(ul.offset + ul.payload.len() == v.packet().len());
                }
            }
        }

        #[test]
        fn never_panics_with_extension_chain(
            chain in proptest::collection::vec(any::<u8>(), 0..100),
            first in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60)],
        ) {
            let mut p = golden();
            p.truncate(40);
            p[6] = first;
            p.extend_from_slice(&chain);
            let len = chain.len() as u16;
            p[4..6].copy_from_slice(&len.to_be_bytes());
            let v = Ipv6View::parse(&p).unwrap();
            let _ = v.upper_layer();
        }
    }
}
