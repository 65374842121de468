//! What `ferrinetctl counters` prints: the dataplane's packet counters as tables (per interface,
//! per VNI, the underlay) or as JSON with the proto's snake_case field names.

use ferrinet_proto::dataplane_status::v1 as status_pb;
use serde::Serialize;

use super::{NONE, or_none, render_table};

fn traffic(t: &Option<status_pb::TrafficCounters>) -> status_pb::TrafficCounters {
    t.clone().unwrap_or_default()
}

fn drop_sum(t: &status_pb::TrafficCounters) -> u64 {
    t.drops
        .iter()
        .fold(0u64, |sum, d| sum.saturating_add(d.packets))
}

/// `no_route=3,firewall=2`, or `<none>`.
fn drop_reasons(t: &status_pb::TrafficCounters) -> String {
    if t.drops.is_empty() {
        return NONE.to_owned();
    }
    t.drops
        .iter()
        .map(|d| format!("{}={}", d.reason, d.packets))
        .collect::<Vec<_>>()
        .join(",")
}

/// `accepted=10,dropped=2,would_drop=0` of `direction`, or `<none>`.
fn verdicts(fw: &[status_pb::FirewallCounters], direction: &str) -> String {
    fw.iter().find(|f| f.direction == direction).map_or_else(
        || NONE.to_owned(),
        |f| {
            format!(
                "accepted={},dropped={},would_drop={}",
                f.accepted, f.dropped, f.would_drop
            )
        },
    )
}

fn traffic_cells(t: &status_pb::TrafficCounters) -> [String; 5] {
    [
        t.rx_packets.to_string(),
        t.rx_bytes.to_string(),
        t.tx_packets.to_string(),
        t.tx_bytes.to_string(),
        drop_sum(t).to_string(),
    ]
}

/// The tables of `counters`: a summary line, then INTERFACE VNI TAP RX-PKTS RX-BYTES TX-PKTS
/// TX-BYTES DROPS (`wide`: + DEVICE DROP-REASONS FW-INGRESS FW-EGRESS), then VNI RX-PKTS
/// RX-BYTES TX-PKTS TX-BYTES DROPS (`wide`: + DROP-REASONS), then the underlay. DROPS is the
/// sum over every reason.
pub fn counters_text(c: &status_pb::PacketCountersResponse, wide: bool) -> String {
    if !c.enabled {
        return "Packets:  disabled (the dataplane moves no packets)\n".to_owned();
    }
    let mut out = format!(
        "Packets:  enabled, firewall mode {}, {} flows\n\n",
        or_none(&c.firewall_mode),
        c.flows
    );
    if c.interfaces.is_empty() {
        out.push_str("No interfaces.\n");
    } else {
        let rows: Vec<Vec<String>> = c
            .interfaces
            .iter()
            .map(|i| {
                let t = traffic(&i.traffic);
                let mut row = vec![i.interface_id.clone(), i.vni.to_string(), or_none(&i.tap)];
                row.extend(traffic_cells(&t));
                if wide {
                    row.push(or_none(&i.device));
                    row.push(drop_reasons(&t));
                    row.push(verdicts(&i.firewall, "ingress"));
                    row.push(verdicts(&i.firewall, "egress"));
                }
                row
            })
            .collect();
        let mut header = vec![
            "INTERFACE",
            "VNI",
            "TAP",
            "RX-PKTS",
            "RX-BYTES",
            "TX-PKTS",
            "TX-BYTES",
            "DROPS",
        ];
        if wide {
            header.extend(["DEVICE", "DROP-REASONS", "FW-INGRESS", "FW-EGRESS"]);
        }
        out.push_str(&render_table(&header, &rows));
    }
    out.push('\n');
    if c.vnis.is_empty() {
        out.push_str("No VNIs.\n");
    } else {
        let rows: Vec<Vec<String>> = c
            .vnis
            .iter()
            .map(|v| {
                let t = traffic(&v.traffic);
                let mut row = vec![v.vni.to_string()];
                row.extend(traffic_cells(&t));
                if wide {
                    row.push(drop_reasons(&t));
                }
                row
            })
            .collect();
        let mut header = vec!["VNI", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "DROPS"];
        if wide {
            header.push("DROP-REASONS");
        }
        out.push_str(&render_table(&header, &rows));
    }
    out.push('\n');
    let u = traffic(&c.underlay);
    out.push_str(&format!(
        "Underlay: rx {} packets / {} bytes, tx {} packets / {} bytes, {} dropped",
        u.rx_packets,
        u.rx_bytes,
        u.tx_packets,
        u.tx_bytes,
        drop_sum(&u)
    ));
    if wide && !u.drops.is_empty() {
        out.push_str(&format!(" ({})", drop_reasons(&u)));
    }
    out.push('\n');
    out
}

/// [`status_pb::PacketCountersResponse`] as printed by `counters -o json` (the proto's field
/// names; every field present).
#[derive(Debug, Serialize)]
pub struct CountersDoc {
    /// Whether the dataplane moves packets.
    pub enabled: bool,
    /// `enforce` or `monitor`.
    pub firewall_mode: String,
    /// Per interface.
    pub interfaces: Vec<InterfaceDoc>,
    /// Per VNI.
    pub vnis: Vec<VniDoc>,
    /// The underlay.
    pub underlay: TrafficDoc,
    /// Flows in the flow table.
    pub flows: u64,
}

/// One interface of [`CountersDoc`].
#[derive(Debug, Serialize)]
pub struct InterfaceDoc {
    /// The interface's id.
    pub interface_id: String,
    /// Its VNI.
    pub vni: u32,
    /// The VF port.
    pub device: String,
    /// The TAP device.
    pub tap: String,
    /// Its traffic.
    pub traffic: TrafficDoc,
    /// Firewall verdicts per direction.
    pub firewall: Vec<FirewallDoc>,
    /// TCP super-segments read from the VM (TAP offload).
    pub offload_reads: u64,
    /// Merged super-segments written to the VM (TAP offload).
    pub offload_writes: u64,
}

/// One VNI of [`CountersDoc`].
#[derive(Debug, Serialize)]
pub struct VniDoc {
    /// The VNI.
    pub vni: u32,
    /// Its traffic.
    pub traffic: TrafficDoc,
}

/// Traffic counters of [`CountersDoc`].
#[derive(Debug, Serialize)]
pub struct TrafficDoc {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Drops by reason.
    pub drops: Vec<DropDoc>,
}

/// Drops of one reason.
#[derive(Debug, Serialize)]
pub struct DropDoc {
    /// Why.
    pub reason: String,
    /// How many.
    pub packets: u64,
}

/// Firewall verdicts of one direction.
#[derive(Debug, Serialize)]
pub struct FirewallDoc {
    /// `ingress` or `egress`.
    pub direction: String,
    /// Accepted.
    pub accepted: u64,
    /// Dropped.
    pub dropped: u64,
    /// Denied but forwarded (monitor mode).
    pub would_drop: u64,
}

fn traffic_doc(t: &Option<status_pb::TrafficCounters>) -> TrafficDoc {
    let t = traffic(t);
    TrafficDoc {
        rx_packets: t.rx_packets,
        rx_bytes: t.rx_bytes,
        tx_packets: t.tx_packets,
        tx_bytes: t.tx_bytes,
        drops: t
            .drops
            .into_iter()
            .map(|d| DropDoc {
                reason: d.reason,
                packets: d.packets,
            })
            .collect(),
    }
}

/// The document of `counters -o json`.
pub fn counters_doc(c: &status_pb::PacketCountersResponse) -> CountersDoc {
    CountersDoc {
        enabled: c.enabled,
        firewall_mode: c.firewall_mode.clone(),
        interfaces: c
            .interfaces
            .iter()
            .map(|i| InterfaceDoc {
                interface_id: i.interface_id.clone(),
                vni: i.vni,
                device: i.device.clone(),
                tap: i.tap.clone(),
                traffic: traffic_doc(&i.traffic),
                offload_reads: i.offload_reads,
                offload_writes: i.offload_writes,
                firewall: i
                    .firewall
                    .iter()
                    .map(|f| FirewallDoc {
                        direction: f.direction.clone(),
                        accepted: f.accepted,
                        dropped: f.dropped,
                        would_drop: f.would_drop,
                    })
                    .collect(),
            })
            .collect(),
        vnis: c
            .vnis
            .iter()
            .map(|v| VniDoc {
                vni: v.vni,
                traffic: traffic_doc(&v.traffic),
            })
            .collect(),
        underlay: traffic_doc(&c.underlay),
        flows: c.flows,
    }
}
