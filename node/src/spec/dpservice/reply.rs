//! Readers of dpservice's Get/List answers (the reply's `status` is checked by the caller with
//! `ferrinet_proto::dpservice_status`; these read the payload of a successful reply). Error paths
//! are relative to the reply message (`prefixes[2].underlay_route`, `vip_ip.address`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;

use super::{parse_address, parse_ip_address, parse_prefix, parse_underlay};
use crate::spec::{InterfaceSpec, LbProtocol, LoadBalancerSpec, Metering, Nat, ReplyError};

/// An interface as dpservice reports it (GetInterface, ListInterfaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneInterface {
    /// Interface id.
    pub id: String,
    /// VNI.
    pub vni: u32,
    /// Primary IPv4 (`"0.0.0.0"` or empty: none).
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6 (`"::"` or empty: none).
    pub ipv6: Option<Ipv6Addr>,
    /// The interface's underlay address: the next hop of its routes.
    pub underlay: Ipv6Addr,
    /// The dataplane port (`pci_name`).
    pub device: String,
    /// Metering as reported (absent: unlimited).
    pub metering: Metering,
    /// Hostname (empty: none).
    pub hostname: Option<String>,
}

impl DataplaneInterface {
    /// Whether this is the interface `spec` in `vni` asks for, judged on VNI and IPs only.
    /// Metering and hostname are reported but are not reliable enough to trigger a re-create on
    /// their own (the real service applies metering on Mellanox only); a change of those in the
    /// spec is caught by [`crate::spec::needs_recreate`] against the last programmed spec.
    pub fn matches(&self, spec: &InterfaceSpec, vni: u32) -> bool {
        self.vni == vni && self.ipv4 == spec.ipv4 && self.ipv6 == spec.ipv6
    }
}

fn primary<T: Into<IpAddr> + Copy>(
    field: &str,
    raw: &[u8],
    pick: impl Fn(IpAddr) -> Option<T>,
) -> Result<Option<T>, ReplyError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let ip = parse_address(field, raw)?;
    let a =
        pick(ip).ok_or_else(|| ReplyError::new(field, format!("{ip} is of the wrong family")))?;
    Ok((!a.into().is_unspecified()).then_some(a))
}

/// Reads an `Interface` message.
pub fn parse_interface(msg: &pb::Interface) -> Result<DataplaneInterface, ReplyError> {
    let id = String::from_utf8(msg.id.clone())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReplyError::new("id", "not an interface id"))?;
    let ipv4 = primary("primary_ipv4", &msg.primary_ipv4, |ip| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    })?;
    let ipv6 = primary("primary_ipv6", &msg.primary_ipv6, |ip| match ip {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    })?;
    let metering = msg
        .metering_params
        .map(|m| Metering {
            total: m.total_rate,
            public: m.public_rate,
        })
        .unwrap_or_default();
    Ok(DataplaneInterface {
        id,
        vni: msg.vni,
        ipv4,
        ipv6,
        underlay: parse_underlay("underlay_route", &msg.underlay_route)?,
        device: msg.pci_name.clone(),
        metering,
        hostname: (!msg.hostname.is_empty()).then(|| msg.hostname.clone()),
    })
}

/// Reads a ListPrefixes or ListLoadBalancerPrefixes answer: each prefix with its underlay. One
/// unreadable entry fails the whole list, since a prefix that does not read cannot be addressed.
pub fn parse_prefixes(prefixes: &[pb::Prefix]) -> Result<BTreeMap<IpNet, Ipv6Addr>, ReplyError> {
    prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("prefixes[{i}]");
            let net = parse_prefix(&field, Some(p))?;
            let ul = parse_underlay(&format!("{field}.underlay_route"), &p.underlay_route)?;
            Ok((net, ul))
        })
        .collect()
}

/// Reads a GetVip answer: the VIP and its underlay.
pub fn parse_vip(reply: &pb::GetVipResponse) -> Result<(Ipv4Addr, Ipv6Addr), ReplyError> {
    let vip = match parse_ip_address("vip_ip", reply.vip_ip.as_ref())? {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => {
            return Err(ReplyError::new(
                "vip_ip.address",
                format!("{a} is not IPv4"),
            ));
        }
    };
    Ok((
        vip,
        parse_underlay("underlay_route", &reply.underlay_route)?,
    ))
}

/// Reads a GetNat answer: the NAT and its underlay.
pub fn parse_nat(reply: &pb::GetNatResponse) -> Result<(Nat, Ipv6Addr), ReplyError> {
    let ip = match parse_ip_address("nat_ip", reply.nat_ip.as_ref())? {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => {
            return Err(ReplyError::new(
                "nat_ip.address",
                format!("{a} is not IPv4"),
            ));
        }
    };
    let port = u16::try_from(reply.min_port)
        .map_err(|_| ReplyError::new("min_port", format!("{} is not a port", reply.min_port)))?;
    let end_port = u16::try_from(reply.max_port)
        .ok()
        .filter(|&e| e > port)
        .ok_or_else(|| {
            ReplyError::new(
                "max_port",
                format!("{} is not a port above min_port {port}", reply.max_port),
            )
        })?;
    Ok((
        Nat { ip, port, end_port },
        parse_underlay("underlay_route", &reply.underlay_route)?,
    ))
}

/// A load balancer as dpservice reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneLoadBalancer {
    /// VNI.
    pub vni: u32,
    /// The VIP.
    pub ip: IpAddr,
    /// (protocol, port) pairs.
    pub ports: BTreeSet<(LbProtocol, u16)>,
    /// The load balancer's underlay address.
    pub underlay: Ipv6Addr,
}

impl DataplaneLoadBalancer {
    /// Whether this is the load balancer `spec` in `vni` asks for (dpservice cannot change one:
    /// any difference means delete and create). The kind only decides where it is announced.
    pub fn matches(&self, spec: &LoadBalancerSpec, vni: u32) -> bool {
        self.vni == vni && self.ip == spec.ip && self.ports == spec.ports
    }
}

fn lb_ports(ports: &[pb::LbPort]) -> Result<BTreeSet<(LbProtocol, u16)>, ReplyError> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let protocol = match pb::Protocol::try_from(p.protocol) {
                Ok(pb::Protocol::Tcp) => LbProtocol::Tcp,
                Ok(pb::Protocol::Udp) => LbProtocol::Udp,
                _ => {
                    return Err(ReplyError::new(
                        format!("ports[{i}].protocol"),
                        format!("{} is not TCP (6) or UDP (17)", p.protocol),
                    ));
                }
            };
            let port = u16::try_from(p.port).map_err(|_| {
                ReplyError::new(
                    format!("ports[{i}].port"),
                    format!("{} is not a port", p.port),
                )
            })?;
            Ok((protocol, port))
        })
        .collect()
}

/// Reads a GetLoadBalancer answer.
pub fn parse_load_balancer(
    reply: &pb::GetLoadBalancerResponse,
) -> Result<DataplaneLoadBalancer, ReplyError> {
    Ok(DataplaneLoadBalancer {
        vni: reply.vni,
        ip: parse_ip_address("loadbalanced_ip", reply.loadbalanced_ip.as_ref())?,
        ports: lb_ports(&reply.loadbalanced_ports)?,
        underlay: parse_underlay("underlay_route", &reply.underlay_route)?,
    })
}

/// Reads one entry of a ListLoadBalancers answer: its id and load balancer.
pub fn parse_listed_load_balancer(
    msg: &pb::Loadbalancer,
) -> Result<(String, DataplaneLoadBalancer), ReplyError> {
    let id = String::from_utf8(msg.id.clone())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReplyError::new("id", "not a load balancer id"))?;
    Ok((
        id,
        DataplaneLoadBalancer {
            vni: msg.vni,
            ip: parse_ip_address("ip", msg.ip.as_ref())?,
            ports: lb_ports(&msg.ports)?,
            underlay: parse_underlay("underlay_route", &msg.underlay_route)?,
        },
    ))
}
