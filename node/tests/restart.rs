//! Restarts: the dataplane restarting under a running node (answered in-process), and the node
//! restarting over a dataplane that kept its state (orphans removed, missing objects re-created
//! on the same VFs, nothing confirmed lost).

#![allow(clippy::unwrap_used)]

mod kit;

use ferrinet_node::daemon::Node;
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::node::v1 as pb;
use kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_restart_is_answered_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    create(&node, network("blue", 10)).await.unwrap();
    create(
        &node,
        iface_object("a", interface("a", "blue", &["10.0.0.1"])),
    )
    .await
    .unwrap();
    create(
        &node,
        iface_object("b", interface("b", "blue", &["10.0.0.2"])),
    )
    .await
    .unwrap();
    until_dp_interfaces(
        &node,
        &[
            ("a", 10, "10.0.0.1", "net_tap2"),
            ("b", 10, "10.0.0.2", "net_tap3"),
        ],
    )
    .await;
    let old = node.dataplane.borrow().uuid.clone();
    node.embedded.as_ref().unwrap().service.restart();
    until_dp_interfaces(
        &node,
        &[
            ("a", 10, "10.0.0.1", "net_tap2"),
            ("b", 10, "10.0.0.2", "net_tap3"),
        ],
    )
    .await;
    let st = ask(&node, ferrinet_node::api::ApiMsg::NodeStatus).await;
    assert_eq!(st.dataplane_restarts, 1);
    assert_ne!(Some(st.dataplane_uuid), old);
    until_phase(&node, pb::Kind::NetworkInterface, "a", pb::Phase::Ready).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restart_removes_orphans_and_recreates_on_the_same_vf() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _dataplane) = standalone_dataplane().await;
    let s = settings_with(dir.path(), "n1", &addr.to_string());
    let node = Node::start(&s).await.unwrap();
    create(&node, network("blue", 10)).await.unwrap();
    for (name, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3")] {
        create(&node, iface_object(name, interface(name, "blue", &[ip])))
            .await
            .unwrap();
    }
    let all = [
        ("a", 10, "10.0.0.1", "net_tap2"),
        ("b", 10, "10.0.0.2", "net_tap3"),
        ("c", 10, "10.0.0.3", "net_tap4"),
    ];
    until_dp_interfaces(&node, &all).await;
    node.shutdown().await;

    // While the node is down: an orphan appears and one interface disappears.
    let mut c = ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient::connect(
        format!("http://{addr}"),
    )
    .await
    .unwrap();
    let r = c
        .create_interface(dp::CreateInterfaceRequest {
            interface_id: b"orphan".to_vec(),
            vni: 10,
            ipv4_config: Some(dp::IpConfig {
                primary_address: b"10.0.0.99".to_vec(),
            }),
            ipv6_config: Some(dp::IpConfig {
                primary_address: b"::".to_vec(),
            }),
            device_name: "net_tap60".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, 0);
    c.delete_interface(dp::DeleteInterfaceRequest {
        interface_id: b"b".to_vec(),
    })
    .await
    .unwrap();

    let node = Node::start(&s).await.unwrap();
    node.ready().await;
    until_dp_interfaces(&node, &all).await;
    let b = until_phase(&node, pb::Kind::NetworkInterface, "b", pb::Phase::Ready).await;
    assert_eq!(iface_status(&b).tap_device, "dtapvf_1", "b keeps its VF");
    node.shutdown().await;
}
