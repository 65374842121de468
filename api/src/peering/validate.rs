//! Validation of a network's `spec.peerings`, each error named by its field path (e.g.
//! `spec.peerings[1].networkRef.namespace`). Items that pass can still be Failed: whether
//! they collide depends on the other network.

use std::fmt;

use ipnet::IpNet;

use super::PeeringNetwork;
use crate::selector::{is_dns_label, is_dns_subdomain};

/// One invalid field: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PeeringFieldError {
    /// The field's path.
    pub field: String,
    /// What is wrong with it.
    pub problem: PeeringProblem,
}

/// Every invalid field, in spec order; never empty. Displayed joined by `"; "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PeeringErrors(pub Vec<PeeringFieldError>);

impl fmt::Display for PeeringErrors {
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

/// What is wrong with a peering field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeeringProblem {
    /// A peering name that is not a DNS label.
    #[error("{0:?} is not a DNS label (1 to 63 of lowercase letters, digits and '-')")]
    InvalidName(String),
    /// A network name that is not a DNS subdomain.
    #[error("{0:?} is not a valid network name (a DNS subdomain)")]
    InvalidNetworkName(String),
    /// A namespace that is not a DNS label.
    #[error("{0:?} is not a valid namespace (a DNS label)")]
    InvalidNamespace(String),
    /// A name used by an earlier item.
    #[error("{name:?} is used already by {first}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The path of the first item with it.
        first: String,
    },
    /// A CIDR with host bits.
    #[error("{cidr} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The CIDR as given.
        cidr: IpNet,
        /// Without host bits.
        network: IpNet,
    },
}

impl PeeringNetwork {
    /// Every invalid field of `spec.peerings`.
    pub fn validate(&self) -> Result<(), PeeringErrors> {
        let mut errors = Vec::new();
        let mut push = |field: String, problem| errors.push(PeeringFieldError { field, problem });
        for (i, item) in self.peerings.iter().enumerate() {
            let base = format!("spec.peerings[{i}]");
            if !is_dns_label(&item.name) {
                push(
                    format!("{base}.name"),
                    PeeringProblem::InvalidName(item.name.clone()),
                );
            } else if let Some(first) = self.peerings[..i].iter().position(|p| p.name == item.name)
            {
                push(
                    format!("{base}.name"),
                    PeeringProblem::DuplicateName {
                        name: item.name.clone(),
                        first: format!("spec.peerings[{first}]"),
                    },
                );
            }
            if !is_dns_subdomain(&item.network_ref.name) {
                push(
                    format!("{base}.networkRef.name"),
                    PeeringProblem::InvalidNetworkName(item.network_ref.name.clone()),
                );
            }
            if let Some(ns) = item.network_ref.namespace.as_deref()
                && !ns.is_empty()
                && !is_dns_label(ns)
            {
                push(
                    format!("{base}.networkRef.namespace"),
                    PeeringProblem::InvalidNamespace(ns.to_string()),
                );
            }
            for (j, &cidr) in item.prefixes.iter().enumerate() {
                let network = cidr.trunc();
                if network != cidr {
                    push(
                        format!("{base}.prefixes[{j}]"),
                        PeeringProblem::HostBitsSet { cidr, network },
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PeeringErrors(errors))
        }
    }
}
