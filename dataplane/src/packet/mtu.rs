//! Path-MTU signalling towards the VM, beyond dpservice (which sends no ICMP errors): whether
//! encapsulation would exceed the underlay MTU, and the ICMP "fragmentation needed" (IPv4 with
//! DF) or ICMPv6 "packet too big" to send back, from the gateway address.

use super::encap::OVERHEAD;
use super::ether::{self, MacAddr};
use super::icmp;
use super::icmpv6::{self, Icmpv6View};
use super::ipv4::{self, Ipv4Header, Ipv4View};
use super::ipv6::{self, Ipv6Header, Ipv6View};
use super::{GATEWAY_IPV4, GATEWAY_IPV6, PacketError, byte};

// RFC 1812 4.3.2.3: an ICMPv4 error should quote as much as fits in 576 bytes.
const V4_ERROR_MAX: usize = 576;
// RFC 4443 2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU.
const V6_ERROR_MAX: usize = 1280;

/// Whether `inner_len` bytes of inner packet exceed `underlay_mtu` once encapsulated.
pub fn exceeds(inner_len: usize, underlay_mtu: u16) -> bool {
    inner_len + OVERHEAD > usize::from(underlay_mtu)
}

/// The largest inner packet that fits: the MTU to advertise to the VM.
pub fn inner_mtu(underlay_mtu: u16) -> u16 {
    underlay_mtu.saturating_sub(OVERHEAD as u16)
}

/// What the dataplane should do with an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It fits: encapsulate.
    Fits,
    /// Too big and an error was appended to `out`: drop the packet, send the error to the VM.
    TooBig,
    /// Too big and no error may be sent (IPv4 without DF, an ICMP error itself, an
    /// unspecified or multicast source): drop.
    Drop,
}

/// Checks `packet` (an IPv4 or IPv6 packet from the VM, without Ethernet header) against
/// `underlay_mtu`; when too big, appends the ICMP error frame (`port_mac` -> `vm_mac`).
pub fn check(
    out: &mut Vec<u8>,
    packet: &[u8],
    underlay_mtu: u16,
    port_mac: MacAddr,
    vm_mac: MacAddr,
) -> Result<Verdict, PacketError> {
    if !exceeds(packet.len(), underlay_mtu) {
        return Ok(Verdict::Fits);
    }
    let mtu = inner_mtu(underlay_mtu);
    match byte(packet, 0) >> 4 {
        4 => {
            let ip = Ipv4View::parse(packet)?;
            let is_icmp_error = ip.protocol() == ipv4::PROTO_ICMP
                && icmp::IcmpView::parse(ip.payload()).is_ok_and(|m| m.is_error());
            let src = ip.src();
            if !ip.dont_fragment()
                || is_icmp_error
                || src.is_unspecified()
                || src.is_broadcast()
                || src.is_multicast()
            {
                return Ok(Verdict::Drop);
            }
            let room = V4_ERROR_MAX - ipv4::MIN_HEADER_LEN - icmp::HEADER_LEN;
            let quoted = packet.get(..room.min(packet.len())).unwrap_or(packet);
            ether::write_header(out, vm_mac, port_mac, ether::ETHERTYPE_IPV4);
            let body_len = (icmp::HEADER_LEN + quoted.len()) as u16;
            Ipv4Header::new(GATEWAY_IPV4, src, ipv4::PROTO_ICMP).write(out, body_len);
            icmp::write_frag_needed(out, mtu, quoted);
            Ok(Verdict::TooBig)
        }
        6 => {
            let ip = Ipv6View::parse(packet)?;
            let is_icmp_error = ip.upper_layer().is_ok_and(|u| {
                u.protocol == ipv6::NEXT_ICMPV6
                    && Icmpv6View::parse(u.payload).is_ok_and(|m| m.is_error())
            });
            let src = ip.src();
            if is_icmp_error || src.is_unspecified() || src.is_multicast() {
                return Ok(Verdict::Drop);
            }
            let room = V6_ERROR_MAX - ipv6::HEADER_LEN - 8;
            let quoted = packet.get(..room.min(packet.len())).unwrap_or(packet);
            ether::write_header(out, vm_mac, port_mac, ether::ETHERTYPE_IPV6);
            let hdr = Ipv6Header::new(GATEWAY_IPV6, src, ipv6::NEXT_ICMPV6, 255);
            icmpv6::write_ipv6_icmpv6(out, &hdr, |o| {
                icmpv6::write_packet_too_big(o, u32::from(mtu), quoted)
            });
            Ok(Verdict::TooBig)
        }
        v => Err(PacketError::BadVersion {
            field: "inner.version",
            found: v,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::ether::EtherView;
    use super::super::icmp::IcmpView;
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PORT: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const VM: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn v4_packet(len: usize, df: bool) -> Vec<u8> {
        let mut h = Ipv4Header::new(Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 1, 0, 1), 17);
        h.dont_fragment = df;
        let mut p = Vec::new();
        h.write(&mut p, (len - 20) as u16);
        p.extend((0..len - 20).map(|i| i as u8));
        p
    }

    #[test]
    fn thresholds() {
        assert!(!exceeds(1460, 1500));
        assert!(exceeds(1461, 1500));
        assert_eq!(inner_mtu(1500), 1460);
        let mut out = Vec::new();
        assert_eq!(
            check(&mut out, &v4_packet(1460, true), 1500, PORT, VM),
            Ok(Verdict::Fits)
        );
        assert_eq!(
            check(&mut out, &v4_packet(1500, false), 1500, PORT, VM),
            Ok(Verdict::Drop)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn frag_needed_quotes_the_original() {
        let original = v4_packet(1500, true);
        let mut out = Vec::new();
        assert_eq!(
            check(&mut out, &original, 1500, PORT, VM),
            Ok(Verdict::TooBig)
        );
        let eth = EtherView::parse(&out).unwrap();
        assert_eq!((eth.dst(), eth.src()), (VM, PORT));
        let ip = Ipv4View::parse(eth.payload()).unwrap();
        ip.verify_checksum().unwrap();
        assert_eq!(
            (ip.src(), ip.dst()),
            (GATEWAY_IPV4, Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(ip.total_length(), 576);
        let m = IcmpView::parse(ip.payload()).unwrap();
        m.verify_checksum().unwrap();
        assert_eq!((m.kind(), m.code(), m.next_hop_mtu()), (3, 4, 1460));
        assert_eq!(m.body(), &original[..548]);
        // No error about an error.
        let mut e = Vec::new();
        Ipv4Header {
            dont_fragment: true,
            ..Ipv4Header::new(ip.dst(), ip.src(), 1)
        }
        .write(&mut e, 1480);
        icmp::write_frag_needed(&mut e, 1400, &[0; 1472]);
        assert_eq!(
            check(&mut Vec::new(), &e, 1500, PORT, VM),
            Ok(Verdict::Drop)
        );
    }

    #[test]
    fn packet_too_big_quotes_the_original() {
        let src: Ipv6Addr = "fd00::5".parse().unwrap();
        let mut original = Vec::new();
        Ipv6Header::new(src, "fd00::9".parse().unwrap(), 17, 64).write(&mut original, 1460);
        original.extend((0..1460).map(|i| i as u8));
        let mut out = Vec::new();
        assert_eq!(
            check(&mut out, &original, 1500, PORT, VM),
            Ok(Verdict::TooBig)
        );
        let ip = Ipv6View::parse(&out[14..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (GATEWAY_IPV6, src));
        assert_eq!(ip.packet().len(), 1280);
        let m = Icmpv6View::parse(ip.payload()).unwrap();
        m.verify_checksum(&ip.src(), &ip.dst()).unwrap();
        assert_eq!((m.kind(), m.code(), m.mtu()), (2, 0, 1460));
        assert_eq!(m.body(), &original[..1232]);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600), mtu in 0u16..2000) {
            let mut out = Vec::new();
            match check(&mut out, &data, mtu, PORT, VM) {
                Ok(Verdict::TooBig) => prop_assert!(!out.is_empty()),
                _ => prop_assert!(out.is_empty()),
            }
        }
    }
}
