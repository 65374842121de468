//! A small in-memory `NodeAdmin` server for the command tests: enough of the daemon's
//! behaviour (revisions, optimistic concurrency, NOT_FOUND / ALREADY_EXISTS, one validation
//! error, watch of the current objects) to exercise every exit status over a real Unix socket.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrinet_proto::dataplane_status::v1::PacketCountersResponse;
use ferrinet_proto::node::v1 as pb;
use pb::node_admin_server::{NodeAdmin, NodeAdminServer};
use pb::object::Object as O;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

/// Creation time of every object: 2023-11-14T22:13:20Z.
pub const CREATED_MS: i64 = 1_700_000_000_000;

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<(i32, String), pb::Object>,
    pub revision: u64,
    pub creates: usize,
    pub updates: usize,
    pub deletes: Vec<String>,
    /// End the watch stream after the current objects instead of keeping it open.
    pub end_watch: bool,
    /// What GetPacketCounters answers; `None`: FAILED_PRECONDITION, as for dpservice.
    pub packet_counters: Option<PacketCountersResponse>,
}

#[derive(Clone, Default)]
pub struct FakeNode {
    pub state: Arc<Mutex<State>>,
}

fn meta_mut(obj: &mut pb::Object) -> Option<&mut pb::Metadata> {
    match obj.object.as_mut()? {
        O::Network(n) => n.metadata.as_mut(),
        O::NetworkInterface(n) => n.metadata.as_mut(),
        O::LoadBalancer(l) => l.metadata.as_mut(),
    }
}

fn key(obj: &pb::Object) -> Result<(i32, String), Status> {
    let (kind, name) = crate::ctl::kind_and_name(obj)
        .ok_or_else(|| Status::invalid_argument("object: required"))?;
    if name.is_empty() {
        return Err(Status::invalid_argument("metadata.name: required"));
    }
    Ok((kind.proto() as i32, name.to_owned()))
}

fn ref_key(r: Option<pb::ObjectRef>) -> (i32, String) {
    let r = r.unwrap_or_default();
    (r.kind, r.name)
}

fn not_found(k: &(i32, String)) -> Status {
    Status::not_found(format!("{:?} {:?} not found", k.0, k.1))
}

fn validate(obj: &pb::Object) -> Result<(), Status> {
    if let Some(O::Network(n)) = &obj.object
        && n.spec
            .as_ref()
            .is_none_or(|s| s.id == 0 || s.id > 16_777_215)
    {
        return Err(Status::invalid_argument("spec.id: must be 1..16777215"));
    }
    Ok(())
}

fn set_status(obj: &mut pb::Object) {
    match obj.object.as_mut() {
        Some(O::Network(n)) => {
            n.status = Some(pb::NetworkStatus {
                phase: pb::Phase::Ready as i32,
                ..Default::default()
            })
        }
        Some(O::NetworkInterface(n)) => {
            n.status = Some(pb::NetworkInterfaceStatus {
                phase: pb::Phase::Pending as i32,
                underlay_ip: "fd00:a::1".into(),
                tap_device: "tap0".into(),
                ..Default::default()
            })
        }
        Some(O::LoadBalancer(l)) => {
            l.status = Some(pb::LoadBalancerStatus {
                phase: pb::Phase::Ready as i32,
                ..Default::default()
            })
        }
        None => {}
    }
}

impl FakeNode {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves on a Unix socket in `dir`; returns its path.
    pub fn serve(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("node.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind the fake node's socket");
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let svc = NodeAdminServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming),
        );
        path
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAdmin for FakeNode {
    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let mut obj = req.into_inner().object.unwrap_or_default();
        let k = key(&obj)?;
        validate(&obj)?;
        let mut st = self.lock();
        if st.objects.contains_key(&k) {
            return Err(Status::already_exists(format!("{:?} already exists", k.1)));
        }
        st.revision += 1;
        st.creates += 1;
        let rv = st.revision;
        if let Some(m) = meta_mut(&mut obj) {
            m.resource_version = rv;
            m.generation = 1;
            m.created_unix_ms = CREATED_MS;
        }
        set_status(&mut obj);
        st.objects.insert(k, obj.clone());
        Ok(Response::new(obj))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let k = ref_key(req.into_inner().r#ref);
        let st = self.lock();
        st.objects
            .get(&k)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| not_found(&k))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let kind = req.into_inner().kind;
        let st = self.lock();
        let objects = st
            .objects
            .iter()
            .filter(|((k, _), _)| kind == 0 || *k == kind)
            .map(|(_, o)| o.clone())
            .collect();
        Ok(Response::new(pb::ListResponse {
            objects,
            revision: st.revision,
        }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let mut obj = req.into_inner().object.unwrap_or_default();
        let k = key(&obj)?;
        validate(&obj)?;
        let mut st = self.lock();
        let old = st.objects.get(&k).cloned().ok_or_else(|| not_found(&k))?;
        let mut old_meta = old.clone();
        let old_meta = meta_mut(&mut old_meta).cloned().unwrap_or_default();
        let wanted = meta_mut(&mut obj).map_or(0, |m| m.resource_version);
        if wanted != 0 && wanted != old_meta.resource_version {
            return Err(Status::failed_precondition(format!(
                "metadata.resource_version: {wanted} is not current ({})",
                old_meta.resource_version
            )));
        }
        st.revision += 1;
        st.updates += 1;
        let rv = st.revision;
        if let Some(m) = meta_mut(&mut obj) {
            m.resource_version = rv;
            m.generation = old_meta.generation + 1;
            m.created_unix_ms = old_meta.created_unix_ms;
        }
        set_status(&mut obj);
        st.objects.insert(k, obj.clone());
        Ok(Response::new(obj))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let k = ref_key(req.into_inner().r#ref);
        let mut st = self.lock();
        let obj = st.objects.remove(&k).ok_or_else(|| not_found(&k))?;
        st.revision += 1;
        st.deletes.push(crate::ctl::object_label(&obj));
        Ok(Response::new(pb::DeleteResponse { object: Some(obj) }))
    }

    type WatchStream = EventStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<EventStream>, Status> {
        let kind = req.into_inner().kind;
        let st = self.lock();
        let events: Vec<Result<pb::WatchEvent, Status>> = st
            .objects
            .iter()
            .filter(|((k, _), _)| kind == 0 || *k == kind)
            .map(|(_, o)| {
                Ok(pb::WatchEvent {
                    r#type: pb::EventType::Added as i32,
                    object: Some(o.clone()),
                    revision: st.revision,
                })
            })
            .collect();
        let head = tokio_stream::iter(events);
        let stream: EventStream = if st.end_watch {
            Box::pin(head)
        } else {
            Box::pin(head.chain(tokio_stream::pending()))
        };
        Ok(Response::new(stream))
    }

    async fn node_status(
        &self,
        _: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        let st = self.lock();
        let count = |k: pb::Kind| st.objects.keys().filter(|(x, _)| *x == k as i32).count() as u32;
        Ok(Response::new(pb::NodeStatusResponse {
            node_name: "node-a".into(),
            dataplane_address: "127.0.0.1:1337".into(),
            dataplane_uuid: "6f1c1d2e".into(),
            dataplane_state: "ready".into(),
            networks: count(pb::Kind::Network),
            network_interfaces: count(pb::Kind::NetworkInterface),
            load_balancers: count(pb::Kind::LoadBalancer),
            revision: st.revision,
            synced: true,
            ..Default::default()
        }))
    }

    async fn dataplane_routes(
        &self,
        req: Request<pb::DataplaneRoutesRequest>,
    ) -> Result<Response<pb::DataplaneRoutesResponse>, Status> {
        if req.into_inner().vni != 7 {
            return Err(Status::not_found("vni: 9 has no table in the dataplane"));
        }
        Ok(Response::new(pb::DataplaneRoutesResponse {
            routes: vec![
                pb::DataplaneRoute {
                    prefix: "0.0.0.0/0".into(),
                    nexthop_vni: 7,
                    nexthop: "fc00:ff::1".into(),
                },
                pb::DataplaneRoute {
                    prefix: "10.8.0.1/32".into(),
                    nexthop_vni: 8,
                    nexthop: "fc00:b::1:0:1".into(),
                },
            ],
        }))
    }

    async fn get_packet_counters(
        &self,
        _: Request<pb::GetPacketCountersRequest>,
    ) -> Result<Response<PacketCountersResponse>, Status> {
        self.lock()
            .packet_counters
            .clone()
            .map(Response::new)
            .ok_or_else(|| {
                Status::failed_precondition(
                    "the dataplane does not report packet counters (dpservice)",
                )
            })
    }
}
