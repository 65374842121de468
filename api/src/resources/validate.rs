//! [`validate`]: the checks of one object on Create and Update, per kind, and the fields every
//! kind shares (metadata, references, families, fixed addresses).

use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;

use super::convert::{address, family_field, optional_selector, prefix};
use super::errors::ValidationErrors;
use super::{validate_lb, validate_network};
use crate::ipam::{IpFamily, PortsPerInterface};
use crate::selector::{is_dns_label, validate_label_key, validate_label_value};

/// Validates what a user sends on Create or Update and returns it normalized: defaults filled
/// in (NAT gateway `portsPerNetworkInterface` 2048, `ipFamily` IPv4 where the proto makes it
/// the default, port protocols `TCP`, an interface's or load balancer's `ipFamilies` derived
/// from its `ips` when empty), addresses and prefixes in their canonical text. A network's
/// `spec.prefix` is kept as given, not expanded into `subnets`. Status and the metadata the
/// API sets are neither checked nor changed: the caller overwrites them.
pub fn validate(obj: &pb::Object) -> Result<pb::Object, ValidationErrors> {
    use pb::object::Object as O;
    let mut out = obj.clone();
    let mut errors = ValidationErrors::default();
    match out.object.as_mut() {
        None => errors.push("object", "is empty: it must hold one object of a kind"),
        Some(O::Network(o)) => {
            metadata(&mut errors, o.metadata.as_ref(), true);
            validate_network::network(&mut errors, o.spec.get_or_insert_with(Default::default));
        }
        Some(O::NetworkInterface(o)) => {
            let ns = metadata(&mut errors, o.metadata.as_ref(), true);
            interface(
                &mut errors,
                &ns,
                o.spec.get_or_insert_with(Default::default),
            );
        }
        Some(O::VirtualIp(o)) => {
            metadata(&mut errors, o.metadata.as_ref(), true);
            virtual_ip(&mut errors, o.spec.get_or_insert_with(Default::default));
        }
        Some(O::PublicPrefix(o)) => {
            metadata(&mut errors, o.metadata.as_ref(), true);
            public_prefix(&mut errors, o.spec.get_or_insert_with(Default::default));
        }
        Some(O::NatGateway(o)) => {
            let ns = metadata(&mut errors, o.metadata.as_ref(), true);
            nat_gateway(
                &mut errors,
                &ns,
                o.spec.get_or_insert_with(Default::default),
            );
        }
        Some(O::LoadBalancer(o)) => {
            let ns = metadata(&mut errors, o.metadata.as_ref(), true);
            validate_lb::load_balancer(
                &mut errors,
                &ns,
                o.spec.get_or_insert_with(Default::default),
            );
        }
        Some(O::NetworkPolicy(o)) => {
            let ns = metadata(&mut errors, o.metadata.as_ref(), true);
            let name = o
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            validate_lb::network_policy(
                &mut errors,
                &ns,
                &name,
                o.spec.get_or_insert_with(Default::default),
            );
        }
        Some(O::Node(o)) => {
            metadata(&mut errors, o.metadata.as_ref(), false);
            node(&mut errors, o.spec.get_or_insert_with(Default::default));
        }
    }
    errors.or_ok(out)
}

/// `metadata.namespace`, `metadata.name` and `metadata.labels`; returns the namespace.
fn metadata(
    errors: &mut ValidationErrors,
    meta: Option<&pb::ObjectMeta>,
    namespaced: bool,
) -> String {
    let empty = pb::ObjectMeta::default();
    let meta = meta.unwrap_or(&empty);
    if namespaced {
        dns_label(errors, "metadata.namespace", &meta.namespace);
    } else if !meta.namespace.is_empty() {
        errors.push(
            "metadata.namespace",
            format!(
                "must be empty: Nodes are not namespaced (got {:?})",
                meta.namespace
            ),
        );
    }
    dns_label(errors, "metadata.name", &meta.name);
    let mut labels: Vec<_> = meta.labels.iter().collect();
    labels.sort();
    for (key, value) in labels {
        let path = format!("metadata.labels[{key:?}]");
        if let Err(problem) = validate_label_key(key) {
            errors.push(path.clone(), problem);
        }
        if let Err(problem) = validate_label_value(value) {
            errors.push(path, problem);
        }
    }
    meta.namespace.clone()
}

/// A required DNS label.
pub(crate) fn dns_label(errors: &mut ValidationErrors, path: &str, text: &str) {
    if text.is_empty() {
        errors.push(path, "is required");
    } else if !is_dns_label(text) {
        errors.push(
            path,
            format!(
                "{text:?} is not a DNS label (1 to 63 of lowercase letters, digits and '-', \
                 starting and ending with a letter or digit)"
            ),
        );
    }
}

/// A required reference to an object of the referring object's own namespace: only peerings
/// reach into other tenants' namespaces.
pub(crate) fn local_ref(
    errors: &mut ValidationErrors,
    path: &str,
    reference: Option<&pb::ObjectRef>,
    own_namespace: &str,
) {
    let Some(r) = reference else {
        errors.push(format!("{path}.name"), "is required");
        return;
    };
    dns_label(errors, &format!("{path}.name"), &r.name);
    if !r.namespace.is_empty() && r.namespace != own_namespace {
        errors.push(
            format!("{path}.namespace"),
            format!(
                "{:?} is another namespace; leave it empty or {own_namespace:?} (only network \
                 peerings reach other namespaces)",
                r.namespace
            ),
        );
    }
}

/// A list of families: each `IPv4` or `IPv6`, none twice.
pub(crate) fn families(
    errors: &mut ValidationErrors,
    path: &str,
    list: &[String],
) -> Vec<IpFamily> {
    let mut out: Vec<IpFamily> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let item = format!("{path}[{i}]");
        match family_field(&item, text) {
            Err(e) => errors.0.push(e),
            Ok(f) if out.contains(&f) => errors.push(item, format!("{f} is listed twice")),
            Ok(f) => out.push(f),
        }
    }
    out
}

/// Fixed addresses: each parses, one per family at most, and (when `families` were listed)
/// only of those. Rewrites each to its canonical text; returns those that parsed.
pub(crate) fn fixed_ips(
    errors: &mut ValidationErrors,
    path: &str,
    ips: &mut [pb::IpValue],
    families: &[IpFamily],
    families_path: &str,
) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(ips.len());
    for (i, ip) in ips.iter_mut().enumerate() {
        let item = format!("{path}[{i}]");
        let parsed = match address(&item, &ip.value) {
            Ok(a) => a,
            Err(e) => {
                errors.0.push(e);
                continue;
            }
        };
        let family = IpFamily::of(parsed);
        if let Some(j) = out.iter().position(|a| IpFamily::of(*a) == family) {
            errors.push(
                item,
                format!(
                    "is a second {family} address ({path}[{j}] is one); at most one per family"
                ),
            );
        } else if !families.is_empty() && !families.contains(&family) {
            errors.push(
                item,
                format!("{parsed} is {family}, which {families_path} does not list"),
            );
        }
        ip.value = parsed.to_string();
        out.push(parsed);
    }
    out
}

/// The families to normalize an empty `ipFamilies` to: those of the fixed addresses, IPv4
/// first, or IPv4 alone.
pub(crate) fn derived_families(ips: &[IpAddr]) -> Vec<String> {
    let mut fams: Vec<IpFamily> = ips.iter().map(|a| IpFamily::of(*a)).collect();
    fams.sort();
    fams.dedup();
    if fams.is_empty() {
        fams.push(IpFamily::V4);
    }
    fams.iter().map(ToString::to_string).collect()
}

fn interface(errors: &mut ValidationErrors, ns: &str, spec: &mut pb::NetworkInterfaceSpec) {
    local_ref(errors, "spec.networkRef", spec.network_ref.as_ref(), ns);
    if !spec.node_name.is_empty() {
        dns_label(errors, "spec.nodeName", &spec.node_name);
    }
    let fams = families(errors, "spec.ipFamilies", &spec.ip_families);
    let ips = fixed_ips(errors, "spec.ips", &mut spec.ips, &fams, "spec.ipFamilies");
    if spec.ip_families.is_empty() {
        spec.ip_families = derived_families(&ips);
    }
    let mut seen = Vec::with_capacity(spec.prefixes.len());
    for (i, text) in spec.prefixes.iter_mut().enumerate() {
        let path = format!("spec.prefixes[{i}]");
        match prefix(&path, text) {
            Err(e) => errors.0.push(e),
            Ok(net) => {
                if let Some(j) = seen.iter().position(|n| *n == net) {
                    errors.push(
                        path,
                        format!("{net} is listed already at spec.prefixes[{j}]"),
                    );
                }
                *text = net.to_string();
                seen.push(net);
            }
        }
    }
    if let Some(source) = &spec.virtual_ip {
        let has_ref = source.virtual_ip_ref.is_some();
        let has_family = !source.ephemeral_ip_family.is_empty();
        match (has_ref, has_family) {
            (false, false) => spec.virtual_ip = None,
            (true, true) => errors.push(
                "spec.virtualIp",
                "names both a virtualIpRef and an ephemeralIpFamily; give one",
            ),
            (true, false) => local_ref(
                errors,
                "spec.virtualIp.virtualIpRef",
                source.virtual_ip_ref.as_ref(),
                ns,
            ),
            (false, true) => {
                if let Err(e) = family_field(
                    "spec.virtualIp.ephemeralIpFamily",
                    &source.ephemeral_ip_family,
                ) {
                    errors.0.push(e);
                }
            }
        }
    }
    if !spec.hostname.is_empty() {
        dns_label(errors, "spec.hostname", &spec.hostname);
    }
    if let Some(m) = &spec.metering_rate
        && m.total_rate != 0
        && m.total_rate < m.public_rate
    {
        errors.push(
            "spec.meteringRate.totalRate",
            format!(
                "{} is below publicRate {}; totalRate is 0 (unlimited) or at least publicRate",
                m.total_rate, m.public_rate
            ),
        );
    }
}

/// `spec.type`: only `Public` exists.
fn public_type(errors: &mut ValidationErrors, text: &str) {
    if text != "Public" {
        errors.push(
            "spec.type",
            format!("{text:?} is not Public (the only type)"),
        );
    }
}

fn virtual_ip(errors: &mut ValidationErrors, spec: &mut pb::VirtualIpSpec) {
    public_type(errors, &spec.r#type);
    if let Err(e) = family_field("spec.ipFamily", &spec.ip_family) {
        errors.0.push(e);
    }
}

fn public_prefix(errors: &mut ValidationErrors, spec: &mut pb::PublicPrefixSpec) {
    match spec.kind.as_str() {
        "NetworkInterface" => {}
        "Machine" => errors.push(
            "spec.kind",
            "Machine is not supported: ferrinet has no machines; select NetworkInterfaces",
        ),
        other => errors.push("spec.kind", format!("{other:?} is not NetworkInterface")),
    }
    if let Err(e) = optional_selector(spec.selector.as_ref(), "spec.selector") {
        errors.extend(e);
    }
    if spec.ip_family.is_empty() {
        spec.ip_family = IpFamily::V4.to_string();
    } else if let Err(e) = family_field("spec.ipFamily", &spec.ip_family) {
        errors.0.push(e);
    }
}

fn nat_gateway(errors: &mut ValidationErrors, ns: &str, spec: &mut pb::NatGatewaySpec) {
    public_type(errors, &spec.r#type);
    match spec.ip_family.as_str() {
        "" => spec.ip_family = IpFamily::V4.to_string(),
        "IPv4" => {}
        other => errors.push(
            "spec.ipFamily",
            format!("{other:?} is not IPv4: dpservice translates IPv4 only"),
        ),
    }
    if spec.ports_per_network_interface == 0 {
        spec.ports_per_network_interface = u32::from(PortsPerInterface::DEFAULT.get());
    } else if let Err(e) = PortsPerInterface::new(spec.ports_per_network_interface) {
        // The ipam error names its own field; the path says which field it is here.
        let text = e.to_string();
        let message = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, problem)| problem);
        errors.push("spec.portsPerNetworkInterface", message);
    }
    local_ref(errors, "spec.networkRef", spec.network_ref.as_ref(), ns);
}

fn node(errors: &mut ValidationErrors, spec: &mut pb::NodeSpec) {
    let path = "spec.underlayPrefix";
    if spec.underlay_prefix.is_empty() {
        errors.push(path, "is required");
        return;
    }
    match prefix(path, &spec.underlay_prefix) {
        Err(e) => errors.0.push(e),
        Ok(net) if !net.addr().is_ipv6() => {
            errors.push(path, format!("{net} is not IPv6: the underlay is IPv6"))
        }
        Ok(net) => spec.underlay_prefix = net.to_string(),
    }
}
