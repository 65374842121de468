//! The Internet checksum (RFC 1071), the IPv4/IPv6 pseudo-headers of TCP, UDP and ICMPv6, and
//! incremental update (RFC 1624) for header rewrites such as NAT.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A running one's-complement sum. Feed it the covered bytes in order; only the last chunk
/// may have odd length (as in every protocol here, where headers are 16-bit aligned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    // Wide enough that no realistic packet overflows before `finish` folds the carries.
    acc: u64,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data`; an odd final byte is padded with zero as RFC 1071 says.
    pub fn add_bytes(&mut self, data: &[u8]) {
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            self.acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        let mut pairs = rest.chunks_exact(2);
        for p in &mut pairs {
            self.acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
        }
        if let [last] = pairs.remainder() {
            self.acc += u64::from(*last) << 8;
        }
    }

    /// Adds one 16-bit word.
    pub fn add_u16(&mut self, value: u16) {
        self.acc += u64::from(value);
    }

    /// Adds one 32-bit word (two 16-bit words).
    pub fn add_u32(&mut self, value: u32) {
        self.acc += u64::from(value);
    }

    /// The folded one's-complement sum, not yet inverted.
    pub fn fold(self) -> u16 {
        let mut s = self.acc;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        // The loop leaves at most 16 bits.
        s as u16
    }

    /// The checksum to put into a header: the inverted folded sum.
    pub fn finish(self) -> u16 {
        !self.fold()
    }
}

/// The Internet checksum of `data` (with the checksum field zeroed it is the value to store;
/// over data that includes a correct checksum it is 0).
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_bytes(data);
    c.finish()
}

/// The sum of the IPv4 pseudo-header (RFC 768 / 793).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src.octets());
    c.add_bytes(&dst.octets());
    c.add_u16(u16::from(protocol));
    c.add_u16(length);
    c
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src.octets());
    c.add_bytes(&dst.octets());
    c.add_u32(length);
    c.add_u16(u16::from(next_header));
    c
}

/// The checksum of a TCP/UDP segment over IPv4 (`segment` with its checksum field zeroed gives
/// the value to store; with a correct checksum in place it gives 0).
pub fn transport_checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    // Segments never exceed 65535 bytes over IPv4; saturating keeps a bogus input from wrapping.
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    let mut c = pseudo_header_v4(src, dst, protocol, len);
    c.add_bytes(segment);
    c.finish()
}

/// The checksum of a TCP/UDP/ICMPv6 message over IPv6.
pub fn transport_checksum_v6(
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: u8,
    segment: &[u8],
) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    let mut c = pseudo_header_v6(src, dst, next_header, len);
    c.add_bytes(segment);
    c.finish()
}

/// Incrementally updates `checksum` for one 16-bit field changing from `old` to `new`
/// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    let mut c = Checksum::new();
    c.add_u16(!checksum);
    c.add_u16(!old);
    c.add_u16(new);
    c.finish()
}

/// Incrementally updates `checksum` for a 16-bit aligned field (an address, a port pair)
/// changing from `old` to `new`; both must have the same even length.
pub fn update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_u16(!checksum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        c.add_u16(!u16::from_be_bytes([o[0], o[1]]));
        c.add_u16(u16::from_be_bytes([n[0], n[1]]));
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let mut c = Checksum::new();
        c.add_bytes(&data);
        assert_eq!(c.fold(), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (Wikipedia "IPv4 header checksum") with checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&h), 0);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(internet_checksum(&[0x12]), internet_checksum(&[0x12, 0x00]));
    }

    proptest! {
        #[test]
        fn stored_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..200)) {
            if data.len() % 2 == 1 { data.push(0); }
            data[0] = 0; data[1] = 0;
            let c = internet_checksum(&data);
            data[0..2].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(internet_checksum(&data), 0);
        }

        #[test]
        fn incremental_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 8..100),
            at in 0usize..50,
            new in any::<u16>(),
        ) {
            if data.len() % 2 == 1 { data.push(0); }
            // Field 0..2 is the checksum; the changed field is some other aligned word.
            let at = 2 + (at * 2) % (data.len() - 2);
            data[0] = 0; data[1] = 0;
            let before = internet_checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let full = internet_checksum(&data);
            let inc = update_u16(before, old, new);
            // 0x0000 and 0xffff are the same one's-complement value.
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
            let inc2 = update_bytes(before, &old.to_be_bytes(), &new.to_be_bytes());
            prop_assert_eq!(inc, inc2);
        }
    }
}
