//! TCP header view (RFC 9293): ports, sequence numbers and flags, as much as flow tracking and
//! NAT need.

use super::{PacketError, be16, be32, byte, need};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;
/// URG flag.
pub const URG: u8 = 0x20;

/// A parsed TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpView<'a> {
    buf: &'a [u8],
}

impl<'a> TcpView<'a> {
    /// Views a TCP segment (the IP payload).
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, MIN_HEADER_LEN, "tcp")?;
        let header_len = usize::from(byte(buf, 12) >> 4) * 4;
        if header_len < MIN_HEADER_LEN || header_len > buf.len() {
            return Err(PacketError::BadLength {
                field: "tcp.data_offset",
                value: header_len,
            });
        }
        Ok(Self { buf })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf, 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf, 2)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buf, 4)
    }
    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        be32(self.buf, 8)
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buf, 12) >> 4) * 4
    }
    /// The flag bits (FIN .. CWR) of byte 13.
    pub fn flags(&self) -> u8 {
        byte(self.buf, 13)
    }
    /// Whether all of `mask` is set in the flags.
    pub fn has(&self, mask: u8) -> bool {
        self.flags() & mask == mask
    }
    /// Receive window.
    pub fn window(&self) -> u16 {
        be16(self.buf, 14)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf, 16)
    }
    /// Data after the header and options.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(self.header_len()..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_syn() {
        let s = [
            0xc0, 0x00, // source port 49152
            0x00, 0x50, // destination port 80
            0x00, 0x00, 0x00, 0x01, // seq 1
            0x00, 0x00, 0x00, 0x00, // ack 0
            0x60, // data offset 6 (24 bytes)
            SYN,  // flags
            0xff, 0xff, // window
            0x12, 0x34, // checksum
            0x00, 0x00, // urgent pointer
            0x02, 0x04, 0x05, 0xb4, // MSS 1460
            0x99, // data
        ];
        let v = TcpView::parse(&s).unwrap();
        assert_eq!((v.src_port(), v.dst_port()), (49152, 80));
        assert_eq!((v.seq(), v.ack(), v.header_len()), (1, 0, 24));
        assert!(v.has(SYN) && !v.has(ACK) && !v.has(SYN | ACK));
        assert_eq!((v.window(), v.checksum()), (0xffff, 0x1234));
        assert_eq!(v.payload(), &[0x99]);
        let mut bad = s;
        bad[12] = 0x40;
        assert_eq!(
            TcpView::parse(&bad).unwrap_err(),
            PacketError::BadLength {
                field: "tcp.data_offset",
                value: 16
            }
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(v) = TcpView::parse(&data) {
                let _ = (v.payload(), v.flags(), v.seq());
            }
        }
    }
}
