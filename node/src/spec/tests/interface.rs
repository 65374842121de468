use std::collections::BTreeSet;

use ferrinet_proto::node::v1 as pb;

use super::{Case, V4, V6, check_cases, interface_pb, interface_v4_pb, strings};
use crate::spec::{InterfaceSpec, Metering, Nat, needs_recreate, validate_interface};

fn spec(i: &mut pb::NetworkInterface) -> &mut pb::NetworkInterfaceSpec {
    i.spec.as_mut().expect("spec")
}

fn nat(i: &mut pb::NetworkInterface) -> &mut pb::NatSpec {
    spec(i).nat.as_mut().expect("nat")
}

fn valid() -> InterfaceSpec {
    validate_interface(&interface_pb(), &V6).unwrap().1
}

#[test]
fn good_interface_validates() {
    let (name, s) = validate_interface(&interface_pb(), &V6).unwrap();
    assert_eq!(name, "vm-1");
    assert_eq!(s.network, "net-1");
    assert_eq!(s.ipv4, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(s.ipv6, Some("fd00::5".parse().unwrap()));
    assert_eq!(s.virtual_ip, Some("203.0.113.5".parse().unwrap()));
    assert_eq!(
        s.nat,
        Some(Nat {
            ip: "203.0.113.9".parse().unwrap(),
            port: 1024,
            end_port: 2048
        })
    );
    let nets =
        |v: &[&str]| -> BTreeSet<ipnet::IpNet> { v.iter().map(|s| s.parse().unwrap()).collect() };
    assert_eq!(s.prefixes, nets(&["10.1.0.0/24", "fd00:1::/64"]));
    assert_eq!(s.lb_targets, nets(&["10.2.0.1/32", "10.3.0.0/30"]));
    assert_eq!(
        s.firewall.keys().collect::<Vec<_>>(),
        vec!["r0", "r1", "r2"]
    );
    assert_eq!(
        s.metering,
        Metering {
            total: 1000,
            public: 100
        }
    );
    assert_eq!(s.hostname.as_deref(), Some("vm-1.example"));
    assert_eq!(
        s.ips().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        vec!["10.0.0.5", "fd00::5"]
    );
}

#[test]
fn minimal_interfaces_validate() {
    let mut i = interface_v4_pb();
    let s = spec(&mut i);
    s.virtual_ip.clear();
    s.nat = None;
    s.prefixes.clear();
    s.load_balancer_targets.clear();
    s.firewall_rules.clear();
    s.metering_rate = None;
    s.hostname.clear();
    let (_, v) = validate_interface(&i, &V4).unwrap();
    assert_eq!(v.metering, Metering::default());
    assert_eq!((v.virtual_ip, v.nat, v.hostname), (None, None, None));

    // IPv6 only, when enabled; IPv6 first in the list is fine.
    spec(&mut i).ips = strings(&["fd00::7"]);
    assert_eq!(validate_interface(&i, &V6).unwrap().1.ipv4, None);
    spec(&mut i).ips = strings(&["fd00::7", "10.0.0.7"]);
    assert!(validate_interface(&i, &V6).is_ok());

    // total_rate 0 is unlimited, whatever public_rate is; equal rates are fine.
    spec(&mut i).metering_rate = Some(pb::MeteringRate {
        total_rate: 0,
        public_rate: 500,
    });
    assert!(validate_interface(&i, &V6).is_ok());
    spec(&mut i).metering_rate = Some(pb::MeteringRate {
        total_rate: 500,
        public_rate: 500,
    });
    assert!(validate_interface(&i, &V6).is_ok());

    // NAT slice edges: [0, 1) and [65534, 65535).
    for (port, end_port) in [(0, 1), (65534, 65535)] {
        spec(&mut i).nat = Some(pb::NatSpec {
            ip: "203.0.113.9".into(),
            port,
            end_port,
        });
        assert!(validate_interface(&i, &V6).is_ok(), "{port}..{end_port}");
    }

    // Hostname edges: 253 characters in 63-character labels; digits and hyphens inside.
    let label = "a".repeat(63);
    spec(&mut i).hostname = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(spec(&mut i).hostname.len(), 253);
    assert!(validate_interface(&i, &V6).is_ok());
    spec(&mut i).hostname = "vm-1.x9".into();
    assert!(validate_interface(&i, &V6).is_ok());
}

#[test]
fn bad_interfaces_name_the_field() {
    let cases: &[Case<pb::NetworkInterface>] = &[
        ("metadata.name", V6, |i| i.metadata = None),
        ("metadata.name", V6, |i| {
            i.metadata.as_mut().unwrap().name = "vm.1".into()
        }),
        ("spec", V6, |i| i.spec = None),
        ("spec.network", V6, |i| spec(i).network.clear()),
        ("spec.network", V6, |i| spec(i).network = "net/1".into()),
        ("spec.ips", V6, |i| spec(i).ips.clear()),
        ("spec.ips", V6, |i| spec(i).ips.push("10.0.0.6".into())),
        ("spec.ips[0]", V6, |i| spec(i).ips[0] = "nope".into()),
        ("spec.ips[0]", V6, |i| spec(i).ips[0] = "10.0.0.5/32".into()),
        ("spec.ips[0]", V6, |i| spec(i).ips[0] = "010.0.0.5".into()),
        ("spec.ips[0]", V6, |i| spec(i).ips[0] = "0.0.0.0".into()),
        ("spec.ips[1]", V6, |i| spec(i).ips[1] = "::".into()),
        ("spec.ips[1]", V6, |i| spec(i).ips[1] = "10.0.0.6".into()),
        ("spec.ips[1]", V6, |i| {
            spec(i).ips = strings(&["fd00::5", "fd00::6"])
        }),
        ("spec.ips[1]", V4, |_| {}),
        ("spec.virtual_ip", V6, |i| {
            spec(i).virtual_ip = "fd00::1".into()
        }),
        ("spec.virtual_ip", V6, |i| spec(i).virtual_ip = "x".into()),
        ("spec.virtual_ip", V6, |i| {
            spec(i).virtual_ip = "0.0.0.0".into()
        }),
        ("spec.nat.ip", V6, |i| nat(i).ip.clear()),
        ("spec.nat.ip", V6, |i| nat(i).ip = "fd00::9".into()),
        ("spec.nat.ip", V6, |i| nat(i).ip = "203.0.113.5".into()),
        ("spec.nat.port", V6, |i| nat(i).port = 70000),
        ("spec.nat.end_port", V6, |i| nat(i).end_port = 65536),
        ("spec.nat.end_port", V6, |i| nat(i).end_port = 1024),
        ("spec.nat.end_port", V6, |i| nat(i).end_port = 1000),
        ("spec.prefixes[1]", V4, |i| spec(i).ips.truncate(1)),
        ("spec.prefixes[0]", V6, |i| {
            spec(i).prefixes[0] = "10.1.0.1/24".into()
        }),
        ("spec.prefixes[0]", V6, |i| {
            spec(i).prefixes[0] = "10.1.0.0".into()
        }),
        ("spec.prefixes[0]", V6, |i| {
            spec(i).prefixes[0] = "10.1.0.0/33".into()
        }),
        ("spec.prefixes[2]", V6, |i| {
            spec(i).prefixes.push("fd00:1::/64".into())
        }),
        ("spec.load_balancer_targets[0]", V6, |i| {
            spec(i).load_balancer_targets[0] = "10.2.0.1/24".into()
        }),
        ("spec.load_balancer_targets[2]", V6, |i| {
            spec(i).load_balancer_targets.push("10.3.0.0/30".into())
        }),
        ("spec.load_balancer_targets[2]", V4, |i| {
            let s = spec(i);
            s.ips.truncate(1);
            s.prefixes.truncate(1);
            s.firewall_rules.truncate(1);
            s.load_balancer_targets.push("fd00:2::1/128".into());
        }),
        ("spec.metering_rate.total_rate", V6, |i| {
            spec(i).metering_rate = Some(pb::MeteringRate {
                total_rate: 10,
                public_rate: 100,
            })
        }),
        ("spec.hostname", V6, |i| spec(i).hostname = "a".repeat(254)),
        ("spec.hostname", V6, |i| spec(i).hostname = "a..b".into()),
        ("spec.hostname", V6, |i| spec(i).hostname = "-a".into()),
        ("spec.hostname", V6, |i| spec(i).hostname = "a-.b".into()),
        ("spec.hostname", V6, |i| spec(i).hostname = "a_b".into()),
        ("spec.hostname", V6, |i| spec(i).hostname = "a.".into()),
        ("spec.hostname", V6, |i| {
            spec(i).hostname = format!("{}.b", "a".repeat(64))
        }),
    ];
    check_cases(&interface_pb(), validate_interface, cases);
}

#[test]
fn ipv6_is_refused_when_disabled() {
    let e = validate_interface(&interface_pb(), &V4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.ips[1]: IPv6 is not enabled on this node"
    );
}

#[test]
fn recreate_only_for_identity_changes() {
    let old = valid();
    assert!(!needs_recreate(&old, &old, 23, 23));
    assert!(needs_recreate(&old, &old, 23, 24), "vni");

    let identity: [fn(&mut InterfaceSpec); 6] = [
        |s| s.ipv4 = Some("10.0.0.6".parse().unwrap()),
        |s| s.ipv4 = None,
        |s| s.ipv6 = None,
        |s| s.metering.total = 0,
        |s| s.metering.public = 1,
        |s| s.hostname = None,
    ];
    for (i, change) in identity.iter().enumerate() {
        let mut new = old.clone();
        change(&mut new);
        assert!(needs_recreate(&old, &new, 23, 23), "identity change {i}");
    }

    let in_place: [fn(&mut InterfaceSpec); 6] = [
        |s| s.virtual_ip = None,
        |s| s.nat = None,
        |s| s.prefixes.clear(),
        |s| s.lb_targets.clear(),
        |s| s.firewall.clear(),
        |s| s.network = "other-name-same-vni".into(),
    ];
    for (i, change) in in_place.iter().enumerate() {
        let mut new = old.clone();
        change(&mut new);
        assert!(!needs_recreate(&old, &new, 23, 23), "in-place change {i}");
    }
}
