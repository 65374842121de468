//! An interface's firewall rules in a compiled form, with dpservice's semantics:
//!
//! - a rule has a direction, a source and a destination prefix, and a protocol filter (any, TCP
//!   or UDP with source and destination port ranges, ICMP with type and code; `-1` = any);
//! - the first matching rule in insertion order decides; priority is stored but not used, as on
//!   dpservice; only ACCEPT rules exist;
//! - ingress into the VM needs a matching rule; egress is open until the interface has its
//!   first egress rule, then it needs a match too;
//! - ICMP rules match ICMPv6 as well.
//!
//! Where the fact sheets are silent: a prefix matches only addresses of its own family (an IPv4
//! `0.0.0.0/0` does not open IPv6), and a TCP/UDP rule matches only its protocol.
//!
//! Rules are compiled from the `pb::FirewallRule`s that [`crate::state`] stores. The caller
//! passes them in insertion order: `State` keeps an interface's rules in a map ordered by id,
//! which is a different order (harmless today, since with ACCEPT-only rules the order changes
//! only which rule is reported as the match, never the verdict).

use std::collections::HashMap;
use std::net::IpAddr;

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;

use super::{Direction, FlowKey, IfaceIndex, L4};
use crate::error::InvalidArgument;
use crate::validate;

/// A rule set could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A rule does not parse; the field path names the rule by its position.
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    /// A DROP rule: dpservice has none (NO_DROP_SUPPORT), so neither does the table.
    #[error("rules[{index}].action: only ACCEPT rules are supported")]
    DropAction {
        /// Position of the rule in the input.
        index: usize,
    },
}

/// The outcome of evaluating a packet against the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Allowed: by the rule at this position of the rule set (insertion order), or, for
    /// `None`, because the interface has no egress rule yet.
    Accept {
        /// The matching rule's position.
        rule: Option<u32>,
    },
    /// No rule allows it.
    Deny,
}

impl Verdict {
    /// Whether the packet may pass.
    pub fn is_accept(self) -> bool {
        matches!(self, Self::Accept { .. })
    }
}

/// A prefix as masks, so a match is two integer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
    fn new(net: IpNet) -> Self {
        match net {
            IpNet::V4(n) => Self::V4 {
                addr: u32::from(n.network()),
                mask: u32::from(n.netmask()),
            },
            IpNet::V6(n) => Self::V6 {
                addr: u128::from(n.network()),
                mask: u128::from(n.netmask()),
            },
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Self::V4 { addr, mask }, IpAddr::V4(a)) => u32::from(a) & mask == addr,
            (Self::V6 { addr, mask }, IpAddr::V6(a)) => u128::from(a) & mask == addr,
            _ => false,
        }
    }
}

/// An inclusive port range; "any" is the full range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    lo: u16,
    hi: u16,
}

impl Ports {
    const ANY: Self = Self {
        lo: 0,
        hi: u16::MAX,
    };

    fn contains(self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Any,
    Tcp {
        src: Ports,
        dst: Ports,
    },
    Udp {
        src: Ports,
        dst: Ports,
    },
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Position in the whole rule set, what a verdict reports.
    index: u32,
    src: Net,
    dst: Net,
    proto: Proto,
}

impl Rule {
    fn matches(&self, key: &FlowKey) -> bool {
        if !self.src.contains(key.src) || !self.dst.contains(key.dst) {
            return false;
        }
        match (self.proto, key.l4) {
            (Proto::Any, _) => true,
            (Proto::Tcp { src, dst }, L4::Tcp { src_port, dst_port })
            | (Proto::Udp { src, dst }, L4::Udp { src_port, dst_port }) => {
                src.contains(src_port) && dst.contains(dst_port)
            }
            (
                Proto::Icmp { icmp_type, code },
                L4::Icmp {
                    icmp_type: t,
                    code: c,
                    ..
                },
            ) => icmp_type.is_none_or(|x| x == t) && code.is_none_or(|x| x == c),
            _ => false,
        }
    }
}

/// The compiled rules of one interface, split by direction, each list in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
    ids: Vec<Box<str>>,
    priorities: Vec<u16>,
    generation: u64,
}

/// What an interface without rules has: no ingress, open egress.
static EMPTY: RuleSet = RuleSet {
    ingress: Vec::new(),
    egress: Vec::new(),
    ids: Vec::new(),
    priorities: Vec::new(),
    generation: 0,
};

fn port_range(field: &str, kind: &str, lower: i32, upper: i32) -> Result<Ports, InvalidArgument> {
    validate::fw_port_range(field, kind, lower, upper)?;
    // A lower bound of -1 means any port whatever the upper bound says, as on dpservice.
    if lower == -1 {
        return Ok(Ports::ANY);
    }
    let bound = |v: i32, which: &str| {
        u16::try_from(v).map_err(|_| {
            InvalidArgument::new(
                format!("{field}.{kind}_port_{which}"),
                "must be -1 (any) or 0 to 65535",
            )
        })
    };
    Ok(Ports {
        lo: bound(lower, "lower")?,
        hi: bound(upper, "upper")?,
    })
}

fn icmp_field(field: &str, value: i32) -> Result<Option<u8>, InvalidArgument> {
    validate::icmp_value(field, value)?;
    // -1 passed the check as "any"; everything else fits a byte.
    Ok(u8::try_from(value).ok())
}

fn proto(base: &str, filter: Option<&pb::ProtocolFilter>) -> Result<Proto, InvalidArgument> {
    use pb::protocol_filter::Filter;
    Ok(match filter.and_then(|f| f.filter.as_ref()) {
        None => Proto::Any,
        Some(Filter::Tcp(t)) => {
            let f = format!("{base}.protocol_filter.tcp");
            Proto::Tcp {
                src: port_range(&f, "src", t.src_port_lower, t.src_port_upper)?,
                dst: port_range(&f, "dst", t.dst_port_lower, t.dst_port_upper)?,
            }
        }
        Some(Filter::Udp(u)) => {
            let f = format!("{base}.protocol_filter.udp");
            Proto::Udp {
                src: port_range(&f, "src", u.src_port_lower, u.src_port_upper)?,
                dst: port_range(&f, "dst", u.dst_port_lower, u.dst_port_upper)?,
            }
        }
        Some(Filter::Icmp(i)) => Proto::Icmp {
            icmp_type: icmp_field(
                &format!("{base}.protocol_filter.icmp.icmp_type"),
                i.icmp_type,
            )?,
            code: icmp_field(
                &format!("{base}.protocol_filter.icmp.icmp_code"),
                i.icmp_code,
            )?,
        },
    })
}

impl RuleSet {
    /// Compiles `rules`, given in insertion order. Errors name the rule by its position, e.g.
    /// `rules[2].source_prefix.length: must be 0 to 32 for IPv4`.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = &'a pb::FirewallRule>,
    ) -> Result<Self, RuleError> {
        let mut set = Self::default();
        for (i, rule) in rules.into_iter().enumerate() {
            let base = format!("rules[{i}]");
            let id = validate::id(&format!("{base}.id"), &rule.id)?;
            let direction: pb::TrafficDirection =
                validate::known_enum(&format!("{base}.direction"), rule.direction)?;
            let action: pb::FirewallAction =
                validate::known_enum(&format!("{base}.action"), rule.action)?;
            if action == pb::FirewallAction::Drop {
                return Err(RuleError::DropAction { index: i });
            }
            let priority = u16::try_from(rule.priority).map_err(|_| {
                InvalidArgument::new(format!("{base}.priority"), "must be at most 65535")
            })?;
            let src = validate::strict_prefix(
                &format!("{base}.source_prefix"),
                rule.source_prefix.as_ref(),
            )?;
            let dst = validate::strict_prefix(
                &format!("{base}.destination_prefix"),
                rule.destination_prefix.as_ref(),
            )?;
            let index = u32::try_from(i).map_err(|_| {
                InvalidArgument::new(base.clone(), "too many rules for one interface")
            })?;
            let compiled = Rule {
                index,
                src: Net::new(src),
                dst: Net::new(dst),
                proto: proto(&base, rule.protocol_filter.as_ref())?,
            };
            match direction {
                pb::TrafficDirection::Ingress => set.ingress.push(compiled),
                pb::TrafficDirection::Egress => set.egress.push(compiled),
            }
            set.ids.push(id.into_boxed_str());
            set.priorities.push(priority);
        }
        Ok(set)
    }

    /// The rules of an interface that has none.
    pub fn empty() -> &'static Self {
        &EMPTY
    }

    /// What the rules say about a packet going `direction` with `key`. Allocates nothing.
    pub fn evaluate(&self, direction: Direction, key: &FlowKey) -> Verdict {
        let rules = match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        if direction == Direction::Egress && rules.is_empty() {
            return Verdict::Accept { rule: None };
        }
        rules
            .iter()
            .find(|r| r.matches(key))
            .map_or(Verdict::Deny, |r| Verdict::Accept {
                rule: Some(r.index),
            })
    }

    /// The generation this set was installed with ([`RuleSets::install`]); 0 for a set that
    /// was never installed. Flow verdicts remember it, so a change is noticed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of rules, both directions.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Id of the rule at `index` (as a [`Verdict`] reports it).
    pub fn rule_id(&self, index: u32) -> Option<&str> {
        self.ids.get(index as usize).map(|s| &**s)
    }

    /// Stored priority of the rule at `index` (not used for matching, as on dpservice).
    pub fn priority(&self, index: u32) -> Option<u16> {
        self.priorities.get(index as usize).copied()
    }
}

/// The rule sets of all interfaces, handing out a new generation on every change so that the
/// flow table re-evaluates exactly the flows of the interface that changed.
#[derive(Debug, Default)]
pub struct RuleSets {
    sets: HashMap<IfaceIndex, RuleSet>,
    // Generations are unique across interfaces and never reused, so a removed and re-added
    // interface cannot pass for its old rules.
    last_generation: u64,
}

impl RuleSets {
    /// No interface has rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `set` as the rules of `iface` (replacing any), returns its generation.
    pub fn install(&mut self, iface: IfaceIndex, mut set: RuleSet) -> u64 {
        self.last_generation += 1;
        set.generation = self.last_generation;
        self.sets.insert(iface, set);
        self.last_generation
    }

    /// Compiles `rules` (insertion order) and installs them for `iface`; on error nothing
    /// changes.
    pub fn update<'a>(
        &mut self,
        iface: IfaceIndex,
        rules: impl IntoIterator<Item = &'a pb::FirewallRule>,
    ) -> Result<u64, RuleError> {
        let set = RuleSet::compile(rules)?;
        Ok(self.install(iface, set))
    }

    /// Forgets the rules of `iface` (the interface was deleted); it then has none.
    pub fn remove(&mut self, iface: IfaceIndex) {
        if self.sets.remove(&iface).is_some() {
            // The empty set has generation 0, which no installed set has: flows re-evaluate.
            self.last_generation += 1;
        }
    }

    /// The rules of `iface`: the empty set when it has none.
    pub fn get(&self, iface: IfaceIndex) -> &RuleSet {
        self.sets.get(&iface).unwrap_or(&EMPTY)
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
pub(crate) mod tests;
