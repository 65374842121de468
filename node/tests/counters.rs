//! GetPacketCounters of the admin API, asked live of the dataplane: a ferrinet-dataplane
//! without packets (enabled = false), one without the status service as dpservice is
//! (FAILED_PRECONDITION) and none at all (UNAVAILABLE). Over the node's admin socket, as
//! `ferrinetctl counters` asks.

#![allow(clippy::unwrap_used)]

mod kit;

use std::net::SocketAddr;

use ferrinet_node::ctl::client::{self, NodeAddr};
use ferrinet_node::daemon::Node;
use ferrinet_proto::dpservice::v1::dpd_kironcore_server::DpdKironcoreServer;
use ferrinet_proto::node::v1 as pb;
use ferrinet_proto::node::v1::node_admin_client::NodeAdminClient;
use kit::*;
use tonic::transport::Channel;

async fn admin(node: &Node) -> NodeAdminClient<Channel> {
    let path = node
        .admin_socket
        .clone()
        .expect("the kit configures an admin socket");
    client::connect(&NodeAddr::Unix(path), WAIT).await.unwrap()
}

/// A software dataplane serving the dpservice API only, as dpservice does.
async fn dpservice_like() -> SocketAddr {
    let cfg = ferrinet_dataplane::DataplaneConfig::tap("fc00:9::1".parse().unwrap(), 8);
    let svc = ferrinet_dataplane::DataplaneService::new(&cfg).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DpdKironcoreServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_dataplane_without_packets_answers_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&settings(dir.path(), "n1")).await.unwrap();
    node.ready().await;
    let c = admin(&node)
        .await
        .get_packet_counters(pb::GetPacketCountersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!c.enabled, "{c:?}");
    assert!(c.interfaces.is_empty(), "{c:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataplane_without_the_status_service_is_a_failed_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let addr = dpservice_like().await.to_string();
    let node = Node::start(&settings_with(dir.path(), "n1", &addr))
        .await
        .unwrap();
    node.ready().await;
    let err = admin(&node)
        .await
        .get_packet_counters(pb::GetPacketCountersRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.message(),
        "the dataplane does not report packet counters (dpservice)"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dataplane_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // Bind and drop to find a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    // Not ready: the first resync waits for the dataplane.
    let node = Node::start(&settings_with(dir.path(), "n1", &addr))
        .await
        .unwrap();
    let err = admin(&node)
        .await
        .get_packet_counters(pb::GetPacketCountersRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message()
            .starts_with(&format!("the dataplane at {addr} does not answer: ")),
        "{err:?}"
    );
    node.shutdown().await;
}
