//! Validation of a NetworkPolicy, with every error named by its field path (e.g.
//! `spec.ingress[0].from[1].ipBlock.except[0]`).
//!
//! The limits keep one policy's expansion (peers x ports x the pieces of each `except`
//! difference) far below what an interface may carry; the per-interface limit is checked when
//! compiling.

use std::fmt;

use ipnet::IpNet;

use super::spec::{NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType, Protocol};
use crate::selector::{LabelSelector, SelectorProblem, is_dns_subdomain};

/// Most rules in `ingress`, and in `egress`.
pub const MAX_RULES_PER_DIRECTION: usize = 64;
/// Most peers in one rule's `from` / `to`.
pub const MAX_PEERS_PER_RULE: usize = 64;
/// Most items in one rule's `ports`.
pub const MAX_PORTS_PER_RULE: usize = 64;
/// Most CIDRs in one `ipBlock.except`.
pub const MAX_EXCEPTS: usize = 32;

/// One invalid field: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PolicyFieldError {
    /// The field's path, e.g. `spec.ingress[0].ports[1].endPort`.
    pub field: String,
    /// What is wrong with it.
    pub problem: PolicyProblem,
}

/// Every invalid field of a policy, in spec order; never empty. Displayed joined by `"; "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyFieldError>);

impl PolicyErrors {
    /// The field paths, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// What is wrong with a policy field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// A name that is not a DNS subdomain.
    #[error(
        "{name:?} is not a valid name (a DNS subdomain: lowercase letters, digits, '-' and '.')"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A selector's key, value or operator.
    #[error(transparent)]
    Selector(SelectorProblem),
    /// A `policyTypes` item listed twice.
    #[error("{policy_type} is listed already at {first}")]
    DuplicatePolicyType {
        /// The type.
        policy_type: PolicyType,
        /// The path of its first listing.
        first: String,
    },
    /// A list longer than its limit.
    #[error("has {count} items, more than {max}")]
    TooMany {
        /// The list's length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A CIDR with bits set after its prefix.
    #[error("{cidr} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The CIDR as given.
        cidr: IpNet,
        /// The same CIDR without host bits.
        network: IpNet,
    },
    /// An `except` that is not strictly inside `cidr` (which includes another family).
    #[error("{except} is not strictly inside the cidr {cidr}")]
    ExceptOutsideCidr {
        /// The except.
        except: IpNet,
        /// The block's cidr.
        cidr: IpNet,
    },
    /// Port 0.
    #[error("0 is not a port (1 to 65535)")]
    PortZero,
    /// `endPort` without `port`.
    #[error("{end_port} needs port to be set")]
    EndPortWithoutPort {
        /// The end port.
        end_port: u16,
    },
    /// `endPort` below `port`.
    #[error("{end_port} is below port {port}")]
    EndPortBelowPort {
        /// The start port.
        port: u16,
        /// The end port.
        end_port: u16,
    },
    /// A protocol the dataplane cannot filter.
    #[error(
        "{protocol} cannot be enforced: dpservice firewall rules filter TCP, UDP and ICMP only"
    )]
    UnsupportedProtocol {
        /// The protocol.
        protocol: Protocol,
    },
}

struct Collector(Vec<PolicyFieldError>);

impl Collector {
    fn push(&mut self, field: impl Into<String>, problem: PolicyProblem) {
        self.0.push(PolicyFieldError {
            field: field.into(),
            problem,
        });
    }

    fn name(&mut self, field: &str, name: &str) {
        if !is_dns_subdomain(name) {
            self.push(
                field,
                PolicyProblem::InvalidName {
                    name: name.to_string(),
                },
            );
        }
    }

    fn selector(&mut self, field: &str, selector: &LabelSelector) {
        if let Err(errors) = selector.validate(field) {
            for e in errors.0 {
                self.push(e.field, PolicyProblem::Selector(e.problem));
            }
        }
    }

    fn limit(&mut self, field: &str, count: usize, max: usize) {
        if count > max {
            self.push(field, PolicyProblem::TooMany { count, max });
        }
    }

    /// A CIDR must be given without host bits: `10.0.0.1/8` is more likely a typo than a wish
    /// for `10.0.0.0/8`.
    fn network(&mut self, field: &str, cidr: IpNet) -> bool {
        let network = cidr.trunc();
        if network != cidr {
            self.push(field, PolicyProblem::HostBitsSet { cidr, network });
            return false;
        }
        true
    }
}

impl NetworkPolicy {
    /// Every invalid field of the policy.
    pub fn validate(&self) -> Result<(), PolicyErrors> {
        let mut c = Collector(Vec::new());
        c.name("metadata.name", &self.name);
        let spec = &self.spec;
        c.name("spec.networkRef.name", &spec.network_ref);
        c.selector(
            "spec.networkInterfaceSelector",
            &spec.network_interface_selector,
        );
        for (i, t) in spec.policy_types.iter().enumerate() {
            if let Some(first) = spec.policy_types[..i].iter().position(|x| x == t) {
                c.push(
                    format!("spec.policyTypes[{i}]"),
                    PolicyProblem::DuplicatePolicyType {
                        policy_type: *t,
                        first: format!("spec.policyTypes[{first}]"),
                    },
                );
            }
        }
        for direction in PolicyType::ALL {
            let rules = spec.rules(direction);
            let field = format!("spec.{}", direction.rules_field());
            c.limit(&field, rules.len(), MAX_RULES_PER_DIRECTION);
            for (i, rule) in rules.iter().enumerate() {
                validate_rule(&mut c, &format!("{field}[{i}]"), direction, rule);
            }
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(PolicyErrors(c.0))
        }
    }
}

fn validate_rule(c: &mut Collector, base: &str, direction: PolicyType, rule: &PolicyRule) {
    let peers_field = format!("{base}.{}", direction.peers_field());
    c.limit(&peers_field, rule.peers.len(), MAX_PEERS_PER_RULE);
    for (i, peer) in rule.peers.iter().enumerate() {
        let field = format!("{peers_field}[{i}]");
        match peer {
            PolicyPeer::IpBlock(block) => {
                let field = format!("{field}.ipBlock");
                let cidr_ok = c.network(&format!("{field}.cidr"), block.cidr);
                c.limit(&format!("{field}.except"), block.except.len(), MAX_EXCEPTS);
                for (j, &except) in block.except.iter().enumerate() {
                    let except_field = format!("{field}.except[{j}]");
                    if !c.network(&except_field, except) || !cidr_ok {
                        continue;
                    }
                    let inside = block.cidr.contains(&except)
                        && except.prefix_len() > block.cidr.prefix_len();
                    if !inside {
                        c.push(
                            except_field,
                            PolicyProblem::ExceptOutsideCidr {
                                except,
                                cidr: block.cidr,
                            },
                        );
                    }
                }
            }
            PolicyPeer::ObjectSelector(object) => {
                c.selector(&format!("{field}.objectSelector"), &object.selector);
            }
        }
    }
    let ports_field = format!("{base}.ports");
    c.limit(&ports_field, rule.ports.len(), MAX_PORTS_PER_RULE);
    for (i, port) in rule.ports.iter().enumerate() {
        validate_port(c, &format!("{ports_field}[{i}]"), port);
    }
}

fn validate_port(c: &mut Collector, base: &str, port: &PolicyPort) {
    if let Some(protocol @ Protocol::Sctp) = port.protocol {
        c.push(
            format!("{base}.protocol"),
            PolicyProblem::UnsupportedProtocol { protocol },
        );
    }
    if port.port == Some(0) {
        c.push(format!("{base}.port"), PolicyProblem::PortZero);
    }
    match (port.port, port.end_port) {
        (_, Some(0)) => c.push(format!("{base}.endPort"), PolicyProblem::PortZero),
        (None, Some(end_port)) => c.push(
            format!("{base}.endPort"),
            PolicyProblem::EndPortWithoutPort { end_port },
        ),
        (Some(port), Some(end_port)) if end_port < port => c.push(
            format!("{base}.endPort"),
            PolicyProblem::EndPortBelowPort { port, end_port },
        ),
        _ => {}
    }
}
