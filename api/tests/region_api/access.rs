//! Mutual TLS and roles: each identity does exactly what its role allows, and every refusal is
//! PERMISSION_DENIED naming the caller.

use std::path::Path;
use std::sync::Arc;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::node_sync_client::NodeSyncClient;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::kit::*;

async fn channel(addr: std::net::SocketAddr, pki: &Path, who: &str) -> Channel {
    let config = ferrinet_route_client::tls::client_config_from_files(
        &pki.join("ca.pem"),
        Some(&pki.join(format!("{who}.pem"))),
        Some(&pki.join(format!("{who}.key"))),
    )
    .unwrap();
    let config: Arc<rustls::ClientConfig> = config;
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let config = config.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ferrinet_route_client::tls::server_name("localhost")
                    .map_err(std::io::Error::other)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = ["admin", "alice", "node-1", "mallory"]
        .map(String::from)
        .to_vec();
    ferrinet_region::certs::write_pki(&pki, &[], &names, false).unwrap();
    let extra = "[access]\nadmins = [\"admin\"]\nnodes = [\"node-*\"]\n\
         [[access.tenants]]\nidentity = \"alice\"\nnamespaces = [\"t1\"]\n";
    let mut s = settings(dir.path(), extra);
    s.http = Some("127.0.0.1:0".parse().unwrap());
    s.tls = Some((
        pki.join("ca.pem"),
        pki.join("server.pem"),
        pki.join("server.key"),
    ));
    let running = ferrinet_api::daemon::start(&s).await.unwrap();
    tokio::time::timeout(PATIENCE, running.leading())
        .await
        .unwrap();
    let addr = running.addr;

    let create = |obj| pb::CreateRequest {
        object: Some(pb::Object { object: Some(obj) }),
    };
    let mut admin = RegionApiClient::new(channel(addr, &pki, "admin").await);
    let mut alice = RegionApiClient::new(channel(addr, &pki, "alice").await);
    let mut mallory = RegionApiClient::new(channel(addr, &pki, "mallory").await);
    let node1 = channel(addr, &pki, "node-1").await;

    admin
        .create(create(network("t2", "other", "10.9.0.0/24")))
        .await
        .unwrap();
    alice
        .create(create(network("t1", "net-a", "10.0.0.0/24")))
        .await
        .unwrap();
    let e = alice
        .create(create(network("t2", "sneaky", "10.8.0.0/24")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message()
            .contains("alice (tenant) may not change networks in namespace t2"),
        "{}",
        e.message()
    );
    let e = alice
        .get(pb::GetRequest {
            key: Some(pb::ObjectKey {
                kind: pb::Kind::Network as i32,
                namespace: "t2".into(),
                name: "other".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let all = alice
        .list(pb::ListRequest {
            kind: pb::Kind::Network as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.objects.len(),
        1,
        "a tenant's list shows its namespaces only"
    );
    let who = alice
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (who.identity.as_str(), who.role.as_str()),
        ("alice", "tenant")
    );
    assert_eq!(who.namespaces, vec!["t1".to_string()]);

    let e = mallory.list(pb::ListRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let mut sync = NodeSyncClient::new(node1.clone());
    let register = |name: &str| pb::RegisterRequest {
        name: name.into(),
        underlay_prefix: "fc00:1::/64".into(),
        vf_capacity: 8,
        labels: Default::default(),
    };
    sync.register(register("node-1")).await.unwrap();
    let e = sync.register(register("node-2")).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "a node syncs only as itself"
    );
    let e = RegionApiClient::new(node1)
        .list(pb::ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "nodes do not use the user API"
    );
    let e = NodeSyncClient::new(channel(addr, &pki, "alice").await)
        .register(register("alice"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "tenants cannot sync");

    // Refusals are counted.
    let metrics = http_get(running.http_addr.unwrap(), "/metrics").await;
    let denied: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferrinet_api_denied_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(denied >= 6.0, "{metrics}");
    assert!(metrics.contains("ferrinet_api_leader 1"), "{metrics}");
    assert!(
        http_get(running.http_addr.unwrap(), "/readyz")
            .await
            .contains("200 OK")
    );
    running.shutdown().await;
}

/// A plain HTTP/1.0 GET; the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}
