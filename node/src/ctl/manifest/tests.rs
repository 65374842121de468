#![allow(clippy::unwrap_used)]

use ferrinet_proto::node::v1 as pb;
use pb::object::Object as O;

use super::*;
use crate::ctl::output;

const EXAMPLE: &str = include_str!("../../../examples/manifests.yaml");
const METALNET_COMPAT: &str = include_str!("../../../tests/data/metalnet-compat.yaml");
const OBJECTS_JSON: &str = include_str!("../../../tests/data/objects.json");

fn parse_text(text: &str) -> Result<Vec<Entry>, CtlError> {
    parse(&Source {
        name: "t.yaml".into(),
        text: text.into(),
    })
}

fn err_text(text: &str) -> String {
    match parse_text(text) {
        Ok(e) => panic!("parsed: {e:#?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 1);
            e.to_string()
        }
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        ..Default::default()
    })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Every field of every object of `node/examples/manifests.yaml`, as sent to the node.
#[test]
fn example_manifest_parses_completely() {
    let entries = parse(&Source {
        name: "node/examples/manifests.yaml".into(),
        text: EXAMPLE.into(),
    })
    .unwrap();
    let shop = [("tenant", "shop")];
    let frontend = pb::Object {
        object: Some(O::Network(pb::Network {
            metadata: meta("frontend", &shop),
            spec: Some(pb::NetworkSpec {
                id: 1001,
                peered_ids: vec![1002],
                peered_prefixes: vec![],
            }),
            status: None,
        })),
    };
    let backend = pb::Object {
        object: Some(O::Network(pb::Network {
            metadata: meta("backend", &shop),
            spec: Some(pb::NetworkSpec {
                id: 1002,
                peered_ids: vec![1001],
                peered_prefixes: vec![pb::PeeredPrefix {
                    id: 1001,
                    prefixes: strings(&["10.20.5.0/24", "fd00:20:5::/64"]),
                }],
            }),
            status: None,
        })),
    };
    let tcp443 = pb::ProtocolMatch {
        protocol: pb::Protocol::Tcp as i32,
        icmp: None,
        port_range: Some(pb::PortMatch {
            dst_port: Some(443),
            ..Default::default()
        }),
    };
    let ping6 = pb::ProtocolMatch {
        protocol: pb::Protocol::Icmp as i32,
        icmp: Some(pb::IcmpMatch {
            icmp_type: 128,
            icmp_code: -1,
        }),
        port_range: None,
    };
    let rule = |id: &str,
                dir: pb::Direction,
                prio: u32,
                src: &str,
                dst: &str,
                m: Option<pb::ProtocolMatch>| {
        pb::FirewallRule {
            id: id.into(),
            direction: dir as i32,
            action: pb::Action::Accept as i32,
            priority: prio,
            source_prefix: src.into(),
            destination_prefix: dst.into(),
            protocol_match: m,
        }
    };
    let web = pb::Object {
        object: Some(O::NetworkInterface(pb::NetworkInterface {
            metadata: meta("web-1", &[("tenant", "shop"), ("role", "web")]),
            spec: Some(pb::NetworkInterfaceSpec {
                network: "frontend".into(),
                ips: strings(&["10.10.0.11", "fd00:10::11"]),
                virtual_ip: "203.0.113.11".into(),
                nat: None,
                prefixes: strings(&["10.10.8.0/28"]),
                load_balancer_targets: strings(&["10.10.0.100/32"]),
                firewall_rules: vec![
                    rule(
                        "allow-https",
                        pb::Direction::Ingress,
                        100,
                        "0.0.0.0/0",
                        "10.10.0.11/32",
                        Some(tcp443),
                    ),
                    rule(
                        "allow-ping-v6",
                        pb::Direction::Ingress,
                        1000,
                        "::/0",
                        "::/0",
                        Some(ping6),
                    ),
                    rule(
                        "allow-egress",
                        pb::Direction::Egress,
                        1000,
                        "0.0.0.0/0",
                        "0.0.0.0/0",
                        None,
                    ),
                ],
                metering_rate: Some(pb::MeteringRate {
                    total_rate: 10000,
                    public_rate: 1000,
                }),
                hostname: "web-1".into(),
            }),
            status: None,
        })),
    };
    let db = pb::Object {
        object: Some(O::NetworkInterface(pb::NetworkInterface {
            metadata: meta("db-1", &[("tenant", "shop"), ("role", "db")]),
            spec: Some(pb::NetworkInterfaceSpec {
                network: "backend".into(),
                ips: strings(&["10.20.5.21"]),
                nat: Some(pb::NatSpec {
                    ip: "203.0.113.50".into(),
                    port: 1024,
                    end_port: 2048,
                }),
                ..Default::default()
            }),
            status: None,
        })),
    };
    let lb = pb::Object {
        object: Some(O::LoadBalancer(pb::LoadBalancer {
            metadata: meta("web-lb", &shop),
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
            status: None,
        })),
    };
    let got: Vec<&pb::Object> = entries.iter().map(|e| &e.object).collect();
    assert_eq!(got, vec![&frontend, &backend, &web, &db, &lb]);
    let origins: Vec<&str> = entries.iter().map(|e| e.origin.as_str()).collect();
    assert_eq!(origins[4], "node/examples/manifests.yaml: document 5");
    assert!(
        entries
            .iter()
            .all(|e| e.doc.api_version == API_VERSION_METALNET)
    );
    assert!(entries.iter().all(|e| e.doc.node_name().is_none()));
}

#[test]
fn metalnet_list_with_kubernetes_metadata_is_accepted() {
    let entries = parse(&Source {
        name: "m.yaml".into(),
        text: METALNET_COMPAT.into(),
    })
    .unwrap();
    let labels: Vec<String> = entries.iter().map(Entry::label).collect();
    assert_eq!(
        labels,
        [
            "network/net-7",
            "networkinterface/vm-7",
            "loadbalancer/lb-7"
        ]
    );
    assert_eq!(entries[1].origin, "m.yaml: document 1: items[1]");
    assert_eq!(entries[1].doc.node_name(), Some("node-a"));
    let Some(O::NetworkInterface(ni)) = &entries[1].object.object else {
        panic!("not an interface")
    };
    let rules = &ni.spec.as_ref().unwrap().firewall_rules;
    assert_eq!(rules[0].direction, pb::Direction::Ingress as i32);
    assert_eq!(rules[0].action, pb::Action::Accept as i32);
    assert_eq!(rules[0].source_prefix, "192.0.2.0/24");
    assert_eq!(rules[0].destination_prefix, "0.0.0.0/0");
    let m = rules[0].protocol_match.as_ref().unwrap();
    // metalnet would make lower-case "tcp" any protocol.
    assert_eq!(m.protocol, pb::Protocol::Tcp as i32);
    assert_eq!(
        m.port_range,
        Some(pb::PortMatch {
            src_port: Some(-1),
            end_src_port: None,
            dst_port: Some(22),
            end_dst_port: Some(22)
        })
    );
    assert_eq!(
        (rules[1].direction, rules[1].action),
        (pb::Direction::Egress as i32, pb::Action::Accept as i32)
    );
    let Some(O::LoadBalancer(lb)) = &entries[2].object.object else {
        panic!("not a load balancer")
    };
    assert_eq!(
        lb.spec.as_ref().unwrap().r#type,
        pb::LoadBalancerType::Public as i32
    );
}

#[test]
fn json_array_with_printed_metadata_is_accepted() {
    let entries = parse(&Source {
        name: "objects.json".into(),
        text: OBJECTS_JSON.into(),
    })
    .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].origin, "objects.json: document 1: [0]");
    assert_eq!(
        entries[0].doc.metadata.resource_version,
        ResourceVersion(Some(12))
    );
    let Some(O::NetworkInterface(ni)) = &entries[1].object.object else {
        panic!("not an interface")
    };
    // Addresses are sent in canonical form.
    assert_eq!(ni.spec.as_ref().unwrap().ips, ["fd00:42::5"]);
    assert_eq!(ni.metadata.as_ref().unwrap().resource_version, 0);
}

fn full_objects() -> Vec<pb::Object> {
    let mut objects: Vec<pb::Object> = parse(&Source {
        name: "x".into(),
        text: EXAMPLE.into(),
    })
    .unwrap()
    .into_iter()
    .map(|e| e.object)
    .collect();
    for (i, obj) in objects.iter_mut().enumerate() {
        let rv = 10 + i as u64;
        match obj.object.as_mut().unwrap() {
            O::Network(n) => {
                n.metadata.as_mut().unwrap().resource_version = rv;
                n.status = Some(pb::NetworkStatus {
                    phase: pb::Phase::Ready as i32,
                    peerings: vec![pb::PeeringStatus {
                        id: 1002,
                        state: "Ready".into(),
                        message: String::new(),
                    }],
                    users: 2,
                    observed_generation: 1,
                    ..Default::default()
                });
            }
            O::NetworkInterface(n) => {
                n.metadata.as_mut().unwrap().resource_version = rv;
                n.status = Some(pb::NetworkInterfaceStatus {
                    phase: pb::Phase::Error as i32,
                    conditions: vec![pb::Condition {
                        r#type: "NAT".into(),
                        ok: false,
                        reason: "DataplaneError".into(),
                        message: "port slice taken".into(),
                        last_transition_unix_ms: 1_700_000_000_000,
                    }],
                    vni: 1001,
                    underlay_ip: "fd00:a::11".into(),
                    pci_address: Some(pb::PciAddress {
                        domain: "0000".into(),
                        bus: "3b".into(),
                        slot: "00".into(),
                        function: "2".into(),
                    }),
                    ..Default::default()
                });
            }
            O::LoadBalancer(l) => {
                l.metadata.as_mut().unwrap().resource_version = rv;
                l.status = Some(pb::LoadBalancerStatus {
                    phase: pb::Phase::Ready as i32,
                    targets: strings(&["fd00:a::11"]),
                    ..Default::default()
                });
            }
        }
        if let Some(O::Network(n)) = obj.object.as_mut() {
            let m = n.metadata.as_mut().unwrap();
            m.generation = 3;
            m.created_unix_ms = 1_700_000_000_000;
        }
    }
    objects
}

fn without_node_fields(mut obj: pb::Object) -> pb::Object {
    match obj.object.as_mut().unwrap() {
        O::Network(n) => {
            n.status = None;
            let m = n.metadata.as_mut().unwrap();
            (m.generation, m.created_unix_ms) = (0, 0);
        }
        O::NetworkInterface(n) => n.status = None,
        O::LoadBalancer(l) => l.status = None,
    }
    obj
}

/// `get -o yaml` (and `-o json`) output fed back to `apply -f` gives the same objects (the
/// status and the node's metadata fields are ignored; the resource version is kept).
#[test]
fn printed_objects_parse_back_to_the_same_objects() {
    let objects = full_objects();
    let docs = output::docs(&objects);
    for text in [output::yaml(&docs).unwrap(), output::json(&docs).unwrap()] {
        let back: Vec<pb::Object> = parse_text(&text)
            .unwrap()
            .into_iter()
            .map(|e| e.object)
            .collect();
        let want: Vec<pb::Object> = objects.iter().cloned().map(without_node_fields).collect();
        assert_eq!(back, want, "{text}");
    }
    // One object alone (what `get KIND NAME -o yaml` prints).
    let one = output::yaml(&docs[2]).unwrap();
    assert_eq!(
        parse_text(&one).unwrap()[0].object,
        without_node_fields(objects[2].clone())
    );
}

/// Manifest -> object -> printed manifest -> object is the identity on objects.
#[test]
fn conversion_is_stable_both_ways() {
    for text in [EXAMPLE, METALNET_COMPAT, OBJECTS_JSON] {
        for e in parse_text(text).unwrap() {
            let doc = from_proto(&e.object).unwrap();
            let again = parse_text(&output::yaml(&doc).unwrap()).unwrap();
            assert_eq!(again[0].object, e.object, "{}", e.origin);
        }
    }
}

#[test]
fn printed_network_golden() {
    let objects = full_objects();
    let want = "\
apiVersion: ferrinet.dev/v1
kind: Network
metadata:
  name: frontend
  labels:
    tenant: shop
  resourceVersion: '10'
  generation: 3
  creationTimestamp: 2023-11-14T22:13:20Z
spec:
  id: 1001
  peeredIDs:
  - 1002
status:
  phase: Ready
  peerings:
  - id: 1002
    state: Ready
  users: 2
  observedGeneration: 1
";
    assert_eq!(
        output::yaml(&from_proto(&objects[0]).unwrap()).unwrap(),
        want
    );
}

#[test]
fn lenient_enumerations_and_defaults() {
    let text = "\
apiVersion: ferrinet.dev/v1
kind: NetworkInterface
metadata: {name: a, resourceVersion: 7}
spec:
  networkRef: {name: n}
  ips: ['fd00::1']
  firewallRules:
  - {firewallRuleID: r1, direction: INGRESS, action: 1, protocolMatch: {protocolType: Udp}}
  - {firewallRuleID: r2, direction: 1, action: '0', ipFamily: ipv6, protocolMatch: {protocolType: icmp, icmp: {}}}
  - {firewallRuleID: r3, direction: egress, action: drop, destinationPrefix: 'fd00::/8'}
";
    let e = &parse_text(text).unwrap()[0];
    let Some(O::NetworkInterface(ni)) = &e.object.object else {
        panic!()
    };
    assert_eq!(ni.metadata.as_ref().unwrap().resource_version, 7);
    let r = &ni.spec.as_ref().unwrap().firewall_rules;
    assert_eq!((r[0].direction, r[0].action, r[0].priority), (1, 1, 1000));
    assert_eq!(
        (
            r[0].source_prefix.as_str(),
            r[0].destination_prefix.as_str()
        ),
        ("0.0.0.0/0", "0.0.0.0/0")
    );
    assert_eq!(
        r[0].protocol_match.as_ref().unwrap().protocol,
        pb::Protocol::Udp as i32
    );
    assert_eq!(
        (r[1].direction, r[1].action),
        (pb::Direction::Egress as i32, pb::Action::Deny as i32)
    );
    assert_eq!(r[1].source_prefix, "::/0");
    let icmp = r[1].protocol_match.as_ref().unwrap().icmp.unwrap();
    assert_eq!((icmp.icmp_type, icmp.icmp_code), (-1, -1));
    assert_eq!(
        (
            r[2].source_prefix.as_str(),
            r[2].destination_prefix.as_str()
        ),
        ("::/0", "fd00::/8")
    );
    assert_eq!(r[2].action, pb::Action::Deny as i32);
}

#[test]
fn resource_versions_and_empty_documents() {
    let doc = |rv: &str| {
        format!(
            "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {{name: n, resourceVersion: {rv}}}\nspec: {{id: 1}}\n"
        )
    };
    for (rv, want) in [
        ("'42'", Some(42)),
        ("42", Some(42)),
        ("''", None),
        ("0", None),
    ] {
        let e = parse_text(&doc(rv)).unwrap();
        assert_eq!(
            e[0].doc.metadata.resource_version,
            ResourceVersion(want),
            "{rv}"
        );
    }
    // Empty documents (comments only, a stray separator) are skipped, but they count in the
    // numbering: document N is what follows the N-th separator (a leading one excepted).
    let text = format!(
        "# header\n---\n{}---\n# nothing here\n---\n{}",
        doc("1"),
        doc("x")
    );
    let e = err_text(&text);
    assert!(
        e.starts_with("t.yaml: document 3: metadata.resourceVersion: invalid value"),
        "{e}"
    );
    assert_eq!(
        parse_text(&format!("{}---\n---\n{}", doc("1"), doc("2")))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(parse_text("# only a comment\n").unwrap(), vec![]);
}

const NET: &str = "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: n}\n";
const NI: &str = "apiVersion: ferrinet.dev/v1\nkind: NetworkInterface\nmetadata: {name: i}\n";
const LB: &str = "apiVersion: ferrinet.dev/v1\nkind: LoadBalancer\nmetadata: {name: l}\n";

/// Every error names the file, the document and the field.
#[test]
fn errors_name_file_document_and_field() {
    let fw = |rule: &str| {
        format!(
            "{NI}spec:\n  networkRef: {{name: n}}\n  ips: [10.0.0.1]\n  firewallRules: [{rule}]\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (format!("{NET}spec: {{id: 1, peerIDs: [2]}}\n"), "t.yaml: document 1: spec: unknown field `peerIDs`, expected one of `id`, `peeredIDs`, `peeredPrefixes`"),
        (format!("{NET}spec: {{id: abc}}\n"), "t.yaml: document 1: spec.id: invalid type: string \"abc\", expected u32"),
        (format!("{NET}spec: {{id: 1}}\nfoo: 1\n"), "t.yaml: document 1: unknown field `foo`, expected one of `apiVersion`, `kind`, `metadata`, `spec`, `status`"),
        (format!("{NET}spec: {{id: 1, peeredPrefixes: [{{id: 2, prefixes: [10.0.0.0/33]}}]}}\n"), "t.yaml: document 1: spec.peeredPrefixes[0].prefixes[0]: \"10.0.0.0/33\" is not a prefix"),
        ("apiVersion: v1\nkind: Network\nmetadata: {name: n}\nspec: {id: 1}\n".into(), "t.yaml: document 1: apiVersion: \"v1\" is not supported: use networking.metalnet.ironcore.dev/v1alpha1 or ferrinet.dev/v1"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: n}\nspec: {}\n".into(), "t.yaml: document 1: kind: \"Pod\" is not supported"),
        ("apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {labels: {a: b}}\nspec: {id: 1}\n".into(), "t.yaml: document 1: metadata.name: required"),
        ("apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: n, uid: x}\nspec: {id: 1}\n".into(), "t.yaml: document 1: metadata: unknown field `uid`"),
        (format!("{NET}\n"), "t.yaml: document 1: missing field `spec`"),
        (format!("{NET}spec: {{id: 1}}\n---\n{NI}spec: {{networkRef: {{name: n}}, ips: [10.0.0.1, 10.0.0.300]}}\n"), "t.yaml: document 2: spec.ips[1]: \"10.0.0.300\" is not an IP address"),
        (format!("{NI}spec: {{networkRef: {{name: n}}, ipFamilies: [IPv6], ips: [10.0.0.1]}}\n"), "t.yaml: document 1: spec.ipFamilies[0]: IPv6, but spec.ips[0] (10.0.0.1) is IPv4"),
        (format!("{NI}spec: {{networkRef: {{name: n}}, ipFamilies: [IPv4, IPv6], ips: [10.0.0.1]}}\n"), "t.yaml: document 1: spec.ipFamilies: 2 families for 1 addresses"),
        (format!("{NI}spec: {{networkRef: {{name: n}}, ipFamilies: [IPv5], ips: [10.0.0.1]}}\n"), "t.yaml: document 1: spec.ipFamilies[0]: invalid value: string \"IPv5\", expected IPv4 or IPv6"),
        (format!("{NI}spec: {{networkRef: {{name: ''}}, ips: [10.0.0.1]}}\n"), "t.yaml: document 1: spec.networkRef.name: required"),
        (format!("{NI}spec: {{networkRef: {{name: n}}, ips: [10.0.0.1], nat: {{ip: x, port: 1, endPort: 2}}}}\n"), "t.yaml: document 1: spec.nat.ip: \"x\" is not an IP address"),
        (format!("{NI}spec: {{networkRef: {{name: n}}, ips: [10.0.0.1], loadBalancerTargets: [10.0.0.1/40]}}\n"), "t.yaml: document 1: spec.loadBalancerTargets[0]: \"10.0.0.1/40\" is not a prefix"),
        (fw("{firewallRuleID: r, direction: Inbound, action: Accept}"), "t.yaml: document 1: spec.firewallRules[0].direction: invalid value: string \"Inbound\", expected Ingress or Egress"),
        (fw("{firewallRuleID: r, action: Accept}"), "t.yaml: document 1: spec.firewallRules[0].direction: required: Ingress or Egress"),
        (fw("{firewallRuleID: r, direction: Egress}"), "t.yaml: document 1: spec.firewallRules[0].action: required: Accept or Deny"),
        (fw("{firewallRuleID: r, direction: Egress, action: 2}"), "spec.firewallRules[0].action: invalid value: integer `2`, expected Accept or Deny"),
        (fw("{firewallRuleID: r, direction: Egress, action: Accept, ipFamily: IPv6, sourcePrefix: 10.0.0.0/8}"), "t.yaml: document 1: spec.firewallRules[0].sourcePrefix: 10.0.0.0/8 is IPv4, but ipFamily is IPv6"),
        (fw("{firewallRuleID: r, direction: Egress, action: Accept, sourcePrefix: 10.0.0.0/8, destinationPrefix: 'fd00::/8'}"), "t.yaml: document 1: spec.firewallRules[0].destinationPrefix: fd00::/8 is IPv6, but sourcePrefix is IPv4"),
        (fw("{firewallRuleID: r, direction: Egress, action: Accept, protocolMatch: {portRange: {dstPort: 1}}}"), "t.yaml: document 1: spec.firewallRules[0].protocolMatch.protocolType: required with icmp or portRange"),
        (fw("{firewallRuleID: r, direction: Egress, action: Accept, protocolMatch: {protocolType: SCTP}}"), "spec.firewallRules[0].protocolMatch.protocolType: invalid value: string \"SCTP\", expected TCP, UDP or ICMP"),
        (fw("{firewallRuleID: r, direction: Egress, action: Accept, protocolMatch: {protocolType: TCP, portRange: {dstport: 1}}}"), "spec.firewallRules[0].protocolMatch.portRange: unknown field `dstport`"),
        (format!("{LB}spec: {{networkRef: {{name: n}}, ip: 10.0.0.1, ports: []}}\n"), "t.yaml: document 1: spec.type: required: Internal or Public"),
        (format!("{LB}spec: {{networkRef: {{name: n}}, type: External, ip: 10.0.0.1}}\n"), "t.yaml: document 1: spec.type: invalid value: string \"External\", expected Internal or Public"),
        (format!("{LB}spec: {{networkRef: {{name: n}}, type: Public, ipFamily: IPv6, ip: 10.0.0.1}}\n"), "t.yaml: document 1: spec.ipFamily: IPv6, but spec.ip (10.0.0.1) is IPv4"),
        (format!("{LB}spec: {{networkRef: {{name: n}}, type: Public, ip: 10.0.0.1, ports: [{{port: 80}}]}}\n"), "t.yaml: document 1: spec.ports[0].protocol: required: TCP or UDP"),
        ("- apiVersion: ferrinet.dev/v1\n  kind: List\n  items: []\n".into(), "t.yaml: document 1: .[0]: kind: \"List\" is not supported"),
        ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: ferrinet.dev/v1\n  kind: Network\n  metadata: {name: n}\n  spec: {id: x}\n".into(), "t.yaml: document 1: items[0].spec.id: invalid type: string \"x\", expected u32"),
        // spec before kind: buffered, so only "spec" is named.
        ("spec: {id: x}\napiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: n}\n".into(), "t.yaml: document 1: spec: invalid type: string \"x\", expected u32"),
        ("just text\n".into(), "t.yaml: document 1: invalid type: string \"just text\", expected an object"),
        ("a: [1\n".into(), "t.yaml: document 1: "),
    ];
    for (text, want) in cases {
        let got = err_text(&text);
        assert!(got.contains(want), "\n got: {got}\nwant: {want}\n{text}");
    }
}
