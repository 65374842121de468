//! Packet codecs and the VM-facing protocol responders of the software dataplane.
//!
//! Everything here is pure: functions over byte slices, no sockets, no clock. Parsers are
//! borrowing views (`*View<'a>`) that check lengths once in `parse` so that their accessors
//! cannot fail, and never allocate; builders append to a caller-provided `Vec<u8>` so a
//! per-packet path can reuse one buffer. Behaviour follows dpservice as described in
//! `shared/interop/dpservice-packets.md`; where ferrinet deliberately differs the item says so.

pub mod arp;
pub mod checksum;
pub mod dhcp;
pub mod dhcpv6;
pub mod encap;
pub mod ether;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mtu;
pub mod offload;
pub mod responder;
pub mod tcp;
pub mod udp;

use std::net::{Ipv4Addr, Ipv6Addr};

pub use ether::MacAddr;

/// The gateway address every VM sees for IPv4 (dpservice `src/dp_lpm.c`).
pub const GATEWAY_IPV4: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// The gateway address every VM sees for IPv6.
pub const GATEWAY_IPV6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Why a packet does not parse. All of these come from peer input (a VM or the underlay);
/// `field` is the path of the offending field, e.g. `ipv4.total_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the field needs.
    #[error("{field}: truncated: need {need} bytes, have {have}")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// A version field with the wrong value.
    #[error("{field}: bad version {found}")]
    BadVersion { field: &'static str, found: u8 },
    /// A length field that is inconsistent with the header or the bytes present.
    #[error("{field}: bad length {value}")]
    BadLength { field: &'static str, value: usize },
    /// A checksum that does not verify.
    #[error("{field}: bad checksum")]
    BadChecksum { field: &'static str },
    /// A well-formed value this code does not handle (e.g. a hardware type other than Ethernet).
    #[error("{field}: unsupported value {value}")]
    Unsupported { field: &'static str, value: u32 },
}

/// Fails with [`PacketError::Truncated`] unless `buf` holds at least `need` bytes.
pub(crate) fn need(buf: &[u8], need: usize, field: &'static str) -> Result<(), PacketError> {
    if buf.len() < need {
        return Err(PacketError::Truncated {
            field,
            need,
            have: buf.len(),
        });
    }
    Ok(())
}

// Readers for fixed offsets. Callers check lengths in `parse` first; out-of-range reads
// still yield zero instead of panicking so that a missed check cannot crash the dataplane.
pub(crate) fn be16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

pub(crate) fn be32(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

pub(crate) fn byte(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(b) = buf.get(at..at + N) {
        out.copy_from_slice(b);
    }
    out
}

pub(crate) fn ipv4_at(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(array::<4>(buf, at))
}

pub(crate) fn ipv6_at(buf: &[u8], at: usize) -> Ipv6Addr {
    Ipv6Addr::from(array::<16>(buf, at))
}

/// Overwrites two bytes at `at` in `out` (used to patch lengths and checksums after a body is
/// written); a no-op if out of range, which only a bug in this module could cause.
pub(crate) fn put16(out: &mut [u8], at: usize, value: u16) {
    if let Some(b) = out.get_mut(at..at + 2) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}
