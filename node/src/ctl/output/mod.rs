//! What `ferrinetctl` prints, as pure functions: kubectl-like tables, JSON and YAML documents,
//! watch lines, the node status block, the dataplane's packet counters ([`counters`]), ages and
//! timestamps.

pub mod counters;
#[cfg(test)]
mod tests;

use ferrinet_proto::node::v1 as pb;
use pb::object::Object as O;
use serde::Serialize;

use super::manifest::printed::phase_name;
use super::manifest::{ObjectDoc, from_proto};
use super::{CtlError, Kind, kind_and_name};

/// What an empty cell shows.
const NONE: &str = "<none>";

/// Age like kubectl's (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`): `45s`, `5m3s`,
/// `12m`, `3h20m`, `5h`, `2d4h`, `12d`, `2y30d`; `<unknown>` without a creation time.
pub fn age(created_unix_ms: i64, now_unix_ms: i64) -> String {
    if created_unix_ms <= 0 {
        return "<unknown>".to_owned();
    }
    human_duration(now_unix_ms.saturating_sub(created_unix_ms))
}

/// kubectl's `HumanDuration` of a duration in milliseconds.
pub fn human_duration(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".to_owned();
    } else if seconds < 0 {
        return "0s".to_owned();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, to the second
/// (`2024-05-01T12:00:00Z`).
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Aligned columns, kubectl style: each column as wide as its widest cell plus three spaces,
/// the last one not padded.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count()) + 3;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s.to_owned()
    }
}

fn list_or_none<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        return NONE.to_owned();
    }
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// The first failing condition as `Type:Reason`.
fn reason(conditions: &[pb::Condition]) -> String {
    conditions
        .iter()
        .find(|c| !c.ok)
        .map_or_else(|| NONE.to_owned(), |c| format!("{}:{}", c.r#type, c.reason))
}

fn created(m: &Option<pb::Metadata>) -> i64 {
    m.as_ref().map_or(0, |m| m.created_unix_ms)
}

fn name(m: &Option<pb::Metadata>) -> String {
    m.as_ref().map_or_else(String::new, |m| m.name.clone())
}

/// `0000:3b:00.2` for a VF, else the TAP device, else `<none>`.
pub fn vf_cell(status: Option<&pb::NetworkInterfaceStatus>) -> String {
    let Some(s) = status else {
        return NONE.to_owned();
    };
    match &s.pci_address {
        Some(p) if !p.bus.is_empty() => format!("{}:{}:{}.{}", p.domain, p.bus, p.slot, p.function),
        _ => or_none(&s.tap_device),
    }
}

/// `tcp/443` (the form `create loadbalancer --port` takes).
pub fn port_text(p: &pb::LoadBalancerPort) -> String {
    let proto = match pb::Protocol::try_from(p.protocol) {
        Ok(pb::Protocol::Tcp) => "tcp",
        Ok(pb::Protocol::Udp) => "udp",
        Ok(pb::Protocol::Icmp) => "icmp",
        _ => "?",
    };
    format!("{proto}/{}", p.port)
}

fn lb_type(t: i32) -> &'static str {
    match pb::LoadBalancerType::try_from(t) {
        Ok(pb::LoadBalancerType::Internal) => "Internal",
        Ok(pb::LoadBalancerType::Public) => "Public",
        _ => "Unknown",
    }
}

/// A dataplane route as printed (`routes -o json|yaml`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDoc {
    /// CIDR.
    pub prefix: String,
    /// VNI of the encapsulation.
    pub nexthop_vni: u32,
    /// Underlay IPv6.
    pub nexthop: String,
}

/// The documents of `routes`.
pub fn routes_doc(routes: &[pb::DataplaneRoute]) -> Vec<RouteDoc> {
    routes
        .iter()
        .map(|r| RouteDoc {
            prefix: r.prefix.clone(),
            nexthop_vni: r.nexthop_vni,
            nexthop: r.nexthop.clone(),
        })
        .collect()
}

/// The table of `routes`: PREFIX NEXTHOP-VNI NEXTHOP.
pub fn routes_table(routes: &[pb::DataplaneRoute]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            vec![
                r.prefix.clone(),
                r.nexthop_vni.to_string(),
                r.nexthop.clone(),
            ]
        })
        .collect();
    render_table(&["PREFIX", "NEXTHOP-VNI", "NEXTHOP"], &rows)
}

/// The `get` table of the objects of `kind` among `objects` (others are skipped); `wide` adds
/// columns. Networks: NAME VNI PEERINGS PHASE AGE (+ USERS ROUTES PEERED SUBSCRIPTION REASON,
/// routes as installed/learned); interfaces: NAME NETWORK IPS VIP UNDERLAY VF PHASE AGE (+ NAT
/// PREFIXES LBTARGETS REASON); load balancers: NAME NETWORK TYPE IP PORTS UNDERLAY PHASE AGE
/// (+ TARGETS REASON).
pub fn table(kind: Kind, objects: &[pb::Object], wide: bool, now_unix_ms: i64) -> String {
    let mut rows = Vec::new();
    for obj in objects {
        let row = match obj.object.as_ref() {
            Some(O::Network(n)) if kind == Kind::Network => network_row(n, wide, now_unix_ms),
            Some(O::NetworkInterface(n)) if kind == Kind::NetworkInterface => {
                interface_row(n, wide, now_unix_ms)
            }
            Some(O::LoadBalancer(l)) if kind == Kind::LoadBalancer => {
                load_balancer_row(l, wide, now_unix_ms)
            }
            _ => continue,
        };
        rows.push(row);
    }
    let header: &[&str] = match (kind, wide) {
        (Kind::Network, false) => &["NAME", "VNI", "PEERINGS", "PHASE", "AGE"],
        (Kind::Network, true) => &[
            "NAME",
            "VNI",
            "PEERINGS",
            "PHASE",
            "AGE",
            "USERS",
            "ROUTES",
            "PEERED",
            "SUBSCRIPTION",
            "REASON",
        ],
        (Kind::NetworkInterface, false) => &[
            "NAME", "NETWORK", "IPS", "VIP", "UNDERLAY", "VF", "PHASE", "AGE",
        ],
        (Kind::NetworkInterface, true) => &[
            "NAME",
            "NETWORK",
            "IPS",
            "VIP",
            "UNDERLAY",
            "VF",
            "PHASE",
            "AGE",
            "NAT",
            "PREFIXES",
            "LBTARGETS",
            "REASON",
        ],
        (Kind::LoadBalancer, false) => &[
            "NAME", "NETWORK", "TYPE", "IP", "PORTS", "UNDERLAY", "PHASE", "AGE",
        ],
        (Kind::LoadBalancer, true) => &[
            "NAME", "NETWORK", "TYPE", "IP", "PORTS", "UNDERLAY", "PHASE", "AGE", "TARGETS",
            "REASON",
        ],
    };
    render_table(header, &rows)
}

fn network_row(n: &pb::Network, wide: bool, now: i64) -> Vec<String> {
    let spec = n.spec.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    let mut row = vec![
        name(&n.metadata),
        spec.id.to_string(),
        peerings(&spec.peered_ids, &status.peerings),
        phase_name(status.phase).to_owned(),
        age(created(&n.metadata), now),
    ];
    if wide {
        let routes = status.routes.clone().unwrap_or_default();
        let counts = |c: Option<pb::RouteCounts>| {
            let c = c.unwrap_or_default();
            if c.failed > 0 {
                format!("{}/{} ({} failed)", c.installed, c.learned, c.failed)
            } else {
                format!("{}/{}", c.installed, c.learned)
            }
        };
        row.push(status.users.to_string());
        row.push(counts(routes.standard));
        row.push(counts(routes.peered));
        row.push(if routes.subscription.is_empty() {
            NONE.to_owned()
        } else {
            routes.subscription
        });
        row.push(reason(&status.conditions));
    }
    row
}

/// Peered VNIs with their state on this node once known: `8:Ready,9:Pending`.
fn peerings(ids: &[u32], states: &[pb::PeeringStatus]) -> String {
    if states.is_empty() {
        return list_or_none(ids);
    }
    let v: Vec<String> = states
        .iter()
        .map(|p| format!("{}:{}", p.id, p.state))
        .collect();
    list_or_none(&v)
}

fn interface_row(n: &pb::NetworkInterface, wide: bool, now: i64) -> Vec<String> {
    let spec = n.spec.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    let mut row = vec![
        name(&n.metadata),
        or_none(&spec.network),
        list_or_none(&spec.ips),
        or_none(&spec.virtual_ip),
        or_none(&status.underlay_ip),
        vf_cell(n.status.as_ref()),
        phase_name(status.phase).to_owned(),
        age(created(&n.metadata), now),
    ];
    if wide {
        row.push(spec.nat.as_ref().map_or_else(
            || NONE.to_owned(),
            |nat| format!("{}:{}-{}", nat.ip, nat.port, nat.end_port),
        ));
        row.push(list_or_none(&spec.prefixes));
        row.push(list_or_none(&spec.load_balancer_targets));
        row.push(reason(&status.conditions));
    }
    row
}

fn load_balancer_row(l: &pb::LoadBalancer, wide: bool, now: i64) -> Vec<String> {
    let spec = l.spec.clone().unwrap_or_default();
    let status = l.status.clone().unwrap_or_default();
    let ports: Vec<String> = spec.ports.iter().map(port_text).collect();
    let mut row = vec![
        name(&l.metadata),
        or_none(&spec.network),
        lb_type(spec.r#type).to_owned(),
        or_none(&spec.ip),
        list_or_none(&ports),
        or_none(&status.underlay_ip),
        phase_name(status.phase).to_owned(),
        age(created(&l.metadata), now),
    ];
    if wide {
        row.push(list_or_none(&status.targets));
        row.push(reason(&status.conditions));
    }
    row
}

fn serialize_failed(e: impl std::fmt::Display) -> CtlError {
    CtlError::Output(std::io::Error::other(e.to_string()))
}

/// Pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, CtlError> {
    let mut s = serde_json::to_string_pretty(value).map_err(serialize_failed)?;
    s.push('\n');
    Ok(s)
}

/// YAML.
pub fn yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, CtlError> {
    yaml_serde::to_string(value).map_err(serialize_failed)
}

/// The printable documents of `objects`, in order.
pub fn docs(objects: &[pb::Object]) -> Vec<ObjectDoc> {
    objects.iter().filter_map(from_proto).collect()
}

fn phase_of(obj: &pb::Object) -> i32 {
    match obj.object.as_ref() {
        Some(O::Network(n)) => n.status.as_ref().map_or(0, |s| s.phase),
        Some(O::NetworkInterface(n)) => n.status.as_ref().map_or(0, |s| s.phase),
        Some(O::LoadBalancer(l)) => l.status.as_ref().map_or(0, |s| s.phase),
        None => 0,
    }
}

fn resource_version(obj: &pb::Object) -> u64 {
    let m = match obj.object.as_ref() {
        Some(O::Network(n)) => n.metadata.as_ref(),
        Some(O::NetworkInterface(n)) => n.metadata.as_ref(),
        Some(O::LoadBalancer(l)) => l.metadata.as_ref(),
        None => None,
    };
    m.map_or(0, |m| m.resource_version)
}

fn event_type(t: i32) -> &'static str {
    match pb::EventType::try_from(t) {
        Ok(pb::EventType::Added) => "ADDED",
        Ok(pb::EventType::Modified) => "MODIFIED",
        Ok(pb::EventType::Deleted) => "DELETED",
        _ => "UNKNOWN",
    }
}

/// `ADDED network/net-a Ready rv=12` (with a newline).
pub fn watch_line(ev: &pb::WatchEvent) -> String {
    let obj = ev.object.clone().unwrap_or_default();
    let label = match kind_and_name(&obj) {
        Some((kind, name)) => kind.object(name),
        None => "object/?".to_owned(),
    };
    format!(
        "{} {label} {} rv={}\n",
        event_type(ev.r#type),
        phase_name(phase_of(&obj)),
        resource_version(&obj)
    )
}

#[derive(Serialize)]
struct WatchEventDoc {
    #[serde(rename = "type")]
    kind: &'static str,
    revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<ObjectDoc>,
}

/// One JSON object on one line: `{"type":"ADDED","revision":12,"object":{...}}`.
pub fn watch_json(ev: &pb::WatchEvent) -> Result<String, CtlError> {
    let doc = WatchEventDoc {
        kind: event_type(ev.r#type),
        revision: ev.revision,
        object: ev.object.as_ref().and_then(from_proto),
    };
    let mut s = serde_json::to_string(&doc).map_err(serialize_failed)?;
    s.push('\n');
    Ok(s)
}

/// The node status as printed by `status -o json|yaml`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusDoc {
    /// This node's name (what `spec.nodeName` must say).
    pub node_name: String,
    /// Synced once after start.
    pub synced: bool,
    /// The node's revision counter.
    pub revision: u64,
    /// The dataplane.
    pub dataplane: DataplaneDoc,
    /// Route servers.
    pub route_servers: Vec<RouteServerDoc>,
    /// VFs.
    pub vfs: VfDoc,
    /// Object counts.
    pub objects: ObjectCountsDoc,
}

/// Dataplane part of [`NodeStatusDoc`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneDoc {
    /// `initializing`, `ready`, `unreachable`.
    pub state: String,
    /// Its gRPC address.
    pub address: String,
    /// Its instance UUID.
    pub uuid: String,
    /// Restarts seen.
    pub restarts: u64,
}

/// A route server in [`NodeStatusDoc`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteServerDoc {
    /// Address.
    pub address: String,
    /// `connecting`, `established`, `backoff`.
    pub state: String,
    /// Sessions so far.
    pub sessions: u64,
    /// The last error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// VF counts in [`NodeStatusDoc`].
#[derive(Clone, Debug, Serialize)]
pub struct VfDoc {
    /// VFs claimed by interfaces.
    pub claimed: u32,
    /// VFs of the node.
    pub total: u32,
}

/// Object counts in [`NodeStatusDoc`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCountsDoc {
    /// Networks.
    pub networks: u32,
    /// Interfaces.
    pub network_interfaces: u32,
    /// Load balancers.
    pub load_balancers: u32,
    /// Objects in phase Ready.
    pub ready: u32,
}

/// [`NodeStatusDoc`] of a status response.
pub fn status_doc(s: &pb::NodeStatusResponse) -> NodeStatusDoc {
    NodeStatusDoc {
        node_name: s.node_name.clone(),
        synced: s.synced,
        revision: s.revision,
        dataplane: DataplaneDoc {
            state: s.dataplane_state.clone(),
            address: s.dataplane_address.clone(),
            uuid: s.dataplane_uuid.clone(),
            restarts: s.dataplane_restarts,
        },
        route_servers: s
            .route_servers
            .iter()
            .map(|r| RouteServerDoc {
                address: r.address.clone(),
                state: r.state.clone(),
                sessions: r.sessions,
                last_error: r.last_error.clone(),
            })
            .collect(),
        vfs: VfDoc {
            claimed: s.vf_claimed,
            total: s.vf_total,
        },
        objects: ObjectCountsDoc {
            networks: s.networks,
            network_interfaces: s.network_interfaces,
            load_balancers: s.load_balancers,
            ready: s.ready,
        },
    }
}

/// The readable `status` block.
pub fn status_text(s: &pb::NodeStatusResponse) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut dataplane = or_none(&s.dataplane_state);
    let details: Vec<String> = [
        (!s.dataplane_address.is_empty()).then(|| s.dataplane_address.clone()),
        (!s.dataplane_uuid.is_empty()).then(|| format!("uuid {}", s.dataplane_uuid)),
        Some(format!("{} restarts", s.dataplane_restarts)),
    ]
    .into_iter()
    .flatten()
    .collect();
    dataplane.push_str(&format!(" ({})", details.join(", ")));
    let objects = s.networks + s.network_interfaces + s.load_balancers;
    let mut out = String::new();
    for (k, v) in [
        ("Node", or_none(&s.node_name)),
        ("Synced", yes_no(s.synced).to_owned()),
        ("Revision", s.revision.to_string()),
        ("Dataplane", dataplane),
        ("VFs", format!("{} of {} claimed", s.vf_claimed, s.vf_total)),
        (
            "Objects",
            format!(
                "{} networks, {} interfaces, {} load balancers ({} of {objects} ready)",
                s.networks, s.network_interfaces, s.load_balancers, s.ready
            ),
        ),
        (
            "Route servers",
            if s.route_servers.is_empty() {
                NONE.to_owned()
            } else {
                s.route_servers.len().to_string()
            },
        ),
    ] {
        out.push_str(&format!("{:<15}{v}\n", format!("{k}:")));
    }
    if !s.route_servers.is_empty() {
        let rows: Vec<Vec<String>> = s
            .route_servers
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.address.clone(),
                    or_none(&r.state),
                    format!("sessions={}", r.sessions),
                ];
                if !r.last_error.is_empty() {
                    row.push(format!("last error: {}", r.last_error));
                }
                row
            })
            .collect();
        let table = render_table(&["ADDRESS", "STATE", "SESSIONS"], &rows);
        // The header is for alignment only.
        for line in table.lines().skip(1) {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
