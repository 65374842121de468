//! A small in-memory `RegionApi` server for the command tests: enough of the API's contract
//! (resource versions, optimistic concurrency, NOT_FOUND / ALREADY_EXISTS, one validation error
//! with its field path, namespaces, `key=value` selectors, watch of the current objects then
//! SYNCED) to exercise every exit status over TCP on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;
use pb::region_api_server::{RegionApi, RegionApiServer};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use super::{meta_mut, object_key};

/// Creation time of every object: 2023-11-14T22:13:20Z.
pub const CREATED_MS: i64 = 1_700_000_000_000;

type Key = (i32, String, String);

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<Key, pb::Object>,
    pub revision: u64,
    pub creates: usize,
    pub updates: usize,
    pub deletes: Vec<String>,
    /// Requests seen: `kind namespace selector` of each List.
    pub lists: Vec<(i32, String, String)>,
    /// Change the object behind the client's back before the next N updates, as a concurrent
    /// writer would (the update then fails with FAILED_PRECONDITION).
    pub interfere: usize,
    /// End the watch stream after SYNCED instead of keeping it open.
    pub end_watch: bool,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

fn key_of(k: &pb::ObjectKey) -> Key {
    (k.kind, k.namespace.clone(), k.name.clone())
}

fn not_found(k: &Key) -> Status {
    Status::not_found(format!("{}/{} not found", k.1, k.2))
}

fn validate(obj: &pb::Object) -> Result<(), Status> {
    if let Some(O::Network(n)) = &obj.object
        && n.spec.as_ref().is_some_and(|s| s.vni > 16_777_215)
    {
        return Err(Status::invalid_argument(
            "spec.vni: must be 1 to 16777215 (0: allocated)",
        ));
    }
    Ok(())
}

fn set_status(obj: &mut pb::Object) {
    match obj.object.as_mut() {
        Some(O::Network(n)) => {
            n.status = Some(pb::NetworkStatus {
                vni: 100,
                state: "Available".into(),
                ..Default::default()
            });
        }
        Some(O::NetworkInterface(n)) => {
            n.status = Some(pb::NetworkInterfaceStatus {
                state: "Pending".into(),
                ips: vec!["10.0.0.1".into()],
                conditions: vec![pb::Condition {
                    r#type: "Placed".into(),
                    ok: false,
                    reason: "NodeNotReady".into(),
                    message: "node-1 has no lease".into(),
                }],
                ..Default::default()
            });
        }
        Some(O::VirtualIp(v)) => {
            v.status = Some(pb::VirtualIpStatus {
                ip: "203.0.113.7".into(),
                bound_to: None,
            });
        }
        _ => {}
    }
}

/// `a=b,c=d` only, which is all the tests send.
fn matches(obj: &pb::Object, selector: &str) -> bool {
    let labels = super::kind_and_meta(obj)
        .and_then(|(_, m)| m)
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|t| match t.split_once('=') {
            Some((k, v)) => labels.get(k.trim()).is_some_and(|x| x == v.trim()),
            None => false,
        })
}

impl FakeApi {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves on 127.0.0.1, a free port; returns the address and the server task.
    pub async fn serve(&self) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API");
        let addr = listener.local_addr().expect("local address");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let svc = RegionApiServer::new(self.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        (addr, task)
    }
}

fn key_checked(obj: &pb::Object) -> Result<Key, Status> {
    let k = object_key(obj).ok_or_else(|| Status::invalid_argument("object: required"))?;
    if k.name.is_empty() {
        return Err(Status::invalid_argument("metadata.name: required"));
    }
    Ok(key_of(&k))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl RegionApi for FakeApi {
    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let mut obj = req.into_inner().object.unwrap_or_default();
        let k = key_checked(&obj)?;
        validate(&obj)?;
        let mut st = self.lock();
        if st.objects.contains_key(&k) {
            return Err(Status::already_exists(format!(
                "{}/{} already exists",
                k.1, k.2
            )));
        }
        st.revision += 1;
        st.creates += 1;
        let rv = st.revision;
        if let Some(m) = meta_mut(&mut obj) {
            m.resource_version = rv;
            m.generation = 1;
            m.created_unix_ms = CREATED_MS;
            m.uid = format!("uid-{rv}");
        }
        set_status(&mut obj);
        st.objects.insert(k, obj.clone());
        Ok(Response::new(obj))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let k = key_of(&req.into_inner().key.unwrap_or_default());
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
        let r = req.into_inner();
        let mut st = self.lock();
        st.lists
            .push((r.kind, r.namespace.clone(), r.label_selector.clone()));
        let objects = st
            .objects
            .iter()
            .filter(|((k, ns, _), o)| {
                (r.kind == 0 || *k == r.kind)
                    && (r.namespace.is_empty() || *ns == r.namespace)
                    && matches(o, &r.label_selector)
            })
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
        let k = key_checked(&obj)?;
        validate(&obj)?;
        let mut st = self.lock();
        if st.interfere > 0 {
            st.interfere -= 1;
            st.revision += 1;
            let rv = st.revision;
            if let Some(m) = st.objects.get_mut(&k).and_then(meta_mut) {
                m.resource_version = rv;
            }
        }
        let mut old = st.objects.get(&k).cloned().ok_or_else(|| not_found(&k))?;
        let old_meta = meta_mut(&mut old).cloned().unwrap_or_default();
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
            m.uid = old_meta.uid.clone();
        }
        set_status(&mut obj);
        st.objects.insert(k, obj.clone());
        Ok(Response::new(obj))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let k = key_of(&req.into_inner().key.unwrap_or_default());
        let mut st = self.lock();
        let obj = st.objects.remove(&k).ok_or_else(|| not_found(&k))?;
        st.revision += 1;
        st.deletes.push(super::object_label(&obj));
        Ok(Response::new(pb::DeleteResponse { object: Some(obj) }))
    }

    type WatchStream = EventStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<EventStream>, Status> {
        let r = req.into_inner();
        let st = self.lock();
        let mut events: Vec<Result<pb::WatchEvent, Status>> = st
            .objects
            .iter()
            .filter(|((k, ns, _), _)| {
                (r.kind == 0 || *k == r.kind) && (r.namespace.is_empty() || *ns == r.namespace)
            })
            .map(|(_, o)| {
                Ok(pb::WatchEvent {
                    r#type: pb::EventType::Added as i32,
                    object: Some(o.clone()),
                    revision: st.revision,
                })
            })
            .collect();
        events.push(Ok(pb::WatchEvent {
            r#type: pb::EventType::Synced as i32,
            object: None,
            revision: st.revision,
        }));
        let head = tokio_stream::iter(events);
        let stream: EventStream = if st.end_watch {
            Box::pin(head)
        } else {
            Box::pin(head.chain(tokio_stream::pending()))
        };
        Ok(Response::new(stream))
    }

    async fn who_am_i(
        &self,
        _: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        Ok(Response::new(pb::WhoAmIResponse {
            identity: "tenant-a-ci".into(),
            role: "tenant".into(),
            namespaces: vec!["tenant-a".into(), "default".into()],
        }))
    }
}
