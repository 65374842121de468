//! Load balancers and their targets.

use crate::common::*;

pub(crate) fn lb_req(
    id: &str,
    vni: u32,
    addr: &str,
    ports: &[(u32, Protocol)],
) -> CreateLoadBalancerRequest {
    CreateLoadBalancerRequest {
        loadbalancer_id: id.into(),
        loadbalanced_ip: Some(ip(addr)),
        vni,
        loadbalanced_ports: ports
            .iter()
            .map(|(p, pr)| LbPort {
                port: *p,
                protocol: *pr as i32,
            })
            .collect(),
        preferred_underlay_route: vec![],
    }
}

#[tokio::test]
async fn load_balancer_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    let ports = [
        (80, Protocol::Tcp),
        (80, Protocol::Udp),
        (443, Protocol::Tcp),
    ];
    let r = ok(c
        .create_load_balancer(lb_req("lb1", 100, "70.0.0.1", &ports))
        .await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_load_balancer(get_lb_req("lb1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(
        (g.vni, g.loadbalanced_ip.clone(), g.underlay_route.clone()),
        (100, Some(ip4("70.0.0.1")), r.underlay_route.clone())
    );
    assert_eq!(
        g.loadbalanced_ports,
        lb_req("x", 0, "1.1.1.1", &ports).loadbalanced_ports
    );
    let l = ok(c.list_load_balancers(ListLoadBalancersRequest {}).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(l.loadbalancers.len(), 1);
    assert_eq!(
        (
            text(&l.loadbalancers[0].id).as_str(),
            l.loadbalancers[0].ports.len()
        ),
        ("lb1", 3)
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb1", 100, "70.0.0.2", &[]))
            .await),
        202,
        "duplicate id"
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb2", 100, "2001:db8::70", &[(53, Protocol::Udp)]))
            .await),
        0,
        "IPv6 LB"
    );

    // Port rules.
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(8, Protocol::Icmp)]))
            .await,
        "loadbalanced_ports.protocol",
    );
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(8, Protocol::Sctp)]))
            .await,
        "loadbalanced_ports.protocol",
    );
    assert_invalid(
        c.create_load_balancer(lb_req(
            "lb3",
            100,
            "70.0.0.3",
            &[(80, Protocol::Tcp), (80, Protocol::Tcp)],
        ))
        .await,
        "loadbalanced_ports",
    );
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &[(65536, Protocol::Tcp)]))
            .await,
        "loadbalanced_ports.port",
    );
    let fifteen: Vec<(u32, Protocol)> = (1..=15).map(|p| (p, Protocol::Tcp)).collect();
    let sixteen: Vec<(u32, Protocol)> = (1..=16).map(|p| (p, Protocol::Tcp)).collect();
    assert_invalid(
        c.create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &sixteen))
            .await,
        "loadbalanced_ports",
    );
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb3", 100, "70.0.0.3", &fifteen))
            .await),
        0
    );

    // Targets.
    let tgt = |id: &str, a: &str| CreateLoadBalancerTargetRequest {
        loadbalancer_id: id.into(),
        target_ip: Some(ip(a)),
    };
    let dtgt = |id: &str, a: &str| DeleteLoadBalancerTargetRequest {
        loadbalancer_id: id.into(),
        target_ip: Some(ip(a)),
    };
    let ltgt = |id: &str| ListLoadBalancerTargetsRequest {
        loadbalancer_id: id.into(),
    };
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        0
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        202
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "10.0.0.1")).await),
        204
    );
    assert_eq!(
        svc(c
            .create_load_balancer_target(tgt("nope", "fc00:2::1"))
            .await),
        422
    );
    let lt = ok(c.list_load_balancer_targets(ltgt("lb1")).await);
    assert_eq!(
        (code(&lt.status), lt.target_ips),
        (0, vec![ip6("fc00:2::1")])
    );
    assert_eq!(svc(c.list_load_balancer_targets(ltgt("nope")).await), 422);
    for n in 2..=64 {
        assert_eq!(
            svc(c
                .create_load_balancer_target(tgt("lb1", &format!("fc00:2::{n:x}")))
                .await),
            0
        );
    }
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:3::1")).await),
        209,
        "more than 64 targets"
    );
    ok(c.create_load_balancer_target(tgt("lb2", "fc00:4::1")).await);
    assert_eq!(
        ok(c.list_load_balancer_targets(ltgt("")).await)
            .target_ips
            .len(),
        65,
        "empty id lists all"
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("lb1", "fc00:2::1"))
            .await),
        0
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("lb1", "fc00:2::1"))
            .await),
        421
    );
    assert_eq!(
        svc(c
            .delete_load_balancer_target(dtgt("nope", "fc00:2::1"))
            .await),
        422
    );
    assert_eq!(
        svc(c.create_load_balancer_target(tgt("lb1", "fc00:2::1")).await),
        0,
        "re-create"
    );

    // Delete, get after delete, double delete, re-create.
    assert_eq!(svc(c.delete_load_balancer(del_lb_req("lb1")).await), 0);
    assert_eq!(svc(c.get_load_balancer(get_lb_req("lb1")).await), 201);
    assert_eq!(svc(c.delete_load_balancer(del_lb_req("lb1")).await), 201);
    assert_eq!(svc(c.list_load_balancer_targets(ltgt("lb1")).await), 422);
    assert_eq!(
        svc(c
            .create_load_balancer(lb_req("lb1", 100, "70.0.0.1", &ports))
            .await),
        0
    );
    assert!(
        ok(c.list_load_balancer_targets(ltgt("lb1")).await)
            .target_ips
            .is_empty(),
        "targets went with the LB"
    );
}
