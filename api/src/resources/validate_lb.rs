//! A LoadBalancer's spec (type, addresses, ports within dpservice's limits) and a
//! NetworkPolicy's (converted and checked by the policy module).

use std::collections::BTreeMap;
use std::fmt;

use ferrinet_proto::api::v1 as pb;

use super::convert::{optional_selector, policy_spec};
use super::errors::ValidationErrors;
use super::validate::{derived_families, families, fixed_ips, local_ref};
use crate::policy;

/// Most ports a load balancer has once its ranges are expanded: dpservice takes 15 per load
/// balancer.
pub const MAX_LB_PORTS: usize = 15;

/// A load-balanced protocol: dpservice balances TCP and UDP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for LbProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// A load balancer's `spec.ports` expanded into (protocol, port) pairs, sorted: each protocol
/// TCP (also when empty) or UDP, each port 1 to 65535 with `endPort` 0 or at least `port`, no
/// pair twice, at most [`MAX_LB_PORTS`] in all.
pub fn load_balancer_ports(
    ports: &[pb::LoadBalancerPort],
) -> Result<Vec<(LbProtocol, u16)>, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if ports.is_empty() {
        errors.push(
            "spec.ports",
            "is required: a load balancer balances at least one port",
        );
    }
    let mut expanded: BTreeMap<(LbProtocol, u16), usize> = BTreeMap::new();
    let mut total: u64 = 0;
    for (i, p) in ports.iter().enumerate() {
        let base = format!("spec.ports[{i}]");
        let protocol = match p.protocol.as_str() {
            "" | "TCP" => Some(LbProtocol::Tcp),
            "UDP" => Some(LbProtocol::Udp),
            "SCTP" => {
                errors.push(
                    format!("{base}.protocol"),
                    "SCTP cannot be balanced: dpservice balances TCP and UDP only",
                );
                None
            }
            other => {
                errors.push(
                    format!("{base}.protocol"),
                    format!("{other:?} is not TCP or UDP"),
                );
                None
            }
        };
        let first = match u16::try_from(p.port) {
            Ok(port) if port != 0 => Some(port),
            _ => {
                errors.push(
                    format!("{base}.port"),
                    format!("{} is not a port (1 to 65535)", p.port),
                );
                None
            }
        };
        let last = match (first, p.end_port) {
            (first, 0) => first,
            (first, end) => match u16::try_from(end) {
                Err(_) => {
                    errors.push(
                        format!("{base}.endPort"),
                        format!("{end} is not a port (1 to 65535)"),
                    );
                    None
                }
                Ok(end) if first.is_some_and(|f| end < f) => {
                    errors.push(
                        format!("{base}.endPort"),
                        format!("{end} is below port {}", p.port),
                    );
                    None
                }
                Ok(end) => first.map(|_| end),
            },
        };
        let (Some(protocol), Some(first), Some(last)) = (protocol, first, last) else {
            continue;
        };
        total += u64::from(last - first) + 1;
        // Expanding a range far beyond the limit would only cost time: the count says enough.
        if total > MAX_LB_PORTS as u64 {
            continue;
        }
        for port in first..=last {
            if let Some(&j) = expanded.get(&(protocol, port)) {
                errors.push(
                    base.clone(),
                    format!("{protocol} port {port} is listed already at spec.ports[{j}]"),
                );
                break;
            }
            expanded.insert((protocol, port), i);
        }
    }
    if total > MAX_LB_PORTS as u64 {
        errors.push(
            "spec.ports",
            format!(
                "expand to {total} ports, more than {MAX_LB_PORTS}: dpservice balances at most \
                 {MAX_LB_PORTS} ports per load balancer"
            ),
        );
    }
    errors.or_ok(expanded.into_keys().collect())
}

pub(crate) fn load_balancer(
    errors: &mut ValidationErrors,
    ns: &str,
    spec: &mut pb::LoadBalancerSpec,
) {
    let internal = match spec.r#type.as_str() {
        "Internal" => true,
        "Public" => false,
        other => {
            errors.push("spec.type", format!("{other:?} is not Public or Internal"));
            true
        }
    };
    let fams = families(errors, "spec.ipFamilies", &spec.ip_families);
    if !internal && !spec.ips.is_empty() {
        errors.push(
            "spec.ips",
            "only an Internal load balancer has fixed addresses; a Public one gets public IPs",
        );
    }
    let ips = fixed_ips(errors, "spec.ips", &mut spec.ips, &fams, "spec.ipFamilies");
    if spec.ip_families.is_empty() {
        spec.ip_families = derived_families(&ips);
    }
    local_ref(errors, "spec.networkRef", spec.network_ref.as_ref(), ns);
    if let Err(e) = optional_selector(
        spec.network_interface_selector.as_ref(),
        "spec.networkInterfaceSelector",
    ) {
        errors.extend(e);
    }
    if let Err(e) = load_balancer_ports(&spec.ports) {
        errors.extend(e);
    }
    for p in &mut spec.ports {
        if p.protocol.is_empty() {
            p.protocol = LbProtocol::Tcp.to_string();
        }
    }
}

pub(crate) fn network_policy(
    errors: &mut ValidationErrors,
    ns: &str,
    name: &str,
    spec: &mut pb::NetworkPolicySpec,
) {
    local_ref(errors, "spec.networkRef", spec.network_ref.as_ref(), ns);
    match policy_spec(spec) {
        Err(e) => errors.extend(e),
        Ok(converted) => {
            let policy = policy::NetworkPolicy {
                name: name.to_string(),
                spec: converted,
            };
            if let Err(e) = policy.validate() {
                for error in e.0 {
                    // Both names are checked already, as DNS labels (stricter than the policy
                    // module's subdomains).
                    if error.field == "metadata.name" || error.field == "spec.networkRef.name" {
                        continue;
                    }
                    errors.push(peers_path(&error.field), error.problem);
                }
            }
        }
    }
    for rule in spec.ingress.iter_mut().chain(spec.egress.iter_mut()) {
        for p in &mut rule.ports {
            if p.protocol.is_empty() {
                p.protocol = "TCP".to_string();
            }
        }
    }
}

/// The policy module names a rule's peers `from`/`to` (Kubernetes' words); the proto calls
/// them `peers`.
fn peers_path(field: &str) -> String {
    field
        .split('.')
        .map(|segment| {
            let rest = segment
                .strip_prefix("from")
                .or_else(|| segment.strip_prefix("to"));
            match rest {
                Some(rest) if rest.is_empty() || rest.starts_with('[') => format!("peers{rest}"),
                _ => segment.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}
