//! Firewall rules to and from dpservice's `FirewallRule`.
//!
//! To dpservice: TCP and UDP become a port filter with -1/-1 for "any" (metalnet sent `srcPort`
//! with an upper bound of 0 when `endSrcPort` was missing, which dpservice refuses; an unset end
//! is already the start here); ICMP becomes an ICMP filter with -1 for "any"; any protocol is no
//! filter. Prefixes are the rule's resolved prefixes, so an IPv6 rule sends `::/0` for "any".
//!
//! From dpservice: the exact inverse, so `from(to(rule)) == rule`; anything the node would never
//! have sent (a DROP rule, a port range `-1..80`, an unknown direction) is a [`ReplyError`]. A
//! reconciler treats such a rule as one with a different body: delete it, create the desired one.

use std::collections::BTreeMap;

use ferrinet_proto::dpservice::v1 as pb;
use pb::protocol_filter::Filter;

use super::{parse_prefix, prefix};
use crate::spec::ReplyError;
use crate::spec::firewall::{
    Direction, FirewallDiff, FirewallRule, PortRange, Ports, ProtocolFilter, firewall_diff,
};

/// The dpservice rule for `rule` under `id`.
pub fn firewall_rule_to_dpservice(id: &str, rule: &FirewallRule) -> pb::FirewallRule {
    let range = |r: Option<PortRange>| match r {
        None => (-1, -1),
        Some(r) => (i32::from(r.first), i32::from(r.last)),
    };
    let ports = |p: &Ports| {
        let (sl, su) = range(p.src);
        let (dl, du) = range(p.dst);
        (sl, su, dl, du)
    };
    let filter = match &rule.protocol {
        ProtocolFilter::Any => None,
        ProtocolFilter::Tcp(p) => {
            let (src_port_lower, src_port_upper, dst_port_lower, dst_port_upper) = ports(p);
            Some(Filter::Tcp(pb::TcpFilter {
                src_port_lower,
                src_port_upper,
                dst_port_lower,
                dst_port_upper,
            }))
        }
        ProtocolFilter::Udp(p) => {
            let (src_port_lower, src_port_upper, dst_port_lower, dst_port_upper) = ports(p);
            Some(Filter::Udp(pb::UdpFilter {
                src_port_lower,
                src_port_upper,
                dst_port_lower,
                dst_port_upper,
            }))
        }
        ProtocolFilter::Icmp {
            icmp_type,
            icmp_code,
        } => Some(Filter::Icmp(pb::IcmpFilter {
            icmp_type: icmp_type.map_or(-1, i32::from),
            icmp_code: icmp_code.map_or(-1, i32::from),
        })),
    };
    pb::FirewallRule {
        id: id.as_bytes().to_vec(),
        direction: match rule.direction {
            Direction::Ingress => pb::TrafficDirection::Ingress,
            Direction::Egress => pb::TrafficDirection::Egress,
        } as i32,
        action: pb::FirewallAction::Accept as i32,
        priority: u32::from(rule.priority),
        source_prefix: Some(prefix(rule.source)),
        destination_prefix: Some(prefix(rule.destination)),
        protocol_filter: filter.map(|f| pb::ProtocolFilter { filter: Some(f) }),
    }
}

/// Reads back a rule dpservice answered (Get/ListFirewallRules): its id and body. Field paths
/// are relative to the rule message.
pub fn firewall_rule_from_dpservice(
    rule: &pb::FirewallRule,
) -> Result<(String, FirewallRule), ReplyError> {
    let id = rule_id(&rule.id)?;
    let direction = match pb::TrafficDirection::try_from(rule.direction) {
        Ok(pb::TrafficDirection::Ingress) => Direction::Ingress,
        Ok(pb::TrafficDirection::Egress) => Direction::Egress,
        Err(_) => {
            return Err(ReplyError::new(
                "direction",
                format!("unknown value {}", rule.direction),
            ));
        }
    };
    if pb::FirewallAction::try_from(rule.action) != Ok(pb::FirewallAction::Accept) {
        return Err(ReplyError::new(
            "action",
            format!("{} is not ACCEPT", rule.action),
        ));
    }
    let priority = u16::try_from(rule.priority)
        .map_err(|_| ReplyError::new("priority", format!("{} exceeds 65535", rule.priority)))?;
    let source = parse_prefix("source_prefix", rule.source_prefix.as_ref())?;
    let destination = parse_prefix("destination_prefix", rule.destination_prefix.as_ref())?;
    let protocol = match rule
        .protocol_filter
        .as_ref()
        .and_then(|f| f.filter.as_ref())
    {
        None => ProtocolFilter::Any,
        Some(Filter::Tcp(t)) => ProtocolFilter::Tcp(ports(
            "protocol_filter.tcp",
            [
                t.src_port_lower,
                t.src_port_upper,
                t.dst_port_lower,
                t.dst_port_upper,
            ],
        )?),
        Some(Filter::Udp(u)) => ProtocolFilter::Udp(ports(
            "protocol_filter.udp",
            [
                u.src_port_lower,
                u.src_port_upper,
                u.dst_port_lower,
                u.dst_port_upper,
            ],
        )?),
        Some(Filter::Icmp(i)) => ProtocolFilter::Icmp {
            icmp_type: icmp("protocol_filter.icmp.icmp_type", i.icmp_type)?,
            icmp_code: icmp("protocol_filter.icmp.icmp_code", i.icmp_code)?,
        },
    };
    Ok((
        id,
        FirewallRule {
            direction,
            priority,
            source,
            destination,
            protocol,
        },
    ))
}

fn rule_id(raw: &[u8]) -> Result<String, ReplyError> {
    String::from_utf8(raw.to_vec())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReplyError::new("id", "not a rule id (empty or not utf-8 text)"))
}

/// `[src_lower, src_upper, dst_lower, dst_upper]`.
fn ports(base: &str, v: [i32; 4]) -> Result<Ports, ReplyError> {
    Ok(Ports {
        src: range(base, "src", v[0], v[1])?,
        dst: range(base, "dst", v[2], v[3])?,
    })
}

fn range(base: &str, side: &str, lower: i32, upper: i32) -> Result<Option<PortRange>, ReplyError> {
    if lower == -1 && upper == -1 {
        return Ok(None);
    }
    let first = u16::try_from(lower).map_err(|_| {
        ReplyError::new(
            format!("{base}.{side}_port_lower"),
            format!("{lower} with upper {upper} is neither any (-1, -1) nor a port range"),
        )
    })?;
    let last = u16::try_from(upper)
        .ok()
        .filter(|&l| l >= first)
        .ok_or_else(|| {
            ReplyError::new(
                format!("{base}.{side}_port_upper"),
                format!("{upper} is not a port at or above {first}"),
            )
        })?;
    Ok(Some(PortRange { first, last }))
}

fn icmp(field: &str, value: i32) -> Result<Option<u8>, ReplyError> {
    if value == -1 {
        return Ok(None);
    }
    u8::try_from(value)
        .map(Some)
        .map_err(|_| ReplyError::new(field, format!("{value} is not -1 (any) or 0 to 255")))
}

/// The rules of one interface as ListFirewallRules answered them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedRules {
    /// Rules that read back, by id.
    pub rules: BTreeMap<String, FirewallRule>,
    /// Rules whose body does not read back, by id, with why. A rule whose id is not text is
    /// listed under its lossy text.
    pub unreadable: BTreeMap<String, ReplyError>,
}

impl ListedRules {
    /// What to do to reach `desired`: [`firewall_diff`], with every unreadable rule deleted (and
    /// re-created if desired), since its body cannot be what the node wants.
    pub fn diff(&self, desired: &BTreeMap<String, FirewallRule>) -> FirewallDiff {
        let mut out = firewall_diff(desired, &self.rules);
        for id in self.unreadable.keys() {
            out.delete.insert(id.clone());
            if let Some(rule) = desired.get(id) {
                out.create.insert(id.clone(), *rule);
            }
        }
        out
    }
}

/// Reads a ListFirewallRules answer. Never fails as a whole: one odd rule must not stop the
/// reconciler from fixing the others. Error paths are `rules[i].<field>`.
pub fn parse_firewall_rules(rules: &[pb::FirewallRule]) -> ListedRules {
    let mut out = ListedRules::default();
    for (i, rule) in rules.iter().enumerate() {
        match firewall_rule_from_dpservice(rule) {
            Ok((id, body)) => {
                out.rules.insert(id, body);
            }
            Err(e) => {
                let id = String::from_utf8_lossy(&rule.id).into_owned();
                let e = ReplyError::new(format!("rules[{i}].{}", e.field), e.problem);
                out.unreadable.insert(id, e);
            }
        }
    }
    out
}
