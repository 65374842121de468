//! Firewall rules of an interface: validation and the difference by rule id.
//!
//! dpservice keeps stateful ACCEPT rules per interface, keyed by an id; it has no DROP rules
//! (NO_DROP_SUPPORT), so DENY is refused at the API instead of failing later. The internal
//! [`FirewallRule`] is the rule body with every default resolved (concrete prefixes, ports as
//! ranges or "any"), so that a rule read back from dpservice compares equal to the spec's rule
//! exactly when dpservice holds what the spec asks for.
//!
//! A rule's family is the family of its prefixes: an empty prefix means "any address of that
//! family" (`0.0.0.0/0` or `::/0`; metalnet used `0.0.0.0/0` for IPv6 rules too, which matches
//! nothing). With neither prefix given the rule is IPv4, as in metalnet; an IPv6 "any" rule names
//! `::/0` in one of its prefixes.

use std::collections::{BTreeMap, BTreeSet};

use ferrinet_proto::node::v1 as pb;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::fields::{prefix, validate_name};
use super::{Options, SpecError};

/// Traffic direction, seen from the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Towards the interface.
    Ingress,
    /// From the interface.
    Egress,
}

/// An inclusive port range `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port, `>= first`.
    pub last: u16,
}

/// Source and destination ports of a TCP or UDP rule; `None` is any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ports {
    /// Source ports.
    pub src: Option<PortRange>,
    /// Destination ports.
    pub dst: Option<PortRange>,
}

/// Which packets a rule matches beyond addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolFilter {
    /// Every protocol.
    Any,
    /// TCP with these ports.
    Tcp(Ports),
    /// UDP with these ports.
    Udp(Ports),
    /// ICMP with this type and code; `None` is any.
    Icmp {
        /// ICMP type.
        icmp_type: Option<u8>,
        /// ICMP code.
        icmp_code: Option<u8>,
    },
}

/// A validated ACCEPT rule (its id is the key it is stored under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirewallRule {
    /// Direction.
    pub direction: Direction,
    /// 0..=65535: stored by dpservice, not used by it.
    pub priority: u16,
    /// Source prefix, of the rule's family.
    pub source: IpNet,
    /// Destination prefix, of the rule's family.
    pub destination: IpNet,
    /// Protocol filter.
    pub protocol: ProtocolFilter,
}

/// What to do to dpservice's rules of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirewallDiff {
    /// Rules to delete: in dpservice but not desired, or desired with another body. Delete
    /// these first: a changed rule appears here and in `create` under the same id.
    pub delete: BTreeSet<String>,
    /// Rules to create: desired and missing, or desired with another body.
    pub create: BTreeMap<String, FirewallRule>,
}

impl FirewallDiff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.create.is_empty()
    }
}

/// The difference by id between the desired rules and dpservice's. A changed body means delete
/// and create (dpservice cannot update a rule); metalnet never pushed changed bodies.
pub fn firewall_diff(
    desired: &BTreeMap<String, FirewallRule>,
    actual: &BTreeMap<String, FirewallRule>,
) -> FirewallDiff {
    let mut out = FirewallDiff::default();
    for (id, rule) in actual {
        if desired.get(id) != Some(rule) {
            out.delete.insert(id.clone());
        }
    }
    for (id, rule) in desired {
        if actual.get(id) != Some(rule) {
            out.create.insert(id.clone(), *rule);
        }
    }
    out
}

/// `spec.firewall_rules`: each rule valid, ids unique.
pub fn validate_firewall_rules(
    field: &str,
    rules: &[pb::FirewallRule],
    options: &Options,
) -> Result<BTreeMap<String, FirewallRule>, SpecError> {
    let mut out = BTreeMap::new();
    let mut first_index = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("{field}[{i}]");
        let (id, body) = validate_firewall_rule(&base, rule, options)?;
        if let Some(first) = first_index.insert(id.clone(), i) {
            return Err(SpecError::new(
                format!("{base}.id"),
                format!("{id:?} duplicates {field}[{first}].id"),
            ));
        }
        out.insert(id, body);
    }
    Ok(out)
}

/// One rule; `base` is its path (`spec.firewall_rules[2]`).
pub fn validate_firewall_rule(
    base: &str,
    rule: &pb::FirewallRule,
    options: &Options,
) -> Result<(String, FirewallRule), SpecError> {
    validate_name(&format!("{base}.id"), &rule.id)?;
    let direction = match pb::Direction::try_from(rule.direction) {
        Ok(pb::Direction::Ingress) => Direction::Ingress,
        Ok(pb::Direction::Egress) => Direction::Egress,
        _ => {
            return Err(SpecError::new(
                format!("{base}.direction"),
                format!("must be INGRESS or EGRESS, not {}", rule.direction),
            ));
        }
    };
    match pb::Action::try_from(rule.action) {
        Ok(pb::Action::Accept) => {}
        Ok(pb::Action::Deny) => {
            return Err(SpecError::new(
                format!("{base}.action"),
                "DENY is not supported: dpservice has ACCEPT rules only",
            ));
        }
        _ => {
            return Err(SpecError::new(
                format!("{base}.action"),
                format!("must be ACCEPT, not {}", rule.action),
            ));
        }
    }
    let priority = u16::try_from(rule.priority).map_err(|_| {
        SpecError::new(
            format!("{base}.priority"),
            format!("{} exceeds 65535", rule.priority),
        )
    })?;
    let (source, destination) = rule_prefixes(base, rule, options)?;
    let protocol = protocol_filter(base, rule.protocol_match.as_ref())?;
    Ok((
        rule.id.clone(),
        FirewallRule {
            direction,
            priority,
            source,
            destination,
            protocol,
        },
    ))
}

/// Both prefixes of a rule, empty ones replaced by "any" of the rule's family.
fn rule_prefixes(
    base: &str,
    rule: &pb::FirewallRule,
    options: &Options,
) -> Result<(IpNet, IpNet), SpecError> {
    let src_field = format!("{base}.source_prefix");
    let dst_field = format!("{base}.destination_prefix");
    let optional = |field: &str, text: &str| {
        if text.is_empty() {
            Ok(None)
        } else {
            prefix(field, text, options).map(Some)
        }
    };
    let src = optional(&src_field, &rule.source_prefix)?;
    let dst = optional(&dst_field, &rule.destination_prefix)?;
    match (src, dst) {
        (Some(s), Some(d)) if s.addr().is_ipv6() != d.addr().is_ipv6() => Err(SpecError::new(
            dst_field,
            format!("{d} is not of the family of source_prefix {s}; a rule has one family"),
        )),
        (Some(s), Some(d)) => Ok((s, d)),
        (Some(s), None) => Ok((s, any_of_family(s.addr().is_ipv6()))),
        (None, Some(d)) => Ok((any_of_family(d.addr().is_ipv6()), d)),
        (None, None) => Ok((any_of_family(false), any_of_family(false))),
    }
}

/// `::/0` or `0.0.0.0/0`.
pub fn any_of_family(ipv6: bool) -> IpNet {
    if ipv6 {
        IpNet::V6(Ipv6Net::default())
    } else {
        IpNet::V4(Ipv4Net::default())
    }
}

fn protocol_filter(
    base: &str,
    pm: Option<&pb::ProtocolMatch>,
) -> Result<ProtocolFilter, SpecError> {
    let Some(pm) = pm else {
        return Ok(ProtocolFilter::Any);
    };
    let base = format!("{base}.protocol_match");
    let protocol = pb::Protocol::try_from(pm.protocol);
    match protocol {
        Ok(pb::Protocol::Tcp | pb::Protocol::Udp) => {
            if pm.icmp.is_some() {
                return Err(SpecError::new(
                    format!("{base}.icmp"),
                    "is for ICMP only, not TCP or UDP",
                ));
            }
            let ports = match &pm.port_range {
                None => Ports::default(),
                Some(pr) => {
                    let f = format!("{base}.port_range");
                    Ports {
                        src: port_range(&f, "src_port", pr.src_port, pr.end_src_port)?,
                        dst: port_range(&f, "dst_port", pr.dst_port, pr.end_dst_port)?,
                    }
                }
            };
            Ok(if protocol == Ok(pb::Protocol::Tcp) {
                ProtocolFilter::Tcp(ports)
            } else {
                ProtocolFilter::Udp(ports)
            })
        }
        Ok(pb::Protocol::Icmp) => {
            if pm.port_range.is_some() {
                return Err(SpecError::new(
                    format!("{base}.port_range"),
                    "is for TCP and UDP only, not ICMP",
                ));
            }
            let (icmp_type, icmp_code) = match &pm.icmp {
                None => (None, None),
                Some(i) => (
                    icmp_value(&format!("{base}.icmp.icmp_type"), i.icmp_type)?,
                    icmp_value(&format!("{base}.icmp.icmp_code"), i.icmp_code)?,
                ),
            };
            Ok(ProtocolFilter::Icmp {
                icmp_type,
                icmp_code,
            })
        }
        _ => Err(SpecError::new(
            format!("{base}.protocol"),
            format!(
                "must be TCP, UDP or ICMP, not {} (leave protocol_match unset for any protocol)",
                pm.protocol
            ),
        )),
    }
}

/// One side of a port match. Start unset or -1: any port, and the end must be unset or -1 too.
/// Else the start is 0..=65535 and the end, unset (= the start) or `start..=65535`.
fn port_range(
    base: &str,
    start_name: &str,
    start: Option<i32>,
    end: Option<i32>,
) -> Result<Option<PortRange>, SpecError> {
    let start_field = format!("{base}.{start_name}");
    let end_field = format!("{base}.end_{start_name}");
    match start {
        None | Some(-1) => match end {
            None | Some(-1) => Ok(None),
            Some(e) => Err(SpecError::new(
                end_field,
                format!("{e} needs {start_name} to be a port (it is any)"),
            )),
        },
        Some(s) => {
            let first = u16::try_from(s).map_err(|_| {
                SpecError::new(start_field, format!("{s} is not -1 (any) or 0 to 65535"))
            })?;
            let last = match end {
                None => first,
                Some(e) => {
                    let last = u16::try_from(e).map_err(|_| {
                        SpecError::new(end_field.clone(), format!("{e} is not a port (0 to 65535)"))
                    })?;
                    if last < first {
                        return Err(SpecError::new(
                            end_field,
                            format!("{last} is below {start_name} {first}"),
                        ));
                    }
                    last
                }
            };
            Ok(Some(PortRange { first, last }))
        }
    }
}

/// An ICMP type or code: -1 is any, else 0..=255.
fn icmp_value(field: &str, value: i32) -> Result<Option<u8>, SpecError> {
    if value == -1 {
        return Ok(None);
    }
    u8::try_from(value)
        .map(Some)
        .map_err(|_| SpecError::new(field, format!("{value} is not -1 (any) or 0 to 255")))
}
