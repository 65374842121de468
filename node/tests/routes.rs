//! The NetworkActor of a VNI in use: the default route towards the configured router, and stale
//! routes (present in the dataplane, provided by nobody) removed.

#![allow(clippy::unwrap_used)]

mod kit;

use std::time::Duration;

use ferrinet_node::daemon::Node;
use ferrinet_proto::dpservice::v1 as dp;
use kit::*;

async fn routes(node: &Node, vni: u32) -> Vec<(String, u32, String)> {
    let mut c = dataplane(node).await;
    let r = match c.list_routes(dp::ListRoutesRequest { vni }).await {
        Ok(r) => r.into_inner(),
        Err(_) => return Vec::new(),
    };
    let mut v: Vec<_> = r
        .routes
        .into_iter()
        .map(|r| {
            let p = r.prefix.unwrap_or_default();
            let ip =
                p.ip.map(|i| String::from_utf8_lossy(&i.address).to_string());
            (
                format!("{}/{}", ip.unwrap_or_default(), p.length),
                r.nexthop_vni,
                r.nexthop_address
                    .map(|a| String::from_utf8_lossy(&a.address).to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn until_routes(node: &Node, vni: u32, want: &[(&str, u32, &str)]) {
    let want: Vec<(String, u32, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), *b, c.to_string()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = routes(node, vni).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "routes of {vni}: got {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_route_and_stale_routes_of_a_vni_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings_extra(
        dir.path(),
        "n1",
        "embedded",
        "[routes]\nrouter_address = \"fc00:ff::1\"\n",
    );
    let node = Node::start(&s).await.unwrap();
    create(&node, network("blue", 10)).await.unwrap();
    create(&node, network("green", 20)).await.unwrap();
    create(
        &node,
        iface_object("a", interface("a", "blue", &["10.0.0.1"])),
    )
    .await
    .unwrap();
    // Only the VNI in use gets a table and its default route.
    until_routes(&node, 10, &[("0.0.0.0/0", 10, "fc00:ff::1")]).await;
    assert!(routes(&node, 20).await.is_empty());

    // A route nobody provides is removed at the next pass.
    let mut c = dataplane(&node).await;
    let stale = dp::Route {
        prefix: Some(dp::Prefix {
            ip: Some(dp::IpAddress {
                ipver: dp::IpVersion::Ipv4.into(),
                address: b"10.9.9.0".to_vec(),
            }),
            length: 24,
            underlay_route: Vec::new(),
        }),
        nexthop_vni: 10,
        nexthop_address: Some(dp::IpAddress {
            ipver: dp::IpVersion::Ipv6.into(),
            address: b"fc00:77::1".to_vec(),
        }),
        weight: 100,
    };
    let r = c
        .create_route(dp::CreateRouteRequest {
            vni: 10,
            route: Some(stale),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, 0);
    until_routes(&node, 10, &[("0.0.0.0/0", 10, "fc00:ff::1")]).await;

    // The VNI out of use: its actor stops (the dataplane frees the table with the interface).
    delete(&node, ferrinet_proto::node::v1::Kind::NetworkInterface, "a")
        .await
        .unwrap();
    until_dp_interfaces(&node, &[]).await;
    node.shutdown().await;
}
