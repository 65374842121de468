//! What nodes receive: the node objects realized from the region's objects, placed on the
//! right node, updated and removed as the region changes.

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use pb::object::Object as O;

use crate::kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_load_balancers_and_nat_reach_their_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "");
    let mut api = Api::start(&s).await;
    api.register("node-1", "fc00:1::/64").await;
    api.register("node-2", "fc00:2::/64").await;
    api.create(network("t1", "net-a", "10.0.0.0/24"))
        .await
        .unwrap();
    api.create(interface(
        "t1",
        "web-1",
        "net-a",
        "node-1",
        &[("app", "web")],
    ))
    .await
    .unwrap();
    api.create(interface(
        "t1",
        "web-2",
        "net-a",
        "node-2",
        &[("app", "web")],
    ))
    .await
    .unwrap();
    api.create(O::NatGateway(pb::NatGateway {
        metadata: meta("t1", "nat", &[]),
        spec: Some(pb::NatGatewaySpec {
            r#type: "Public".into(),
            ip_family: "IPv4".into(),
            ports_per_network_interface: 1024,
            network_ref: net_ref("net-a"),
        }),
        status: None,
    }))
    .await
    .unwrap();
    api.create(O::LoadBalancer(pb::LoadBalancer {
        metadata: meta("t1", "lb", &[]),
        spec: Some(pb::LoadBalancerSpec {
            r#type: "Internal".into(),
            ip_families: vec!["IPv4".into()],
            network_ref: net_ref("net-a"),
            network_interface_selector: Some(pb::LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())]
                    .into_iter()
                    .collect(),
                match_expressions: vec![],
            }),
            ports: vec![pb::LoadBalancerPort {
                protocol: "TCP".into(),
                port: 80,
                end_port: 0,
            }],
            ..Default::default()
        }),
        status: None,
    }))
    .await
    .unwrap();

    let one = api.placed("node-1").await;
    let ifs = node_interfaces(&one);
    let web1 = ifs.get("t1_web-1").expect("web-1 placed on node-1");
    assert!(!ifs.contains_key("t1_web-2"), "web-2 lives on node-2");
    assert_eq!(web1.ips, vec!["10.0.0.1".to_string()]);
    assert_eq!(web1.network, "t1_net-a");
    let nat = web1.nat.as_ref().expect("NAT slice");
    assert!(nat.ip.starts_with("203.0.113."), "{nat:?}");
    assert_eq!(nat.end_port - nat.port, 1024);
    let lb = api.get(pb::Kind::LoadBalancer, "t1", "lb").await.unwrap();
    let Some(O::LoadBalancer(lb)) = lb.object else {
        panic!()
    };
    let lb_status = lb.status.unwrap();
    assert_eq!(
        lb_status.targets.len(),
        2,
        "both interfaces are targets: {lb_status:?}"
    );
    let lb_ip = lb_status.ips[0].clone();
    assert_eq!(web1.load_balancer_targets, vec![format!("{lb_ip}/32")]);
    let has_network = |objs: &[node_pb::Object]| {
        objs.iter().any(|o| matches!(&o.object, Some(node_pb::object::Object::Network(n)) if n.spec.as_ref().is_some_and(|s| s.id == 100)))
    };
    assert!(has_network(&one));
    let lb_node = lb_status.nodes[0].clone();
    let on_lb_node = api.placed(&lb_node).await;
    assert!(
        on_lb_node.iter().any(|o| matches!(&o.object, Some(node_pb::object::Object::LoadBalancer(l)) if l.spec.as_ref().is_some_and(|s| s.ip == lb_ip))),
        "the load balancer is on {lb_node}"
    );
    // Every placed object says it is the region's, and where it comes from.
    for o in &one {
        let labels = match &o.object {
            Some(node_pb::object::Object::Network(x)) => &x.metadata.as_ref().unwrap().labels,
            Some(node_pb::object::Object::NetworkInterface(x)) => {
                &x.metadata.as_ref().unwrap().labels
            }
            Some(node_pb::object::Object::LoadBalancer(x)) => &x.metadata.as_ref().unwrap().labels,
            None => panic!("empty"),
        };
        assert_eq!(
            labels.get("ferrinet.dev/managed-by").map(String::as_str),
            Some("region")
        );
    }

    // The node reports status: it reaches the region object.
    let mut reported = None;
    for o in &one {
        if let Some(node_pb::object::Object::NetworkInterface(ni)) = &o.object {
            let mut ni = ni.clone();
            ni.status = Some(node_pb::NetworkInterfaceStatus {
                phase: node_pb::Phase::Ready as i32,
                underlay_ip: "fc00:1::17".into(),
                ..Default::default()
            });
            reported = Some(node_pb::Object {
                object: Some(node_pb::object::Object::NetworkInterface(ni)),
            });
        }
    }
    api.sync
        .report_status(pb::ReportStatusRequest {
            name: "node-1".into(),
            objects: reported.into_iter().collect(),
        })
        .await
        .unwrap();
    let web1 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert_eq!(status_of(&web1).underlay_ip, "fc00:1::17");
    assert_eq!(status_of(&web1).state, "Available");

    // Deleting an interface removes it from its node and from the load balancer's targets.
    api.delete(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    let one = api.placed("node-1").await;
    assert!(node_interfaces(&one).is_empty());
    assert_eq!(
        has_network(&one),
        lb_node == "node-1",
        "the network stays on node-1 only while the load balancer is there"
    );
    api.running.shutdown().await;
}
