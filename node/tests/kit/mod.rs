//! Test kit for in-process node tests: settings for a node with an embedded dataplane in a
//! temporary directory, calls to its ApiActor, object builders, and reads of its dataplane
//! through the dpservice API.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ferrinet_node::api::{ApiError, ApiMsg};
use ferrinet_node::config::Config;
use ferrinet_node::config::Settings;
use ferrinet_node::daemon::Node;
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use ferrinet_proto::node::v1 as pb;
use ractor::RpcReplyPort;
use ractor::rpc::CallResult;
use tonic::transport::Channel;

/// How long a test waits for something that should happen. Tests never assert durations.
pub const WAIT: Duration = Duration::from_secs(30);

/// Settings of a node with an embedded dataplane, state and socket under `dir`.
pub fn settings(dir: &Path, name: &str) -> Settings {
    settings_with(dir, name, "embedded")
}

/// Settings of a node using the dataplane at `dataplane` (or `embedded`), state and socket
/// under `dir`, TAP VFs.
pub fn settings_with(dir: &Path, name: &str, dataplane: &str) -> Settings {
    settings_extra(dir, name, dataplane, "")
}

/// As [`settings_with`], with more TOML appended (tables only).
pub fn settings_extra(dir: &Path, name: &str, dataplane: &str, extra: &str) -> Settings {
    let text = format!(
        "node_name = {name:?}\nstate_dir = {:?}\n[admin]\nsocket = {:?}\n[dataplane]\naddress = {dataplane:?}\ncheck_interval_ms = 50\n[vf]\nmode = \"tap\"\n[reconcile]\nrecheck_secs = 1\nbackoff_min_ms = 20\nbackoff_max_ms = 500\n[http]\nlisten = \"\"\n",
        dir.join("state"),
        dir.join("node.sock"),
    ) + extra;
    Config::parse(&text, Path::new("test.toml"))
        .unwrap()
        .validate()
        .unwrap()
}

/// Calls the ApiActor.
pub async fn ask<T: Send + 'static>(node: &Node, msg: impl FnOnce(RpcReplyPort<T>) -> ApiMsg) -> T {
    match node.api.call(msg, Some(WAIT)).await.unwrap() {
        CallResult::Success(v) => v,
        _ => panic!("the ApiActor did not answer"),
    }
}

pub async fn create(node: &Node, o: pb::Object) -> Result<pb::Object, ApiError> {
    ask(node, |p| ApiMsg::Create(o, p)).await
}

pub async fn update(node: &Node, o: pb::Object) -> Result<pb::Object, ApiError> {
    ask(node, |p| ApiMsg::Update(o, p)).await
}

pub async fn get(node: &Node, kind: pb::Kind, name: &str) -> Result<pb::Object, ApiError> {
    ask(node, |p| ApiMsg::Get(kind, name.to_string(), p)).await
}

pub async fn delete(node: &Node, kind: pb::Kind, name: &str) -> Result<pb::Object, ApiError> {
    ask(node, |p| ApiMsg::Delete(kind, name.to_string(), 0, p)).await
}

fn meta(name: &str) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        name: name.into(),
        ..Default::default()
    })
}

pub fn network(name: &str, vni: u32) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::Network(pb::Network {
            metadata: meta(name),
            spec: Some(pb::NetworkSpec {
                id: vni,
                ..Default::default()
            }),
            status: None,
        })),
    }
}

pub fn interface(name: &str, network: &str, ips: &[&str]) -> pb::NetworkInterfaceSpec {
    let _ = name;
    pb::NetworkInterfaceSpec {
        network: network.into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn iface_object(name: &str, spec: pb::NetworkInterfaceSpec) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::NetworkInterface(pb::NetworkInterface {
            metadata: meta(name),
            spec: Some(spec),
            status: None,
        })),
    }
}

pub fn load_balancer(name: &str, network: &str, ip: &str, internal: bool) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::LoadBalancer(pb::LoadBalancer {
            metadata: meta(name),
            spec: Some(pb::LoadBalancerSpec {
                network: network.into(),
                r#type: if internal {
                    pb::LoadBalancerType::Internal
                } else {
                    pb::LoadBalancerType::Public
                }
                .into(),
                ip: ip.into(),
                ports: vec![pb::LoadBalancerPort {
                    protocol: pb::Protocol::Tcp.into(),
                    port: 443,
                }],
            }),
            status: None,
        })),
    }
}

/// The interface's status.
pub fn iface_status(o: &pb::Object) -> pb::NetworkInterfaceStatus {
    match &o.object {
        Some(pb::object::Object::NetworkInterface(i)) => i.status.clone().unwrap_or_default(),
        _ => panic!("not an interface"),
    }
}

pub fn phase(o: &pb::Object) -> pb::Phase {
    let p = match &o.object {
        Some(pb::object::Object::Network(n)) => n.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::NetworkInterface(i)) => i.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::LoadBalancer(l)) => l.status.as_ref().map_or(0, |s| s.phase),
        None => 0,
    };
    pb::Phase::try_from(p).unwrap()
}

/// Waits until `f` holds for the object (polling the API).
pub async fn until(
    node: &Node,
    kind: pb::Kind,
    name: &str,
    what: &str,
    f: impl Fn(&pb::Object) -> bool,
) -> pb::Object {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(o) = get(node, kind, name).await
            && f(&o)
        {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}/{name}: timed out waiting for {what}: {:?}",
            get(node, kind, name).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for condition `generation` to be observed with phase `phase`.
pub async fn until_phase(node: &Node, kind: pb::Kind, name: &str, want: pb::Phase) -> pb::Object {
    until(node, kind, name, &format!("{want:?}"), |o| phase(o) == want).await
}

/// A dpservice client of the node's dataplane.
pub async fn dataplane(node: &Node) -> DpdKironcoreClient<Channel> {
    let addr = match &node.embedded {
        Some(e) => e.address.to_string(),
        None => node.dataplane_address.clone(),
    };
    DpdKironcoreClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A standalone software dataplane on loopback (outlives the nodes that use it).
pub async fn standalone_dataplane() -> (std::net::SocketAddr, ferrinet_dataplane::DataplaneService)
{
    let cfg = ferrinet_dataplane::DataplaneConfig::tap("fc00:9::1".parse().unwrap(), 126);
    let svc = ferrinet_dataplane::DataplaneService::new(&cfg).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let served = svc.clone();
    tokio::spawn(async move {
        let _ = ferrinet_dataplane::serve_service(l, served, std::future::pending()).await;
    });
    (addr, svc)
}

/// The dataplane's interfaces: (id, vni, ipv4 text, device).
pub async fn dp_interfaces(
    c: &mut DpdKironcoreClient<Channel>,
) -> Vec<(String, u32, String, String)> {
    let r = c
        .list_interfaces(dp::ListInterfacesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut v: Vec<_> = r
        .interfaces
        .into_iter()
        .map(|i| {
            (
                String::from_utf8_lossy(&i.id).to_string(),
                i.vni,
                String::from_utf8_lossy(&i.primary_ipv4).to_string(),
                i.pci_name,
            )
        })
        .collect();
    v.sort();
    v
}

/// Waits until the dataplane's interfaces are `want` (id, vni, ipv4, device).
pub async fn until_dp_interfaces(node: &Node, want: &[(&str, u32, &str, &str)]) {
    let want: Vec<(String, u32, String, String)> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), *b, c.to_string(), d.to_string()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = dataplane(node).await;
        let got = match tokio::time::timeout(Duration::from_secs(2), dp_interfaces_ok(&mut c)).await
        {
            Ok(Some(g)) => g,
            _ => Vec::new(),
        };
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dataplane interfaces: got {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dp_interfaces_ok(
    c: &mut DpdKironcoreClient<Channel>,
) -> Option<Vec<(String, u32, String, String)>> {
    let r = c.list_interfaces(dp::ListInterfacesRequest {}).await.ok()?;
    let mut v: Vec<_> = r
        .into_inner()
        .interfaces
        .into_iter()
        .map(|i| {
            (
                String::from_utf8_lossy(&i.id).to_string(),
                i.vni,
                String::from_utf8_lossy(&i.primary_ipv4).to_string(),
                i.pci_name,
            )
        })
        .collect();
    v.sort();
    Some(v)
}
