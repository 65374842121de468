//! Compiling a network's policies into each interface's firewall rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::cidr::cidr_difference;
use super::rule::{
    Action, Direction, FirewallRule, PortRange, RULE_PRIORITY, RuleProtocol, isolation_id, rule_id,
};
use super::spec::{
    NetworkPolicy, ObjectKind, PolicyInventory, PolicyObject, PolicyPeer, PolicyPort, PolicyType,
    Protocol,
};
use super::validate::PolicyErrors;

/// Most firewall rules one interface gets (after merging duplicates and covered rules):
/// dpservice walks an interface's rules one by one for every new flow.
pub const MAX_RULES_PER_INTERFACE: usize = 1024;
/// Most rules one interface's policies may expand to before merging; bounds the work of
/// compiling when policies overlap a lot.
pub const MAX_CANDIDATE_RULES: usize = 4096;

/// The outcome of compiling one network's policies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledPolicies {
    /// Every interface of the network whose rules compiled, by name; interfaces no policy
    /// selects are here too, with no rules.
    pub interfaces: BTreeMap<String, InterfaceRules>,
    /// The interfaces whose rules did not compile, by name. Their current rules should stay
    /// until the policies change: dropping them would open the interface.
    pub errors: BTreeMap<String, InterfaceError>,
}

/// The rules of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceRules {
    /// The names of the policies selecting the interface, sorted.
    pub policies: Vec<String>,
    /// Whether a selecting policy governs ingress: then only what `rules` accept may reach it.
    pub ingress_isolated: bool,
    /// Whether a selecting policy governs egress: then only what `rules` accept may leave it.
    pub egress_isolated: bool,
    /// The rules, sorted by direction, source, destination, protocol; ids unique.
    pub rules: Vec<FirewallRule>,
}

/// Why a network's policies cannot be compiled at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A policy of the network is invalid (the API should have refused it).
    #[error("policy {policy:?}: {errors}")]
    InvalidPolicy {
        /// The policy's name.
        policy: String,
        /// Its invalid fields.
        errors: PolicyErrors,
    },
    /// Two policies of the network share a name.
    #[error("policy {name:?} is listed twice")]
    DuplicatePolicy {
        /// The name.
        name: String,
    },
    /// Two objects of one kind in the network share a name.
    #[error("{kind} {name:?} is listed twice")]
    DuplicateObject {
        /// The kind.
        kind: ObjectKind,
        /// The name.
        name: String,
    },
}

/// Why one interface's rules cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceError {
    /// More rules than an interface may carry.
    #[error(
        "the policies selecting it ({}) compile to {count} firewall rules, more than {max}",
        policies.join(", ")
    )]
    TooManyRules {
        /// The number of rules after merging.
        count: usize,
        /// [`MAX_RULES_PER_INTERFACE`].
        max: usize,
        /// The selecting policies.
        policies: Vec<String>,
    },
    /// More rules before merging than compiling takes on.
    #[error(
        "the policies selecting it ({}) expand to more than {max} rules before merging",
        policies.join(", ")
    )]
    TooManyCandidates {
        /// [`MAX_CANDIDATE_RULES`].
        max: usize,
        /// The selecting policies.
        policies: Vec<String>,
    },
}

/// Compiles the policies of `network` into firewall rules for each of its interfaces.
///
/// Policies of other networks and objects of other networks are ignored, so a namespace's
/// whole lists may be passed. The result depends on the inputs only, not on their order.
pub fn compile_policies(
    network: &str,
    policies: &[NetworkPolicy],
    inventory: &PolicyInventory,
) -> Result<CompiledPolicies, CompileError> {
    let mut mine: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| p.spec.network_ref == network)
        .collect();
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in mine.windows(2) {
        if let [a, b] = pair
            && a.name == b.name
        {
            return Err(CompileError::DuplicatePolicy {
                name: a.name.clone(),
            });
        }
    }
    for p in &mine {
        p.validate().map_err(|errors| CompileError::InvalidPolicy {
            policy: p.name.clone(),
            errors,
        })?;
    }
    let interfaces = objects_of(network, ObjectKind::NetworkInterface, &inventory.interfaces)?;
    let load_balancers = objects_of(network, ObjectKind::LoadBalancer, &inventory.load_balancers)?;
    let prepared: Vec<Prepared<'_>> = mine
        .iter()
        .map(|p| prepare(p, &interfaces, &load_balancers))
        .collect();
    let mut out = CompiledPolicies::default();
    for (name, iface) in &interfaces {
        match compile_interface(iface, &prepared) {
            Ok(rules) => {
                out.interfaces.insert(name.to_string(), rules);
            }
            Err(e) => {
                out.errors.insert(name.to_string(), e);
            }
        }
    }
    Ok(out)
}

fn objects_of<'a>(
    network: &str,
    kind: ObjectKind,
    objects: &'a [PolicyObject],
) -> Result<BTreeMap<&'a str, &'a PolicyObject>, CompileError> {
    let mut out = BTreeMap::new();
    for o in objects.iter().filter(|o| o.network == network) {
        if out.insert(o.name.as_str(), o).is_some() {
            return Err(CompileError::DuplicateObject {
                kind,
                name: o.name.clone(),
            });
        }
    }
    Ok(out)
}

/// A policy with its peers resolved and ports translated, shared by every interface it selects.
struct Prepared<'a> {
    policy: &'a NetworkPolicy,
    /// The governed directions, each with its rules.
    directions: Vec<(Direction, Vec<PreparedRule>)>,
}

struct PreparedRule {
    index: usize,
    /// The peers' prefixes, sorted, without duplicates.
    prefixes: Vec<IpNet>,
    protocols: Vec<RuleProtocol>,
    /// The rule alone expands beyond [`MAX_CANDIDATE_RULES`]; `prefixes` is then incomplete.
    oversized: bool,
}

fn prepare<'a>(
    policy: &'a NetworkPolicy,
    interfaces: &BTreeMap<&str, &PolicyObject>,
    load_balancers: &BTreeMap<&str, &PolicyObject>,
) -> Prepared<'a> {
    let mut directions = Vec::new();
    for t in PolicyType::ALL {
        if !policy.spec.governs(t) {
            continue;
        }
        let rules = policy
            .spec
            .rules(t)
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let protocols: Vec<RuleProtocol> = if rule.ports.is_empty() {
                    vec![RuleProtocol::Any]
                } else {
                    rule.ports.iter().filter_map(rule_protocol).collect()
                };
                let cap = MAX_CANDIDATE_RULES / protocols.len().max(1);
                let mut prefixes = Vec::new();
                let mut oversized = false;
                if rule.peers.is_empty() {
                    prefixes.extend([any(false), any(true)]);
                }
                for peer in &rule.peers {
                    match peer {
                        PolicyPeer::IpBlock(block) => {
                            prefixes.extend(cidr_difference(block.cidr, &block.except));
                        }
                        PolicyPeer::ObjectSelector(sel) => {
                            let objects = match sel.kind {
                                ObjectKind::NetworkInterface => interfaces,
                                ObjectKind::LoadBalancer => load_balancers,
                            };
                            prefixes.extend(
                                objects
                                    .values()
                                    .filter(|o| sel.selector.matches(&o.labels))
                                    .flat_map(|o| o.ips.iter().map(|ip| host(*ip))),
                            );
                        }
                    }
                    if prefixes.len() > cap {
                        oversized = true;
                        break;
                    }
                }
                prefixes.sort();
                prefixes.dedup();
                PreparedRule {
                    index,
                    prefixes,
                    protocols,
                    oversized,
                }
            })
            .collect();
        directions.push((Direction::from(t), rules));
    }
    Prepared { policy, directions }
}

/// A `ports` item as a rule protocol. SCTP has none: validation refuses it before this runs.
fn rule_protocol(port: &PolicyPort) -> Option<RuleProtocol> {
    let dst_ports = port.port.map(|first| PortRange {
        first,
        last: port.end_port.unwrap_or(first),
    });
    match port.protocol.unwrap_or(Protocol::Tcp) {
        Protocol::Tcp => Some(RuleProtocol::Tcp { dst_ports }),
        Protocol::Udp => Some(RuleProtocol::Udp { dst_ports }),
        Protocol::Sctp => None,
    }
}

/// Every address of a family: `0.0.0.0/0` or `::/0`.
fn any(ipv6: bool) -> IpNet {
    if ipv6 {
        IpNet::V6(Ipv6Net::default())
    } else {
        IpNet::V4(Ipv4Net::default())
    }
}

/// The host prefix of an address: `/32` or `/128`.
fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The unspecified address's host prefix: no packet that reaches the firewall carries it.
fn unspecified(ipv6: bool) -> IpNet {
    if ipv6 {
        host(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        host(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// Where a candidate rule comes from; orders candidates with equal bodies, so the one kept
/// (and so its id) does not depend on input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin<'a> {
    Policy { name: &'a str, index: usize },
    Isolation,
}

struct Candidate<'a> {
    rule: FirewallRule,
    origin: Origin<'a>,
}

type BodyKey = (Direction, IpNet, IpNet, RuleProtocol);

fn body_key(rule: &FirewallRule) -> BodyKey {
    (rule.direction, rule.source, rule.destination, rule.protocol)
}

fn rule(
    direction: Direction,
    source: IpNet,
    destination: IpNet,
    protocol: RuleProtocol,
) -> FirewallRule {
    FirewallRule {
        id: String::new(),
        direction,
        action: Action::Accept,
        priority: RULE_PRIORITY,
        source,
        destination,
        protocol,
    }
}

fn compile_interface(
    iface: &PolicyObject,
    prepared: &[Prepared<'_>],
) -> Result<InterfaceRules, InterfaceError> {
    let families: BTreeSet<bool> = iface.ips.iter().map(IpAddr::is_ipv6).collect();
    let selecting: Vec<&Prepared<'_>> = prepared
        .iter()
        .filter(|p| {
            p.policy
                .spec
                .network_interface_selector
                .matches(&iface.labels)
        })
        .collect();
    let policies: Vec<String> = selecting.iter().map(|p| p.policy.name.clone()).collect();
    let too_many = || InterfaceError::TooManyCandidates {
        max: MAX_CANDIDATE_RULES,
        policies: policies.clone(),
    };
    let mut out = InterfaceRules {
        policies: policies.clone(),
        ..InterfaceRules::default()
    };
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for p in &selecting {
        for (direction, rules) in &p.directions {
            match direction {
                Direction::Ingress => out.ingress_isolated = true,
                Direction::Egress => out.egress_isolated = true,
            }
            for r in rules {
                if r.oversized {
                    return Err(too_many());
                }
                let origin = Origin::Policy {
                    name: &p.policy.name,
                    index: r.index,
                };
                for prefix in r
                    .prefixes
                    .iter()
                    .filter(|n| families.contains(&n.addr().is_ipv6()))
                {
                    let anywhere = any(prefix.addr().is_ipv6());
                    // Ingress: the peer is the source; any destination, because the interface
                    // is also reached at load-balancer and routed (alias) addresses. Egress: the
                    // peer is the destination, from any of the interface's source addresses.
                    let (source, destination) = match direction {
                        Direction::Ingress => (*prefix, anywhere),
                        Direction::Egress => (anywhere, *prefix),
                    };
                    for &protocol in &r.protocols {
                        if candidates.len() >= MAX_CANDIDATE_RULES {
                            return Err(too_many());
                        }
                        candidates.push(Candidate {
                            rule: rule(*direction, source, destination, protocol),
                            origin,
                        });
                    }
                }
            }
        }
    }
    for (direction, isolated) in [
        (Direction::Ingress, out.ingress_isolated),
        (Direction::Egress, out.egress_isolated),
    ] {
        if isolated && !candidates.iter().any(|c| c.rule.direction == direction) {
            candidates.extend(families.iter().map(|&v6| Candidate {
                rule: isolation_rule(direction, v6),
                origin: Origin::Isolation,
            }));
        }
    }
    let kept = minimize(candidates);
    if kept.len() > MAX_RULES_PER_INTERFACE {
        return Err(InterfaceError::TooManyRules {
            count: kept.len(),
            max: MAX_RULES_PER_INTERFACE,
            policies,
        });
    }
    out.rules = assign_ids(kept);
    Ok(out)
}

/// With ACCEPT rules only, a direction with no rules is open; an interface isolated in a
/// direction where nothing is allowed still needs a rule there. This one accepts TCP to port 0
/// from (ingress) or to (egress) the unspecified address: traffic that never occurs.
fn isolation_rule(direction: Direction, ipv6: bool) -> FirewallRule {
    let nothing = unspecified(ipv6);
    let (source, destination) = match direction {
        Direction::Ingress => (nothing, any(ipv6)),
        Direction::Egress => (any(ipv6), nothing),
    };
    let port_zero = Some(PortRange { first: 0, last: 0 });
    rule(
        direction,
        source,
        destination,
        RuleProtocol::Tcp {
            dst_ports: port_zero,
        },
    )
}

/// Drops duplicate bodies (keeping the first origin) and rules another rule covers: fewer
/// rules for dpservice to walk, and overlapping policies do not multiply an interface's rules.
fn minimize(mut candidates: Vec<Candidate<'_>>) -> Vec<Candidate<'_>> {
    candidates.sort_by(|a, b| {
        body_key(&a.rule)
            .cmp(&body_key(&b.rule))
            .then(a.origin.cmp(&b.origin))
    });
    candidates.dedup_by(|later, earlier| body_key(&later.rule) == body_key(&earlier.rule));
    // Bodies are distinct now, so two rules never cover each other and none is lost twice.
    let covered: Vec<bool> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            candidates
                .iter()
                .enumerate()
                .any(|(j, other)| i != j && other.rule.covers(&c.rule))
        })
        .collect();
    candidates
        .into_iter()
        .zip(covered)
        .filter(|(_, covered)| !covered)
        .map(|(c, _)| c)
        .collect()
}

/// Gives each rule its id, in body order; a (rare) hash collision is resolved by salting the
/// later rule's hash, so ids stay unique.
fn assign_ids(candidates: Vec<Candidate<'_>>) -> Vec<FirewallRule> {
    let mut used = BTreeSet::new();
    let mut out = Vec::with_capacity(candidates.len());
    for Candidate { mut rule, origin } in candidates {
        let mut salt = 0u32;
        loop {
            let id = match origin {
                Origin::Policy { name, index } => rule_id(name, rule.direction, index, &rule, salt),
                Origin::Isolation => {
                    let id = isolation_id(rule.direction, rule.source.addr().is_ipv6());
                    if salt == 0 {
                        id
                    } else {
                        format!("{id}-{salt}")
                    }
                }
            };
            if used.insert(id.clone()) {
                rule.id = id;
                break;
            }
            salt = salt.wrapping_add(1);
        }
        out.push(rule);
    }
    out
}
