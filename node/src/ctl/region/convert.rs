//! Region manifest documents to the API's messages ([`to_proto`]) and back ([`spec_from_proto`]).
//!
//! Checked here, with the field's path: addresses and prefixes (sent in canonical text),
//! enumerations with a closed set of values (read in any case, sent as the seeds spell them),
//! ports, label requirements, and the fields that take one of two forms (`virtualIP`, a policy
//! peer). What needs the region's state (references, overlaps, quotas) is the API's to check.
//! A PublicPrefix's `selector.kind` is passed on as written: the API answers OEP-1's `Machine`
//! itself.
//!
//! For a document in canonical form (what [`spec_from_proto`] produces), manifest -> proto ->
//! manifest is the identity, and so is proto -> manifest -> proto for any message whose text
//! fields are canonical.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use ipnet::IpNet;
use pb::object::Object as O;

use super::manifest::Document;
use super::spec::{self, Spec};
use crate::ctl::manifest::FieldError;

type Result<T> = std::result::Result<T, FieldError>;

/// IP families as the API spells them.
pub const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
/// Protocols of load-balancer and policy ports.
pub const PROTOCOLS: &[&str] = &["TCP", "UDP"];
/// Label requirement operators.
pub const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];
/// Kinds a policy peer's `objectSelector` may select.
pub const PEER_KINDS: &[&str] = &["NetworkInterface", "LoadBalancer"];
/// A NetworkPolicy's `policyTypes`.
pub const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];
/// Types of load balancers.
pub const LOAD_BALANCER_TYPES: &[&str] = &["Public", "Internal"];
/// Types of virtual IPs and NAT gateways.
pub const PUBLIC_TYPES: &[&str] = &["Public"];

fn ip(path: &str, s: &str) -> Result<String> {
    s.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| FieldError::new(path, format!("{s:?} is not an IP address")))
}

fn cidr(path: &str, s: &str) -> Result<String> {
    s.trim()
        .parse::<IpNet>()
        .map(|n| n.to_string())
        .map_err(|_| {
            FieldError::new(
                path,
                format!("{s:?} is not a prefix (ADDRESS/LENGTH, like 10.0.0.0/24)"),
            )
        })
}

fn cidrs(path: &str, v: &[String]) -> Result<Vec<String>> {
    v.iter()
        .enumerate()
        .map(|(i, s)| cidr(&format!("{path}[{i}]"), s))
        .collect()
}

/// `s` in its canonical spelling among `allowed` (compared case-insensitively).
pub fn one_of(path: &str, s: &str, allowed: &[&str]) -> Result<String> {
    let t = s.trim();
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(t))
        .map(|a| (*a).to_owned())
        .ok_or_else(|| FieldError::new(path, format!("{s:?}: expected {}", allowed.join(" or "))))
}

fn opt_one_of(path: &str, s: &Option<String>, allowed: &[&str]) -> Result<String> {
    s.as_deref()
        .map_or(Ok(String::new()), |s| one_of(path, s, allowed))
}

fn families(path: &str, v: &[String]) -> Result<Vec<String>> {
    v.iter()
        .enumerate()
        .map(|(i, s)| one_of(&format!("{path}[{i}]"), s, IP_FAMILIES))
        .collect()
}

fn ip_values(path: &str, v: &[spec::IpValue]) -> Result<Vec<pb::IpValue>> {
    v.iter()
        .enumerate()
        .map(|(i, x)| {
            Ok(pb::IpValue {
                value: ip(&format!("{path}[{i}].value"), &x.value)?,
            })
        })
        .collect()
}

fn object_ref(r: &spec::ObjectRef) -> pb::ObjectRef {
    pb::ObjectRef {
        name: r.name.clone(),
        namespace: r.namespace.clone().unwrap_or_default(),
    }
}

fn requirements(path: &str, v: &[spec::Requirement]) -> Result<Vec<pb::LabelRequirement>> {
    let mut out = Vec::with_capacity(v.len());
    for (i, r) in v.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if r.key.trim().is_empty() {
            return Err(FieldError::new(format!("{at}.key"), "required"));
        }
        let operator = one_of(&format!("{at}.operator"), &r.operator, OPERATORS)?;
        let needs_values = operator == "In" || operator == "NotIn";
        if needs_values && r.values.is_empty() {
            return Err(FieldError::new(
                format!("{at}.values"),
                format!("required with {operator}"),
            ));
        }
        if !needs_values && !r.values.is_empty() {
            return Err(FieldError::new(
                format!("{at}.values"),
                format!("must be empty with {operator}"),
            ));
        }
        out.push(pb::LabelRequirement {
            key: r.key.clone(),
            operator,
            values: r.values.clone(),
        });
    }
    Ok(out)
}

fn labels(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn selector(path: &str, s: &spec::LabelSelector) -> Result<pb::LabelSelector> {
    Ok(pb::LabelSelector {
        match_labels: labels(&s.match_labels),
        match_expressions: requirements(&format!("{path}.matchExpressions"), &s.match_expressions)?,
    })
}

fn port_range(path: &str, p: &spec::Port) -> Result<(String, u32, u32)> {
    let protocol = match p.protocol.as_deref() {
        None => String::new(),
        Some(s) if s.trim().eq_ignore_ascii_case("SCTP") => {
            return Err(FieldError::new(
                format!("{path}.protocol"),
                "SCTP is not supported (dpservice handles TCP and UDP)",
            ));
        }
        Some(s) => one_of(&format!("{path}.protocol"), s, PROTOCOLS)?,
    };
    if !(1..=65535).contains(&p.port) {
        return Err(FieldError::new(
            format!("{path}.port"),
            format!("{}: must be 1 to 65535", p.port),
        ));
    }
    let end = p.end_port.unwrap_or(0);
    if end != 0 && !(p.port..=65535).contains(&end) {
        return Err(FieldError::new(
            format!("{path}.endPort"),
            format!("{end}: must be {} to 65535", p.port),
        ));
    }
    Ok((protocol, p.port, end))
}

fn ports<T>(
    path: &str,
    v: &[spec::Port],
    make: impl Fn((String, u32, u32)) -> T,
) -> Result<Vec<T>> {
    v.iter()
        .enumerate()
        .map(|(i, p)| port_range(&format!("{path}[{i}]"), p).map(&make))
        .collect()
}

fn network(s: &spec::NetworkSpec) -> Result<pb::NetworkSpec> {
    let mut subnets = Vec::with_capacity(s.subnets.len());
    for (i, sub) in s.subnets.iter().enumerate() {
        let at = format!("spec.subnets[{i}]");
        let mut ranges = Vec::new();
        for (j, r) in sub.allocation_ranges.iter().enumerate() {
            ranges.push(pb::AddressRange {
                start: ip(&format!("{at}.allocationRanges[{j}].start"), &r.start)?,
                end: ip(&format!("{at}.allocationRanges[{j}].end"), &r.end)?,
            });
        }
        let mut routes = Vec::new();
        for (j, r) in sub.routes.iter().enumerate() {
            routes.push(pb::HostRoute {
                destination: cidr(&format!("{at}.routes[{j}].destination"), &r.destination)?,
                nexthop: ip(&format!("{at}.routes[{j}].nexthop"), &r.nexthop)?,
            });
        }
        let exclude = sub
            .exclude_addresses
            .iter()
            .enumerate()
            .map(|(j, a)| ip(&format!("{at}.excludeAddresses[{j}]"), a))
            .collect::<Result<_>>()?;
        subnets.push(pb::Subnet {
            cidr: cidr(&format!("{at}.cidr"), &sub.cidr)?,
            allocation_ranges: ranges,
            exclude_addresses: exclude,
            gateway: match &sub.gateway {
                Some(g) => ip(&format!("{at}.gateway"), g)?,
                None => String::new(),
            },
            routes,
        });
    }
    let peerings = s
        .peerings
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(pb::NetworkPeering {
                name: p.name.clone(),
                network_ref: Some(object_ref(&p.network_ref)),
                prefixes: cidrs(&format!("spec.peerings[{i}].prefixes"), &p.prefixes)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(pb::NetworkSpec {
        subnets,
        peerings,
        prefix: match &s.prefix {
            Some(p) => cidr("spec.prefix", p)?,
            None => String::new(),
        },
        vni: s.vni.unwrap_or(0),
    })
}

fn interface_network_ref(s: &spec::NetworkInterfaceSpec) -> Result<Option<pb::ObjectRef>> {
    match (&s.network_ref, &s.target_ref) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "spec.targetRef",
            "give networkRef or targetRef, not both",
        )),
        (Some(r), None) => Ok(Some(object_ref(r))),
        (None, Some(t)) => match t.kind.as_deref() {
            None | Some("Network") => Ok(Some(pb::ObjectRef {
                name: t.name.clone(),
                namespace: t.namespace.clone().unwrap_or_default(),
            })),
            Some(k) => Err(FieldError::new(
                "spec.targetRef.kind",
                format!("{k:?}: a NetworkInterface targets a Network"),
            )),
        },
        (None, None) => Ok(None),
    }
}

fn interface(s: &spec::NetworkInterfaceSpec) -> Result<pb::NetworkInterfaceSpec> {
    let virtual_ip = match &s.virtual_ip {
        None => None,
        Some(v) => Some(match (&v.virtual_ip_ref, &v.ephemeral) {
            (Some(r), None) => pb::VirtualIpSource {
                virtual_ip_ref: Some(object_ref(r)),
                ephemeral_ip_family: String::new(),
            },
            (None, Some(e)) => pb::VirtualIpSource {
                virtual_ip_ref: None,
                ephemeral_ip_family: one_of(
                    "spec.virtualIP.ephemeral.ipFamily",
                    &e.ip_family,
                    IP_FAMILIES,
                )?,
            },
            _ => {
                return Err(FieldError::new(
                    "spec.virtualIP",
                    "give exactly one of virtualIPRef and ephemeral",
                ));
            }
        }),
    };
    if let Some(h) = &s.hostname {
        super::manifest::dns_label("spec.hostname", h)?;
    }
    Ok(pb::NetworkInterfaceSpec {
        network_ref: interface_network_ref(s)?,
        node_name: s.node_name.clone().unwrap_or_default(),
        ip_families: families("spec.ipFamilies", &s.ip_families)?,
        ips: ip_values("spec.ips", &s.ips)?,
        prefixes: cidrs("spec.prefixes", &s.prefixes)?,
        virtual_ip,
        hostname: s.hostname.clone().unwrap_or_default(),
        metering_rate: s.metering_rate.as_ref().map(|m| node_pb::MeteringRate {
            total_rate: m.total_rate.unwrap_or(0),
            public_rate: m.public_rate.unwrap_or(0),
        }),
    })
}

fn public_prefix(s: &spec::PublicPrefixSpec) -> Result<pb::PublicPrefixSpec> {
    let (kind, selector) = match &s.selector {
        None => (String::new(), None),
        Some(sel) => (
            sel.kind.clone().unwrap_or_default(),
            Some(pb::LabelSelector {
                match_labels: labels(&sel.match_labels),
                match_expressions: requirements(
                    "spec.selector.matchExpressions",
                    &sel.match_expressions,
                )?,
            }),
        ),
    };
    Ok(pb::PublicPrefixSpec {
        kind,
        selector,
        ip_family: opt_one_of("spec.ipFamily", &s.ip_family, IP_FAMILIES)?,
    })
}

fn load_balancer(s: &spec::LoadBalancerSpec) -> Result<pb::LoadBalancerSpec> {
    Ok(pb::LoadBalancerSpec {
        r#type: opt_one_of("spec.type", &s.lb_type, LOAD_BALANCER_TYPES)?,
        ip_families: families("spec.ipFamilies", &s.ip_families)?,
        ips: ip_values("spec.ips", &s.ips)?,
        network_ref: s.network_ref.as_ref().map(object_ref),
        network_interface_selector: s
            .network_interface_selector
            .as_ref()
            .map(|sel| selector("spec.networkInterfaceSelector", sel))
            .transpose()?,
        ports: ports("spec.ports", &s.ports, |(protocol, port, end_port)| {
            pb::LoadBalancerPort {
                protocol,
                port,
                end_port,
            }
        })?,
        replicas: s.replicas.unwrap_or(0),
    })
}

fn peers(path: &str, v: &[spec::PolicyPeer]) -> Result<Vec<pb::PolicyPeer>> {
    let mut out = Vec::with_capacity(v.len());
    for (i, p) in v.iter().enumerate() {
        let at = format!("{path}[{i}]");
        out.push(match (&p.ip_block, &p.object_selector) {
            (Some(b), None) => pb::PolicyPeer {
                ip_block: Some(pb::IpBlock {
                    cidr: cidr(&format!("{at}.ipBlock.cidr"), &b.cidr)?,
                    except: cidrs(&format!("{at}.ipBlock.except"), &b.except)?,
                }),
                object_selector: None,
            },
            (None, Some(sel)) => {
                let kind = match &sel.kind {
                    Some(k) => one_of(&format!("{at}.objectSelector.kind"), k, PEER_KINDS)?,
                    None => {
                        return Err(FieldError::new(
                            format!("{at}.objectSelector.kind"),
                            format!("required: {}", PEER_KINDS.join(" or ")),
                        ));
                    }
                };
                pb::PolicyPeer {
                    ip_block: None,
                    object_selector: Some(pb::ObjectSelector {
                        kind,
                        match_labels: labels(&sel.match_labels),
                        match_expressions: requirements(
                            &format!("{at}.objectSelector.matchExpressions"),
                            &sel.match_expressions,
                        )?,
                    }),
                }
            }
            _ => {
                return Err(FieldError::new(
                    at,
                    "give exactly one of ipBlock and objectSelector",
                ));
            }
        });
    }
    Ok(out)
}

fn policy_ports(path: &str, v: &[spec::Port]) -> Result<Vec<pb::PolicyPort>> {
    ports(path, v, |(protocol, port, end_port)| pb::PolicyPort {
        protocol,
        port,
        end_port,
    })
}

fn network_policy(s: &spec::NetworkPolicySpec) -> Result<pb::NetworkPolicySpec> {
    let ingress = s
        .ingress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(pb::PolicyRule {
                peers: peers(&format!("spec.ingress[{i}].from"), &r.from)?,
                ports: policy_ports(&format!("spec.ingress[{i}].ports"), &r.ports)?,
            })
        })
        .collect::<Result<_>>()?;
    let egress = s
        .egress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(pb::PolicyRule {
                peers: peers(&format!("spec.egress[{i}].to"), &r.to)?,
                ports: policy_ports(&format!("spec.egress[{i}].ports"), &r.ports)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(pb::NetworkPolicySpec {
        network_ref: s.network_ref.as_ref().map(object_ref),
        network_interface_selector: s
            .network_interface_selector
            .as_ref()
            .map(|sel| selector("spec.networkInterfaceSelector", sel))
            .transpose()?,
        policy_types: s
            .policy_types
            .iter()
            .enumerate()
            .map(|(i, t)| one_of(&format!("spec.policyTypes[{i}]"), t, POLICY_TYPES))
            .collect::<Result<_>>()?,
        ingress,
        egress,
    })
}

/// The API object of a checked document, in `namespace` (see
/// [`super::manifest::check`]); metadata carries only namespace, name and labels.
pub fn to_proto(doc: &Document, namespace: &str) -> Result<pb::Object> {
    let metadata = Some(pb::ObjectMeta {
        namespace: namespace.to_owned(),
        name: doc.metadata.name.clone().unwrap_or_default(),
        labels: labels(&doc.metadata.labels),
        ..pb::ObjectMeta::default()
    });
    let object = match &doc.spec {
        Spec::Network(s) => O::Network(pb::Network {
            metadata,
            spec: Some(network(s)?),
            status: None,
        }),
        Spec::NetworkInterface(s) => O::NetworkInterface(pb::NetworkInterface {
            metadata,
            spec: Some(interface(s)?),
            status: None,
        }),
        Spec::VirtualIp(s) => O::VirtualIp(pb::VirtualIp {
            metadata,
            spec: Some(pb::VirtualIpSpec {
                r#type: opt_one_of("spec.type", &s.vip_type, PUBLIC_TYPES)?,
                ip_family: opt_one_of("spec.ipFamily", &s.ip_family, IP_FAMILIES)?,
            }),
            status: None,
        }),
        Spec::PublicPrefix(s) => O::PublicPrefix(pb::PublicPrefix {
            metadata,
            spec: Some(public_prefix(s)?),
            status: None,
        }),
        Spec::NatGateway(s) => O::NatGateway(pb::NatGateway {
            metadata,
            spec: Some(pb::NatGatewaySpec {
                r#type: opt_one_of("spec.type", &s.nat_type, PUBLIC_TYPES)?,
                ip_family: opt_one_of("spec.ipFamily", &s.ip_family, IP_FAMILIES)?,
                ports_per_network_interface: s.ports_per_network_interface.unwrap_or(0),
                network_ref: s.network_ref.as_ref().map(object_ref),
            }),
            status: None,
        }),
        Spec::LoadBalancer(s) => O::LoadBalancer(pb::LoadBalancer {
            metadata,
            spec: Some(load_balancer(s)?),
            status: None,
        }),
        Spec::NetworkPolicy(s) => O::NetworkPolicy(pb::NetworkPolicy {
            metadata,
            spec: Some(network_policy(s)?),
            status: None,
        }),
        Spec::Node(s) => O::Node(pb::Node {
            metadata,
            spec: Some(pb::NodeSpec {
                underlay_prefix: match &s.underlay_prefix {
                    Some(p) => cidr("spec.underlayPrefix", p)?,
                    None => String::new(),
                },
                vf_capacity: s.vf_capacity.unwrap_or(0),
            }),
            status: None,
        }),
    };
    Ok(pb::Object {
        object: Some(object),
    })
}

// ------------------------------------------------------------------------------ and back

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn ref_doc(r: &pb::ObjectRef) -> spec::ObjectRef {
    spec::ObjectRef {
        name: r.name.clone(),
        namespace: text(&r.namespace),
    }
}

fn sorted(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn requirement_docs(v: &[pb::LabelRequirement]) -> Vec<spec::Requirement> {
    v.iter()
        .map(|r| spec::Requirement {
            key: r.key.clone(),
            operator: r.operator.clone(),
            values: r.values.clone(),
        })
        .collect()
}

fn selector_doc(s: &pb::LabelSelector) -> spec::LabelSelector {
    spec::LabelSelector {
        match_labels: sorted(&s.match_labels),
        match_expressions: requirement_docs(&s.match_expressions),
    }
}

fn port_doc(protocol: &str, port: u32, end_port: u32) -> spec::Port {
    spec::Port {
        protocol: text(protocol),
        port,
        end_port: nonzero(end_port),
    }
}

fn ip_value_docs(v: &[pb::IpValue]) -> Vec<spec::IpValue> {
    v.iter()
        .map(|x| spec::IpValue {
            value: x.value.clone(),
        })
        .collect()
}

fn network_doc(s: &pb::NetworkSpec) -> spec::NetworkSpec {
    spec::NetworkSpec {
        prefix: text(&s.prefix),
        subnets: s
            .subnets
            .iter()
            .map(|sub| spec::Subnet {
                cidr: sub.cidr.clone(),
                allocation_ranges: sub
                    .allocation_ranges
                    .iter()
                    .map(|r| spec::AddressRange {
                        start: r.start.clone(),
                        end: r.end.clone(),
                    })
                    .collect(),
                exclude_addresses: sub.exclude_addresses.clone(),
                gateway: text(&sub.gateway),
                routes: sub
                    .routes
                    .iter()
                    .map(|r| spec::HostRoute {
                        destination: r.destination.clone(),
                        nexthop: r.nexthop.clone(),
                    })
                    .collect(),
            })
            .collect(),
        peerings: s
            .peerings
            .iter()
            .map(|p| spec::Peering {
                name: p.name.clone(),
                network_ref: p.network_ref.as_ref().map(ref_doc).unwrap_or_default(),
                prefixes: p.prefixes.clone(),
            })
            .collect(),
        vni: nonzero(s.vni),
        ..spec::NetworkSpec::default()
    }
}

fn interface_doc(s: &pb::NetworkInterfaceSpec) -> spec::NetworkInterfaceSpec {
    let virtual_ip = s.virtual_ip.as_ref().and_then(|v| {
        let r = v.virtual_ip_ref.as_ref().map(ref_doc);
        let e = text(&v.ephemeral_ip_family).map(|ip_family| spec::Ephemeral { ip_family });
        (r.is_some() || e.is_some()).then_some(spec::VirtualIpSource {
            virtual_ip_ref: r,
            ephemeral: e,
        })
    });
    spec::NetworkInterfaceSpec {
        network_ref: s.network_ref.as_ref().map(ref_doc),
        target_ref: None,
        node_name: text(&s.node_name),
        ip_families: s.ip_families.clone(),
        ips: ip_value_docs(&s.ips),
        prefixes: s.prefixes.clone(),
        virtual_ip,
        hostname: text(&s.hostname),
        metering_rate: s
            .metering_rate
            .as_ref()
            .filter(|m| m.total_rate != 0 || m.public_rate != 0)
            .map(|m| spec::MeteringRate {
                total_rate: nonzero(m.total_rate),
                public_rate: nonzero(m.public_rate),
            }),
    }
}

fn peer_docs(v: &[pb::PolicyPeer]) -> Vec<spec::PolicyPeer> {
    v.iter()
        .map(|p| spec::PolicyPeer {
            ip_block: p.ip_block.as_ref().map(|b| spec::IpBlock {
                cidr: b.cidr.clone(),
                except: b.except.clone(),
            }),
            object_selector: p.object_selector.as_ref().map(|s| spec::KindSelector {
                kind: text(&s.kind),
                match_labels: sorted(&s.match_labels),
                match_expressions: requirement_docs(&s.match_expressions),
            }),
        })
        .collect()
}

fn policy_port_docs(v: &[pb::PolicyPort]) -> Vec<spec::Port> {
    v.iter()
        .map(|p| port_doc(&p.protocol, p.port, p.end_port))
        .collect()
}

/// The manifest spec of an API object (its metadata and status are [`super::printed`]'s);
/// `None` if the `oneof` is empty. A missing spec prints as an empty one.
pub fn spec_from_proto(obj: &pb::Object) -> Option<Spec> {
    Some(match obj.object.as_ref()? {
        O::Network(o) => Spec::Network(network_doc(&o.spec.clone().unwrap_or_default())),
        O::NetworkInterface(o) => {
            Spec::NetworkInterface(interface_doc(&o.spec.clone().unwrap_or_default()))
        }
        O::VirtualIp(o) => {
            let s = o.spec.clone().unwrap_or_default();
            Spec::VirtualIp(spec::VirtualIpSpec {
                vip_type: text(&s.r#type),
                ip_family: text(&s.ip_family),
            })
        }
        O::PublicPrefix(o) => {
            let s = o.spec.clone().unwrap_or_default();
            let selector = (!s.kind.is_empty() || s.selector.is_some()).then(|| {
                let sel = s.selector.clone().unwrap_or_default();
                spec::KindSelector {
                    kind: text(&s.kind),
                    match_labels: sorted(&sel.match_labels),
                    match_expressions: requirement_docs(&sel.match_expressions),
                }
            });
            Spec::PublicPrefix(spec::PublicPrefixSpec {
                selector,
                ip_family: text(&s.ip_family),
            })
        }
        O::NatGateway(o) => {
            let s = o.spec.clone().unwrap_or_default();
            Spec::NatGateway(spec::NatGatewaySpec {
                nat_type: text(&s.r#type),
                ip_family: text(&s.ip_family),
                ports_per_network_interface: nonzero(s.ports_per_network_interface),
                network_ref: s.network_ref.as_ref().map(ref_doc),
            })
        }
        O::LoadBalancer(o) => {
            let s = o.spec.clone().unwrap_or_default();
            Spec::LoadBalancer(spec::LoadBalancerSpec {
                lb_type: text(&s.r#type),
                ip_families: s.ip_families.clone(),
                ips: ip_value_docs(&s.ips),
                network_ref: s.network_ref.as_ref().map(ref_doc),
                network_interface_selector: s.network_interface_selector.as_ref().map(selector_doc),
                ports: s
                    .ports
                    .iter()
                    .map(|p| port_doc(&p.protocol, p.port, p.end_port))
                    .collect(),
                replicas: nonzero(s.replicas),
            })
        }
        O::NetworkPolicy(o) => {
            let s = o.spec.clone().unwrap_or_default();
            Spec::NetworkPolicy(spec::NetworkPolicySpec {
                network_ref: s.network_ref.as_ref().map(ref_doc),
                network_interface_selector: s.network_interface_selector.as_ref().map(selector_doc),
                policy_types: s.policy_types.clone(),
                ingress: s
                    .ingress
                    .iter()
                    .map(|r| spec::IngressRule {
                        from: peer_docs(&r.peers),
                        ports: policy_port_docs(&r.ports),
                    })
                    .collect(),
                egress: s
                    .egress
                    .iter()
                    .map(|r| spec::EgressRule {
                        to: peer_docs(&r.peers),
                        ports: policy_port_docs(&r.ports),
                    })
                    .collect(),
            })
        }
        O::Node(o) => {
            let s = o.spec.clone().unwrap_or_default();
            Spec::Node(spec::NodeSpec {
                underlay_prefix: text(&s.underlay_prefix),
                vf_capacity: nonzero(s.vf_capacity),
            })
        }
    })
}
