//! The forwarding engine of the software dataplane, as pure logic: frames and underlay packets
//! in, [`Action`]s out, the clock passed in, the tables read from [`State`]. The I/O around it
//! (TAP devices, raw underlay sockets) is [`crate::io`].
//!
//! Paths, as dpservice's graph (`shared` fact sheet §1), with ferrinet's additions marked:
//! - VM frame: gateway responders (ARP, ND, RA, DHCP, DHCPv6) answer out of the same port;
//!   otherwise the IP packet is parsed, its source checked against what the interface owns
//!   (ferrinet), looked up in the VNI's table, passed through the egress firewall, then
//!   delivered to a local interface (through its ingress firewall) or checked against the
//!   underlay MTU (ICMP error back, ferrinet) and encapsulated towards the route's next hop.
//! - Underlay packet: the outer destination selects the interface in the VNF table (which
//!   gives the VNI: it is never on the wire); ingress firewall; delivered.
//! - A next hop that is one of this dataplane's own underlay addresses (a peered VNI on the
//!   same node) is taken as received from the underlay without touching the wire.
//!
//! Firewall verdicts are enforced (ferrinet) or only counted in `monitor` mode (dpservice's
//! behaviour). VIP, NAT and load-balancer translation are not done yet: packets to those
//! underlay addresses are dropped and counted (`unsupported_target`); the flow table's
//! [`crate::flow::FlowAction`] is where their translations will live.

pub mod counters;
pub mod key;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use crate::flow::{Direction, Enforcement, FlowAction, FlowKey, FlowTable, Mode, TableConfig};
use crate::packet::dhcp::DhcpConfig;
use crate::packet::dhcpv6::Dhcpv6Config;
use crate::packet::ether::{self, EtherView, MacAddr};
use crate::packet::responder::{self, Answer, InterfaceConfig};
use crate::packet::{encap, mtu};
use crate::routes::NextHop;
use crate::state::{PortInfo, State, VnfKind};

pub use counters::{Counters, DropReason, Traffic};
use key::{KeyError, Parsed};

/// Settings of the packet path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// MTU of the underlay link; inner packets bigger than this less 40 bytes do not fit.
    pub underlay_mtu: u16,
    /// Answer NS/RS and DHCPv6 (dpservice `--enable-ipv6-overlay`).
    pub ipv6_overlay: bool,
    /// MTU handed out by DHCP (dpservice `--dhcp-mtu`, 68..1500); capped at what fits the
    /// underlay.
    pub dhcp_mtu: u16,
    /// DNS servers handed out by DHCP.
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// DNS servers handed out by DHCPv6.
    pub dhcpv6_dns: Vec<Ipv6Addr>,
    /// Enforce firewall verdicts or only count them.
    pub firewall: Mode,
    /// Flow table size and timeouts.
    pub flows: TableConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            underlay_mtu: 1500,
            ipv6_overlay: true,
            dhcp_mtu: 1500,
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            firewall: Mode::Enforce,
            flows: TableConfig::default(),
        }
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this Ethernet frame to a VF port's TAP.
    ToPort {
        /// The port (device_name).
        device: Arc<str>,
        /// The frame.
        frame: Vec<u8>,
    },
    /// Send this IPv6 packet (outer header included) onto the underlay.
    ToUnderlay {
        /// Outer destination.
        dst: Ipv6Addr,
        /// The packet.
        packet: Vec<u8>,
    },
}

/// A port with a TAP open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// The port's own MAC: the gateway MAC its VM sees.
    pub port_mac: MacAddr,
    /// Where frames to the VM go: at first the TAP's MAC, then what the VM's ARP, NS and DHCP
    /// show.
    pub vm_mac: MacAddr,
}

#[derive(Debug, Clone)]
struct Port {
    device: Arc<str>,
    info: PortInfo,
    responder: InterfaceConfig,
}

/// The forwarding engine: its caches of the state's tables, the flow table and the counters.
#[derive(Debug)]
pub struct Forwarder {
    settings: Settings,
    generation: u64,
    ports: HashMap<String, Port>,
    by_id: HashMap<Arc<str>, String>,
    vnf: HashMap<Ipv6Addr, crate::state::Vnf>,
    attached: HashMap<String, Attachment>,
    flows: FlowTable,
    enforcement: Enforcement,
    counters: Counters,
}

impl Forwarder {
    /// An engine with no ports attached.
    pub fn new(settings: Settings) -> Self {
        Self {
            flows: FlowTable::new(settings.flows),
            enforcement: Enforcement::new(settings.firewall),
            settings,
            generation: 0,
            ports: HashMap::new(),
            by_id: HashMap::new(),
            vnf: HashMap::new(),
            attached: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A TAP is open for `device`.
    pub fn attach(&mut self, device: &str, attachment: Attachment) {
        if let Some(p) = self.ports.get_mut(device) {
            p.responder.port_mac = attachment.port_mac;
        }
        self.attached.insert(device.to_string(), attachment);
    }

    /// The TAP of `device` is closed.
    pub fn detach(&mut self, device: &str) {
        self.attached.remove(device);
    }

    /// The attachment of `device`.
    pub fn attachment(&self, device: &str) -> Option<Attachment> {
        self.attached.get(device).copied()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Firewall verdict counters.
    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// Flows in the table.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Every interface, as last synced.
    pub fn ports(&self) -> impl Iterator<Item = &PortInfo> {
        self.ports.values().map(|p| &p.info)
    }

    /// The interface on `device`, as last synced.
    pub fn port_info(&self, device: &str) -> Option<&PortInfo> {
        self.ports.get(device).map(|p| &p.info)
    }

    /// Counts `packets` frames for `device` dropped outside the engine: a write to its TAP
    /// failed ([`DropReason::TxFailed`]), or a read could not be cut into frames
    /// ([`DropReason::Malformed`]).
    pub fn count_port_drops(&mut self, device: &str, reason: DropReason, packets: u64) {
        if let Some(p) = self.ports.get(device) {
            let (index, vni) = (p.info.index, p.info.vni);
            self.counters.iface(index).drop_n(reason, packets);
            self.counters.vni(vni).drop_n(reason, packets);
        }
    }

    /// Counts `packets` sends to the underlay that failed after the engine decided them.
    pub fn count_underlay_tx_failures(&mut self, packets: u64) {
        self.counters.underlay.drop_n(DropReason::TxFailed, packets);
    }

    /// Forgets flows that timed out.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.flows.expire(now)
    }

    /// Rebuilds the caches if the state's topology changed since the last call.
    pub fn sync(&mut self, state: &State) {
        if state.topology_generation() == self.generation {
            return;
        }
        let t = state.topology();
        self.generation = t.generation;
        let old: Vec<_> = self.ports.values().map(|p| p.info.index).collect();
        self.ports = t
            .ports
            .into_iter()
            .map(|(device, info)| {
                let mut responder = self.responder_config(&info);
                if let Some(a) = self.attached.get(&device) {
                    responder.port_mac = a.port_mac;
                }
                let port = Port {
                    device: Arc::from(device.as_str()),
                    info,
                    responder,
                };
                (device, port)
            })
            .collect();
        for index in old {
            if !self.ports.values().any(|p| p.info.index == index) {
                self.flows.remove_interface(index);
                self.enforcement.remove_interface(index);
                self.counters.interfaces.remove(&index);
            }
        }
        self.by_id = t.devices;
        self.vnf = t.vnf;
    }

    fn responder_config(&self, info: &PortInfo) -> InterfaceConfig {
        let s = &self.settings;
        let dhcp_mtu = s
            .dhcp_mtu
            .min(mtu::inner_mtu(s.underlay_mtu))
            .clamp(68, 1500);
        let hostname = Some(info.hostname.clone()).filter(|h| !h.is_empty() && h.len() <= 63);
        // Settings are validated when loaded; a hostname that does not fit is left out.
        let dhcp = DhcpConfig::new(info.ipv4, dhcp_mtu, s.dhcp_dns.clone(), hostname)
            .unwrap_or_else(|_| DhcpConfig::minimal(info.ipv4));
        InterfaceConfig {
            port_mac: MacAddr::ZERO,
            ipv4: info.ipv4,
            ipv6_overlay: s.ipv6_overlay,
            dhcp,
            dhcpv6: Dhcpv6Config {
                ipv6: info.ipv6,
                dns: s.dhcpv6_dns.clone(),
            },
        }
    }

    /// Handles a frame the VM behind `device` sent.
    pub fn vm_frame(
        &mut self,
        state: &State,
        device: &str,
        frame: &[u8],
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.sync(state);
        let Some(att) = self.attached.get(device).copied() else {
            return;
        };
        let Some(port) = self.ports.get(device) else {
            // A TAP whose interface is gone: nothing to count it against.
            return;
        };
        let (index, vni, src_underlay) = (port.info.index, port.info.vni, port.info.underlay);
        let port_device = port.device.clone();
        let mut reply = Vec::new();
        let answered = responder::respond(frame, &port.responder, &mut reply);
        self.counters.iface(index).rx(frame.len());
        match answered {
            Ok(Some(answer)) => {
                if let Some(mac) = learned(&answer) {
                    self.learn(device, mac);
                }
                self.deliver_frame(index, port_device, reply, out);
                return;
            }
            Ok(None) => {}
            Err(_) => return self.drop_iface(index, vni, DropReason::Malformed),
        }
        let Ok(eth) = EtherView::parse(frame) else {
            return self.drop_iface(index, vni, DropReason::Malformed);
        };
        if !matches!(
            eth.ethertype(),
            ether::ETHERTYPE_IPV4 | ether::ETHERTYPE_IPV6
        ) {
            return self.drop_iface(index, vni, DropReason::UnsupportedEthertype);
        }
        let p = match key::parse(eth.payload()) {
            Ok(p) => p,
            Err(KeyError::Malformed(_)) => {
                return self.drop_iface(index, vni, DropReason::Malformed);
            }
            Err(KeyError::Unsupported { .. }) => {
                return self.drop_iface(index, vni, DropReason::UnsupportedProtocol);
            }
        };
        if p.dhcp {
            return self.drop_iface(index, vni, DropReason::Dhcp);
        }
        if let IpAddr::V6(d) = p.dst
            && (d.is_multicast() || d.is_unicast_link_local())
        {
            return self.drop_iface(index, vni, DropReason::LinkLocal);
        }
        if !self
            .ports
            .get(device)
            .is_some_and(|port| port.info.owns(p.src))
        {
            return self.drop_iface(index, vni, DropReason::SpoofedSource);
        }
        self.counters.vni(vni).rx(p.packet.len());
        let Some((_, hop)) = state.lookup(vni, p.dst) else {
            return self.drop_iface(index, vni, DropReason::NoRoute);
        };
        if !self.firewall(state, index, vni, Direction::Egress, &p, now) {
            return self.drop_iface(index, vni, DropReason::Firewall);
        }
        match hop {
            NextHop::Local(id) => {
                let Some(target) = self.by_id.get(&id).cloned() else {
                    return self.drop_iface(index, vni, DropReason::NoRoute);
                };
                self.deliver_to_vm(state, &target, &p, now, out);
            }
            NextHop::External { underlay, .. } => {
                if let Some(v) = self.vnf.get(&underlay).cloned() {
                    // Our own underlay address (a peered VNI on this node): hairpin.
                    self.counters.vni(vni).tx(p.packet.len());
                    return self.deliver_to_vnf(state, &v, p.packet, now, out);
                }
                let mut err = Vec::new();
                match mtu::check(
                    &mut err,
                    p.packet,
                    self.settings.underlay_mtu,
                    att.port_mac,
                    att.vm_mac,
                ) {
                    Ok(mtu::Verdict::Fits) => {}
                    Ok(mtu::Verdict::TooBig) => {
                        self.drop_iface(index, vni, DropReason::TooBig);
                        return self.deliver_frame(index, port_device, err, out);
                    }
                    Ok(mtu::Verdict::Drop) | Err(_) => {
                        return self.drop_iface(index, vni, DropReason::TooBig);
                    }
                }
                let src = src_underlay;
                let mut packet = Vec::with_capacity(p.packet.len() + encap::OVERHEAD);
                if encap::encapsulate(&mut packet, src, underlay, p.packet).is_err() {
                    return self.drop_iface(index, vni, DropReason::Malformed);
                }
                self.counters.vni(vni).tx(p.packet.len());
                self.counters.underlay.tx(packet.len());
                out.push(Action::ToUnderlay {
                    dst: underlay,
                    packet,
                });
            }
        }
    }

    /// Handles an encapsulated packet from the underlay: `inner` is what follows the outer
    /// header, `outer_dst` the outer destination.
    pub fn underlay_packet(
        &mut self,
        state: &State,
        outer_dst: Ipv6Addr,
        inner: &[u8],
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.sync(state);
        let len = inner.len() + encap::OVERHEAD;
        let Some(v) = self.vnf.get(&outer_dst).cloned() else {
            self.counters.underlay.rx(len);
            return self.counters.underlay.drop(DropReason::UnknownUnderlay);
        };
        self.counters.underlay.rx(len);
        self.deliver_to_vnf(state, &v, inner, now, out);
    }

    /// Whether an underlay packet to `dst` is for this dataplane at all (its /64), as opposed
    /// to traffic of another dataplane sharing the link (dev mode shares loopback).
    pub fn is_own_underlay(state: &State, dst: Ipv6Addr) -> bool {
        state.host_prefix().contains(&dst)
    }

    fn deliver_to_vnf(
        &mut self,
        state: &State,
        v: &crate::state::Vnf,
        inner: &[u8],
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let vni = v.vni;
        let p = match key::parse(inner) {
            Ok(p) => p,
            Err(KeyError::Malformed(_)) => {
                self.counters.underlay.drop(DropReason::Malformed);
                return self.counters.vni(vni).drop(DropReason::Malformed);
            }
            Err(KeyError::Unsupported { .. }) => {
                return self.counters.vni(vni).drop(DropReason::UnsupportedProtocol);
            }
        };
        self.counters.vni(vni).rx(p.packet.len());
        match (v.kind, &v.interface) {
            (VnfKind::Interface | VnfKind::AliasPrefix | VnfKind::LbPrefix, Some(id)) => {
                let Some(device) = self.by_id.get(id).cloned() else {
                    return self.counters.vni(vni).drop(DropReason::NoPort);
                };
                self.deliver_to_vm(state, &device, &p, now, out);
            }
            _ => self.counters.vni(vni).drop(DropReason::UnsupportedTarget),
        }
    }

    /// Delivers `p` to the VM on `device` through its ingress firewall.
    fn deliver_to_vm(
        &mut self,
        state: &State,
        device: &str,
        p: &Parsed<'_>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(port) = self.ports.get(device) else {
            return;
        };
        let (index, vni, name) = (port.info.index, port.info.vni, port.device.clone());
        if !self.firewall(state, index, vni, Direction::Ingress, p, now) {
            return self.drop_iface(index, vni, DropReason::Firewall);
        }
        let Some(att) = self.attached.get(device).copied() else {
            return self.drop_iface(index, vni, DropReason::NoPort);
        };
        let ethertype = if p.src.is_ipv4() {
            ether::ETHERTYPE_IPV4
        } else {
            ether::ETHERTYPE_IPV6
        };
        let mut frame = Vec::with_capacity(ether::HEADER_LEN + p.packet.len());
        ether::write_header(&mut frame, att.vm_mac, att.port_mac, ethertype);
        frame.extend_from_slice(p.packet);
        self.counters.vni(vni).tx(p.packet.len());
        self.deliver_frame(index, name, frame, out);
    }

    fn deliver_frame(
        &mut self,
        index: crate::flow::IfaceIndex,
        device: Arc<str>,
        frame: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        self.counters.iface(index).tx(frame.len());
        out.push(Action::ToPort { device, frame });
    }

    /// Passes `p` through the firewall of interface `index` in `direction`; false: drop.
    fn firewall(
        &mut self,
        state: &State,
        index: crate::flow::IfaceIndex,
        vni: u32,
        direction: Direction,
        p: &Parsed<'_>,
        now: Instant,
    ) -> bool {
        let key = FlowKey {
            iface: index,
            vni,
            src: p.key_src,
            dst: p.key_dst,
            l4: p.l4,
        };
        let decision = self
            .flows
            .process(direction, &key, p.flags, state.rule_set(index), now);
        self.enforcement.apply(index, direction, decision.action) == FlowAction::Forward
    }

    fn drop_iface(&mut self, index: crate::flow::IfaceIndex, vni: u32, reason: DropReason) {
        self.counters.iface(index).drop(reason);
        self.counters.vni(vni).drop(reason);
    }

    fn learn(&mut self, device: &str, mac: MacAddr) {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return;
        }
        if let Some(a) = self.attached.get_mut(device)
            && a.vm_mac != mac
        {
            tracing::debug!(device, %mac, "learned the VM's MAC");
            a.vm_mac = mac;
        }
    }
}

fn learned(answer: &Answer) -> Option<MacAddr> {
    match answer {
        Answer::Arp { learned } => *learned,
        Answer::NeighborAdvert { learned } => Some(*learned),
        Answer::Dhcp(r) if r.kind == crate::packet::dhcp::MessageType::Ack => Some(r.client_mac),
        _ => None,
    }
}
