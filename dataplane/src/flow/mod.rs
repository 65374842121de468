//! Firewall enforcement for the software dataplane, as pure logic: no sockets, no threads, the
//! clock passed in. The packet path (a later piece of work) parses a frame into a [`FlowKey`],
//! asks the [`FlowTable`] what to do with it and lets [`Enforcement`] apply the operator's
//! [`Mode`].
//!
//! - [`rules`]: an interface's firewall rules compiled from what [`crate::state`] stores, with
//!   dpservice's semantics ([`RuleSet::evaluate`]).
//! - [`table`]: the stateful flow table: the first packet of a flow is evaluated, its verdict
//!   holds for the flow and its replies until the flow expires.
//! - [`mode`]: `Enforce` or `Monitor`, and verdict counters per interface and direction.
//!
//! The key is built by the caller: for ICMP echo the identifier is part of the key so that a
//! reply joins its request; for an ICMP error the caller keys the packet from the embedded header
//! (as dpservice's conntrack does) so that it joins the flow it reports on.

pub mod mode;
pub mod rules;
pub mod table;

use std::net::IpAddr;

pub use mode::{Enforcement, Mode, ModeError, VerdictCounters};
pub use rules::{RuleError, RuleSet, RuleSets, Verdict};
pub use table::{
    Decision, Flow, FlowAction, FlowTable, Seen, TableConfig, TableStats, TcpState, Timeouts,
};

/// The dataplane's own small index of an interface (its port number on the packet path), so
/// that a flow key is `Copy` and cheap to hash; the packet path maps API ids to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceIndex(pub u32);

/// Which way a packet crosses an interface, seen from the VM: `Ingress` into the VM, `Egress`
/// out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Towards the VM.
    Ingress,
    /// From the VM.
    Egress,
}

impl Direction {
    /// The other direction: that of a flow's replies.
    pub fn reverse(self) -> Self {
        match self {
            Self::Ingress => Self::Egress,
            Self::Egress => Self::Ingress,
        }
    }
}

/// ICMPv4 echo request and reply types.
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request and reply types.
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// The transport part of a flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP ports.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP or ICMPv6 (the addresses' family tells which; ICMP rules match both).
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// Echo identifier; 0 for other types.
        id: u16,
    },
    /// Any other IP protocol, by number.
    Other(u8),
}

/// What identifies a flow: interface, VNI, addresses and transport fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The interface the packet enters or leaves the VM through.
    pub iface: IfaceIndex,
    /// The interface's VNI.
    pub vni: u32,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol and ports or ICMP fields.
    pub l4: L4,
}

impl FlowKey {
    /// The key a reply to this packet carries: addresses and ports swapped, an echo request
    /// turned into an echo reply (and back).
    pub fn reverse(&self) -> Self {
        let l4 = match self.l4 {
            L4::Tcp { src_port, dst_port } => L4::Tcp {
                src_port: dst_port,
                dst_port: src_port,
            },
            L4::Udp { src_port, dst_port } => L4::Udp {
                src_port: dst_port,
                dst_port: src_port,
            },
            L4::Icmp {
                icmp_type,
                code,
                id,
            } => L4::Icmp {
                icmp_type: match (self.src.is_ipv6(), icmp_type) {
                    (false, ICMP_ECHO_REQUEST) => ICMP_ECHO_REPLY,
                    (false, ICMP_ECHO_REPLY) => ICMP_ECHO_REQUEST,
                    (true, ICMPV6_ECHO_REQUEST) => ICMPV6_ECHO_REPLY,
                    (true, ICMPV6_ECHO_REPLY) => ICMPV6_ECHO_REQUEST,
                    (_, other) => other,
                },
                code,
                id,
            },
            other @ L4::Other(_) => other,
        };
        Self {
            src: self.dst,
            dst: self.src,
            l4,
            ..*self
        }
    }
}

/// TCP header flags of a packet, as far as the flow table needs them; ignored for other
/// protocols.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: Self = Self(0x01);
    /// SYN.
    pub const SYN: Self = Self(0x02);
    /// RST.
    pub const RST: Self = Self(0x04);
    /// ACK.
    pub const ACK: Self = Self(0x10);
    /// No flags (also what non-TCP packets pass).
    pub const NONE: Self = Self(0);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(l4: L4) -> FlowKey {
        FlowKey {
            iface: IfaceIndex(1),
            vni: 100,
            src: "10.0.0.1".parse().expect("test value"),
            dst: "10.0.0.2".parse().expect("test value"),
            l4,
        }
    }

    #[test]
    fn reverse_swaps_addresses_and_ports() {
        let k = key(L4::Tcp {
            src_port: 1000,
            dst_port: 80,
        });
        let r = k.reverse();
        assert_eq!(r.src, k.dst);
        assert_eq!(r.dst, k.src);
        assert_eq!(
            r.l4,
            L4::Tcp {
                src_port: 80,
                dst_port: 1000
            }
        );
        assert_eq!(r.reverse(), k);
    }

    #[test]
    fn reverse_of_echo_is_echo_reply() {
        let k = key(L4::Icmp {
            icmp_type: 8,
            code: 0,
            id: 7,
        });
        assert_eq!(
            k.reverse().l4,
            L4::Icmp {
                icmp_type: 0,
                code: 0,
                id: 7
            }
        );
        let v6 = FlowKey {
            src: "fd00::1".parse().expect("test value"),
            dst: "fd00::2".parse().expect("test value"),
            l4: L4::Icmp {
                icmp_type: 128,
                code: 0,
                id: 7,
            },
            ..k
        };
        assert_eq!(
            v6.reverse().l4,
            L4::Icmp {
                icmp_type: 129,
                code: 0,
                id: 7
            }
        );
        assert_eq!(v6.reverse().reverse(), v6);
    }
}
