//! What the region API tests share: a replica on loopback with an embedded store in a temp
//! dir, clients, and builders of the seed-shaped objects.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ferrinet_api::config::{Config, Settings};
use ferrinet_api::daemon::{self, Running};
use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::node_sync_client::NodeSyncClient;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use ferrinet_proto::node::v1 as node_pb;
use pb::object::Object as O;
use tonic::transport::Channel;

/// Bound on anything a test waits for; tests assert what happens, never how fast.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Settings of a plaintext replica on loopback over `dir`.
pub fn settings(dir: &Path, extra: &str) -> Settings {
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n\
         [allocation]\nvni_first = 100\nvni_last = 199\npublic_pools = [\"203.0.113.0/28\"]\n\
         [region]\nnode_lease_ms = 2000\nlb_replicas = 1\n{extra}",
        dir.join("state.redb").display()
    );
    let c: Config = toml::from_str(&toml).expect("test config");
    c.validate(dir).expect("valid test config")
}

/// A running replica and clients of it.
pub struct Api {
    pub running: Running,
    pub region: RegionApiClient<Channel>,
    pub sync: NodeSyncClient<Channel>,
}

impl Api {
    pub async fn start(s: &Settings) -> Self {
        let running = daemon::start(s).await.expect("region API starts");
        tokio::time::timeout(PATIENCE, running.leading())
            .await
            .expect("leads");
        let url = format!("http://{}", running.addr);
        let channel = Channel::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        Self {
            running,
            region: RegionApiClient::new(channel.clone()),
            sync: NodeSyncClient::new(channel),
        }
    }

    pub async fn create(&mut self, obj: O) -> Result<pb::Object, tonic::Status> {
        self.region
            .create(pb::CreateRequest {
                object: Some(pb::Object { object: Some(obj) }),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get(
        &mut self,
        kind: pb::Kind,
        ns: &str,
        name: &str,
    ) -> Result<pb::Object, tonic::Status> {
        self.region
            .get(pb::GetRequest {
                key: Some(pb::ObjectKey {
                    kind: kind as i32,
                    namespace: ns.into(),
                    name: name.into(),
                }),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn delete(
        &mut self,
        kind: pb::Kind,
        ns: &str,
        name: &str,
    ) -> Result<pb::Object, tonic::Status> {
        self.region
            .delete(pb::DeleteRequest {
                key: Some(pb::ObjectKey {
                    kind: kind as i32,
                    namespace: ns.into(),
                    name: name.into(),
                }),
                resource_version: 0,
            })
            .await
            .map(|r| r.into_inner().object.unwrap_or_default())
    }

    pub async fn register(&mut self, name: &str, underlay: &str) {
        self.sync
            .register(pb::RegisterRequest {
                name: name.into(),
                underlay_prefix: underlay.into(),
                vf_capacity: 126,
                labels: HashMap::new(),
            })
            .await
            .expect("registers");
    }

    /// What is placed on `node` now: the snapshot of a watch from 0 (up to SYNCED).
    pub async fn placed(&mut self, node: &str) -> Vec<node_pb::Object> {
        let mut stream = self
            .sync
            .watch_placed(pb::WatchPlacedRequest {
                name: node.into(),
                from_revision: 0,
            })
            .await
            .expect("watch")
            .into_inner();
        let mut out = Vec::new();
        loop {
            let ev = tokio::time::timeout(PATIENCE, stream.message())
                .await
                .expect("in time")
                .expect("stream ok")
                .expect("not ended");
            if ev.r#type == pb::EventType::Synced as i32 {
                return out;
            }
            out.extend(ev.object);
        }
    }
}

pub fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> Option<pb::ObjectMeta> {
    Some(pb::ObjectMeta {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

pub fn net_ref(name: &str) -> Option<pb::ObjectRef> {
    Some(pb::ObjectRef {
        name: name.into(),
        namespace: String::new(),
    })
}

pub fn network(ns: &str, name: &str, cidr: &str) -> O {
    O::Network(pb::Network {
        metadata: meta(ns, name, &[]),
        spec: Some(pb::NetworkSpec {
            subnets: vec![pb::Subnet {
                cidr: cidr.into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    })
}

pub fn interface(ns: &str, name: &str, network: &str, node: &str, labels: &[(&str, &str)]) -> O {
    O::NetworkInterface(pb::NetworkInterface {
        metadata: meta(ns, name, labels),
        spec: Some(pb::NetworkInterfaceSpec {
            network_ref: net_ref(network),
            node_name: node.into(),
            ip_families: vec!["IPv4".into()],
            ..Default::default()
        }),
        status: None,
    })
}

pub fn status_of(obj: &pb::Object) -> pb::NetworkInterfaceStatus {
    match &obj.object {
        Some(O::NetworkInterface(ni)) => ni.status.clone().unwrap_or_default(),
        other => panic!("not an interface: {other:?}"),
    }
}

/// The node interfaces of a placed set, by name.
pub fn node_interfaces(
    placed: &[node_pb::Object],
) -> HashMap<String, node_pb::NetworkInterfaceSpec> {
    placed
        .iter()
        .filter_map(|o| match &o.object {
            Some(node_pb::object::Object::NetworkInterface(ni)) => Some((
                ni.metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                ni.spec.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}
