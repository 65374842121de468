//! UDP (RFC 768): a view, checksum verification and builders that frame a payload written in
//! place behind IPv4 or IPv6 headers (no intermediate buffer).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum::{transport_checksum_v4, transport_checksum_v6};
use super::ipv4::{self, Ipv4Header};
use super::ipv6::{self, Ipv6Header};
use super::{PacketError, be16, need, put16};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A parsed UDP datagram; the view ends at its length field.
#[derive(Debug, Clone, Copy)]
pub struct UdpView<'a> {
    buf: &'a [u8],
}

impl<'a> UdpView<'a> {
    /// Views a UDP datagram (the IP payload).
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, HEADER_LEN, "udp")?;
        let len = usize::from(be16(buf, 4));
        if len < HEADER_LEN || len > buf.len() {
            return Err(PacketError::BadLength {
                field: "udp.length",
                value: len,
            });
        }
        Ok(Self {
            buf: buf.get(..len).unwrap_or(buf),
        })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf, 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf, 2)
    }
    /// Length field.
    pub fn length(&self) -> u16 {
        be16(self.buf, 4)
    }
    /// Checksum field (0 = none, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 6)
    }
    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Fails unless the checksum verifies over IPv4 (a zero checksum means none and passes).
    pub fn verify_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), PacketError> {
        if self.checksum() == 0 || transport_checksum_v4(src, dst, ipv4::PROTO_UDP, self.buf) == 0 {
            return Ok(());
        }
        Err(PacketError::BadChecksum {
            field: "udp.checksum",
        })
    }

    /// Fails unless the checksum verifies over IPv6, where it is mandatory.
    pub fn verify_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), PacketError> {
        if self.checksum() != 0 && transport_checksum_v6(src, dst, ipv6::NEXT_UDP, self.buf) == 0 {
            return Ok(());
        }
        Err(PacketError::BadChecksum {
            field: "udp.checksum",
        })
    }
}

// A computed checksum of 0 is sent as 0xffff, since 0 means "no checksum" (RFC 768).
fn nonzero(sum: u16) -> u16 {
    if sum == 0 { 0xffff } else { sum }
}

/// Appends IPv4 + UDP headers and the payload that `body` appends, then fills in lengths and
/// checksums. Payloads beyond 65507 bytes are not representable and get saturated lengths.
pub fn write_ipv4_udp(
    out: &mut Vec<u8>,
    ip: &Ipv4Header,
    src_port: u16,
    dst_port: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let ip_start = out.len();
    ip.write_placeholder(out);
    let udp_start = out.len();
    write_header_placeholder(out, src_port, dst_port);
    body(out);
    let udp_len = u16::try_from(out.len() - udp_start).unwrap_or(u16::MAX);
    put16(out, udp_start + 4, udp_len);
    let sum = transport_checksum_v4(ip.src, ip.dst, ipv4::PROTO_UDP, &out[udp_start..]);
    put16(out, udp_start + 6, nonzero(sum));
    ipv4::finish_header(out, ip_start, udp_len);
}

/// Appends IPv6 + UDP headers and the payload that `body` appends, then fills in lengths and
/// the checksum.
pub fn write_ipv6_udp(
    out: &mut Vec<u8>,
    ip: &Ipv6Header,
    src_port: u16,
    dst_port: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let ip_start = out.len();
    ip.write(out, 0);
    let udp_start = out.len();
    write_header_placeholder(out, src_port, dst_port);
    body(out);
    let udp_len = u16::try_from(out.len() - udp_start).unwrap_or(u16::MAX);
    put16(out, udp_start + 4, udp_len);
    let sum = transport_checksum_v6(&ip.src, &ip.dst, ipv6::NEXT_UDP, &out[udp_start..]);
    put16(out, udp_start + 6, nonzero(sum));
    ipv6::set_payload_length(out, ip_start, udp_len);
}

fn write_header_placeholder(out: &mut Vec<u8>, src_port: u16, dst_port: u16) {
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::ipv4::Ipv4View;
    use super::super::ipv6::Ipv6View;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_datagram() {
        let d = [
            0x00, 0x44, // source port 68
            0x00, 0x43, // destination port 67
            0x00, 0x0a, // length 10
            0x00, 0x00, // no checksum
            0xab, 0xcd, // payload
            0xee, // trailing byte beyond the length
        ];
        let v = UdpView::parse(&d).unwrap();
        assert_eq!((v.src_port(), v.dst_port(), v.length()), (68, 67, 10));
        assert_eq!(v.payload(), &[0xab, 0xcd]);
        v.verify_v4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
            .unwrap();
        assert!(
            v.verify_v6(&Ipv6Addr::UNSPECIFIED, &Ipv6Addr::LOCALHOST)
                .is_err()
        );
        let mut bad = d;
        bad[5] = 7;
        assert_eq!(
            UdpView::parse(&bad).unwrap_err(),
            PacketError::BadLength {
                field: "udp.length",
                value: 7
            }
        );
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut out = Vec::new();
        write_ipv4_udp(
            &mut out,
            &Ipv4Header::new(src, dst, ipv4::PROTO_UDP),
            1000,
            2000,
            |o| o.extend_from_slice(b"hello"),
        );
        let ip = Ipv4View::parse(&out).unwrap();
        ip.verify_checksum().unwrap();
        let u = UdpView::parse(ip.payload()).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.payload()),
            (1000, 2000, &b"hello"[..])
        );
        u.verify_v4(src, dst).unwrap();

        let s6: Ipv6Addr = "fe80::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut out = Vec::new();
        write_ipv6_udp(
            &mut out,
            &Ipv6Header::new(s6, d6, ipv6::NEXT_UDP, 64),
            547,
            546,
            |o| o.extend_from_slice(b"abc"),
        );
        let ip = Ipv6View::parse(&out).unwrap();
        assert_eq!(ip.payload_length(), 11);
        let u = UdpView::parse(ip.payload()).unwrap();
        u.verify_v6(&s6, &d6).unwrap();
        assert_eq!(u.payload(), b"abc");
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(v) = UdpView::parse(&data) {
                let _ = (v.payload(), v.verify_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST));
            }
        }
    }
}
