use std::collections::BTreeSet;

use ferrinet_proto::node::v1 as pb;

use super::{Case, V4, V6, check_cases, lb_pb};
use crate::spec::{LbKind, LbProtocol, MAX_LB_PORTS, validate_load_balancer};

fn spec(l: &mut pb::LoadBalancer) -> &mut pb::LoadBalancerSpec {
    l.spec.as_mut().expect("spec")
}

fn port(protocol: pb::Protocol, port: u32) -> pb::LoadBalancerPort {
    pb::LoadBalancerPort {
        protocol: protocol as i32,
        port,
    }
}

#[test]
fn good_load_balancer_validates() {
    let (name, s) = validate_load_balancer(&lb_pb(), &V4).unwrap();
    assert_eq!(name, "lb-1");
    assert_eq!(s.network, "net-1");
    assert_eq!(s.kind, LbKind::Public);
    assert_eq!(s.ip, "203.0.113.80".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(
        s.ports,
        BTreeSet::from([
            (LbProtocol::Tcp, 80),
            (LbProtocol::Tcp, 443),
            (LbProtocol::Udp, 443)
        ])
    );

    let mut l = lb_pb();
    spec(&mut l).r#type = pb::LoadBalancerType::Internal as i32;
    spec(&mut l).ip = "fd00::80".into();
    spec(&mut l).ports = (1..=MAX_LB_PORTS as u32)
        .map(|p| port(pb::Protocol::Udp, 65536 - p))
        .collect();
    let (_, s) = validate_load_balancer(&l, &V6).unwrap();
    assert_eq!((s.kind, s.ports.len()), (LbKind::Internal, 15));
}

#[test]
fn bad_load_balancers_name_the_field() {
    let cases: &[Case<pb::LoadBalancer>] = &[
        ("metadata.name", V6, |l| l.metadata = None),
        ("spec", V6, |l| l.spec = None),
        ("spec.network", V6, |l| spec(l).network.clear()),
        ("spec.type", V6, |l| spec(l).r#type = 0),
        ("spec.type", V6, |l| spec(l).r#type = 7),
        ("spec.ip", V6, |l| spec(l).ip.clear()),
        ("spec.ip", V6, |l| spec(l).ip = "x".into()),
        ("spec.ip", V6, |l| spec(l).ip = "0.0.0.0".into()),
        ("spec.ip", V6, |l| spec(l).ip = "10.0.0.1/32".into()),
        ("spec.ip", V4, |l| spec(l).ip = "fd00::80".into()),
        ("spec.ports", V6, |l| spec(l).ports.clear()),
        ("spec.ports", V6, |l| {
            spec(l).ports = (1..=16).map(|p| port(pb::Protocol::Tcp, p)).collect()
        }),
        ("spec.ports[1].protocol", V6, |l| {
            spec(l).ports[1] = port(pb::Protocol::Icmp, 1)
        }),
        ("spec.ports[1].protocol", V6, |l| {
            spec(l).ports[1] = port(pb::Protocol::Unspecified, 1)
        }),
        ("spec.ports[0].protocol", V6, |l| {
            spec(l).ports[0].protocol = 9
        }),
        ("spec.ports[0].port", V6, |l| spec(l).ports[0].port = 0),
        ("spec.ports[0].port", V6, |l| spec(l).ports[0].port = 65536),
        ("spec.ports[3]", V6, |l| {
            spec(l).ports.push(port(pb::Protocol::Udp, 443))
        }),
    ];
    check_cases(&lb_pb(), validate_load_balancer, cases);
}
