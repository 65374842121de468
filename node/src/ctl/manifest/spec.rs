//! The specs of the manifest documents, in metalnet's shape
//! (`networking.metalnet.ironcore.dev/v1alpha1`), for reading and writing.
//!
//! Addresses and prefixes stay text here; [`super::convert`] parses them, with the field's path
//! in the error. Enumerations are read leniently (case-insensitive, and dpservice-go's numbers
//! where it has them) and written in their canonical spelling.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// `spec` of a `Network`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// The VNI.
    pub id: u32,
    /// VNIs whose routes this network imports.
    #[serde(rename = "peeredIDs", default, skip_serializing_if = "Vec::is_empty")]
    pub peered_ids: Vec<u32>,
    /// Per peered VNI, the only prefixes imported from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peered_prefixes: Vec<PeeredPrefix>,
}

/// One entry of `peeredPrefixes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeeredPrefix {
    /// The peered VNI.
    pub id: u32,
    /// CIDR prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// `networkRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRef {
    /// The network's name.
    pub name: String,
}

/// `spec` of a `NetworkInterface`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterfaceSpec {
    /// The network.
    pub network_ref: LocalRef,
    /// The node that should carry the interface; refused if it is not the node addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The family of each of `ips`, positionally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    /// One or two addresses (at most one per family).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Public IPv4 address (1:1 NAT).
    #[serde(rename = "virtualIP", default, skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<String>,
    /// Source NAT with a port slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
    /// Routed prefixes behind the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Load-balancer IPs (or prefixes) this interface serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_targets: Vec<String>,
    /// Firewall rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall_rules: Vec<FirewallRule>,
    /// Rate limits, Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering_rate: Option<MeteringRate>,
    /// DHCPv4 host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `nat`: the source-port slice `[port, endPort)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nat {
    /// The NAT IPv4 address.
    pub ip: String,
    /// First port.
    pub port: u32,
    /// End of the slice, excluded.
    pub end_port: u32,
}

/// `meteringRate`, Mbit/s (0 or absent: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeteringRate {
    /// Every traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rate: Option<u64>,
    /// Traffic to and from public addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rate: Option<u64>,
}

/// The priority of a firewall rule without one (metalnet's default).
pub const DEFAULT_PRIORITY: u32 = 1000;

fn default_priority() -> u32 {
    DEFAULT_PRIORITY
}

/// One of `firewallRules`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirewallRule {
    /// The rule's id.
    #[serde(rename = "firewallRuleID")]
    pub id: String,
    /// Ingress or Egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Accept or Deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// 0..65535, default 1000.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// The family of the prefixes (given by the prefixes if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// Absent: any address of the family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_prefix: Option<String>,
    /// Absent: any address of the family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<String>,
    /// Absent: any protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_match: Option<ProtocolMatch>,
}

/// `protocolMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtocolMatch {
    /// TCP, UDP or ICMP (any case); absent: any protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_type: Option<Protocol>,
    /// ICMP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// TCP and UDP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortMatch>,
}

/// `icmp`: -1 (or absent) is any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpMatch {
    /// ICMP type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i32>,
    /// ICMP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<i32>,
}

/// `portRange`: -1 is any; an absent end equals its start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMatch {
    /// First source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<i32>,
    /// Last source port (included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_src_port: Option<i32>,
    /// First destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<i32>,
    /// Last destination port (included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_dst_port: Option<i32>,
}

/// `spec` of a `LoadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// The network.
    pub network_ref: LocalRef,
    /// Internal or Public.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub lb_type: Option<LoadBalancerType>,
    /// The family of `ip` (informational; checked against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// The load balancer's IP.
    pub ip: String,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<LoadBalancerPort>,
    /// The node that should carry the load balancer; refused if it is not the node addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// One of `ports`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerPort {
    /// TCP or UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The port.
    pub port: u32,
}

/// An enumeration read leniently and written canonically.
trait Lenient: Sized + Copy + 'static {
    /// Canonical spelling and accepted spellings (compared case-insensitively) of each value.
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])];
    /// What the field accepts, for error messages.
    const EXPECTED: &'static str;
    /// The value of a number, if the field accepts numbers.
    fn from_number(_n: i64) -> Option<Self> {
        None
    }
}

fn canonical<T: Lenient + PartialEq>(v: T) -> &'static str {
    T::TABLE
        .iter()
        .find(|(x, _, _)| *x == v)
        .map_or("?", |(_, name, _)| name)
}

struct LenientVisitor<T>(PhantomData<T>);

impl<T: Lenient> de::Visitor<'_> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        let t = s.trim();
        for (v, name, aliases) in T::TABLE {
            if name.eq_ignore_ascii_case(t) || aliases.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                return Ok(*v);
            }
        }
        match t.parse::<i64>().ok().and_then(T::from_number) {
            Some(v) => Ok(v),
            None => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        T::from_number(n).ok_or_else(|| E::invalid_value(de::Unexpected::Signed(n), &self))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        i64::try_from(n)
            .ok()
            .and_then(T::from_number)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(n), &self))
    }
}

macro_rules! lenient_serde {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(LenientVisitor::<$t>(PhantomData))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(canonical(*self))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(canonical(*self))
            }
        }
    };
}

/// `IPv4` or `IPv6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Lenient for IpFamily {
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])] =
        &[(IpFamily::V4, "IPv4", &[]), (IpFamily::V6, "IPv6", &[])];
    const EXPECTED: &'static str = "IPv4 or IPv6";
}
lenient_serde!(IpFamily);

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: std::net::IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
}

/// `Ingress` or `Egress` (dpservice-go: 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to the interface.
    Ingress,
    /// Traffic from the interface.
    Egress,
}

impl Lenient for Direction {
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])] = &[
        (Direction::Ingress, "Ingress", &[]),
        (Direction::Egress, "Egress", &[]),
    ];
    const EXPECTED: &'static str = "Ingress or Egress (or dpservice-go's 0 or 1)";
    fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(Direction::Ingress),
            1 => Some(Direction::Egress),
            _ => None,
        }
    }
}
lenient_serde!(Direction);

/// `Accept` (also `allow`, 1) or `Deny` (also `drop`, 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let the traffic pass.
    Accept,
    /// Drop the traffic (the node refuses it: dpservice has accept rules only).
    Deny,
}

impl Lenient for Action {
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])] = &[
        (Action::Accept, "Accept", &["allow"]),
        (Action::Deny, "Deny", &["drop"]),
    ];
    const EXPECTED: &'static str = "Accept or Deny (also allow, drop, 1, 0)";
    fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(Action::Deny),
            1 => Some(Action::Accept),
            _ => None,
        }
    }
}
lenient_serde!(Action);

/// `TCP`, `UDP` or `ICMP`, in any case.
///
/// metalnet treats a lower-case `tcp` in a firewall rule as "any protocol"; here it is TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ICMPv6 for IPv6 rules).
    Icmp,
}

impl Lenient for Protocol {
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])] = &[
        (Protocol::Tcp, "TCP", &[]),
        (Protocol::Udp, "UDP", &[]),
        (Protocol::Icmp, "ICMP", &[]),
    ];
    const EXPECTED: &'static str = "TCP, UDP or ICMP";
}
lenient_serde!(Protocol);

/// `Internal` or `Public`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadBalancerType {
    /// VIP in the network's VNI.
    Internal,
    /// VIP in the public VNI.
    Public,
}

impl Lenient for LoadBalancerType {
    const TABLE: &'static [(Self, &'static str, &'static [&'static str])] = &[
        (LoadBalancerType::Internal, "Internal", &[]),
        (LoadBalancerType::Public, "Public", &[]),
    ];
    const EXPECTED: &'static str = "Internal or Public";
}
lenient_serde!(LoadBalancerType);
