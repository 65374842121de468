//! IPv4 headers (RFC 791): a view that honours IHL and total length (unlike dpservice, which
//! assumes 20 bytes), and a builder for option-less headers.

use std::net::Ipv4Addr;

use super::checksum::internet_checksum;
use super::{PacketError, be16, byte, ipv4_at, need, put16};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A parsed IPv4 packet; the view ends at `total_length` (Ethernet padding is cut off).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4View<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    /// Views an IPv4 packet. The header checksum is not checked here (dpservice does not
    /// either); see [`Ipv4View::verify_checksum`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, MIN_HEADER_LEN, "ipv4")?;
        let version = byte(buf, 0) >> 4;
        if version != 4 {
            return Err(PacketError::BadVersion {
                field: "ipv4.version",
                found: version,
            });
        }
        let header_len = usize::from(byte(buf, 0) & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN || header_len > buf.len() {
            return Err(PacketError::BadLength {
                field: "ipv4.ihl",
                value: header_len,
            });
        }
        let total = usize::from(be16(buf, 2));
        if total < header_len || total > buf.len() {
            return Err(PacketError::BadLength {
                field: "ipv4.total_length",
                value: total,
            });
        }
        Ok(Self {
            buf: buf.get(..total).unwrap_or(buf),
        })
    }

    /// Fails unless the header checksum verifies.
    pub fn verify_checksum(&self) -> Result<(), PacketError> {
        if internet_checksum(self.header()) != 0 {
            return Err(PacketError::BadChecksum {
                field: "ipv4.checksum",
            });
        }
        Ok(())
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buf, 0) & 0x0f) * 4
    }
    /// Type of service (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        byte(self.buf, 1)
    }
    /// Total length field.
    pub fn total_length(&self) -> u16 {
        be16(self.buf, 2)
    }
    /// Identification field.
    pub fn identification(&self) -> u16 {
        be16(self.buf, 4)
    }
    /// Whether the don't-fragment flag is set.
    pub fn dont_fragment(&self) -> bool {
        byte(self.buf, 6) & 0x40 != 0
    }
    /// Whether the more-fragments flag is set.
    pub fn more_fragments(&self) -> bool {
        byte(self.buf, 6) & 0x20 != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn fragment_offset(&self) -> u16 {
        be16(self.buf, 6) & 0x1fff
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        byte(self.buf, 8)
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        byte(self.buf, 9)
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 10)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 12)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 16)
    }
    /// The header, options included.
    pub fn header(&self) -> &'a [u8] {
        self.buf.get(..self.header_len()).unwrap_or(&[])
    }
    /// The payload up to the total length.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(self.header_len()..).unwrap_or(&[])
    }
    /// The whole packet up to the total length.
    pub fn packet(&self) -> &'a [u8] {
        self.buf
    }
}

/// The fields of an option-less IPv4 header to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub tos: u8,
    pub identification: u16,
    pub dont_fragment: bool,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// A header with TTL 64, no DF and ID 0.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Self {
        Self {
            tos: 0,
            identification: 0,
            dont_fragment: false,
            ttl: 64,
            protocol,
            src,
            dst,
        }
    }

    /// Appends the 20-byte header with its checksum for a payload of `payload_len` bytes.
    pub fn write(&self, out: &mut Vec<u8>, payload_len: u16) {
        let start = out.len();
        self.write_placeholder(out);
        finish_header(out, start, payload_len);
    }

    /// Appends the header with zero length and checksum, to be completed by
    /// [`finish_header`] once the payload behind it is written.
    pub fn write_placeholder(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x45, self.tos, 0, 0]);
        out.extend_from_slice(&self.identification.to_be_bytes());
        out.extend_from_slice(&[if self.dont_fragment { 0x40 } else { 0 }, 0]);
        out.extend_from_slice(&[self.ttl, self.protocol, 0, 0]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

/// Fills total length and checksum of the 20-byte header at `out[start..]`.
pub fn finish_header(out: &mut [u8], start: usize, payload_len: u16) {
    let total = payload_len.saturating_add(MIN_HEADER_LEN as u16);
    put16(out, start + 2, total);
    put16(out, start + 10, 0);
    let sum = out
        .get(start..start + MIN_HEADER_LEN)
        .map(internet_checksum)
        .unwrap_or(0);
    put16(out, start + 10, sum);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    // ICMP echo request 10.0.0.5 -> 10.0.0.6, DF, TTL 64, 4 bytes of payload, 2 of padding.
    const PACKET: [u8; 26] = [
        0x45, // version 4, IHL 5
        0x00, // TOS
        0x00, 0x18, // total length 24
        0x12, 0x34, // identification
        0x40, 0x00, // DF, offset 0
        0x40, // TTL 64
        0x01, // protocol ICMP
        0x00, 0x00, // checksum (filled in by the test)
        10, 0, 0, 5, // source
        10, 0, 0, 6, // destination
        0xde, 0xad, 0xbe, 0xef, // payload
        0x00, 0x00, // Ethernet padding beyond total length
    ];

    fn golden() -> Vec<u8> {
        let mut p = PACKET.to_vec();
        let c = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn golden_packet() {
        let p = golden();
        let v = Ipv4View::parse(&p).unwrap();
        assert_eq!(v.header_len(), 20);
        assert_eq!(v.total_length(), 24);
        assert_eq!(v.identification(), 0x1234);
        assert!(v.dont_fragment() && !v.more_fragments());
        assert_eq!(v.fragment_offset(), 0);
        assert_eq!((v.ttl(), v.protocol()), (64, PROTO_ICMP));
        assert_eq!(v.src(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(v.dst(), Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(v.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        v.verify_checksum().unwrap();
    }

    #[test]
    fn round_trip() {
        let p = golden();
        let h = Ipv4Header {
            tos: 0,
            identification: 0x1234,
            dont_fragment: true,
            ttl: 64,
            protocol: PROTO_ICMP,
            src: Ipv4Addr::new(10, 0, 0, 5),
            dst: Ipv4Addr::new(10, 0, 0, 6),
        };
        let mut out = Vec::new();
        h.write(&mut out, 4);
        assert_eq!(out, p[..20]);
    }

    #[test]
    fn errors_name_the_field() {
        let p = golden();
        let mut b = p.clone();
        b[0] = 0x65;
        assert_eq!(
            Ipv4View::parse(&b).unwrap_err(),
            PacketError::BadVersion {
                field: "ipv4.version",
                found: 6
            }
        );
        let mut b = p.clone();
        b[0] = 0x44;
        assert!(matches!(
            Ipv4View::parse(&b),
            Err(PacketError::BadLength {
                field: "ipv4.ihl",
                ..
            })
        ));
        let mut b = p.clone();
        b[3] = 0x40;
        assert!(matches!(
            Ipv4View::parse(&b),
            Err(PacketError::BadLength {
                field: "ipv4.total_length",
                ..
            })
        ));
        let mut b = p.clone();
        b[8] = 1;
        assert_eq!(
            Ipv4View::parse(&b).unwrap().verify_checksum().unwrap_err(),
            PacketError::BadChecksum {
                field: "ipv4.checksum"
            }
        );
        assert!(matches!(
            Ipv4View::parse(&p[..19]),
            Err(PacketError::Truncated { .. })
        ));
    }

    #[test]
    fn options_are_skipped() {
        let mut p = vec![
            0x46, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        p.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        p.extend_from_slice(&[9, 9, 9, 9]);
        let v = Ipv4View::parse(&p).unwrap();
        assert_eq!(v.header_len(), 24);
        assert_eq!(v.payload(), &[9, 9, 9, 9]);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(v) = Ipv4View::parse(&data) {
                let _ = (v.src(), v.dst(), v.payload(), v.header(), v.verify_checksum());
                prop_assert!(v.header_len() + v.payload().len() == usize::from(v.total_length()));
            }
        }
    }
}
