//! Prometheus metrics of the node daemon (`/metrics`, OpenMetrics text).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrinet_proto::dataplane_status::v1 as status_pb;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::dataplane::client::DpError;

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 100 µs .. ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric of the node; cheap to clone (the metrics are shared handles).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Objects by kind and phase.
    pub objects: Family<Labels, Gauge>,
    /// Duration of one reconcile pass, by kind.
    pub reconcile_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// dpservice call latency, by RPC.
    pub dp_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// dpservice calls that failed, by RPC and code.
    pub dp_errors: Family<Labels, Counter>,
    /// dpservice restarts detected and answered in-process.
    pub dataplane_restarts: Counter,
    /// Routes this node announces.
    pub routes_announced: Gauge,
    /// Learned routes written into dpservice, by kind (route, neighbor_nat, lb_target) and op.
    pub route_changes: Family<Labels, Counter>,
    /// Learned-route writes dpservice refused or did not answer, by kind, op and code.
    pub route_failures: Family<Labels, Counter>,
    /// The dataplane's packet counters (ferrinet-dataplane with packets on only).
    pub packets: PacketMetrics,
    registry: Arc<Registry>,
}

impl Metrics {
    /// New metrics in their own registry, with the `ferrinet_node` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let objects = Family::<Labels, Gauge>::default();
        let reconcile_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let dp_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let dp_errors = Family::<Labels, Counter>::default();
        let dataplane_restarts = Counter::default();
        let routes_announced = Gauge::default();
        let route_changes = Family::<Labels, Counter>::default();
        let route_failures = Family::<Labels, Counter>::default();
        let r = registry.sub_registry_with_prefix("ferrinet_node");
        r.register("objects", "Objects by kind and phase", objects.clone());
        r.register(
            "reconcile_seconds",
            "Duration of one reconcile pass, by kind",
            reconcile_seconds.clone(),
        );
        r.register(
            "dpservice_call_seconds",
            "dpservice call latency, by RPC",
            dp_seconds.clone(),
        );
        r.register(
            "dpservice_errors",
            "dpservice calls that failed, by RPC and code",
            dp_errors.clone(),
        );
        r.register(
            "dataplane_restarts",
            "dpservice restarts detected and answered in-process",
            dataplane_restarts.clone(),
        );
        r.register(
            "routes_announced",
            "Routes this node announces",
            routes_announced.clone(),
        );
        r.register(
            "route_changes",
            "Learned routes written into dpservice, by kind and op",
            route_changes.clone(),
        );
        r.register(
            "route_failures",
            "Learned-route writes that failed, by kind, op and dpservice code",
            route_failures.clone(),
        );
        let packets = PacketMetrics::register(r);
        Self {
            objects,
            reconcile_seconds,
            dp_seconds,
            dp_errors,
            dataplane_restarts,
            routes_announced,
            route_changes,
            route_failures,
            packets,
            registry: Arc::new(registry),
        }
    }

    /// Records one dpservice call.
    pub fn dp_call(&self, rpc: &'static str, took: Duration, error: Option<&DpError>) {
        self.dp_seconds
            .get_or_create(&vec![("rpc", rpc.to_string())])
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            self.dp_errors
                .get_or_create(&vec![("rpc", rpc.to_string()), ("code", e.label())])
                .inc();
        }
    }

    /// Records one write of a learned route: `kind` is route, neighbor_nat or lb_target, `op`
    /// create or delete.
    pub fn route_write(&self, kind: &'static str, op: &'static str, error: Option<&DpError>) {
        match error {
            None => self
                .route_changes
                .get_or_create(&vec![("kind", kind.to_string()), ("op", op.to_string())])
                .inc(),
            Some(e) => self
                .route_failures
                .get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("op", op.to_string()),
                    ("code", e.label()),
                ])
                .inc(),
        };
    }

    /// Records one reconcile pass.
    pub fn reconciled(&self, kind: &'static str, took: Duration) {
        self.reconcile_seconds
            .get_or_create(&vec![("kind", kind.to_string())])
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The gauge families of [`PacketMetrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PacketFamily {
    InterfacePackets,
    InterfaceBytes,
    InterfaceDrops,
    InterfaceOffload,
    FirewallVerdicts,
    VniPackets,
    VniDrops,
    UnderlayPackets,
    UnderlayDrops,
    Flows,
}

/// The dataplane's packet counters (`Status/PacketCounters` of ferrinet-dataplane), mirrored as
/// gauges: the dataplane owns the cumulative values (and starts them at zero again when it
/// restarts), so the node only shows what it last read. Label sets the dataplane no longer
/// reports (a deleted interface, a VNI gone) are removed at the next [`PacketMetrics::record`].
#[derive(Clone, Debug, Default)]
pub struct PacketMetrics {
    interface_packets: Family<Labels, Gauge>,
    interface_bytes: Family<Labels, Gauge>,
    interface_drops: Family<Labels, Gauge>,
    interface_offload: Family<Labels, Gauge>,
    firewall_verdicts: Family<Labels, Gauge>,
    vni_packets: Family<Labels, Gauge>,
    vni_drops: Family<Labels, Gauge>,
    underlay_packets: Family<Labels, Gauge>,
    underlay_drops: Family<Labels, Gauge>,
    // A family without labels (`..._flows{} N`), so that it is absent, not 0, where nothing is
    // reported.
    flows: Family<Labels, Gauge>,
    shown: Arc<Mutex<BTreeSet<(PacketFamily, Labels)>>>,
}

impl PacketMetrics {
    const FAMILIES: [(PacketFamily, &'static str, &'static str); 10] = [
        (
            PacketFamily::InterfacePackets,
            "dataplane_interface_packets",
            "Packets of an interface (rx: sent by its VM, tx: delivered to it), as the dataplane counts them",
        ),
        (
            PacketFamily::InterfaceBytes,
            "dataplane_interface_bytes",
            "Bytes of an interface, by direction, as the dataplane counts them",
        ),
        (
            PacketFamily::InterfaceDrops,
            "dataplane_interface_drops",
            "Packets of an interface the dataplane dropped, by reason",
        ),
        (
            PacketFamily::InterfaceOffload,
            "dataplane_interface_offload",
            "TAP offload of an interface: TCP super-segments read from its VM (rx) and merged ones written to it (tx)",
        ),
        (
            PacketFamily::FirewallVerdicts,
            "dataplane_firewall_verdicts",
            "Firewall verdicts of an interface, by direction and verdict (would_drop: denied but forwarded in monitor mode)",
        ),
        (
            PacketFamily::VniPackets,
            "dataplane_vni_packets",
            "Packets of a VNI (rx: entered it, tx: left it), as the dataplane counts them",
        ),
        (
            PacketFamily::VniDrops,
            "dataplane_vni_drops",
            "Packets of a VNI the dataplane dropped, by reason",
        ),
        (
            PacketFamily::UnderlayPackets,
            "dataplane_underlay_packets",
            "Encapsulated packets received (rx) and sent (tx) on the underlay",
        ),
        (
            PacketFamily::UnderlayDrops,
            "dataplane_underlay_drops",
            "Underlay packets the dataplane dropped, by reason",
        ),
        (
            PacketFamily::Flows,
            "dataplane_flows",
            "Flows in the dataplane's flow table",
        ),
    ];

    fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        for (family, name, help) in Self::FAMILIES {
            r.register(name, help, m.family(family).clone());
        }
        m
    }

    /// Sets every gauge from `counters` and removes the label sets it no longer has.
    pub fn record(&self, counters: &status_pb::PacketCountersResponse) {
        let samples = packet_samples(counters);
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for (family, labels) in shown.iter() {
            if !samples.contains_key(&(*family, labels.clone())) {
                self.family(*family).remove(labels);
            }
        }
        for ((family, labels), value) in &samples {
            self.family(*family)
                .get_or_create(labels)
                .set(i64::try_from(*value).unwrap_or(i64::MAX));
        }
        *shown = samples.into_keys().collect();
    }

    /// Removes every packet gauge (the dataplane does not report packet counters).
    pub fn clear(&self) {
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for (family, _, _) in Self::FAMILIES {
            self.family(family).clear();
        }
        shown.clear();
    }

    fn family(&self, f: PacketFamily) -> &Family<Labels, Gauge> {
        match f {
            PacketFamily::InterfacePackets => &self.interface_packets,
            PacketFamily::InterfaceBytes => &self.interface_bytes,
            PacketFamily::InterfaceDrops => &self.interface_drops,
            PacketFamily::InterfaceOffload => &self.interface_offload,
            PacketFamily::FirewallVerdicts => &self.firewall_verdicts,
            PacketFamily::VniPackets => &self.vni_packets,
            PacketFamily::VniDrops => &self.vni_drops,
            PacketFamily::UnderlayPackets => &self.underlay_packets,
            PacketFamily::UnderlayDrops => &self.underlay_drops,
            PacketFamily::Flows => &self.flows,
        }
    }
}

/// Every gauge value of `c` by family and labels; a label set that occurs twice (a drop reason
/// listed twice) is summed.
fn packet_samples(c: &status_pb::PacketCountersResponse) -> BTreeMap<(PacketFamily, Labels), u64> {
    use PacketFamily as F;
    let mut out: BTreeMap<(PacketFamily, Labels), u64> = BTreeMap::new();
    let mut add = |family: PacketFamily, labels: Labels, value: u64| {
        let v = out.entry((family, labels)).or_default();
        *v = v.saturating_add(value);
    };
    let traffic = |t: &Option<status_pb::TrafficCounters>| t.clone().unwrap_or_default();
    for i in &c.interfaces {
        let t = traffic(&i.traffic);
        let id = || ("interface", i.interface_id.clone());
        for (dir, packets, bytes) in [
            ("rx", t.rx_packets, t.rx_bytes),
            ("tx", t.tx_packets, t.tx_bytes),
        ] {
            let labels = vec![id(), ("direction", dir.to_string())];
            add(F::InterfacePackets, labels.clone(), packets);
            add(F::InterfaceBytes, labels, bytes);
        }
        for (dir, n) in [("rx", i.offload_reads), ("tx", i.offload_writes)] {
            add(
                F::InterfaceOffload,
                vec![id(), ("direction", dir.to_string())],
                n,
            );
        }
        for d in &t.drops {
            add(
                F::InterfaceDrops,
                vec![id(), ("reason", d.reason.clone())],
                d.packets,
            );
        }
        for fw in &i.firewall {
            for (verdict, n) in [
                ("accepted", fw.accepted),
                ("dropped", fw.dropped),
                ("would_drop", fw.would_drop),
            ] {
                add(
                    F::FirewallVerdicts,
                    vec![
                        id(),
                        ("direction", fw.direction.clone()),
                        ("verdict", verdict.to_string()),
                    ],
                    n,
                );
            }
        }
    }
    for v in &c.vnis {
        let t = traffic(&v.traffic);
        let vni = || ("vni", v.vni.to_string());
        add(
            F::VniPackets,
            vec![vni(), ("direction", "rx".to_string())],
            t.rx_packets,
        );
        add(
            F::VniPackets,
            vec![vni(), ("direction", "tx".to_string())],
            t.tx_packets,
        );
        for d in &t.drops {
            add(
                F::VniDrops,
                vec![vni(), ("reason", d.reason.clone())],
                d.packets,
            );
        }
    }
    if let Some(u) = &c.underlay {
        add(
            F::UnderlayPackets,
            vec![("direction", "rx".to_string())],
            u.rx_packets,
        );
        add(
            F::UnderlayPackets,
            vec![("direction", "tx".to_string())],
            u.tx_packets,
        );
        for d in &u.drops {
            add(
                F::UnderlayDrops,
                vec![("reason", d.reason.clone())],
                d.packets,
            );
        }
    }
    add(F::Flows, Vec::new(), c.flows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dataplane::counters::fixtures::traffic;

    fn interface(id: &str, vni: u32, t: status_pb::TrafficCounters) -> status_pb::InterfacePackets {
        status_pb::InterfacePackets {
            interface_id: id.to_string(),
            vni,
            device: "net_tap2".into(),
            tap: "dtapvf_0".into(),
            traffic: Some(t),
            firewall: vec![
                status_pb::FirewallCounters {
                    direction: "ingress".into(),
                    accepted: 7,
                    dropped: 2,
                    would_drop: 0,
                },
                status_pb::FirewallCounters {
                    direction: "egress".into(),
                    accepted: 9,
                    dropped: 0,
                    would_drop: 1,
                },
            ],
            offload_reads: 3,
            offload_writes: 4,
        }
    }

    fn response() -> status_pb::PacketCountersResponse {
        status_pb::PacketCountersResponse {
            enabled: true,
            firewall_mode: "enforce".into(),
            interfaces: vec![
                interface(
                    "vm-1",
                    100,
                    traffic((10, 1200), (8, 960), &[("no_route", 3), ("firewall", 2)]),
                ),
                interface("vm-2", 100, traffic((1, 60), (0, 0), &[])),
            ],
            vnis: vec![status_pb::VniPackets {
                vni: 100,
                traffic: Some(traffic((11, 1260), (8, 960), &[("no_route", 3)])),
            }],
            underlay: Some(traffic((5, 600), (7, 840), &[("malformed", 1)])),
            flows: 4,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn packet_counters_become_gauges() {
        let m = Metrics::new();
        m.packets.record(&response());
        let text = m.encode();
        let got = lines(&text);
        for want in [
            r#"ferrinet_node_dataplane_interface_packets{interface="vm-1",direction="rx"} 10"#,
            r#"ferrinet_node_dataplane_interface_packets{interface="vm-1",direction="tx"} 8"#,
            r#"ferrinet_node_dataplane_interface_bytes{interface="vm-1",direction="rx"} 1200"#,
            r#"ferrinet_node_dataplane_interface_bytes{interface="vm-1",direction="tx"} 960"#,
            r#"ferrinet_node_dataplane_interface_packets{interface="vm-2",direction="rx"} 1"#,
            r#"ferrinet_node_dataplane_interface_drops{interface="vm-1",reason="no_route"} 3"#,
            r#"ferrinet_node_dataplane_interface_drops{interface="vm-1",reason="firewall"} 2"#,
            r#"ferrinet_node_dataplane_interface_offload{interface="vm-1",direction="rx"} 3"#,
            r#"ferrinet_node_dataplane_interface_offload{interface="vm-1",direction="tx"} 4"#,
            r#"ferrinet_node_dataplane_firewall_verdicts{interface="vm-1",direction="ingress",verdict="accepted"} 7"#,
            r#"ferrinet_node_dataplane_firewall_verdicts{interface="vm-1",direction="ingress",verdict="dropped"} 2"#,
            r#"ferrinet_node_dataplane_firewall_verdicts{interface="vm-1",direction="egress",verdict="would_drop"} 1"#,
            r#"ferrinet_node_dataplane_vni_packets{vni="100",direction="rx"} 11"#,
            r#"ferrinet_node_dataplane_vni_packets{vni="100",direction="tx"} 8"#,
            r#"ferrinet_node_dataplane_vni_drops{vni="100",reason="no_route"} 3"#,
            r#"ferrinet_node_dataplane_underlay_packets{direction="rx"} 5"#,
            r#"ferrinet_node_dataplane_underlay_packets{direction="tx"} 7"#,
            r#"ferrinet_node_dataplane_underlay_drops{reason="malformed"} 1"#,
            "ferrinet_node_dataplane_flows{} 4",
        ] {
            assert!(got.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(
            text.contains("# TYPE ferrinet_node_dataplane_interface_packets gauge"),
            "{text}"
        );
        // vm-2 dropped nothing: no drop series for it.
        assert!(
            !text.contains(r#"interface_drops{interface="vm-2""#),
            "{text}"
        );
    }

    #[test]
    fn what_the_dataplane_no_longer_reports_disappears() {
        let m = Metrics::new();
        m.packets.record(&response());
        let mut later = response();
        later.interfaces.retain(|i| i.interface_id == "vm-2");
        later.vnis.clear();
        if let Some(u) = later.underlay.as_mut() {
            u.drops.clear();
            u.rx_packets = 50;
        }
        later.flows = 0;
        m.packets.record(&later);
        let text = m.encode();
        assert!(!text.contains(r#"interface="vm-1""#), "{text}");
        assert!(!text.contains(r#"vni="100""#), "{text}");
        assert!(!text.contains("underlay_drops{"), "{text}");
        let got = lines(&text);
        for want in [
            r#"ferrinet_node_dataplane_interface_packets{interface="vm-2",direction="rx"} 1"#,
            r#"ferrinet_node_dataplane_underlay_packets{direction="rx"} 50"#,
            "ferrinet_node_dataplane_flows{} 0",
        ] {
            assert!(got.contains(&want), "missing {want:?} in\n{text}");
        }

        m.packets.clear();
        let text = m.encode();
        for (_, name, _) in PacketMetrics::FAMILIES {
            let series = format!("ferrinet_node_{name}{{");
            assert!(
                !lines(&text).iter().any(|l| l.starts_with(&series)),
                "{text}"
            );
        }
    }

    #[test]
    fn a_repeated_drop_reason_is_summed_and_huge_values_saturate() {
        let m = Metrics::new();
        let mut r = response();
        r.underlay = Some(traffic(
            (u64::MAX, 0),
            (0, 0),
            &[("too_big", 2), ("too_big", 3)],
        ));
        m.packets.record(&r);
        let text = m.encode();
        let got = lines(&text);
        for want in [
            r#"ferrinet_node_dataplane_underlay_drops{reason="too_big"} 5"#,
            &format!(
                r#"ferrinet_node_dataplane_underlay_packets{{direction="rx"}} {}"#,
                i64::MAX
            ),
        ] {
            assert!(got.contains(&want), "missing {want:?} in\n{text}");
        }
    }
}
