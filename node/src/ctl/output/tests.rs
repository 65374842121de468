#![allow(clippy::unwrap_used)]

use ferrinet_proto::node::v1 as pb;
use pb::object::Object as O;

use super::*;

const NOW: i64 = 1_700_000_000_000;
const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

#[test]
fn ages_like_kubectl() {
    let cases = [
        (0, "0s"),
        (-1500, "0s"),
        (-5 * SEC, "<invalid>"),
        (12 * SEC + 900, "12s"),
        (119 * SEC, "119s"),
        (2 * MIN, "2m"),
        (5 * MIN + 3 * SEC, "5m3s"),
        (10 * MIN + 59 * SEC, "10m"),
        (179 * MIN, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 20 * MIN, "3h20m"),
        (8 * HOUR + 59 * MIN, "8h"),
        (47 * HOUR, "47h"),
        (2 * DAY, "2d"),
        (2 * DAY + 4 * HOUR, "2d4h"),
        (8 * DAY + 5 * HOUR, "8d"),
        (729 * DAY, "729d"),
        (730 * DAY, "2y"),
        (760 * DAY, "2y30d"),
        (9 * 365 * DAY, "9y"),
    ];
    for (ms, want) in cases {
        assert_eq!(human_duration(ms), want, "{ms}");
    }
    assert_eq!(age(NOW - 5 * MIN, NOW), "5m");
    assert_eq!(age(0, NOW), "<unknown>");
}

#[test]
fn rfc3339_in_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(NOW), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
}

#[test]
fn tables_are_aligned_without_trailing_spaces() {
    let t = render_table(
        &["NAME", "X"],
        &[
            vec!["a-long-name".into(), "1".into()],
            vec!["b".into(), "".into()],
        ],
    );
    assert_eq!(t, "NAME          X\na-long-name   1\nb\n");
}

fn meta(name: &str, age_ms: i64) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        name: name.into(),
        resource_version: 7,
        created_unix_ms: NOW - age_ms,
        ..Default::default()
    })
}

fn failing(t: &str, reason: &str) -> Vec<pb::Condition> {
    vec![
        pb::Condition {
            r#type: "Interface".into(),
            ok: true,
            ..Default::default()
        },
        pb::Condition {
            r#type: t.into(),
            ok: false,
            reason: reason.into(),
            ..Default::default()
        },
    ]
}

fn networks() -> Vec<pb::Object> {
    vec![
        pb::Object {
            object: Some(O::Network(pb::Network {
                metadata: meta("frontend", 12 * SEC),
                spec: Some(pb::NetworkSpec {
                    id: 1001,
                    peered_ids: vec![1002, 1003],
                    ..Default::default()
                }),
                status: Some(pb::NetworkStatus {
                    phase: pb::Phase::Ready as i32,
                    users: 3,
                    peerings: vec![
                        pb::PeeringStatus {
                            id: 1002,
                            state: "Ready".into(),
                            message: String::new(),
                        },
                        pb::PeeringStatus {
                            id: 1003,
                            state: "Pending".into(),
                            message: String::new(),
                        },
                    ],
                    routes: Some(pb::NetworkRoutes {
                        subscription: "Complete".into(),
                        standard: Some(pb::RouteCounts {
                            learned: 12,
                            installed: 11,
                            failed: 1,
                        }),
                        peered: Some(pb::RouteCounts {
                            learned: 4,
                            installed: 4,
                            failed: 0,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })),
        },
        pb::Object {
            object: Some(O::Network(pb::Network {
                metadata: meta("b", 3 * DAY),
                spec: Some(pb::NetworkSpec {
                    id: 7,
                    ..Default::default()
                }),
                status: Some(pb::NetworkStatus {
                    phase: pb::Phase::Error as i32,
                    conditions: failing("Network", "RoutesNotAnnounced"),
                    ..Default::default()
                }),
            })),
        },
    ]
}

#[test]
fn network_table_golden() {
    assert_eq!(
        table(Kind::Network, &networks(), false, NOW),
        "\
NAME       VNI    PEERINGS                  PHASE   AGE
frontend   1001   1002:Ready,1003:Pending   Ready   12s
b          7      <none>                    Error   3d
"
    );
    assert_eq!(
        table(Kind::Network, &networks(), true, NOW),
        "\
NAME       VNI    PEERINGS                  PHASE   AGE   USERS   ROUTES             PEERED   SUBSCRIPTION   REASON
frontend   1001   1002:Ready,1003:Pending   Ready   12s   3       11/12 (1 failed)   4/4      Complete       <none>
b          7      <none>                    Error   3d    0       0/0                0/0      <none>         Network:RoutesNotAnnounced
"
    );
    // Objects of other kinds are skipped.
    assert_eq!(
        table(Kind::LoadBalancer, &networks(), false, NOW)
            .lines()
            .count(),
        1
    );
}

fn interfaces() -> Vec<pb::Object> {
    vec![
        pb::Object {
            object: Some(O::NetworkInterface(pb::NetworkInterface {
                metadata: meta("web-1", 5 * MIN),
                spec: Some(pb::NetworkInterfaceSpec {
                    network: "frontend".into(),
                    ips: vec!["10.10.0.11".into(), "fd00:10::11".into()],
                    virtual_ip: "203.0.113.11".into(),
                    prefixes: vec!["10.10.8.0/28".into()],
                    load_balancer_targets: vec!["10.10.0.100/32".into()],
                    ..Default::default()
                }),
                status: Some(pb::NetworkInterfaceStatus {
                    phase: pb::Phase::Ready as i32,
                    underlay_ip: "fd00:a::11".into(),
                    pci_address: Some(pb::PciAddress {
                        domain: "0000".into(),
                        bus: "3b".into(),
                        slot: "00".into(),
                        function: "2".into(),
                    }),
                    ..Default::default()
                }),
            })),
        },
        pb::Object {
            object: Some(O::NetworkInterface(pb::NetworkInterface {
                metadata: meta("db-1", 3 * HOUR),
                spec: Some(pb::NetworkInterfaceSpec {
                    network: "backend".into(),
                    ips: vec!["10.20.5.21".into()],
                    nat: Some(pb::NatSpec {
                        ip: "203.0.113.50".into(),
                        port: 1024,
                        end_port: 2048,
                    }),
                    ..Default::default()
                }),
                status: Some(pb::NetworkInterfaceStatus {
                    phase: pb::Phase::Pending as i32,
                    tap_device: "tap3".into(),
                    conditions: failing("NAT", "DataplaneError"),
                    ..Default::default()
                }),
            })),
        },
        pb::Object {
            object: Some(O::NetworkInterface(pb::NetworkInterface {
                metadata: meta("new", 0),
                spec: Some(pb::NetworkInterfaceSpec {
                    network: "backend".into(),
                    ips: vec!["10.20.5.22".into()],
                    ..Default::default()
                }),
                status: None,
            })),
        },
    ]
}

#[test]
fn interface_table_golden() {
    assert_eq!(
        table(Kind::NetworkInterface, &interfaces(), false, NOW),
        "\
NAME    NETWORK    IPS                      VIP            UNDERLAY     VF             PHASE     AGE
web-1   frontend   10.10.0.11,fd00:10::11   203.0.113.11   fd00:a::11   0000:3b:00.2   Ready     5m
db-1    backend    10.20.5.21               <none>         <none>       tap3           Pending   3h
new     backend    10.20.5.22               <none>         <none>       <none>         Unknown   0s
"
    );
    let wide = table(Kind::NetworkInterface, &interfaces(), true, NOW);
    let tail: Vec<&str> = wide.lines().map(|l| l.split_at(97).1).collect();
    assert_eq!(
        tail,
        [
            "AGE   NAT                      PREFIXES       LBTARGETS        REASON",
            "5m    <none>                   10.10.8.0/28   10.10.0.100/32   <none>",
            "3h    203.0.113.50:1024-2048   <none>         <none>           NAT:DataplaneError",
            "0s    <none>                   <none>         <none>           <none>",
        ],
        "{wide}"
    );
}

#[test]
fn load_balancer_table_golden() {
    let lbs = vec![pb::Object {
        object: Some(O::LoadBalancer(pb::LoadBalancer {
            metadata: meta("web-lb", 2 * DAY + 4 * HOUR),
            spec: Some(pb::LoadBalancerSpec {
                network: "frontend".into(),
                r#type: pb::LoadBalancerType::Internal as i32,
                ip: "10.10.0.100".into(),
                ports: vec![
                    pb::LoadBalancerPort {
                        protocol: pb::Protocol::Tcp as i32,
                        port: 443,
                    },
                    pb::LoadBalancerPort {
                        protocol: pb::Protocol::Udp as i32,
                        port: 53,
                    },
                ],
            }),
            status: Some(pb::LoadBalancerStatus {
                phase: pb::Phase::Ready as i32,
                underlay_ip: "fd00:a::100".into(),
                targets: vec!["fd00:a::11".into(), "fd00:b::12".into()],
                ..Default::default()
            }),
        })),
    }];
    assert_eq!(
        table(Kind::LoadBalancer, &lbs, false, NOW),
        "\
NAME     NETWORK    TYPE       IP            PORTS            UNDERLAY      PHASE   AGE
web-lb   frontend   Internal   10.10.0.100   tcp/443,udp/53   fd00:a::100   Ready   2d4h
"
    );
    assert_eq!(
        table(Kind::LoadBalancer, &lbs, true, NOW)
            .lines()
            .nth(1)
            .unwrap(),
        "web-lb   frontend   Internal   10.10.0.100   tcp/443,udp/53   fd00:a::100   Ready   2d4h   fd00:a::11,fd00:b::12   <none>"
    );
}

#[test]
fn watch_lines_golden() {
    let ev = pb::WatchEvent {
        r#type: pb::EventType::Modified as i32,
        object: Some(networks().remove(0)),
        revision: 9,
    };
    assert_eq!(watch_line(&ev), "MODIFIED network/frontend Ready rv=7\n");
    let json = watch_json(&ev).unwrap();
    assert!(json.ends_with("}\n") && json.lines().count() == 1, "{json}");
    assert!(
        json.starts_with(
            r#"{"type":"MODIFIED","revision":9,"object":{"apiVersion":"ferrinet.dev/v1","kind":"Network","metadata":{"name":"frontend","resourceVersion":"7","creationTimestamp":"2023-11-14T22:13:08Z"},"spec":{"id":1001,"peeredIDs":[1002,1003]},"status":{"phase":"Ready","peerings":[{"id":1002,"state":"Ready"},{"id":1003,"state":"Pending"}],"users":3,"observedGeneration":0,"routes":{"subscription":"Complete","standard":{"learned":12,"installed":11,"failed":1},"nat":{"learned":0,"installed":0,"failed":0},"loadBalancerTargets":{"learned":0,"installed":0,"failed":0},"peered":{"learned":4,"installed":4,"failed":0}}}}}"#
        ),
        "{json}"
    );
    let deleted = pb::WatchEvent {
        r#type: pb::EventType::Deleted as i32,
        object: Some(interfaces().remove(2)),
        revision: 10,
    };
    assert_eq!(
        watch_line(&deleted),
        "DELETED networkinterface/new Unknown rv=7\n"
    );
}

fn node_status() -> pb::NodeStatusResponse {
    pb::NodeStatusResponse {
        node_name: "node-a".into(),
        dataplane_address: "127.0.0.1:1337".into(),
        dataplane_uuid: "6f1c1d2e".into(),
        dataplane_state: "ready".into(),
        dataplane_restarts: 1,
        route_servers: vec![
            pb::RouteServerStatus {
                address: "[fd00::1]:4711".into(),
                state: "established".into(),
                last_error: String::new(),
                sessions: 3,
            },
            pb::RouteServerStatus {
                address: "region-2:4711".into(),
                state: "backoff".into(),
                last_error: "connection refused".into(),
                sessions: 0,
            },
        ],
        vf_total: 16,
        vf_claimed: 3,
        networks: 2,
        network_interfaces: 3,
        load_balancers: 1,
        ready: 5,
        revision: 42,
        synced: true,
    }
}

#[test]
fn status_block_golden() {
    assert_eq!(
        status_text(&node_status()),
        "\
Node:          node-a
Synced:        yes
Revision:      42
Dataplane:     ready (127.0.0.1:1337, uuid 6f1c1d2e, 1 restarts)
VFs:           3 of 16 claimed
Objects:       2 networks, 3 interfaces, 1 load balancers (5 of 6 ready)
Route servers: 2
  [fd00::1]:4711   established   sessions=3
  region-2:4711    backoff       sessions=0   last error: connection refused
"
    );
    let empty = status_text(&pb::NodeStatusResponse::default());
    assert!(
        empty.contains("Node:          <none>\n") && empty.ends_with("Route servers: <none>\n"),
        "{empty}"
    );
}

#[test]
fn status_json_golden() {
    assert_eq!(
        serde_json::to_string(&status_doc(&node_status())).unwrap(),
        r#"{"nodeName":"node-a","synced":true,"revision":42,"dataplane":{"state":"ready","address":"127.0.0.1:1337","uuid":"6f1c1d2e","restarts":1},"routeServers":[{"address":"[fd00::1]:4711","state":"established","sessions":3},{"address":"region-2:4711","state":"backoff","sessions":0,"lastError":"connection refused"}],"vfs":{"claimed":3,"total":16},"objects":{"networks":2,"networkInterfaces":3,"loadBalancers":1,"ready":5}}"#
    );
}

#[test]
fn interface_document_golden() {
    let doc = from_proto(&interfaces().remove(1)).unwrap();
    assert_eq!(
        yaml(&doc).unwrap(),
        "\
apiVersion: ferrinet.dev/v1
kind: NetworkInterface
metadata:
  name: db-1
  resourceVersion: '7'
  creationTimestamp: 2023-11-14T19:13:20Z
spec:
  networkRef:
    name: backend
  ipFamilies:
  - IPv4
  ips:
  - 10.20.5.21
  nat:
    ip: 203.0.113.50
    port: 1024
    endPort: 2048
status:
  phase: Pending
  conditions:
  - type: Interface
    ok: true
  - type: NAT
    ok: false
    reason: DataplaneError
  tapDevice: tap3
  observedGeneration: 0
"
    );
}

mod packet_counters {
    use ferrinet_proto::dataplane_status::v1 as status_pb;

    use super::super::counters::{counters_doc, counters_text};

    fn traffic(
        rx: (u64, u64),
        tx: (u64, u64),
        drops: &[(&str, u64)],
    ) -> Option<status_pb::TrafficCounters> {
        Some(crate::dataplane::counters::fixtures::traffic(rx, tx, drops))
    }

    fn fw(
        direction: &str,
        accepted: u64,
        dropped: u64,
        would_drop: u64,
    ) -> status_pb::FirewallCounters {
        status_pb::FirewallCounters {
            direction: direction.into(),
            accepted,
            dropped,
            would_drop,
        }
    }

    pub fn response() -> status_pb::PacketCountersResponse {
        status_pb::PacketCountersResponse {
            enabled: true,
            firewall_mode: "monitor".into(),
            interfaces: vec![
                status_pb::InterfacePackets {
                    interface_id: "vm-1".into(),
                    vni: 100,
                    device: "net_tap2".into(),
                    tap: "dtapvf_0".into(),
                    traffic: traffic((10, 1200), (8, 960), &[("no_route", 3), ("firewall", 2)]),
                    firewall: vec![fw("ingress", 7, 2, 0), fw("egress", 9, 0, 1)],
                    offload_reads: 4,
                    offload_writes: 5,
                },
                status_pb::InterfacePackets {
                    interface_id: "vm-22".into(),
                    vni: 200,
                    device: "net_tap3".into(),
                    tap: String::new(),
                    traffic: None,
                    firewall: Vec::new(),
                    ..Default::default()
                },
            ],
            vnis: vec![
                status_pb::VniPackets {
                    vni: 100,
                    traffic: traffic((11, 1260), (8, 960), &[("no_route", 3)]),
                },
                status_pb::VniPackets {
                    vni: 200,
                    traffic: traffic((0, 0), (0, 0), &[]),
                },
            ],
            underlay: traffic((5, 600), (7, 840), &[("malformed", 1), ("too_big", 2)]),
            flows: 4,
        }
    }

    #[test]
    fn table() {
        assert_eq!(
            counters_text(&response(), false),
            "\
Packets:  enabled, firewall mode monitor, 4 flows

INTERFACE   VNI   TAP        RX-PKTS   RX-BYTES   TX-PKTS   TX-BYTES   DROPS
vm-1        100   dtapvf_0   10        1200       8         960        5
vm-22       200   <none>     0         0          0         0          0

VNI   RX-PKTS   RX-BYTES   TX-PKTS   TX-BYTES   DROPS
100   11        1260       8         960        3
200   0         0          0         0          0

Underlay: rx 5 packets / 600 bytes, tx 7 packets / 840 bytes, 3 dropped
"
        );
    }

    #[test]
    fn wide_table() {
        assert_eq!(
            counters_text(&response(), true),
            "\
Packets:  enabled, firewall mode monitor, 4 flows

INTERFACE   VNI   TAP        RX-PKTS   RX-BYTES   TX-PKTS   TX-BYTES   DROPS   DEVICE     DROP-REASONS            FW-INGRESS                          FW-EGRESS
vm-1        100   dtapvf_0   10        1200       8         960        5       net_tap2   no_route=3,firewall=2   accepted=7,dropped=2,would_drop=0   accepted=9,dropped=0,would_drop=1
vm-22       200   <none>     0         0          0         0          0       net_tap3   <none>                  <none>                              <none>

VNI   RX-PKTS   RX-BYTES   TX-PKTS   TX-BYTES   DROPS   DROP-REASONS
100   11        1260       8         960        3       no_route=3
200   0         0          0         0          0       <none>

Underlay: rx 5 packets / 600 bytes, tx 7 packets / 840 bytes, 3 dropped (malformed=1,too_big=2)
"
        );
    }

    #[test]
    fn disabled_and_empty() {
        let off = status_pb::PacketCountersResponse::default();
        assert_eq!(
            counters_text(&off, true),
            "Packets:  disabled (the dataplane moves no packets)\n"
        );
        let empty = status_pb::PacketCountersResponse {
            enabled: true,
            firewall_mode: "enforce".into(),
            ..Default::default()
        };
        assert_eq!(
            counters_text(&empty, false),
            "Packets:  enabled, firewall mode enforce, 0 flows\n\nNo interfaces.\n\nNo VNIs.\n\nUnderlay: rx 0 packets / 0 bytes, tx 0 packets / 0 bytes, 0 dropped\n"
        );
    }

    #[test]
    fn json_has_the_protos_field_names() {
        let mut r = response();
        r.interfaces.truncate(1);
        r.vnis.truncate(1);
        let text = crate::ctl::output::json(&counters_doc(&r)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "enabled": true,
                "firewall_mode": "monitor",
                "interfaces": [{
                    "interface_id": "vm-1",
                    "vni": 100,
                    "device": "net_tap2",
                    "tap": "dtapvf_0",
                    "traffic": {
                        "rx_packets": 10, "rx_bytes": 1200, "tx_packets": 8, "tx_bytes": 960,
                        "drops": [
                            {"reason": "no_route", "packets": 3},
                            {"reason": "firewall", "packets": 2}
                        ]
                    },
                    "firewall": [
                        {"direction": "ingress", "accepted": 7, "dropped": 2, "would_drop": 0},
                        {"direction": "egress", "accepted": 9, "dropped": 0, "would_drop": 1}
                    ],
                    "offload_reads": 4,
                    "offload_writes": 5
                }],
                "vnis": [{
                    "vni": 100,
                    "traffic": {
                        "rx_packets": 11, "rx_bytes": 1260, "tx_packets": 8, "tx_bytes": 960,
                        "drops": [{"reason": "no_route", "packets": 3}]
                    }
                }],
                "underlay": {
                    "rx_packets": 5, "rx_bytes": 600, "tx_packets": 7, "tx_bytes": 840,
                    "drops": [
                        {"reason": "malformed", "packets": 1},
                        {"reason": "too_big", "packets": 2}
                    ]
                },
                "flows": 4
            })
        );
        assert!(text.ends_with("}\n"), "{text}");
    }
}
