//! ICMPv4 (RFC 792): a view, echo and destination-unreachable (fragmentation needed,
//! RFC 1191) builders.

use super::checksum::internet_checksum;
use super::{PacketError, be16, byte, need, put16};

/// Length of the ICMP header (type, code, checksum, 4 bytes of type-specific data).
pub const HEADER_LEN: usize = 8;
/// Echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Destination-unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A parsed ICMPv4 message.
#[derive(Debug, Clone, Copy)]
pub struct IcmpView<'a> {
    buf: &'a [u8],
}

impl<'a> IcmpView<'a> {
    /// Views an ICMP message (the IPv4 payload); the checksum is not checked here.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, HEADER_LEN, "icmp")?;
        Ok(Self { buf })
    }

    /// Fails unless the checksum verifies.
    pub fn verify_checksum(&self) -> Result<(), PacketError> {
        if internet_checksum(self.buf) != 0 {
            return Err(PacketError::BadChecksum {
                field: "icmp.checksum",
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
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 2)
    }
    /// Echo identifier.
    pub fn identifier(&self) -> u16 {
        be16(self.buf, 4)
    }
    /// Echo sequence number.
    pub fn sequence(&self) -> u16 {
        be16(self.buf, 6)
    }
    /// Next-hop MTU of a fragmentation-needed message.
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buf, 6)
    }
    /// Whether this is an error message (which must never trigger another error).
    pub fn is_error(&self) -> bool {
        !matches!(self.kind(), ECHO_REPLY | ECHO_REQUEST | 9 | 10 | 13..=18)
    }
    /// Everything after the 8-byte header (echo data, or the quoted packet of an error).
    pub fn body(&self) -> &'a [u8] {
        self.buf.get(HEADER_LEN..).unwrap_or(&[])
    }
    /// The whole message.
    pub fn message(&self) -> &'a [u8] {
        self.buf
    }
}

/// Appends an ICMP message with its checksum.
pub fn write_message(out: &mut Vec<u8>, kind: u8, code: u8, rest: [u8; 4], body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[kind, code, 0, 0]);
    out.extend_from_slice(&rest);
    out.extend_from_slice(body);
    let sum = internet_checksum(&out[start..]);
    put16(out, start + 2, sum);
}

/// Appends the echo reply to `request` (same identifier, sequence and data).
pub fn write_echo_reply(out: &mut Vec<u8>, request: &IcmpView<'_>) {
    let mut rest = [0; 4];
    rest[..2].copy_from_slice(&request.identifier().to_be_bytes());
    rest[2..].copy_from_slice(&request.sequence().to_be_bytes());
    write_message(out, ECHO_REPLY, 0, rest, request.body());
}

/// Appends a "fragmentation needed" message advertising `mtu` and quoting `quoted` (the
/// start of the offending IPv4 packet).
pub fn write_frag_needed(out: &mut Vec<u8>, mtu: u16, quoted: &[u8]) {
    let m = mtu.to_be_bytes();
    write_message(
        out,
        DEST_UNREACHABLE,
        CODE_FRAG_NEEDED,
        [0, 0, m[0], m[1]],
        quoted,
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_echo() {
        // Echo request id 0x0001 seq 0x0002 data "ab": checksum computed by hand:
        // 0800 + 0001 + 0002 + 6162 = 6965 -> ~ = 969a.
        let req = [8, 0, 0x96, 0x9a, 0x00, 0x01, 0x00, 0x02, b'a', b'b'];
        let v = IcmpView::parse(&req).unwrap();
        v.verify_checksum().unwrap();
        assert_eq!(
            (v.kind(), v.code(), v.identifier(), v.sequence()),
            (8, 0, 1, 2)
        );
        assert!(!v.is_error());
        let mut out = Vec::new();
        write_echo_reply(&mut out, &v);
        // 0000 + 0001 + 0002 + 6162 = 6165 -> ~ = 9e9a.
        assert_eq!(out, [0, 0, 0x9e, 0x9a, 0, 1, 0, 2, b'a', b'b']);
    }

    #[test]
    fn frag_needed_round_trip() {
        let quoted = [0x45, 0, 0, 20, 1, 2, 0x40, 0];
        let mut out = Vec::new();
        write_frag_needed(&mut out, 1460, &quoted);
        let v = IcmpView::parse(&out).unwrap();
        v.verify_checksum().unwrap();
        assert_eq!((v.kind(), v.code(), v.next_hop_mtu()), (3, 4, 1460));
        assert!(v.is_error());
        assert_eq!(v.body(), &quoted);
        let mut bad = out.clone();
        bad[9] ^= 1;
        assert!(IcmpView::parse(&bad).unwrap().verify_checksum().is_err());
        assert!(IcmpView::parse(&out[..7]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(v) = IcmpView::parse(&data) {
                let _ = (v.verify_checksum(), v.body(), v.is_error(), v.next_hop_mtu());
            }
        }
    }
}
