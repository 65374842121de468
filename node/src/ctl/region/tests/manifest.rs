//! Manifest parsing: the seeds' examples, every field, namespaces, API versions, bad documents.

use std::collections::HashMap;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use pb::object::Object as O;

use super::{entries, error, parse_in};
use crate::ctl::region::RegionKind;
use crate::ctl::region::manifest::NamespaceDefault;

fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> Option<pb::ObjectMeta> {
    Some(pb::ObjectMeta {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        ..Default::default()
    })
}

fn net_ref(name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        name: name.into(),
        namespace: String::new(),
    })
}

fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

fn only(text: &str) -> pb::Object {
    let e = entries(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].object.clone()
}

// The examples of the OpenKCM networking resources (seed 002), whose apiVersion is already one
// ferrinet accepts: verbatim.

#[test]
fn seed_openkcm_network_with_a_peering() {
    let obj = only(
        "apiVersion: networking.OpenKCM.dev/v1alpha1
kind: Network
metadata:
  name: network-sample
spec:
  peerings:
  - name: peering1
    networkRef:
      name: network-sample2
",
    );
    let want = pb::Object {
        object: Some(O::Network(pb::Network {
            metadata: meta("default", "network-sample", &[]),
            spec: Some(pb::NetworkSpec {
                peerings: vec![pb::NetworkPeering {
                    name: "peering1".into(),
                    network_ref: net_ref("network-sample2"),
                    prefixes: vec![],
                }],
                ..Default::default()
            }),
            status: None,
        })),
    };
    assert_eq!(obj, want);
}

#[test]
fn seed_openkcm_reconciled_network_is_refused_at_its_list_shaped_network_ref() {
    // The seed prints `networkRef` of the reconciled object as a list (a slip of the document:
    // it is an object in the spec above). `providerID` and `incomingPeerings` are accepted and
    // ignored; the list is refused with its path.
    let text = "apiVersion: networking.OpenKCM.dev/v1alpha1
kind: Network
metadata:
  name: network-sample
spec:
  peerings:
    - name: peering1
      networkRef:
      - name: network-sample2
  incomingPeerings:
    - name: network-sample2
  providerID: OpenKCM-net://OpenKCM-net-system/15e43205-3cfe-4b27-a29c-4ade42b94fca/11621310/292f19b4-2ff4-41e8-b324-075550340786
status:
  peerings:
  - name: peering1
    state: Ready
  state: Available
";
    let e = error(text);
    assert!(
        e.starts_with("t.yaml: document 1: spec.peerings[0].networkRef: invalid type: sequence"),
        "{e}"
    );
    // With the reference as an object, the system-set fields are ignored.
    let fixed = text.replace(
        "      - name: network-sample2",
        "        name: network-sample2",
    );
    let obj = only(&fixed);
    let Some(O::Network(n)) = obj.object else {
        panic!()
    };
    assert_eq!(
        n.spec.unwrap().peerings[0].network_ref,
        net_ref("network-sample2")
    );
    assert!(n.status.is_none());
}

#[test]
fn seed_openkcm_network_interface() {
    let obj = only(
        "apiVersion: networking.OpenKCM.dev/v1alpha1
kind: NetworkInterface
metadata:
  name: networkinterface-sample
spec:
  networkRef:
    name: network-sample
  ipFamilies:
    - IPv4
  ips:
    - value: 10.0.0.1 # internal IP
  virtualIP:
    virtualIPRef:
      name: virtualip-sample
",
    );
    let Some(O::NetworkInterface(n)) = obj.object else {
        panic!()
    };
    assert_eq!(
        n.spec.unwrap(),
        pb::NetworkInterfaceSpec {
            network_ref: net_ref("network-sample"),
            ip_families: vec!["IPv4".into()],
            ips: vec![pb::IpValue {
                value: "10.0.0.1".into()
            }],
            virtual_ip: Some(pb::VirtualIpSource {
                virtual_ip_ref: net_ref("virtualip-sample"),
                ephemeral_ip_family: String::new(),
            }),
            ..Default::default()
        }
    );
}

#[test]
fn seed_openkcm_virtual_ip_nat_gateway_and_load_balancer() {
    let objs = entries(
        "apiVersion: networking.OpenKCM.dev/v1alpha1
kind: VirtualIP
metadata:
  name: virtualip-sample
spec:
  type: Public
  ipFamily: IPv4
---
apiVersion: networking.OpenKCM.dev/v1alpha1
kind: NATGateway
metadata:
  namespace: default
  name: natgateway-sample
spec:
  type: Public
  ipFamily: IPv4
  portsPerNetworkInterface: 64
  networkRef:
    name: network-sample
---
apiVersion: networking.OpenKCM.dev/v1alpha1
kind: LoadBalancer
metadata:
  namespace: default
  name: loadbalancer-sample
spec:
  type: Public
  ipFamilies: [IPv4]
  networkRef:
    name: network-sample
  networkInterfaceSelector:
    matchLabels:
      app: web
  ports:
  - port: 80

",
    );
    let kinds: Vec<_> = objs.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            RegionKind::VirtualIp,
            RegionKind::NatGateway,
            RegionKind::LoadBalancer
        ]
    );
    assert_eq!(
        objs[0].object,
        pb::Object {
            object: Some(O::VirtualIp(pb::VirtualIp {
                metadata: meta("default", "virtualip-sample", &[]),
                spec: Some(pb::VirtualIpSpec {
                    r#type: "Public".into(),
                    ip_family: "IPv4".into()
                }),
                status: None,
            }))
        }
    );
    let Some(O::NatGateway(g)) = &objs[1].object.object else {
        panic!()
    };
    assert_eq!(
        g.spec,
        Some(pb::NatGatewaySpec {
            r#type: "Public".into(),
            ip_family: "IPv4".into(),
            ports_per_network_interface: 64,
            network_ref: net_ref("network-sample"),
        })
    );
    let Some(O::LoadBalancer(l)) = &objs[2].object.object else {
        panic!()
    };
    let s = l.spec.clone().unwrap();
    assert_eq!(s.r#type, "Public");
    assert_eq!(s.ip_families, ["IPv4"]);
    assert_eq!(s.network_ref, net_ref("network-sample"));
    assert_eq!(
        s.network_interface_selector.unwrap().match_labels,
        labels(&[("app", "web")])
    );
    assert_eq!(
        s.ports,
        [pb::LoadBalancerPort {
            protocol: String::new(),
            port: 80,
            end_port: 0
        }]
    );
}

#[test]
fn seed_openkcm_network_policy() {
    let obj = only(
        "apiVersion: networking.OpenKCM.dev/v1alpha1
kind: NetworkPolicy
metadata:
  namespace: default
  name: my-network-policy
spec:
  networkRef:
    name: my-network
  networkInterfaceSelector:
    matchLabels:
      app: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
    - objectSelector:
        kind: NetworkInterface
        matchLabels:
          app: web
    - objectSelector:
        kind: LoadBalancer
        matchLabels:
          app: web
    # Ports always have to be specified. Only traffic matching the ports
    # will be allowed.
    ports:
    - protocol: TCP
      port: 5432
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 8080
",
    );
    let Some(O::NetworkPolicy(p)) = obj.object else {
        panic!()
    };
    let s = p.spec.unwrap();
    assert_eq!(s.policy_types, ["Ingress", "Egress"]);
    let sel = |kind: &str| pb::PolicyPeer {
        ip_block: None,
        object_selector: Some(pb::ObjectSelector {
            kind: kind.into(),
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![],
        }),
    };
    let block = |cidr: &str| pb::PolicyPeer {
        ip_block: Some(pb::IpBlock {
            cidr: cidr.into(),
            except: vec![],
        }),
        object_selector: None,
    };
    let tcp = |port| pb::PolicyPort {
        protocol: "TCP".into(),
        port,
        end_port: 0,
    };
    assert_eq!(
        s.ingress,
        [pb::PolicyRule {
            peers: vec![
                block("172.17.0.0/16"),
                sel("NetworkInterface"),
                sel("LoadBalancer")
            ],
            ports: vec![tcp(5432)],
        }]
    );
    assert_eq!(
        s.egress,
        [pb::PolicyRule {
            peers: vec![block("10.0.0.0/24")],
            ports: vec![tcp(8080)],
        }]
    );
}

// OEP-1 (seed 000) and OEP-8 (seed 001), adapted only in apiVersion.

#[test]
fn seed_oep1_network_interface_and_public_prefix() {
    let objs = entries(
        "apiVersion: networking.ferrinet.dev/v1alpha1
kind: Network
metadata:
  name: my-network
spec:
  prefix: 192.168.178.0/24
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: NetworkInterface
metadata:
  name: my-nic
spec:
  targetRef:
    kind: Network
    name: my-network
status:
  prefixes: # We use prefix notation by default.
    - 192.168.178.1/32
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: PublicPrefix
metadata:
  name: my-public-prefix
spec:
  selector:
    kind: Machine
    matchLabels:
      app: web
status:
  prefixes:
    - 13.14.15.1/32
",
    );
    let Some(O::Network(n)) = &objs[0].object.object else {
        panic!()
    };
    assert_eq!(n.spec.as_ref().unwrap().prefix, "192.168.178.0/24");
    let Some(O::NetworkInterface(ni)) = &objs[1].object.object else {
        panic!()
    };
    assert_eq!(ni.spec.as_ref().unwrap().network_ref, net_ref("my-network"));
    // `Machine` is passed on: the API refuses it with its own message.
    let Some(O::PublicPrefix(pp)) = &objs[2].object.object else {
        panic!()
    };
    let s = pp.spec.clone().unwrap();
    assert_eq!(s.kind, "Machine");
    assert_eq!(s.selector.unwrap().match_labels, labels(&[("app", "web")]));
}

#[test]
fn seed_oep8_networks_without_spec_and_peering_requests() {
    let objs = entries(
        "apiVersion: networking.ferrinet.dev/v1alpha1
kind: Network
metadata:
  namespace: customer-manuel
  name: manuels-network
status:
  peeredNetworks:
    - name: mysupernetwork
      namespace: customer-andre
",
    );
    assert_eq!(
        objs[0].object,
        pb::Object {
            object: Some(O::Network(pb::Network {
                metadata: meta("customer-manuel", "manuels-network", &[]),
                spec: Some(pb::NetworkSpec::default()),
                status: None,
            }))
        }
    );
    assert_eq!(objs[0].label(), "network/customer-manuel/manuels-network");
    // ferrinet expresses peerings as `spec.peerings` of both networks.
    let e = error(
        "apiVersion: networking.ferrinet.dev/v1alpha1
kind: NetworkPeeringRequest
metadata:
  namespace: customer-manuel
  name: peer-with-andre
spec:
  localNetworkRef:
    name: manuels-network
  remoteNetworkRef:
    name: mysupernetwork
    namespace: customer-andre
",
    );
    assert!(
        e.starts_with("t.yaml: document 1: kind: \"NetworkPeeringRequest\" is not supported: use Node, Network, VirtualIP"),
        "{e}"
    );
}

/// Every field of every kind, and what it becomes.
pub const ALL_FIELDS: &str = "\
apiVersion: networking.ferrinet.dev/v1alpha1
kind: Network
metadata: {name: net-a, namespace: tenant-a, labels: {team: x}}
spec:
  prefix: 10.0.0.0/16
  vni: 4711
  subnets:
  - cidr: 10.1.0.0/24
    allocationRanges: [{start: 10.1.0.10, end: 10.1.0.99}]
    excludeAddresses: [10.1.0.50]
    gateway: 10.1.0.1
    routes: [{destination: 192.0.2.0/24, nexthop: 10.1.0.254}]
  peerings:
  - name: to-b
    networkRef: {name: net-b, namespace: tenant-b}
    prefixes: [10.1.0.0/24]
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: NetworkInterface
metadata: {name: web-1, namespace: tenant-a, labels: {app: web}}
spec:
  networkRef: {name: net-a}
  nodeName: node-1
  ipFamilies: [IPv4, IPv6]
  ips: [{value: 10.1.0.5}, {value: 'fd00::5'}]
  prefixes: [10.2.0.0/28]
  virtualIP: {ephemeral: {ipFamily: IPv4}}
  hostname: web-1
  meteringRate: {totalRate: 1000, publicRate: 100}
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: VirtualIP
metadata: {name: vip-1, namespace: tenant-a}
spec: {type: Public, ipFamily: IPv6}
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: PublicPrefix
metadata: {name: pp-1, namespace: tenant-a}
spec:
  selector:
    kind: NetworkInterface
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [front]}, {key: legacy, operator: DoesNotExist}]
  ipFamily: IPv4
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: NATGateway
metadata: {name: nat-1, namespace: tenant-a}
spec: {type: Public, ipFamily: IPv4, portsPerNetworkInterface: 1024, networkRef: {name: net-a}}
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: LoadBalancer
metadata: {name: lb-1, namespace: tenant-a}
spec:
  type: Internal
  ipFamilies: [IPv4]
  ips: [{value: 10.1.0.200}]
  networkRef: {name: net-a}
  networkInterfaceSelector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}
  ports: [{protocol: TCP, port: 443}, {protocol: UDP, port: 5000, endPort: 5010}]
  replicas: 2
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: NetworkPolicy
metadata: {name: pol-1, namespace: tenant-a}
spec:
  networkRef: {name: net-a}
  networkInterfaceSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}
    - objectSelector: {kind: LoadBalancer, matchExpressions: [{key: app, operator: Exists}]}
    ports: [{port: 5432}]
  egress:
  - to: [{ipBlock: {cidr: '::/0'}}]
    ports: [{protocol: UDP, port: 53, endPort: 54}]
---
apiVersion: networking.ferrinet.dev/v1alpha1
kind: Node
metadata: {name: node-1, labels: {rack: r1}}
spec: {underlayPrefix: 'fc00:1::/64', vfCapacity: 126}
";

#[test]
fn every_field_of_every_kind() {
    let objs = entries(ALL_FIELDS);
    assert_eq!(objs.len(), 8);
    let Some(O::Network(n)) = &objs[0].object.object else {
        panic!()
    };
    assert_eq!(n.metadata, meta("tenant-a", "net-a", &[("team", "x")]));
    assert_eq!(
        n.spec,
        Some(pb::NetworkSpec {
            subnets: vec![pb::Subnet {
                cidr: "10.1.0.0/24".into(),
                allocation_ranges: vec![pb::AddressRange {
                    start: "10.1.0.10".into(),
                    end: "10.1.0.99".into()
                }],
                exclude_addresses: vec!["10.1.0.50".into()],
                gateway: "10.1.0.1".into(),
                routes: vec![pb::HostRoute {
                    destination: "192.0.2.0/24".into(),
                    nexthop: "10.1.0.254".into()
                }],
            }],
            peerings: vec![pb::NetworkPeering {
                name: "to-b".into(),
                network_ref: Some(pb::ObjectRef {
                    name: "net-b".into(),
                    namespace: "tenant-b".into()
                }),
                prefixes: vec!["10.1.0.0/24".into()],
            }],
            prefix: "10.0.0.0/16".into(),
            vni: 4711,
        })
    );
    let Some(O::NetworkInterface(ni)) = &objs[1].object.object else {
        panic!()
    };
    assert_eq!(
        ni.spec,
        Some(pb::NetworkInterfaceSpec {
            network_ref: net_ref("net-a"),
            node_name: "node-1".into(),
            ip_families: vec!["IPv4".into(), "IPv6".into()],
            ips: vec![
                pb::IpValue {
                    value: "10.1.0.5".into()
                },
                pb::IpValue {
                    value: "fd00::5".into()
                }
            ],
            prefixes: vec!["10.2.0.0/28".into()],
            virtual_ip: Some(pb::VirtualIpSource {
                virtual_ip_ref: None,
                ephemeral_ip_family: "IPv4".into()
            }),
            hostname: "web-1".into(),
            metering_rate: Some(node_pb::MeteringRate {
                total_rate: 1000,
                public_rate: 100
            }),
        })
    );
    let Some(O::PublicPrefix(pp)) = &objs[3].object.object else {
        panic!()
    };
    let sel = pp.spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(
        sel.match_expressions,
        [
            pb::LabelRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: vec!["front".into()]
            },
            pb::LabelRequirement {
                key: "legacy".into(),
                operator: "DoesNotExist".into(),
                values: vec![]
            }
        ]
    );
    let Some(O::LoadBalancer(lb)) = &objs[5].object.object else {
        panic!()
    };
    let s = lb.spec.clone().unwrap();
    assert_eq!(s.ips[0].value, "10.1.0.200");
    assert_eq!(s.replicas, 2);
    assert_eq!(
        s.ports[1],
        pb::LoadBalancerPort {
            protocol: "UDP".into(),
            port: 5000,
            end_port: 5010
        }
    );
    let Some(O::NetworkPolicy(p)) = &objs[6].object.object else {
        panic!()
    };
    let s = p.spec.clone().unwrap();
    assert_eq!(
        s.ingress[0].peers[0].ip_block,
        Some(pb::IpBlock {
            cidr: "10.0.0.0/8".into(),
            except: vec!["10.9.0.0/16".into()]
        })
    );
    assert_eq!(s.egress[0].ports[0].end_port, 54);
    assert_eq!(
        objs[7].object,
        pb::Object {
            object: Some(O::Node(pb::Node {
                metadata: meta("", "node-1", &[("rack", "r1")]),
                spec: Some(pb::NodeSpec {
                    underlay_prefix: "fc00:1::/64".into(),
                    vf_capacity: 126
                }),
                status: None,
            }))
        }
    );
    assert_eq!(objs[7].label(), "node/node-1");
}

#[test]
fn enumerations_are_read_in_any_case_and_sent_canonically() {
    let obj = only(
        "apiVersion: networking.ferrinet.dev/v1alpha1
kind: LoadBalancer
metadata: {name: lb}
spec: {type: internal, ipFamilies: [ipv6], ports: [{protocol: udp, port: 53}]}
",
    );
    let Some(O::LoadBalancer(l)) = obj.object else {
        panic!()
    };
    let s = l.spec.unwrap();
    assert_eq!(
        (
            s.r#type.as_str(),
            s.ip_families[0].as_str(),
            s.ports[0].protocol.as_str()
        ),
        ("Internal", "IPv6", "UDP")
    );
}

#[test]
fn api_versions() {
    let doc = |v: &str| format!("apiVersion: {v}\nkind: VirtualIP\nmetadata: {{name: v}}\n");
    for ok in [
        "networking.ferrinet.dev/v1alpha1",
        "networking.OpenKCM.dev/v1alpha1",
        "networking.openkcm.dev/v1alpha1",
        "core.apinet.ironcore.dev/v1alpha1",
        "Core.APInet.IronCore.dev/v1alpha1",
    ] {
        assert_eq!(entries(&doc(ok)).len(), 1, "{ok}");
    }
    let e = error(&doc("networking.metalnet.ironcore.dev/v1alpha1"));
    assert_eq!(
        e,
        "t.yaml: document 1: apiVersion: \"networking.metalnet.ironcore.dev/v1alpha1\" is a node's manifest: drop --api to apply it to a node (ferrinetctl --node ADDR)"
    );
    assert!(error(&doc("ferrinet.dev/v1")).contains("drop --api"));
    // Also when the node's spec would be an error here, before or after the apiVersion.
    let node = "kind: Network\nmetadata: {name: a}\nspec: {id: 1}\n";
    for text in [
        format!("apiVersion: networking.metalnet.ironcore.dev/v1alpha1\n{node}"),
        format!("{node}apiVersion: networking.metalnet.ironcore.dev/v1alpha1\n"),
    ] {
        assert!(
            error(&text).contains("is a node's manifest: drop --api"),
            "{text}"
        );
    }
    let e = error(&doc("networking.ferrinet.dev/v1"));
    assert!(
        e.contains("is not supported: use networking.ferrinet.dev/v1alpha1, networking.openkcm.dev/v1alpha1, core.apinet.ironcore.dev/v1alpha1"),
        "{e}"
    );
    assert!(error(&doc("compute.onmetal.de/v1alpha1")).contains("not supported"));
}

#[test]
fn namespaces() {
    let doc = |ns: &str| {
        format!(
            "apiVersion: networking.ferrinet.dev/v1alpha1\nkind: Network\nmetadata: {{name: n{ns}}}\n"
        )
    };
    let ns_of = |e: &crate::ctl::region::manifest::Entry| e.key().namespace;
    // -n fills in what the document leaves out.
    let flag = NamespaceDefault::from_flag(Some("tenant-a"));
    assert_eq!(ns_of(&parse_in(&doc(""), &flag).unwrap()[0]), "tenant-a");
    assert_eq!(ns_of(&entries(&doc(""))[0]), "default");
    // A written namespace wins over the default, but must agree with an explicit -n.
    assert_eq!(ns_of(&entries(&doc(", namespace: b"))[0]), "b");
    let e = parse_in(&doc(", namespace: b"), &flag)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.yaml: document 1: metadata.namespace: \"b\" does not match --namespace \"tenant-a\" (give -n b or leave one out)"
    );
    assert_eq!(
        error(&doc(", namespace: Tenant_A")),
        "t.yaml: document 1: metadata.namespace: \"Tenant_A\" is not a DNS label (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)"
    );
    // Nodes have none; -n does not apply to them.
    let node =
        "apiVersion: networking.ferrinet.dev/v1alpha1\nkind: Node\nmetadata: {name: node-1}\n";
    assert_eq!(ns_of(&parse_in(node, &flag).unwrap()[0]), "");
    assert_eq!(
        error(&node.replace("name: node-1", "name: node-1, namespace: x")),
        "t.yaml: document 1: metadata.namespace: \"x\": a Node is not namespaced"
    );
}

#[test]
fn lists_and_sequences() {
    let list = "apiVersion: v1
kind: List
items:
- {apiVersion: networking.ferrinet.dev/v1alpha1, kind: VirtualIP, metadata: {name: a}}
- {apiVersion: networking.ferrinet.dev/v1alpha1, kind: VirtualIP, metadata: {name: b}, status: {ip: 1.2.3.4}}
";
    let e = entries(list);
    assert_eq!(e[1].origin, "t.yaml: document 1: items[1]");
    let seq = "[{apiVersion: networking.ferrinet.dev/v1alpha1, kind: Node, metadata: {name: n}}]";
    assert_eq!(entries(seq)[0].origin, "t.yaml: document 1: [0]");
    assert!(entries("---\n---\n").is_empty());
}
