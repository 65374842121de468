//! The routes an object announces to the route servers, as metalnet announces them.
//!
//! | object | VNI | destination | next hop type |
//! |---|---|---|---|
//! | interface IP (each) | network | IP/32 or /128 | STANDARD |
//! | interface IPv6 IP (also) | public | IP/128 | STANDARD |
//! | routed prefix | network | prefix | STANDARD |
//! | load-balancer target | network | prefix | LOADBALANCER_TARGET |
//! | virtual IP | public | VIP/32 | STANDARD |
//! | NAT | public | NAT IP/32 | STANDARD |
//! | NAT (second route) | network | NAT IP/32 | NAT, ports `port..end_port` |
//! | load balancer, internal | network | IP/32 or /128 | STANDARD |
//! | load balancer, public | public | IP/32 or /128 | STANDARD |
//!
//! Each next hop is the underlay address dpservice answered for that object, with target VNI 0.
//! An object is announced only once it has an underlay (it exists in dpservice); the caller
//! passes the underlays of objects that match the spec. The result is a set, so announcing the
//! difference between two results ([`crate::spec::diff`]) withdraws exactly what went away.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_route_client::route::{NextHop, NextHopType, Route};
use ipnet::IpNet;

use super::{InterfaceSpec, LbKind, LoadBalancerSpec};

/// The underlays dpservice answered for an interface's objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceUnderlays {
    /// The interface (its IPs' routes).
    pub interface: Option<Ipv6Addr>,
    /// The virtual IP.
    pub vip: Option<Ipv6Addr>,
    /// The NAT.
    pub nat: Option<Ipv6Addr>,
    /// Each routed prefix.
    pub prefixes: BTreeMap<IpNet, Ipv6Addr>,
    /// Each load-balancer target prefix.
    pub lb_targets: BTreeMap<IpNet, Ipv6Addr>,
}

fn route(vni: u32, destination: IpNet, address: Ipv6Addr, kind: NextHopType) -> Route {
    Route {
        vni,
        destination,
        next_hop: NextHop {
            address,
            target_vni: 0,
            kind,
            port_from: 0,
            port_to: 0,
        },
    }
}

/// The routes interface `spec` in network `vni` announces, given its underlays.
pub fn interface_routes(
    spec: &InterfaceSpec,
    vni: u32,
    public_vni: u32,
    underlays: &InterfaceUnderlays,
) -> BTreeSet<Route> {
    let std = NextHopType::Standard;
    let mut out = BTreeSet::new();
    if let Some(ul) = underlays.interface {
        for ip in spec.ips() {
            out.insert(route(vni, IpNet::from(ip), ul, std));
            if ip.is_ipv6() {
                out.insert(route(public_vni, IpNet::from(ip), ul, std));
            }
        }
    }
    for net in &spec.prefixes {
        if let Some(&ul) = underlays.prefixes.get(net) {
            out.insert(route(vni, *net, ul, std));
        }
    }
    for net in &spec.lb_targets {
        if let Some(&ul) = underlays.lb_targets.get(net) {
            out.insert(route(vni, *net, ul, NextHopType::LoadBalancerTarget));
        }
    }
    if let (Some(vip), Some(ul)) = (spec.virtual_ip, underlays.vip) {
        out.insert(route(public_vni, IpNet::from(IpAddr::V4(vip)), ul, std));
    }
    if let (Some(nat), Some(ul)) = (spec.nat, underlays.nat) {
        let dest = IpNet::from(IpAddr::V4(nat.ip));
        out.insert(route(public_vni, dest, ul, std));
        let mut r = route(vni, dest, ul, NextHopType::Nat);
        r.next_hop.port_from = nat.port;
        r.next_hop.port_to = nat.end_port;
        out.insert(r);
    }
    out
}

/// The route load balancer `spec` in network `vni` announces with its underlay: its IP, in the
/// network VNI when internal, in the public VNI when public.
pub fn load_balancer_routes(
    spec: &LoadBalancerSpec,
    vni: u32,
    public_vni: u32,
    underlay: Option<Ipv6Addr>,
) -> BTreeSet<Route> {
    let announce_vni = match spec.kind {
        LbKind::Internal => vni,
        LbKind::Public => public_vni,
    };
    underlay
        .map(|ul| {
            route(
                announce_vni,
                IpNet::from(spec.ip),
                ul,
                NextHopType::Standard,
            )
        })
        .into_iter()
        .collect()
}
