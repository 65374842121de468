//! LoadBalancer: a VIP in a network whose TCP/UDP ports dpservice spreads over the targets
//! (interfaces that announce the VIP as a LOADBALANCER_TARGET route).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrinet_proto::node::v1 as pb;

use super::fields::{address, validate_metadata, validate_name};
use super::{Options, SpecError};

/// Most ports a load balancer has: dpservice takes fewer than 16.
pub const MAX_LB_PORTS: usize = 15;

/// Where the VIP is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbKind {
    /// In the network's VNI.
    Internal,
    /// In the public VNI.
    Public,
}

/// A load-balanced protocol: dpservice balances TCP and UDP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A validated load-balancer spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadBalancerSpec {
    /// Name of the Network.
    pub network: String,
    /// Internal or public.
    pub kind: LbKind,
    /// The VIP.
    pub ip: IpAddr,
    /// 1 to 15 (protocol, port) pairs; ports are 1..=65535.
    pub ports: BTreeSet<(LbProtocol, u16)>,
}

/// Validates a LoadBalancer and returns its name and spec.
///
/// Rules: `metadata` as every object; `spec.network` a name; `spec.type` INTERNAL or PUBLIC;
/// `spec.ip` an address (not unspecified; IPv6 only when enabled); `spec.ports` 1 to 15 entries,
/// each TCP or UDP (ICMP is refused, as dpservice refuses it) with a port of 1 to 65535, no
/// (protocol, port) twice. Port 0 is refused although dpservice would take it: no client can
/// connect to port 0, so it can only be a mistake.
pub fn validate_load_balancer(
    lb: &pb::LoadBalancer,
    options: &Options,
) -> Result<(String, LoadBalancerSpec), SpecError> {
    let name = validate_metadata(lb.metadata.as_ref())?;
    let spec = lb
        .spec
        .as_ref()
        .ok_or_else(|| SpecError::new("spec", "missing"))?;
    validate_name("spec.network", &spec.network)?;
    let kind = match pb::LoadBalancerType::try_from(spec.r#type) {
        Ok(pb::LoadBalancerType::Internal) => LbKind::Internal,
        Ok(pb::LoadBalancerType::Public) => LbKind::Public,
        _ => {
            return Err(SpecError::new(
                "spec.type",
                format!("must be INTERNAL or PUBLIC, not {}", spec.r#type),
            ));
        }
    };
    let ip = address("spec.ip", &spec.ip, options)?;

    if spec.ports.is_empty() || spec.ports.len() > MAX_LB_PORTS {
        return Err(SpecError::new(
            "spec.ports",
            format!(
                "has {} entries; a load balancer has 1 to {MAX_LB_PORTS}",
                spec.ports.len()
            ),
        ));
    }
    let mut ports = BTreeMap::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let protocol = match pb::Protocol::try_from(p.protocol) {
            Ok(pb::Protocol::Tcp) => LbProtocol::Tcp,
            Ok(pb::Protocol::Udp) => LbProtocol::Udp,
            _ => {
                return Err(SpecError::new(
                    format!("spec.ports[{i}].protocol"),
                    format!(
                        "must be TCP or UDP, not {} (dpservice balances TCP and UDP only)",
                        p.protocol
                    ),
                ));
            }
        };
        let port = u16::try_from(p.port)
            .ok()
            .filter(|&v| v != 0)
            .ok_or_else(|| {
                SpecError::new(
                    format!("spec.ports[{i}].port"),
                    format!("{} is not a port (1 to 65535)", p.port),
                )
            })?;
        if let Some(first) = ports.insert((protocol, port), i) {
            return Err(SpecError::new(
                format!("spec.ports[{i}]"),
                format!("duplicates spec.ports[{first}]"),
            ));
        }
    }

    Ok((
        name,
        LoadBalancerSpec {
            network: spec.network.clone(),
            kind,
            ip,
            ports: ports.into_keys().collect(),
        },
    ))
}
