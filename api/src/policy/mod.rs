//! NetworkPolicies and their compilation into dpservice firewall rules.
//!
//! A [`NetworkPolicy`] selects interfaces of its network by labels and, like a Kubernetes
//! NetworkPolicy, lists what may reach them (`ingress`) and what they may reach (`egress`).
//! [`compile_policies`] turns a network's policies, interfaces and load balancers into each
//! interface's [`FirewallRule`]s. It is a pure function: when labels, addresses or policies
//! change, the caller compiles again and pushes the difference by rule id.
//!
//! How the policy model maps onto dpservice, and the assumptions behind it:
//!
//! - dpservice has ACCEPT rules only, per interface and direction. We assume, as its firewall
//!   does, that a direction without rules lets everything through, and that once an interface
//!   has a rule of a direction, that direction drops every packet no rule accepts. The firewall
//!   is stateful, so replies to accepted traffic pass in the other direction.
//! - So an interface no policy governs in a direction gets no rules there: all allowed. An
//!   interface a policy governs in a direction gets the union of the rules of every policy
//!   governing it there (policies only add allowed traffic, as in Kubernetes). If that union is
//!   empty (`policyTypes: [Ingress]` without rules, or selectors that match nothing), the
//!   interface gets an isolation rule that accepts traffic that never occurs, so the direction
//!   is closed rather than open.
//! - `ipBlock.except` cannot be a deny: the block becomes the CIDR set difference
//!   ([`cidr_difference`]), one rule per prefix.
//! - An `objectSelector` peer stands for the host prefixes (`/32`, `/128`) of the matching
//!   interfaces' or load balancers' addresses, in the policy's network only.
//! - A rule with several peers and ports becomes one firewall rule per (prefix, port range):
//!   dpservice matches one destination port range per rule. No `ports` means every protocol;
//!   a peer list that is empty means every address of both families.
//! - Ingress rules match the peer as source and any destination; egress rules match any
//!   source and the peer as destination. Peer prefixes of a family the interface has no
//!   address of are skipped.
//! - SCTP is refused at validation: dpservice filters TCP, UDP and ICMP only.
//! - Identical rules are merged and rules another rule of the interface covers are dropped;
//!   more than [`MAX_RULES_PER_INTERFACE`] rules is an error for that interface.

mod cidr;
mod compile;
mod rule;
mod spec;
mod validate;

#[cfg(test)]
mod cidr_tests;
#[cfg(test)]
mod compile_props;
#[cfg(test)]
mod compile_tests;
#[cfg(test)]
mod validate_tests;

pub use cidr::cidr_difference;
pub use compile::{
    CompileError, CompiledPolicies, InterfaceError, InterfaceRules, MAX_CANDIDATE_RULES,
    MAX_RULES_PER_INTERFACE, compile_policies,
};
pub use rule::{
    Action, Direction, FirewallRule, MAX_RULE_ID_LEN, PortRange, RULE_PRIORITY, RuleProtocol,
};
pub use spec::{
    IpBlock, NetworkPolicy, NetworkPolicySpec, ObjectKind, ObjectSelector, PolicyInventory,
    PolicyObject, PolicyPeer, PolicyPort, PolicyRule, PolicyType, Protocol,
};
pub use validate::{
    MAX_EXCEPTS, MAX_PEERS_PER_RULE, MAX_PORTS_PER_RULE, MAX_RULES_PER_DIRECTION, PolicyErrors,
    PolicyFieldError, PolicyProblem,
};
