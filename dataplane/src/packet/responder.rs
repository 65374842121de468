//! The gateway side of a VM's link, as dpservice's `arp`, `ipv6_nd`, `dhcp` and `dhcpv6`
//! nodes serve it: ARP for 169.254.0.1, NS for fe80::1, RS with an RA, DHCPv4 and DHCPv6.
//! [`respond`] takes a frame from the VM and writes the answer frame. Echo requests to the
//! gateway are not answered (dpservice does not either: they find no route and are dropped).
//!
//! On purpose unlike dpservice: the ARP request that teaches the VM's MAC is answered too
//! (dpservice reflects it unanswered), NDP messages must have hop limit 255, code 0 and a
//! valid checksum (RFC 4861), and an NA to a DAD probe (source `::`) has S=0.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::arp::{self, ArpPacket, ArpView};
use super::dhcp::{self, DhcpConfig, DhcpReply};
use super::dhcpv6::{self, Dhcpv6Config, Dhcpv6Reply};
use super::ether::{self, EtherView, MacAddr};
use super::icmpv6::{
    self, Icmpv6View, NeighborAdvert, NeighborSolicit, RouterAdvert, RouterSolicit,
};
use super::ipv4::{self, Ipv4View};
use super::ipv6::{self, Ipv6Header, Ipv6View};
use super::udp::UdpView;
use super::{GATEWAY_IPV4, GATEWAY_IPV6, PacketError};

/// Hop limit of every ND message.
const ND_HOP_LIMIT: u8 = 255;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// One VM-facing interface as the responders see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The port's own MAC: the gateway MAC the VM sees.
    pub port_mac: MacAddr,
    /// The VM's IPv4 (for MAC learning from ARP).
    pub ipv4: Option<Ipv4Addr>,
    /// Whether the IPv6 overlay is on (dpservice `--enable-ipv6-overlay`); off: NS/RS dropped.
    pub ipv6_overlay: bool,
    /// DHCPv4 server settings.
    pub dhcp: DhcpConfig,
    /// DHCPv6 server settings.
    pub dhcpv6: Dhcpv6Config,
}

/// What [`respond`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An ARP reply; `learned` is the VM's MAC when the request came from the VM's own IP.
    Arp { learned: Option<MacAddr> },
    /// An NA for fe80::1; `learned` is the VM's MAC (NS option or frame source).
    NeighborAdvert { learned: MacAddr },
    /// An RA.
    RouterAdvert,
    /// A DHCPv4 reply; an ACK's client MAC is the VM's.
    Dhcp(DhcpReply),
    /// A DHCPv6 reply.
    Dhcpv6(Dhcpv6Reply),
}

/// Answers `frame` from a VM, appending the reply frame to `out`. `Ok(None)`: the frame is
/// not for a responder (ordinary traffic, or ARP/NS for another address); `Err`: malformed
/// in a way that makes the frame a drop. Nothing is appended unless an answer is returned.
pub fn respond(
    frame: &[u8],
    cfg: &InterfaceConfig,
    out: &mut Vec<u8>,
) -> Result<Option<Answer>, PacketError> {
    let eth = EtherView::parse(frame)?;
    match eth.ethertype() {
        ether::ETHERTYPE_ARP => respond_arp(&eth, cfg, out),
        ether::ETHERTYPE_IPV4 => {
            let ip = Ipv4View::parse(eth.payload())?;
            if ip.protocol() != ipv4::PROTO_UDP || ip.fragment_offset() != 0 {
                return Ok(None);
            }
            let udp = UdpView::parse(ip.payload())?;
            if udp.dst_port() != dhcp::SERVER_PORT {
                return Ok(None);
            }
            let r =
                dhcp::write_reply_frame(out, cfg.port_mac, eth.src(), udp.payload(), &cfg.dhcp)?;
            Ok(r.map(Answer::Dhcp))
        }
        ether::ETHERTYPE_IPV6 => respond_ipv6(&eth, cfg, out),
        _ => Ok(None),
    }
}

fn respond_arp(
    eth: &EtherView<'_>,
    cfg: &InterfaceConfig,
    out: &mut Vec<u8>,
) -> Result<Option<Answer>, PacketError> {
    let req = ArpView::parse(eth.payload())?;
    if req.operation() != arp::OP_REQUEST || req.target_ip() != GATEWAY_IPV4 {
        return Ok(None);
    }
    ether::write_header(out, req.sender_mac(), cfg.port_mac, ether::ETHERTYPE_ARP);
    ArpPacket {
        operation: arp::OP_REPLY,
        sender_mac: cfg.port_mac,
        sender_ip: GATEWAY_IPV4,
        target_mac: req.sender_mac(),
        target_ip: req.sender_ip(),
    }
    .write(out);
    let learned = (Some(req.sender_ip()) == cfg.ipv4).then(|| req.sender_mac());
    Ok(Some(Answer::Arp { learned }))
}

fn respond_ipv6(
    eth: &EtherView<'_>,
    cfg: &InterfaceConfig,
    out: &mut Vec<u8>,
) -> Result<Option<Answer>, PacketError> {
    let ip = Ipv6View::parse(eth.payload())?;
    let upper = ip.upper_layer()?;
    match upper.protocol {
        ipv6::NEXT_UDP => {
            let udp = UdpView::parse(upper.payload)?;
            if udp.dst_port() != dhcpv6::SERVER_PORT {
                return Ok(None);
            }
            let r = dhcpv6::write_reply_frame(
                out,
                cfg.port_mac,
                eth.src(),
                ip.src(),
                udp.payload(),
                &cfg.dhcpv6,
            )?;
            Ok(r.map(Answer::Dhcpv6))
        }
        ipv6::NEXT_ICMPV6 => {
            let msg = Icmpv6View::parse(upper.payload)?;
            if !matches!(
                msg.kind(),
                icmpv6::NEIGHBOR_SOLICIT | icmpv6::ROUTER_SOLICIT
            ) || !cfg.ipv6_overlay
            {
                return Ok(None);
            }
            if ip.hop_limit() != ND_HOP_LIMIT {
                return Err(PacketError::Unsupported {
                    field: "ipv6.hop_limit",
                    value: ip.hop_limit().into(),
                });
            }
            msg.verify_checksum(&ip.src(), &ip.dst())?;
            let dst_ip = if ip.src().is_unspecified() {
                ALL_NODES
            } else {
                ip.src()
            };
            let reply_ip = Ipv6Header::new(GATEWAY_IPV6, dst_ip, ipv6::NEXT_ICMPV6, ND_HOP_LIMIT);
            if msg.kind() == icmpv6::NEIGHBOR_SOLICIT {
                let ns = NeighborSolicit::parse(&msg)?;
                if ns.target != GATEWAY_IPV6 {
                    return Ok(None);
                }
                let solicited = if ip.src().is_unspecified() {
                    0
                } else {
                    icmpv6::NA_SOLICITED
                };
                let na = NeighborAdvert {
                    flags: icmpv6::NA_ROUTER | icmpv6::NA_OVERRIDE | solicited,
                    target: GATEWAY_IPV6,
                    target_ll: Some(cfg.port_mac),
                };
                ether::write_header(out, eth.src(), cfg.port_mac, ether::ETHERTYPE_IPV6);
                icmpv6::write_ipv6_icmpv6(out, &reply_ip, |o| na.write(o));
                let learned = ns.source_ll.unwrap_or(eth.src());
                Ok(Some(Answer::NeighborAdvert { learned }))
            } else {
                RouterSolicit::parse(&msg)?;
                ether::write_header(out, eth.src(), cfg.port_mac, ether::ETHERTYPE_IPV6);
                icmpv6::write_ipv6_icmpv6(out, &reply_ip, |o| router_advert(cfg.port_mac).write(o));
                Ok(Some(Answer::RouterAdvert))
            }
        }
        _ => Ok(None),
    }
}

/// The RA dpservice sends: M=1, O=1 (addresses and DNS from DHCPv6), hop limit 255, router
/// lifetime 65535, no timers, a source link-layer option and no prefix option (no SLAAC).
pub fn router_advert(port_mac: MacAddr) -> RouterAdvert {
    RouterAdvert {
        cur_hop_limit: 255,
        managed: true,
        other: true,
        router_lifetime: 65535,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: Some(port_mac),
        mtu: None,
        prefix_options: 0,
    }
}

/// Appends the periodic broadcast ARP request: gratuitous (sender = target = 169.254.0.1), or,
/// while the VM's MAC is unconfirmed, a probe for `probe` (the VM's IP).
pub fn write_periodic_arp(out: &mut Vec<u8>, port_mac: MacAddr, probe: Option<Ipv4Addr>) {
    ether::write_header(out, MacAddr::BROADCAST, port_mac, ether::ETHERTYPE_ARP);
    ArpPacket {
        operation: arp::OP_REQUEST,
        sender_mac: port_mac,
        sender_ip: GATEWAY_IPV4,
        target_mac: MacAddr::ZERO,
        target_ip: probe.unwrap_or(GATEWAY_IPV4),
    }
    .write(out);
}

/// Appends the periodic unsolicited RA from fe80::1 to ff02::1.
pub fn write_periodic_ra(out: &mut Vec<u8>, port_mac: MacAddr) {
    let ip = Ipv6Header::new(GATEWAY_IPV6, ALL_NODES, ipv6::NEXT_ICMPV6, ND_HOP_LIMIT);
    ether::write_header(
        out,
        MacAddr::ipv6_multicast(&ALL_NODES),
        port_mac,
        ether::ETHERTYPE_IPV6,
    );
    icmpv6::write_ipv6_icmpv6(out, &ip, |o| router_advert(port_mac).write(o));
}

/// Appends the periodic unsolicited NA (R=1, O=1, S=0, target fe80::1) to ff02::1.
pub fn write_periodic_na(out: &mut Vec<u8>, port_mac: MacAddr) {
    let ip = Ipv6Header::new(GATEWAY_IPV6, ALL_NODES, ipv6::NEXT_ICMPV6, ND_HOP_LIMIT);
    ether::write_header(
        out,
        MacAddr::ipv6_multicast(&ALL_NODES),
        port_mac,
        ether::ETHERTYPE_IPV6,
    );
    let na = NeighborAdvert {
        flags: icmpv6::NA_ROUTER | icmpv6::NA_OVERRIDE,
        target: GATEWAY_IPV6,
        target_ll: Some(port_mac),
    };
    icmpv6::write_ipv6_icmpv6(out, &ip, |o| na.write(o));
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
