//! NetworkInterface: a VM's port in one network, with its addresses and features.
//!
//! The interface itself (VNI, primary IPs, metering, hostname) is one dpservice object that
//! cannot be changed once created, so a change of any of those means re-creating it on the same
//! VF ([`needs_recreate`]). Everything else (virtual IP, NAT, routed prefixes, load-balancer
//! targets, firewall rules) is a separate dpservice object attached to the interface and is
//! changed in place, by difference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;

use super::fields::{address, prefix_list, validate_hostname, validate_metadata, validate_name};
use super::firewall::{FirewallRule, validate_firewall_rules};
use super::{Options, SpecError};

/// Network NAT: a shared public IPv4 address and the source-port slice `[port, end_port)` this
/// interface owns (half-open, as dpservice and the NAT route's port range treat it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nat {
    /// The NAT address.
    pub ip: Ipv4Addr,
    /// First port of the slice.
    pub port: u16,
    /// One past the last port; `> port`.
    pub end_port: u16,
}

/// Egress rate caps in Mbit/s; 0 is unlimited. `total == 0 || total >= public`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Metering {
    /// All egress traffic.
    pub total: u64,
    /// Egress traffic to public addresses.
    pub public: u64,
}

/// A validated interface spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterfaceSpec {
    /// Name of the Network.
    pub network: String,
    /// Primary IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6 address (at least one of the two is set).
    pub ipv6: Option<Ipv6Addr>,
    /// 1:1 public IPv4 address.
    pub virtual_ip: Option<Ipv4Addr>,
    /// Network NAT.
    pub nat: Option<Nat>,
    /// Routed ("alias") prefixes behind the interface.
    pub prefixes: BTreeSet<IpNet>,
    /// Load-balancer VIPs this interface is a target of.
    pub lb_targets: BTreeSet<IpNet>,
    /// Firewall rules by id.
    pub firewall: BTreeMap<String, FirewallRule>,
    /// Metering.
    pub metering: Metering,
    /// DHCPv4 option 12.
    pub hostname: Option<String>,
}

impl InterfaceSpec {
    /// The primary IPs, IPv4 first.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
    }
}

/// Whether going from `old` (in VNI `old_vni`) to `new` (in `new_vni`) needs the dpservice
/// interface deleted and created again (on the same VF): dpservice has no call to change an
/// interface's VNI, IPs, metering or hostname. Everything else is applied in place.
pub fn needs_recreate(
    old: &InterfaceSpec,
    new: &InterfaceSpec,
    old_vni: u32,
    new_vni: u32,
) -> bool {
    old_vni != new_vni
        || old.ipv4 != new.ipv4
        || old.ipv6 != new.ipv6
        || old.metering != new.metering
        || old.hostname != new.hostname
}

/// An IPv4-only address (VIP, NAT): dpservice has no IPv6 VIPs or NATs.
fn ipv4_address(field: &str, text: &str) -> Result<Ipv4Addr, SpecError> {
    // IPv6 passes `address` here only to be refused below with the reason that applies.
    match address(field, text, &Options { ipv6_enabled: true })? {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(SpecError::new(
            field,
            format!("{a} is IPv6; dpservice takes IPv4 only here"),
        )),
    }
}

/// Validates a NetworkInterface and returns its name and spec.
///
/// Rules, in the order they are checked:
/// - `metadata`: name and labels ([`validate_metadata`]);
/// - `spec.network`: a name;
/// - `spec.ips`: 1 or 2 addresses, at most one per family (the error names the second of a
///   family), not unspecified, IPv6 only when enabled;
/// - `spec.virtual_ip`: empty or an IPv4 address;
/// - `spec.nat`: unset, or an IPv4 `ip` with `port < end_port <= 65535` (ports are 16 bits, the
///   slice is half-open, so port 65535 itself cannot be in a slice; dpservice has the same
///   bound), and `ip` not equal to the virtual IP (dpservice would answer DNAT_EXISTS);
/// - `spec.prefixes`, `spec.load_balancer_targets`: prefixes without host bits or duplicates,
///   IPv6 only when enabled;
/// - `spec.firewall_rules`: see [`validate_firewall_rules`];
/// - `spec.metering_rate`: `total_rate` 0 (unlimited) or at least `public_rate`;
/// - `spec.hostname`: see [`validate_hostname`].
pub fn validate_interface(
    iface: &pb::NetworkInterface,
    options: &Options,
) -> Result<(String, InterfaceSpec), SpecError> {
    let name = validate_metadata(iface.metadata.as_ref())?;
    let spec = iface
        .spec
        .as_ref()
        .ok_or_else(|| SpecError::new("spec", "missing"))?;
    validate_name("spec.network", &spec.network)?;

    if spec.ips.is_empty() || spec.ips.len() > 2 {
        return Err(SpecError::new(
            "spec.ips",
            format!(
                "has {} addresses; an interface has 1 or 2 (at most one IPv4 and one IPv6)",
                spec.ips.len()
            ),
        ));
    }
    let (mut ipv4, mut ipv6) = (None, None);
    for (i, text) in spec.ips.iter().enumerate() {
        let field = format!("spec.ips[{i}]");
        let duplicate_family = match address(&field, text, options)? {
            IpAddr::V4(a) => ipv4.replace(a).is_some(),
            IpAddr::V6(a) => ipv6.replace(a).is_some(),
        };
        if duplicate_family {
            return Err(SpecError::new(
                field,
                "is a second address of its family; at most one IPv4 and one IPv6",
            ));
        }
    }

    let virtual_ip = if spec.virtual_ip.is_empty() {
        None
    } else {
        Some(ipv4_address("spec.virtual_ip", &spec.virtual_ip)?)
    };

    let nat = match &spec.nat {
        None => None,
        Some(n) => Some(nat(n, virtual_ip)?),
    };

    let prefixes = prefix_list("spec.prefixes", &spec.prefixes, options)?;
    let lb_targets = prefix_list(
        "spec.load_balancer_targets",
        &spec.load_balancer_targets,
        options,
    )?;
    let firewall = validate_firewall_rules("spec.firewall_rules", &spec.firewall_rules, options)?;

    let metering = match &spec.metering_rate {
        None => Metering::default(),
        Some(m) => {
            if m.total_rate != 0 && m.total_rate < m.public_rate {
                return Err(SpecError::new(
                    "spec.metering_rate.total_rate",
                    format!(
                        "{} is below public_rate {}; total_rate is 0 (unlimited) or at least \
                         public_rate",
                        m.total_rate, m.public_rate
                    ),
                ));
            }
            Metering {
                total: m.total_rate,
                public: m.public_rate,
            }
        }
    };
    let hostname = validate_hostname("spec.hostname", &spec.hostname)?;

    Ok((
        name,
        InterfaceSpec {
            network: spec.network.clone(),
            ipv4,
            ipv6,
            virtual_ip,
            nat,
            prefixes,
            lb_targets,
            firewall,
            metering,
            hostname,
        },
    ))
}

fn nat(n: &pb::NatSpec, virtual_ip: Option<Ipv4Addr>) -> Result<Nat, SpecError> {
    let ip = ipv4_address("spec.nat.ip", &n.ip)?;
    if Some(ip) == virtual_ip {
        return Err(SpecError::new(
            "spec.nat.ip",
            format!("{ip} is also the virtual_ip; dpservice cannot have both"),
        ));
    }
    let port = u16::try_from(n.port)
        .map_err(|_| SpecError::new("spec.nat.port", format!("{} exceeds 65535", n.port)))?;
    let end_port = u16::try_from(n.end_port).map_err(|_| {
        SpecError::new("spec.nat.end_port", format!("{} exceeds 65535", n.end_port))
    })?;
    if port >= end_port {
        return Err(SpecError::new(
            "spec.nat.end_port",
            format!(
                "{end_port} is not above port {port}; the slice [port, end_port) is half-open \
                 and not empty"
            ),
        ));
    }
    Ok(Nat { ip, port, end_port })
}
