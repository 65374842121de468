//! What `ferrinetctl --api` prints, as pure functions: kubectl-like tables per kind, the
//! `describe` text, watch lines and the `whoami` block. Ages and the table layout are the node
//! CLI's ([`crate::ctl::output`]).

use std::collections::HashMap;

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;
use serde::Serialize;

use super::printed::{StatusDoc, from_proto};
use super::{RegionKind, kind_and_meta, object_label};
use crate::ctl::CtlError;
use crate::ctl::output::{age, render_table, rfc3339};

/// What an empty cell shows.
const NONE: &str = "<none>";

fn or_none(s: &str) -> String {
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s.to_owned()
    }
}

fn list_or_none<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        return NONE.to_owned();
    }
    items
        .iter()
        .map(|s| s.as_ref())
        .collect::<Vec<_>>()
        .join(",")
}

fn or_zero_none(n: u32) -> String {
    if n == 0 {
        NONE.to_owned()
    } else {
        n.to_string()
    }
}

fn ref_text(r: &pb::ObjectRef) -> String {
    if r.namespace.is_empty() {
        r.name.clone()
    } else {
        format!("{}/{}", r.namespace, r.name)
    }
}

fn ref_cell(r: &Option<pb::ObjectRef>) -> String {
    r.as_ref()
        .filter(|r| !r.name.is_empty())
        .map_or_else(|| NONE.to_owned(), ref_text)
}

/// A label selector in Kubernetes' string form: `app=web,tier in (a,b),!legacy`.
pub fn selector_text(labels: &HashMap<String, String>, exprs: &[pb::LabelRequirement]) -> String {
    let mut parts: Vec<String> = {
        let mut l: Vec<_> = labels.iter().collect();
        l.sort();
        l.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    for r in exprs {
        parts.push(match r.operator.as_str() {
            "In" => format!("{} in ({})", r.key, r.values.join(",")),
            "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
            "DoesNotExist" => format!("!{}", r.key),
            _ => r.key.clone(),
        });
    }
    list_or_none(&parts)
}

fn label_selector_cell(s: &Option<pb::LabelSelector>) -> String {
    s.as_ref().map_or_else(
        || NONE.to_owned(),
        |s| selector_text(&s.match_labels, &s.match_expressions),
    )
}

/// `TCP/443`, `UDP/1000-2000` (no protocol: TCP, the API's default).
pub fn port_text(protocol: &str, port: u32, end_port: u32) -> String {
    let protocol = if protocol.is_empty() { "TCP" } else { protocol };
    if end_port != 0 && end_port != port {
        format!("{protocol}/{port}-{end_port}")
    } else {
        format!("{protocol}/{port}")
    }
}

/// The columns of a kind's table, and the ones `-o wide` adds.
pub fn columns(kind: RegionKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        RegionKind::Network => (
            &["NAME", "VNI", "STATE", "PEERINGS", "AGE"],
            &["SUBNETS", "INCOMING", "MESSAGE"],
        ),
        RegionKind::NetworkInterface => (
            &[
                "NAME", "NETWORK", "NODE", "IPS", "VIP", "NAT", "STATE", "AGE",
            ],
            &["VNI", "UNDERLAY", "PCI", "PREFIXES", "DNS", "MESSAGE"],
        ),
        RegionKind::VirtualIp => (&["NAME", "TYPE", "FAMILY", "IP", "BOUND-TO", "AGE"], &[]),
        RegionKind::PublicPrefix => (
            &["NAME", "KIND", "SELECTOR", "FAMILY", "PREFIXES", "AGE"],
            &["TARGETS", "MESSAGE"],
        ),
        RegionKind::NatGateway => (
            &["NAME", "NETWORK", "TYPE", "IPS", "PORTS", "SLICES", "AGE"],
            &["MESSAGE"],
        ),
        RegionKind::LoadBalancer => (
            &["NAME", "NETWORK", "TYPE", "IPS", "PORTS", "STATE", "AGE"],
            &["SELECTOR", "TARGETS", "NODES", "MESSAGE"],
        ),
        RegionKind::NetworkPolicy => (
            &["NAME", "NETWORK", "SELECTOR", "TYPES", "SELECTED", "AGE"],
            &["INGRESS", "EGRESS", "MESSAGE"],
        ),
        RegionKind::Node => (
            &[
                "NAME",
                "STATE",
                "UNDERLAY",
                "VFS",
                "INTERFACES",
                "LBS",
                "AGE",
            ],
            &["LEASE-EXPIRES"],
        ),
    }
}

fn interface_vip(n: &pb::NetworkInterface) -> String {
    if let Some(s) = n.status.as_ref().filter(|s| !s.virtual_ip.is_empty()) {
        return s.virtual_ip.clone();
    }
    match n.spec.as_ref().and_then(|s| s.virtual_ip.as_ref()) {
        Some(v)
            if v.virtual_ip_ref
                .as_ref()
                .is_some_and(|r| !r.name.is_empty()) =>
        {
            format!("({})", ref_cell(&v.virtual_ip_ref))
        }
        Some(v) if !v.ephemeral_ip_family.is_empty() => {
            format!("(ephemeral {})", v.ephemeral_ip_family)
        }
        _ => NONE.to_owned(),
    }
}

/// The cells of one object: (columns, wide columns), NAME first.
fn cells(obj: &pb::Object, now: i64) -> Option<(RegionKind, Vec<String>, Vec<String>)> {
    let (kind, meta) = kind_and_meta(obj)?;
    let name = meta.map_or_else(String::new, |m| m.name.clone());
    let age = age(meta.map_or(0, |m| m.created_unix_ms), now);
    let (narrow, wide) = match obj.object.as_ref()? {
        O::Network(n) => {
            let (spec, st) = (
                n.spec.clone().unwrap_or_default(),
                n.status.clone().unwrap_or_default(),
            );
            let vni = if st.vni != 0 { st.vni } else { spec.vni };
            let peerings: Vec<String> = if st.peerings.is_empty() {
                spec.peerings.iter().map(|p| p.name.clone()).collect()
            } else {
                st.peerings
                    .iter()
                    .map(|p| format!("{}:{}", p.name, p.state))
                    .collect()
            };
            let mut subnets: Vec<String> = spec.subnets.iter().map(|s| s.cidr.clone()).collect();
            if !spec.prefix.is_empty() {
                subnets.insert(0, spec.prefix.clone());
            }
            let incoming: Vec<String> = st.incoming_peerings.iter().map(ref_text).collect();
            (
                vec![
                    name,
                    or_zero_none(vni),
                    or_none(&st.state),
                    list_or_none(&peerings),
                    age,
                ],
                vec![
                    list_or_none(&subnets),
                    list_or_none(&incoming),
                    or_none(&st.message),
                ],
            )
        }
        O::NetworkInterface(n) => {
            let (spec, st) = (
                n.spec.clone().unwrap_or_default(),
                n.status.clone().unwrap_or_default(),
            );
            let ips: Vec<String> = if st.ips.is_empty() {
                spec.ips.iter().map(|i| i.value.clone()).collect()
            } else {
                st.ips.clone()
            };
            let nat = if st.nat_ip.is_empty() {
                NONE.to_owned()
            } else {
                format!("{}:{}-{}", st.nat_ip, st.nat_port, st.nat_end_port)
            };
            let pci = if st.pci_address.is_empty() {
                or_none(&st.tap_device)
            } else {
                st.pci_address.clone()
            };
            (
                vec![
                    name,
                    ref_cell(&spec.network_ref),
                    or_none(&spec.node_name),
                    list_or_none(&ips),
                    interface_vip(n),
                    nat,
                    or_none(&st.state),
                    age,
                ],
                vec![
                    or_zero_none(st.vni),
                    or_none(&st.underlay_ip),
                    pci,
                    list_or_none(&spec.prefixes),
                    or_none(&st.dns_name),
                    or_none(&st.message),
                ],
            )
        }
        O::VirtualIp(v) => {
            let (spec, st) = (
                v.spec.clone().unwrap_or_default(),
                v.status.clone().unwrap_or_default(),
            );
            (
                vec![
                    name,
                    or_none(&spec.r#type),
                    or_none(&spec.ip_family),
                    or_none(&st.ip),
                    ref_cell(&st.bound_to),
                    age,
                ],
                vec![],
            )
        }
        O::PublicPrefix(p) => {
            let (spec, st) = (
                p.spec.clone().unwrap_or_default(),
                p.status.clone().unwrap_or_default(),
            );
            let targets: Vec<String> = st
                .targets
                .iter()
                .map(|t| format!("{}={}", ref_cell(&t.network_interface), t.prefix))
                .collect();
            (
                vec![
                    name,
                    or_none(&spec.kind),
                    label_selector_cell(&spec.selector),
                    or_none(&spec.ip_family),
                    list_or_none(&st.prefixes),
                    age,
                ],
                vec![list_or_none(&targets), or_none(&st.message)],
            )
        }
        O::NatGateway(g) => {
            let (spec, st) = (
                g.spec.clone().unwrap_or_default(),
                g.status.clone().unwrap_or_default(),
            );
            let ips: Vec<String> = st.ips.iter().map(|i| i.ip.clone()).collect();
            let ports = if spec.ports_per_network_interface == 0 {
                "2048".to_owned()
            } else {
                spec.ports_per_network_interface.to_string()
            };
            (
                vec![
                    name,
                    ref_cell(&spec.network_ref),
                    or_none(&spec.r#type),
                    list_or_none(&ips),
                    ports,
                    format!("{}/{}", st.used_slices, st.capacity),
                    age,
                ],
                vec![or_none(&st.message)],
            )
        }
        O::LoadBalancer(l) => {
            let (spec, st) = (
                l.spec.clone().unwrap_or_default(),
                l.status.clone().unwrap_or_default(),
            );
            let ips: Vec<String> = if st.ips.is_empty() {
                spec.ips.iter().map(|i| i.value.clone()).collect()
            } else {
                st.ips.clone()
            };
            let ports: Vec<String> = spec
                .ports
                .iter()
                .map(|p| port_text(&p.protocol, p.port, p.end_port))
                .collect();
            let targets: Vec<String> = st.targets.iter().map(ref_text).collect();
            (
                vec![
                    name,
                    ref_cell(&spec.network_ref),
                    or_none(&spec.r#type),
                    list_or_none(&ips),
                    list_or_none(&ports),
                    or_none(&st.state),
                    age,
                ],
                vec![
                    label_selector_cell(&spec.network_interface_selector),
                    list_or_none(&targets),
                    list_or_none(&st.nodes),
                    or_none(&st.message),
                ],
            )
        }
        O::NetworkPolicy(p) => {
            let (spec, st) = (
                p.spec.clone().unwrap_or_default(),
                p.status.clone().unwrap_or_default(),
            );
            (
                vec![
                    name,
                    ref_cell(&spec.network_ref),
                    label_selector_cell(&spec.network_interface_selector),
                    list_or_none(&spec.policy_types),
                    st.selected_interfaces.to_string(),
                    age,
                ],
                vec![
                    spec.ingress.len().to_string(),
                    spec.egress.len().to_string(),
                    or_none(&st.message),
                ],
            )
        }
        O::Node(n) => {
            let (spec, st) = (
                n.spec.clone().unwrap_or_default(),
                n.status.clone().unwrap_or_default(),
            );
            (
                vec![
                    name,
                    or_none(&st.state),
                    or_none(&spec.underlay_prefix),
                    spec.vf_capacity.to_string(),
                    st.network_interfaces.to_string(),
                    st.load_balancers.to_string(),
                    age,
                ],
                vec![if st.lease_expires_unix_ms > 0 {
                    rfc3339(st.lease_expires_unix_ms)
                } else {
                    NONE.to_owned()
                }],
            )
        }
    };
    Some((kind, narrow, wide))
}

/// The `get` table of the objects of `kind` among `objects` (others are skipped): NAMESPACE
/// first with `all_namespaces` (for namespaced kinds), `wide` adds columns ([`columns`]).
pub fn table(
    kind: RegionKind,
    objects: &[pb::Object],
    wide: bool,
    all_namespaces: bool,
    now_unix_ms: i64,
) -> String {
    let with_ns = all_namespaces && kind.namespaced();
    let (narrow, extra) = columns(kind);
    let mut header: Vec<&str> = Vec::new();
    if with_ns {
        header.push("NAMESPACE");
    }
    header.extend_from_slice(narrow);
    if wide {
        header.extend_from_slice(extra);
    }
    let mut rows = Vec::new();
    for obj in objects {
        let Some((k, mut row, more)) = cells(obj, now_unix_ms) else {
            continue;
        };
        if k != kind {
            continue;
        }
        if with_ns {
            let ns = kind_and_meta(obj)
                .and_then(|(_, m)| m)
                .map_or_else(String::new, |m| m.namespace.clone());
            row.insert(0, ns);
        }
        if wide {
            row.extend(more);
        }
        rows.push(row);
    }
    render_table(&header, &rows)
}

fn indented_yaml<T: Serialize>(value: &T) -> Result<String, CtlError> {
    let text = crate::ctl::output::yaml(value)?;
    if matches!(text.trim(), "{}" | "null" | "") {
        return Ok(format!("  {NONE}\n"));
    }
    Ok(text.lines().map(|l| format!("  {l}\n")).collect())
}

/// The `describe` text of an object: metadata, then spec and status as indented YAML, then the
/// conditions as a table (interfaces).
pub fn describe(obj: &pb::Object, now_unix_ms: i64) -> Result<String, CtlError> {
    let Some(doc) = from_proto(obj) else {
        return Ok(String::new());
    };
    let m = &doc.metadata;
    let mut out = String::new();
    let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let created = kind_and_meta(obj)
        .and_then(|(_, m)| m)
        .map_or(0, |m| m.created_unix_ms);
    let mut fields = vec![("Name", m.name.clone())];
    if !m.namespace.is_empty() {
        fields.push(("Namespace", m.namespace.clone()));
    }
    fields.push(("Kind", doc.kind.to_owned()));
    fields.push(("Labels", list_or_none(&labels)));
    fields.push((
        "Created",
        m.creation_timestamp.as_ref().map_or_else(
            || NONE.to_owned(),
            |t| format!("{t} ({} ago)", age(created, now_unix_ms)),
        ),
    ));
    fields.push((
        "Version",
        format!(
            "resource {}, generation {}",
            m.resource_version.as_deref().unwrap_or("0"),
            m.generation.unwrap_or(0)
        ),
    ));
    fields.push(("UID", or_none(&m.uid)));
    for (k, v) in fields {
        out.push_str(&format!("{:<12}{v}\n", format!("{k}:")));
    }
    out.push_str("Spec:\n");
    out.push_str(&indented_yaml(&doc.spec)?);
    let mut conditions = None;
    out.push_str("Status:\n");
    match doc.status {
        None => out.push_str(&format!("  {NONE}\n")),
        Some(StatusDoc::NetworkInterface(mut s)) => {
            conditions = Some(std::mem::take(&mut s.conditions));
            out.push_str(&indented_yaml(&s)?);
        }
        Some(s) => out.push_str(&indented_yaml(&s)?),
    }
    if doc.kind == RegionKind::NetworkInterface.manifest_kind() {
        let conditions = conditions.unwrap_or_default();
        if conditions.is_empty() {
            out.push_str(&format!("Conditions: {NONE}\n"));
        } else {
            out.push_str("Conditions:\n");
            let rows: Vec<Vec<String>> = conditions
                .iter()
                .map(|c| {
                    vec![
                        c.kind.clone(),
                        if c.ok { "True" } else { "False" }.to_owned(),
                        or_none(&c.reason),
                        c.message.clone(),
                    ]
                })
                .collect();
            for line in render_table(&["TYPE", "OK", "REASON", "MESSAGE"], &rows).lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// A short state of an object for watch lines: the `state` of kinds that have one, else what
/// matters most (a virtual IP's address, a NAT gateway's slices, ...).
pub fn summary(obj: &pb::Object) -> String {
    let s = match obj.object.as_ref() {
        Some(O::Network(n)) => n.status.as_ref().map(|s| s.state.clone()),
        Some(O::NetworkInterface(n)) => n.status.as_ref().map(|s| s.state.clone()),
        Some(O::LoadBalancer(l)) => l.status.as_ref().map(|s| s.state.clone()),
        Some(O::Node(n)) => n.status.as_ref().map(|s| s.state.clone()),
        Some(O::VirtualIp(v)) => v.status.as_ref().map(|s| s.ip.clone()),
        Some(O::PublicPrefix(p)) => p
            .status
            .as_ref()
            .map(|s| format!("prefixes={}", s.prefixes.len())),
        Some(O::NatGateway(g)) => g
            .status
            .as_ref()
            .map(|s| format!("slices={}/{}", s.used_slices, s.capacity)),
        Some(O::NetworkPolicy(p)) => p
            .status
            .as_ref()
            .map(|s| format!("selected={}", s.selected_interfaces)),
        None => None,
    };
    s.filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

fn event_type(t: i32) -> &'static str {
    match pb::EventType::try_from(t) {
        Ok(pb::EventType::Added) => "ADDED",
        Ok(pb::EventType::Modified) => "MODIFIED",
        Ok(pb::EventType::Deleted) => "DELETED",
        Ok(pb::EventType::Synced) => "SYNCED",
        _ => "UNKNOWN",
    }
}

fn resource_version(obj: &pb::Object) -> u64 {
    kind_and_meta(obj)
        .and_then(|(_, m)| m)
        .map_or(0, |m| m.resource_version)
}

/// `ADDED network/default/net-a Available rv=12` (with a newline); `None` for SYNCED, which
/// the text form leaves out.
pub fn watch_line(ev: &pb::WatchEvent) -> Option<String> {
    let obj = ev.object.as_ref()?;
    Some(format!(
        "{} {} {} rv={}\n",
        event_type(ev.r#type),
        object_label(obj),
        summary(obj),
        resource_version(obj)
    ))
}

#[derive(Serialize)]
struct WatchEventDoc {
    #[serde(rename = "type")]
    kind: &'static str,
    revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<super::printed::ObjectDoc>,
}

/// One JSON object on one line: `{"type":"ADDED","revision":12,"object":{...}}`; SYNCED
/// (`{"type":"SYNCED","revision":12}`) included.
pub fn watch_json(ev: &pb::WatchEvent) -> Result<String, CtlError> {
    let doc = WatchEventDoc {
        kind: event_type(ev.r#type),
        revision: ev.revision,
        object: ev.object.as_ref().and_then(from_proto),
    };
    let mut s = serde_json::to_string(&doc)
        .map_err(|e| CtlError::Output(std::io::Error::other(e.to_string())))?;
    s.push('\n');
    Ok(s)
}

/// `whoami` as printed by `-o json|yaml`.
#[derive(Clone, Debug, Serialize)]
pub struct WhoAmIDoc {
    /// The certificate identity.
    pub identity: String,
    /// `admin`, `tenant`, `node`.
    pub role: String,
    /// A tenant's namespaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// [`WhoAmIDoc`] of an answer.
pub fn whoami_doc(r: &pb::WhoAmIResponse) -> WhoAmIDoc {
    WhoAmIDoc {
        identity: r.identity.clone(),
        role: r.role.clone(),
        namespaces: r.namespaces.clone(),
    }
}

/// The `whoami` block.
pub fn whoami_text(r: &pb::WhoAmIResponse) -> String {
    let namespaces = if r.role == "tenant" {
        if r.namespaces.is_empty() {
            NONE.to_owned()
        } else {
            r.namespaces.join(", ")
        }
    } else {
        "<all>".to_owned()
    };
    format!(
        "Identity:   {}\nRole:       {}\nNamespaces: {namespaces}\n",
        or_none(&r.identity),
        or_none(&r.role)
    )
}
