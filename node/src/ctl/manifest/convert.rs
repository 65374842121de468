//! Manifest documents to admin API objects ([`to_proto`]); the way back is
//! [`super::printed::from_proto`].
//!
//! Addresses and prefixes are parsed (and sent in their canonical text), families are checked,
//! and defaults are filled in: a firewall rule's priority (1000), an absent ICMP type or code
//! (-1, any), an absent rule prefix (any address of the rule's family: `0.0.0.0/0` or `::/0`,
//! so that the node sees the family, which the API has no field for). `nodeName` is not part of
//! the API: the caller checks it ([`crate::ctl::commands::Ctl::check_node_names`]).

use std::fmt;
use std::net::IpAddr;

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;
use pb::object::Object as O;

use super::spec::{
    Action, Direction, FirewallRule, IpFamily, LoadBalancerSpec, LoadBalancerType,
    NetworkInterfaceSpec, NetworkSpec, Protocol, ProtocolMatch,
};
use super::{Document, Spec};

/// A bad field: its path in the document (`spec.ips[1]`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A new error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

type Result<T> = std::result::Result<T, FieldError>;

fn ip(path: &str, s: &str) -> Result<IpAddr> {
    s.trim()
        .parse()
        .map_err(|_| FieldError::new(path, format!("{s:?} is not an IP address")))
}

fn prefix(path: &str, s: &str) -> Result<IpNet> {
    s.trim().parse().map_err(|_| {
        FieldError::new(
            path,
            format!("{s:?} is not a prefix (CIDR, like 10.0.0.0/24)"),
        )
    })
}

fn prefixes(path: &str, list: &[String]) -> Result<Vec<String>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| prefix(&format!("{path}[{i}]"), s).map(|p| p.to_string()))
        .collect()
}

fn required_name(path: &str, name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(FieldError::new(path, "required"));
    }
    Ok(name.to_owned())
}

/// The admin API object of a document (its `metadata.resource_version` is the file's, 0 if
/// none). The document's `apiVersion` and `metadata.name` are not checked here.
pub fn to_proto(doc: &Document) -> Result<pb::Object> {
    let metadata = Some(pb::Metadata {
        name: doc.name().to_owned(),
        labels: doc.metadata.labels.clone().into_iter().collect(),
        resource_version: doc.metadata.resource_version.0.unwrap_or(0),
        ..pb::Metadata::default()
    });
    let object = match &doc.spec {
        Spec::Network(s) => O::Network(pb::Network {
            metadata,
            spec: Some(network_spec(s)?),
            status: None,
        }),
        Spec::NetworkInterface(s) => O::NetworkInterface(pb::NetworkInterface {
            metadata,
            spec: Some(interface_spec(s)?),
            status: None,
        }),
        Spec::LoadBalancer(s) => O::LoadBalancer(pb::LoadBalancer {
            metadata,
            spec: Some(load_balancer_spec(s)?),
            status: None,
        }),
    };
    Ok(pb::Object {
        object: Some(object),
    })
}

fn network_spec(s: &NetworkSpec) -> Result<pb::NetworkSpec> {
    let peered_prefixes = s
        .peered_prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(pb::PeeredPrefix {
                id: p.id,
                prefixes: prefixes(&format!("spec.peeredPrefixes[{i}].prefixes"), &p.prefixes)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(pb::NetworkSpec {
        id: s.id,
        peered_ids: s.peered_ids.clone(),
        peered_prefixes,
    })
}

fn interface_spec(s: &NetworkInterfaceSpec) -> Result<pb::NetworkInterfaceSpec> {
    let network = required_name("spec.networkRef.name", &s.network_ref.name)?;
    let ips = s
        .ips
        .iter()
        .enumerate()
        .map(|(i, a)| ip(&format!("spec.ips[{i}]"), a))
        .collect::<Result<Vec<_>>>()?;
    if !s.ip_families.is_empty() {
        if s.ip_families.len() != ips.len() {
            return Err(FieldError::new(
                "spec.ipFamilies",
                format!(
                    "{} families for {} addresses (ipFamilies gives the family of each of ips, in order)",
                    s.ip_families.len(),
                    ips.len()
                ),
            ));
        }
        for (i, (family, addr)) in s.ip_families.iter().zip(&ips).enumerate() {
            if *family != IpFamily::of(*addr) {
                return Err(FieldError::new(
                    format!("spec.ipFamilies[{i}]"),
                    format!(
                        "{family}, but spec.ips[{i}] ({addr}) is {}",
                        IpFamily::of(*addr)
                    ),
                ));
            }
        }
    }
    let virtual_ip = match &s.virtual_ip {
        Some(v) => ip("spec.virtualIP", v)?.to_string(),
        None => String::new(),
    };
    let nat = match &s.nat {
        Some(n) => Some(pb::NatSpec {
            ip: ip("spec.nat.ip", &n.ip)?.to_string(),
            port: n.port,
            end_port: n.end_port,
        }),
        None => None,
    };
    let load_balancer_targets = s
        .load_balancer_targets
        .iter()
        .enumerate()
        .map(|(i, t)| ip_or_prefix(&format!("spec.loadBalancerTargets[{i}]"), t))
        .collect::<Result<_>>()?;
    let firewall_rules = s
        .firewall_rules
        .iter()
        .enumerate()
        .map(|(i, r)| firewall_rule(&format!("spec.firewallRules[{i}]"), r))
        .collect::<Result<_>>()?;
    Ok(pb::NetworkInterfaceSpec {
        network,
        ips: ips.iter().map(IpAddr::to_string).collect(),
        virtual_ip,
        nat,
        prefixes: prefixes("spec.prefixes", &s.prefixes)?,
        load_balancer_targets,
        firewall_rules,
        metering_rate: s.metering_rate.as_ref().map(|m| pb::MeteringRate {
            total_rate: m.total_rate.unwrap_or(0),
            public_rate: m.public_rate.unwrap_or(0),
        }),
        hostname: s.hostname.clone().unwrap_or_default(),
    })
}

/// An address (`10.0.0.100`) or a prefix (`10.0.0.100/32`), in canonical text.
pub fn ip_or_prefix(path: &str, s: &str) -> Result<String> {
    if s.contains('/') {
        Ok(prefix(path, s)?.to_string())
    } else {
        Ok(ip(path, s)?.to_string())
    }
}

fn family_of_prefix(p: &IpNet) -> IpFamily {
    IpFamily::of(p.addr())
}

fn firewall_rule(path: &str, r: &FirewallRule) -> Result<pb::FirewallRule> {
    let direction = match r.direction {
        Some(Direction::Ingress) => pb::Direction::Ingress,
        Some(Direction::Egress) => pb::Direction::Egress,
        None => {
            return Err(FieldError::new(
                format!("{path}.direction"),
                "required: Ingress or Egress",
            ));
        }
    };
    let action = match r.action {
        Some(Action::Accept) => pb::Action::Accept,
        Some(Action::Deny) => pb::Action::Deny,
        None => {
            return Err(FieldError::new(
                format!("{path}.action"),
                "required: Accept or Deny",
            ));
        }
    };
    let src_path = format!("{path}.sourcePrefix");
    let dst_path = format!("{path}.destinationPrefix");
    let src = r
        .source_prefix
        .as_deref()
        .map(|p| prefix(&src_path, p))
        .transpose()?;
    let dst = r
        .destination_prefix
        .as_deref()
        .map(|p| prefix(&dst_path, p))
        .transpose()?;
    let family = r
        .ip_family
        .or(src.as_ref().map(family_of_prefix))
        .or(dst.as_ref().map(family_of_prefix))
        .unwrap_or(IpFamily::V4);
    let because = if r.ip_family.is_some() {
        "ipFamily"
    } else {
        "sourcePrefix"
    };
    for (p, at) in [(&src, &src_path), (&dst, &dst_path)] {
        if let Some(p) = p
            && family_of_prefix(p) != family
        {
            return Err(FieldError::new(
                at.as_str(),
                format!("{p} is {}, but {because} is {family}", family_of_prefix(p)),
            ));
        }
    }
    let any = match family {
        IpFamily::V4 => "0.0.0.0/0",
        IpFamily::V6 => "::/0",
    };
    let text = |p: Option<IpNet>| p.map_or_else(|| any.to_owned(), |p| p.to_string());
    let protocol_match = match &r.protocol_match {
        Some(m) => protocol_match(&format!("{path}.protocolMatch"), m)?,
        None => None,
    };
    Ok(pb::FirewallRule {
        id: r.id.clone(),
        direction: direction as i32,
        action: action as i32,
        priority: r.priority,
        source_prefix: text(src),
        destination_prefix: text(dst),
        protocol_match,
    })
}

fn protocol_match(path: &str, m: &ProtocolMatch) -> Result<Option<pb::ProtocolMatch>> {
    let Some(protocol) = m.protocol_type else {
        if m.icmp.is_some() || m.port_range.is_some() {
            return Err(FieldError::new(
                format!("{path}.protocolType"),
                "required with icmp or portRange: TCP, UDP or ICMP",
            ));
        }
        return Ok(None);
    };
    Ok(Some(pb::ProtocolMatch {
        protocol: proto_protocol(protocol) as i32,
        icmp: m.icmp.as_ref().map(|i| pb::IcmpMatch {
            icmp_type: i.icmp_type.unwrap_or(-1),
            icmp_code: i.icmp_code.unwrap_or(-1),
        }),
        port_range: m.port_range.as_ref().map(|p| pb::PortMatch {
            src_port: p.src_port,
            end_src_port: p.end_src_port,
            dst_port: p.dst_port,
            end_dst_port: p.end_dst_port,
        }),
    }))
}

fn proto_protocol(p: Protocol) -> pb::Protocol {
    match p {
        Protocol::Tcp => pb::Protocol::Tcp,
        Protocol::Udp => pb::Protocol::Udp,
        Protocol::Icmp => pb::Protocol::Icmp,
    }
}

fn load_balancer_spec(s: &LoadBalancerSpec) -> Result<pb::LoadBalancerSpec> {
    let network = required_name("spec.networkRef.name", &s.network_ref.name)?;
    let r#type = match s.lb_type {
        Some(LoadBalancerType::Internal) => pb::LoadBalancerType::Internal,
        Some(LoadBalancerType::Public) => pb::LoadBalancerType::Public,
        None => return Err(FieldError::new("spec.type", "required: Internal or Public")),
    };
    let addr = ip("spec.ip", &s.ip)?;
    if let Some(family) = s.ip_family
        && family != IpFamily::of(addr)
    {
        return Err(FieldError::new(
            "spec.ipFamily",
            format!("{family}, but spec.ip ({addr}) is {}", IpFamily::of(addr)),
        ));
    }
    let ports = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| match p.protocol {
            Some(protocol) => Ok(pb::LoadBalancerPort {
                protocol: proto_protocol(protocol) as i32,
                port: p.port,
            }),
            None => Err(FieldError::new(
                format!("spec.ports[{i}].protocol"),
                "required: TCP or UDP",
            )),
        })
        .collect::<Result<_>>()?;
    Ok(pb::LoadBalancerSpec {
        network,
        r#type: r#type as i32,
        ip: addr.to_string(),
        ports,
    })
}
