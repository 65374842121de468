//! Packet, byte and drop counters per interface, per VNI and of the underlay.

use std::collections::HashMap;

use crate::flow::IfaceIndex;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// A header does not parse (truncated, bad lengths, wrong versions).
    Malformed,
    /// Neither IPv4, IPv6 nor ARP (VLAN tags included), or ARP not for the gateway.
    UnsupportedEthertype,
    /// An IP protocol or ICMP type the dataplane does not forward (as dpservice).
    UnsupportedProtocol,
    /// A source address the interface does not own.
    SpoofedSource,
    /// Link-local or multicast IPv6 that is not for the gateway's responders.
    LinkLocal,
    /// DHCP the built-in server does not answer (never forwarded).
    Dhcp,
    /// No route in the VNI.
    NoRoute,
    /// Denied by the firewall (enforce mode).
    Firewall,
    /// Too big for the underlay once encapsulated (an ICMP error went back when allowed).
    TooBig,
    /// The interface's port has no TAP open.
    NoPort,
    /// An underlay packet to an address this dataplane has not registered.
    UnknownUnderlay,
    /// An underlay packet to a VIP, NAT or load balancer (not forwarded yet).
    UnsupportedTarget,
    /// Sending failed (the TAP or the underlay socket refused it).
    TxFailed,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 13] = [
        Self::Malformed,
        Self::UnsupportedEthertype,
        Self::UnsupportedProtocol,
        Self::SpoofedSource,
        Self::LinkLocal,
        Self::Dhcp,
        Self::NoRoute,
        Self::Firewall,
        Self::TooBig,
        Self::NoPort,
        Self::UnknownUnderlay,
        Self::UnsupportedTarget,
        Self::TxFailed,
    ];

    /// The name used in counters and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedEthertype => "unsupported_ethertype",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::SpoofedSource => "spoofed_source",
            Self::LinkLocal => "link_local",
            Self::Dhcp => "dhcp",
            Self::NoRoute => "no_route",
            Self::Firewall => "firewall",
            Self::TooBig => "too_big",
            Self::NoPort => "no_port",
            Self::UnknownUnderlay => "unknown_underlay",
            Self::UnsupportedTarget => "unsupported_target",
            Self::TxFailed => "tx_failed",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Packets and bytes moved and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Traffic {
    /// Counts one received packet of `len` bytes.
    pub fn rx(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }

    /// Counts one sent packet of `len` bytes.
    pub fn tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }

    /// Counts a drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drop_n(reason, 1);
    }

    /// Counts `n` drops.
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        self.drops[reason.slot()] += n;
    }

    /// Drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.slot()]
    }

    /// Every reason with a non-zero count.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops(*r)))
            .filter(|(_, n)| *n > 0)
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Every counter of the packet path.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Per interface: rx = from its VM, tx = to it.
    pub interfaces: HashMap<IfaceIndex, Traffic>,
    /// Per VNI: rx = entering the VNI, tx = leaving it (to a VM or the underlay).
    pub vnis: HashMap<u32, Traffic>,
    /// Encapsulated packets received from and sent to the underlay, and underlay drops.
    pub underlay: Traffic,
}

impl Counters {
    /// The counters of an interface.
    pub fn iface(&mut self, index: IfaceIndex) -> &mut Traffic {
        self.interfaces.entry(index).or_default()
    }

    /// The counters of a VNI.
    pub fn vni(&mut self, vni: u32) -> &mut Traffic {
        self.vnis.entry(vni).or_default()
    }
}
