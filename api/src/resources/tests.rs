//! Keys, kind words, metadata, and the validation of Networks and NetworkInterfaces.

#![allow(clippy::unwrap_used)]

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;

use super::*;

pub(super) fn metadata(namespace: &str, name: &str) -> Option<pb::ObjectMeta> {
    Some(pb::ObjectMeta {
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    })
}

pub(super) fn local(name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        name: name.into(),
        namespace: String::new(),
    })
}

/// The paths `validate` refuses `object` for.
pub(super) fn refused(object: O) -> Vec<String> {
    let errors = validate(&pb::Object {
        object: Some(object),
    })
    .unwrap_err();
    errors.paths().into_iter().map(String::from).collect()
}

/// The message at `path`.
pub(super) fn message(object: O, path: &str) -> String {
    let errors = validate(&pb::Object {
        object: Some(object),
    })
    .unwrap_err();
    errors
        .0
        .iter()
        .find(|e| e.path == path)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no error at {path}: {errors}"))
}

pub(super) fn accepted(object: O) -> O {
    let out = validate(&pb::Object {
        object: Some(object),
    });
    match out {
        Ok(o) => o.object.unwrap(),
        Err(e) => panic!("refused: {e}"),
    }
}

fn subnet(cidr: &str) -> pb::Subnet {
    pb::Subnet {
        cidr: cidr.into(),
        ..Default::default()
    }
}

fn network(spec: pb::NetworkSpec) -> O {
    O::Network(pb::Network {
        metadata: metadata("tenant-a", "web"),
        spec: Some(spec),
        status: None,
    })
}

fn valid_network() -> pb::NetworkSpec {
    pb::NetworkSpec {
        subnets: vec![pb::Subnet {
            cidr: "10.0.0.0/24".into(),
            allocation_ranges: vec![pb::AddressRange {
                start: "10.0.0.10".into(),
                end: "10.0.0.200".into(),
            }],
            exclude_addresses: vec!["10.0.0.50".into()],
            gateway: "10.0.0.1".into(),
            routes: vec![pb::HostRoute {
                destination: "192.168.0.0/16".into(),
                nexthop: "10.0.0.1".into(),
            }],
        }],
        peerings: vec![pb::NetworkPeering {
            name: "to-db".into(),
            network_ref: Some(pb::ObjectRef {
                name: "db".into(),
                namespace: "tenant-b".into(),
            }),
            prefixes: vec!["10.0.0.0/25".into()],
        }],
        prefix: "FD00::/64".into(),
        vni: 0,
    }
}

#[test]
fn kind_words_round_trip() {
    for kind in [
        pb::Kind::Network,
        pb::Kind::NetworkInterface,
        pb::Kind::VirtualIp,
        pb::Kind::PublicPrefix,
        pb::Kind::NatGateway,
        pb::Kind::LoadBalancer,
        pb::Kind::NetworkPolicy,
        pb::Kind::Node,
    ] {
        assert_eq!(kind_from_word(kind_word(kind)), Some(kind));
    }
    assert_eq!(kind_word(pb::Kind::NetworkInterface), "networkinterfaces");
    assert_eq!(kind_word(pb::Kind::NetworkPolicy), "networkpolicies");
    assert_eq!(kind_from_word("unspecified"), None);
    assert_eq!(kind_from_word("Networks"), None);
}

#[test]
fn keys_and_metadata() {
    let mut obj = pb::Object {
        object: Some(network(valid_network())),
    };
    assert_eq!(kind_of(&obj), Some(pb::Kind::Network));
    let key = key_of(&obj).unwrap();
    assert_eq!(key, ObjKey::new("tenant-a", "web"));
    assert_eq!(key.to_string(), "tenant-a/web");
    meta_mut(&mut obj).unwrap().resource_version = 7;
    assert_eq!(meta(&obj).unwrap().resource_version, 7);
    let empty = pb::Object::default();
    assert_eq!(kind_of(&empty), None);
    assert_eq!(key_of(&empty), None);
    assert!(ObjKey::new("a", "z") < ObjKey::new("b", "a"));
    let r = pb::ObjectRef {
        name: "n".into(),
        namespace: String::new(),
    };
    assert_eq!(ObjKey::resolve(&r, "own"), ObjKey::new("own", "n"));
}

#[test]
fn an_empty_object_is_refused() {
    let e = validate(&pb::Object::default()).unwrap_err();
    assert_eq!(e.paths(), vec!["object"]);
}

#[test]
fn a_valid_network_passes_with_canonical_text_and_its_prefix_as_given() {
    let O::Network(n) = accepted(network(valid_network())) else {
        panic!("kind changed");
    };
    let spec = n.spec.unwrap();
    assert_eq!(spec.prefix, "FD00::/64", "the prefix is kept as given");
    assert_eq!(
        spec.subnets.len(),
        1,
        "the prefix is not expanded into subnets"
    );
    assert_eq!(
        subnets(&spec).unwrap().len(),
        2,
        "prefix counts as one more subnet"
    );
}

#[test]
fn metadata_is_checked() {
    let mut n = pb::Network {
        metadata: Some(pb::ObjectMeta {
            namespace: "Tenant".into(),
            name: String::new(),
            labels: [("bad key!".to_string(), "v".to_string())].into(),
            ..Default::default()
        }),
        spec: None,
        status: None,
    };
    assert_eq!(
        refused(O::Network(n.clone())),
        vec![
            "metadata.namespace",
            "metadata.name",
            "metadata.labels[\"bad key!\"]"
        ]
    );
    n.metadata = None;
    assert_eq!(
        message(O::Network(n), "metadata.name"),
        "is required",
        "missing metadata reads as empty"
    );
}

#[test]
fn subnet_text_must_parse() {
    let mut spec = valid_network();
    spec.subnets[0].cidr = "10.0.0/24".into();
    spec.subnets.push(pb::Subnet {
        cidr: "10.1.0.0/24".into(),
        gateway: "nope".into(),
        allocation_ranges: vec![pb::AddressRange {
            start: "10.1.0.5".into(),
            end: "x".into(),
        }],
        routes: vec![pb::HostRoute {
            destination: "0.0.0.0/0".into(),
            nexthop: "y".into(),
        }],
        ..Default::default()
    });
    assert_eq!(
        refused(network(spec)),
        vec![
            "spec.subnets[0].cidr",
            "spec.subnets[1].allocationRanges[0].end",
            "spec.subnets[1].gateway",
            "spec.subnets[1].routes[0].nexthop",
        ]
    );
}

#[test]
fn subnet_rules_come_from_ipam_with_the_api_paths() {
    let mut spec = valid_network();
    spec.subnets[0].exclude_addresses = vec!["10.9.0.1".into()];
    spec.subnets.push(subnet("10.0.0.128/25"));
    spec.subnets.push(subnet("10.2.0.1/24"));
    spec.prefix = "10.0.0.0/16".into();
    let errors = validate(&pb::Object {
        object: Some(network(spec)),
    })
    .unwrap_err();
    assert_eq!(
        errors.paths(),
        vec![
            "spec.subnets[0].excludeAddresses[0]",
            "spec.subnets[1].cidr",
            "spec.subnets[2].cidr",
            "spec.prefix",
        ],
        "{errors}"
    );
    assert!(
        errors.to_string().contains("overlaps spec.subnets[0].cidr"),
        "{errors}"
    );
    assert!(errors.to_string().contains("host bits"), "{errors}");
}

#[test]
fn a_bad_subnet_does_not_shift_the_paths_of_later_ones() {
    let mut spec = valid_network();
    spec.subnets.insert(0, subnet("garbage"));
    spec.subnets.push(subnet("10.0.0.0/24"));
    assert_eq!(
        refused(network(spec)),
        vec!["spec.subnets[0].cidr", "spec.subnets[2].cidr"]
    );
}

#[test]
fn subnets_reports_parse_errors() {
    let mut spec = valid_network();
    spec.prefix = "x".into();
    assert_eq!(subnets(&spec).unwrap_err().paths(), vec!["spec.prefix"]);
}

#[test]
fn peerings_are_checked() {
    let mut spec = valid_network();
    let item = spec.peerings[0].clone();
    spec.peerings.push(item.clone());
    spec.peerings.push(pb::NetworkPeering {
        name: "Bad_Name".into(),
        network_ref: None,
        prefixes: vec!["10.0.0.1/24".into(), "z".into()],
    });
    spec.peerings.push(pb::NetworkPeering {
        name: "sub".into(),
        network_ref: local("a.b"),
        prefixes: vec![],
    });
    let errors = refused(network(spec));
    assert_eq!(
        errors,
        vec![
            "spec.peerings[2].networkRef.name",
            "spec.peerings[2].prefixes[1]",
            "spec.peerings[3].networkRef.name",
            "spec.peerings[1].name",
            "spec.peerings[2].name",
            "spec.peerings[2].prefixes[0]",
        ]
    );
}

#[test]
fn a_missing_peer_name_is_required() {
    let mut spec = valid_network();
    spec.peerings[0].network_ref = None;
    assert_eq!(
        message(network(spec), "spec.peerings[0].networkRef.name"),
        "is required"
    );
}

#[test]
fn a_fixed_vni_must_be_a_vni() {
    let mut spec = valid_network();
    spec.vni = 1 << 24;
    assert_eq!(refused(network(spec)), vec!["spec.vni"]);
    let mut spec = valid_network();
    spec.vni = 100;
    accepted(network(spec));
}

pub(super) fn valid_interface() -> pb::NetworkInterfaceSpec {
    pb::NetworkInterfaceSpec {
        network_ref: local("web"),
        node_name: "node-1".into(),
        ip_families: vec![],
        ips: vec![pb::IpValue {
            value: "FD00::5".into(),
        }],
        prefixes: vec!["10.0.0.64/26".into()],
        virtual_ip: Some(pb::VirtualIpSource {
            virtual_ip_ref: None,
            ephemeral_ip_family: "IPv4".into(),
        }),
        hostname: "web-1".into(),
        metering_rate: Some(ferrinet_proto::node::v1::MeteringRate {
            total_rate: 1000,
            public_rate: 100,
        }),
    }
}

pub(super) fn interface(spec: pb::NetworkInterfaceSpec) -> O {
    O::NetworkInterface(pb::NetworkInterface {
        metadata: metadata("tenant-a", "web-1"),
        spec: Some(spec),
        status: None,
    })
}

#[test]
fn a_valid_interface_passes_with_families_derived() {
    let O::NetworkInterface(i) = accepted(interface(valid_interface())) else {
        panic!("kind changed");
    };
    let spec = i.spec.unwrap();
    assert_eq!(spec.ip_families, vec!["IPv6"]);
    assert_eq!(spec.ips[0].value, "fd00::5", "canonical text");
    let mut spec = valid_interface();
    spec.ips.clear();
    let O::NetworkInterface(i) = accepted(interface(spec)) else {
        panic!("kind changed");
    };
    assert_eq!(i.spec.unwrap().ip_families, vec!["IPv4"], "no ips: IPv4");
}

#[test]
fn interface_addresses_follow_the_families() {
    let mut spec = valid_interface();
    spec.ip_families = vec!["IPv6".into(), "IPv6".into(), "ipv4".into()];
    spec.ips = vec![
        pb::IpValue {
            value: "fd00::1".into(),
        },
        pb::IpValue {
            value: "fd00::2".into(),
        },
        pb::IpValue {
            value: "10.0.0.1".into(),
        },
        pb::IpValue {
            value: "0.0.0.0".into(),
        },
    ];
    assert_eq!(
        refused(interface(spec)),
        vec![
            "spec.ipFamilies[1]",
            "spec.ipFamilies[2]",
            "spec.ips[1]",
            "spec.ips[2]",
            "spec.ips[3]",
        ]
    );
}

#[test]
fn interface_fields_are_checked() {
    let mut spec = valid_interface();
    spec.network_ref = Some(pb::ObjectRef {
        name: "web".into(),
        namespace: "tenant-b".into(),
    });
    spec.node_name = "Node_1".into();
    spec.prefixes = vec![
        "10.0.0.65/26".into(),
        "fd00::/64".into(),
        "fd00::/64".into(),
    ];
    spec.virtual_ip = Some(pb::VirtualIpSource {
        virtual_ip_ref: local("vip"),
        ephemeral_ip_family: "IPv4".into(),
    });
    spec.hostname = "web.example".into();
    spec.metering_rate = Some(ferrinet_proto::node::v1::MeteringRate {
        total_rate: 10,
        public_rate: 100,
    });
    assert_eq!(
        refused(interface(spec)),
        vec![
            "spec.networkRef.namespace",
            "spec.nodeName",
            "spec.prefixes[0]",
            "spec.prefixes[2]",
            "spec.virtualIp",
            "spec.hostname",
            "spec.meteringRate.totalRate",
        ]
    );
}

#[test]
fn an_interface_needs_its_network() {
    let mut spec = valid_interface();
    spec.network_ref = None;
    assert_eq!(refused(interface(spec)), vec!["spec.networkRef.name"]);
    let mut spec = valid_interface();
    spec.virtual_ip = Some(pb::VirtualIpSource {
        virtual_ip_ref: None,
        ephemeral_ip_family: "IPv5".into(),
    });
    assert_eq!(
        refused(interface(spec)),
        vec!["spec.virtualIp.ephemeralIpFamily"]
    );
}

#[test]
fn an_empty_virtual_ip_source_is_none() {
    let mut spec = valid_interface();
    spec.virtual_ip = Some(pb::VirtualIpSource::default());
    let O::NetworkInterface(i) = accepted(interface(spec)) else {
        panic!("kind changed");
    };
    assert_eq!(i.spec.unwrap().virtual_ip, None);
}

#[test]
fn errors_display_joined_with_their_paths() {
    let mut spec = valid_interface();
    spec.node_name = "A".into();
    spec.hostname = "B".into();
    let e = validate(&pb::Object {
        object: Some(interface(spec)),
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("spec.nodeName: \"A\" is not a DNS label"),
        "{text}"
    );
    assert!(text.contains("; spec.hostname: "), "{text}");
}
