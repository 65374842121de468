//! ARP for IPv4 over Ethernet (RFC 826): the only kind dpservice answers.

use std::net::Ipv4Addr;

use super::ether::MacAddr;
use super::{PacketError, array, be16, byte, ipv4_at, need};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Operation code of a request.
pub const OP_REQUEST: u16 = 1;
/// Operation code of a reply.
pub const OP_REPLY: u16 = 2;

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy)]
pub struct ArpView<'a> {
    buf: &'a [u8],
}

impl<'a> ArpView<'a> {
    /// Views an ARP packet (the Ethernet payload); anything but Ethernet/IPv4 is unsupported.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, PACKET_LEN, "arp")?;
        let unsupported = |field, value: u32| Err(PacketError::Unsupported { field, value });
        if be16(buf, 0) != 1 {
            return unsupported("arp.hardware_type", be16(buf, 0).into());
        }
        if be16(buf, 2) != super::ether::ETHERTYPE_IPV4 {
            return unsupported("arp.protocol_type", be16(buf, 2).into());
        }
        if byte(buf, 4) != 6 {
            return Err(PacketError::BadLength {
                field: "arp.hardware_length",
                value: byte(buf, 4).into(),
            });
        }
        if byte(buf, 5) != 4 {
            return Err(PacketError::BadLength {
                field: "arp.protocol_length",
                value: byte(buf, 5).into(),
            });
        }
        Ok(Self { buf })
    }

    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buf, 6)
    }
    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr(array(self.buf, 8))
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 14)
    }
    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        MacAddr(array(self.buf, 18))
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 24)
    }
}

/// The fields of an Ethernet/IPv4 ARP packet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Appends the 28-byte packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        out.extend_from_slice(&self.operation.to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, // hardware type Ethernet
        0x08, 0x00, // protocol type IPv4
        6, 4, // address lengths
        0x00, 0x01, // operation request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // sender MAC
        10, 0, 0, 5, // sender IP
        0, 0, 0, 0, 0, 0, // target MAC (unknown)
        169, 254, 0, 1, // target IP: the gateway
    ];

    #[test]
    fn golden_request() {
        let v = ArpView::parse(&REQUEST).unwrap();
        assert_eq!(v.operation(), OP_REQUEST);
        assert_eq!(v.sender_mac(), MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(v.sender_ip(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(v.target_mac(), MacAddr::ZERO);
        assert_eq!(v.target_ip(), Ipv4Addr::new(169, 254, 0, 1));
    }

    #[test]
    fn round_trip() {
        let p = ArpPacket {
            operation: OP_REQUEST,
            sender_mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 5),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(169, 254, 0, 1),
        };
        let mut out = Vec::new();
        p.write(&mut out);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn rejects_other_hardware() {
        let mut b = REQUEST;
        b[1] = 6;
        assert_eq!(
            ArpView::parse(&b).unwrap_err(),
            PacketError::Unsupported {
                field: "arp.hardware_type",
                value: 6
            }
        );
        let mut b = REQUEST;
        b[4] = 8;
        assert!(matches!(
            ArpView::parse(&b),
            Err(PacketError::BadLength {
                field: "arp.hardware_length",
                ..
            })
        ));
        assert!(matches!(
            ArpView::parse(&REQUEST[..27]),
            Err(PacketError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(v) = ArpView::parse(&data) {
                let _ = (v.operation(), v.sender_mac(), v.sender_ip(), v.target_mac(), v.target_ip());
            }
        }
    }
}
