//! The compiled firewall rules of one interface, in the shape dpservice takes them: one
//! direction, ACCEPT, a source and a destination prefix, a protocol with at most one
//! destination port range.

use std::fmt;

use ipnet::IpNet;

use super::spec::PolicyType;

/// The priority of every compiled rule. dpservice stores a rule's priority but does not order
/// by it (all rules are ACCEPTs, so order cannot matter); one fixed value keeps rule bodies
/// equal across recompilations.
pub const RULE_PRIORITY: u16 = 1000;
/// The longest rule id dpservice takes.
pub const MAX_RULE_ID_LEN: usize = 63;

/// Traffic direction, seen from the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Towards the interface.
    Ingress,
    /// From the interface.
    Egress,
}

impl From<PolicyType> for Direction {
    fn from(t: PolicyType) -> Self {
        match t {
            PolicyType::Ingress => Self::Ingress,
            PolicyType::Egress => Self::Egress,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

/// A rule's action. dpservice only has ACCEPT: an interface with at least one rule of a
/// direction drops what no rule of that direction accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Let the packet (and, the firewall being stateful, its replies) through.
    Accept,
}

/// Ports `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port, `>= first`.
    pub last: u16,
}

impl PortRange {
    /// Whether every port of `other` is in this range.
    pub fn contains(&self, other: &PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// What a rule matches beyond addresses. Source ports are always "any": policies filter
/// destination ports only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleProtocol {
    /// Every protocol (ICMP included) and port: a rule without `ports`.
    Any,
    /// TCP to these destination ports (`None`: any port).
    Tcp {
        /// Destination ports.
        dst_ports: Option<PortRange>,
    },
    /// UDP to these destination ports (`None`: any port).
    Udp {
        /// Destination ports.
        dst_ports: Option<PortRange>,
    },
}

impl RuleProtocol {
    /// Whether every packet `other` matches is matched by `self` too.
    pub fn covers(&self, other: &RuleProtocol) -> bool {
        let ports = |mine: &Option<PortRange>, theirs: &Option<PortRange>| match (mine, theirs) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(m), Some(t)) => m.contains(t),
        };
        match (self, other) {
            (Self::Any, _) => true,
            (Self::Tcp { dst_ports: m }, Self::Tcp { dst_ports: t })
            | (Self::Udp { dst_ports: m }, Self::Udp { dst_ports: t }) => ports(m, t),
            _ => false,
        }
    }
}

impl fmt::Display for RuleProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, ports) = match self {
            Self::Any => return f.write_str("any"),
            Self::Tcp { dst_ports } => ("tcp", dst_ports),
            Self::Udp { dst_ports } => ("udp", dst_ports),
        };
        match ports {
            None => write!(f, "{name}/any"),
            Some(range) => write!(f, "{name}/{range}"),
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallRule {
    /// 1 to 63 of `[A-Za-z0-9_-]`, unique among the interface's rules, and the same for the
    /// same rule of the same policy across recompilations.
    pub id: String,
    /// Direction.
    pub direction: Direction,
    /// Always [`Action::Accept`].
    pub action: Action,
    /// Always [`RULE_PRIORITY`].
    pub priority: u16,
    /// Source prefix; `0.0.0.0/0` or `::/0` for any.
    pub source: IpNet,
    /// Destination prefix, of the source's family.
    pub destination: IpNet,
    /// Protocol and destination ports.
    pub protocol: RuleProtocol,
}

impl FirewallRule {
    /// Whether every packet `other` accepts is accepted by `self` too.
    pub fn covers(&self, other: &FirewallRule) -> bool {
        self.direction == other.direction
            && self.source.contains(&other.source)
            && self.destination.contains(&other.destination)
            && self.protocol.covers(&other.protocol)
    }
}

/// `{id}: {direction} {protocol} {source} -> {destination}`, e.g.
/// `db-i0-1a2b3c4d: ingress tcp/5432 10.0.0.20/32 -> 0.0.0.0/0`.
impl fmt::Display for FirewallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} {} -> {}",
            self.id, self.direction, self.protocol, self.source, self.destination
        )
    }
}

/// The id of a rule compiled from rule `index` of `policy`'s `direction` rules:
/// `{policy}-{i|e}{index}-{hash}`, the policy name with characters dpservice does not take
/// replaced by `_` and shortened to fit. The hash covers the full policy name, the rule's
/// origin and its body, so one policy rule's pieces get distinct ids and an id changes exactly
/// when its body does (dpservice cannot update a rule in place). `salt` is 0 unless an earlier
/// rule of the interface took the id.
pub(crate) fn rule_id(
    policy: &str,
    direction: Direction,
    index: usize,
    body: &FirewallRule,
    salt: u32,
) -> String {
    let d = match direction {
        Direction::Ingress => 'i',
        Direction::Egress => 'e',
    };
    let material = format!(
        "{policy}\0{d}{index}\0{}\0{}\0{}\0{salt}",
        body.source, body.destination, body.protocol
    );
    let hash = fnv1a32(material.as_bytes());
    let tail = format!("-{d}{index}-{hash:08x}");
    let room = MAX_RULE_ID_LEN.saturating_sub(tail.len());
    let name: String = policy
        .chars()
        .take(room)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}{tail}")
}

/// The id of the rule that isolates an interface in a direction when its policies allow
/// nothing there. Policy-made ids end in eight hex digits, so these cannot collide with them.
pub(crate) fn isolation_id(direction: Direction, ipv6: bool) -> String {
    let family = if ipv6 { "ipv6" } else { "ipv4" };
    format!("isolate-{direction}-{family}")
}

/// 32-bit FNV-1a folded from the 64-bit hash: a fixed function, unlike std's hasher, so ids
/// survive toolchain upgrades.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Both halves feed the result; truncation alone would drop the better-mixed high bits.
    ((hash >> 32) ^ (hash & 0xffff_ffff)) as u32
}
