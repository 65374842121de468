//! A Network's spec: its subnets (checked together by IPAM), its peerings (checked by the
//! peering module) and its fixed VNI.

use ferrinet_proto::api::v1 as pb;
use ipnet::IpNet;

use super::convert::{parse_subnets, prefix};
use super::errors::ValidationErrors;
use super::validate::dns_label;
use crate::ipam::{MAX_VNI, NetworkSubnets, SpecProblem};
use crate::peering::{PeeringItem, PeeringNetwork, PeeringRef};

pub(crate) fn network(errors: &mut ValidationErrors, spec: &mut pb::NetworkSpec) {
    subnets(errors, spec);
    peerings(errors, spec);
    if spec.vni > MAX_VNI {
        errors.push(
            "spec.vni",
            format!("{} is not a VNI: 0 (allocated) or 1 to {MAX_VNI}", spec.vni),
        );
    }
}

fn subnets(errors: &mut ValidationErrors, spec: &mut pb::NetworkSpec) {
    let (parsed, parse_errors) = parse_subnets(spec);
    errors.extend(parse_errors);
    let specs: Vec<_> = parsed.iter().map(|(_, s)| s.clone()).collect();
    // IPAM names subnets by their index in the list it was given; map that back to the field
    // each came from (a subnet that did not parse is not in the list).
    let origin = |ipam_path: &str| -> String {
        let mapped = ipam_path
            .strip_prefix("subnets[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(index, rest)| {
                let (base, _) = parsed.get(index.parse::<usize>().ok()?)?;
                let rest = rest
                    .replace("excludedAddresses", "excludeAddresses")
                    .replace(".nextHop", ".nexthop");
                // `spec.prefix` is a bare CIDR: its only field is itself.
                Some(if base == "spec.prefix" && rest == ".cidr" {
                    base.clone()
                } else {
                    format!("{base}{rest}")
                })
            });
        mapped.unwrap_or_else(|| format!("spec.{ipam_path}"))
    };
    if let Err(e) = NetworkSubnets::new(&specs) {
        for error in e.0 {
            let problem = match error.problem {
                SpecProblem::Overlaps { other } => SpecProblem::Overlaps {
                    other: origin(&other),
                },
                SpecProblem::Duplicate { value, other } => SpecProblem::Duplicate {
                    value,
                    other: origin(&other),
                },
                p => p,
            };
            errors.push(origin(&error.field), problem);
        }
    }
    canonical_addresses(spec);
}

/// Rewrites the subnets' addresses and prefixes as their canonical text where they parse (a
/// CIDR with host bits is left as it was: it is refused anyway).
fn canonical_addresses(spec: &mut pb::NetworkSpec) {
    fn canon_ip(text: &mut String) {
        if let Ok(a) = text.parse::<std::net::IpAddr>() {
            *text = a.to_string();
        }
    }
    fn canon_net(text: &mut String) {
        if let Ok(n) = text.parse::<IpNet>()
            && n.trunc() == n
        {
            *text = n.to_string();
        }
    }
    for s in &mut spec.subnets {
        canon_net(&mut s.cidr);
        for r in &mut s.allocation_ranges {
            canon_ip(&mut r.start);
            canon_ip(&mut r.end);
        }
        s.exclude_addresses.iter_mut().for_each(canon_ip);
        canon_ip(&mut s.gateway);
        for r in &mut s.routes {
            canon_net(&mut r.destination);
            canon_ip(&mut r.nexthop);
        }
    }
}

fn peerings(errors: &mut ValidationErrors, spec: &mut pb::NetworkSpec) {
    let mut items = Vec::with_capacity(spec.peerings.len());
    for (i, p) in spec.peerings.iter_mut().enumerate() {
        let base = format!("spec.peerings[{i}]");
        let reference = p.network_ref.clone().unwrap_or_default();
        // Object names are DNS labels, stricter than the peering module's DNS subdomains: its
        // error for this field is dropped below in favour of this one.
        dns_label(errors, &format!("{base}.networkRef.name"), &reference.name);
        let mut prefixes = Vec::with_capacity(p.prefixes.len());
        for (j, text) in p.prefixes.iter_mut().enumerate() {
            let path = format!("{base}.prefixes[{j}]");
            // Host bits are the peering module's to report.
            match text.parse::<IpNet>() {
                Ok(net) => {
                    if net.trunc() == net {
                        *text = net.to_string();
                    }
                    prefixes.push(net);
                }
                Err(_) => {
                    if let Err(e) = prefix(&path, text) {
                        errors.0.push(e);
                    }
                }
            }
        }
        items.push(PeeringItem {
            name: p.name.clone(),
            network_ref: PeeringRef {
                name: reference.name,
                namespace: Some(reference.namespace).filter(|ns| !ns.is_empty()),
            },
            prefixes,
            unready_since: None,
        });
    }
    let network = PeeringNetwork {
        prefixes: Vec::new(),
        peerings: items,
    };
    if let Err(e) = network.validate() {
        for error in e.0 {
            if !error.field.ends_with(".networkRef.name") {
                errors.push(error.field, error.problem);
            }
        }
    }
}
