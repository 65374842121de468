//! The gRPC services: `RegionApi` for users and `NodeSync` for nodes. Each call is authorized
//! (access.rs) by the caller's certificate identity; reads come from the store, writes go to the
//! region actor.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::node_sync_client::NodeSyncClient;
use ferrinet_proto::api::v1::node_sync_server::NodeSync;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use ferrinet_proto::api::v1::region_api_server::RegionApi;
use ferrinet_proto::node::v1 as node_pb;
use prost::Message as _;
use ractor::ActorRef;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::resources::{ObjKey, kind_of, meta, meta_mut};
use crate::selector::{LabelSelector, Labels};
use crate::store::{Revision, Store};

use super::access::{Access, Operation, Role, authorize};
use super::forward::Forwarder;
use super::keys;
use super::tls::TlsConnectInfo;
use super::watch::{self as store_watch, Change, KeyChange, WatchShape};
use super::{ApiError, RegionMsg, call};
use crate::http::Metrics;

/// Every kind a list or watch of "every kind" covers.
const KINDS: [pb::Kind; 8] = [
    pb::Kind::Network,
    pb::Kind::NetworkInterface,
    pb::Kind::VirtualIp,
    pb::Kind::PublicPrefix,
    pb::Kind::NatGateway,
    pb::Kind::LoadBalancer,
    pb::Kind::NetworkPolicy,
    pb::Kind::Node,
];

/// What both services share.
#[derive(Debug, Clone)]
pub struct Shared {
    store: Store,
    /// The region actor while this replica leads.
    writer: watch::Receiver<Option<ActorRef<RegionMsg>>>,
    /// Who leads, for the error followers give.
    leader: watch::Receiver<Option<String>>,
    access: Arc<Access>,
    /// Whether callers come over mutual TLS (and so have identities).
    tls: bool,
    metrics: Metrics,
    forward: Forwarder,
}

/// Where a write goes.
enum Target {
    /// The region actor of this replica (it leads).
    Local(ActorRef<RegionMsg>),
    /// The leader, over this channel.
    Remote(Channel),
}

impl Shared {
    /// The services' state: `tls` says whether connections carry identities (without TLS
    /// every caller is an admin).
    pub fn new(
        store: Store,
        writer: watch::Receiver<Option<ActorRef<RegionMsg>>>,
        leader: watch::Receiver<Option<String>>,
        access: Access,
        tls: bool,
        forward: Forwarder,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            writer,
            leader,
            access: Arc::new(access),
            tls,
            metrics,
            forward,
        }
    }

    /// Counts a write's outcome; the same result back.
    fn count<T>(&self, rpc: &str, r: Result<Response<T>, Status>) -> Result<Response<T>, Status> {
        let code = r.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok);
        self.metrics.write(rpc, code);
        r
    }

    /// A channel to the leader, counted as a forwarded write.
    fn forwarded(&self, ch: Channel) -> Channel {
        self.metrics.forwarded.inc();
        ch
    }

    fn identity<T>(&self, req: &Request<T>) -> Result<Option<String>, Status> {
        if !self.tls {
            return Ok(None);
        }
        match req.extensions().get::<TlsConnectInfo>() {
            Some(info) => Ok(Some(info.identity.0.clone())),
            None => Err(Status::unauthenticated("no client certificate")),
        }
    }

    fn authorize<T>(&self, req: &Request<T>, op: Operation<'_>) -> Result<Role, Status> {
        let identity = self.identity(req)?;
        authorize(&self.access, identity.as_deref(), op).map_err(|e| {
            self.metrics.denied.inc();
            tracing::warn!(error = %e, "region API call refused");
            Status::from(ApiError::Denied(e))
        })
    }

    fn role<T>(&self, req: &Request<T>) -> Result<Role, Status> {
        let identity = self.identity(req)?;
        self.access.role(identity.as_deref()).ok_or_else(|| {
            self.metrics.denied.inc();
            let who = identity.unwrap_or_default();
            tracing::warn!(identity = %who, "region API call refused: no role");
            Status::permission_denied(format!("{who} has no role in this region"))
        })
    }

    /// The role of a user of the region API: nodes have none there (they use NodeSync).
    fn user_role<T>(&self, req: &Request<T>) -> Result<Role, Status> {
        match self.role(req)? {
            Role::Node(name) => {
                self.metrics.denied.inc();
                tracing::warn!(node = %name, "region API call by a node refused");
                Err(Status::permission_denied(format!(
                    "{name} (node) may not use the region API: nodes use NodeSync"
                )))
            }
            role => Ok(role),
        }
    }

    /// The region actor here, or the leader to forward to.
    fn target(&self) -> Result<Target, Status> {
        if let Some(w) = self.writer.borrow().clone() {
            return Ok(Target::Local(w));
        }
        let leader = self.leader.borrow().clone();
        self.forward.channel(leader).map(Target::Remote)
    }
}

/// `RegionApi`.
#[derive(Debug, Clone)]
pub struct RegionApiService(pub Shared);

/// `NodeSync`.
#[derive(Debug, Clone)]
pub struct NodeSyncService(pub Shared);

fn object_of(kv_value: &[u8], revision: Revision) -> Option<pb::Object> {
    let mut obj = pb::Object::decode(kv_value).ok()?;
    if let Some(m) = meta_mut(&mut obj) {
        m.resource_version = revision;
    }
    Some(obj)
}

fn key_arg(key: Option<pb::ObjectKey>) -> Result<(pb::Kind, ObjKey), Status> {
    let key = key.ok_or_else(|| Status::invalid_argument("key: required"))?;
    let kind = pb::Kind::try_from(key.kind)
        .ok()
        .filter(|k| *k != pb::Kind::Unspecified)
        .ok_or_else(|| Status::invalid_argument("key.kind: required"))?;
    if key.name.is_empty() {
        return Err(Status::invalid_argument("key.name: required"));
    }
    Ok((kind, ObjKey::new(key.namespace, key.name)))
}

fn object_arg(obj: Option<pb::Object>) -> Result<(pb::Object, pb::Kind, String), Status> {
    let obj = obj.ok_or_else(|| Status::invalid_argument("object: required"))?;
    let kind = kind_of(&obj).ok_or_else(|| Status::invalid_argument("object: empty"))?;
    let ns = meta(&obj).map(|m| m.namespace.clone()).unwrap_or_default();
    Ok((obj, kind, ns))
}

fn labels_of(obj: &pb::Object) -> Labels {
    meta(obj)
        .map(|m| {
            m.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl RegionApi for RegionApiService {
    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let s = &self.0;
        let r = async {
            let (obj, kind, ns) = object_arg(req.get_ref().object.clone())?;
            s.authorize(&req, Operation::Write(kind, &ns))?;
            match s.target()? {
                Target::Local(w) => Ok(Response::new(
                    call(&w, |r| RegionMsg::Create(obj, r)).await?,
                )),
                Target::Remote(ch) => {
                    RegionApiClient::new(s.forwarded(ch))
                        .create(req.into_inner())
                        .await
                }
            }
        }
        .await;
        s.count("Create", r)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let s = &self.0;
        let (kind, key) = key_arg(req.get_ref().key.clone())?;
        s.authorize(&req, Operation::Read(kind, &key.namespace))?;
        let kv = s
            .store
            .get(&keys::object_key(kind, &key))
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound { kind, key })?;
        object_of(&kv.value, kv.mod_revision)
            .map(Response::new)
            .ok_or_else(|| Status::data_loss("stored object does not decode"))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let s = &self.0;
        let r = req.get_ref();
        let kind = pb::Kind::try_from(r.kind).unwrap_or(pb::Kind::Unspecified);
        let ns = r.namespace.as_str();
        let role = if ns.is_empty() {
            s.user_role(&req)?
        } else {
            s.authorize(&req, Operation::Read(kind, ns))?
        };
        let selector = LabelSelector::parse(&r.label_selector)
            .map_err(|e| Status::invalid_argument(format!("label_selector: {e}")))?;
        let kinds: Vec<pb::Kind> = match kind {
            pb::Kind::Unspecified => KINDS.to_vec(),
            k => vec![k],
        };
        let prefix = match kinds.as_slice() {
            [k] => keys::kind_prefix(*k, (!ns.is_empty()).then_some(ns)),
            _ => keys::OBJECTS.to_string(),
        };
        let listing = s.store.list(&prefix).await.map_err(ApiError::from)?;
        let objects = listing
            .items
            .iter()
            .filter_map(|kv| {
                let (k, key) = keys::parse_object_key(&kv.key)?;
                let visible = kinds.contains(&k)
                    && (ns.is_empty() || key.namespace == ns)
                    && role.sees(k, &key.namespace);
                visible
                    .then(|| object_of(&kv.value, kv.mod_revision))
                    .flatten()
            })
            .filter(|o| selector.matches(&labels_of(o)))
            .collect();
        Ok(Response::new(pb::ListResponse {
            objects,
            revision: listing.revision,
        }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let s = &self.0;
        let r = async {
            let (obj, kind, ns) = object_arg(req.get_ref().object.clone())?;
            s.authorize(&req, Operation::Write(kind, &ns))?;
            match s.target()? {
                Target::Local(w) => Ok(Response::new(
                    call(&w, |r| RegionMsg::Update(obj, r)).await?,
                )),
                Target::Remote(ch) => {
                    RegionApiClient::new(s.forwarded(ch))
                        .update(req.into_inner())
                        .await
                }
            }
        }
        .await;
        s.count("Update", r)
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let s = &self.0;
        let r = async {
            let (kind, key) = key_arg(req.get_ref().key.clone())?;
            s.authorize(&req, Operation::Write(kind, &key.namespace))?;
            let version = req.get_ref().resource_version;
            match s.target()? {
                Target::Local(w) => {
                    let obj = call(&w, |r| RegionMsg::Delete(kind, key, version, r)).await?;
                    Ok(Response::new(pb::DeleteResponse { object: Some(obj) }))
                }
                Target::Remote(ch) => {
                    RegionApiClient::new(s.forwarded(ch))
                        .delete(req.into_inner())
                        .await
                }
            }
        }
        .await;
        s.count("Delete", r)
    }

    type WatchStream = Stream_<pb::WatchEvent>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let s = &self.0;
        let r = req.get_ref().clone();
        let kind = pb::Kind::try_from(r.kind).unwrap_or(pb::Kind::Unspecified);
        let role = if r.namespace.is_empty() {
            s.user_role(&req)?
        } else {
            s.authorize(&req, Operation::Read(kind, &r.namespace))?
        };
        let prefix = match kind {
            pb::Kind::Unspecified => keys::OBJECTS.to_string(),
            k => keys::kind_prefix(k, None),
        };
        let shape = ObjectShape {
            kind,
            namespace: r.namespace,
            role,
        };
        let stream = store_watch::serve(s.store.clone(), prefix, r.from_revision, shape);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let s = &self.0;
        let identity = s.identity(&req)?;
        let role = s.role(&req)?;
        let namespaces = match &role {
            Role::Tenant(ns) => ns.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(pb::WhoAmIResponse {
            identity: identity.unwrap_or_else(|| "anonymous (plaintext)".into()),
            role: role.name().into(),
            namespaces,
        }))
    }
}

/// Region objects of one kind (or all), one namespace (or all), as the caller may see them.
struct ObjectShape {
    kind: pb::Kind,
    namespace: String,
    role: Role,
}

impl WatchShape for ObjectShape {
    type Event = pb::WatchEvent;

    fn event(&self, c: KeyChange<'_>) -> Option<pb::WatchEvent> {
        let (kind, key) = keys::parse_object_key(c.key)?;
        let visible = (self.kind == pb::Kind::Unspecified || self.kind == kind)
            && (self.namespace.is_empty() || self.namespace == key.namespace)
            && self.role.sees(kind, &key.namespace);
        if !visible {
            return None;
        }
        let (r#type, object) = match c.change {
            Change::Added => (pb::EventType::Added, object_of(c.value, c.revision)?),
            Change::Modified => (pb::EventType::Modified, object_of(c.value, c.revision)?),
            Change::Deleted => (pb::EventType::Deleted, stub(kind, &key, c.revision)),
        };
        Some(pb::WatchEvent {
            r#type: r#type as i32,
            object: Some(object),
            revision: c.revision,
        })
    }

    fn synced(&self, revision: Revision) -> pb::WatchEvent {
        pb::WatchEvent {
            r#type: pb::EventType::Synced as i32,
            object: None,
            revision,
        }
    }
}

/// A deleted object: its kind and metadata only.
fn stub(kind: pb::Kind, key: &ObjKey, revision: Revision) -> pb::Object {
    use pb::object::Object as O;
    let metadata = Some(pb::ObjectMeta {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        resource_version: revision,
        ..Default::default()
    });
    let o = match kind {
        pb::Kind::Network => O::Network(pb::Network {
            metadata,
            ..Default::default()
        }),
        pb::Kind::NetworkInterface => O::NetworkInterface(pb::NetworkInterface {
            metadata,
            ..Default::default()
        }),
        pb::Kind::VirtualIp => O::VirtualIp(pb::VirtualIp {
            metadata,
            ..Default::default()
        }),
        pb::Kind::PublicPrefix => O::PublicPrefix(pb::PublicPrefix {
            metadata,
            ..Default::default()
        }),
        pb::Kind::NatGateway => O::NatGateway(pb::NatGateway {
            metadata,
            ..Default::default()
        }),
        pb::Kind::LoadBalancer => O::LoadBalancer(pb::LoadBalancer {
            metadata,
            ..Default::default()
        }),
        pb::Kind::NetworkPolicy => O::NetworkPolicy(pb::NetworkPolicy {
            metadata,
            ..Default::default()
        }),
        pb::Kind::Node | pb::Kind::Unspecified => O::Node(pb::Node {
            metadata,
            ..Default::default()
        }),
    };
    pb::Object { object: Some(o) }
}

#[tonic::async_trait]
impl NodeSync for NodeSyncService {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let s = &self.0;
        let r = async {
            s.authorize(&req, Operation::NodeSync(&req.get_ref().name))?;
            let body = req.into_inner();
            match s.target()? {
                Target::Local(w) => Ok(Response::new(
                    call(&w, |r| RegionMsg::Register(body, r)).await?,
                )),
                Target::Remote(ch) => NodeSyncClient::new(s.forwarded(ch)).register(body).await,
            }
        }
        .await;
        s.count("Register", r)
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let s = &self.0;
        let r = async {
            s.authorize(&req, Operation::NodeSync(&req.get_ref().name))?;
            let body = req.into_inner();
            match s.target()? {
                Target::Local(w) => Ok(Response::new(
                    call(&w, |r| RegionMsg::Heartbeat(body.name, r)).await?,
                )),
                Target::Remote(ch) => NodeSyncClient::new(s.forwarded(ch)).heartbeat(body).await,
            }
        }
        .await;
        s.count("Heartbeat", r)
    }

    type WatchPlacedStream = Stream_<pb::PlacedEvent>;

    async fn watch_placed(
        &self,
        req: Request<pb::WatchPlacedRequest>,
    ) -> Result<Response<Self::WatchPlacedStream>, Status> {
        let s = &self.0;
        let r = req.get_ref().clone();
        if r.name.is_empty() {
            return Err(Status::invalid_argument("name: required"));
        }
        s.authorize(&req, Operation::NodeSync(&r.name))?;
        let stream = store_watch::serve(
            s.store.clone(),
            keys::node_prefix(&r.name),
            r.from_revision,
            PlacedShape,
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_status(
        &self,
        req: Request<pb::ReportStatusRequest>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let s = &self.0;
        let r = async {
            s.authorize(&req, Operation::NodeSync(&req.get_ref().name))?;
            let body = req.into_inner();
            match s.target()? {
                Target::Local(w) => {
                    call(&w, |r| RegionMsg::Report(body.name, body.objects, r)).await?;
                    Ok(Response::new(pb::ReportStatusResponse {}))
                }
                Target::Remote(ch) => {
                    NodeSyncClient::new(s.forwarded(ch))
                        .report_status(body)
                        .await
                }
            }
        }
        .await;
        s.count("ReportStatus", r)
    }
}

/// Node objects placed on one node.
struct PlacedShape;

impl WatchShape for PlacedShape {
    type Event = pb::PlacedEvent;

    fn event(&self, c: KeyChange<'_>) -> Option<pb::PlacedEvent> {
        let (_, kind, name) = keys::parse_placed_key(c.key)?;
        let (r#type, object) = match c.change {
            Change::Added => (pb::EventType::Added, node_pb::Object::decode(c.value).ok()?),
            Change::Modified => (
                pb::EventType::Modified,
                node_pb::Object::decode(c.value).ok()?,
            ),
            Change::Deleted => (pb::EventType::Deleted, node_stub(kind, name)),
        };
        Some(pb::PlacedEvent {
            r#type: r#type as i32,
            object: Some(object),
            revision: c.revision,
        })
    }

    fn synced(&self, revision: Revision) -> pb::PlacedEvent {
        pb::PlacedEvent {
            r#type: pb::EventType::Synced as i32,
            object: None,
            revision,
        }
    }
}

fn node_stub(kind: node_pb::Kind, name: String) -> node_pb::Object {
    use node_pb::object::Object as O;
    let metadata = Some(node_pb::Metadata {
        name,
        labels: BTreeMap::<String, String>::new().into_iter().collect(),
        ..Default::default()
    });
    let o = match kind {
        node_pb::Kind::Network => O::Network(node_pb::Network {
            metadata,
            ..Default::default()
        }),
        node_pb::Kind::LoadBalancer => O::LoadBalancer(node_pb::LoadBalancer {
            metadata,
            ..Default::default()
        }),
        _ => O::NetworkInterface(node_pb::NetworkInterface {
            metadata,
            ..Default::default()
        }),
    };
    node_pb::Object { object: Some(o) }
}
