//! Conversions of the API's text fields into the pure modules' types (addresses, prefixes,
//! families, label selectors, subnets, policies), each failure named by its field path.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;
use ipnet::IpNet;

use super::errors::{FieldError, ValidationErrors};
use crate::ipam::{AddressRange, IpFamily, SubnetRoute, SubnetSpec};
use crate::policy;
use crate::selector::{LabelSelector, Operator, Requirement};

/// `"IPv4"` or `"IPv6"`, spelled exactly so.
pub fn ip_family(text: &str) -> Option<IpFamily> {
    match text {
        "IPv4" => Some(IpFamily::V4),
        "IPv6" => Some(IpFamily::V6),
        _ => None,
    }
}

/// A family field: `"IPv4"` or `"IPv6"`.
pub(crate) fn family_field(path: &str, text: &str) -> Result<IpFamily, FieldError> {
    ip_family(text).ok_or_else(|| FieldError::new(path, format!("{text:?} is not IPv4 or IPv6")))
}

/// An address, not the unspecified one (`0.0.0.0`, `::` mean "none" to dpservice).
pub(crate) fn address(path: &str, text: &str) -> Result<IpAddr, FieldError> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| FieldError::new(path, format!("{text:?} is not an IP address")))?;
    if ip.is_unspecified() {
        return Err(FieldError::new(
            path,
            format!("{ip} is the unspecified address"),
        ));
    }
    Ok(ip)
}

/// A prefix `address/length` that parses, host bits not checked.
fn any_prefix(path: &str, text: &str) -> Result<IpNet, FieldError> {
    text.parse()
        .map_err(|_| FieldError::new(path, format!("{text:?} is not a prefix (address/length)")))
}

/// A prefix in canonical form: host bits set are more likely a typo than a wish for the
/// network, so they are refused rather than cleared.
pub(crate) fn prefix(path: &str, text: &str) -> Result<IpNet, FieldError> {
    let net = any_prefix(path, text)?;
    if net.trunc() != net {
        return Err(FieldError::new(
            path,
            format!("{net} has host bits set (the network is {})", net.trunc()),
        ));
    }
    Ok(net)
}

/// A label selector, converted and validated; `path` names the selector field
/// (`spec.networkInterfaceSelector`). `None` selects everything.
pub fn selector(sel: &pb::LabelSelector, path: &str) -> Result<LabelSelector, ValidationErrors> {
    let converted = convert_selector(&sel.match_labels, &sel.match_expressions, path)?;
    converted.validate(path).map_err(|errors| {
        ValidationErrors(
            errors
                .0
                .into_iter()
                .map(|e| FieldError::new(e.field, e.problem))
                .collect(),
        )
    })?;
    Ok(converted)
}

/// [`selector`] of an optional field: unset selects everything.
pub(crate) fn optional_selector(
    sel: Option<&pb::LabelSelector>,
    path: &str,
) -> Result<LabelSelector, ValidationErrors> {
    sel.map_or(Ok(LabelSelector::everything()), |s| selector(s, path))
}

/// The selector's terms, without validating keys and values (the policy module validates its
/// selectors itself; validating here too would report each problem twice).
fn convert_selector(
    labels: &std::collections::HashMap<String, String>,
    expressions: &[pb::LabelRequirement],
    path: &str,
) -> Result<LabelSelector, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let match_labels: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut match_expressions = Vec::with_capacity(expressions.len());
    for (i, r) in expressions.iter().enumerate() {
        let operator = match r.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                errors.push(
                    format!("{path}.matchExpressions[{i}].operator"),
                    format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
                );
                continue;
            }
        };
        match_expressions.push(Requirement::new(r.key.clone(), operator, r.values.clone()));
    }
    errors.or_ok(LabelSelector {
        match_labels,
        match_expressions,
    })
}

/// A network's subnets as IPAM takes them: `spec.subnets` in order, then `spec.prefix` (when
/// set) as one more subnet of its whole CIDR. Only the text is checked here; whether the
/// subnets are valid together is [`NetworkSubnets::new`](crate::ipam::NetworkSubnets::new)'s
/// to say.
pub fn subnets(spec: &pb::NetworkSpec) -> Result<Vec<SubnetSpec>, ValidationErrors> {
    let (parsed, errors) = parse_subnets(spec);
    errors.or_ok(parsed.into_iter().map(|(_, s)| s).collect())
}

/// The subnets that parsed, each with the path of the field it came from (`spec.subnets[2]`,
/// `spec.prefix`), and the errors of those that did not.
pub(crate) fn parse_subnets(
    spec: &pb::NetworkSpec,
) -> (Vec<(String, SubnetSpec)>, ValidationErrors) {
    let mut errors = ValidationErrors::default();
    let mut out = Vec::with_capacity(spec.subnets.len() + 1);
    for (i, subnet) in spec.subnets.iter().enumerate() {
        let base = format!("spec.subnets[{i}]");
        if let Some(parsed) = errors.take(parse_subnet(&base, subnet)) {
            out.push((base, parsed));
        }
    }
    if !spec.prefix.is_empty() {
        // Host bits are the subnet check's to report, as for `spec.subnets[i].cidr`.
        match any_prefix("spec.prefix", &spec.prefix) {
            Ok(cidr) => out.push(("spec.prefix".to_string(), SubnetSpec::new(cidr))),
            Err(e) => errors.0.push(e),
        }
    }
    (out, errors)
}

/// The value of a field that converted; else its error is kept.
fn keep<T>(errors: &mut ValidationErrors, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.0.push(e)).ok()
}

fn parse_subnet(base: &str, subnet: &pb::Subnet) -> Result<SubnetSpec, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let cidr = keep(
        &mut errors,
        any_prefix(&format!("{base}.cidr"), &subnet.cidr),
    );
    let allocation_ranges: Vec<AddressRange> = subnet
        .allocation_ranges
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let path = format!("{base}.allocationRanges[{i}]");
            let start = keep(&mut errors, address(&format!("{path}.start"), &r.start));
            let end = keep(&mut errors, address(&format!("{path}.end"), &r.end));
            Some(AddressRange::new(start?, end?))
        })
        .collect();
    let excluded_addresses: Vec<IpAddr> = subnet
        .exclude_addresses
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            keep(
                &mut errors,
                address(&format!("{base}.excludeAddresses[{i}]"), a),
            )
        })
        .collect();
    let gateway = if subnet.gateway.is_empty() {
        None
    } else {
        keep(
            &mut errors,
            address(&format!("{base}.gateway"), &subnet.gateway),
        )
    };
    let routes: Vec<SubnetRoute> = subnet
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let path = format!("{base}.routes[{i}]");
            let destination = keep(
                &mut errors,
                any_prefix(&format!("{path}.destination"), &r.destination),
            );
            let next_hop = keep(&mut errors, address(&format!("{path}.nexthop"), &r.nexthop));
            Some(SubnetRoute {
                destination: destination?,
                next_hop: next_hop?,
            })
        })
        .collect();
    let Some(cidr) = cidr else {
        return Err(errors);
    };
    errors.or_ok(SubnetSpec {
        cidr,
        allocation_ranges,
        excluded_addresses,
        gateway,
        routes,
    })
}

/// A NetworkPolicy's spec as the policy module takes it. Only conversion problems are
/// reported here (text that does not parse, unknown enumeration words); the rules of the
/// policy model are [`policy::NetworkPolicy::validate`]'s. `network_ref` is the referenced
/// network's name.
pub fn policy_spec(
    p: &pb::NetworkPolicySpec,
) -> Result<policy::NetworkPolicySpec, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let network_interface_selector = match &p.network_interface_selector {
        None => LabelSelector::everything(),
        Some(s) => errors
            .take(convert_selector(
                &s.match_labels,
                &s.match_expressions,
                "spec.networkInterfaceSelector",
            ))
            .unwrap_or_default(),
    };
    let mut policy_types = Vec::with_capacity(p.policy_types.len());
    for (i, t) in p.policy_types.iter().enumerate() {
        match t.as_str() {
            "Ingress" => policy_types.push(policy::PolicyType::Ingress),
            "Egress" => policy_types.push(policy::PolicyType::Egress),
            other => errors.push(
                format!("spec.policyTypes[{i}]"),
                format!("{other:?} is not Ingress or Egress"),
            ),
        }
    }
    let mut rules = |field: &str, list: &[pb::PolicyRule]| -> Vec<policy::PolicyRule> {
        list.iter()
            .enumerate()
            .filter_map(|(i, r)| errors.take(policy_rule(&format!("spec.{field}[{i}]"), r)))
            .collect()
    };
    let ingress = rules("ingress", &p.ingress);
    let egress = rules("egress", &p.egress);
    errors.or_ok(policy::NetworkPolicySpec {
        network_ref: p
            .network_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        network_interface_selector,
        policy_types,
        ingress,
        egress,
    })
}

fn policy_rule(base: &str, rule: &pb::PolicyRule) -> Result<policy::PolicyRule, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut peers = Vec::with_capacity(rule.peers.len());
    for (i, peer) in rule.peers.iter().enumerate() {
        let path = format!("{base}.peers[{i}]");
        match (&peer.ip_block, &peer.object_selector) {
            (Some(block), None) => {
                if let Some(b) = errors.take(ip_block(&format!("{path}.ipBlock"), block)) {
                    peers.push(policy::PolicyPeer::IpBlock(b));
                }
            }
            (None, Some(object)) => {
                let path = format!("{path}.objectSelector");
                let kind = match object.kind.as_str() {
                    "NetworkInterface" => Some(policy::ObjectKind::NetworkInterface),
                    "LoadBalancer" => Some(policy::ObjectKind::LoadBalancer),
                    other => {
                        errors.push(
                            format!("{path}.kind"),
                            format!("{other:?} is not NetworkInterface or LoadBalancer"),
                        );
                        None
                    }
                };
                let selector = errors.take(convert_selector(
                    &object.match_labels,
                    &object.match_expressions,
                    &path,
                ));
                if let (Some(kind), Some(selector)) = (kind, selector) {
                    peers.push(policy::PolicyPeer::ObjectSelector(policy::ObjectSelector {
                        kind,
                        selector,
                    }));
                }
            }
            _ => errors.push(path, "needs exactly one of ipBlock and objectSelector"),
        }
    }
    let mut ports = Vec::with_capacity(rule.ports.len());
    for (i, port) in rule.ports.iter().enumerate() {
        if let Some(p) = errors.take(policy_port(&format!("{base}.ports[{i}]"), port)) {
            ports.push(p);
        }
    }
    errors.or_ok(policy::PolicyRule { peers, ports })
}

fn ip_block(path: &str, block: &pb::IpBlock) -> Result<policy::IpBlock, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let cidr = any_prefix(&format!("{path}.cidr"), &block.cidr).map_err(|e| errors.0.push(e));
    let except: Vec<IpNet> = block
        .except
        .iter()
        .enumerate()
        .filter_map(|(j, e)| {
            any_prefix(&format!("{path}.except[{j}]"), e)
                .map_err(|e| errors.0.push(e))
                .ok()
        })
        .collect();
    match cidr {
        Ok(cidr) => errors.or_ok(policy::IpBlock { cidr, except }),
        Err(()) => Err(errors),
    }
}

fn policy_port(base: &str, port: &pb::PolicyPort) -> Result<policy::PolicyPort, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let protocol = match port.protocol.as_str() {
        "" | "TCP" => Some(policy::Protocol::Tcp),
        "UDP" => Some(policy::Protocol::Udp),
        // Converted so the policy module refuses it with the reason.
        "SCTP" => Some(policy::Protocol::Sctp),
        other => {
            errors.push(
                format!("{base}.protocol"),
                format!("{other:?} is not TCP or UDP"),
            );
            None
        }
    };
    let mut number = |field: &str, value: u32| -> Option<u16> {
        match u16::try_from(value) {
            Ok(0) => None,
            Ok(v) => Some(v),
            Err(_) => {
                errors.push(
                    format!("{base}.{field}"),
                    format!("{value} is not a port (1 to 65535)"),
                );
                None
            }
        }
    };
    let start = number("port", port.port);
    let end_port = number("endPort", port.end_port);
    errors.or_ok(policy::PolicyPort {
        protocol,
        port: start,
        end_port,
    })
}
