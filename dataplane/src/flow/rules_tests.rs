//! Tests of rule compilation and evaluation, and a model comparison over random rules.

use std::net::IpAddr;

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;
use proptest::prelude::*;

use super::*;

fn prefix(s: &str) -> pb::Prefix {
    let net: IpNet = s.parse().expect("test value");
    pb::Prefix {
        ip: Some(pb::IpAddress {
            ipver: if net.addr().is_ipv4() {
                pb::IpVersion::Ipv4 as i32
            } else {
                pb::IpVersion::Ipv6 as i32
            },
            address: net.addr().to_string().into_bytes(),
        }),
        length: u32::from(net.prefix_len()),
        underlay_route: Vec::new(),
    }
}

pub(crate) fn rule(
    id: &str,
    dir: pb::TrafficDirection,
    src: &str,
    dst: &str,
    filter: Option<pb::protocol_filter::Filter>,
) -> pb::FirewallRule {
    pb::FirewallRule {
        id: id.as_bytes().to_vec(),
        direction: dir as i32,
        action: pb::FirewallAction::Accept as i32,
        priority: 1000,
        source_prefix: Some(prefix(src)),
        destination_prefix: Some(prefix(dst)),
        protocol_filter: filter.map(|f| pb::ProtocolFilter { filter: Some(f) }),
    }
}

pub(crate) fn tcp(sl: i32, su: i32, dl: i32, du: i32) -> Option<pb::protocol_filter::Filter> {
    Some(pb::protocol_filter::Filter::Tcp(pb::TcpFilter {
        src_port_lower: sl,
        src_port_upper: su,
        dst_port_lower: dl,
        dst_port_upper: du,
    }))
}

fn udp(sl: i32, su: i32, dl: i32, du: i32) -> Option<pb::protocol_filter::Filter> {
    Some(pb::protocol_filter::Filter::Udp(pb::UdpFilter {
        src_port_lower: sl,
        src_port_upper: su,
        dst_port_lower: dl,
        dst_port_upper: du,
    }))
}

fn icmp(t: i32, c: i32) -> Option<pb::protocol_filter::Filter> {
    Some(pb::protocol_filter::Filter::Icmp(pb::IcmpFilter {
        icmp_type: t,
        icmp_code: c,
    }))
}

const IN: pb::TrafficDirection = pb::TrafficDirection::Ingress;
const OUT: pb::TrafficDirection = pb::TrafficDirection::Egress;

fn key(src: &str, dst: &str, l4: L4) -> FlowKey {
    FlowKey {
        iface: IfaceIndex(1),
        vni: 100,
        src: src.parse().expect("test value"),
        dst: dst.parse().expect("test value"),
        l4,
    }
}

fn tcp_key(src: &str, dst: &str, sp: u16, dp: u16) -> FlowKey {
    key(
        src,
        dst,
        L4::Tcp {
            src_port: sp,
            dst_port: dp,
        },
    )
}

fn set(rules: &[pb::FirewallRule]) -> RuleSet {
    RuleSet::compile(rules).expect("test value")
}

const ACCEPT_0: Verdict = Verdict::Accept { rule: Some(0) };

#[test]
fn no_rules_deny_ingress_and_allow_egress() {
    let s = RuleSet::empty();
    let k = tcp_key("10.0.0.2", "10.0.0.1", 1000, 80);
    assert_eq!(s.evaluate(Direction::Ingress, &k), Verdict::Deny);
    assert_eq!(
        s.evaluate(Direction::Egress, &k),
        Verdict::Accept { rule: None }
    );
}

#[test]
fn first_egress_rule_closes_egress() {
    let s = set(&[rule("out-dns", OUT, "0.0.0.0/0", "10.0.0.53/32", None)]);
    let to_dns = tcp_key("10.0.0.1", "10.0.0.53", 1000, 53);
    let elsewhere = tcp_key("10.0.0.1", "10.0.0.9", 1000, 53);
    assert_eq!(s.evaluate(Direction::Egress, &to_dns), ACCEPT_0);
    assert_eq!(s.evaluate(Direction::Egress, &elsewhere), Verdict::Deny);
    // An egress rule opens nothing for ingress.
    assert_eq!(s.evaluate(Direction::Ingress, &to_dns), Verdict::Deny);
}

#[test]
fn ingress_rule_does_not_close_egress() {
    let s = set(&[rule("in-all", IN, "0.0.0.0/0", "0.0.0.0/0", None)]);
    let k = tcp_key("10.0.0.1", "10.0.0.9", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &k), ACCEPT_0);
    assert_eq!(
        s.evaluate(Direction::Egress, &k),
        Verdict::Accept { rule: None }
    );
}

#[test]
fn source_and_destination_prefixes() {
    let s = set(&[rule("r", IN, "192.168.0.0/16", "10.0.0.1/32", None)]);
    let ok = tcp_key("192.168.7.7", "10.0.0.1", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &ok), ACCEPT_0);
    let bad_src = tcp_key("192.169.0.1", "10.0.0.1", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &bad_src), Verdict::Deny);
    let bad_dst = tcp_key("192.168.0.1", "10.0.0.2", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &bad_dst), Verdict::Deny);
}

#[test]
fn prefixes_match_their_own_family_only() {
    let s = set(&[rule("v4", IN, "0.0.0.0/0", "0.0.0.0/0", None)]);
    let v6 = tcp_key("fd00::2", "fd00::1", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &v6), Verdict::Deny);
    let s = set(&[rule("v6", IN, "fd00::/64", "::/0", None)]);
    assert_eq!(s.evaluate(Direction::Ingress, &v6), ACCEPT_0);
    let v4 = tcp_key("10.0.0.2", "10.0.0.1", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &v4), Verdict::Deny);
    let other_net = tcp_key("fd00:1::2", "fd00::1", 1, 2);
    assert_eq!(s.evaluate(Direction::Ingress, &other_net), Verdict::Deny);
}

#[test]
fn tcp_port_ranges() {
    let s = set(&[rule(
        "web",
        IN,
        "0.0.0.0/0",
        "0.0.0.0/0",
        tcp(-1, -1, 80, 443),
    )]);
    for (port, ok) in [
        (79, false),
        (80, true),
        (200, true),
        (443, true),
        (444, false),
    ] {
        let k = tcp_key("10.0.0.2", "10.0.0.1", 5000, port);
        assert_eq!(
            s.evaluate(Direction::Ingress, &k).is_accept(),
            ok,
            "port {port}"
        );
    }
    let s = set(&[rule(
        "src",
        IN,
        "0.0.0.0/0",
        "0.0.0.0/0",
        tcp(1000, 1000, -1, -1),
    )]);
    assert!(
        s.evaluate(
            Direction::Ingress,
            &tcp_key("10.0.0.2", "10.0.0.1", 1000, 1)
        )
        .is_accept()
    );
    assert!(
        !s.evaluate(
            Direction::Ingress,
            &tcp_key("10.0.0.2", "10.0.0.1", 1001, 1)
        )
        .is_accept()
    );
    // A lower bound of -1 is "any" whatever the upper bound.
    let s = set(&[rule("any", IN, "0.0.0.0/0", "0.0.0.0/0", tcp(-1, 5, -1, 5))]);
    assert!(
        s.evaluate(
            Direction::Ingress,
            &tcp_key("10.0.0.2", "10.0.0.1", 9000, 9000)
        )
        .is_accept()
    );
}

#[test]
fn protocol_filters_match_their_protocol_only() {
    let s = set(&[rule(
        "udp",
        IN,
        "0.0.0.0/0",
        "0.0.0.0/0",
        udp(-1, -1, 53, 53),
    )]);
    let u = key(
        "10.0.0.2",
        "10.0.0.1",
        L4::Udp {
            src_port: 9,
            dst_port: 53,
        },
    );
    assert_eq!(s.evaluate(Direction::Ingress, &u), ACCEPT_0);
    let t = tcp_key("10.0.0.2", "10.0.0.1", 9, 53);
    assert_eq!(s.evaluate(Direction::Ingress, &t), Verdict::Deny);
    let other = key("10.0.0.2", "10.0.0.1", L4::Other(47));
    assert_eq!(s.evaluate(Direction::Ingress, &other), Verdict::Deny);
    // No filter: every protocol.
    let s = set(&[rule("all", IN, "0.0.0.0/0", "0.0.0.0/0", None)]);
    assert_eq!(s.evaluate(Direction::Ingress, &other), ACCEPT_0);
}

#[test]
fn icmp_type_and_code() {
    let echo = |t: u8, c: u8| {
        key(
            "10.0.0.2",
            "10.0.0.1",
            L4::Icmp {
                icmp_type: t,
                code: c,
                id: 1,
            },
        )
    };
    let s = set(&[rule("ping", IN, "0.0.0.0/0", "0.0.0.0/0", icmp(8, -1))]);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(8, 0)), ACCEPT_0);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(8, 3)), ACCEPT_0);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(3, 0)), Verdict::Deny);
    let s = set(&[rule("unreach", IN, "0.0.0.0/0", "0.0.0.0/0", icmp(3, 4))]);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(3, 4)), ACCEPT_0);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(3, 3)), Verdict::Deny);
    let s = set(&[rule("any", IN, "0.0.0.0/0", "0.0.0.0/0", icmp(-1, -1))]);
    assert_eq!(s.evaluate(Direction::Ingress, &echo(42, 7)), ACCEPT_0);
    assert_eq!(
        s.evaluate(Direction::Ingress, &tcp_key("10.0.0.2", "10.0.0.1", 1, 2)),
        Verdict::Deny
    );
}

#[test]
fn icmp_rules_match_icmpv6() {
    let s = set(&[rule("ping6", IN, "::/0", "::/0", icmp(128, -1))]);
    let k = key(
        "fd00::2",
        "fd00::1",
        L4::Icmp {
            icmp_type: 128,
            code: 0,
            id: 9,
        },
    );
    assert_eq!(s.evaluate(Direction::Ingress, &k), ACCEPT_0);
}

#[test]
fn first_match_in_insertion_order_ignoring_priority() {
    let mut low = rule("b-late", IN, "10.0.0.0/8", "0.0.0.0/0", None);
    low.priority = 1;
    let mut high = rule("a-early", IN, "10.0.0.2/32", "0.0.0.0/0", None);
    high.priority = 65535;
    let s = set(&[
        rule("out", OUT, "0.0.0.0/0", "0.0.0.0/0", None),
        high.clone(),
        low.clone(),
    ]);
    let k = tcp_key("10.0.0.2", "10.0.0.1", 1, 2);
    assert_eq!(
        s.evaluate(Direction::Ingress, &k),
        Verdict::Accept { rule: Some(1) }
    );
    assert_eq!(s.rule_id(1), Some("a-early"));
    assert_eq!(s.priority(1), Some(65535));
    let s = set(&[low, high]);
    assert_eq!(s.evaluate(Direction::Ingress, &k), ACCEPT_0);
    assert_eq!(s.rule_id(0), Some("b-late"));
    assert_eq!(s.len(), 2);
}

#[test]
fn bad_rules_name_the_field() {
    let mut r = rule("r", IN, "10.0.0.0/8", "0.0.0.0/0", None);
    r.source_prefix = Some(pb::Prefix {
        length: 33,
        ..prefix("10.0.0.0/8")
    });
    let ok = rule("ok", IN, "0.0.0.0/0", "0.0.0.0/0", None);
    let err = RuleSet::compile(&[ok.clone(), r]).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "rules[1].source_prefix.length: must be 0 to 32 for IPv4"
    );
    let bad_port = rule("p", IN, "0.0.0.0/0", "0.0.0.0/0", tcp(-1, -1, 90, 80));
    assert_eq!(
        RuleSet::compile(&[bad_port])
            .expect_err("must fail")
            .to_string(),
        "rules[0].protocol_filter.tcp.dst_port_upper: must not be below dst_port_lower"
    );
    let bad_icmp = rule("i", IN, "0.0.0.0/0", "0.0.0.0/0", icmp(256, 0));
    assert_eq!(
        RuleSet::compile(&[bad_icmp])
            .expect_err("must fail")
            .to_string(),
        "rules[0].protocol_filter.icmp.icmp_type: must be -1 (any) or 0 to 255"
    );
    let mut drop = ok.clone();
    drop.action = pb::FirewallAction::Drop as i32;
    assert_eq!(
        RuleSet::compile(&[drop]).expect_err("must fail"),
        RuleError::DropAction { index: 0 }
    );
    let mut dir = ok.clone();
    dir.direction = 9;
    assert_eq!(
        RuleSet::compile(&[dir]).expect_err("must fail").to_string(),
        "rules[0].direction: unknown value 9"
    );
    let mut id = ok;
    id.id = b"no spaces".to_vec();
    assert!(
        RuleSet::compile(&[id])
            .expect_err("must fail")
            .to_string()
            .starts_with("rules[0].id: ")
    );
}

#[test]
fn registry_generations_are_fresh() {
    let mut sets = RuleSets::new();
    let a = IfaceIndex(1);
    assert_eq!(sets.get(a).generation(), 0);
    let g1 = sets
        .update(a, &[rule("r", IN, "0.0.0.0/0", "0.0.0.0/0", None)])
        .expect("test value");
    let g2 = sets.update(IfaceIndex(2), &[]).expect("test value");
    let g3 = sets.update(a, &[]).expect("test value");
    assert!(g1 > 0 && g2 > g1 && g3 > g2);
    assert_eq!(sets.get(a).generation(), g3);
    assert!(
        sets.update(a, &[rule("r", IN, "0.0.0.0/0", "0.0.0.0/0", icmp(300, 0))])
            .is_err()
    );
    assert_eq!(
        sets.get(a).generation(),
        g3,
        "a failed update changes nothing"
    );
    sets.remove(a);
    assert_eq!(sets.get(a).generation(), 0);
    assert!(sets.get(a).is_empty());
}

// ---- model comparison ----

/// A rule in the model's own terms, straight from the wire values.
#[derive(Debug, Clone)]
struct ModelRule {
    ingress: bool,
    src: IpNet,
    dst: IpNet,
    /// 0 any, 1 TCP, 2 UDP, 3 ICMP; then four port bounds or type and code.
    proto: u8,
    a: i32,
    b: i32,
    c: i32,
    d: i32,
}

fn ports_ok(lo: i32, hi: i32, port: u16) -> bool {
    lo == -1 || (lo..=hi).contains(&i32::from(port))
}

fn model_matches(r: &ModelRule, k: &FlowKey) -> bool {
    if !r.src.contains(&k.src) || !r.dst.contains(&k.dst) {
        return false;
    }
    match (r.proto, k.l4) {
        (0, _) => true,
        (1, L4::Tcp { src_port, dst_port }) | (2, L4::Udp { src_port, dst_port }) => {
            ports_ok(r.a, r.b, src_port) && ports_ok(r.c, r.d, dst_port)
        }
        (
            3,
            L4::Icmp {
                icmp_type, code, ..
            },
        ) => (r.a == -1 || r.a == i32::from(icmp_type)) && (r.b == -1 || r.b == i32::from(code)),
        _ => false,
    }
}

fn model_evaluate(rules: &[ModelRule], dir: Direction, k: &FlowKey) -> Verdict {
    let ingress = dir == Direction::Ingress;
    let mut any_in_dir = false;
    for (i, r) in rules.iter().enumerate() {
        if r.ingress != ingress {
            continue;
        }
        any_in_dir = true;
        if model_matches(r, k) {
            return Verdict::Accept {
                rule: Some(i as u32),
            };
        }
    }
    if !ingress && !any_in_dir {
        Verdict::Accept { rule: None }
    } else {
        Verdict::Deny
    }
}

fn to_pb(i: usize, r: &ModelRule) -> pb::FirewallRule {
    use pb::protocol_filter::Filter;
    let filter = match r.proto {
        1 => tcp(r.a, r.b, r.c, r.d),
        2 => udp(r.a, r.b, r.c, r.d),
        3 => Some(Filter::Icmp(pb::IcmpFilter {
            icmp_type: r.a,
            icmp_code: r.b,
        })),
        _ => None,
    };
    rule(
        &format!("r{i}"),
        if r.ingress { IN } else { OUT },
        &r.src.to_string(),
        &r.dst.to_string(),
        filter,
    )
}

/// Addresses from a small pool so that random prefixes and keys often meet.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::from([10, 0, a, b])),
        (0u16..4, 0u16..4).prop_map(|(a, b)| IpAddr::from([0xfd00, 0, 0, a, 0, 0, 0, b])),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (addr(), 0u8..=128).prop_map(|(a, len)| {
        let max = if a.is_ipv4() { 32 } else { 128 };
        let len = if a.is_ipv4() { len % 33 } else { len }.min(max);
        IpNet::new(a, len).expect("test value").trunc()
    })
}

fn port_bounds() -> impl Strategy<Value = (i32, i32)> {
    prop_oneof![
        Just((-1, -1)),
        (-1i32..4).prop_flat_map(|lo| (Just(lo), lo.max(0)..6)),
    ]
}

fn model_rule() -> impl Strategy<Value = ModelRule> {
    (
        any::<bool>(),
        net(),
        net(),
        0u8..4,
        port_bounds(),
        port_bounds(),
        -1i32..3,
        -1i32..3,
    )
        .prop_map(|(ingress, src, dst, proto, (a, b), (c, d), t, code)| {
            let (a, b) = if proto == 3 { (t, code) } else { (a, b) };
            ModelRule {
                ingress,
                src,
                dst,
                proto,
                a,
                b,
                c,
                d,
            }
        })
}

fn flow_key() -> impl Strategy<Value = FlowKey> {
    let l4 = prop_oneof![
        (0u16..6, 0u16..6).prop_map(|(s, d)| L4::Tcp {
            src_port: s,
            dst_port: d
        }),
        (0u16..6, 0u16..6).prop_map(|(s, d)| L4::Udp {
            src_port: s,
            dst_port: d
        }),
        (0u8..3, 0u8..3).prop_map(|(t, c)| L4::Icmp {
            icmp_type: t,
            code: c,
            id: 0
        }),
        Just(L4::Other(47)),
    ];
    (addr(), addr(), l4).prop_map(|(src, dst, l4)| FlowKey {
        iface: IfaceIndex(1),
        vni: 1,
        src,
        dst,
        l4,
    })
}

proptest! {
    #[test]
    fn evaluate_agrees_with_the_model(
        rules in proptest::collection::vec(model_rule(), 0..8),
        keys in proptest::collection::vec(flow_key(), 1..16),
    ) {
        let wire: Vec<_> = rules.iter().enumerate().map(|(i, r)| to_pb(i, r)).collect();
        let compiled = RuleSet::compile(&wire).expect("test value");
        for k in &keys {
            for dir in [Direction::Ingress, Direction::Egress] {
                prop_assert_eq!(compiled.evaluate(dir, k), model_evaluate(&rules, dir, k));
            }
        }
    }
}
