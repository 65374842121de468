//! A network's NetworkPolicies compiled into each interface's node firewall rules.
//!
//! The node's dataplane has dpservice's semantics: nothing gets into an interface without an
//! ingress rule accepting it, while egress is open until the interface has an egress rule. In
//! Kubernetes a pod no ingress policy selects takes all ingress, so every interface no valid
//! policy isolates for ingress gets [`ALLOW_ALL_INGRESS_V4`] / [`ALLOW_ALL_INGRESS_V6`] besides
//! its compiled rules (egress needs nothing: no egress rules already means open).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;

use super::PolicyDerived;
use crate::policy::{
    self, Direction, NetworkPolicy, PolicyInventory, PolicyObject, RuleProtocol, compile_policies,
};
use crate::resources::{ObjKey, policy_spec};

/// Id of the rule accepting all IPv4 ingress into an interface no policy isolates for ingress.
/// Fixed, so realizing again gives the node the same rule and its sync leaves it alone; it
/// cannot clash with a policy-made id (those end in eight hex digits) or an isolation rule's
/// (`isolate-...`, and only on interfaces that are isolated).
pub const ALLOW_ALL_INGRESS_V4: &str = "allow-all-ingress-v4";
/// Id of the rule accepting all IPv6 ingress, as [`ALLOW_ALL_INGRESS_V4`].
pub const ALLOW_ALL_INGRESS_V6: &str = "allow-all-ingress-v6";

/// The outcome for one network.
#[derive(Debug, Default)]
pub(crate) struct NetworkRules {
    /// Each interface's rules by interface name, or why it has none.
    pub interfaces: BTreeMap<String, Result<Vec<node_pb::FirewallRule>, String>>,
    /// Each policy's status.
    pub policies: BTreeMap<ObjKey, PolicyDerived>,
}

/// Addresses of a status list that parse (stored statuses are written by the API).
pub(crate) fn parsed_ips(ips: &[String]) -> Vec<IpAddr> {
    ips.iter().filter_map(|t| t.parse().ok()).collect()
}

/// Compiles the policies of the network named `network` (the members of one namespace).
pub(crate) fn compile(
    network: &str,
    interfaces: &[(&ObjKey, &pb::NetworkInterface)],
    load_balancers: &[(&ObjKey, &pb::LoadBalancer)],
    policies: &[(&ObjKey, &pb::NetworkPolicy)],
) -> NetworkRules {
    let mut out = NetworkRules::default();
    let labels = |m: Option<&pb::ObjectMeta>| -> crate::selector::Labels {
        m.map(|m| {
            m.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
    };
    let object = |key: &ObjKey, meta: Option<&pb::ObjectMeta>, ips: &[String]| PolicyObject {
        name: key.name.clone(),
        network: network.to_string(),
        labels: labels(meta),
        ips: parsed_ips(ips),
    };
    let inventory = PolicyInventory {
        interfaces: interfaces
            .iter()
            .map(|(k, i)| {
                let ips = i
                    .status
                    .as_ref()
                    .map(|s| s.ips.as_slice())
                    .unwrap_or_default();
                object(k, i.metadata.as_ref(), ips)
            })
            .collect(),
        load_balancers: load_balancers
            .iter()
            .map(|(k, l)| {
                let ips = l
                    .status
                    .as_ref()
                    .map(|s| s.ips.as_slice())
                    .unwrap_or_default();
                object(k, l.metadata.as_ref(), ips)
            })
            .collect(),
    };

    let mut valid = Vec::with_capacity(policies.len());
    for (key, p) in policies {
        let spec = p.spec.clone().unwrap_or_default();
        let converted = policy_spec(&spec)
            .map_err(|e| e.to_string())
            .and_then(|mut s| {
                // The reference was resolved to this network by the caller.
                s.network_ref = network.to_string();
                let policy = NetworkPolicy {
                    name: key.name.clone(),
                    spec: s,
                };
                policy
                    .validate()
                    .map(|()| policy)
                    .map_err(|e| e.to_string())
            });
        let derived = out.policies.entry((*key).clone()).or_default();
        match converted {
            Ok(policy) => {
                derived.selected_interfaces = inventory
                    .interfaces
                    .iter()
                    .filter(|i| policy.spec.network_interface_selector.matches(&i.labels))
                    .count()
                    .try_into()
                    .unwrap_or(u32::MAX);
                valid.push(policy);
            }
            Err(message) => {
                derived.message = format!("invalid, not enforced: {message}");
            }
        }
    }

    match compile_policies(network, &valid, &inventory) {
        Err(e) => {
            // Cannot happen with validated, uniquely named policies; if it does, no interface
            // gets rules rather than some getting a partial set.
            let message = format!("the network's policies do not compile: {e}");
            for i in &inventory.interfaces {
                out.interfaces.insert(i.name.clone(), Err(message.clone()));
            }
        }
        Ok(compiled) => {
            let addresses: BTreeMap<&str, &[IpAddr]> = inventory
                .interfaces
                .iter()
                .map(|i| (i.name.as_str(), i.ips.as_slice()))
                .collect();
            for (name, rules) in compiled.interfaces {
                let mut converted = Vec::with_capacity(rules.rules.len() + 2);
                if !rules.ingress_isolated {
                    let ips = addresses.get(name.as_str()).copied().unwrap_or_default();
                    converted.extend(allow_all_ingress(ips).iter().map(node_rule));
                }
                converted.extend(rules.rules.iter().map(node_rule));
                out.interfaces.insert(name, Ok(converted));
            }
            for (name, error) in compiled.errors {
                out.interfaces.insert(name, Err(error.to_string()));
            }
        }
    }
    out
}

/// The rules opening ingress of an interface with addresses `ips`: from anywhere, any protocol,
/// to any destination (as compiled ingress rules, since the interface is also reached at
/// load-balancer and routed addresses). One per family the interface has an address of: a
/// rule's prefixes have one family and match only it, and the policy compiler likewise skips
/// families an interface has no address of. Ingress first, as in the compiled rules' order.
fn allow_all_ingress(ips: &[IpAddr]) -> Vec<policy::FirewallRule> {
    let families: BTreeSet<bool> = ips.iter().map(IpAddr::is_ipv6).collect();
    families
        .into_iter()
        .map(|ipv6| {
            let (id, anywhere) = if ipv6 {
                (ALLOW_ALL_INGRESS_V6, IpNet::V6(Ipv6Net::default()))
            } else {
                (ALLOW_ALL_INGRESS_V4, IpNet::V4(Ipv4Net::default()))
            };
            policy::FirewallRule {
                id: id.to_string(),
                direction: Direction::Ingress,
                action: policy::Action::Accept,
                priority: policy::RULE_PRIORITY,
                source: anywhere,
                destination: anywhere,
                protocol: RuleProtocol::Any,
            }
        })
        .collect()
}

/// A compiled rule as the node takes it.
fn node_rule(rule: &policy::FirewallRule) -> node_pb::FirewallRule {
    let direction = match rule.direction {
        Direction::Ingress => node_pb::Direction::Ingress,
        Direction::Egress => node_pb::Direction::Egress,
    };
    let ports = |protocol: node_pb::Protocol, range: Option<policy::PortRange>| {
        Some(node_pb::ProtocolMatch {
            protocol: protocol.into(),
            icmp: None,
            port_range: range.map(|r| node_pb::PortMatch {
                src_port: None,
                end_src_port: None,
                dst_port: Some(i32::from(r.first)),
                end_dst_port: Some(i32::from(r.last)),
            }),
        })
    };
    let protocol_match = match rule.protocol {
        RuleProtocol::Any => None,
        RuleProtocol::Tcp { dst_ports } => ports(node_pb::Protocol::Tcp, dst_ports),
        RuleProtocol::Udp { dst_ports } => ports(node_pb::Protocol::Udp, dst_ports),
    };
    node_pb::FirewallRule {
        id: rule.id.clone(),
        direction: direction.into(),
        action: node_pb::Action::Accept.into(),
        priority: u32::from(rule.priority),
        source_prefix: rule.source.to_string(),
        destination_prefix: rule.destination.to_string(),
        protocol_match,
    }
}
