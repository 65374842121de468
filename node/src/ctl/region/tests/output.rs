//! Tables, `describe` text, watch lines and `whoami`.

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;

use super::entries;
use super::manifest::ALL_FIELDS;
use crate::ctl::region::RegionKind;
use crate::ctl::region::output::{
    columns, describe, port_text, selector_text, table, watch_json, watch_line, whoami_text,
};

/// 2023-11-14T22:13:20Z.
const CREATED: i64 = 1_700_000_000_000;
const NOW: i64 = CREATED + 3_600_000 + 5 * 60_000;

/// The objects of [`ALL_FIELDS`] as the API would return them: metadata and a status.
fn served() -> Vec<pb::Object> {
    entries(ALL_FIELDS)
        .into_iter()
        .map(|e| {
            let mut o = e.object;
            if let Some(m) = crate::ctl::region::meta_mut(&mut o) {
                m.created_unix_ms = CREATED;
                m.resource_version = 12;
                m.generation = 1;
                m.uid = "u-1".into();
            }
            match o.object.as_mut() {
                Some(O::Network(n)) => {
                    n.status = Some(pb::NetworkStatus {
                        vni: 4711,
                        state: "Available".into(),
                        peerings: vec![pb::NetworkPeeringStatus {
                            name: "to-b".into(),
                            state: "Pending".into(),
                            reason: "net-b has no peering naming net-a".into(),
                            network: "tenant-b/net-b".into(),
                            peer_vni: 0,
                        }],
                        provider_id: "ferrinet://tenant-a/net-a/4711/u-1".into(),
                        ..Default::default()
                    })
                }
                Some(O::NetworkInterface(n)) => {
                    n.status = Some(pb::NetworkInterfaceStatus {
                        ips: vec!["10.1.0.5".into(), "fd00::5".into()],
                        virtual_ip: "203.0.113.9".into(),
                        nat_ip: "203.0.113.1".into(),
                        nat_port: 1024,
                        nat_end_port: 2048,
                        vni: 4711,
                        underlay_ip: "fc00:1::5".into(),
                        pci_address: "0000:3b:00.2".into(),
                        state: "Available".into(),
                        conditions: vec![
                            pb::Condition {
                                r#type: "Ready".into(),
                                ok: true,
                                ..Default::default()
                            },
                            pb::Condition {
                                r#type: "Firewall".into(),
                                ok: false,
                                reason: "Compiling".into(),
                                message: "2 rules pending".into(),
                            },
                        ],
                        dns_name: "web-1.net-a.tenant-a.example".into(),
                        ..Default::default()
                    })
                }
                Some(O::Node(n)) => {
                    n.status = Some(pb::NodeStatus {
                        state: "Ready".into(),
                        lease_expires_unix_ms: CREATED + 30_000,
                        network_interfaces: 1,
                        load_balancers: 0,
                    })
                }
                _ => {}
            }
            o
        })
        .collect()
}

#[test]
fn network_and_interface_tables() {
    let objs = served();
    assert_eq!(
        table(RegionKind::Network, &objs, false, false, NOW),
        "\
NAME    VNI    STATE       PEERINGS       AGE
net-a   4711   Available   to-b:Pending   65m
"
    );
    assert_eq!(
        table(RegionKind::Network, &objs, true, true, NOW),
        "\
NAMESPACE   NAME    VNI    STATE       PEERINGS       AGE   SUBNETS                   INCOMING   MESSAGE
tenant-a    net-a   4711   Available   to-b:Pending   65m   10.0.0.0/16,10.1.0.0/24   <none>     <none>
"
    );
    assert_eq!(
        table(RegionKind::NetworkInterface, &objs, false, false, NOW),
        "\
NAME    NETWORK   NODE     IPS                VIP           NAT                     STATE       AGE
web-1   net-a     node-1   10.1.0.5,fd00::5   203.0.113.9   203.0.113.1:1024-2048   Available   65m
"
    );
    let wide = table(RegionKind::NetworkInterface, &objs, true, false, NOW);
    assert!(
        wide.starts_with("NAME    NETWORK   NODE     IPS                VIP           NAT                     STATE       AGE   VNI    UNDERLAY    PCI            PREFIXES      DNS"),
        "{wide}"
    );
    assert!(
        wide.contains("4711   fc00:1::5   0000:3b:00.2   10.2.0.0/28"),
        "{wide}"
    );
}

#[test]
fn every_kind_has_a_table() {
    let objs = served();
    for kind in RegionKind::APPLY_ORDER {
        let (narrow, extra) = columns(kind);
        for (wide, all) in [(false, false), (true, false), (false, true)] {
            let t = table(kind, &objs, wide, all, NOW);
            let lines: Vec<&str> = t.lines().collect();
            assert_eq!(lines.len(), 2, "{kind:?}:\n{t}");
            let header: Vec<&str> = lines[0].split_whitespace().collect();
            let mut want: Vec<&str> = Vec::new();
            if all && kind.namespaced() {
                want.push("NAMESPACE");
            }
            want.extend(narrow);
            if wide {
                want.extend(extra);
            }
            assert_eq!(header, want, "{kind:?}");
        }
    }
    let lb = table(RegionKind::LoadBalancer, &objs, true, false, NOW);
    assert!(
        lb.contains("lb-1   net-a     Internal   10.1.0.200   TCP/443,UDP/5000-5010   <none>   65m   app=web,tier notin (db)"),
        "{lb}"
    );
    let pp = table(RegionKind::PublicPrefix, &objs, false, false, NOW);
    assert!(
        pp.contains("pp-1   NetworkInterface   app=web,tier in (front),!legacy   IPv4"),
        "{pp}"
    );
    let node = table(RegionKind::Node, &objs, true, true, NOW);
    assert!(node.starts_with("NAME     STATE   UNDERLAY"), "{node}");
    assert!(
        node.contains(
            "node-1   Ready   fc00:1::/64   126   1            0     65m   2023-11-14T22:13:50Z"
        ),
        "{node}"
    );
    let nat = table(RegionKind::NatGateway, &objs, false, false, NOW);
    assert!(
        nat.contains("nat-1   net-a     Public   <none>   1024    0/0"),
        "{nat}"
    );
    // Objects of other kinds are skipped; no objects is a header only.
    assert_eq!(
        table(RegionKind::VirtualIp, &[], false, false, NOW)
            .lines()
            .count(),
        1
    );
}

#[test]
fn cells_render_selectors_and_ports() {
    assert_eq!(port_text("", 80, 0), "TCP/80");
    assert_eq!(port_text("UDP", 53, 53), "UDP/53");
    assert_eq!(port_text("TCP", 1000, 2000), "TCP/1000-2000");
    let exprs = [
        pb::LabelRequirement {
            key: "env".into(),
            operator: "In".into(),
            values: vec!["a".into(), "b".into()],
        },
        pb::LabelRequirement {
            key: "legacy".into(),
            operator: "DoesNotExist".into(),
            values: vec![],
        },
        pb::LabelRequirement {
            key: "team".into(),
            operator: "Exists".into(),
            values: vec![],
        },
    ];
    let labels = [
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        selector_text(&labels, &exprs),
        "a=1,b=2,env in (a,b),!legacy,team"
    );
    assert_eq!(selector_text(&Default::default(), &[]), "<none>");
}

#[test]
fn describe_shows_metadata_spec_status_and_conditions() {
    let objs = served();
    let text = describe(&objs[1], NOW).unwrap();
    assert!(
        text.starts_with(
            "\
Name:       web-1
Namespace:  tenant-a
Kind:       NetworkInterface
Labels:     app=web
Created:    2023-11-14T22:13:20Z (65m ago)
Version:    resource 12, generation 1
UID:        u-1
Spec:
  networkRef:
    name: net-a
  nodeName: node-1
"
        ),
        "{text}"
    );
    assert!(
        text.contains("Status:\n  state: Available\n  ips:\n  - 10.1.0.5\n"),
        "{text}"
    );
    assert!(!text.contains("conditions:"), "{text}");
    assert!(
        text.ends_with(
            "\
Conditions:
  TYPE       OK      REASON      MESSAGE
  Ready      True    <none>
  Firewall   False   Compiling   2 rules pending
"
        ),
        "{text}"
    );
    // A node: no namespace line; a virtual IP without status.
    let node = describe(&objs[7], NOW).unwrap();
    assert!(
        node.starts_with("Name:       node-1\nKind:       Node\n"),
        "{node}"
    );
    assert!(
        node.contains("Status:\n  state: Ready\n  leaseExpires: 2023-11-14T22:13:50Z\n"),
        "{node}"
    );
    let vip = describe(&objs[2], NOW).unwrap();
    assert!(vip.ends_with("Status:\n  <none>\n"), "{vip}");
    assert!(!vip.contains("Conditions"), "{vip}");
}

#[test]
fn watch_lines_and_whoami() {
    let objs = served();
    let ev = |t: pb::EventType, o: Option<pb::Object>| pb::WatchEvent {
        r#type: t as i32,
        object: o,
        revision: 13,
    };
    assert_eq!(
        watch_line(&ev(pb::EventType::Added, Some(objs[0].clone()))).unwrap(),
        "ADDED network/tenant-a/net-a Available rv=12\n"
    );
    assert_eq!(
        watch_line(&ev(pb::EventType::Deleted, Some(objs[2].clone()))).unwrap(),
        "DELETED virtualip/tenant-a/vip-1 - rv=12\n"
    );
    assert_eq!(watch_line(&ev(pb::EventType::Synced, None)), None);
    assert_eq!(
        watch_json(&ev(pb::EventType::Synced, None)).unwrap(),
        "{\"type\":\"SYNCED\",\"revision\":13}\n"
    );
    let json = watch_json(&ev(pb::EventType::Modified, Some(objs[7].clone()))).unwrap();
    assert!(
        json.starts_with("{\"type\":\"MODIFIED\",\"revision\":13,\"object\":{\"apiVersion\":\"networking.ferrinet.dev/v1alpha1\",\"kind\":\"Node\""),
        "{json}"
    );
    let who = pb::WhoAmIResponse {
        identity: "ci".into(),
        role: "tenant".into(),
        namespaces: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        whoami_text(&who),
        "Identity:   ci\nRole:       tenant\nNamespaces: a, b\n"
    );
    let admin = pb::WhoAmIResponse {
        identity: "root".into(),
        role: "admin".into(),
        namespaces: vec![],
    };
    assert!(whoami_text(&admin).ends_with("Namespaces: <all>\n"));
}
