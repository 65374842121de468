//! The region sync against a fake NodeSync server on loopback that the test drives: a node
//! with the embedded dataplane registers, heartbeats, applies what is placed on it (created,
//! modified, deleted, refused), reports statuses, resumes a dropped watch from the last
//! revision, starts over on OUT_OF_RANGE and then removes what the new snapshot lacks, and
//! never touches the objects made locally.

#![allow(clippy::unwrap_used)]

mod kit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrinet_node::api::ApiError;
use ferrinet_node::daemon::Node;
use ferrinet_node::region::LinkState;
use ferrinet_proto::api::v1 as api;
use ferrinet_proto::api::v1::node_sync_server::{NodeSync, NodeSyncServer};
use ferrinet_proto::node::v1 as pb;
use kit::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Code, Request, Response, Status};

type Events = mpsc::Sender<Result<api::PlacedEvent, Status>>;

#[derive(Default)]
struct Seen {
    registers: Vec<api::RegisterRequest>,
    heartbeats: u64,
    /// `from_revision` of every WatchPlaced.
    watches: Vec<u64>,
    /// Every reported object, in order.
    reports: Vec<pb::Object>,
    /// The current watch stream.
    stream: Option<Events>,
}

/// The fake region API: records what the node sends; the test pushes events into the
/// current watch stream and decides how calls fail.
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// The next heartbeat fails with this code.
    heartbeat_fails: Arc<Mutex<Option<Code>>>,
    /// The next WatchPlaced from a revision other than 0 is OUT_OF_RANGE.
    compacted: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl NodeSync for Fake {
    async fn register(
        &self,
        req: Request<api::RegisterRequest>,
    ) -> Result<Response<api::RegisterResponse>, Status> {
        self.seen.lock().unwrap().registers.push(req.into_inner());
        Ok(Response::new(api::RegisterResponse {
            lease_ttl_ms: 10_000,
        }))
    }

    async fn heartbeat(
        &self,
        _req: Request<api::HeartbeatRequest>,
    ) -> Result<Response<api::HeartbeatResponse>, Status> {
        self.seen.lock().unwrap().heartbeats += 1;
        if let Some(code) = self.heartbeat_fails.lock().unwrap().take() {
            return Err(Status::new(code, "no such node"));
        }
        Ok(Response::new(api::HeartbeatResponse {
            lease_ttl_ms: 10_000,
        }))
    }

    type WatchPlacedStream = ReceiverStream<Result<api::PlacedEvent, Status>>;

    async fn watch_placed(
        &self,
        req: Request<api::WatchPlacedRequest>,
    ) -> Result<Response<Self::WatchPlacedStream>, Status> {
        let from = req.into_inner().from_revision;
        let mut seen = self.seen.lock().unwrap();
        seen.watches.push(from);
        if from > 0 && self.compacted.swap(false, Ordering::SeqCst) {
            return Err(Status::out_of_range("compacted"));
        }
        let (tx, rx) = mpsc::channel(64);
        seen.stream = Some(tx);
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn report_status(
        &self,
        req: Request<api::ReportStatusRequest>,
    ) -> Result<Response<api::ReportStatusResponse>, Status> {
        let req = req.into_inner();
        assert_eq!(req.name, "n1");
        self.seen.lock().unwrap().reports.extend(req.objects);
        Ok(Response::new(api::ReportStatusResponse {}))
    }
}

impl Fake {
    async fn start() -> (Self, std::net::SocketAddr) {
        let fake = Self::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let svc = NodeSyncServer::new(fake.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(TcpListenerStream::new(l))
                .await
                .unwrap();
        });
        (fake, addr)
    }

    /// Waits until `f` holds for what the server saw.
    async fn until(&self, what: &str, f: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f(&self.seen.lock().unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn send(&self, ty: api::EventType, object: Option<pb::Object>, revision: u64) {
        let tx = self.seen.lock().unwrap().stream.clone().unwrap();
        tx.send(Ok(api::PlacedEvent {
            r#type: ty.into(),
            object,
            revision,
        }))
        .await
        .unwrap();
    }

    /// Ends the current stream as a broken connection would.
    fn drop_stream(&self) {
        let tx = self.seen.lock().unwrap().stream.take().unwrap();
        let _ = tx.try_send(Err(Status::unavailable("connection reset")));
    }

    fn watches(&self) -> Vec<u64> {
        self.seen.lock().unwrap().watches.clone()
    }
}

/// A node object as the region places it.
fn placed(mut o: pb::Object) -> pb::Object {
    let m = match &mut o.object {
        Some(pb::object::Object::Network(n)) => n.metadata.as_mut().unwrap(),
        Some(pb::object::Object::NetworkInterface(i)) => i.metadata.as_mut().unwrap(),
        Some(pb::object::Object::LoadBalancer(l)) => l.metadata.as_mut().unwrap(),
        None => unreachable!(),
    };
    m.labels
        .insert("ferrinet.dev/managed-by".into(), "region".into());
    m.labels.insert(
        "ferrinet.dev/source".into(),
        format!("x.tenant-a.{}", m.name),
    );
    // The region's own version means nothing to the node.
    m.resource_version = 999;
    o
}

fn reported_iface(seen: &Seen, name: &str) -> Option<pb::NetworkInterface> {
    seen.reports.iter().rev().find_map(|o| match &o.object {
        Some(pb::object::Object::NetworkInterface(i))
            if i.metadata.as_ref().is_some_and(|m| m.name == name) =>
        {
            Some(i.clone())
        }
        _ => None,
    })
}

fn ready_with_underlay(i: &pb::NetworkInterface) -> bool {
    i.status
        .as_ref()
        .is_some_and(|s| s.phase == pb::Phase::Ready as i32 && !s.underlay_ip.is_empty())
}

async fn until_dp(node: &Node, what: &str, f: impl Fn(&[(String, u32, String, String)]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = dp_interfaces(&mut dataplane(node).await).await;
        if f(&got) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dataplane: timed out waiting for {what}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until_gone(node: &Node, kind: pb::Kind, name: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(get(node, kind, name).await, Err(ApiError::NotFound { .. })) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}/{name} still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_objects_are_applied_reported_and_resumed() {
    let (fake, addr) = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[region_api]\naddress = \"{addr}\"\nheartbeat_ms = 100\nstatus_interval_ms = 50\nlabels = {{ zone = \"a\" }}\n"
    );
    let node = Node::start(&settings_extra(dir.path(), "n1", "embedded", &extra))
        .await
        .unwrap();
    node.ready().await;
    // Made by an operator: the region must never touch these.
    create(&node, network("mine", 200)).await.unwrap();
    create(
        &node,
        iface_object("local", interface("local", "mine", &["10.1.0.5"])),
    )
    .await
    .unwrap();

    fake.until("register and a watch from 0", |s| s.watches == [0])
        .await;
    {
        let s = fake.seen.lock().unwrap();
        let r = &s.registers[0];
        assert_eq!(
            (r.name.as_str(), r.underlay_prefix.as_str()),
            ("n1", "fc00:1::/64")
        );
        assert_eq!(r.vf_capacity, 126);
        assert_eq!(r.labels.get("zone").map(String::as_str), Some("a"));
    }
    use api::EventType::{Added, Deleted, Modified, Synced};
    // The interface comes first in the stream; the node still gets the network first.
    let web = |ip: &str| placed(iface_object("web", interface("web", "blue", &[ip])));
    fake.send(Added, Some(web("10.0.0.5")), 10).await;
    fake.send(Added, Some(placed(network("blue", 4711))), 10)
        .await;
    fake.send(Synced, None, 10).await;
    let o = until_phase(&node, pb::Kind::NetworkInterface, "web", pb::Phase::Ready).await;
    assert_eq!(iface_status(&o).vni, 4711);
    until_dp(&node, "web in VNI 4711", |v| {
        v.iter()
            .any(|i| i.0 == "web" && i.1 == 4711 && i.2 == "10.0.0.5")
    })
    .await;
    fake.until("web reported Ready with its underlay address", |s| {
        reported_iface(s, "web").is_some_and(|i| ready_with_underlay(&i))
    })
    .await;
    fake.until("heartbeats", |s| s.heartbeats >= 2).await;
    let mut state = node.region.as_ref().unwrap().state.clone();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == LinkState::Synced))
        .await
        .unwrap()
        .unwrap();
    {
        let s = fake.seen.lock().unwrap();
        assert!(
            reported_iface(&s, "local").is_none(),
            "a local object was reported"
        );
    }

    // A change of the placed spec reaches the dataplane.
    fake.send(Modified, Some(web("10.0.0.9")), 11).await;
    until_dp(&node, "web's new address", |v| {
        v.iter().any(|i| i.0 == "web" && i.2 == "10.0.0.9")
    })
    .await;

    // Refused by the node: reported as ERROR naming the field, and the stream goes on.
    let bad = placed(iface_object(
        "bad",
        interface("bad", "blue", &["not-an-ip"]),
    ));
    fake.send(Added, Some(bad), 12).await;
    fake.until("bad reported as refused", |s| {
        reported_iface(s, "bad").is_some_and(|i| {
            let st = i.status.unwrap_or_default();
            st.phase == pb::Phase::Error as i32
                && st
                    .conditions
                    .iter()
                    .any(|c| c.r#type == "Applied" && !c.ok && c.message.contains("ips"))
        })
    })
    .await;

    // The region forgot the node: it registers again, resumes after revision 12 and sends
    // every status once more.
    let reports_before = fake.seen.lock().unwrap().reports.len();
    *fake.heartbeat_fails.lock().unwrap() = Some(Code::NotFound);
    fake.until("a second register and a resumed watch", |s| {
        s.registers.len() == 2 && s.watches == [0, 13]
    })
    .await;
    fake.until("web reported again", |s| {
        s.reports[reports_before..].iter().any(|o| {
            matches!(&o.object, Some(pb::object::Object::NetworkInterface(i))
                if i.metadata.as_ref().unwrap().name == "web")
        })
    })
    .await;
    fake.send(Deleted, Some(web("10.0.0.9")), 13).await;
    until_gone(&node, pb::Kind::NetworkInterface, "web").await;
    until_dp(&node, "web gone", |v| !v.iter().any(|i| i.0 == "web")).await;

    // A dropped stream resumes after the last revision applied (13); that one is compacted,
    // so the node starts from a new snapshot, which lacks blue: blue goes, the local objects
    // stay.
    fake.compacted.store(true, Ordering::SeqCst);
    fake.drop_stream();
    fake.until("the resumed watch, then one from 0", |s| {
        s.watches == [0, 13, 14, 0]
    })
    .await;
    fake.send(Added, Some(placed(network("green", 4712))), 20)
        .await;
    fake.send(Synced, None, 20).await;
    until_gone(&node, pb::Kind::Network, "blue").await;
    until_phase(&node, pb::Kind::Network, "green", pb::Phase::Ready).await;
    get(&node, pb::Kind::Network, "mine").await.unwrap();
    until_phase(&node, pb::Kind::NetworkInterface, "local", pb::Phase::Ready).await;
    until_dp(&node, "only the local interface", |v| {
        v.len() == 1 && v[0].0 == "local"
    })
    .await;
    assert_eq!(fake.watches(), [0, 13, 14, 0]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_snapshot_removes_managed_objects_it_lacks_and_only_those() {
    let (fake, addr) = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[region_api]\naddress = \"{addr}\"\nheartbeat_ms = 100\n");
    let node = Node::start(&settings_extra(dir.path(), "n1", "embedded", &extra))
        .await
        .unwrap();
    node.ready().await;
    // Left from an earlier placement (before a restart, say), and one made by an operator.
    create(&node, placed(network("stale", 300))).await.unwrap();
    create(
        &node,
        placed(iface_object(
            "old",
            interface("old", "stale", &["10.3.0.5"]),
        )),
    )
    .await
    .unwrap();
    create(&node, network("mine", 200)).await.unwrap();
    fake.until("a watch from 0", |s| s.watches == [0]).await;
    // Nothing goes before the snapshot is complete.
    fake.send(
        api::EventType::Added,
        Some(placed(network("blue", 4711))),
        5,
    )
    .await;
    until_phase(&node, pb::Kind::Network, "blue", pb::Phase::Ready).await;
    get(&node, pb::Kind::NetworkInterface, "old").await.unwrap();
    fake.send(api::EventType::Synced, None, 5).await;
    // The interface first, then its network.
    until_gone(&node, pb::Kind::NetworkInterface, "old").await;
    until_gone(&node, pb::Kind::Network, "stale").await;
    get(&node, pb::Kind::Network, "mine").await.unwrap();
    get(&node, pb::Kind::Network, "blue").await.unwrap();
    node.shutdown().await;
}
