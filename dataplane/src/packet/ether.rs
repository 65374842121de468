//! Ethernet II frames: MAC addresses, a header view and a header builder. VLAN-tagged frames
//! parse (their EtherType is 0x8100) and are left to the caller to drop, as dpservice does.

use std::fmt;

use super::{PacketError, array, be16, need};

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Whether the group bit is set (broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The IPv6 multicast MAC 33:33:xx:xx:xx:xx for a multicast group (RFC 2464).
    pub fn ipv6_multicast(group: &std::net::Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A parsed Ethernet II header over a frame.
#[derive(Debug, Clone, Copy)]
pub struct EtherView<'a> {
    buf: &'a [u8],
}

impl<'a> EtherView<'a> {
    /// Views `frame`, which must hold at least the 14-byte header.
    pub fn parse(frame: &'a [u8]) -> Result<Self, PacketError> {
        need(frame, HEADER_LEN, "ether")?;
        Ok(Self { buf: frame })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        MacAddr(array(self.buf, 0))
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        MacAddr(array(self.buf, 6))
    }

    /// EtherType (0x8100 for a VLAN-tagged frame).
    pub fn ethertype(&self) -> u16 {
        be16(self.buf, 12)
    }

    /// Everything after the header.
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// Appends an Ethernet II header.
pub fn write_header(out: &mut Vec<u8>, dst: MacAddr, src: MacAddr, ethertype: u16) {
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_header() {
        let frame = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
            0x08, 0x06, // EtherType ARP
            0xaa, // payload
        ];
        let v = EtherView::parse(&frame).unwrap();
        assert_eq!(v.dst(), MacAddr::BROADCAST);
        assert_eq!(v.src().to_string(), "02:00:00:00:00:01");
        assert_eq!(v.ethertype(), ETHERTYPE_ARP);
        assert_eq!(v.payload(), &[0xaa]);
        let mut out = Vec::new();
        write_header(&mut out, v.dst(), v.src(), v.ethertype());
        assert_eq!(out, frame[..14]);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(
            EtherView::parse(&[0; 13]).unwrap_err(),
            PacketError::Truncated {
                field: "ether",
                need: 14,
                have: 13
            }
        );
    }

    #[test]
    fn ipv6_multicast_mac() {
        let g: std::net::Ipv6Addr = "ff02::1:ff00:1234".parse().unwrap();
        assert_eq!(MacAddr::ipv6_multicast(&g).to_string(), "33:33:ff:00:12:34");
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(v) = EtherView::parse(&data) {
                let _ = (v.dst(), v.src(), v.ethertype(), v.payload());
            }
        }
    }
}
