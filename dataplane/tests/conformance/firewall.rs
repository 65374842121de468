//! Firewall rules.

use crate::common::*;

pub(crate) fn fw_rule(id: &str) -> FirewallRule {
    FirewallRule {
        id: id.into(),
        direction: TrafficDirection::Ingress as i32,
        action: FirewallAction::Accept as i32,
        priority: 1000,
        source_prefix: Some(pfx("0.0.0.0", 0)),
        destination_prefix: Some(pfx("10.0.0.0", 8)),
        protocol_filter: Some(ProtocolFilter {
            filter: Some(protocol_filter::Filter::Tcp(TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: 80,
                dst_port_upper: 443,
            })),
        }),
    }
}

#[tokio::test]
async fn firewall_rule_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    let mk = |id: &str, rule: FirewallRule| CreateFirewallRuleRequest {
        interface_id: id.into(),
        rule: Some(rule),
    };
    let get = |id: &str, r: &str| GetFirewallRuleRequest {
        interface_id: id.into(),
        rule_id: r.into(),
    };
    let del = |id: &str, r: &str| DeleteFirewallRuleRequest {
        interface_id: id.into(),
        rule_id: r.into(),
    };

    let r = ok(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await);
    assert_eq!(code(&r.status), 0);
    assert_eq!(r.rule_id, b"r1", "the id the client sent, not garbage");
    let g = ok(c.get_firewall_rule(get("vm1", "r1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(g.rule, Some(fw_rule("r1")));
    let mut icmp = fw_rule("r2");
    icmp.direction = TrafficDirection::Egress as i32;
    icmp.source_prefix = Some(pfx("fd00::", 64));
    icmp.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Icmp(IcmpFilter {
            icmp_type: 8,
            icmp_code: -1,
        })),
    });
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", icmp)).await), 0);
    let mut any = fw_rule("r3");
    any.protocol_filter = None;
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", any)).await), 0);
    let l = ok(c.list_firewall_rules(list_rules_req("vm1")).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(
        l.rules.iter().map(|r| text(&r.id)).collect::<Vec<_>>(),
        ["r1", "r2", "r3"]
    );

    assert_eq!(
        svc(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await),
        202,
        "duplicate id"
    );
    let mut drop = fw_rule("r4");
    drop.action = FirewallAction::Drop as i32;
    assert_eq!(svc(c.create_firewall_rule(mk("vm1", drop)).await), 441);
    assert_eq!(
        svc(c.create_firewall_rule(mk("nope", fw_rule("r4"))).await),
        205
    );
    assert_eq!(svc(c.get_firewall_rule(get("vm1", "r9")).await), 201);
    assert_eq!(svc(c.get_firewall_rule(get("nope", "r1")).await), 205);
    assert_eq!(
        svc(c.list_firewall_rules(list_rules_req("nope")).await),
        205
    );

    assert_eq!(svc(c.delete_firewall_rule(del("vm1", "r1")).await), 0);
    assert_eq!(svc(c.get_firewall_rule(get("vm1", "r1")).await), 201);
    assert_eq!(svc(c.delete_firewall_rule(del("vm1", "r1")).await), 201);
    assert_eq!(svc(c.delete_firewall_rule(del("nope", "r1")).await), 205);
    assert_eq!(
        svc(c.create_firewall_rule(mk("vm1", fw_rule("r1"))).await),
        0,
        "re-create"
    );

    // Bounds.
    let tcp = |sl: i32, su: i32, dl: i32, du: i32| {
        let mut r = fw_rule("rb");
        r.protocol_filter = Some(ProtocolFilter {
            filter: Some(protocol_filter::Filter::Tcp(TcpFilter {
                src_port_lower: sl,
                src_port_upper: su,
                dst_port_lower: dl,
                dst_port_upper: du,
            })),
        });
        r
    };
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(65536, 65536, -1, -1)))
            .await,
        "rule.protocol_filter.tcp.src_port_lower",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(-2, 5, -1, -1))).await,
        "rule.protocol_filter.tcp.src_port_lower",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", tcp(-1, -1, 443, 80)))
            .await,
        "rule.protocol_filter.tcp.dst_port_upper",
    );
    let mut udp = fw_rule("rb");
    udp.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Udp(UdpFilter {
            src_port_lower: 10,
            src_port_upper: 5,
            dst_port_lower: -1,
            dst_port_upper: -1,
        })),
    });
    assert_invalid(
        c.create_firewall_rule(mk("vm1", udp)).await,
        "rule.protocol_filter.udp.src_port_upper",
    );
    let mut icmp_bad = fw_rule("rb");
    icmp_bad.protocol_filter = Some(ProtocolFilter {
        filter: Some(protocol_filter::Filter::Icmp(IcmpFilter {
            icmp_type: 256,
            icmp_code: 0,
        })),
    });
    assert_invalid(
        c.create_firewall_rule(mk("vm1", icmp_bad)).await,
        "rule.protocol_filter.icmp.icmp_type",
    );
    let mut long = fw_rule("rb");
    long.source_prefix = Some(pfx("10.0.0.0", 33));
    assert_invalid(
        c.create_firewall_rule(mk("vm1", long)).await,
        "rule.source_prefix.length",
    );
    let mut prio = fw_rule("rb");
    prio.priority = 70000;
    assert_invalid(
        c.create_firewall_rule(mk("vm1", prio)).await,
        "rule.priority",
    );
    let mut dir = fw_rule("rb");
    dir.direction = 5;
    assert_invalid(
        c.create_firewall_rule(mk("vm1", dir)).await,
        "rule.direction",
    );
    assert_invalid(
        c.create_firewall_rule(mk("vm1", fw_rule(""))).await,
        "rule.id",
    );
    assert_invalid(
        c.create_firewall_rule(CreateFirewallRuleRequest {
            interface_id: "vm1".into(),
            rule: None,
        })
        .await,
        "rule",
    );
    assert_invalid(c.get_firewall_rule(get("vm1", "")).await, "rule_id");
}
