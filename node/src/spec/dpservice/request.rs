//! Requests that program a validated spec into dpservice. No preferred underlays: dpservice
//! generates one per object and the node announces what it answers.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;

use super::{address_text, firewall_rule_to_dpservice, ip_address, prefix};
use crate::spec::{FirewallRule, InterfaceSpec, LbProtocol, LoadBalancerSpec, Nat};

fn id(id: &str) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// CreateInterface for interface `id` in `vni` on the dataplane port `device_name`. A missing
/// family is sent as `"0.0.0.0"` / `"::"`; metering always (0 is unlimited); no hostname is `""`.
pub fn create_interface_request(
    interface_id: &str,
    spec: &InterfaceSpec,
    vni: u32,
    device_name: &str,
) -> pb::CreateInterfaceRequest {
    pb::CreateInterfaceRequest {
        interface_type: pb::InterfaceType::Virtual as i32,
        interface_id: id(interface_id),
        vni,
        ipv4_config: Some(pb::IpConfig {
            primary_address: address_text(spec.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        }),
        ipv6_config: Some(pb::IpConfig {
            primary_address: address_text(spec.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        }),
        pxe_config: None,
        device_name: device_name.to_string(),
        metering_parameters: Some(pb::MeteringParams {
            total_rate: spec.metering.total,
            public_rate: spec.metering.public,
        }),
        preferred_underlay_route: Vec::new(),
        hostname: spec.hostname.clone().unwrap_or_default(),
    }
}

/// CreateVip.
pub fn create_vip_request(interface_id: &str, vip: Ipv4Addr) -> pb::CreateVipRequest {
    pb::CreateVipRequest {
        interface_id: id(interface_id),
        vip_ip: Some(ip_address(vip)),
        preferred_underlay_route: Vec::new(),
    }
}

/// CreateNat: the slice `[port, end_port)` as `min_port`, `max_port`.
pub fn create_nat_request(interface_id: &str, nat: &Nat) -> pb::CreateNatRequest {
    pb::CreateNatRequest {
        interface_id: id(interface_id),
        nat_ip: Some(ip_address(nat.ip)),
        min_port: u32::from(nat.port),
        max_port: u32::from(nat.end_port),
        preferred_underlay_route: Vec::new(),
    }
}

/// CreatePrefix (a routed "alias" prefix).
pub fn create_prefix_request(interface_id: &str, net: IpNet) -> pb::CreatePrefixRequest {
    pb::CreatePrefixRequest {
        interface_id: id(interface_id),
        prefix: Some(prefix(net)),
        preferred_underlay_route: Vec::new(),
    }
}

/// DeletePrefix.
pub fn delete_prefix_request(interface_id: &str, net: IpNet) -> pb::DeletePrefixRequest {
    pb::DeletePrefixRequest {
        interface_id: id(interface_id),
        prefix: Some(prefix(net)),
    }
}

/// CreateLoadBalancerPrefix (the interface is a target of the load balancer with this VIP).
pub fn create_lb_prefix_request(
    interface_id: &str,
    net: IpNet,
) -> pb::CreateLoadBalancerPrefixRequest {
    pb::CreateLoadBalancerPrefixRequest {
        interface_id: id(interface_id),
        prefix: Some(prefix(net)),
        preferred_underlay_route: Vec::new(),
    }
}

/// DeleteLoadBalancerPrefix.
pub fn delete_lb_prefix_request(
    interface_id: &str,
    net: IpNet,
) -> pb::DeleteLoadBalancerPrefixRequest {
    pb::DeleteLoadBalancerPrefixRequest {
        interface_id: id(interface_id),
        prefix: Some(prefix(net)),
    }
}

/// CreateFirewallRule.
pub fn create_firewall_rule_request(
    interface_id: &str,
    rule_id: &str,
    rule: &FirewallRule,
) -> pb::CreateFirewallRuleRequest {
    pb::CreateFirewallRuleRequest {
        interface_id: id(interface_id),
        rule: Some(firewall_rule_to_dpservice(rule_id, rule)),
    }
}

/// DeleteFirewallRule.
pub fn delete_firewall_rule_request(
    interface_id: &str,
    rule_id: &str,
) -> pb::DeleteFirewallRuleRequest {
    pb::DeleteFirewallRuleRequest {
        interface_id: id(interface_id),
        rule_id: id(rule_id),
    }
}

/// The dpservice protocol number of a load-balanced protocol.
pub(crate) fn lb_protocol(p: LbProtocol) -> pb::Protocol {
    match p {
        LbProtocol::Tcp => pb::Protocol::Tcp,
        LbProtocol::Udp => pb::Protocol::Udp,
    }
}

/// CreateLoadBalancer in `vni`, ports as dpservice protocol numbers (TCP 6, UDP 17).
pub fn create_load_balancer_request(
    lb_id: &str,
    spec: &LoadBalancerSpec,
    vni: u32,
) -> pb::CreateLoadBalancerRequest {
    pb::CreateLoadBalancerRequest {
        loadbalancer_id: id(lb_id),
        loadbalanced_ip: Some(ip_address(spec.ip)),
        vni,
        loadbalanced_ports: spec
            .ports
            .iter()
            .map(|&(p, port)| pb::LbPort {
                port: u32::from(port),
                protocol: lb_protocol(p) as i32,
            })
            .collect(),
        preferred_underlay_route: Vec::new(),
    }
}
