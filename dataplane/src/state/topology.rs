//! What the packet path derives from the state: interfaces by VF port, and the VNF table that
//! maps an underlay address to what it belongs to (dpservice `src/dp_vnf.c`). Rebuilt by the
//! packet path only when [`State::topology_generation`] changes, so routes, which change far
//! more often, stay out of it: they are looked up per packet with [`State::lookup`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ipnet::{IpNet, Ipv6Net};

use super::State;
use crate::flow::IfaceIndex;

static GENERATIONS: AtomicU64 = AtomicU64::new(1);
static INDEXES: AtomicU32 = AtomicU32::new(0);

/// An interface index no interface has had before, in this process: flows and counters of a
/// deleted interface (or of one from before an in-process restart) can never be mistaken for
/// a new one's.
pub(super) fn next_index() -> IfaceIndex {
    IfaceIndex(INDEXES.fetch_add(1, Ordering::Relaxed))
}

/// A generation no state has had before (also not one from before a restart).
pub(super) fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

/// What an underlay address was registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VnfKind {
    /// An interface's own underlay address.
    Interface,
    /// An alias prefix (CreatePrefix) of an interface.
    AliasPrefix,
    /// A load-balancer target prefix (CreateLoadBalancerPrefix) of an interface.
    LbPrefix,
    /// A virtual IP of an interface.
    Vip,
    /// A NAT of an interface.
    Nat,
    /// A load balancer.
    LoadBalancer,
}

/// One entry of the VNF table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnf {
    /// What the address is for.
    pub kind: VnfKind,
    /// The VNI packets to it belong to (never carried on the wire).
    pub vni: u32,
    /// The interface it belongs to (none for a load balancer).
    pub interface: Option<Arc<str>>,
}

/// An interface as the packet path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Interface id.
    pub id: Arc<str>,
    /// Packet-path index (flow keys, rule sets).
    pub index: IfaceIndex,
    /// VF port (device_name).
    pub device: String,
    /// VNI.
    pub vni: u32,
    /// The VM's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The VM's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The interface's underlay address: the outer source of what it sends.
    pub underlay: Ipv6Addr,
    /// Hostname for DHCP.
    pub hostname: String,
    /// Source prefixes the VM may send from: its addresses, alias prefixes and load-balancer
    /// prefixes (a load-balancer target answers from the VIP).
    pub sources: Vec<IpNet>,
}

impl PortInfo {
    /// Whether the VM may send from `src`.
    pub fn owns(&self, src: IpAddr) -> bool {
        self.sources.iter().any(|n| n.contains(&src))
    }
}

/// The packet path's tables, at one generation.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// The generation these tables were built at.
    pub generation: u64,
    /// Interfaces by VF port name.
    pub ports: HashMap<String, PortInfo>,
    /// VF port name by interface id.
    pub devices: HashMap<Arc<str>, String>,
    /// Underlay address -> what it belongs to.
    pub vnf: HashMap<Ipv6Addr, Vnf>,
    /// The dataplane's own underlay /64.
    pub host_prefix: Option<Ipv6Net>,
}

impl State {
    /// Changes whenever [`State::topology`] would answer differently.
    pub fn topology_generation(&self) -> u64 {
        self.topology_generation
    }

    /// Marks the topology changed (called by the service after every call that may have
    /// changed interfaces, prefixes, VIPs, NATs or load balancers).
    pub(crate) fn touch_topology(&mut self) {
        self.topology_generation = next_generation();
    }

    /// The dataplane's own underlay /64.
    pub fn host_prefix(&self) -> Ipv6Net {
        self.underlays.prefix()
    }

    /// Builds the packet path's tables.
    pub fn topology(&self) -> Topology {
        let mut t = Topology {
            generation: self.topology_generation,
            host_prefix: Some(self.underlays.prefix()),
            ..Topology::default()
        };
        for i in self.interfaces.values() {
            let own = |kind| Vnf {
                kind,
                vni: i.vni,
                interface: Some(i.id.clone()),
            };
            t.vnf.insert(i.underlay, own(VnfKind::Interface));
            for u in i.prefixes.values() {
                t.vnf.insert(*u, own(VnfKind::AliasPrefix));
            }
            for u in i.lb_prefixes.values() {
                t.vnf.insert(*u, own(VnfKind::LbPrefix));
            }
            if let Some((_, u)) = i.vip {
                t.vnf.insert(u, own(VnfKind::Vip));
            }
            if let Some(n) = i.nat {
                t.vnf.insert(n.underlay, own(VnfKind::Nat));
            }
            let sources = i
                .ipv4
                .map(|a| IpNet::from(IpAddr::V4(a)))
                .into_iter()
                .chain(i.ipv6.map(|a| IpNet::from(IpAddr::V6(a))))
                .chain(i.prefixes.keys().copied())
                .chain(i.lb_prefixes.keys().copied())
                .collect();
            t.devices.insert(i.id.clone(), i.device.clone());
            t.ports.insert(
                i.device.clone(),
                PortInfo {
                    id: i.id.clone(),
                    index: i.index,
                    device: i.device.clone(),
                    vni: i.vni,
                    ipv4: i.ipv4,
                    ipv6: i.ipv6,
                    underlay: i.underlay,
                    hostname: i.hostname.clone(),
                    sources,
                },
            );
        }
        for lb in self.loadbalancers.values() {
            t.vnf.insert(
                lb.underlay,
                Vnf {
                    kind: VnfKind::LoadBalancer,
                    vni: lb.vni,
                    interface: None,
                },
            );
        }
        t
    }
}
