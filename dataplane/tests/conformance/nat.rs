//! Virtual IPs, NAT and neighbour NAT.

use crate::common::*;

#[tokio::test]
async fn vip_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    let mk = vip_req;
    let get = |id: &str| GetVipRequest {
        interface_id: id.into(),
    };
    let del = |id: &str| DeleteVipRequest {
        interface_id: id.into(),
    };

    let r = ok(c.create_vip(mk("vm1", "45.0.0.1")).await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_vip(get("vm1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(g.vip_ip, Some(ip4("45.0.0.1")));
    assert_eq!(g.underlay_route, r.underlay_route);
    assert_eq!(
        svc(c.create_vip(mk("vm1", "45.0.0.2")).await),
        343,
        "second VIP"
    );
    assert_eq!(
        svc(c.create_vip(mk("vm2", "2001:db8::1")).await),
        204,
        "IPv6"
    );
    assert_eq!(svc(c.create_vip(mk("nope", "45.0.0.3")).await), 205);
    assert_eq!(svc(c.get_vip(get("vm2")).await), 341, "no VIP");
    assert_eq!(svc(c.get_vip(get("nope")).await), 205);
    // A VIP equal to an existing NAT IP of the VNI.
    ok(c.create_nat(nat_req("vm2", "46.0.0.1", 1000, 2000)).await);
    create_iface(c, "vm3", 100, "10.0.0.3", "net_tap4").await;
    assert_eq!(svc(c.create_vip(mk("vm3", "46.0.0.1")).await), 323);
    assert_eq!(
        svc(c.create_vip(mk("vm3", "45.0.0.1")).await),
        323,
        "another interface's VIP"
    );

    assert_eq!(svc(c.delete_vip(del("vm1")).await), 0);
    assert_eq!(svc(c.get_vip(get("vm1")).await), 341);
    assert_eq!(svc(c.delete_vip(del("vm1")).await), 341, "double delete");
    assert_eq!(svc(c.delete_vip(del("nope")).await), 205);
    assert_eq!(
        svc(c.create_vip(mk("vm1", "45.0.0.1")).await),
        0,
        "re-create"
    );
    assert_invalid(c.create_vip(mk("vm1", "45.0.0")).await, "vip_ip.address");
    assert_invalid(
        c.create_vip(CreateVipRequest {
            interface_id: "vm1".into(),
            ..Default::default()
        })
        .await,
        "vip_ip",
    );
}

pub(crate) async fn local_nats(c: &mut Client, nat_ip: &str) -> (u32, Vec<String>) {
    let r = ok(c
        .list_local_nats(ListLocalNatsRequest {
            nat_ip: Some(ip(nat_ip)),
        })
        .await);
    (
        code(&r.status),
        r.nat_entries
            .iter()
            .map(|e| {
                format!(
                    "{} {} [{},{}) vni {}",
                    text(&e.nat_ip.as_ref().unwrap().address),
                    text(&e.actual_nat_ip.as_ref().unwrap().address),
                    e.min_port,
                    e.max_port,
                    e.vni
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn nat_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    create_iface(c, "vm2", 100, "10.0.0.2", "net_tap3").await;
    create_iface(c, "vm3", 100, "10.0.0.3", "net_tap4").await;

    let mk = nat_req;
    let r = ok(c.create_nat(mk("vm1", "50.0.0.1", 0, 1024)).await);
    assert_eq!(code(&r.status), 0);
    let g = ok(c.get_nat(get_nat_req("vm1")).await);
    assert_eq!(code(&g.status), 0);
    assert_eq!(
        (g.nat_ip, g.min_port, g.max_port),
        (Some(ip4("50.0.0.1")), 0, 1024)
    );
    assert_eq!(g.underlay_route, r.underlay_route);
    assert_eq!(
        svc(c.create_nat(mk("vm1", "50.0.0.9", 0, 10)).await),
        343,
        "second NAT"
    );
    // Half-open slices: [1024, 2048) touches [0, 1024) without overlapping; shared NAT IP.
    assert_eq!(
        svc(c.create_nat(mk("vm2", "50.0.0.1", 1024, 2048)).await),
        0
    );
    assert_eq!(
        svc(c.create_nat(mk("vm3", "50.0.0.1", 2000, 3000)).await),
        202,
        "overlapping slice"
    );
    assert_eq!(
        svc(c.create_nat(mk("vm3", "2001:db8::1", 0, 10)).await),
        204
    );
    assert_eq!(
        svc(c.create_nat(mk("nope", "50.0.0.1", 5000, 6000)).await),
        205
    );
    // A NAT IP equal to a VIP of the VNI.
    ok(c.create_vip(vip_req("vm3", "51.0.0.1")).await);
    assert_eq!(svc(c.create_nat(mk("vm3", "51.0.0.1", 0, 10)).await), 323);

    assert_eq!(
        local_nats(c, "50.0.0.1").await,
        (
            0,
            vec![
                "10.0.0.1 50.0.0.1 [0,1024) vni 100".to_string(),
                "10.0.0.2 50.0.0.1 [1024,2048) vni 100".to_string()
            ]
        )
    );
    ok(c.create_nat(mk("vm3", "52.0.0.1", 100, 200)).await);
    assert_eq!(
        local_nats(c, "0.0.0.0").await.1.len(),
        3,
        "0.0.0.0 lists every NAT"
    );
    assert_eq!(local_nats(c, "9.9.9.9").await, (0, vec![]));
    assert_eq!(local_nats(c, "::").await.0, 204);
    assert_invalid(
        c.list_local_nats(ListLocalNatsRequest {
            nat_ip: Some(ip4("")),
        })
        .await,
        "nat_ip.address",
    );

    assert_eq!(svc(c.delete_nat(del_nat_req("vm1")).await), 0);
    assert_eq!(svc(c.get_nat(get_nat_req("vm1")).await), 341);
    assert_eq!(svc(c.delete_nat(del_nat_req("vm1")).await), 341);
    assert_eq!(svc(c.delete_nat(del_nat_req("nope")).await), 205);
    assert_eq!(
        svc(c.create_nat(mk("vm1", "50.0.0.1", 0, 1024)).await),
        0,
        "re-create"
    );

    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 10, 10)).await,
        "max_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 20, 10)).await,
        "max_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 70000, 70001)).await,
        "min_port",
    );
    assert_invalid(
        c.create_nat(mk("vm1", "50.0.0.1", 0, 65536)).await,
        "max_port",
    );
}

#[tokio::test]
async fn neighbor_nat_contract() {
    let mut f = started().await;
    let c = &mut f.client;
    let mk = |a: &str, vni: u32, lo: u32, hi: u32| CreateNeighborNatRequest {
        nat_ip: Some(ip(a)),
        vni,
        min_port: lo,
        max_port: hi,
        underlay_route: b"fc00:2::77".to_vec(),
    };
    let del = |a: &str, vni: u32, lo: u32, hi: u32| DeleteNeighborNatRequest {
        nat_ip: Some(ip(a)),
        vni,
        min_port: lo,
        max_port: hi,
    };
    let list = |a: &str| ListNeighborNatsRequest {
        nat_ip: Some(ip(a)),
    };

    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        0
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        202,
        "duplicate"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1999, 2500)).await),
        202,
        "overlap"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 500, 1001)).await),
        202,
        "overlap below"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 2000, 3000)).await),
        0,
        "adjacent, half-open"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 200, 1000, 2000)).await),
        0,
        "other VNI"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.2", 100, 1000, 2000)).await),
        0,
        "other IP"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("2001:db8::1", 100, 1, 2)).await),
        204
    );
    // A local NAT slice overlapping a neighbour's slice of the same IP.
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(
        svc(c.create_nat(nat_req("vm1", "60.0.0.1", 2500, 2600)).await),
        202
    );

    let l = ok(c.list_neighbor_nats(list("60.0.0.1")).await);
    assert_eq!(code(&l.status), 0);
    assert_eq!(l.nat_entries.len(), 3);
    assert!(l.nat_entries.iter().all(
        |e| text(&e.underlay_route) == "fc00:2::77" && e.actual_nat_ip == Some(ip4("60.0.0.1"))
    ));
    assert_eq!(
        ok(c.list_neighbor_nats(list("0.0.0.0")).await)
            .nat_entries
            .len(),
        4
    );
    assert_invalid(
        c.list_neighbor_nats(ListNeighborNatsRequest {
            nat_ip: Some(ip4("")),
        })
        .await,
        "nat_ip.address",
    );

    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 2000))
            .await),
        0
    );
    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 2000))
            .await),
        201
    );
    assert_eq!(
        svc(c
            .delete_neighbor_nat(del("60.0.0.1", 100, 1000, 1500))
            .await),
        201,
        "exact slice only"
    );
    assert_eq!(
        svc(c.create_neighbor_nat(mk("60.0.0.1", 100, 1000, 2000)).await),
        0,
        "re-create"
    );
    let mut bad = mk("60.0.0.9", 100, 1, 2);
    bad.underlay_route = b"10.0.0.1".to_vec();
    assert_invalid(c.create_neighbor_nat(bad).await, "underlay_route");
    assert_invalid(
        c.create_neighbor_nat(mk("60.0.0.9", 100, 2, 2)).await,
        "max_port",
    );
}
